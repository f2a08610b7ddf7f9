package listfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"

	"hedgerow/categories"
)

// scan reads the lines of one list file of kind k and emits its entries in
// category cat. A line longer than maxLine is malformed, not an error.
func (rd *reader) scan(file string, br *bufio.Reader, k kind, cat string) error {
	rd.rep.Files++
	var res []result
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			n++
			rd.rep.Lines++
			rd.malformed(file, n, bytes.TrimSpace(line), fmt.Sprintf("line longer than %d bytes", maxLine))
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			switch err {
			case nil:
				continue
			case io.EOF:
				return nil
			}
			return fmt.Errorf("read %s line %d: %w", file, n, err)
		}
		if err != nil && err != io.EOF {
			// A partial line before a read error is not trusted.
			return fmt.Errorf("read %s line %d: %w", file, n+1, err)
		}
		if len(line) > 0 {
			n++
			rd.rep.Lines++
			if n&1023 == 0 {
				// The input reader checks ctx on every refill; this also
				// stops a read whose emit cancelled mid-buffer.
				if err := rd.ctx.Err(); err != nil {
					return fmt.Errorf("read %s line %d: %w", file, n, err)
				}
			}
			if n == 1 {
				line = bytes.TrimPrefix(line, utf8BOM)
			}
			res = parseLine(k, line, res[:0])
			for _, r := range res {
				if r.reason != "" {
					rd.malformed(file, n, bytes.TrimSpace(line), r.reason)
					continue
				}
				if err := rd.emit(Entry{Target: r.target, Category: cat, Allow: r.allow}); err != nil {
					return fmt.Errorf("read %s line %d: %w", file, n, err)
				}
				rd.rep.Entries++
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

var utf8BOM = []byte("\xef\xbb\xbf")

// result is one item of a line: an entry (reason empty) or a rejection.
type result struct {
	target string
	allow  bool
	reason string
}

func reject(reason string) result { return result{reason: reason} }

// parseLine appends the items of one line to res. Blank lines, comments and
// the self-names of hosts files give none.
func parseLine(k kind, line []byte, res []result) []result {
	switch k {
	case kindHosts:
		return parseHosts(line, res)
	case kindDomains, kindUT1Domains:
		return parseDomains(line, k == kindUT1Domains, res)
	case kindUT1URLs:
		return parseURLs(line, res)
	case kindAdblock:
		return parseAdblock(line, res)
	}
	panic("listfile: unknown kind")
}

// parseHosts parses "IP name [name...] [# comment]".
func parseHosts(line []byte, res []result) []result {
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return res
	}
	addr, rest := nextField(line)
	var block bool
	switch string(addr) { // no allocation: the compiler compares in place
	case "0.0.0.0", "127.0.0.1", "::", "::1":
		block = true
	default:
		a, err := netip.ParseAddr(string(addr))
		if err != nil {
			return append(res, reject(fmt.Sprintf("bad IP address %q", addr)))
		}
		block = a.IsUnspecified() || a.IsLoopback()
	}
	if len(rest) == 0 {
		return append(res, reject("no host name after the address"))
	}
	for len(rest) > 0 {
		var name []byte
		name, rest = nextField(rest)
		if selfName(name) {
			continue
		}
		if !block {
			res = append(res, reject(fmt.Sprintf("%q: address %s does not block (want 0.0.0.0, 127.x.x.x, :: or ::1)", name, addr)))
			continue
		}
		r := hostResult(name)
		if r.reason != "" {
			r.reason = fmt.Sprintf("%q: %s", name, r.reason)
		}
		res = append(res, r)
	}
	return res
}

// selfName reports the names hosts files map for the machine itself.
func selfName(b []byte) bool {
	if len(b) > 4 && bytes.EqualFold(b[:4], []byte("ip6-")) {
		return true
	}
	if len(b) > len("localhost6.localdomain6") {
		return false
	}
	for _, s := range selfNames {
		if bytes.EqualFold(b, []byte(s)) {
			return true
		}
	}
	return false
}

var selfNames = []string{
	"localhost", "localhost.localdomain", "local", "broadcasthost", "0.0.0.0",
	"localhost4", "localhost4.localdomain4", "localhost6", "localhost6.localdomain6",
}

// parseDomains parses one name (or, in a plain domain list, host/path) per
// line, with '#' comments.
func parseDomains(line []byte, ut1 bool, res []result) []result {
	line = cutComment(line)
	if len(line) == 0 {
		return res
	}
	if bytes.ContainsAny(line, " \t") {
		return append(res, reject("more than one field"))
	}
	// "*.example.com" and ".example.com" say what a domain entry means anyway.
	if bytes.HasPrefix(line, []byte("*.")) {
		line = line[2:]
	} else if line[0] == '.' {
		line = line[1:]
	}
	if bytes.IndexByte(line, '/') >= 0 {
		if ut1 {
			return append(res, reject("'/' in a UT1 domains file"))
		}
		return append(res, urlResult(line))
	}
	return append(res, hostResult(line))
}

// cutComment strips a '#' comment: a whole-line one, one after white space,
// or, on a line with no '/' before it (no URL fragment possible), any '#'.
func cutComment(line []byte) []byte {
	for i := 0; i < len(line); i++ {
		if line[i] != '#' {
			continue
		}
		if i == 0 || line[i-1] == ' ' || line[i-1] == '\t' || bytes.IndexByte(line[:i], '/') < 0 {
			line = line[:i]
			break
		}
	}
	return bytes.TrimSpace(line)
}

// parseURLs parses a UT1 urls file: host/path prefixes, no comments but a
// leading '#'.
func parseURLs(line []byte, res []result) []result {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] == '#' {
		return res
	}
	if bytes.ContainsAny(line, " \t") {
		return append(res, reject("more than one field"))
	}
	return append(res, urlResult(line))
}

