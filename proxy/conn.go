package proxy

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// limitListener hands out connections that know their client and enforces
// the per-client connection limit at accept time, before any HTTP parsing:
// one device cannot take every connection the proxy has.
type limitListener struct {
	net.Listener
	perClient int
	onLimit   func()

	mu     sync.Mutex
	counts map[netip.Addr]int
}

func newLimitListener(ln net.Listener, perClient int, onLimit func()) *limitListener {
	return &limitListener{Listener: ln, perClient: perClient, onLimit: onLimit, counts: map[netip.Addr]int{}}
}

// tooManyConnections is written raw: the connection never reaches the HTTP
// server, so nothing is parsed for a client over its limit.
const tooManyConnections = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Connection: close\r\nContent-Length: 52\r\n\r\nhedgerow: too many connections from this device.\r\n\r\n"

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		l.mu.Lock()
		n := l.counts[addr]
		if l.perClient > 0 && n >= l.perClient {
			l.mu.Unlock()
			l.onLimit()
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte(tooManyConnections))
			_ = c.Close()
			continue
		}
		l.counts[addr] = n + 1
		l.mu.Unlock()
		return &clientConn{Conn: c, addr: addr, release: func() { l.release(addr) }}, nil
	}
}

func (l *limitListener) release(addr netip.Addr) {
	l.mu.Lock()
	if n := l.counts[addr] - 1; n > 0 {
		l.counts[addr] = n
	} else {
		delete(l.counts, addr)
	}
	l.mu.Unlock()
}

func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap.Addr().Unmap()
}

// maxCapture bounds the bytes a connection keeps for the head check: a
// request head is at most MaxHeaderBytes plus a little.
const maxCapture = 72 << 10

// clientConn is a client's connection. It keeps the bytes most recently read
// so each request's raw head can be checked: Go's server quietly repairs the
// shapes of request smuggling (it drops a Content-Length sent beside
// Transfer-Encoding and a Host header that disagrees with the absolute URI),
// and a filter must refuse them instead.
type clientConn struct {
	net.Conn
	addr    netip.Addr
	release func()

	mu        sync.Mutex
	captured  []byte
	nocapture bool
	closed    bool
}

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if c.nocapture {
			c.mu.Unlock()
			return n, err
		}
		got := p[:n]
		if len(got) > maxCapture {
			got = got[len(got)-maxCapture:]
		}
		if drop := len(c.captured) + len(got) - maxCapture; drop > 0 {
			// Keep the tail: a head is never longer than maxCapture.
			c.captured = append(c.captured[:0], c.captured[drop:]...)
		}
		c.captured = append(c.captured, got...)
		c.mu.Unlock()
	}
	return n, err
}

// takeHead finds the raw head of the request whose request line is line
// (without CRLF) among the bytes read, returns it and forgets everything up
// to its end. ok is false when it is not there, which a caller treats as a
// malformed request.
func (c *clientConn) takeHead(line string) (head []byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	buf := c.captured
	for off := 0; off < len(buf); {
		i := bytes.Index(buf[off:], []byte(line))
		if i < 0 {
			return nil, false
		}
		start := off + i
		// A request line begins the capture or follows a line end.
		if start == 0 || buf[start-1] == '\n' {
			end := bytes.Index(buf[start:], []byte("\r\n\r\n"))
			if end < 0 {
				return nil, false
			}
			end += start + 4
			head = bytes.Clone(buf[start:end])
			c.captured = append(c.captured[:0], buf[end:]...)
			return head, true
		}
		off = start + 1
	}
	return nil, false
}

// stopCapture ends capturing once the connection is a tunnel: its bytes are
// no longer HTTP heads.
func (c *clientConn) stopCapture() {
	c.mu.Lock()
	c.captured = nil
	c.nocapture = true
	c.mu.Unlock()
}

func (c *clientConn) Close() error {
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	c.captured = nil
	c.mu.Unlock()
	err := c.Conn.Close()
	if first {
		c.release()
	}
	return err
}

// errListenerDone ends an http.Server serving one connection.
var errListenerDone = errors.New("connection finished")

// oneConnListener serves a single connection (an intercepted TLS session) to
// an http.Server, so the inner requests get the same timeouts, header limits
// and head checks as the proxy's own: Accept returns the connection once,
// then waits until it is closed.
type oneConnListener struct {
	conn *clientConn
	once sync.Once
	done chan struct{}
}

func newOneConnListener(c net.Conn, addr netip.Addr) *oneConnListener {
	l := &oneConnListener{done: make(chan struct{})}
	l.conn = &clientConn{Conn: c, addr: addr, release: func() { close(l.done) }}
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, errListenerDone
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
