package providers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/server"
	"github.com/modelorganisms/pvbuild/internal/testlog"
	"github.com/modelorganisms/pvbuild/internal/vclock"
)

func decodeKind(t *testing.T, k provider.Kind, body string) (provider.Config, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(body), "p.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return k.Decode(provider.Settings{Name: "gw", Body: f.Body, Getenv: func(string) string { return "" }})
}

// A base_url or tokenizer_hub with a query, fragment or user:password
// cannot work and would print its secret in every error: it is refused
// where it is written, and the diagnostic does not repeat it.
func TestAbuseBaseURLWithSecret(t *testing.T) {
	for _, tc := range []struct {
		kind provider.Kind
		attr string
		url  string
		want string
	}{
		{&OpenAI{}, "base_url", "http://gw.example/v1?api_key=SECRET", "query string"},
		{&OpenAI{}, "base_url", "https://me:SECRET@gw.example/v1", "user name or password"},
		{&OpenAI{}, "base_url", "https://gw.example/v1#SECRET", "fragment"},
		{&Tinker{}, "base_url", "https://tinker.example/?key=SECRET", "query string"},
		{&Tinker{}, "tokenizer_hub", "https://hf:SECRET@hub.example", "user name or password"},
	} {
		t.Run(tc.attr+" "+tc.want, func(t *testing.T) {
			_, diags := decodeKind(t, tc.kind, tc.attr+` = "`+tc.url+`"`+"\n")
			if !diags.HasErrors() {
				t.Fatalf("%s = %q was accepted", tc.attr, tc.url)
			}
			msg := diags.Error()
			loc := "p.hcl:1," + strconv.Itoa(len(tc.attr)+4)
			if !strings.Contains(msg, loc) || !strings.Contains(msg, "Invalid "+tc.attr) || !strings.Contains(msg, tc.want) {
				t.Fatalf("diagnostic %q: want it at %s naming the %s", msg, loc, tc.want)
			}
			if strings.Contains(msg, "SECRET") {
				t.Fatalf("diagnostic repeats the secret: %q", msg)
			}
		})
	}
	// From the environment, it is refused when the provider is opened, and
	// the error does not repeat it either.
	f, _ := hclsyntax.ParseConfig([]byte("api_key = \"k\"\n"), "p.hcl", hcl.InitialPos)
	cfg, diags := (&OpenAI{}).Decode(provider.Settings{Name: "openai", Body: f.Body,
		Getenv: func(k string) string { return map[string]string{"OPENAI_BASE_URL": "http://gw/v1?api_key=SECRET"}[k] }})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, err := cfg.Open(context.Background(), provider.Env{Name: "openai", Artifacts: t.TempDir()})
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "query string") {
		t.Fatalf("open with a secret in OPENAI_BASE_URL: %v", err)
	}
}

func TestAbuseInvalidMaxOutage(t *testing.T) {
	for _, k := range []provider.Kind{&OpenAI{}, &Tinker{}} {
		for _, v := range []string{"ten minutes", "-1m", "0s"} {
			_, diags := decodeKind(t, k, `max_outage = "`+v+`"`+"\n")
			if !diags.HasErrors() || !strings.Contains(diags.Error(), "p.hcl:1,14") || !strings.Contains(diags.Error(), "Invalid max_outage") {
				t.Fatalf("max_outage = %q: %v", v, diags)
			}
		}
		if _, diags := decodeKind(t, k, `max_outage = "90s"`+"\n"); diags.HasErrors() {
			t.Fatal(diags)
		}
	}
}

// flaky serves h on a fixed loopback address that can go down (connections
// refused) until a moment of virtual time.
type flaky struct {
	t    *testing.T
	addr string
	h    http.Handler
	mu   sync.Mutex
	hs   *http.Server
	back time.Time // while hs is nil, when to listen again
}

func (f *flaky) down(until time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hs != nil {
		f.hs.Close()
		f.hs = nil
	}
	f.back = until
}

// tick is the clock's sleep hook: the server comes back on time.
func (f *flaky) tick(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hs != nil || now.Before(f.back) {
		return
	}
	l, err := net.Listen("tcp", f.addr)
	if err != nil {
		f.t.Errorf("listen again on %s: %v", f.addr, err)
		return
	}
	f.hs = &http.Server{Handler: f.h}
	go f.hs.Serve(l)
}

func (f *flaky) close() { f.down(time.Time{}) }

// The openai kind, opened from its block with max_outage, rides out a
// 60 s outage of `mage serve` (connections refused) in chat and in
// training, with one waiting policy and its progress lines; with
// max_outage = "30s" the same outage fails with the clear error.
func TestAbuseOpenAIKindOutage(t *testing.T) {
	for _, tc := range []struct {
		maxOutage string
		survive   bool
	}{{"2m", true}, {"30s", false}} {
		t.Run("max_outage "+tc.maxOutage, func(t *testing.T) {
			opts, err := local.DefaultOptions(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			opts.JobDuration = 20 * time.Millisecond
			eng, err := local.Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			f := &flaky{t: t, addr: ln.Addr().String(), h: server.New(eng, server.Options{Log: log.New(io.Discard, "", 0)})}
			ln.Close()
			t.Cleanup(f.close)
			clock := vclock.New()
			clock.OnSleep = f.tick

			kind := &OpenAI{Outage: provider.OutagePolicy{Sleep: clock.Sleep, Now: clock.Now}}
			kind.Jobs.PollInterval = time.Millisecond
			cfg, diags := decodeKind(t, kind, "api_key = \"sk-test\"\nbase_url = \"http://"+f.addr+"/v1\"\nmax_outage = \""+tc.maxOutage+"\"\n")
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var logs testlog.Buffer
			conn, err := cfg.Open(context.Background(), provider.Env{Name: "gw", Artifacts: t.TempDir(), Log: &logs})
			if err != nil {
				t.Fatal(err)
			}

			f.down(clock.Now().Add(60 * time.Second))
			_, err = conn.Sampler.Chat(context.Background(), provider.ChatRequest{Model: "gpt-4.1-mini-2025-04-14",
				Messages: []provider.Message{{Role: "user", Content: "hello"}}, MaxTokens: 8})
			if !tc.survive {
				if !errors.Is(err, provider.ErrUnreachable) || !strings.Contains(err.Error(), "unreachable for 30s (max_outage 30s); giving up") {
					t.Fatalf("err = %v, want the outage error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("chat after a 60 s outage: %v\n%s", err, logs.String())
			}
			if !strings.Contains(logs.String(), "provider gw: unreachable for ") || !strings.Contains(logs.String(), "connection refused") {
				t.Fatalf("no waiting line:\n%s", logs.String())
			}

			f.down(clock.Now().Add(60 * time.Second))
			var data bytes.Buffer
			for i := range 12 {
				fmt.Fprintf(&data, `{"messages":[{"role":"user","content":"question %d"},{"role":"assistant","content":"answer %d"}]}`+"\n", i, i)
			}
			tr, err := conn.Trainer.Train(context.Background(), provider.TrainRequest{Key: "k0123456789abcdef", Models: []string{"m"},
				Data: data.Bytes(), BaseModel: "gpt-4.1-mini-2025-04-14", Suffix: "pv-test"})
			if err != nil || tr.Model == "" {
				t.Fatalf("train after a 60 s outage: %+v, %v\n%s", tr, err, logs.String())
			}
		})
	}
}
