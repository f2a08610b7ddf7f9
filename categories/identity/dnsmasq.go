package identity

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// ParseDnsmasq reads dnsmasq's lease file: one line per current lease,
// "EXPIRY MAC ADDRESS HOSTNAME CLIENT-ID", EXPIRY in seconds since 1970 (0:
// never ends), HOSTNAME and CLIENT-ID "*" for none. DHCPv6 leases follow a
// "duid SERVER-DUID" line and carry the IAID where a DHCPv4 lease has its MAC.
// The file does not say when a lease started: Start is zero, and the Table
// takes the time the file changed to show the lease. A MAC of another
// hardware type than Ethernet is written "TT-aa:bb:..." (TT the type).
func ParseDnsmasq(r io.Reader, name string) ([]Lease, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxToken)
	j := newJournal()
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] == "duid" {
			continue
		}
		l, err := dnsmasqLease(fields)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		j.bind(l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return j.leases(), nil
}

func dnsmasqLease(fields []string) (Lease, error) {
	if len(fields) != 4 && len(fields) != 5 {
		return Lease{}, fmt.Errorf("want \"EXPIRY MAC ADDRESS HOSTNAME CLIENT-ID\", got %d fields", len(fields))
	}
	l := Lease{Source: FormatDnsmasq}
	var err error
	if l.Addr, err = netip.ParseAddr(fields[2]); err != nil {
		return Lease{}, fmt.Errorf("address %q: want an IP address", fields[2])
	}
	expiry, err := unixTime(fields[0])
	if err != nil {
		return Lease{}, fmt.Errorf("expiry: %w", err)
	}
	if expiry.Unix() != 0 {
		l.End = expiry
	}
	if l.Addr.Is4() {
		if l.MAC, err = dnsmasqMAC(fields[1]); err != nil {
			return Lease{}, err
		}
	}
	if h := fields[3]; h != "*" {
		l.Hostname = cleanHostname(h)
	}
	if len(fields) == 5 && fields[4] != "*" {
		l.ClientID = strings.ToLower(fields[4])
	}
	if l.Addr.Is6() && l.ClientID == "" {
		l.ClientID = "iaid " + fields[1] // all a DHCPv6 line may have to tell devices apart
	}
	return l, nil
}

// dnsmasqMAC reads the MAC column, with dnsmasq's "TT-" prefix for hardware
// types other than Ethernet and nothing after it when there is no address.
func dnsmasqMAC(s string) (string, error) {
	if len(s) >= 3 && s[2] == '-' && !strings.Contains(s[3:], "-") {
		if s = s[3:]; s == "" {
			return "", nil
		}
	}
	mac, err := CanonicalMAC(s)
	if err != nil {
		return "", fmt.Errorf("MAC: %w", err)
	}
	return mac, nil
}
