package testns

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections on loopback to an address until cut:
// then it closes every connection and refuses new ones until mended (a
// host partitioned from etcd).
type Proxy struct {
	// Addr is where it listens.
	Addr, to string
	mu       sync.Mutex
	isCut    bool
	conns    []net.Conn
}

// CutProxy starts a proxy to address to, until the test ends.
func CutProxy(t testing.TB, to string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &Proxy{Addr: ln.Addr().String(), to: to}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.isCut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", to)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

// Cut closes every connection and refuses new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Mend forwards again.
func (p *Proxy) Mend() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = false
}
