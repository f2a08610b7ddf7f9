package identity

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// ParseISC reads ISC dhcpd's lease database (dhcpd.leases(5)): "lease ADDR {
// ... }" blocks with starts, ends, binding state, hardware ethernet,
// client-hostname and uid. dhcpd appends a block whenever a lease changes, so
// a later block for the same device supersedes the end of an earlier one, a
// block for another device ends the earlier holder's lease where it starts,
// and a block in any state but active (free, released, expired, abandoned,
// backup) ends the lease running at its ends (when it names its device, its
// starts and ends are the time that device held the address). Other
// declarations (server-duid, failover state, DHCPv6 ia-na blocks) are
// skipped. Times are UTC, or "epoch N" when dhcpd runs with db-time-format
// local.
func ParseISC(r io.Reader, name string) ([]Lease, error) {
	p := &iscParser{lx: iscLexer{r: bufio.NewReader(r), name: name, line: 1}, j: newJournal()}
	for {
		t, err := p.lx.next()
		if err != nil {
			return nil, err
		}
		switch {
		case t.kind == tokEOF:
			return p.j.leases(), nil
		case t.kind == tokWord && t.text == "lease":
			err = p.lease(t.line)
		default:
			err = p.skip(t)
		}
		if err != nil {
			return nil, err
		}
	}
}

// Token kinds; the punctuation tokens are their own byte.
const (
	tokEOF    = 0
	tokWord   = 'w'
	tokString = 's'
)

// maxToken bounds a word or a string, so that a corrupt file cannot make the
// reader hold an unbounded token.
const maxToken = 64 << 10

type iscToken struct {
	kind byte
	text string
	line int
}

// iscLexer splits the file into words, quoted strings and the punctuation
// "{", "}" and ";", dropping "#" comments.
type iscLexer struct {
	r    *bufio.Reader
	name string
	line int
}

func (lx *iscLexer) errf(line int, format string, args ...any) error {
	return fmt.Errorf("%s line %d: %s", lx.name, line, fmt.Sprintf(format, args...))
}

func (lx *iscLexer) readByte() (byte, bool, error) {
	c, err := lx.r.ReadByte()
	if errors.Is(err, io.EOF) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%s line %d: %w", lx.name, lx.line, err)
	}
	return c, true, nil
}

func (lx *iscLexer) next() (iscToken, error) {
	for {
		c, ok, err := lx.readByte()
		if err != nil || !ok {
			return iscToken{kind: tokEOF, line: lx.line}, err
		}
		switch c {
		case '\n':
			lx.line++
		case ' ', '\t', '\r', '\f', '\v':
		case '#':
			if err := lx.skipComment(); err != nil {
				return iscToken{}, err
			}
		case '{', '}', ';':
			return iscToken{kind: c, line: lx.line}, nil
		case '"':
			return lx.str()
		default:
			return lx.word(c)
		}
	}
}

func (lx *iscLexer) skipComment() error {
	for {
		c, ok, err := lx.readByte()
		if err != nil || !ok {
			return err
		}
		if c == '\n' {
			lx.line++
			return nil
		}
	}
}

func (lx *iscLexer) word(first byte) (iscToken, error) {
	var b strings.Builder
	b.WriteByte(first)
	for {
		c, ok, err := lx.readByte()
		if err != nil {
			return iscToken{}, err
		}
		if !ok {
			break
		}
		if strings.IndexByte(" \t\r\n\f\v{};\"#", c) >= 0 {
			if err := lx.r.UnreadByte(); err != nil {
				return iscToken{}, fmt.Errorf("%s line %d: %w", lx.name, lx.line, err)
			}
			break
		}
		if b.Len() >= maxToken {
			return iscToken{}, lx.errf(lx.line, "word longer than %d bytes", maxToken)
		}
		b.WriteByte(c)
	}
	return iscToken{kind: tokWord, text: b.String(), line: lx.line}, nil
}

// str reads a quoted string; dhcpd escapes '"' and '\' with a backslash and
// writes other bytes it does not print as three octal digits.
func (lx *iscLexer) str() (iscToken, error) {
	start := lx.line
	var b strings.Builder
	for {
		c, ok, err := lx.readByte()
		if err != nil {
			return iscToken{}, err
		}
		if !ok {
			return iscToken{}, lx.errf(start, "string not closed: want a closing '\"'")
		}
		if b.Len() >= maxToken {
			return iscToken{}, lx.errf(start, "string longer than %d bytes", maxToken)
		}
		switch c {
		case '"':
			return iscToken{kind: tokString, text: b.String(), line: start}, nil
		case '\n':
			lx.line++
		case '\\':
			if c, err = lx.escape(start); err != nil {
				return iscToken{}, err
			}
		}
		b.WriteByte(c)
	}
}

func (lx *iscLexer) escape(start int) (byte, error) {
	c, ok, err := lx.readByte()
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, lx.errf(start, "string not closed: want a closing '\"'")
	}
	switch c {
	case 'n':
		return '\n', nil
	case 't':
		return '\t', nil
	case 'r':
		return '\r', nil
	}
	if c < '0' || c > '7' {
		return c, nil
	}
	v := int(c - '0')
	for range 2 {
		d, ok, err := lx.readByte()
		if err != nil {
			return 0, err
		}
		if !ok || d < '0' || d > '7' {
			return 0, lx.errf(lx.line, "escape in string: want three octal digits after '\\'")
		}
		v = v*8 + int(d-'0')
	}
	if v > 0xff {
		return 0, lx.errf(lx.line, "escape in string: \\%o is more than one byte", v)
	}
	return byte(v), nil
}

