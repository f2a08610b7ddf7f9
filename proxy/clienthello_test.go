package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingConn keeps a copy of everything written through it.
type recordingConn struct {
	net.Conn
	mu      sync.Mutex
	written []byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.written = append(c.written, p[:n]...)
	c.mu.Unlock()
	return n, err
}

// captureHello runs a crypto/tls client against readClientHello over a pipe
// and returns what readClientHello returned together with exactly what the
// client wrote. The pipe is synchronous, so a readClientHello that tried to
// read past the hello would hang until the deadline and fail.
func captureHello(t testing.TB, cfg *tls.Config) (raw []byte, name string, written []byte) {
	t.Helper()
	serverEnd, clientEnd := net.Pipe()
	rec := &recordingConn{Conn: clientEnd}
	deadline := time.Now().Add(10 * time.Second)
	_ = serverEnd.SetDeadline(deadline)
	_ = clientEnd.SetDeadline(deadline)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(rec, cfg).Handshake() // fails once we hang up; only the hello matters
	}()
	raw, name, err := readClientHello(serverEnd)
	serverEnd.Close()
	<-done
	clientEnd.Close()
	if err != nil {
		t.Fatalf("readClientHello: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return raw, name, bytes.Clone(rec.written)
}

// capturedHellos returns real ClientHellos from crypto/tls, for seeds and
// benchmarks.
func capturedHellos(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, tc := range helloConfigs() {
		raw, _, _ := captureHello(t, tc.cfg)
		out = append(out, raw)
	}
	return out
}

type helloConfig struct {
	name     string
	cfg      *tls.Config
	wantSNI  string
	minBytes int // to show the post-quantum key share was really there
}

func helloConfigs() []helloConfig {
	return []helloConfig{
		{"default config with SNI", &tls.Config{ServerName: "www.example.com"}, "www.example.com", 1100},
		{"mixed case SNI is lower-cased", &tls.Config{ServerName: "WWW.Example.COM"}, "www.example.com", 0},
		{"trailing dot is not sent", &tls.Config{ServerName: "example.org."}, "example.org", 0},
		{"no server name", &tls.Config{InsecureSkipVerify: true}, "", 0},
		{"IPv4 literal sends no SNI", &tls.Config{ServerName: "192.0.2.1"}, "", 0},
		{"IPv6 literal sends no SNI", &tls.Config{ServerName: "2001:db8::1"}, "", 0},
		{"X25519 only", &tls.Config{ServerName: "small.example", CurvePreferences: []tls.CurveID{tls.X25519}}, "small.example", 0},
		{"post-quantum only", &tls.Config{ServerName: "pq.example", CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}}, "pq.example", 1100},
		{"TLS 1.2 only", &tls.Config{ServerName: "old.example", MaxVersion: tls.VersionTLS12}, "old.example", 0},
	}
}

func TestReadClientHelloCrypto(t *testing.T) {
	for _, tc := range helloConfigs() {
		t.Run(tc.name, func(t *testing.T) {
			raw, name, written := captureHello(t, tc.cfg)
			if name != tc.wantSNI {
				t.Errorf("SNI %q, want %q", name, tc.wantSNI)
			}
			if !bytes.Equal(raw, written) {
				t.Errorf("raw is %d bytes, the client wrote %d; they must be identical", len(raw), len(written))
			}
			if len(raw) < tc.minBytes {
				t.Errorf("hello of %d bytes, want at least %d (post-quantum key share)", len(raw), tc.minBytes)
			}
		})
	}
}

func TestReadClientHelloStopsAtEnd(t *testing.T) {
	hello := capturedHellos(t)[0]
	for _, tc := range []struct {
		name  string
		hello []byte
	}{
		{"one record", hello},
		{"fragmented", refragment(t, hello, 100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := bytes.NewReader(append(bytes.Clone(tc.hello), "\x17\x03\x03 application data"...))
			raw, _, err := readClientHello(in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, tc.hello) {
				t.Errorf("raw is %d bytes, want the %d of the hello", len(raw), len(tc.hello))
			}
			rest, _ := io.ReadAll(in)
			if string(rest) != "\x17\x03\x03 application data" {
				t.Errorf("left %q in the stream", rest)
			}
		})
	}
}

