package pipeline

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// chatCache keeps every paid chat response on disk, keyed by the full request
// and the provider's identity, so an interrupted evaluation resumes without
// paying again, and a changed judge prompt re-judges without regenerating.
type chatCache struct {
	dir   string
	scope string // provider identity: kind and endpoint, never the key
}

func (c *chatCache) path(req provider.ChatRequest) string {
	b, _ := json.Marshal(struct {
		Scope string
		Req   provider.ChatRequest
	}{c.scope, req})
	h := build.Hash(b)
	return filepath.Join(c.dir, h[:2], h+".json")
}

func (c *chatCache) get(req provider.ChatRequest) (provider.ChatResponse, bool) {
	var resp provider.ChatResponse
	b, err := os.ReadFile(c.path(req))
	if err != nil || json.Unmarshal(b, &resp) != nil {
		return resp, false
	}
	return resp, true
}

func (c *chatCache) put(req provider.ChatRequest, resp provider.ChatResponse) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return errors.New("cache chat response: " + err.Error())
	}
	return atomicfile.Write(c.path(req), b, 0o644)
}
