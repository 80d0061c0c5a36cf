package openai

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/vclock"
)

// Failures no retry can cure fail the first time, as provider.ErrNoRetry:
// an expired certificate, a plain-HTTP server on an https URL, a server
// that speaks neither TLS nor HTTP on an https URL, a URL that is not
// http(s).
func TestAbuseTransportPermanentTLSErrors(t *testing.T) {
	var tlsHits atomic.Int32
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tlsHits.Add(1) }))
	t.Cleanup(tlsSrv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())

	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { plainHits.Add(1) }))
	t.Cleanup(plain.Close)

	var junkHits atomic.Int32
	junk, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { junk.Close() })
	go func() {
		for {
			c, err := junk.Accept()
			if err != nil {
				return
			}
			junkHits.Add(1)
			c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			c.Close()
		}
	}()

	expired := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool,
		// The certificate as the client sees it a century on: expired.
		Time: func() time.Time { return time.Now().AddDate(100, 0, 0) },
	}}}
	for _, tc := range []struct {
		name string
		hc   *http.Client
		url  string
		hits *atomic.Int32
		is   any
	}{
		{"expired certificate", expired, tlsSrv.URL + "/v1/models", &tlsHits, new(x509.CertificateInvalidError)},
		{"http server on an https URL", &http.Client{Timeout: 5 * time.Second}, "https://" + plain.Listener.Addr().String() + "/v1/models", &plainHits, nil},
		{"not TLS on an https URL", &http.Client{Timeout: 5 * time.Second}, "https://" + junk.Addr().String() + "/v1/models", &junkHits, new(tls.RecordHeaderError)},
		{"ftp URL", &http.Client{Timeout: 5 * time.Second}, "ftp://" + plain.Listener.Addr().String() + "/v1/models", &plainHits, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := vclock.New()
			tr := &transport{hc: tc.hc, key: testKey,
				outage: provider.NewOutage("openai", provider.OutagePolicy{Max: time.Minute, Sleep: clock.Sleep, Now: clock.Now}, nil)}
			req, err := http.NewRequest(http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			before := tc.hits.Load()
			_, err = tr.Do(req)
			if err == nil || !errors.Is(err, provider.ErrNoRetry) || !provider.Permanent(err) {
				t.Fatalf("err = %v, want it to be provider.ErrNoRetry", err)
			}
			if tc.is != nil && !errors.As(err, tc.is) {
				t.Fatalf("err = %v (%T), want it to hold a %T", err, err, tc.is)
			}
			if clock.Elapsed() != 0 || tc.hits.Load()-before > 1 {
				t.Fatalf("%d connections, %s waited: want one try, no wait", tc.hits.Load()-before, clock.Elapsed())
			}
			if strings.Contains(err.Error(), "gave up") {
				t.Fatalf("err = %v: want no retries", err)
			}
		})
	}
}

// With no retry cap, one request that keeps failing (HTTP 500) while every
// other request succeeds gives up after max_outage of its own failures:
// the others' answers end the provider's outage, not this request's.
func TestAbuseOneRequestFailingWhileOthersSucceed(t *testing.T) {
	var bad atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Give in after far more attempts than a minute of backoff takes,
		// so that a request retried for ever is seen to end.
		if r.URL.Path == "/v1/bad" && bad.Add(1) < 5000 {
			writeJSON(w, 500, apiErrorBody("The server had an error.", "server_error", "", nil))
			return
		}
		writeJSON(w, 200, map[string]any{})
	}))
	t.Cleanup(srv.Close)
	clock := vclock.New()
	tr := &transport{hc: &http.Client{Timeout: 5 * time.Second}, key: testKey,
		outage: provider.NewOutage("openai", provider.OutagePolicy{Max: time.Minute, Sleep: clock.Sleep, Now: clock.Now}, nil)}
	get := func(path string) error {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.Do(req)
		return err
	}
	// Another call succeeds during each wait of the failing one.
	clock.OnSleep = func(time.Time) {
		if err := get("/v1/good"); err != nil {
			t.Errorf("good call: %v", err)
		}
	}
	err := get("/v1/bad")
	var oe *provider.OutageError
	if !errors.As(err, &oe) || !errors.Is(err, provider.ErrUnreachable) {
		t.Fatalf("err = %v after %d attempts, want an *OutageError", err, bad.Load())
	}
	if n := bad.Load(); n >= 5000 {
		t.Fatalf("retried %d times", n)
	}
}
