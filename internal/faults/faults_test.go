package faults

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func draws(d *Dice, h HTTP, n int) []Kind {
	out := make([]Kind, n)
	for i := range out {
		out[i] = d.Draw(h)
	}
	return out
}

// The same seed meets the same faults, in about the asked proportions;
// another seed meets others.
func TestDiceDeterministic(t *testing.T) {
	h := HTTP{RateLimit: 0.2, ServerError: 0.2, Drop: 0.2, Lost: 0.2}
	a, b, other := draws(NewDice(7), h, 500), draws(NewDice(7), h, 500), draws(NewDice(8), h, 500)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different draws")
	}
	if slices.Equal(a, other) {
		t.Fatal("seeds 7 and 8 drew the same")
	}
	for k := None; k <= Lost; k++ {
		if n := count(a, k); n < 60 || n > 140 {
			t.Errorf("kind %d drawn %d times of 500, want about 100", k, n)
		}
	}
}

func count(ks []Kind, k Kind) int {
	n := 0
	for _, x := range ks {
		if x == k {
			n++
		}
	}
	return n
}

// Zero rates draw nothing, so that they do not shift the sequence of the
// next non-zero draw.
func TestDiceZeroRatesDrawNothing(t *testing.T) {
	h := HTTP{Drop: 0.5}
	plain := draws(NewDice(3), h, 50)
	d := NewDice(3)
	var mixed []Kind
	for range 50 {
		if d.Pick(0, 0) != -1 {
			t.Fatal("zero rates picked a fault")
		}
		mixed = append(mixed, d.Draw(h))
	}
	if !slices.Equal(plain, mixed) {
		t.Error("draws with zero rates shifted the sequence")
	}
	if got := draws(NewDice(1), HTTP{Lost: 1}, 5); count(got, Lost) != 5 {
		t.Errorf("rate 1 drew %v", got)
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		h    HTTP
		want string // "" = valid
	}{
		{HTTP{}, ""},
		{HTTP{RateLimit: 0.25, ServerError: 0.25, Drop: 0.25, Lost: 0.25}, ""},
		{HTTP{Drop: 1.5}, "drop rate 1.5 outside [0, 1]"},
		{HTTP{RateLimit: -0.1}, "rate-limit rate -0.1 outside"},
		{HTTP{RateLimit: 0.6, ServerError: 0.6}, "fault rates sum to 1.2, above 1"},
	} {
		errs := tc.h.Check("fault")
		var got []string
		for _, e := range errs {
			got = append(got, e.Error())
		}
		if tc.want == "" && len(errs) > 0 || tc.want != "" && !strings.Contains(strings.Join(got, "; "), tc.want) {
			t.Errorf("Check(%+v) = %q, want %q", tc.h, got, tc.want)
		}
	}
}

func TestSetRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{1500 * time.Millisecond: "2,1500", time.Second: "1,1000", 0: "0,0"} {
		h := http.Header{}
		SetRetryAfter(h, d)
		if got := h.Get("Retry-After") + "," + h.Get("Retry-After-Ms"); got != want {
			t.Errorf("SetRetryAfter(%s): %s, want %s", d, got, want)
		}
	}
}
