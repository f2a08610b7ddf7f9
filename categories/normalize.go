package categories

// Normalisation turns the many spellings of a host or URL that reach the
// filter (DNS query names, CONNECT and SNI hosts, absolute proxy URLs, list
// entries) into one canonical Target, so that a list entry and a request for
// the same resource compare equal byte for byte. It follows the WHATWG URL
// standard wherever browsers and the standard agree, because a pupil's browser
// is what decides which server is really contacted: any spelling a browser
// accepts must canonicalise to the same Target as the plain spelling, or it
// becomes a way round the filter.

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Target is a canonical host with an optional path: the form the Index matches.
type Target struct {
	Host  string // lower-case ASCII (IDN as punycode "xn--"), no trailing dot, no port, no userinfo; IPv4 as dotted quad; IPv6 canonical (netip form) without brackets
	Path  string // "" when no path is known (bare host input); otherwise begins with "/"
	Query string // raw query after '?', as sent except that controls, space and non-ASCII are %-escaped as browsers do; "" if none (kept for later safe-search work)
}

// String returns Host+Path (and "?"+Query when Query is non-empty). The result
// is itself a valid Normalize input that yields the same Target.
func (t Target) String() string {
	if t.Query == "" {
		return t.Host + t.Path
	}
	return t.Host + t.Path + "?" + t.Query
}

// idnaLookup maps and converts internationalised names the way browsers do
// (UTS #46 non-transitional, as the WHATWG URL standard asks). STD3 rules are
// off because real hosts and block lists contain '_'; hyphen checks are off
// because browsers accept labels such as "r3---sn-abc" and "-foo"; our own
// character check after conversion is what enforces the host alphabet.
// A Profile is immutable once built, so sharing it is safe.
var idnaLookup = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
	idna.CheckHyphens(false),
)

// Host length limits from RFC 1035, applied to the ASCII form, and the most
// input handed to IDNA conversion (see normSlowHost).
const (
	maxLabelLen  = 63
	maxHostLen   = 253
	maxIDNAInput = 1024
)

// maxQuoted bounds how much of an input an error message repeats, so that a
// hostile megabyte-long URL cannot flood the logs.
const maxQuoted = 300

// normQuoted quotes s for an error message, shortening very long inputs.
func normQuoted(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:maxQuoted]), len(s))
}

// Normalize turns whatever a client or a list sends into a Target.
//
// Accepted forms: a bare host ("Example.COM."), a URL with any scheme
// ("https://user:pw@host:8443/a?q#f"), the scheme-less list form used by UT1
// "urls" files ("host/path", "host:port/path") and a network-path reference
// ("//host/path"). Surrounding white space is ignored. A bare host gets an
// empty Path; anything with a scheme, a path or a query gets a Path starting
// with "/". Errors name the input and say what was expected.
func Normalize(input string) (Target, error) {
	s := strings.TrimSpace(input)
	if s == "" {
		return Target{}, fmt.Errorf("normalize %s: empty input; expected a host name, IP address or URL", normQuoted(input))
	}
	rest, special, hasScheme := normSplitScheme(s)
	if !hasScheme {
		// Network-path reference "//host/path": drop the slashes so the rest
		// parses like the list form.
		if len(rest) >= 2 && normIsSlash(rest[0], true) && normIsSlash(rest[1], true) {
			for len(rest) > 0 && normIsSlash(rest[0], true) {
				rest = rest[1:]
			}
		}
	}
	// The fragment never reaches a server, so it cannot matter for filtering.
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	// The authority ends at the first path or query delimiter; for special
	// schemes (and the list form, which means http) a backslash counts as a
	// slash, exactly as in browsers.
	end := len(rest)
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c == '?' || normIsSlash(c, special) {
			end = i
			break
		}
	}
	authority, tail := rest[:end], rest[end:]

	host, err := normSplitAuthority(authority)
	if err != nil {
		return Target{}, fmt.Errorf("normalize %s: %w", normQuoted(input), err)
	}
	h, err := normalizeHost(host)
	if err != nil {
		return Target{}, fmt.Errorf("normalize %s: %w", normQuoted(input), err)
	}
	t := Target{Host: h}
	if !hasScheme && tail == "" {
		return t, nil // bare host: no path is known
	}
	rawPath, rawQuery := tail, ""
	if i := strings.IndexByte(tail, '?'); i >= 0 {
		rawPath, rawQuery = tail[:i], tail[i+1:]
	}
	t.Path = normPath(rawPath, special)
	t.Query = normQuery(rawQuery)
	return t, nil
}

