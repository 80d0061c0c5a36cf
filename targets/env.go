package targets

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/modelorganisms/pvbuild/internal/faults"
)

// The serving targets read their settings from the environment; each
// parser leaves dst alone when the variable is unset and names the
// variable when its value is wrong.

func envFraction(name string, dst *float64) error {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return fmt.Errorf("%s=%q: want a fraction such as 0.1", name, v)
	}
	*dst = x
	return nil
}

func envDuration(name string, dst *time.Duration) error {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%s=%q: want a duration such as 50ms", name, v)
	}
	*dst = d
	return nil
}

func envSeed(name string, dst *uint64) error {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	s, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%s=%q: want a non-negative integer", name, v)
	}
	*dst = s
	return nil
}

// envOutage reads an outage such as "after=30s,for=60s": down 30 s after
// the server starts, for 60 s; after defaults to 0.
func envOutage(name string, dst *faults.Outage) error {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%s=%q: %s; want e.g. after=30s,for=60s", name, v, why)
	}
	var o faults.Outage
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || (key != "after" && key != "for") {
			return bad(fmt.Sprintf("%q is not after=DURATION or for=DURATION", part))
		}
		if seen[key] {
			return bad(key + " given twice")
		}
		seen[key] = true
		d, err := time.ParseDuration(val)
		if err != nil || d < 0 {
			return bad(fmt.Sprintf("%s=%q is not a duration such as 30s", key, val))
		}
		if key == "after" {
			o.After = d
		} else {
			o.For = d
		}
	}
	if o.For <= 0 {
		return bad("for must be a positive duration")
	}
	*dst = o
	return nil
}
