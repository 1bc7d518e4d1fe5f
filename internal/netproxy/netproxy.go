// Package netproxy is a loopback TCP proxy that can get in the way of a
// connection path, as a network does: Hold keeps back the bytes clients
// send (a real client's publish then arrives late, as a buffered publish
// would), and Partition cuts the path both ways, as a network partition
// does, until Heal.
package netproxy

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// Proxy forwards TCP connections from a loopback listener to a target
// address. It is safe for concurrent use.
//
// Hold stops forwarding what clients send, while what the target sends
// still flows; Release forwards what was held, in order.
//
// Partition cuts the path: bytes stop flowing both ways on open
// connections (nothing is closed, so the ends find out only through their
// own timeouts), and new connections are accepted but go nowhere. Heal
// lets bytes flow again; connections opened during the partition are then
// closed, as a peer that never answered.
type Proxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	open    chan struct{} // closed while client bytes flow; replaced on Hold
	cut     bool
	healed  chan struct{} // closed on Heal; replaced on Partition
	conns   map[net.Conn]struct{}
	held    atomic.Int64 // reads from clients waiting for Release
	pending []net.Conn   // accepted during a partition
	closed  bool
	wg      sync.WaitGroup
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	open, healed := make(chan struct{}), make(chan struct{})
	close(open)
	close(healed)
	p := &Proxy{target: target, ln: ln, open: open, healed: healed, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's listen address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Hold stops forwarding what clients send (what the target sends still
// flows); the bytes wait in the proxy and the kernel until Release.
func (p *Proxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

// Release forwards everything held, in order, and resumes forwarding.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.release()
}

func (p *Proxy) release() {
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// Partition cuts the path.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cut {
		p.cut = true
		p.healed = make(chan struct{})
	}
}

// Heal restores the path.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		p.cut = false
		close(p.healed)
		for _, c := range p.pending {
			_ = c.Close()
		}
		p.pending = nil
	}
}

// Partitioned reports whether the path is cut.
func (p *Proxy) Partitioned() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Pending returns how many connections the partition holds (accepted
// while the path was cut).
func (p *Proxy) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// Close stops the proxy, closes every connection and waits for its
// goroutines. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.release()
	if p.cut {
		p.cut = false
		close(p.healed)
	}
	for c := range p.conns {
		_ = c.Close()
	}
	for _, c := range p.pending {
		_ = c.Close()
	}
	p.pending = nil
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.pending = append(p.pending, c)
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(in net.Conn) {
	defer p.wg.Done()
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = in.Close()
		return
	}
	if !p.track(in) || !p.track(out) {
		_ = in.Close()
		_ = out.Close()
		return
	}
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			p.untrack(in)
			p.untrack(out)
		})
	}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.pipe(out, in, true); closeBoth() }()
	go func() { defer p.wg.Done(); p.pipe(in, out, false); closeBoth() }()
}

// pipe copies from src to dst, holding each chunk while the path is cut
// and, for what a client sends (fromClient), while it is held.
func (p *Proxy) pipe(dst, src net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromClient {
				p.waitGate()
			}
			p.waitHealed()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			// A partition hides a closed end too: the other end hears of
			// it only once the path is healed.
			p.waitHealed()
			return
		}
	}
}

// Held returns how many reads from clients wait for Release: a test that
// holds the proxy knows from it that a client's request is stuck in it.
func (p *Proxy) Held() int { return int(p.held.Load()) }

// waitGate waits until the proxy forwards, counting the wait in Held.
func (p *Proxy) waitGate() {
	g := p.gate()
	select {
	case <-g:
		return
	default:
	}
	p.held.Add(1)
	defer p.held.Add(-1)
	<-g
}

func (p *Proxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

func (p *Proxy) waitHealed() {
	p.mu.Lock()
	healed := p.healed
	p.mu.Unlock()
	<-healed
}
