package faults

import (
	"fmt"
	"net"
	"sync"
)

// Proxy forwards TCP connections from a loopback listener to a target
// address. Partition cuts the path as a network partition does: bytes
// stop flowing both ways on open connections (nothing is closed, so the
// ends find out only through their own timeouts), and new connections are
// accepted but go nowhere. Heal lets bytes flow again; connections opened
// during the partition are then closed, as a peer that never answered.
type Proxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	cut     bool
	healed  chan struct{} // closed on Heal; replaced on Partition
	conns   map[net.Conn]struct{}
	pending []net.Conn // accepted during a partition
	closed  bool
	wg      sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	healed := make(chan struct{})
	close(healed)
	p := &Proxy{target: target, ln: ln, healed: healed, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's listen address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

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

// Close stops the proxy and closes every connection. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
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
	go func() { defer p.wg.Done(); p.pipe(out, in); closeBoth() }()
	go func() { defer p.wg.Done(); p.pipe(in, out); closeBoth() }()
}

// pipe copies from src to dst, holding each chunk while the path is cut.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
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

func (p *Proxy) waitHealed() {
	p.mu.Lock()
	healed := p.healed
	p.mu.Unlock()
	<-healed
}
