package tokenizer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestFetchDownloadsOnceThenServesTheCache(t *testing.T) {
	body := synthetic(t, []string{"a+b"}, nil, nil)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Path != "/Qwen/Qwen3-8B/resolve/main/tokenizer.json" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	ctx := context.Background()
	path, err := Fetch(ctx, srv.Client(), srv.URL, "Qwen/Qwen3-8B", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "Qwen", "Qwen3-8B", "tokenizer.json"); path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	again, err := Fetch(ctx, srv.Client(), srv.URL, "Qwen/Qwen3-8B", dir)
	if err != nil || again != path {
		t.Fatalf("second Fetch: %s, %v", again, err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	tk, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if tk.SHA256() != mustParse(t, body).SHA256() {
		t.Error("cached file differs from the download")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("cache dir holds %d entries, want only tokenizer.json", len(entries))
	}
}

func TestFetchErrorsNameTheTokenizerAndCacheNothing(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/gated/"):
			http.Error(w, "Access to model gated/model is restricted.", http.StatusUnauthorized)
		case strings.HasPrefix(r.URL.Path, "/html/"):
			w.Write([]byte("<html>not json</html>"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	for id, want := range map[string]string{
		"gated/model":  "401",
		"html/model":   "malformed JSON",
		"missing/name": "404",
		"../escape":    "not a hub repository id",
		"a/b/c":        "not a hub repository id",
		"":             "not a hub repository id",
	} {
		_, err := Fetch(context.Background(), srv.Client(), srv.URL, id, dir)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"`+id+`"`) {
			t.Errorf("Fetch(%q) error %v, want one naming it and %q", id, err, want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed fetches left %d entries in the cache", len(entries))
	}
}