type iscParser struct {
	lx iscLexer
	j  *journal
}

// skip passes over a declaration hedgerow does not use: up to its ";" or,
// for a block, its closing "}".
func (p *iscParser) skip(t iscToken) error {
	start, depth := t.line, 0
	for {
		switch t.kind {
		case ';':
			if depth == 0 {
				return nil
			}
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return p.lx.errf(t.line, "unexpected \"}\" with no block open")
			}
			if depth--; depth == 0 {
				return nil
			}
		case tokEOF:
			return p.lx.errf(t.line, "declaration from line %d not finished: want \";\" or a closing \"}\"", start)
		}
		var err error
		if t, err = p.lx.next(); err != nil {
			return err
		}
	}
}

// iscBlock is what one lease block says.
type iscBlock struct {
	lease Lease
	state string
}

// lease reads "ADDR { statements }" after the word lease.
func (p *iscParser) lease(line int) error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	addr, perr := netip.ParseAddr(t.text)
	if t.kind != tokWord || perr != nil {
		return p.lx.errf(t.line, "lease: want an IP address after \"lease\", got %q", t.text)
	}
	if t, err = p.lx.next(); err != nil {
		return err
	}
	if t.kind != '{' {
		return p.lx.errf(t.line, "lease %s: want \"{\" after the address", addr)
	}
	b := iscBlock{lease: Lease{Addr: addr, Source: FormatISC}}
	for {
		t, err := p.lx.next()
		if err != nil {
			return err
		}
		switch t.kind {
		case '}':
			p.apply(b)
			return nil
		case ';':
		case tokEOF:
			return p.lx.errf(line, "lease %s: block not closed: want \"}\"", addr)
		case tokWord:
			if err := p.statement(&b, t); err != nil {
				return err
			}
		default:
			return p.lx.errf(t.line, "lease %s: want a statement, got %q", addr, t.text)
		}
	}
}

// statement reads one statement of a lease block, first word given, and
// keeps what hedgerow uses.
func (p *iscParser) statement(b *iscBlock, first iscToken) error {
	var args []string
	for {
		t, err := p.lx.next()
		if err != nil {
			return err
		}
		switch t.kind {
		case tokWord, tokString:
			args = append(args, t.text)
			continue
		case '{': // "on expiry { ... }": stored statements, not used
			return p.skip(t)
		case ';':
		default:
			return p.lx.errf(t.line, "lease %s: %s: want \";\" to end the statement", b.lease.Addr, first.text)
		}
		break
	}
	l := &b.lease
	var err error
	switch first.text {
	case "starts":
		l.Start, err = iscTime(args)
	case "ends":
		l.End, err = iscTime(args)
	case "binding":
		if len(args) != 2 || args[0] != "state" {
			err = fmt.Errorf("want \"binding state STATE\", got %q", strings.Join(args, " "))
		} else {
			b.state = args[1]
		}
	case "hardware":
		if len(args) != 2 {
			err = fmt.Errorf("want \"hardware TYPE ADDRESS\", got %q", strings.Join(args, " "))
		} else {
			l.MAC, err = CanonicalMAC(args[1])
		}
	case "client-hostname":
		if len(args) == 1 {
			l.Hostname = cleanHostname(args[0])
		}
	case "uid":
		if len(args) == 1 {
			l.ClientID = hexID([]byte(args[0]))
		}
	}
	if err != nil {
		return p.lx.errf(first.line, "lease %s: %s: %v", l.Addr, first.text, err)
	}
	return nil
}

// apply adds a finished block to the journal. A block in a state where no
// device holds the address still records, when it names the device, the
// time that device held it (dhcpd keeps starts and sets ends to the expiry
// or release); otherwise it ends whatever lease runs at its ends.
func (p *iscParser) apply(b iscBlock) {
	l := b.lease
	switch {
	case b.state == "" || b.state == "active" || b.state == "bootp":
		p.j.bind(l)
	case l.MAC != "" && !l.Start.IsZero() && l.End.After(l.Start):
		p.j.bind(l)
	default:
		p.j.end(l.Addr, l.End)
	}
}

// iscTime reads the arguments of starts or ends: "W YYYY/MM/DD HH:MM:SS"
// (UTC; the weekday is there for people and is ignored), "epoch N" or
// "never" (the zero Time).
func iscTime(args []string) (time.Time, error) {
	switch {
	case len(args) == 1 && args[0] == "never":
		return time.Time{}, nil
	case len(args) == 2 && args[0] == "epoch":
		return unixTime(args[1])
	case len(args) == 3:
		t, err := time.Parse("2006/1/2 15:04:05", args[1]+" "+args[2])
		if err == nil && t.Unix() >= 0 && t.Unix() <= maxUnix {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("want \"W YYYY/MM/DD HH:MM:SS\", \"epoch N\" or \"never\", got %q", strings.Join(args, " "))
}

// cleanHostname makes a host name from a lease file fit to show: valid
// UTF-8, no control characters, no trailing dot, at most 253 bytes.
func cleanHostname(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if len(s) > 253 {
		s = strings.ToValidUTF8(s[:253], "")
	}
	return s
}

// hexID writes a binary client identifier as colon-separated hex octets.
func hexID(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	h := hex.EncodeToString(b)
	var s strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			s.WriteByte(':')
		}
		s.WriteString(h[i : i+2])
	}
	return s.String()
}