// NormalizeHost canonicalises a host name alone (DNS query names, CONNECT hosts, SNI).
//
// The host must not carry a port or userinfo (split those off first); IPv6
// literals are accepted with or without brackets. A name that is already
// canonical is returned unchanged without allocating, because this runs for
// every DNS query; upper case and a trailing dot cost at most one allocation.
func NormalizeHost(host string) (string, error) {
	return normalizeHost(strings.TrimSpace(host))
}

// normalizeHost is NormalizeHost without the white-space trimming, shared with
// Normalize so that both give identical answers for a bare host.
func normalizeHost(in string) (string, error) {
	if n, upper, ok := normFastHost(in); ok {
		if !upper {
			return in[:n], nil // already canonical, or only a trailing dot
		}
		return strings.ToLower(in[:n]), nil // pure ASCII: one allocation
	}
	return normSlowHost(in)
}

// normFastHost reports whether in is a plain LDH(+'_') name that needs at most
// lower-casing and removal of one trailing dot; n is the length to keep. It
// refuses (ok == false) anything the slow path might change or reject: other
// characters, escapes, empty or long labels, "xn--" labels (they need IDNA
// validation) and a last label starting with a digit (it may be an IPv4
// number, which has several spellings).
func normFastHost(in string) (n int, upper, ok bool) {
	n = len(in)
	if n > 0 && in[n-1] == '.' {
		n--
	}
	if n == 0 || n > maxHostLen {
		return 0, false, false
	}
	start := 0
	for i := 0; i <= n; i++ {
		if i == n || in[i] == '.' {
			l := i - start
			if l == 0 || l > maxLabelLen {
				return 0, false, false
			}
			if l >= 4 && in[start]|0x20 == 'x' && in[start+1]|0x20 == 'n' && in[start+2] == '-' && in[start+3] == '-' {
				return 0, false, false
			}
			if i == n && '0' <= in[start] && in[start] <= '9' {
				return 0, false, false
			}
			start = i + 1
			continue
		}
		c := in[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			upper = true
		default:
			return 0, false, false
		}
	}
	return n, upper, true
}

// normSlowHost is the full host parser, in the order of the WHATWG host
// parser: IPv6 literal, percent-decoding, IDNA, forbidden characters, IPv4.
func normSlowHost(in string) (string, error) {
	if in == "" {
		return "", fmt.Errorf("host %s: empty; expected a host name or IP address", normQuoted(in))
	}
	if in[0] == '[' {
		if in[len(in)-1] != ']' {
			return "", fmt.Errorf("host %s: '[' without closing ']'; expected a bracketed IPv6 address", normQuoted(in))
		}
		return normIPv6(in, in[1:len(in)-1])
	}
	if strings.IndexByte(in, ':') >= 0 {
		// Names never contain ':', so this can only be a bare IPv6 literal.
		return normIPv6(in, in)
	}
	s := in
	if strings.IndexByte(s, '%') >= 0 {
		s = normPercentDecodeHost(s)
	}
	s = normLowerASCII(s)
	if normNeedsIDNA(s) {
		// Punycode conversion in x/net/idna is quadratic in label length (a
		// 120 KB host takes seconds), and a request line can carry a host that
		// long. A valid result is at most 253 bytes, and even fully
		// UTF-8 labels stay well under this bound, so refuse longer input.
		if len(s) > maxIDNAInput {
			return "", fmt.Errorf("host %s: %d bytes to convert; expected at most %d (a valid name is at most %d once converted)", normQuoted(in), len(s), maxIDNAInput, maxHostLen)
		}
		// x/net/idna maps an invalid UTF-8 byte to U+FFFD without an error
		// (the literal U+FFFD is refused), so invalid UTF-8 is caught here.
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("host %s: not valid UTF-8; expected an ASCII or UTF-8 internationalised domain name", normQuoted(in))
		}
		a, err := idnaLookup.ToASCII(s)
		if err != nil {
			return "", fmt.Errorf("host %s: not a valid internationalised domain name (%v)", normQuoted(in), err)
		}
		// The result must convert to itself, or normalising a Target twice
		// would differ; checking costs one more pass, for IDN hosts only, and
		// guards against any other leniency of the library.
		if b, err := idnaLookup.ToASCII(a); err != nil || b != a {
			return "", fmt.Errorf("host %s: internationalised name converts to %q, which does not validate; expected a name valid under IDNA lookup rules", normQuoted(in), a)
		}
		s = a
	}
	// One trailing dot is the DNS root and means nothing; it is removed only
	// after decoding and mapping because "%2e" and "。" spell it too.
	if strings.HasSuffix(s, ".") {
		s = s[:len(s)-1]
	}
	if s == "" {
		return "", fmt.Errorf("host %s: no labels; expected a host name or IP address", normQuoted(in))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !normHostByte(c) && c != '.' {
			return "", fmt.Errorf("host %s: character %q is not allowed; expected only a-z, 0-9, '-', '_' and '.' separating labels", normQuoted(in), rune(c))
		}
	}
	if normEndsInNumber(s) {
		return normIPv4(in, s)
	}
	if len(s) > maxHostLen {
		return "", fmt.Errorf("host %s: %d bytes long; expected at most %d", normQuoted(in), len(s), maxHostLen)
	}
	for i, rest := 1, s; ; i++ {
		l := strings.IndexByte(rest, '.')
		if l < 0 {
			l = len(rest)
		}
		if l == 0 {
			return "", fmt.Errorf("host %s: label %d is empty; expected 1 to %d characters between dots and at most one trailing dot", normQuoted(in), i, maxLabelLen)
		}
		if l > maxLabelLen {
			return "", fmt.Errorf("host %s: label %d is %d bytes long; expected at most %d", normQuoted(in), i, l, maxLabelLen)
		}
		if l == len(rest) {
			break
		}
		rest = rest[l+1:]
	}
	return s, nil
}

