package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	"hedgerow/categories"
)

// checkHead refuses the request-head shapes that smuggle one request inside
// another or send the proxy somewhere other than it decided on (RFC 9112
// §6.3, §3.2.2; the classes behind Squid's smuggling CVEs): Content-Length
// together with Transfer-Encoding, more than one Content-Length field, a
// header line folded onto the next (obs-fold), white space before a field's
// colon, and a Host header that names
// another host than the absolute request target. Go's server accepts all of
// these and repairs them quietly; a filter refuses them. uriHost is the host
// of an absolute-form request target ("" for origin form).
func checkHead(head []byte, uriHost string) error {
	lines := bytes.Split(head, []byte("\r\n"))
	var contentLengths, transferEncodings int
	for i, line := range lines {
		if i == 0 || len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errors.New("a header line is folded onto the next (obs-fold)")
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return fmt.Errorf("header line %d has no colon", i+1)
		}
		if n := len(name); n == 0 || name[n-1] == ' ' || name[n-1] == '\t' {
			return fmt.Errorf("header line %d has white space before its colon", i+1)
		}
		switch {
		case asciiEqualFold(name, "content-length"):
			contentLengths++
		case asciiEqualFold(name, "transfer-encoding"):
			transferEncodings++
		case asciiEqualFold(name, "host") && uriHost != "":
			h := strings.TrimSpace(string(value))
			if !sameAuthorityHost(h, uriHost) {
				return fmt.Errorf("the Host header %q names another host than the request target %q", h, uriHost)
			}
		}
	}
	switch {
	case contentLengths > 0 && transferEncodings > 0:
		return errors.New("both Content-Length and Transfer-Encoding are present")
	case contentLengths > 1:
		return errors.New("more than one Content-Length")
	}
	return nil
}

// sameAuthorityHost reports whether two authorities ("host[:port]") name the
// same host once canonicalised, so "Example.COM:80" matches "example.com".
func sameAuthorityHost(a, b string) bool {
	ha, _ := splitHostPort(a)
	hb, _ := splitHostPort(b)
	ca, err := categories.NormalizeHost(ha)
	if err != nil {
		return false
	}
	cb, err := categories.NormalizeHost(hb)
	return err == nil && ca == cb
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(authority string) (host, port string) {
	if h, p, err := net.SplitHostPort(authority); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(authority, "["), "]"), ""
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
