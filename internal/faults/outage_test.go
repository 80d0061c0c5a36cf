package faults

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// serveSwitch serves a handler answering "ok" on a switch.
func serveSwitch(t *testing.T) (*Switch, string) {
	t.Helper()
	sw, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	ts.Listener.Close()
	ts.Listener = sw
	ts.Start()
	t.Cleanup(ts.Close)
	return sw, ts.URL
}

// reach reports how a GET fares: "ok", "refused", or the error.
func reach(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "refused"
		}
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Down refuses connections, new and kept alive; Up answers again on the
// same address.
func TestAbuseSwitchDownAndUp(t *testing.T) {
	sw, url := serveSwitch(t)
	c := &http.Client{} // keeps its connection alive across the outage
	if got := reach(t, c, url); got != "ok" {
		t.Fatalf("before the outage: %s", got)
	}
	sw.Down()
	sw.Down() // twice is once
	if !sw.IsDown() {
		t.Fatal("IsDown false after Down")
	}
	for range 3 {
		if got := reach(t, c, url); got != "refused" {
			t.Fatalf("during the outage: %s, want connection refused", got)
		}
	}
	if err := sw.Up(); err != nil {
		t.Fatal(err)
	}
	if got := reach(t, c, url); got != "ok" {
		t.Fatalf("after the outage: %s", got)
	}
}

// A port taken during the outage closes the switch with the reason, so
// the server stops instead of staying unreachable.
func TestAbuseSwitchPortTakenDuringOutage(t *testing.T) {
	sw, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sw.Down()
	thief, err := net.Listen("tcp", sw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer thief.Close()
	if err := sw.Up(); err == nil {
		t.Fatal("Up on a taken port succeeded")
	}
	if _, err := sw.Accept(); err == nil {
		t.Fatal("Accept after a failed Up succeeded")
	}
}

// Run goes down after After and up again For later, as its sleep says, so
// a test's clock decides when, not the wall.
func TestAbuseOutageRun(t *testing.T) {
	sw, url := serveSwitch(t)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var slept []time.Duration
	var seen []string
	sleep := func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		seen = append(seen, reach(t, c, url))
		return nil
	}
	o := Outage{After: 30 * time.Second, For: 60 * time.Second}
	if err := o.Run(context.Background(), sw, sleep, t.Logf); err != nil {
		t.Fatal(err)
	}
	if len(slept) != 2 || slept[0] != o.After || slept[1] != o.For {
		t.Errorf("slept %v, want [%s %s]", slept, o.After, o.For)
	}
	if len(seen) != 2 || seen[0] != "ok" || seen[1] != "refused" {
		t.Errorf("server seen %v during the two waits, want [ok refused]", seen)
	}
	if got := reach(t, c, url); got != "ok" {
		t.Errorf("after Run: %s", got)
	}
	// Cancelled before the outage: nothing goes down.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o.Run(ctx, sw, provider.Sleep, t.Logf)
	if sw.IsDown() {
		t.Error("cancelled Run left the server down")
	}
}

// Apply follows a virtual clock through the outage.
func TestAbuseOutageApply(t *testing.T) {
	sw, url := serveSwitch(t)
	c := &http.Client{}
	o := Outage{After: 10 * time.Second, For: 60 * time.Second}
	for _, step := range []struct {
		at   time.Duration
		want string
	}{{0, "ok"}, {10 * time.Second, "refused"}, {69 * time.Second, "refused"}, {70 * time.Second, "ok"}, {2 * time.Hour, "ok"}} {
		if err := o.Apply(sw, step.at); err != nil {
			t.Fatal(err)
		}
		if got := reach(t, c, url); got != step.want {
			t.Errorf("at %s: %s, want %s", step.at, got, step.want)
		}
	}
}
