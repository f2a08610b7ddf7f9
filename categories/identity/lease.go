package identity

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Format names the DHCP server whose lease file a Lease was read from.
type Format string

// The lease file formats hedgerow reads.
const (
	FormatISC     Format = "isc"     // ISC dhcpd's dhcpd.leases
	FormatKea     Format = "kea"     // Kea's memfile lease CSV (kea-leases4.csv, kea-leases6.csv)
	FormatDnsmasq Format = "dnsmasq" // dnsmasq's dnsmasq.leases
)

// Lease is one address held by one device over an interval, as a DHCP server
// recorded it.
type Lease struct {
	Addr netip.Addr
	// MAC is the device's hardware address in canonical form
	// ("aa:bb:cc:dd:ee:ff"), or "" when the server did not record one (DHCPv6).
	MAC string
	// ClientID is the client identifier or DUID in hex, when recorded; it
	// tells devices apart when there is no MAC.
	ClientID string
	Hostname string    // the name the client gave; "" for none
	Start    time.Time // zero when the file does not say (dnsmasq)
	End      time.Time // zero for a lease that never ends
	Source   Format
}

// device is what tells two holders of an address apart.
func (l *Lease) device() string {
	switch {
	case l.MAC != "":
		return l.MAC
	case l.ClientID != "":
		return "id " + l.ClientID
	default:
		return "host " + l.Hostname
	}
}

// Parser reads one lease file; name is the file's name, used in errors.
type Parser func(r io.Reader, name string) ([]Lease, error)

// ParseFormat reads a format name as written in the configuration.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatISC, FormatKea, FormatDnsmasq:
		return f, nil
	}
	return "", fmt.Errorf("lease file format %q: want %q, %q or %q", s, FormatISC, FormatKea, FormatDnsmasq)
}

// Parser returns the parser for the format.
func (f Format) Parser() (Parser, error) {
	switch f {
	case FormatISC:
		return ParseISC, nil
	case FormatKea:
		return ParseKea, nil
	case FormatDnsmasq:
		return ParseDnsmasq, nil
	}
	return nil, fmt.Errorf("lease file format %q: want %q, %q or %q", string(f), FormatISC, FormatKea, FormatDnsmasq)
}

// CanonicalMAC writes a hardware address the one way hedgerow stores it:
// lower-case hex octets separated by colons. It reads the forms DHCP servers
// and RADIUS clients write: "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff",
// "aabbccddeeff", and colon-separated octets of one or two digits ("0:1b:..."
// as ISC dhcpd prints them).
func CanonicalMAC(s string) (string, error) {
	s = strings.TrimSpace(s)
	if hw, err := net.ParseMAC(s); err == nil {
		return hw.String(), nil
	}
	var octets []string
	switch {
	case strings.Contains(s, ":"):
		octets = strings.Split(s, ":")
	case len(s) == 12 || len(s) == 16 || len(s) == 40:
		for i := 0; i < len(s); i += 2 {
			octets = append(octets, s[i:i+2])
		}
	default:
		return "", fmt.Errorf("hardware address %q: want six hex octets like aa:bb:cc:dd:ee:ff", s)
	}
	if n := len(octets); n != 6 && n != 8 && n != 20 {
		return "", fmt.Errorf("hardware address %q: want six hex octets like aa:bb:cc:dd:ee:ff, got %d", s, n)
	}
	hw := make(net.HardwareAddr, len(octets))
	for i, o := range octets {
		v, err := strconv.ParseUint(o, 16, 8)
		if err != nil || o == "" || len(o) > 2 {
			return "", fmt.Errorf("hardware address %q: octet %d %q is not one or two hex digits", s, i+1, o)
		}
		hw[i] = byte(v)
	}
	return hw.String(), nil
}

// maxUnix bounds the times lease files may carry (the end of year 9999), so
// that a corrupt number cannot wrap the nanosecond clock the Table keeps.
const maxUnix = 253402300799

// unixTime reads a count of seconds since 1970 as lease files write them.
func unixTime(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > maxUnix {
		return time.Time{}, fmt.Errorf("time %q: want seconds since 1970 (0 to %d)", s, int64(maxUnix))
	}
	return time.Unix(n, 0).UTC(), nil
}

// fillFrom keeps what a newer record of the same lease leaves out.
func (l Lease) fillFrom(older Lease) Lease {
	if l.MAC == "" {
		l.MAC = older.MAC
	}
	if l.ClientID == "" {
		l.ClientID = older.ClientID
	}
	if l.Hostname == "" {
		l.Hostname = older.Hostname
	}
	return l
}

// journal turns a lease file's records, oldest first, into leases. The files
// are logs: a later record for the same device and address supersedes the
// end of an earlier one (a renewal, a release), while a record for another
// device ends the earlier holder's lease where the new one starts (see
// merge). Keeping the earlier holder, rather than only the last record, is
// what lets an incident before a move be put on the right device.
type journal struct {
	hist  map[netip.Addr][]span[Lease]
	order []netip.Addr // addresses in the order the file first names them
}

func newJournal() *journal { return &journal{hist: map[netip.Addr][]span[Lease]{}} }

// bind records that l's device holds l.Addr from l.Start to l.End.
func (j *journal) bind(l Lease) {
	h, seen := j.hist[l.Addr]
	if !seen {
		j.order = append(j.order, l.Addr)
	}
	n := span[Lease]{start: toNanos(l.Start, always), end: toNanos(l.End, never), holder: l.device(), info: l}
	j.hist[l.Addr], _ = merge(h, n)
}

// end records that nobody holds addr from the moment at onwards; a zero at
// says nothing.
func (j *journal) end(addr netip.Addr, at time.Time) {
	if h := j.hist[addr]; !at.IsZero() && len(h) > 0 {
		j.hist[addr], _ = cutAt(h, toNanos(at, never), func(span[Lease]) bool { return false })
	}
}

// leases returns the leases, by address and then by start.
func (j *journal) leases() []Lease {
	var out []Lease
	for _, a := range j.order {
		for _, s := range j.hist[a] {
			l := s.info
			l.Start, l.End = fromNanos(s.start), fromNanos(s.end)
			out = append(out, l)
		}
	}
	return out
}
