package report

import (
	"math"
	"testing"
)

// The across-seed standard error against a hand computation: means 40, 50,
// 60 have mean 50, sd (ddof=1) sqrt((100+0+100)/2) = 10, SE 10/sqrt(3).
func TestAcrossSeedsByHand(t *testing.T) {
	mean, se, known, ok := AcrossSeeds([]float64{40, 50, 60})
	if !ok || !known || mean != 50 || math.Abs(se-5.773502691896258) > 1e-12 {
		t.Fatalf("mean %v se %v known %v ok %v", mean, se, known, ok)
	}
	if _, _, known, ok := AcrossSeeds([]float64{42}); !ok || known {
		t.Fatalf("one replicate: known %v ok %v", known, ok)
	}
	if _, _, _, ok := AcrossSeeds(nil); ok {
		t.Fatal("no replicate reported a mean")
	}
	// Difference 70-50 = 20 with 1.96*sqrt(SE_a^2 + SE_b^2); b's SE is
	// sd(65,70,75)=5 over sqrt(3).
	d, ok := ConditionDiff([]float64{65, 70, 75}, []float64{40, 50, 60})
	half := 1.96 * math.Sqrt(25.0/3+100.0/3)
	if !ok || !d.Interval || d.Value != 20 || math.Abs(d.Low-(20-half)) > 1e-9 || math.Abs(d.High-(20+half)) > 1e-9 {
		t.Fatalf("diff %+v", d)
	}
}
