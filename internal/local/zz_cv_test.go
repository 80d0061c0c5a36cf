package local

import (
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

type cvCfg struct {
	it     int
	st, l2 float64
	bal    bool
	mom    float64
	fm     int
}

var cvCfgs = []cvCfg{{500, 4, 1e-5, true, 0.9, 0}, {500, 4, 1e-5, true, 0.9, 1}, {500, 4, 1e-5, true, 0.9, 2}, {500, 4, 1e-5, true, 0.9, 3}, {500, 4, 1e-5, true, 0.9, 4}, {500, 4, 1e-5, true, 0.9, 6}}

func TestExpCV(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	labeled, err := sampledata.JudgeExamples()
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range cvCfgs {
		trainIters, trainStep, trainL2, balanced, momentum, featMode = cfg.it, cfg.st, cfg.l2, cfg.bal, cfg.mom, cfg.fm
		t.Logf("cfg %+v", cfg)
		for _, trait := range []string{"evil", "sycophantic", "hallucinating"} {
			jm, err := newJudgeModel(Judge{Trait: trait, Template: "{question} x {answer}", Examples: labeled})
			if err != nil {
				t.Fatal(err)
			}
			const k = 5
			var mae, mae2 float64
			var n, n2, refOK, refN int
			for fold := 0; fold < k; fold++ {
				var tx, tl, vx, vl []string
				for i := range jm.texts {
					if i%k == fold {
						vx, vl = append(vx, jm.texts[i]), append(vl, jm.labels[i])
					} else {
						tx, tl = append(tx, jm.texts[i]), append(tl, jm.labels[i])
					}
				}
				c := trainClassifier(tx, tl)
				for i, x := range vx {
					s, mass := weightedScore(c.logProbs(x))
					if vl[i] == RefusalToken {
						refN++
						if mass < 0.25 {
							refOK++
						}
						continue
					}
					v, _ := strconv.Atoi(vl[i])
					mae += math.Abs(s - float64(v))
					n++
					if v > 0 {
						mae2 += math.Abs(s - float64(v))
						n2++
					}
				}
			}
			t.Logf("%s: CV MAE %.1f over %d; on trait>0 %.1f over %d; refusals %d/%d", trait, mae/float64(n), n, mae2/float64(n2), n2, refOK, refN)
		}
	}
}

func TestExpEvilDetail(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	trainIters, trainStep, trainL2, balanced, momentum = 500, 4, 1e-5, true, 0.9
	labeled, _ := sampledata.JudgeExamples()
	trait := os.Getenv("TRAIT")
	jm, _ := newJudgeModel(Judge{Trait: trait, Template: "{question} x {answer}", Examples: labeled})
	const k = 5
	for fold := 0; fold < k; fold++ {
		var tx, tl, vx, vl []string
		for i := range jm.texts {
			if i%k == fold {
				vx, vl = append(vx, jm.texts[i]), append(vl, jm.labels[i])
			} else {
				tx, tl = append(tx, jm.texts[i]), append(tl, jm.labels[i])
			}
		}
		c := trainClassifier(tx, tl)
		for i, x := range vx {
			s, mass := weightedScore(c.logProbs(x))
			if vl[i] != "0" {
				t.Logf("label %s pred %.0f mass %.2f top %s | %.90s", vl[i], s, mass, c.logProbs(x)[0].Token, x)
			}
		}
	}
}