const notDomainRule = "not a domain rule"

// parseAdblock parses AdBlock domain rules: ||name^ and @@||name^, with the
// options $important, $all and $document only.
func parseAdblock(line []byte, res []result) []result {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] == '!' || hasPrefixFold(line, "[adblock") {
		return res
	}
	if line[0] == '#' && !isCosmetic(line) {
		return res // a '#' comment, as AdGuard DNS lists write them
	}
	allow := false
	if bytes.HasPrefix(line, []byte("@@")) {
		allow, line = true, line[2:]
	}
	if !bytes.HasPrefix(line, []byte("||")) {
		return append(res, reject(notDomainRule))
	}
	line = line[2:]
	caret := bytes.IndexByte(line, '^')
	if caret <= 0 {
		return append(res, reject(notDomainRule))
	}
	name, tail := line[:caret], line[caret+1:]
	if len(tail) > 0 {
		if tail[0] != '$' || !domainOptions(tail[1:]) {
			return append(res, reject(notDomainRule))
		}
	}
	if bytes.ContainsAny(name, "*/|^$~=,:@?#[]\\ \t") {
		return append(res, reject(notDomainRule))
	}
	r := hostResult(name)
	r.allow = allow
	return append(res, r)
}

// domainOptions accepts the options that keep a rule a plain domain rule.
func domainOptions(opts []byte) bool {
	if len(opts) == 0 {
		return false
	}
	for len(opts) > 0 {
		var o []byte
		if i := bytes.IndexByte(opts, ','); i >= 0 {
			o, opts = opts[:i], opts[i+1:]
			if len(opts) == 0 {
				return false // trailing comma
			}
		} else {
			o, opts = opts, nil
		}
		switch string(o) {
		case "important", "all", "document", "doc":
		default:
			return false
		}
	}
	return true
}

