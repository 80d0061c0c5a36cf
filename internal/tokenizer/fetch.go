package tokenizer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
)

// DefaultHubURL is the Hugging Face hub, whose layout Fetch uses.
const DefaultHubURL = "https://huggingface.co"

// maxFileSize bounds a download; the largest tokenizer.json files in use are
// a few tens of MB.
const maxFileSize = 256 << 20

var repoPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Fetch returns the path of tokenizerID's tokenizer.json in cacheDir,
// downloading <baseURL>/<tokenizerID>/resolve/main/tokenizer.json first if it
// is not cached yet. A cached file is used without any request. The download
// must parse as a tokenizer before it is cached, and is written atomically,
// so the cache never holds a partial or foreign file. An empty baseURL means
// DefaultHubURL; a nil client means http.DefaultClient.
func Fetch(ctx context.Context, client *http.Client, baseURL, tokenizerID, cacheDir string) (string, error) {
	parts := strings.Split(tokenizerID, "/")
	if len(parts) > 2 {
		return "", fmt.Errorf("tokenizer %q: not a hub repository id (owner/name)", tokenizerID)
	}
	for _, p := range parts {
		if !repoPart.MatchString(p) || strings.Contains(p, "..") {
			return "", fmt.Errorf("tokenizer %q: not a hub repository id (owner/name)", tokenizerID)
		}
	}
	path := filepath.Join(append([]string{cacheDir}, append(parts, "tokenizer.json")...)...)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("tokenizer %q: %w", tokenizerID, err)
	}
	if baseURL == "" {
		baseURL = DefaultHubURL
	}
	if client == nil {
		client = http.DefaultClient
	}
	url := strings.TrimRight(baseURL, "/") + "/" + tokenizerID + "/resolve/main/tokenizer.json"
	data, err := download(ctx, client, url)
	if err != nil {
		return "", fmt.Errorf("tokenizer %q: %w", tokenizerID, err)
	}
	if _, err := Parse(data); err != nil {
		return "", fmt.Errorf("tokenizer %q: downloaded from %s: %w", tokenizerID, url, err)
	}
	if err := atomicfile.WriteCache(path, data, 0o644); err != nil {
		return "", fmt.Errorf("tokenizer %q: %w", tokenizerID, err)
	}
	return path, nil
}

func download(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", url, maxFileSize)
	}
	return data, nil
}
