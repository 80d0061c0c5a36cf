// Package build decides what is fresh. A target's key is the hash of
// everything that determines its outputs: its settings, the content hashes of
// the artifacts it reads and a format version; never modification times. A
// target is fresh when its stamp holds the current key and every output it
// recorded still has the recorded content hash, so artifacts/ restored from a
// CI cache (with new mtimes) is as fresh as the run that made it.
package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
)

// Input is one named thing a target depends on. Values are short strings:
// settings as written, or content hashes of what the target reads.
type Input struct {
	Name, Value string
}

// Inputs is the ordered list of a target's inputs.
type Inputs []Input

// Add appends an input; values of any printable type are formatted with %v.
func (in *Inputs) Add(name string, value any) {
	*in = append(*in, Input{name, fmt.Sprint(value)})
}

// Key is the hash of the inputs, independent of their order.
func (in Inputs) Key() string {
	sorted := append(Inputs(nil), in...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	h := sha256.New()
	for _, x := range sorted {
		fmt.Fprintf(h, "%d:%s%d:%s", len(x.Name), x.Name, len(x.Value), x.Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Hash is the hex SHA-256 of data.
func Hash(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// Stamp records how a target was built.
type Stamp struct {
	Target  string
	Key     string
	Inputs  Inputs
	Outputs map[string]string // path relative to the store root -> sha256
}

// Store is a directory of artifacts and the stamps that vouch for them.
type Store struct {
	Root string
}

func (s *Store) stampPath(target string) string {
	return filepath.Join(s.Root, ".stamps", filepath.FromSlash(target)+".stamp")
}

// Path is the absolute path of an artifact given relative to the root.
func (s *Store) Path(rel string) string { return filepath.Join(s.Root, filepath.FromSlash(rel)) }

// Stamp reads a target's stamp; it returns nil, nil when there is none.
func (s *Store) Stamp(target string) (*Stamp, error) {
	b, err := os.ReadFile(s.stampPath(target))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stamp of %s: %w", target, err)
	}
	st, ok := parseStamp(b)
	if !ok {
		// A damaged stamp only means the target must be rebuilt.
		return nil, nil
	}
	st.Target = target
	return st, nil
}

// A stamp is a few lines of text, quick to read for thousands of targets and
// plain to a person:
//
//	key <hex>
//	output <path> <sha256>
//	input <name> <quoted value>
func (st *Stamp) marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "key %s\n", st.Key)
	names := make([]string, 0, len(st.Outputs))
	for name := range st.Outputs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "output %s %s\n", strconv.Quote(name), st.Outputs[name])
	}
	for _, in := range st.Inputs {
		fmt.Fprintf(&b, "input %s %s\n", strconv.Quote(in.Name), strconv.Quote(in.Value))
	}
	return b.Bytes()
}

func parseStamp(b []byte) (*Stamp, bool) {
	st := &Stamp{Outputs: map[string]string{}}
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte("\n"))
		b = rest
		kind, body, _ := strings.Cut(string(line), " ")
		switch kind {
		case "key":
			st.Key = body
		case "output":
			name, hash, ok := cutQuoted(body)
			if !ok {
				return nil, false
			}
			st.Outputs[name] = strings.TrimSpace(hash)
		case "input":
			name, rest, ok := cutQuoted(body)
			if !ok {
				return nil, false
			}
			value, err := strconv.Unquote(strings.TrimSpace(rest))
			if err != nil {
				return nil, false
			}
			st.Inputs = append(st.Inputs, Input{name, value})
		case "":
		default:
			return nil, false
		}
	}
	return st, st.Key != ""
}

// cutQuoted splits a leading Go-quoted string from the rest of s.
func cutQuoted(s string) (string, string, bool) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", false
	}
	v, _ := strconv.Unquote(q)
	return v, s[len(q):], true
}

// Status says whether a target is fresh and, when it is not, why.
type Status struct {
	Fresh  bool
	Reason string
	Stamp  *Stamp // the stamp on disk, if any
}

// Check compares a target's stamp and outputs with its current inputs.
func (s *Store) Check(target string, inputs Inputs) (Status, error) {
	st, err := s.Stamp(target)
	if err != nil {
		return Status{}, err
	}
	if st == nil {
		return Status{Reason: "never built"}, nil
	}
	if st.Key != inputs.Key() {
		return Status{Reason: Diff(st.Inputs, inputs), Stamp: st}, nil
	}
	names := make([]string, 0, len(st.Outputs))
	for name := range st.Outputs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		got, err := hashFile(s.Path(name))
		if errors.Is(err, fs.ErrNotExist) {
			return Status{Reason: "output " + name + " is missing", Stamp: st}, nil
		}
		if err != nil {
			return Status{}, fmt.Errorf("check %s: %w", name, err)
		}
		if got != st.Outputs[name] {
			return Status{Reason: "output " + name + " was modified", Stamp: st}, nil
		}
	}
	return Status{Fresh: true, Stamp: st}, nil
}

// Commit writes a target's outputs, then its stamp. Each write is atomic and
// the stamp comes last, so a crash in between leaves the target stale, never
// falsely fresh. Outputs the target's previous build made and this one does
// not (a log named by its time, say) are removed: a target owns its outputs.
func (s *Store) Commit(target string, inputs Inputs, outputs map[string][]byte) (*Stamp, error) {
	old, _ := s.Stamp(target)
	st := &Stamp{Target: target, Key: inputs.Key(), Inputs: inputs, Outputs: map[string]string{}}
	names := make([]string, 0, len(outputs))
	for name := range outputs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		data := outputs[name]
		if err := atomicfile.Write(s.Path(name), data, 0o644); err != nil {
			return nil, err
		}
		st.Outputs[name] = Hash(data)
	}
	if err := atomicfile.Write(s.stampPath(target), st.marshal(), 0o644); err != nil {
		return nil, err
	}
	if old != nil {
		for name := range old.Outputs {
			if _, kept := st.Outputs[name]; !kept {
				os.Remove(s.Path(name))
			}
		}
	}
	return st, nil
}

// Diff names the inputs that changed between a stamp and now.
func Diff(old, now Inputs) string {
	was := map[string]string{}
	for _, in := range old {
		was[in.Name] = in.Value
	}
	var changes []string
	for _, in := range now {
		prev, ok := was[in.Name]
		switch {
		case !ok:
			changes = append(changes, in.Name+" is new")
		case prev != in.Value:
			changes = append(changes, fmt.Sprintf("%s changed (%s -> %s)", in.Name, short(prev), short(in.Value)))
		}
		delete(was, in.Name)
	}
	gone := make([]string, 0, len(was))
	for name := range was {
		gone = append(gone, name+" was removed")
	}
	sort.Strings(gone)
	changes = append(changes, gone...)
	if len(changes) == 0 {
		return "inputs changed"
	}
	return strings.Join(changes, ", ")
}

// short keeps hashes readable in reasons.
func short(v string) string {
	if len(v) == 64 && isHex(v) {
		return v[:12]
	}
	if v == "" {
		return `""`
	}
	if len(v) > 60 {
		return v[:57] + "..."
	}
	return v
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

var copyBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := copyBuffers.Get().(*[32 << 10]byte)
	defer copyBuffers.Put(buf)
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
