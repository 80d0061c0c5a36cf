package build

import (
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
)

// A snapshot is something derived from the store, a plan that found every
// target fresh, kept with the fingerprints of every stamp and file it was
// derived from. While none of them changed, and the caller's own inputs
// (its program, configuration and environment, which it keys its data
// by) did not either, the derivation would give the same answer; the
// snapshot is that answer without decoding, keying or hashing anything:
// the stat calls a no-op cannot avoid, and nothing more.
//
// Its fingerprints are the index's trusted facts only (see index.go), so
// the racily clean rule holds for it too: a file edited in the same
// instant its fact was learnt is never vouched for.

const snapshotHeader = "pvbuild snapshot 1"

func (s *Store) snapshotPath() string { return filepath.Join(s.Root, ".stamps", "snapshot") }

// Snapshot is what SaveSnapshot kept: the caller's data and the files it
// was derived from, by directory.
type Snapshot struct {
	Data []byte
	dirs []snapshotDir
}

// snapshotDir is a directory's files as the snapshot holds them: lines
// of "<fpText>\t<name>".
type snapshotDir struct {
	rel   string // relative to the store root; "." for the root
	files string
}

// SaveSnapshot keeps data as derived from the stamps given and the files
// they record. It keeps nothing, and says so, when the index does not
// yet trust the fingerprint of one of them (a file just written or just
// restored): the next run that finds them settled saves it. Call it after
// Flush, which makes the facts it relies on durable.
func (s *Store) SaveSnapshot(data []byte, stamps []*Stamp) (saved bool, err error) {
	x := s.index()
	byDir := map[string][]string{} // "<fpText>\t<name>" lines
	add := func(rel, fp string) {
		dir, name := path.Split(rel)
		byDir[dir] = append(byDir[dir], fp+"\t"+name)
	}
	n := 0
	for _, st := range stamps {
		f, ok := x.stampFact(st.Target)
		if !ok || !f.trusted || f.fp == "" || f.key != st.Key {
			return false, nil
		}
		add(".stamps/"+st.Target+".stamp", f.fp)
		n++
		for _, kind := range []map[string]string{st.Outputs, st.Files} {
			for name, hash := range kind {
				ff, ok := x.fileFact(name)
				if !ok || !ff.trusted || ff.hash != hash {
					return false, nil
				}
				add(name, ff.fp)
				n++
			}
		}
	}
	dirs := slices.Sorted(maps.Keys(byDir))
	b := make([]byte, 0, len(data)+90*n+40*len(dirs)+128)
	b = append(b, snapshotHeader...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(dirs)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(data)), 10)
	b = append(b, '\n')
	for _, dir := range dirs {
		b = append(b, "d\t"...)
		b = append(b, cmp.Or(strings.TrimSuffix(dir, "/"), ".")...)
		b = append(b, '\n')
		for _, line := range byDir[dir] {
			b = append(b, line...)
			b = append(b, '\n')
		}
	}
	b = append(b, data...)
	b = append(b, '\n')
	sum := crc32.Checksum(b, castagnoli)
	b = append(b, "crc "...)
	b = strconv.AppendUint(b, uint64(sum), 16)
	b = append(b, '\n')
	if err := atomicfile.WriteCache(s.snapshotPath(), b, 0o644); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil // the store was removed meanwhile
		}
		return false, fmt.Errorf("save snapshot: %w", err)
	}
	return true, nil
}

// LoadSnapshot reads the snapshot; it returns nil when there is none or
// it is damaged, which only means deriving again.
func (s *Store) LoadSnapshot() *Snapshot {
	b, err := os.ReadFile(s.snapshotPath())
	if err != nil {
		return nil
	}
	body, sum, ok := cutTrailer(b, "crc ")
	if !ok {
		return nil
	}
	if want, err := strconv.ParseUint(sum, 16, 32); err != nil || uint32(want) != crc32.Checksum(body, castagnoli) {
		return nil
	}
	// The bytes are this load's own and never change: the snapshot's
	// strings are substrings of them.
	text := unsafe.String(unsafe.SliceData(body), len(body))
	line, text, _ := strings.Cut(text, "\n")
	counts, ok := strings.CutPrefix(line, snapshotHeader+" ")
	if !ok {
		return nil
	}
	nd, ndata, _ := strings.Cut(counts, " ")
	nDirs, err1 := strconv.Atoi(nd)
	nData, err2 := strconv.Atoi(ndata)
	if err1 != nil || err2 != nil || nDirs < 0 || nData < 0 || nData >= len(text) || nDirs > len(text) {
		return nil
	}
	data, files := text[len(text)-nData-1:], text[:len(text)-nData-1]
	if data[nData] != '\n' {
		return nil
	}
	sn := &Snapshot{Data: unsafe.Slice(unsafe.StringData(data), nData), dirs: make([]snapshotDir, 0, nDirs)}
	for files != "" {
		line, rest, _ := strings.Cut(files, "\n")
		dir, ok := strings.CutPrefix(line, "d\t")
		if !ok || (dir != "." && !inStore(dir)) {
			return nil
		}
		end := strings.Index(rest, "\nd\t") + 1
		if end == 0 {
			end = len(rest)
		}
		sn.dirs = append(sn.dirs, snapshotDir{rel: dir, files: rest[:end]})
		files = rest[end:]
	}
	if len(sn.dirs) != nDirs {
		return nil
	}
	return sn
}

// Unchanged reports whether every file the snapshot was derived from
// still has the fingerprint it had: one stat each, on every core.
func (s *Store) Unchanged(sn *Snapshot) bool {
	root, err := openStoreStatter(s.Root)
	if err != nil {
		return false
	}
	defer root.close()
	var changed atomic.Bool
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(2*runtime.GOMAXPROCS(0), len(sn.dirs)) {
		wg.Go(func() {
			buf := make([]byte, 0, 256)
			for !changed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(sn.dirs) {
					return
				}
				if !dirUnchanged(root, &buf, sn.dirs[i]) {
					changed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return !changed.Load()
}

func dirUnchanged(root storeStatter, buf *[]byte, d snapshotDir) bool {
	for lines := d.files; lines != ""; {
		var line string
		line, lines, _ = strings.Cut(lines, "\n")
		fp, name, ok := strings.Cut(line, "\t")
		if !ok || len(fp) != len(fpText{}) || name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 {
			return false
		}
		got, err := root.stat(buf, d.rel, name)
		if err != nil || !got.known {
			return false
		}
		if t := got.text(); string(t[:]) != fp {
			return false
		}
	}
	return true
}

// Identity is a fingerprint of the file at path (size, times, inode) for a
// caller to key a snapshot by, such as its own executable: a rebuilt or
// replaced file has another. ok is false where none can be taken.
func Identity(path string) (id string, ok bool) {
	fp, err := statFingerprint(path)
	if err != nil || !fp.known {
		return "", false
	}
	t := fp.text()
	return string(t[:]), true
}
