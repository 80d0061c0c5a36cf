package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// chatCache keeps every paid chat response, keyed by the full request and
// the provider's identity, so an interrupted evaluation resumes without
// paying again, and a changed judge prompt re-judges without regenerating.
//
// It is an append-only JSON-lines file per provider, read once when opened:
// one write per response, where a file per response cost more than the calls
// it saves. A line torn by a crash is skipped; its call is simply made again.
// Opening reads only each line's key: a response is decoded when it is
// asked for, so that a large cache does not hold up the first call.
type chatCache struct {
	scope   string // provider identity: kind and endpoint, never the key
	mu      sync.Mutex
	f       *os.File
	entries map[string]provider.ChatResponse
	lines   map[string][]byte // read at open, not yet decoded
}

type cacheLine struct {
	Key      string                `json:"key"`
	Response provider.ChatResponse `json:"response"`
}

func openChatCache(dir, scope string) (*chatCache, error) {
	path := filepath.Join(dir, build.Hash([]byte(scope))[:16]+".jsonl")
	c := &chatCache{scope: scope, entries: map[string]provider.ChatResponse{}, lines: map[string][]byte{}}
	if b, err := os.ReadFile(path); err == nil {
		for line := range bytes.Lines(b) {
			if key, ok := lineKey(line); ok {
				c.lines[key] = line // a later line for a key replaces an earlier
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("chat cache: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chat cache: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chat cache: %w", err)
	}
	// A crash may have torn the last line; start ours on a fresh one.
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		f.Write([]byte("\n"))
	}
	c.f = f
	return c, nil
}

func (c *chatCache) key(req provider.ChatRequest) string {
	b, _ := json.Marshal(struct {
		Scope string
		Req   provider.ChatRequest
	}{c.scope, req})
	return build.Hash(b)
}

func (c *chatCache) get(req provider.ChatRequest) (provider.ChatResponse, bool) {
	key := c.key(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if resp, ok := c.entries[key]; ok {
		return resp, true
	}
	line, ok := c.lines[key]
	if !ok {
		return provider.ChatResponse{}, false
	}
	delete(c.lines, key)
	var l cacheLine
	if json.Unmarshal(line, &l) != nil || l.Key != key {
		return provider.ChatResponse{}, false // torn or edited: ask again
	}
	c.entries[key] = l.Response
	return l.Response, true
}

// lineKey is the key of a cache line as put writes it,
// {"key":"<sha256>",...}, without decoding the rest.
func lineKey(line []byte) (string, bool) {
	const prefix = `{"key":"`
	rest, ok := bytes.CutPrefix(line, []byte(prefix))
	if !ok || len(rest) < 64+2 || rest[64] != '"' {
		return "", false
	}
	return string(rest[:64]), true
}

func (c *chatCache) put(req provider.ChatRequest, resp provider.ChatResponse) error {
	l := cacheLine{Key: c.key(req), Response: resp}
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("chat cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("chat cache: %w", err)
	}
	c.entries[l.Key] = resp
	delete(c.lines, l.Key)
	return nil
}

func (c *chatCache) close() error { return c.f.Close() }