// normHostByte reports whether c may appear in a label of a canonical name.
func normHostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// normIPv6 canonicalises an IPv6 literal; in is the original host for errors.
func normIPv6(in, s string) (string, error) {
	if strings.IndexByte(s, '%') >= 0 {
		// A zone only has meaning on the client's own link and browsers
		// reject it, so it can never name a site worth filtering.
		return "", fmt.Errorf("host %s: IPv6 zone or escape not allowed; expected an address without %%zone", normQuoted(in))
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		if s == in && strings.Count(s, ":") == 1 {
			// Most likely "name:port" handed to NormalizeHost.
			return "", fmt.Errorf("host %s: not a valid IPv6 address; expected a host without a port (split \":port\" off first) or an IPv6 address", normQuoted(in))
		}
		return "", fmt.Errorf("host %s: not a valid IPv6 address; expected e.g. 2001:db8::1", normQuoted(in))
	}
	return a.String(), nil
}

// normEndsInNumber is the WHATWG "ends in a number" check: a last label that
// is all digits, or parses as an IPv4 number ("0x", "0x1f", "017"), makes the
// whole host an IPv4 address.
func normEndsInNumber(s string) bool {
	last := s[strings.LastIndexByte(s, '.')+1:]
	if last == "" {
		return false
	}
	digits := true
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			digits = false
			break
		}
	}
	if digits {
		return true
	}
	_, ok := normIPv4Number(last)
	return ok
}

// normIPv4 is the WHATWG IPv4 parser: 1 to 4 dot-separated numbers, each
// decimal, octal (leading 0) or hex (0x); the last fills the remaining bytes.
// Browsers connect to 3232235777 and 0300.0250.1.1 as 192.168.1.1, so every
// such spelling must reach the same Target.
func normIPv4(in, s string) (string, error) {
	var nums [4]uint64
	n := 0
	for rest := s; ; {
		part := rest
		i := strings.IndexByte(rest, '.')
		if i >= 0 {
			part = rest[:i]
		}
		if n == 4 {
			return "", fmt.Errorf("host %s: more than 4 parts; expected an IPv4 address such as 192.168.1.1", normQuoted(in))
		}
		v, ok := normIPv4Number(part)
		if !ok {
			return "", fmt.Errorf("host %s: part %d (%s) is not a decimal, octal or hex number; expected an IPv4 address since the last label is numeric", normQuoted(in), n+1, normQuoted(part))
		}
		nums[n] = v
		n++
		if i < 0 {
			break
		}
		rest = rest[i+1:]
	}
	var addr uint64
	for i := 0; i < n-1; i++ {
		if nums[i] > 255 {
			return "", fmt.Errorf("host %s: part %d is %d; expected 0 to 255", normQuoted(in), i+1, nums[i])
		}
		addr |= nums[i] << (8 * (3 - i))
	}
	if limit := uint64(1) << (8 * (5 - n)); nums[n-1] >= limit {
		return "", fmt.Errorf("host %s: last part is %d; expected less than %d", normQuoted(in), nums[n-1], limit)
	}
	addr |= nums[n-1]
	return netip.AddrFrom4([4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)}).String(), nil
}

