package faults

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// Switch is a listener that can be taken down and brought back on the same
// address, as a server killed and restarted would be, while the server
// behind it (and its state) lives on: while it is down nothing listens, so
// new connections are refused, and the connections it had accepted are
// closed, so requests in flight fail. Serve it as any listener, e.g.
//
//	sw, _ := faults.Listen("127.0.0.1:0")
//	ts := httptest.NewUnstartedServer(handler)
//	ts.Listener.Close()
//	ts.Listener = sw
//	ts.Start()
//
// A test drives it with Down and Up, or with Outage.Apply from a virtual
// clock, so that no test waits out an outage in wall time.
type Switch struct {
	addr net.Addr

	mu     sync.Mutex
	ln     net.Listener // nil while down
	conns  map[*trackedConn]struct{}
	closed bool
	err    error         // why Accept fails for good, once closed
	change chan struct{} // closed and replaced at each change of state
}

// Listen listens on addr ("127.0.0.1:0" picks a port, kept across outages).
func Listen(addr string) (*Switch, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewSwitch(ln), nil
}

// NewSwitch takes over ln, a TCP listener; Up listens again on its address.
func NewSwitch(ln net.Listener) *Switch {
	return &Switch{addr: ln.Addr(), ln: ln, conns: map[*trackedConn]struct{}{}, change: make(chan struct{})}
}

// Addr is the address, the same before and after an outage.
func (s *Switch) Addr() net.Addr { return s.addr }

// Accept waits for a connection; while the switch is down it waits for it
// to come back up, so the server serving it does not stop.
func (s *Switch) Accept() (net.Conn, error) {
	for {
		s.mu.Lock()
		ln, change, closed, err := s.ln, s.change, s.closed, s.err
		s.mu.Unlock()
		if closed {
			if err == nil {
				err = net.ErrClosed
			}
			return nil, err
		}
		if ln == nil {
			<-change
			continue
		}
		c, err := ln.Accept()
		s.mu.Lock()
		if s.ln != ln || s.closed {
			// Taken down (or closed) while accepting: this listener's
			// errors and connections belong to the outage.
			s.mu.Unlock()
			if c != nil {
				c.Close()
			}
			continue
		}
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		tc := &trackedConn{Conn: c, sw: s}
		s.conns[tc] = struct{}{}
		s.mu.Unlock()
		return tc, nil
	}
}

// Close stops listening for good; Accept returns net.ErrClosed. Accepted
// connections are left to their server, as net.Listener's Close does.
func (s *Switch) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.signal()
	if s.ln != nil {
		return s.ln.Close()
	}
	return nil
}

// Down stops listening and closes every connection accepted so far:
// clients get "connection refused" until Up. It does nothing if the
// switch is already down or closed.
func (s *Switch) Down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.ln == nil {
		return
	}
	s.ln.Close()
	s.ln = nil
	for c := range s.conns {
		c.Conn.Close()
	}
	clear(s.conns)
	s.signal()
}

// Up listens again on the same address. If the address cannot be had
// (another process took the port), the switch closes with that error, so
// that the server serving it stops and says why instead of staying
// unreachable.
func (s *Switch) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.ln != nil {
		return nil
	}
	ln, err := net.Listen(s.addr.Network(), s.addr.String())
	if err != nil {
		s.closed = true
		s.err = fmt.Errorf("listen again on %s after an outage: %w", s.addr, err)
		s.signal()
		return s.err
	}
	s.ln = ln
	s.signal()
	return nil
}

// IsDown reports whether the switch is down.
func (s *Switch) IsDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.ln == nil
}

func (s *Switch) signal() {
	close(s.change)
	s.change = make(chan struct{})
}

type trackedConn struct {
	net.Conn
	sw   *Switch
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.sw.mu.Lock()
		delete(c.sw.conns, c)
		c.sw.mu.Unlock()
	})
	return c.Conn.Close()
}

// Outage is a period during which a server is unreachable: it goes down
// After from the start, for For. The zero value is no outage.
type Outage struct {
	After, For time.Duration
}

// Down reports whether elapsed, the time since the start, falls in the
// outage.
func (o Outage) Down(elapsed time.Duration) bool {
	return o.For > 0 && elapsed >= o.After && elapsed < o.After+o.For
}

// Apply puts sw in the state o says for elapsed: a test advancing a
// virtual clock calls it at each step.
func (o Outage) Apply(sw *Switch, elapsed time.Duration) error {
	if o.Down(elapsed) {
		sw.Down()
		return nil
	}
	return sw.Up()
}

// Run takes sw down after o.After and brings it back up o.For later, as
// sleep (provider.Sleep in wall time, or a test's virtual clock) tells. logf reports both
// moments. It returns early, leaving sw up, when ctx is done.
func (o Outage) Run(ctx context.Context, sw *Switch, sleep func(context.Context, time.Duration) error, logf func(format string, args ...any)) error {
	if o.For <= 0 {
		return nil
	}
	if err := sleep(ctx, o.After); err != nil {
		return nil
	}
	sw.Down()
	logf("outage: %s is down for %s", sw.Addr(), o.For)
	err := sleep(ctx, o.For)
	if uerr := sw.Up(); uerr != nil {
		return uerr
	}
	if err == nil {
		logf("outage over: %s is up again", sw.Addr())
	}
	return nil
}

// String is the SERVE_OUTAGE form, "after=30s,for=1m0s".
func (o Outage) String() string { return fmt.Sprintf("after=%s,for=%s", o.After, o.For) }
