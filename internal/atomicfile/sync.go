package atomicfile

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// syncFunc syncs the whole filesystem that holds the open file fd.
type syncFunc func(fd int) error

// syncfs is the system's syncfs(2), nil where there is none; tests swap it
// to count rounds or to make them fail.
var syncfs atomic.Pointer[syncFunc]

// groups holds one syncer per filesystem, by device number: a syncfs covers
// only the filesystem of the file it is given.
var groups struct {
	sync.Mutex
	m map[uint64]*group
}

// group is the syncer of one filesystem. Callers join the round that has
// not started yet; a round starts once the one before has ended and syncs
// everything written before any of its callers joined.
type group struct {
	mu      sync.Mutex
	next    *round // the round callers join; nil when none waits
	running bool   // a goroutine is running rounds
}

type round struct {
	files []*os.File // its callers' files, held open until it ends
	done  chan struct{}
	err   error
}

// syncShared makes f durable, with everything written to f's filesystem
// so far when it shares a round with others, and reports whether it did.
// f is a file whose data must be synced, or the directory of a rename.
// When it returns false the caller must sync by itself.
func syncShared(f *os.File) bool {
	sf := syncfs.Load()
	if sf == nil {
		return false
	}
	dev, ok := device(f)
	if !ok {
		return false
	}
	groups.Lock()
	g := groups.m[dev]
	if g == nil {
		if groups.m == nil {
			groups.m = map[uint64]*group{}
		}
		g = &group{}
		groups.m[dev] = g
	}
	groups.Unlock()
	return g.wait(f, *sf) == nil
}

// wait joins the next round and returns its outcome.
func (g *group) wait(f *os.File, sf syncFunc) error {
	g.mu.Lock()
	if g.next == nil {
		g.next = &round{done: make(chan struct{})}
	}
	r := g.next
	r.files = append(r.files, f)
	if !g.running {
		g.running = true
		go g.run(sf)
	}
	g.mu.Unlock()
	<-r.done
	return r.err
}

// run runs rounds until none waits. A round is taken under the lock, so
// that no caller joins it once its sync may have started.
func (g *group) run(sf syncFunc) {
	for {
		g.mu.Lock()
		r := g.next
		g.next = nil
		if r == nil {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		if len(r.files) == 1 {
			// Alone, a caller's own fsync does: it waits on no one else's
			// dirty data, as a syncfs of a busy filesystem would.
			r.err = syncOwn(r.files[0])
		} else {
			f := r.files[0]
			r.err = sf(int(f.Fd()))
			runtime.KeepAlive(f)
		}
		close(r.done)
	}
}
