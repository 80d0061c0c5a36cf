package build

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

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
// was derived from.
type Snapshot struct {
	Data  []byte
	files []snapshotFile
}

type snapshotFile struct {
	rel string // relative to the store root
	fp  string // fpText
}

// SaveSnapshot keeps data as derived from the stamps given and the files
// they record. It keeps nothing, and says so, when the index does not
// yet trust the fingerprint of one of them (a file just written or just
// restored): the next run that finds them settled saves it. Call it after
// Flush, which makes the facts it relies on durable.
func (s *Store) SaveSnapshot(data []byte, stamps []*Stamp) (saved bool, err error) {
	x := s.index()
	files := make([]snapshotFile, 0, 2*len(stamps))
	for _, st := range stamps {
		f, ok := x.stampFact(st.Target)
		if !ok || !f.trusted || f.fp == "" || f.key != st.Key {
			return false, nil
		}
		files = append(files, snapshotFile{rel: ".stamps/" + st.Target + ".stamp", fp: f.fp})
		for _, kind := range []map[string]string{st.Outputs, st.Files} {
			for name, hash := range kind {
				ff, ok := x.fileFact(name)
				if !ok || !ff.trusted || ff.hash != hash {
					return false, nil
				}
				files = append(files, snapshotFile{rel: name, fp: ff.fp})
			}
		}
	}
	b := make([]byte, 0, len(data)+100*len(files)+128)
	b = append(b, snapshotHeader...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(files)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(data)), 10)
	b = append(b, '\n')
	for _, f := range files {
		b = append(b, f.fp...)
		b = append(b, '\t')
		b = append(b, f.rel...)
		b = append(b, '\n')
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
	line, rest, _ := bytes.Cut(body, []byte("\n"))
	counts, ok := strings.CutPrefix(string(line), snapshotHeader+" ")
	if !ok {
		return nil
	}
	nf, nd, _ := strings.Cut(counts, " ")
	nFiles, err1 := strconv.Atoi(nf)
	nData, err2 := strconv.Atoi(nd)
	if err1 != nil || err2 != nil || nFiles < 0 || nData < 0 || nFiles > len(rest) {
		return nil
	}
	sn := &Snapshot{files: make([]snapshotFile, nFiles)}
	text := string(rest)
	for i := range sn.files {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		fp, rel, ok := strings.Cut(line, "\t")
		if !ok || len(fp) != len(fpText{}) || !inStore(rel) {
			return nil
		}
		sn.files[i] = snapshotFile{rel: rel, fp: fp}
	}
	if len(text) != nData+1 || text[nData] != '\n' {
		return nil
	}
	sn.Data = []byte(text[:nData])
	return sn
}

// Unchanged reports whether every file the snapshot was derived from
// still has the fingerprint it had: one stat each, on every core.
func (s *Store) Unchanged(sn *Snapshot) bool {
	var changed atomic.Bool
	workers := min(2*runtime.GOMAXPROCS(0), max(1, len(sn.files)/256))
	chunk := (len(sn.files) + workers - 1) / workers
	var wg sync.WaitGroup
	root := filepath.Clean(s.Root) + string(filepath.Separator)
	for w := range workers {
		part := sn.files[min(w*chunk, len(sn.files)):min((w+1)*chunk, len(sn.files))]
		wg.Go(func() {
			for i, f := range part {
				if i%64 == 0 && changed.Load() {
					return
				}
				fp, err := statFingerprint(root + filepath.FromSlash(f.rel))
				if err != nil || !fp.known {
					changed.Store(true)
					return
				}
				if t := fp.text(); string(t[:]) != f.fp {
					changed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	return !changed.Load()
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
