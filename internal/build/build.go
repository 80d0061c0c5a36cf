// Package build decides what is fresh. A target's key is the hash of
// everything that determines its outputs: its settings, the content hashes of
// the artifacts it reads and a format version; never modification times. A
// target is fresh when its stamp holds the current key and every output it
// recorded still has the recorded content hash, so artifacts/ restored from a
// CI cache (with new mtimes) is as fresh as the run that made it.
//
// Cache is the contract, in the spirit of Go's own build cache (action key
// -> outputs); Store is its implementation over a local directory. A stamp
// names its outputs by content hash, so a shared remote cache can be added
// behind the same interface later: stamps by key, blobs by hash.
package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	*in = append(*in, Input{name, formatValue(value)})
}

// formatValue is fmt.Sprint(v), without fmt for the kinds keys hold: a
// no-op plan formats hundreds of thousands of them.
func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// Key is the hash of the inputs, independent of their order: each input
// length-prefixed ("<len>:<name><len>:<value>"), in name order.
func (in Inputs) Key() string {
	size := 0
	for _, x := range in {
		size += len(x.Name) + len(x.Value) + 8
	}
	bp := keyBuffers.Get().(*[]byte)
	b := slices.Grow((*bp)[:0], size)
	if len(in) <= 64 {
		// Most targets have a few dozen inputs: sort their positions on
		// the stack, stably, and leave the caller's order alone.
		var order [64]uint8
		for i := range in {
			j := i
			for ; j > 0 && in[order[j-1]].Name > in[i].Name; j-- {
				order[j] = order[j-1]
			}
			order[j] = uint8(i)
		}
		for _, i := range order[:len(in)] {
			b = appendInput(b, in[i])
		}
	} else {
		sorted := in
		if !slices.IsSortedFunc(in, compareInputs) {
			sorted = slices.Clone(in)
			slices.SortStableFunc(sorted, compareInputs)
		}
		for _, x := range sorted {
			b = appendInput(b, x)
		}
	}
	sum := sha256.Sum256(b)
	if cap(b) <= 8<<20 {
		*bp = b
		keyBuffers.Put(bp)
	}
	return hex.EncodeToString(sum[:])
}

func compareInputs(a, b Input) int { return strings.Compare(a.Name, b.Name) }

func appendInput(b []byte, x Input) []byte {
	b = strconv.AppendInt(b, int64(len(x.Name)), 10)
	b = append(b, ':')
	b = append(b, x.Name...)
	b = strconv.AppendInt(b, int64(len(x.Value)), 10)
	b = append(b, ':')
	return append(b, x.Value...)
}

// Hash is the hex SHA-256 of data.
func Hash(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// Cache records what each target built and vouches for it.
type Cache interface {
	// Check compares a target's stamp and recorded files with its inputs.
	Check(target string, inputs Inputs) (Status, error)
	// Read returns an output recorded in st, checked against its hash: a
	// file changed since it was built is an error, never read as if fresh.
	Read(st *Stamp, output string) ([]byte, error)
	// Commit writes a target's outputs, records files it depends on that
	// someone else wrote (a provider's state), then writes its stamp.
	Commit(target string, inputs Inputs, outputs map[string][]byte, files []string) (*Stamp, error)
	// Invalidate marks a built target stale, saying why, until it is rebuilt.
	Invalidate(target, reason string) error
	// Targets lists the stamped targets whose names start with prefix.
	Targets(prefix string) ([]string, error)
	// Remove removes a target's stamp and the outputs it recorded that
	// still have their recorded hashes; any other file stays. removed
	// counts the outputs removed.
	Remove(target string) (removed int, err error)
	// Lock takes the cache for a run that writes.
	Lock() (*Lock, error)
	// Flush saves what the cache learnt about its files, so that the next
	// run need not read them again; losing it costs only that.
	Flush() error
}

// Stamp records how a target was built.
type Stamp struct {
	Target  string
	Key     string
	Inputs  Inputs
	Outputs map[string]string // path relative to the store root -> sha256
	// Files are recorded like outputs but owned by someone else: checked,
	// never removed.
	Files map[string]string
	// Stale is why the target was invalidated after it was built; "" if not.
	Stale string

	damaged bool // truncated, edited or unreadable: vouches for nothing
}

// Store is a directory of artifacts and the stamps that vouch for them,
// with an index of what it has read (see index.go); Flush saves the index.
type Store struct {
	Root string

	idxOnce sync.Once
	idx     *index

	// Clock is what the index judges by whether a file has settled (see
	// index.go); nil is the wall clock. Tests move it on, as the next run
	// would be, instead of waiting.
	Clock func() time.Time

	reads atomic.Int64 // files read to check freshness (tests count them)
}

func (s *Store) now() int64 {
	if s.Clock != nil {
		return s.Clock().UnixNano()
	}
	return time.Now().UnixNano()
}

var _ Cache = (*Store)(nil)

func (s *Store) stampPath(target string) string {
	return filepath.Join(s.Root, ".stamps", filepath.FromSlash(target)+".stamp")
}

// Path is the absolute path of an artifact given relative to the root.
func (s *Store) Path(rel string) string { return filepath.Join(s.Root, filepath.FromSlash(rel)) }

// Stamp reads a target's stamp; it returns nil, nil when there is none.
func (s *Store) Stamp(target string) (*Stamp, error) {
	st, _, _, err := s.readStamp(target)
	return st, err
}

// readStamp reads a stamp file with its fingerprint, stable says that the
// file did not change while it was read, and at is when reading began.
func (s *Store) readStamp(target string) (st *Stamp, fp fingerprint, at int64, err error) {
	at = s.now()
	b, fp, stable, err := readFingerprinted(s.stampPath(target))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fp, at, nil
	}
	if err != nil {
		return nil, fp, at, fmt.Errorf("read stamp of %s: %w", target, err)
	}
	if !stable {
		fp.known = false
	}
	st, ok := parseStamp(b)
	if !ok {
		// A damaged stamp only means the target must be rebuilt.
		return &Stamp{Target: target, damaged: true}, fp, at, nil
	}
	st.Target = target
	return st, fp, at, nil
}