// refragment splits the handshake message of a one-record hello into
// records of at most size bytes.
func refragment(t testing.TB, hello []byte, size int) []byte {
	t.Helper()
	if n := int(binary.BigEndian.Uint16(hello[3:5])); n != len(hello)-5 {
		t.Fatalf("hello is not a single record")
	}
	msg := hello[5:]
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, 22, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func TestReadClientHelloFragmented(t *testing.T) {
	hello, _, _ := captureHello(t, &tls.Config{ServerName: "frag.example"})
	for _, size := range []int{1, 2, 3, 4, 5, 7, 100, 1000, len(hello)} {
		in := refragment(t, hello, size)
		raw, name, err := readClientHello(bytes.NewReader(in))
		if err != nil {
			t.Fatalf("records of %d: %v", size, err)
		}
		if name != "frag.example" || !bytes.Equal(raw, in) {
			t.Errorf("records of %d: SNI %q, raw %d of %d bytes", size, name, len(raw), len(in))
		}
	}
}

func TestReadClientHelloTruncated(t *testing.T) {
	hello, _, _ := captureHello(t, &tls.Config{ServerName: "cut.example"})
	for _, in := range [][]byte{hello, refragment(t, hello, 300)} {
		for i := range len(in) {
			raw, name, err := readClientHello(bytes.NewReader(in[:i]))
			if err == nil {
				t.Fatalf("%d of %d bytes: no error (SNI %q)", i, len(in), name)
			}
			want := io.ErrUnexpectedEOF
			if i == 0 {
				want = io.EOF
			}
			if !errors.Is(err, want) {
				t.Fatalf("%d of %d bytes: %v, want %v", i, len(in), err, want)
			}
			if !bytes.Equal(raw, in[:i]) {
				t.Fatalf("%d of %d bytes: raw is not the input", i, len(in))
			}
		}
	}
}

// Builders for hand-made hellos.

func u16(n int) []byte { return []byte{byte(n >> 8), byte(n)} }

func extension(typ int, data []byte) []byte {
	return append(append(u16(typ), u16(len(data))...), data...)
}

func sniExtension(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, serverNameTypeHost)
		list = append(list, u16(len(n))...)
		list = append(list, n...)
	}
	return extension(extensionServerName, append(u16(len(list)), list...))
}

// helloBody is a minimal ClientHello body; exts nil means no extensions
// block at all.
func helloBody(exts ...[]byte) []byte {
	b := []byte{3, 3}
	b = append(b, make([]byte, 32)...)
	b = append(b, 0)                // session id
	b = append(b, 0, 2, 0x13, 0x01) // cipher suites
	b = append(b, 1, 0)             // compression
	if exts != nil {
		all := bytes.Join(exts, nil)
		b = append(b, u16(len(all))...)
		b = append(b, all...)
	}
	return b
}

// record wraps a body as a ClientHello handshake message in one record.
func record(body []byte) []byte {
	msg := append([]byte{handshakeTypeHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{22, 3, 1, byte(len(msg) >> 8), byte(len(msg))}, msg...)
}

func TestReadClientHelloHandMade(t *testing.T) {
	withBody := func(edit func([]byte) []byte) []byte { return record(edit(helloBody())) }
	manyRecords := func() []byte {
		// A handshake header promising 60000 bytes, then 1-byte records:
		// six bytes of input per byte of hello must hit the limit.
		in := []byte{22, 3, 1, 0, 4, handshakeTypeHello, 0, 0xea, 0x60}
		for range 12000 {
			in = append(in, 22, 3, 1, 0, 1, 0)
		}
		return in
	}()
	tests := []struct {
		name    string
		in      []byte
		wantSNI string
		wantErr string // "" for success
		notTLS  bool
	}{
		{"minimal with SNI", record(helloBody(sniExtension("Hand.Example"))), "hand.example", "", false},
		{"no extensions block", record(helloBody()), "", "", false},
		{"empty extensions block", record(helloBody([]byte{})), "", "", false},
		{"other extensions only", record(helloBody(extension(10, []byte{0, 2, 0, 29}))), "", "", false},
		{"unknown name type skipped", record(helloBody(extension(0, []byte{0, 4, 7, 0, 1, 'x'}))), "", "", false},
		{"SNI after other extensions", record(helloBody(extension(43, []byte{2, 3, 4}), extension(0xfe0d, make([]byte, 300)), sniExtension("late.example"))), "late.example", "", false},

		{"plain HTTP", []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), "", "not a TLS", true},
		{"one plain byte", []byte("G"), "", "not a TLS", true},
		{"SSLv2 hello", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, "", "not a TLS", true},
		{"wrong record version", []byte{22, 2, 0, 0, 4}, "", "not a TLS", true},
		{"empty input", nil, "", "EOF", false},

		{"duplicate server_name", record(helloBody(sniExtension("a.example"), sniExtension("b.example"))), "", "duplicate server_name", false},
		{"two host names", record(helloBody(sniExtension("a.example", "b.example"))), "", "more than one host_name", false},
		{"trailing dot", record(helloBody(sniExtension("dot.example."))), "", "ends in a dot", false},
		{"space in name", record(helloBody(sniExtension("a b.example"))), "", "byte 0x20", false},
		{"NUL in name", record(helloBody(sniExtension("a\x00.example"))), "", "byte 0x00", false},
		{"UTF-8 in name", record(helloBody(sniExtension("münchen.de"))), "", "byte 0xc3", false},
		{"empty name", record(helloBody(sniExtension(""))), "", "empty server name", false},
		{"empty name list", record(helloBody(extension(0, []byte{0, 0}))), "", "empty server_name list", false},
		{"name list too long", record(helloBody(extension(0, []byte{0, 9, 0, 0, 1, 'x'}))), "", "truncated server_name list", false},
		{"bytes after name list", record(helloBody(extension(0, []byte{0, 4, 0, 0, 1, 'x', 0}))), "", "trailing bytes", false},
		{"extension overruns", record(append(helloBody(), 0, 4, 0, 0, 0, 9)), "", "truncated extension data", false},
		{"extension data overruns", record(append(helloBody(), 0, 4, 0, 0, 0, 9, 1, 2)), "", "extensions length 4, but 6", false},
		{"extension header cut", record(append(helloBody(), 0, 3, 0, 0, 0)), "", "truncated extension length", false},
		{"lone extensions byte", record(append(helloBody(), 0)), "", "truncated extensions length", false},
		{"session id too long", withBody(func(b []byte) []byte { b[34] = 33; return b }), "", "session id of 33", false},
		{"odd cipher suites", withBody(func(b []byte) []byte { b[36] = 3; return b }), "", "cipher suites length 3", false},
		{"cipher suites overrun", withBody(func(b []byte) []byte { b[35] = 0xff; return b }), "", "truncated cipher suites", false},
		{"no compression", withBody(func(b []byte) []byte { return append(b[:39], 0) }), "", "no compression methods", false},
		{"body cut in random", record(helloBody()[:20]), "", "truncated random", false},
		{"empty body", record(nil), "", "truncated legacy_version", false},

		{"server hello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, "", "type 2, not ClientHello", false},
		{"zero-length record", []byte{22, 3, 1, 0, 0}, "", "empty TLS handshake record", false},
		{"oversize record", []byte{22, 3, 1, 0xff, 0xff}, "", "record length 65535 exceeds", false},
		{"oversize handshake", []byte{22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff}, "", "exceeds 65536", false},
		{"interrupted by alert", append([]byte{22, 3, 1, 0, 2, 1, 0}, 21, 3, 1, 0, 2, 2, 40), "", "record of type 21", false},
		{"bad version in second record", append([]byte{22, 3, 1, 0, 2, 1, 0}, 22, 9, 1, 0, 2, 0, 0), "", "version 9.1", false},
		{"many tiny records", manyRecords, "", "longer than 65536", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, name, err := readClientHello(bytes.NewReader(tc.in))
			if !bytes.HasPrefix(tc.in, raw) {
				t.Fatal("raw is not a prefix of the input")
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if name != tc.wantSNI {
					t.Errorf("SNI %q, want %q", name, tc.wantSNI)
				}
				if !bytes.Equal(raw, tc.in) {
					t.Errorf("raw %d bytes, want all %d", len(raw), len(tc.in))
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, SNI %q; want %q", name, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err %q, want it to mention %q", err, tc.wantErr)
			}
			if errors.Is(err, errNotTLS) != tc.notTLS {
				t.Errorf("errors.Is(err, errNotTLS) = %v", !tc.notTLS)
			}
			if name != "" {
				t.Errorf("SNI %q returned with an error", name)
			}
		})
	}
}

