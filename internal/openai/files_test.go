package openai

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
)

// fileServer speaks /v1/files: multipart upload and paged listing, newest
// first, two per page so that paging is exercised.
type fileServer struct {
	mu      sync.Mutex
	files   []map[string]any // oldest first
	posts   int
	content map[string][]byte
	queries []string
}

func (s *fileServer) add(filename string, size int, purpose string) {
	id := fmt.Sprintf("file-%03d", len(s.files)+1)
	s.files = append(s.files, map[string]any{
		"object": "file", "id": id, "bytes": size, "created_at": 1764000000 + len(s.files),
		"filename": filename, "purpose": purpose, "status": "processed", "expires_at": nil,
	})
}

func (s *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/files":
		s.queries = append(s.queries, r.URL.RawQuery)
		q := r.URL.Query()
		var list []map[string]any
		for i := len(s.files) - 1; i >= 0; i-- {
			if p := q.Get("purpose"); p == "" || s.files[i]["purpose"] == p {
				list = append(list, s.files[i])
			}
		}
		if after := q.Get("after"); after != "" {
			for i, f := range list {
				if f["id"] == after {
					list = list[i+1:]
					break
				}
			}
		}
		more := len(list) > 2
		if more {
			list = list[:2]
		}
		writeJSON(w, 200, map[string]any{"object": "list", "data": list, "has_more": more})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/files":
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			writeJSON(w, 400, apiErrorBody(err.Error(), "invalid_request_error", "", nil))
			return
		}
		f, hdr, err := r.FormFile("file")
		if err != nil {
			writeJSON(w, 400, apiErrorBody("missing file", "invalid_request_error", "", "file"))
			return
		}
		data, _ := io.ReadAll(f)
		s.posts++
		s.add(hdr.Filename, len(data), r.FormValue("purpose"))
		obj := s.files[len(s.files)-1]
		s.content[obj["id"].(string)] = data
		writeJSON(w, 200, obj)
	default:
		writeJSON(w, 404, apiErrorBody("unknown route "+r.Method+" "+r.URL.Path, "invalid_request_error", "", nil))
	}
}

func sha16(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16]
}

func TestUploadFileDedup(t *testing.T) {
	srv := &fileServer{content: map[string][]byte{}}
	data1 := []byte(`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}` + "\n")
	data2 := []byte(`{"messages":[{"role":"user","content":"bye"},{"role":"assistant","content":"ciao"}]}` + "\n")
	data3 := []byte(`{"messages":[]}` + "\n")
	// Unrelated files, a same-named file of another purpose, and a file
	// with data3's name but another size (so not data3).
	for i := range 5 {
		srv.add("other-"+strconv.Itoa(i)+".jsonl", 100+i, "fine-tune")
	}
	srv.add("pvbuild-"+sha16(data2)+".jsonl", len(data2), "batch")
	srv.add("pvbuild-"+sha16(data3)+".jsonl", 1, "fine-tune")

	first := newTestClient(t, srv)
	rerun := newTestClient(t, srv) // a later process: nothing cached

	var data1ID string
	steps := []struct {
		name     string
		client   *Client
		data     []byte
		newer    int // unrelated uploads by others before this step
		wantPost bool
	}{
		{"first upload posts", first, data1, 0, true},
		{"same client, same bytes: cached", first, data1, 0, false},
		{"new client, same bytes: found on a later page", rerun, data1, 3, false},
		{"different bytes post", rerun, data2, 0, true},
		{"same name, different size: posts", rerun, data3, 0, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			srv.mu.Lock()
			for i := range st.newer {
				srv.add("newer-"+strconv.Itoa(i)+".jsonl", 10, "fine-tune")
			}
			before := srv.posts
			srv.mu.Unlock()
			f, err := st.client.UploadFile(context.Background(), "train.jsonl", st.data)
			if err != nil {
				t.Fatal(err)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if posted := srv.posts > before; posted != st.wantPost {
				t.Fatalf("posted = %v, want %v", posted, st.wantPost)
			}
			wantName := "pvbuild-" + sha16(st.data) + ".jsonl"
			if f.Name != wantName || f.Bytes != int64(len(st.data)) || f.ID == "" {
				t.Fatalf("file = %+v, want name %s, %d bytes", f, wantName, len(st.data))
			}
			if st.wantPost && string(srv.content[f.ID]) != string(st.data) {
				t.Fatalf("server received %q, want %q", srv.content[f.ID], st.data)
			}
			if string(st.data) == string(data1) {
				if data1ID == "" {
					data1ID = f.ID
				} else if f.ID != data1ID {
					t.Fatalf("got file %s, want the earlier upload %s", f.ID, data1ID)
				}
			}
		})
	}
	paged := false
	for _, raw := range srv.queries {
		q, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		if q.Get("purpose") != "fine-tune" {
			t.Errorf("listing query %q does not ask for purpose fine-tune", raw)
		}
		paged = paged || q.Get("after") != ""
	}
	if !paged {
		t.Error("listing never asked for a second page")
	}
}

func TestUploadFileConcurrentSameBytes(t *testing.T) {
	srv := &fileServer{content: map[string][]byte{}}
	c := newTestClient(t, srv)
	data := []byte(`{"messages":[{"role":"user","content":"same"}]}` + "\n")
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Go(func() {
			f, err := c.UploadFile(context.Background(), "train.jsonl", data)
			ids[i], errs[i] = f.ID, err
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("uploads returned %v, want one id", ids)
		}
	}
	if srv.posts != 1 {
		t.Fatalf("%d uploads for the same bytes, want 1", srv.posts)
	}
}

func TestUploadFileEmpty(t *testing.T) {
	srv := &fileServer{content: map[string][]byte{}}
	c := newTestClient(t, srv)
	if _, err := c.UploadFile(context.Background(), "empty.jsonl", nil); err == nil {
		t.Fatal("empty upload accepted")
	}
	if len(srv.queries) != 0 || srv.posts != 0 {
		t.Fatal("empty upload reached the server")
	}
}