// readFingerprinted reads a file and its fingerprint; stable is false when
// the fingerprint changed while the file was read.
func readFingerprinted(path string) ([]byte, fingerprint, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fingerprint{}, false, err
	}
	defer f.Close()
	before, err := fileFingerprint(f)
	if err != nil {
		return nil, before, false, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, before, false, err
	}
	after, err := fileFingerprint(f)
	return b, before, err == nil && after == before, err
}

// A stamp is a few lines of text, quick to read for thousands of targets and
// plain to a person, ending in the hash of the lines before it, so that a
// truncated or hand-edited stamp reads as damaged, never as fresh:
//
//	key <hex>
//	output <path> <sha256>
//	file <path> <sha256>
//	input <name> <quoted value>
//	stale <quoted reason>
//	sum <sha256 of the lines above>
func (st *Stamp) marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "key %s\n", st.Key)
	for _, kind := range []struct {
		word  string
		files map[string]string
	}{{"output", st.Outputs}, {"file", st.Files}} {
		for _, name := range slices.Sorted(maps.Keys(kind.files)) {
			fmt.Fprintf(&b, "%s %s %s\n", kind.word, strconv.Quote(name), kind.files[name])
		}
	}
	for _, in := range st.Inputs {
		fmt.Fprintf(&b, "input %s %s\n", strconv.Quote(in.Name), strconv.Quote(in.Value))
	}
	if st.Stale != "" {
		fmt.Fprintf(&b, "stale %s\n", strconv.Quote(st.Stale))
	}
	fmt.Fprintf(&b, "sum %s\n", Hash(b.Bytes()))
	return b.Bytes()
}

func parseStamp(b []byte) (*Stamp, bool) {
	body, sum, ok := cutSum(b)
	if !ok || Hash(body) != sum {
		return nil, false
	}
	b = body
	st := &Stamp{Outputs: map[string]string{}, Files: map[string]string{}}
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte("\n"))
		b = rest
		kind, body, _ := strings.Cut(string(line), " ")
		switch kind {
		case "key":
			st.Key = body
		case "output", "file":
			name, hash, ok := cutQuoted(body)
			if !ok || !inStore(name) {
				return nil, false
			}
			if kind == "output" {
				st.Outputs[name] = strings.TrimSpace(hash)
			} else {
				st.Files[name] = strings.TrimSpace(hash)
			}
		case "stale":
			reason, err := strconv.Unquote(body)
			if err != nil {
				return nil, false
			}
			st.Stale = reason
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
	// A stamp that names no output vouches for nothing.
	return st, st.Key != "" && len(st.Outputs) > 0
}

