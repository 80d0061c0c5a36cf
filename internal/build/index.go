package build

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
)

// The index spares a no-op build from re-reading what has not changed, the
// way git's index does: for every stamp and every output it has read, the
// file's stat fingerprint (size, modification and change times, inode)
// beside what the file held (the stamp's key and outputs, the output's
// SHA-256). A file whose fingerprint is the recorded one is not read
// again. Content stays the only thing freshness trusts: a file restored
// from a CI cache has a new inode and new times, so it is hashed once and
// the new fingerprint recorded; an edit changes the change time even when
// size and modification time are put back.
//
// Each fact is true whatever happens later ("a file with this fingerprint
// holds this"), so a stale, lost or concurrently overwritten index only
// costs re-reading, never a wrong answer. The one way a fingerprint can
// lie is an edit within the file system's timestamp granularity of the
// moment the fact was learnt: git's "racily clean" case. A fact is trusted
// only when the file's times are older than that moment by more than the
// granularity, and the index does not keep a fact whose file changed too
// close to the moment the index is written.

// fingerprint is what stat tells of a file. known is false where the
// platform gives none, or for what is not a regular file: never trusted.
type fingerprint struct {
	size, mtime, ctime int64
	ino                uint64
	known              bool
}

// racyMargin is how much older than the moment a fact was learnt a file's
// times must be for the fact to be trusted. Timestamps with nanoseconds
// come from a clock that ticks every few milliseconds; whole seconds mean
// a file system that keeps seconds (or two, for FAT).
func (f fingerprint) racyMargin() int64 {
	if f.mtime%1e9 == 0 || f.ctime%1e9 == 0 {
		return int64(2 * time.Second)
	}
	return int64(50 * time.Millisecond)
}

// settles is the instant (unix ns) after which no edit could leave the
// file with this fingerprint: a fact learnt later than that is trusted.
func (f fingerprint) settles() int64 { return max(f.mtime, f.ctime) + f.racyMargin() }

// fpText is a fingerprint as the index writes it, 64 hex digits: size,
// mtime, ctime and inode, 8 bytes each. Facts compare fingerprints in this
// form, so that loading the index decodes none of them.
type fpText [64]byte

func (f fingerprint) text() fpText {
	var raw [32]byte
	binary.BigEndian.PutUint64(raw[0:], uint64(f.size))
	binary.BigEndian.PutUint64(raw[8:], uint64(f.mtime))
	binary.BigEndian.PutUint64(raw[16:], uint64(f.ctime))
	binary.BigEndian.PutUint64(raw[24:], f.ino)
	var t fpText
	hex.Encode(t[:], raw[:])
	return t
}

// fileFact is what a file held when it had fingerprint fp.
type fileFact struct {
	fp   string // fpText
	hash string
	// trusted: learnt after the file had settled, or read from the index,
	// which keeps only such facts; settles is when an untrusted one will
	// have (see fingerprint.settles).
	trusted bool
	settles int64
}

// stampFact is a stamp's content as freshness needs it: its key and what
// it recorded. Stale or damaged stamps are never indexed: they are read
// from their files, which say why.
type stampFact struct {
	fp             string // fpText
	key            string
	outputs, files map[string]string
	trusted        bool
	settles        int64
}

type index struct {
	// The facts read from disk never change after loading: a no-op check,
	// tens of thousands of lookups on all cores, reads them without a lock.
	diskFiles  map[string]fileFact  // by path relative to the store root
	diskStamps map[string]stampFact // by target

	// What this process learnt, which overrides the disk's, under mu; a
	// stampFact without a fingerprint forgets the disk's.
	mu      sync.Mutex
	learnt  atomic.Bool
	files   map[string]fileFact
	stamps  map[string]stampFact
	changed bool // holds a fact the file on disk lacks
	// youngest is the newest change time (unix ns) of a file whose fact
	// was learnt in this process: a file changed lately may not be on
	// disk yet, and the index must not outlive it.
	youngest int64
}

// dirtyWindow bounds how long after a change a file's bytes may wait in
// memory before the kernel writes them back (30 s by default on Linux).
const dirtyWindow = 2 * time.Minute

const indexHeader = "pvbuild freshness index 2"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (s *Store) indexPath() string { return filepath.Join(s.Root, ".stamps", "index") }

// index loads the store's index once; a missing or damaged one is empty.
func (s *Store) index() *index {
	s.idxOnce.Do(func() {
		s.idx = &index{files: map[string]fileFact{}, stamps: map[string]stampFact{}}
		s.idx.diskFiles, s.idx.diskStamps = map[string]fileFact{}, map[string]stampFact{}
		if b, err := os.ReadFile(s.indexPath()); err == nil {
			s.idx.parse(b)
		}
	})
	return s.idx
}

// Preload loads the index now, so that a caller can overlap it with other
// work; the first check would load it anyway.
func (s *Store) Preload() { s.index() }

