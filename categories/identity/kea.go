package identity

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Kea lease states (the state column).
const (
	keaDefault          = 0
	keaExpiredReclaimed = 2
)

// keaInfinite is the valid_lifetime Kea writes for a lease that never ends.
const keaInfinite = 0xffffffff

// keaColumns are the columns ParseKea reads, found by name in the header so
// that files written by older and newer Kea versions (which add columns at
// the end) read alike.
type keaColumns struct {
	address, hwaddr, clientID, lifetime, expire, hostname, state, leaseType int
	v6                                                                      bool
	width                                                                   int // columns a row needs
}

// ParseKea reads a Kea memfile lease file, DHCPv4 (kea-leases4.csv: header
// "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,
// fqdn_rev,hostname,state,...") or DHCPv6 (kea-leases6.csv, with duid and
// lease_type; delegated prefixes are skipped). Kea appends a row whenever a
// lease changes, so later rows supersede earlier ones as in ParseISC. A lease
// runs from expire - valid_lifetime to expire; state 0 is a lease in use,
// state 2 (expired-reclaimed) one that has ended at expire, and a row with
// valid_lifetime 0 (a deleted lease) or any other state (1, declined) ends
// the address's lease at the row's time.
func ParseKea(r io.Reader, name string) ([]Lease, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxToken)
	var cols *keaColumns
	j := newJournal()
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		fields := strings.Split(text, ",")
		if cols == nil {
			c, err := keaHeader(fields)
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %w", name, line, err)
			}
			cols = c
			continue
		}
		if err := cols.row(j, fields); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return j.leases(), nil
}

// keaHeader finds the columns in the header row.
func keaHeader(fields []string) (*keaColumns, error) {
	idx := map[string]int{}
	for i, f := range fields {
		idx[strings.TrimSpace(f)] = i
	}
	col := func(name string) int {
		if i, ok := idx[name]; ok {
			return i
		}
		return -1
	}
	c := &keaColumns{
		address: col("address"), hwaddr: col("hwaddr"), lifetime: col("valid_lifetime"),
		expire: col("expire"), hostname: col("hostname"), state: col("state"),
		leaseType: col("lease_type"), clientID: col("client_id"),
	}
	if i := col("duid"); i >= 0 {
		c.v6, c.clientID = true, i
	}
	if c.address < 0 || c.lifetime < 0 || c.expire < 0 {
		return nil, fmt.Errorf("header %q: want a Kea lease file header with address, valid_lifetime and expire columns", strings.Join(fields, ","))
	}
	for _, i := range []int{c.address, c.hwaddr, c.clientID, c.lifetime, c.expire, c.hostname, c.state, c.leaseType} {
		c.width = max(c.width, i+1)
	}
	return c, nil
}

// field returns column i of a row, "" for a column the header lacks.
func field(fields []string, i int) string {
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(fields[i])
}

// row reads one lease row into the journal.
func (c *keaColumns) row(j *journal, fields []string) error {
	if len(fields) < c.width {
		return fmt.Errorf("want at least %d comma-separated columns as the header says, got %d", c.width, len(fields))
	}
	if c.v6 && field(fields, c.leaseType) == "2" {
		return nil // a delegated prefix: no single address to name
	}
	addrText := field(fields, c.address)
	addr, err := netip.ParseAddr(addrText)
	if err != nil {
		return fmt.Errorf("address %q: want an IP address", addrText)
	}
	lft, err := strconv.ParseUint(field(fields, c.lifetime), 10, 32)
	if err != nil {
		return fmt.Errorf("valid_lifetime %q: want seconds (0 to %d)", field(fields, c.lifetime), uint32(keaInfinite))
	}
	expire, err := unixTime(field(fields, c.expire))
	if err != nil {
		return fmt.Errorf("expire: %w", err)
	}
	state := keaDefault
	if s := field(fields, c.state); s != "" {
		if state, err = strconv.Atoi(s); err != nil {
			return fmt.Errorf("state %q: want a number (0 default, 1 declined, 2 expired-reclaimed)", s)
		}
	}
	l := Lease{Addr: addr, Source: FormatKea, End: expire, Start: expire.Add(-time.Duration(lft) * time.Second),
		ClientID: field(fields, c.clientID), Hostname: cleanHostname(keaUnescape(field(fields, c.hostname)))}
	if hw := field(fields, c.hwaddr); hw != "" {
		if l.MAC, err = CanonicalMAC(hw); err != nil {
			return fmt.Errorf("hwaddr: %w", err)
		}
	}
	if lft == keaInfinite {
		l.End = time.Time{}
	}
	if l.Start.Unix() < 0 {
		l.Start = time.Unix(0, 0).UTC()
	}
	switch {
	case lft == 0:
		j.end(addr, expire)
	case state == keaDefault:
		j.bind(l)
	case state == keaExpiredReclaimed && (l.MAC != "" || l.ClientID != ""):
		j.bind(l)
	default:
		j.end(addr, l.Start)
	}
	return nil
}

// keaUnescape undoes the one escape Kea's CSV writer uses: a comma in a
// value is written as "&#x2c".
func keaUnescape(s string) string {
	return strings.ReplaceAll(s, "&#x2c", ",")
}