// inStore reports whether a stamp's path names a file under the store. The
// sum line only detects damage, so a stamp can be forged; one naming a file
// outside (../paper.tex, an absolute path) must never make the build trust,
// read or remove that file.
func inStore(name string) bool {
	return name != "" && path.Clean(name) == name && filepath.IsLocal(filepath.FromSlash(name))
}

// cutSum splits the final "sum <hex>" line from the lines it covers.
func cutSum(b []byte) (body []byte, sum string, ok bool) { return cutTrailer(b, "sum ") }

// cutTrailer splits a final "<word> <value>" line from the lines it covers.
func cutTrailer(b []byte, word string) (body []byte, value string, ok bool) {
	trimmed := bytes.TrimSuffix(b, []byte("\n"))
	i := bytes.LastIndexByte(trimmed, '\n')
	last := trimmed[i+1:]
	rest, found := bytes.CutPrefix(last, []byte(word))
	if !found || len(trimmed) == len(b) {
		return nil, "", false
	}
	return b[:i+1], string(rest), true
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
// The index answers for the files whose fingerprints it knows.
func (s *Store) Check(target string, inputs Inputs) (Status, error) {
	key := inputs.Key()
	st, err := s.checkedStamp(target, key, inputs)
	if err != nil {
		return Status{}, err
	}
	switch {
	case st == nil:
		return Status{Reason: "never built"}, nil
	case st.damaged:
		return Status{Reason: "its stamp is damaged"}, nil
	case st.Key != key:
		return Status{Reason: Diff(st.Inputs, inputs), Stamp: st}, nil
	case st.Stale != "":
		return Status{Reason: st.Stale, Stamp: st}, nil
	}
	for _, kind := range []struct {
		what  string
		files map[string]string
	}{{"output", st.Outputs}, {"provider state", st.Files}} {
		var one [1]string
		names := one[:0]
		for name := range kind.files {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			got, err := s.fileHash(name)
			if errors.Is(err, fs.ErrNotExist) {
				return Status{Reason: kind.what + " " + name + " is missing", Stamp: st}, nil
			}
			if err != nil {
				return Status{}, fmt.Errorf("check %s: %w", name, err)
			}
			if got != kind.files[name] {
				return Status{Reason: kind.what + " " + name + " was modified", Stamp: st}, nil
			}
		}
	}
	return Status{Fresh: true, Stamp: st}, nil
}

// checkedStamp is the target's stamp, from the index when the stamp file
// has the fingerprint the index knows and the key it holds is key: such a
// stamp's inputs are the caller's, whose key it is.
func (s *Store) checkedStamp(target, key string, inputs Inputs) (*Stamp, error) {
	x := s.index()
	fp, err := statFingerprint(s.stampPath(target))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err == nil {
		if f, ok := x.stamp(target, fp); ok && f.key == key {
			return &Stamp{Target: target, Key: key, Inputs: inputs, Outputs: f.outputs, Files: f.files}, nil
		}
	}
	s.reads.Add(1)
	st, fp, at, err := s.readStamp(target)
	if err != nil || st == nil {
		return st, err
	}
	x.learnStamp(st, fp, at)
	return st, nil
}

// fileHash is the SHA-256 of the file at rel: the index's, when the file
// has the fingerprint it knows; else hashed, and learnt.
func (s *Store) fileHash(rel string) (string, error) {
	x := s.index()
	path := s.Path(rel)
	fp, err := statFingerprint(path)
	if err != nil {
		return "", err
	}
	if h, ok := x.file(rel, fp); ok {
		return h, nil
	}
	s.reads.Add(1)
	at := s.now()
	h, fp, stable, err := hashFingerprinted(path)
	if err != nil {
		return "", err
	}
	if stable {
		x.learnFile(rel, fp, h, at)
	}
	return h, nil
}

// Read implements Cache.
func (s *Store) Read(st *Stamp, output string) ([]byte, error) {
	want, ok := st.Outputs[output]
	if !ok {
		return nil, fmt.Errorf("read %s: target %s recorded no such output", output, st.Target)
	}
	b, err := os.ReadFile(s.Path(output))
	if err != nil {
		return nil, fmt.Errorf("read output of %s: %w", st.Target, err)
	}
	if Hash(b) != want {
		return nil, fmt.Errorf("read %s: it was modified after %s built it; run the build again", output, st.Target)
	}
	return b, nil
}

// Invalidate implements Cache. The stamp keeps its inputs, so that the
// next plan still says what changed, and the reason until a rebuild.
func (s *Store) Invalidate(target, reason string) error {
	st, err := s.Stamp(target)
	if err != nil || st == nil || st.damaged {
		return err
	}
	st.Stale = reason
	s.index().forgetStamp(target)
	if err := atomicfile.WriteCache(s.stampPath(target), st.marshal(), 0o644); err != nil {
		return fmt.Errorf("invalidate %s: %w", target, err)
	}
	return nil
}

// Targets implements Cache, in name order.
func (s *Store) Targets(prefix string) ([]string, error) {
	root := filepath.Join(s.Root, ".stamps")
	// Walk only the directory the prefix names, not every stamp.
	dir := root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir = filepath.Join(root, filepath.FromSlash(prefix[:i]))
	}
	var targets []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".stamp") {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if target := strings.TrimSuffix(filepath.ToSlash(rel), ".stamp"); strings.HasPrefix(target, prefix) {
			targets = append(targets, target)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list stamps: %w", err)
	}
	sort.Strings(targets)
	return targets, nil
}