func (x *index) file(rel string, fp fingerprint) (string, bool) {
	if !fp.known {
		return "", false
	}
	t := fp.text()
	f, ok := x.fileFact(rel)
	if ok && f.trusted && f.fp == string(t[:]) {
		return f.hash, true
	}
	return "", false
}

func (x *index) fileFact(rel string) (fileFact, bool) {
	if x.learnt.Load() {
		x.mu.Lock()
		f, ok := x.files[rel]
		x.mu.Unlock()
		if ok {
			return f, true
		}
	}
	f, ok := x.diskFiles[rel]
	return f, ok
}

func (x *index) stampFact(target string) (stampFact, bool) {
	if x.learnt.Load() {
		x.mu.Lock()
		f, ok := x.stamps[target]
		x.mu.Unlock()
		if ok {
			return f, true
		}
	}
	f, ok := x.diskStamps[target]
	return f, ok
}

// learnFile records that rel held hash when it had fp, learnt at the
// instant at (unix ns).
func (x *index) learnFile(rel string, fp fingerprint, hash string, at int64) {
	if !fp.known || !indexable(rel) {
		return
	}
	t := fp.text()
	if old, ok := x.fileFact(rel); ok && old.fp == string(t[:]) && old.hash == hash && old.trusted {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.learnt.Store(true)
	x.files[rel] = fileFact{fp: string(t[:]), hash: hash, trusted: fp.settles() < at, settles: fp.settles()}
	x.changed = true
	x.youngest = max(x.youngest, fp.ctime)
}

func (x *index) stamp(target string, fp fingerprint) (stampFact, bool) {
	if !fp.known {
		return stampFact{}, false
	}
	t := fp.text()
	f, ok := x.stampFact(target)
	if ok && f.trusted && f.fp == string(t[:]) {
		return f, true
	}
	return stampFact{}, false
}

func (x *index) learnStamp(st *Stamp, fp fingerprint, at int64) {
	if !fp.known || st.Stale != "" || st.damaged || !indexable(st.Target) || !indexable(st.Key) {
		return
	}
	for name := range st.Outputs {
		if !indexable(name) {
			return
		}
	}
	for name := range st.Files {
		if !indexable(name) {
			return
		}
	}
	t := fp.text()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.learnt.Store(true)
	x.stamps[st.Target] = stampFact{fp: string(t[:]), key: st.Key, outputs: st.Outputs, files: st.Files, trusted: fp.settles() < at, settles: fp.settles()}
	x.changed = true
	x.youngest = max(x.youngest, fp.ctime)
}

func (x *index) forgetStamp(target string) {
	if _, ok := x.stampFact(target); !ok {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.learnt.Store(true)
	x.stamps[target] = stampFact{}
	x.changed = true
}

// indexable keeps the index a plain tab-separated file: a name with a tab,
// a newline or a control character is left out of it (and read from its
// files every time).
func indexable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return false
		}
	}
	return s != ""
}

// The index file, a header and one fact per line, fields separated by
// tabs, ending in the hash of the lines before it (a torn or edited index
// reads as empty, never as facts):
//
//	pvbuild freshness index 1 <files> <stamps>
//	f <path> <fingerprint> <sha256>
//	s <target> <fingerprint> <key> <outputs> <files>
//	o <path> <sha256>          (outputs of the stamp above)
//	p <path> <sha256>          (provider files of the stamp above)
//	crc <CRC-32C of the lines above>
//
// A fingerprint is an fpText. The checksum only detects damage (a torn
// write, a disk error): like a stamp's sum, it cannot stop a forgery, and
// need not be a cryptographic hash, which would cost more than the rest
// of loading the index.