// normIPv4Number parses one IPv4 part. Values beyond 32 bits are clamped to
// 1<<32, which every range check rejects, so long inputs cannot overflow.
func normIPv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := uint64(10)
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s, base = s[2:], 16
	} else if len(s) >= 2 && s[0] == '0' {
		s, base = s[1:], 8
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d, ok := normHexVal(s[i])
		if !ok || uint64(d) >= base {
			return 0, false
		}
		if v = v*base + uint64(d); v > 1<<32 {
			v = 1 << 32
		}
	}
	return v, true
}

// normSplitScheme removes a leading "scheme://" and reports whether the URL is
// special (http, https, ws, wss, ftp: backslash acts as slash). Special schemes
// accept any run of '/' or '\' after the colon, as browsers do; other schemes
// need "//". Without either, "name:8080" is a host and port, not a scheme. The
// list form has no scheme but means http, so it is special too.
func normSplitScheme(s string) (rest string, special, ok bool) {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if 'a' <= c|0x20 && c|0x20 <= 'z' || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			continue
		}
		break
	}
	if i == 0 || i == len(s) || s[i] != ':' {
		return s, true, false
	}
	scheme, after := s[:i], s[i+1:]
	switch strings.ToLower(scheme) {
	case "http", "https", "ws", "wss", "ftp":
		j := 0
		for j < len(after) && normIsSlash(after[j], true) {
			j++
		}
		if j == 0 {
			return s, true, false
		}
		return after[j:], true, true
	}
	if strings.HasPrefix(after, "//") {
		return after[2:], false, true
	}
	return s, true, false
}

// normIsSlash reports whether c separates path segments.
func normIsSlash(c byte, special bool) bool {
	return c == '/' || special && c == '\\'
}

// normSplitAuthority strips userinfo and port from an authority and returns
// the host. The last '@' ends the userinfo because a password may contain '@'.
func normSplitAuthority(auth string) (string, error) {
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		auth = auth[i+1:]
	}
	host, port, hasPort := auth, "", false
	if strings.HasPrefix(auth, "[") {
		j := strings.IndexByte(auth, ']')
		if j < 0 {
			return "", fmt.Errorf("host %s: '[' without closing ']'; expected a bracketed IPv6 address", normQuoted(auth))
		}
		host = auth[:j+1]
		if after := auth[j+1:]; after != "" {
			if after[0] != ':' {
				return "", fmt.Errorf("authority %s: %s after ']'; expected nothing or \":port\"", normQuoted(auth), normQuoted(after))
			}
			port, hasPort = after[1:], true
		}
	} else if i := strings.IndexByte(auth, ':'); i >= 0 && strings.IndexByte(auth[i+1:], ':') < 0 {
		// Exactly one colon: host:port. More than one can only be a bare
		// IPv6 literal, which has no room for a port.
		host, port, hasPort = auth[:i], auth[i+1:], true
	}
	if hasPort {
		// An empty port is allowed ("host:/"), as in browsers.
		if len(port) > 5 {
			return "", fmt.Errorf("authority %s: port %s; expected a number 0 to 65535", normQuoted(auth), normQuoted(port))
		}
		v := 0
		for k := 0; k < len(port); k++ {
			if port[k] < '0' || port[k] > '9' {
				return "", fmt.Errorf("authority %s: port %s; expected a number 0 to 65535", normQuoted(auth), normQuoted(port))
			}
			v = v*10 + int(port[k]-'0')
		}
		if v > 65535 {
			return "", fmt.Errorf("authority %s: port %s; expected a number 0 to 65535", normQuoted(auth), normQuoted(port))
		}
	}
	return host, nil
}