// TestReadClientHelloNotTLSReadsOneByte: a short plain-text request must not
// leave us blocked waiting for the rest of a record header.
func TestReadClientHelloNotTLSReadsOneByte(t *testing.T) {
	serverEnd, clientEnd := net.Pipe()
	defer serverEnd.Close()
	defer clientEnd.Close()
	_ = serverEnd.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = clientEnd.Write([]byte("G")) }()
	raw, _, err := readClientHello(serverEnd)
	if !errors.Is(err, errNotTLS) || string(raw) != "G" {
		t.Fatalf("raw %q, err %v", raw, err)
	}
}

func FuzzReadClientHello(f *testing.F) {
	for _, h := range capturedHellos(f) {
		f.Add(h)
		f.Add(refragment(f, h, 200))
	}
	f.Add(record(helloBody(sniExtension("a.example"))))
	f.Add(record(helloBody(sniExtension("a.example"), sniExtension("b.example"))))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		raw, name, err := readClientHello(bytes.NewReader(in))
		if !bytes.HasPrefix(in, raw) {
			t.Fatalf("raw (%d bytes) is not a prefix of the input", len(raw))
		}
		if len(raw) > maxClientHello {
			t.Fatalf("read %d bytes, over the limit", len(raw))
		}
		if err != nil {
			if name != "" {
				t.Fatalf("SNI %q with error %v", name, err)
			}
			return
		}
		raw2, name2, err := readClientHello(bytes.NewReader(raw))
		if err != nil || name2 != name || !bytes.Equal(raw2, raw) {
			t.Fatalf("re-parse: %q, %v; first parse %q", name2, err, name)
		}
		if name != strings.ToLower(name) {
			t.Fatalf("SNI %q not lower-cased", name)
		}
	})
}

func BenchmarkReadClientHello(b *testing.B) {
	hello, _, _ := captureHello(b, &tls.Config{ServerName: "www.example.com"})
	r := bytes.NewReader(hello)
	b.SetBytes(int64(len(hello)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(hello)
		if _, _, err := readClientHello(r); err != nil {
			b.Fatal(err)
		}
	}
}