// marshal writes the facts worth keeping at the instant now: trusted ones,
// and the others whose files had settled by then.
func (x *index) marshal(now int64) []byte {
	allFiles, allStamps := maps.Clone(x.diskFiles), maps.Clone(x.diskStamps)
	maps.Copy(allFiles, x.files)
	maps.Copy(allStamps, x.stamps)
	keep := func(fp string, trusted bool, settles int64) bool { return fp != "" && (trusted || settles < now) }
	files := make([]string, 0, len(allFiles))
	for name, f := range allFiles {
		if keep(f.fp, f.trusted, f.settles) {
			files = append(files, name)
		}
	}
	stamps := make([]string, 0, len(allStamps))
	for name, f := range allStamps {
		if keep(f.fp, f.trusted, f.settles) {
			stamps = append(stamps, name)
		}
	}
	slices.Sort(files)
	slices.Sort(stamps)
	b := make([]byte, 0, 160*len(files)+200*len(stamps)+128)
	b = append(b, indexHeader...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(files)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(stamps)), 10)
	b = append(b, '\n')
	for _, name := range files {
		f := allFiles[name]
		b = append(b, "f\t"...)
		b = append(b, name...)
		b = append(b, '\t')
		b = append(b, f.fp...)
		b = append(b, '\t')
		b = append(b, f.hash...)
		b = append(b, '\n')
	}
	for _, name := range stamps {
		f := allStamps[name]
		b = append(b, "s\t"...)
		b = append(b, name...)
		b = append(b, '\t')
		b = append(b, f.fp...)
		b = append(b, '\t')
		b = append(b, f.key...)
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(len(f.outputs)), 10)
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(len(f.files)), 10)
		b = append(b, '\n')
		for _, kind := range []struct {
			word  string
			files map[string]string
		}{{"o\t", f.outputs}, {"p\t", f.files}} {
			for _, p := range slices.Sorted(maps.Keys(kind.files)) {
				b = append(b, kind.word...)
				b = append(b, p...)
				b = append(b, '\t')
				b = append(b, kind.files[p]...)
				b = append(b, '\n')
			}
		}
	}
	sum := crc32.Checksum(b, castagnoli)
	b = append(b, "crc "...)
	b = strconv.AppendUint(b, uint64(sum), 16)
	return append(b, '\n')
}

// parse fills an empty index from a file's bytes; on any damage it stays
// empty. Names and hashes are substrings of one string: no allocation per
// fact but the maps'.
func (x *index) parse(b []byte) {
	body, sum, ok := cutTrailer(b, "crc ")
	if !ok {
		return
	}
	if want, err := strconv.ParseUint(sum, 16, 32); err != nil || uint32(want) != crc32.Checksum(body, castagnoli) {
		return
	}
	// The bytes are this parse's own and never change: one string over
	// them, of which every name and hash is a substring.
	text := unsafe.String(unsafe.SliceData(body), len(body))
	line, text, _ := strings.Cut(text, "\n")
	counts, ok := strings.CutPrefix(line, indexHeader+" ")
	if !ok {
		return
	}
	nf, ns, _ := strings.Cut(counts, " ")
	nFiles, err1 := strconv.Atoi(nf)
	nStamps, err2 := strconv.Atoi(ns)
	if err1 != nil || err2 != nil || nFiles < 0 || nStamps < 0 || nFiles+nStamps > len(text) {
		return
	}
	files := make(map[string]fileFact, nFiles)
	stamps := make(map[string]stampFact, nStamps)
	var fields [6]string
	split := func(line string) int {
		n := 0
		for n < len(fields) {
			i := strings.IndexByte(line, '\t')
			if i < 0 {
				fields[n] = line
				return n + 1
			}
			fields[n], line = line[:i], line[i+1:]
			n++
		}
		return -1 // too many fields
	}
	for text != "" {
		line, text, _ = strings.Cut(text, "\n")
		switch n := split(line); {
		case n == 4 && fields[0] == "f":
			if len(fields[2]) != len(fpText{}) {
				return
			}
			files[fields[1]] = fileFact{fp: fields[2], hash: fields[3], trusted: true}
		case n == 6 && fields[0] == "s":
			no, err1 := strconv.Atoi(fields[4])
			np, err2 := strconv.Atoi(fields[5])
			if len(fields[2]) != len(fpText{}) || err1 != nil || err2 != nil || no < 1 || np < 0 {
				return
			}
			f := stampFact{fp: fields[2], key: fields[3], outputs: make(map[string]string, no), trusted: true}
			if np > 0 {
				f.files = make(map[string]string, np)
			}
			target := fields[1]
			for i := range no + np {
				line, text, _ = strings.Cut(text, "\n")
				word := "o"
				dst := f.outputs
				if i >= no {
					word, dst = "p", f.files
				}
				if split(line) != 3 || fields[0] != word || !inStore(fields[1]) {
					return
				}
				dst[fields[1]] = fields[2]
			}
			stamps[target] = f
		default:
			return
		}
	}
	x.diskFiles, x.diskStamps = files, stamps
}

// Flush writes what this process learnt to the index, if anything. When
// it learnt of files changed lately (the outputs it wrote, a restore just
// copied), the file system is synced first, in one call for all of them,
// so that after a power loss the index never vouches for a file whose
// bytes did not reach the disk. A crash before Flush loses only facts.
func (s *Store) Flush() error {
	x := s.idx
	if x == nil {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.changed {
		return nil
	}
	now := s.now()
	if x.youngest > now-int64(dirtyWindow) && !syncFilesystem(s.Root) {
		// What may not be on disk must not be vouched for by fingerprint.
		for name, f := range x.files {
			if !f.trusted {
				delete(x.files, name)
			}
		}
	}
	b := x.marshal(now)
	if err := atomicfile.WriteCache(s.indexPath(), b, 0o644); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // the store was removed (clean): nothing to index
		}
		return err
	}
	x.changed, x.youngest = false, 0
	return nil
}
