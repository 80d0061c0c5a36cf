// Package faults is the fault injection the loopback servers share
// (internal/server, internal/tinkerserver): a seeded sequence of draws that
// picks each request's fault, the checks of fault rates, and Switch, a
// listener a test can take down and bring back on the same address. What a
// fault looks like on the wire is each server's own business.
package faults

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Rate is a named fraction of requests, for Check's messages.
type Rate struct {
	Name  string // "drop rate"
	Value float64
}

// Check reports each rate outside [0, 1] and a sum above 1: the rates of
// one group are alternatives of one draw. group names them in the message
// about the sum ("fault rates sum to 1.2, above 1").
func Check(group string, rates ...Rate) []error {
	var errs []error
	sum := 0.0
	for _, r := range rates {
		if r.Value < 0 || r.Value > 1 || math.IsNaN(r.Value) {
			errs = append(errs, fmt.Errorf("%s %v outside [0, 1]", r.Name, r.Value))
		}
		sum += r.Value
	}
	if sum > 1 {
		errs = append(errs, fmt.Errorf("%s rates sum to %v, above 1", group, sum))
	}
	return errs
}

// Dice is a seeded sequence of draws, one per request in order of arrival,
// so that the same sequence of requests meets the same faults. It is safe
// for concurrent use.
type Dice struct {
	mu  sync.Mutex
	rng *rand.Rand
}

// NewDice starts the sequence of seed.
func NewDice(seed uint64) *Dice {
	return &Dice{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Pick draws a number and returns the index of the rate it falls in, or -1
// for none. Nothing is drawn when every rate is zero, so that enabling
// one kind of fault does not shift the sequence of another.
func (d *Dice) Pick(rates ...float64) int {
	sum := 0.0
	for _, r := range rates {
		sum += r
	}
	if sum == 0 {
		return -1
	}
	d.mu.Lock()
	u := d.rng.Float64()
	d.mu.Unlock()
	for i, r := range rates {
		if u < r {
			return i
		}
		u -= r
	}
	return -1
}

// Kind is the fault drawn for one HTTP request.
type Kind int

const (
	None        Kind = iota
	RateLimit        // 429 with Retry-After, before any work
	ServerError      // 500, before any work
	Drop             // connection closed unanswered, before any work
	Lost             // served in full, then the answer is lost with the connection
)

// HTTP are the rates of the request faults both servers inject.
type HTTP struct {
	RateLimit, ServerError, Drop, Lost float64
}

// Check is the package Check of these rates, under the names the servers'
// messages use.
func (h HTTP) Check(group string) []error {
	return Check(group, Rate{"rate-limit rate", h.RateLimit}, Rate{"server-error rate", h.ServerError},
		Rate{"drop rate", h.Drop}, Rate{"lost-response rate", h.Lost})
}

// Draw picks the fault of one request.
func (d *Dice) Draw(h HTTP) Kind {
	switch d.Pick(h.RateLimit, h.ServerError, h.Drop, h.Lost) {
	case 0:
		return RateLimit
	case 1:
		return ServerError
	case 2:
		return Drop
	case 3:
		return Lost
	}
	return None
}

// SetRetryAfter asks the client to wait d, as OpenAI and Tinker do:
// clients read Retry-After-Ms first; Retry-After is whole seconds, rounded
// up so that it is never shorter.
func SetRetryAfter(h http.Header, d time.Duration) {
	ms := d.Milliseconds()
	h.Set("Retry-After-Ms", strconv.FormatInt(ms, 10))
	h.Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
}
