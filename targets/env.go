package targets

import (
	"fmt"
	"os"
	"strconv"
	"time"
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
