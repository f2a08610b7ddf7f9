package proxy

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Reading the ClientHello of a CONNECT tunnel by hand, before any upstream
// connection exists, so the filter can judge the SNI name and then replay the
// exact bytes upstream. crypto/tls offers no way to parse a ClientHello
// without also taking over the connection.

const (
	// maxClientHello bounds what one tunnel may make us buffer. Hellos with
	// post-quantum key shares are about 2 KB; 64 KB leaves room for many
	// extensions while denying a hostile client an unbounded buffer.
	maxClientHello = 64 << 10
	// maxRecordPayload is the largest TLSCiphertext fragment (RFC 8446
	// §5.2); a handshake record must be smaller still, but we only need a
	// bound that never rejects a real client.
	maxRecordPayload = 16384 + 2048

	recordHeaderLen      = 5
	recordTypeHandshake  = 22
	handshakeTypeHello   = 1
	extensionServerName  = 0
	serverNameTypeHost   = 0
	handshakeHeaderLen   = 4
	helloInitialCapacity = 2048 // one read buffer covers a typical hello
)

// errNotTLS means the tunnel does not start with a TLS handshake record; the
// bytes read so far are still returned so the caller can decide what to do
// with a plain-text protocol.
var errNotTLS = errors.New("not a TLS ClientHello")

// readClientHello reads from r exactly the TLS records that carry the first
// ClientHello handshake message (which may be split over several records), at
// most maxClientHello bytes, and returns every byte read (to replay upstream,
// also on error) and the SNI host name, lower-cased ("" when the extension is
// absent). Input that is not TLS gives errNotTLS; malformed or truncated input
// an error naming what was wrong. Nothing past the last record of the hello is
// read: those bytes belong to the stream.
func readClientHello(r io.Reader) (raw []byte, serverName string, err error) {
	raw = make([]byte, 0, helloInitialCapacity)

	// The first byte alone decides "not TLS", so a short plain-text request
	// does not leave us waiting for a record header that will never come.
	raw, err = readN(r, raw, 1)
	if err != nil {
		return raw, "", fmt.Errorf("reading TLS record header: %w", err)
	}
	if raw[0] != recordTypeHandshake {
		return raw, "", errNotTLS
	}
	raw, err = readN(r, raw, recordHeaderLen-1)
	if err != nil {
		return raw, "", fmt.Errorf("reading TLS record header: %w", err)
	}
	if raw[1] != 3 {
		return raw, "", errNotTLS
	}

	// hs is the handshake stream: record payloads without their headers.
	// With a single record (the usual case) it is just a view into raw.
	var hs []byte
	var fragmented []byte
	msgLen := -1 // handshake message length, once its header has arrived
	for records := 0; ; records++ {
		hdr := raw[len(raw)-recordHeaderLen:]
		if records > 0 {
			if hdr[0] != recordTypeHandshake {
				return raw, "", fmt.Errorf("ClientHello interrupted by a TLS record of type %d", hdr[0])
			}
			if hdr[1] != 3 {
				return raw, "", fmt.Errorf("TLS record version %d.%d in the middle of a ClientHello", hdr[1], hdr[2])
			}
		}
		n := int(hdr[3])<<8 | int(hdr[4])
		if n == 0 {
			return raw, "", errors.New("empty TLS handshake record")
		}
		if n > maxRecordPayload {
			return raw, "", fmt.Errorf("TLS record length %d exceeds %d", n, maxRecordPayload)
		}
		if len(raw)+n > maxClientHello {
			return raw, "", fmt.Errorf("ClientHello longer than %d bytes", maxClientHello)
		}
		start := len(raw)
		raw, err = readN(r, raw, n)
		if err != nil {
			return raw, "", fmt.Errorf("reading TLS record of %d bytes: %w", n, err)
		}
		payload := raw[start:]
		if records == 0 {
			hs = payload
		} else {
			if fragmented == nil {
				fragmented = slices.Clone(hs)
			}
			fragmented = append(fragmented, payload...)
			hs = fragmented
		}

		if msgLen < 0 && len(hs) >= handshakeHeaderLen {
			if hs[0] != handshakeTypeHello {
				return raw, "", fmt.Errorf("first TLS handshake message has type %d, not ClientHello", hs[0])
			}
			msgLen = int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			// Refuse a message that cannot fit under the limit now,
			// rather than after reading up to 64 KB of it.
			if recordHeaderLen+handshakeHeaderLen+msgLen > maxClientHello {
				return raw, "", fmt.Errorf("ClientHello of %d bytes exceeds %d", msgLen, maxClientHello)
			}
		}
		if msgLen >= 0 && len(hs) >= handshakeHeaderLen+msgLen {
			break
		}
		raw, err = readN(r, raw, recordHeaderLen)
		if err != nil {
			return raw, "", fmt.Errorf("reading TLS record header: %w", err)
		}
	}

	name, err := parseClientHello(hs[handshakeHeaderLen : handshakeHeaderLen+msgLen])
	if err != nil {
		return raw, "", fmt.Errorf("malformed ClientHello: %w", err)
	}
	return raw, name, nil
}