// normPercentDecodeHost decodes %XX escapes in a host; an invalid escape is
// left as is and later rejected as a forbidden '%'.
func normPercentDecodeHost(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := normHexVal(s[i+1])
			lo, ok2 := normHexVal(s[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

// normLowerASCII lower-cases ASCII letters only, leaving other bytes (UTF-8
// or not) alone for IDNA to map or reject.
func normLowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// normNeedsIDNA reports whether s (already ASCII-lower-cased) has non-ASCII
// bytes to map or an "xn--" label to validate.
func normNeedsIDNA(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
		if (i == 0 || s[i-1] == '.') && strings.HasPrefix(s[i:], "xn--") {
			return true
		}
	}
	return false
}

// normHexVal decodes one hexadecimal digit.
func normHexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// normLitPercent stands in for a '%' that did not start a valid escape while
// the path is rebuilt; it cannot occur otherwise because NUL is always
// escaped. It is resolved by normPath once the final neighbours are known.
const normLitPercent = 0

const normHexDigits = "0123456789abcdef"

// normPathKeepsLiteral reports whether c is written as itself in a canonical
// path. '/', '?', '#', '%' and '\' keep their escapes because decoding them
// would change the URL's structure; space, controls, DEL and non-ASCII stay
// escaped because that is how browsers send them (and trailing space would
// not survive trimming).
func normPathKeepsLiteral(c byte) bool {
	return c > ' ' && c < 0x7f && c != '?' && c != '#' && c != '%' && c != '\\' && c != '/'
}

// normPath canonicalises a raw path (without query or fragment): escapes of
// harmless printable ASCII are decoded, everything is lower-cased (pupils
// change case to dodge the lists), dot segments are resolved (RFC 3986
// §5.2.4, after decoding so "%2e%2e" counts) and runs of '/' are collapsed.
func normPath(raw string, special bool) string {
	b := make([]byte, 0, len(raw)+1)
	if raw == "" || !normIsSlash(raw[0], special) {
		b = append(b, '/')
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 < len(raw) {
				hi, ok1 := normHexVal(raw[i+1])
				lo, ok2 := normHexVal(raw[i+2])
				if ok1 && ok2 {
					i += 2
					d := hi<<4 | lo
					if normPathKeepsLiteral(d) {
						b = append(b, normLowerByte(d))
					} else {
						b = append(b, '%', normHexDigits[d>>4], normHexDigits[d&15])
					}
					continue
				}
			}
			// Browsers send stray '%' as is, so it is kept, not rejected.
			b = append(b, normLitPercent)
		case normIsSlash(c, special):
			b = append(b, '/')
		case normPathKeepsLiteral(c):
			b = append(b, normLowerByte(c))
		default:
			b = append(b, '%', normHexDigits[c>>4], normHexDigits[c&15])
		}
	}

	// Dot segments, RFC 3986 §5.2.4, on the '/'-separated segments. Empty
	// segments are kept here so that "/a//../b" gives "/a/b" as in browsers,
	// and only collapsed afterwards.
	segs := strings.Split(string(b[1:]), "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case ".":
			trailing = last
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, seg)
		}
	}

	b = b[:0]
	for _, seg := range out {
		if seg != "" {
			b = append(b, '/')
			b = append(b, seg...)
		}
	}
	if len(b) == 0 || trailing || out[len(out)-1] == "" {
		b = append(b, '/')
	}

	// A stray '%' stays literal unless its new neighbours would now read as
	// an escape ("%" then "%34" decoded to "4"); then it is written as "%25"
	// so that normalising the result again changes nothing.
	res := make([]byte, 0, len(b)+4)
	for i := 0; i < len(b); i++ {
		if b[i] != normLitPercent {
			res = append(res, b[i])
			continue
		}
		res = append(res, '%')
		if i+2 < len(b) {
			_, ok1 := normHexVal(b[i+1])
			_, ok2 := normHexVal(b[i+2])
			if ok1 && ok2 {
				res = append(res, '2', '5')
			}
		}
	}
	return string(res)
}

// normLowerByte lower-cases an ASCII letter.
func normLowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// normQuery keeps the query as sent, except that bytes a browser would never
// send raw (controls, space, DEL, non-ASCII) are percent-encoded the way a
// browser encodes them, so that a query such as "q=a " survives String and
// re-normalisation unchanged.
func normQuery(q string) string {
	clean := true
	for i := 0; i < len(q); i++ {
		if q[i] <= ' ' || q[i] >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return q
	}
	const upper = "0123456789ABCDEF"
	b := make([]byte, 0, len(q)+8)
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f {
			b = append(b, '%', upper[c>>4], upper[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// NormalizePath canonicalises the escaped path of an http(s) URL (without
// query or fragment) the way Normalize does, for servers that have already
// split the URL: the proxy decides on the path a client actually sent.
func NormalizePath(escapedPath string) string { return normPath(escapedPath, true) }