// Remove implements Cache. An output that is gone or was changed after
// the build wrote it is left as it is; a damaged stamp vouches for no
// output, so only the stamp goes.
func (s *Store) Remove(target string) (int, error) {
	st, err := s.Stamp(target)
	if err != nil || st == nil {
		return 0, err
	}
	removed := 0
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(st.Outputs)) {
		if !s.matches(name, st.Outputs[name]) {
			continue
		}
		if err := os.Remove(s.Path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := os.Remove(s.stampPath(target)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("remove %s: %w", target, err)
	}
	return removed, nil
}

// matches reports whether the file at rel still has the hash a stamp
// recorded for it.
func (s *Store) matches(rel, hash string) bool {
	got, err := hashFile(s.Path(rel))
	return err == nil && got == hash
}

// Commit writes a target's outputs, then its stamp. Each write is atomic and
// the stamp comes last, so a crash in between leaves the target stale, never
// falsely fresh. Outputs the target's previous build made and this one does
// not (a log named by its time, say) are removed: a target owns its outputs.
// files (relative to the root) are hashed as they are and never removed.
//
// Writes are atomic but not synced: a stamp vouches for its outputs by
// their hashes, so what a power loss tears or loses reads as stale, never as
// fresh, and is rebuilt. What must survive a crash, records of paid work,
// its owners write durably.
func (s *Store) Commit(target string, inputs Inputs, outputs map[string][]byte, files []string) (*Stamp, error) {
	if len(outputs) == 0 {
		return nil, fmt.Errorf("commit %s: a target must have an output", target)
	}
	old, _ := s.Stamp(target)
	st := &Stamp{Target: target, Key: inputs.Key(), Inputs: inputs, Outputs: map[string]string{}, Files: map[string]string{}}
	for _, name := range files {
		h, err := hashFile(s.Path(name))
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", target, err)
		}
		st.Files[name] = h
	}
	x := s.index()
	for _, name := range slices.Sorted(maps.Keys(outputs)) {
		data := outputs[name]
		if err := atomicfile.WriteCache(s.Path(name), data, 0o644); err != nil {
			return nil, err
		}
		st.Outputs[name] = Hash(data)
		// Learnt now, trusted from the next run once the file has settled
		// (see index.go); stat after the rename, which changes ctime.
		if fp, err := statFingerprint(s.Path(name)); err == nil {
			x.learnFile(name, fp, st.Outputs[name], s.now())
		}
	}
	if err := atomicfile.WriteCache(s.stampPath(target), st.marshal(), 0o644); err != nil {
		return nil, err
	}
	if fp, err := statFingerprint(s.stampPath(target)); err == nil {
		x.learnStamp(st, fp, s.now())
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
	h, _, _, err := hashFingerprinted(path)
	return h, err
}

// hashFingerprinted hashes a file and reads its fingerprint; stable is
// false when the fingerprint changed while the file was read.
func hashFingerprinted(path string) (string, fingerprint, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fingerprint{}, false, err
	}
	defer f.Close()
	before, err := fileFingerprint(f)
	if err != nil {
		return "", before, false, err
	}
	h := sha256.New()
	buf := copyBuffers.Get().(*[32 << 10]byte)
	defer copyBuffers.Put(buf)
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf[:]); err != nil {
		return "", before, false, err
	}
	after, err := fileFingerprint(f)
	return hex.EncodeToString(h.Sum(nil)), before, err == nil && after == before, err
}