func isCosmetic(line []byte) bool {
	for _, p := range []string{"##", "#@#", "#?#", "#$#", "#%#", "#@?#", "#@$#", "#@%#"} {
		if bytes.HasPrefix(line, []byte(p)) {
			return true
		}
	}
	return false
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

// hostResult turns a bare name into a domain entry.
func hostResult(name []byte) result {
	if len(name) == 0 {
		return reject("empty host name")
	}
	for _, c := range name {
		if notInHost[c] {
			return reject("not a host name")
		}
	}
	t, err := categories.Normalize(string(name))
	if err != nil {
		return reject("invalid host name: " + err.Error())
	}
	if t.Path != "" || t.Query != "" || t.Host == "" {
		return reject("not a host name")
	}
	if why := checkHost(t.Host); why != "" {
		return reject(why)
	}
	return result{target: t.Host}
}

// notInHost marks the bytes that make a name a URL, a host:port or
// several fields rather than a bare host name.
var notInHost = func() (t [256]bool) {
	for _, c := range []byte("/:?#@[]\\ \t") {
		t[c] = true
	}
	return t
}()

// urlResult turns host/path (or a full URL) into a URL-prefix entry,
// Host+Path without the query; no path at all is the prefix "host/".
func urlResult(s []byte) result {
	t, err := categories.Normalize(string(s))
	if err != nil {
		return reject("invalid URL: " + err.Error())
	}
	if t.Host == "" {
		return reject("invalid URL: no host")
	}
	if why := checkHost(t.Host); why != "" {
		return reject(why)
	}
	p := t.Path
	if p == "" {
		p = "/"
	}
	return result{target: t.Host + p}
}

// checkHost rejects canonical hosts that cannot be list entries: single
// labels and ICANN public suffixes (an entry "co.uk" would block a TLD).
func checkHost(host string) string {
	if strings.IndexByte(host, ':') >= 0 {
		return "" // an IPv6 address (URL entries only)
	}
	if strings.IndexByte(host, '.') < 0 {
		return "single-label name"
	}
	if ps, icann := publicsuffix.PublicSuffix(host); icann && ps == host {
		return "public suffix: would block every name under it"
	}
	return ""
}

// nextField splits off the first space- or tab-separated field of a
// trimmed line.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && b[i] != ' ' && b[i] != '\t' {
		i++
	}
	if i == len(b) {
		return b, nil
	}
	field, rest = b[:i], b[i+1:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	return field, rest
}

// detect judges the format of a list by its first meaningful lines, without
// consuming them: the most frequent of AdBlock rules, "IP name" lines and
// anything else (a domain list) among the first 20.
func detect(br *bufio.Reader) (kind, error) {
	buf, err := br.Peek(maxLine)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return 0, err
	}
	buf = bytes.TrimPrefix(buf, utf8BOM)
	var adblock, hosts, domains, bang, seen int
	for len(buf) > 0 && seen < 20 {
		var line []byte
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			line, buf = buf[:i], buf[i+1:]
		} else {
			line, buf = buf, nil
		}
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0:
			continue
		case line[0] == '!':
			bang++
			continue
		case hasPrefixFold(line, "[adblock"):
			return kindAdblock, nil
		case line[0] == '#' && !isCosmetic(line):
			continue
		}
		seen++
		switch {
		case bytes.HasPrefix(line, []byte("||")), bytes.HasPrefix(line, []byte("@@")), isCosmetic(line):
			adblock++
		case isHostsLine(line):
			hosts++
		default:
			domains++
		}
	}
	switch {
	case adblock > 0 && adblock >= hosts && adblock >= domains:
		return kindAdblock, nil
	case hosts > 0 && hosts >= domains:
		return kindHosts, nil
	case seen == 0 && bang > 0:
		return kindAdblock, nil
	}
	return kindDomains, nil
}

func isHostsLine(line []byte) bool {
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		line = bytes.TrimSpace(line[:i])
	}
	addr, rest := nextField(line)
	if len(rest) == 0 {
		return false
	}
	_, err := netip.ParseAddr(string(addr))
	return err == nil
}
