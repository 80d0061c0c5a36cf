package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const purposeFineTune = "fine-tune"

// fileObject is OpenAI's file object.
type fileObject struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`
}

// fileEntry is a file uploaded through this server; seq orders files
// created in the same second.
type fileEntry struct {
	obj fileObject
	seq int
}

type fileList struct {
	Object  string       `json:"object"`
	Data    []fileObject `json:"data"`
	FirstID *string      `json:"first_id"`
	LastID  *string      `json:"last_id"`
	HasMore bool         `json:"has_more"`
}

func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return badRequest("", "Expected a multipart/form-data body with the fields 'file' and 'purpose': %v.", err)
	}
	var purpose, name string
	var data []byte
	gotFile := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return uploadReadError(err)
		}
		switch part.FormName() {
		case "purpose":
			b, err := io.ReadAll(io.LimitReader(part, 1024))
			if err != nil {
				return uploadReadError(err)
			}
			purpose = strings.TrimSpace(string(b))
		case "file":
			name = part.FileName()
			if data, err = io.ReadAll(part); err != nil {
				return uploadReadError(err)
			}
			gotFile = true
		default:
			io.Copy(io.Discard, part) // expires_after and future fields
		}
	}
	switch {
	case !gotFile:
		return badRequest("file", "Missing required parameter: 'file'.")
	case purpose == "":
		return badRequest("purpose", "Missing required parameter: 'purpose'.")
	case purpose != purposeFineTune:
		return badRequest("purpose", "This server stores training files only: purpose must be 'fine-tune', not '%s'.", purpose)
	case !strings.HasSuffix(name, ".jsonl"):
		return badRequest("file", "Invalid file format for Fine-Tuning API. Must be .jsonl")
	case len(data) == 0:
		return badRequest("file", "File is empty.")
	}
	f, err := s.p.UploadFile(r.Context(), name, data)
	if err != nil {
		return err
	}
	s.count.fileUploads.Add(1)
	writeJSON(w, http.StatusOK, s.registerFile(f.ID, name, f.Bytes))
	return nil
}

func uploadReadError(err error) error {
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", param: "file",
			msg: fmt.Sprintf("File larger than the %d MB allowed.", maxUploadBytes>>20)}
	}
	return badRequest("", "Could not read the multipart body: %v.", err)
}

// registerFile remembers an upload. The provider returns the first file
// with the same bytes rather than a new one, and so does the server: the
// name and time of the first upload stay.
func (s *Server) registerFile(id, name string, size int64) fileObject {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.files[id]; ok {
		return e.obj
	}
	s.nfiles++
	e := &fileEntry{seq: s.nfiles, obj: fileObject{
		ID: id, Object: "file", Bytes: size, CreatedAt: time.Now().Unix(),
		Filename: name, Purpose: purposeFineTune, Status: "processed",
	}}
	s.files[id] = e
	return e.obj
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := limitParam(q.Get("limit"), 10000, 10000)
	if err != nil {
		return err
	}
	order := q.Get("order")
	if order == "" {
		order = "desc"
	}
	if order != "asc" && order != "desc" {
		return badRequest("order", "Invalid value for 'order': expected 'asc' or 'desc', got '%s'.", order)
	}
	purpose := q.Get("purpose")

	s.mu.Lock()
	entries := make([]*fileEntry, 0, len(s.files))
	for _, e := range s.files {
		if purpose == "" || e.obj.Purpose == purpose {
			entries = append(entries, e)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(entries, func(a, b *fileEntry) int { return a.seq - b.seq })
	if order == "desc" {
		slices.Reverse(entries)
	}
	if after := q.Get("after"); after != "" {
		i := slices.IndexFunc(entries, func(e *fileEntry) bool { return e.obj.ID == after })
		if i < 0 {
			return badRequest("after", "No file '%s' to list after.", after)
		}
		entries = entries[i+1:]
	}
	list := fileList{Object: "list", Data: []fileObject{}}
	if len(entries) > limit {
		entries, list.HasMore = entries[:limit], true
	}
	for _, e := range entries {
		list.Data = append(list.Data, e.obj)
	}
	if n := len(list.Data); n > 0 {
		list.FirstID, list.LastID = &list.Data[0].ID, &list.Data[n-1].ID
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	s.mu.Lock()
	e, ok := s.files[id]
	s.mu.Unlock()
	if !ok {
		return notFound("id", "", "No such File object: %s", id)
	}
	writeJSON(w, http.StatusOK, e.obj)
	return nil
}

// limitParam parses a page size: absent means def, and values are bounded
// by [1, max] as OpenAI bounds them.
func limitParam(v string, def, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, badRequest("limit", "Invalid value for 'limit': expected an integer between 1 and %d, got '%s'.", max, v)
	}
	return n, nil
}
