package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// withSyncfs replaces the system's syncfs for the test: nil removes it.
func withSyncfs(t *testing.T, f syncFunc) {
	t.Helper()
	old := syncfs.Load()
	if f == nil {
		syncfs.Store(nil)
	} else {
		syncfs.Store(&f)
	}
	t.Cleanup(func() { syncfs.Store(old) })
}

// countingSyncfs is the real syncfs (or nothing, where there is none) that
// counts its calls and takes at least delay, as a disk would.
func countingSyncfs(t *testing.T, delay time.Duration) *atomic.Int64 {
	t.Helper()
	real := syncfs.Load()
	var n atomic.Int64
	withSyncfs(t, func(fd int) error {
		n.Add(1)
		time.Sleep(delay)
		if real != nil {
			return (*real)(fd)
		}
		return nil
	})
	return &n
}

func content(i, round int) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "file %d round %d\n", i, round), 200+i)
}

// writeConcurrently writes n files from n goroutines, twice each.
func writeConcurrently(t *testing.T, dir string, n int) {
	t.Helper()
	for round := range 2 {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				errs <- Write(filepath.Join(dir, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%03d", i)), content(i, round), 0o644)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkAll checks every file holds its last content and no temporary file
// is left.
func checkAll(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		path := filepath.Join(dir, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%03d", i))
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, content(i, 1)) {
			t.Fatalf("%s: read %d bytes, %v; want %d bytes of its last write", path, len(got), err, len(content(i, 1)))
		}
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*", ".*tmp-*"))
	if len(tmps) > 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
}

func TestConcurrentWritesShareSyncs(t *testing.T) {
	if syncfs.Load() == nil {
		t.Skip("no syncfs on this system")
	}
	const n = 200
	calls := countingSyncfs(t, 2*time.Millisecond)
	own := countingSyncOwn(t)
	dir := t.TempDir()
	writeConcurrently(t, dir, n)
	checkAll(t, dir, n)
	// Each write needs two syncs of its own; shared, 2 rounds of n writers
	// need far fewer.
	if got := calls.Load() + own.Load(); calls.Load() == 0 || got > 2*n/5 {
		t.Fatalf("%d writes made %d syncfs calls and %d fsyncs; want at least one syncfs and at most %d in all",
			2*n, calls.Load(), own.Load(), 2*n/5)
	}
	t.Logf("%d durable writes, %d syncfs calls, %d fsyncs", 2*n, calls.Load(), own.Load())
}

// A lone writer, with no one to share a round with, fsyncs its file and its
// directory: it does not wait on everyone's dirty data.
func TestLoneWriterSyncsItsOwn(t *testing.T) {
	calls := countingSyncfs(t, 0)
	own := countingSyncOwn(t)
	path := filepath.Join(t.TempDir(), "out")
	if err := Write(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := own.Load(); got != 2 || calls.Load() != 0 {
		t.Fatalf("one write made %d fsyncs and %d syncfs calls, want 2 fsyncs: its data, then its rename", got, calls.Load())
	}
	own.Store(0)
	if err := WriteCache(path, []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load() + own.Load(); got != 0 {
		t.Fatalf("a cache write made %d syncs, want none", got)
	}
}

// A round covers only writes made before it started: a writer that joins
// while a sync is running waits for the next one.
func TestRoundStartsAfterItsWriters(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	var calls atomic.Int64
	block := func() error {
		if calls.Add(1) == 1 {
			started <- struct{}{}
			<-release
		}
		return nil
	}
	withSyncfs(t, func(int) error { return block() })
	old := syncOwn
	syncOwn = func(*os.File) error { return block() }
	t.Cleanup(func() { syncOwn = old })
	dir := t.TempDir()
	first := make(chan error, 1)
	go func() { first <- Write(filepath.Join(dir, "a"), []byte("a"), 0o644) }()
	<-started // the first write's data sync is running
	second := make(chan error, 1)
	go func() { second <- Write(filepath.Join(dir, "b"), []byte("b"), 0o644) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-second:
		t.Fatalf("a write returned (%v) while the only sync had started before it", err)
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	// First round: a's data. Then b's data and a's rename can share one,
	// and b's rename needs another.
	if got := calls.Load(); got < 3 {
		t.Fatalf("%d syncs, want at least 3", got)
	}
}

// countingSyncOwn counts the fallback's own fsyncs.
func countingSyncOwn(t *testing.T) *atomic.Int64 {
	var n atomic.Int64
	old := syncOwn
	syncOwn = func(f *os.File) error {
		n.Add(1)
		return old(f)
	}
	t.Cleanup(func() { syncOwn = old })
	return &n
}

func TestFallbackWithoutSyncfs(t *testing.T) {
	withSyncfs(t, nil)
	own := countingSyncOwn(t)
	const n = 50
	dir := t.TempDir()
	writeConcurrently(t, dir, n)
	checkAll(t, dir, n)
	// Each write syncs its file, then its directory.
	if got := own.Load(); got != 2*2*n {
		t.Fatalf("%d writes made %d fsyncs of their own, want %d", 2*n, got, 2*2*n)
	}
}

func TestFallbackWhenSyncfsFails(t *testing.T) {
	var calls atomic.Int64
	withSyncfs(t, func(int) error {
		calls.Add(1)
		return errors.New("injected syncfs failure")
	})
	own := countingSyncOwn(t)
	const n = 50
	dir := t.TempDir()
	writeConcurrently(t, dir, n)
	checkAll(t, dir, n)
	if calls.Load() == 0 {
		t.Fatal("syncfs was never tried")
	}
	// Each sync of each write is an fsync: alone in its round, or after
	// the round's syncfs failed.
	if got := own.Load(); got != 2*2*n {
		t.Fatalf("%d writes made %d fsyncs of their own after syncfs failed, want %d", 2*n, got, 2*2*n)
	}
}

// A reader never sees a file partly written under its final name, even while
// many writers replace it.
func TestReaderNeverSeesPartialFile(t *testing.T) {
	for _, mode := range []struct {
		name string
		sf   syncFunc
	}{{"syncfs", func(int) error { return nil }}, {"fallback", nil}} {
		t.Run(mode.name, func(t *testing.T) {
			withSyncfs(t, mode.sf)
			path := filepath.Join(t.TempDir(), "out")
			valid := map[string]bool{}
			var versions [][]byte
			for i := range 8 {
				v := bytes.Repeat([]byte{byte('a' + i)}, 64<<10)
				versions = append(versions, v)
				valid[string(v)] = true
			}
			if err := Write(path, versions[0], 0o644); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var readers sync.WaitGroup
			var reads atomic.Int64
			bad := make(chan string, 1)
			for range 2 {
				readers.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						got, err := os.ReadFile(path)
						if err != nil || !valid[string(got)] {
							select {
							case bad <- fmt.Sprintf("read %d bytes, %v", len(got), err):
							default:
							}
							return
						}
						reads.Add(1)
					}
				})
			}
			var writers sync.WaitGroup
			for w := range 4 {
				writers.Go(func() {
					for i := range 25 {
						if err := Write(path, versions[(w+i)%len(versions)], 0o644); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			writers.Wait()
			close(stop)
			readers.Wait()
			select {
			case msg := <-bad:
				t.Fatalf("a reader saw a partial or foreign file: %s", msg)
			default:
			}
			if reads.Load() == 0 {
				t.Fatal("no read completed")
			}
		})
	}
}