// readN appends exactly n bytes from r to buf, reading no further. Growth is
// driven by lengths already checked against maxClientHello, so hostile length
// fields cannot make it allocate more.
func readN(r io.Reader, buf []byte, n int) ([]byte, error) {
	start := len(buf)
	buf = slices.Grow(buf, n)[:start+n]
	got, err := io.ReadFull(r, buf[start:])
	buf = buf[:start+got]
	if err != nil {
		if errors.Is(err, io.EOF) && start > 0 {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	return buf, nil
}

// helloReader walks a ClientHello body with bounds checks; any short read
// sets a sticky error so the parser can be written straight through.
type helloReader struct {
	b   []byte
	err error
}

func (h *helloReader) fail(what string) {
	if h.err == nil {
		h.err = fmt.Errorf("truncated %s", what)
	}
	h.b = nil
}

func (h *helloReader) bytes(n int, what string) []byte {
	if h.err != nil || n > len(h.b) {
		h.fail(what)
		return nil
	}
	v := h.b[:n]
	h.b = h.b[n:]
	return v
}

func (h *helloReader) u8(what string) int {
	v := h.bytes(1, what)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (h *helloReader) u16(what string) int {
	v := h.bytes(2, what)
	if v == nil {
		return 0
	}
	return int(v[0])<<8 | int(v[1])
}

// parseClientHello returns the host_name of the server_name extension (RFC
// 6066 §3) from a ClientHello body (RFC 8446 §4.1.2).
func parseClientHello(body []byte) (string, error) {
	h := &helloReader{b: body}
	h.bytes(2, "legacy_version")
	h.bytes(32, "random")
	sessionID := h.u8("session id length")
	if sessionID > 32 {
		return "", fmt.Errorf("session id of %d bytes (at most 32)", sessionID)
	}
	h.bytes(sessionID, "session id")
	suites := h.u16("cipher suites length")
	if h.err == nil && (suites < 2 || suites%2 != 0) {
		return "", fmt.Errorf("cipher suites length %d", suites)
	}
	h.bytes(suites, "cipher suites")
	compression := h.u8("compression methods length")
	if h.err == nil && compression < 1 {
		return "", errors.New("no compression methods")
	}
	h.bytes(compression, "compression methods")
	if h.err != nil {
		return "", h.err
	}
	if len(h.b) == 0 {
		return "", nil // a hello without extensions is legal (TLS 1.2 and older)
	}
	extLen := h.u16("extensions length")
	if h.err == nil && extLen != len(h.b) {
		return "", fmt.Errorf("extensions length %d, but %d bytes follow", extLen, len(h.b))
	}

	name := ""
	seenSNI := false
	for h.err == nil && len(h.b) > 0 {
		typ := h.u16("extension type")
		data := h.bytes(h.u16("extension length"), "extension data")
		if h.err != nil || typ != extensionServerName {
			continue
		}
		// Two server_name extensions could let the filter judge one name
		// while the origin serves the other.
		if seenSNI {
			return "", errors.New("duplicate server_name extension")
		}
		seenSNI = true
		var err error
		if name, err = parseServerName(data); err != nil {
			return "", err
		}
	}
	if h.err != nil {
		return "", h.err
	}
	return name, nil
}

// parseServerName reads a ServerNameList, applying the same rules as
// crypto/tls so we never accept a name a real server would reject.
func parseServerName(data []byte) (string, error) {
	h := &helloReader{b: data}
	list := h.bytes(h.u16("server_name list length"), "server_name list")
	if h.err != nil {
		return "", h.err
	}
	if len(h.b) != 0 {
		return "", errors.New("trailing bytes after server_name list")
	}
	if len(list) == 0 {
		return "", errors.New("empty server_name list")
	}
	h = &helloReader{b: list}
	name := ""
	for h.err == nil && len(h.b) > 0 {
		typ := h.u8("server name type")
		v := h.bytes(h.u16("server name length"), "server name")
		if h.err != nil {
			break
		}
		if len(v) == 0 {
			return "", errors.New("empty server name")
		}
		if typ != serverNameTypeHost {
			continue
		}
		if name != "" {
			return "", errors.New("more than one host_name in server_name")
		}
		for _, c := range v {
			if c <= ' ' || c >= 0x7f {
				return "", fmt.Errorf("server name contains byte 0x%02x", c)
			}
		}
		if v[len(v)-1] == '.' {
			return "", errors.New("server name ends in a dot")
		}
		name = strings.ToLower(string(v))
	}
	if h.err != nil {
		return "", h.err
	}
	return name, nil
}
