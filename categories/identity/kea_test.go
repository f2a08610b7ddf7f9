package identity

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const keaHeader4 = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n"

const keaHeader6 = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source,pool_id\n"

// keaRow4 writes a kea-leases4.csv row for a lease ending at end after
// lifetime seconds.
func keaRow4(addr, mac string, lifetime int, end time.Time, host string, state int) string {
	return fmt.Sprintf("%s,%s,01:%s,%d,%d,1,0,0,%s,%d,,0\n", addr, mac, mac, lifetime, end.Unix(), host, state)
}

func TestParseKea(t *testing.T) {
	a, b := "00:11:22:33:44:55", "66:77:88:99:aa:bb"
	addr := netip.MustParseAddr("10.1.2.3")
	tests := []struct {
		name string
		file string
		want []Lease
	}{
		{
			name: "a lease in use runs from expire - valid_lifetime to expire",
			file: keaHeader4 + keaRow4("10.1.2.3", a, 43200, utc(20, 0), "trolley-3&#x2cslot-12.school.lan.", 0),
			want: []Lease{{Addr: addr, MAC: a, ClientID: "01:" + a, Hostname: "trolley-3,slot-12.school.lan",
				Start: utc(8, 0), End: utc(20, 0), Source: FormatKea}},
		},
		{
			name: "a renewal supersedes, another device cuts the lease where it starts",
			file: keaHeader4 + keaRow4("10.1.2.3", a, 43200, utc(20, 0), "pc1", 0) +
				keaRow4("10.1.2.3", a, 43200, utc(21, 0), "", 0) +
				keaRow4("10.1.2.3", b, 3600, utc(12, 0), "pc2", 0),
			want: []Lease{
				{Addr: addr, MAC: a, ClientID: "01:" + a, Hostname: "pc1", Start: utc(8, 0), End: utc(11, 0), Source: FormatKea},
				{Addr: addr, MAC: b, ClientID: "01:" + b, Hostname: "pc2", Start: utc(11, 0), End: utc(12, 0), Source: FormatKea},
			},
		},
		{
			name: "expired-reclaimed ends at expire; a deleted lease (valid_lifetime 0) ends at its expire",
			file: keaHeader4 + keaRow4("10.1.2.3", a, 43200, utc(20, 0), "pc1", 0) +
				keaRow4("10.1.2.3", a, 3600, utc(10, 0), "pc1", 2) +
				keaRow4("10.1.2.4", b, 43200, utc(20, 0), "pc2", 0) +
				keaRow4("10.1.2.4", b, 0, utc(9, 30), "pc2", 0),
			want: []Lease{
				{Addr: addr, MAC: a, ClientID: "01:" + a, Hostname: "pc1", Start: utc(8, 0), End: utc(10, 0), Source: FormatKea},
				{Addr: netip.MustParseAddr("10.1.2.4"), MAC: b, ClientID: "01:" + b, Hostname: "pc2", Start: utc(8, 0), End: utc(9, 30), Source: FormatKea},
			},
		},
		{
			name: "a declined address ends the lease it follows",
			file: keaHeader4 + keaRow4("10.1.2.3", a, 43200, utc(20, 0), "pc1", 0) +
				fmt.Sprintf("10.1.2.3,,,86400,%d,1,0,0,,1,,0\n", utc(9, 0).Add(24*time.Hour).Unix()),
			want: []Lease{{Addr: addr, MAC: a, ClientID: "01:" + a, Hostname: "pc1", Start: utc(8, 0), End: utc(9, 0), Source: FormatKea}},
		},
		{
			name: "an older header without the newer columns",
			file: "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname\r\n" +
				fmt.Sprintf("10.1.2.3,%s,,3600,%d,1,0,0,pc1\r\n", a, utc(9, 0).Unix()),
			want: []Lease{{Addr: addr, MAC: a, Hostname: "pc1", Start: utc(8, 0), End: utc(9, 0), Source: FormatKea}},
		},
		{
			name: "DHCPv6: addresses kept, delegated prefixes skipped, the DUID tells devices apart",
			file: keaHeader6 +
				fmt.Sprintf("2001:db8:1::10,00:01:00:01:aa:bb,3600,%d,1,1800,0,1,128,0,0,tablet-7,%s,0,,1,2,0\n", utc(9, 0).Unix(), a) +
				fmt.Sprintf("2001:db8:1::11,00:01:00:01:cc:dd,3600,%d,1,1800,0,1,128,0,0,,,0,,,,0\n", utc(9, 0).Unix()) +
				fmt.Sprintf("2001:db8:8::,00:01:00:01:aa:bb,3600,%d,1,1800,2,1,56,0,0,,,0,,,,0\n", utc(9, 0).Unix()),
			want: []Lease{
				{Addr: netip.MustParseAddr("2001:db8:1::10"), MAC: a, ClientID: "00:01:00:01:aa:bb", Hostname: "tablet-7", Start: utc(8, 0), End: utc(9, 0), Source: FormatKea},
				{Addr: netip.MustParseAddr("2001:db8:1::11"), ClientID: "00:01:00:01:cc:dd", Start: utc(8, 0), End: utc(9, 0), Source: FormatKea},
			},
		},
		{
			name: "an infinite lifetime never ends",
			file: keaHeader4 + fmt.Sprintf("10.1.2.3,%s,,4294967295,%d,1,0,0,printer,0,,0\n", a, utc(8, 0).Unix()+4294967295),
			want: []Lease{{Addr: addr, MAC: a, Hostname: "printer", Start: utc(8, 0), Source: FormatKea}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKea(strings.NewReader(tc.file), "kea-leases4.csv")
			if err != nil {
				t.Fatal(err)
			}
			checkLeases(t, got, tc.want)
		})
	}
}

func TestParseKeaErrors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"header", "10.1.2.3,00:11:22:33:44:55,,3600,1772438400\n", "kea-leases4.csv line 1: header \"10.1.2.3,"},
		{"short row", keaHeader4 + "10.1.2.3,00:11:22:33:44:55\n", "kea-leases4.csv line 2: want at least 10 comma-separated columns"},
		{"address", keaHeader4 + "\n10.1.2,00:11:22:33:44:55,,3600,1772438400,1,0,0,,0,,0\n", "kea-leases4.csv line 3: address \"10.1.2\""},
		{"lifetime", keaHeader4 + "10.1.2.3,00:11:22:33:44:55,,-1,1772438400,1,0,0,,0,,0\n", "line 2: valid_lifetime \"-1\""},
		{"expire", keaHeader4 + "10.1.2.3,00:11:22:33:44:55,,3600,soon,1,0,0,,0,,0\n", "line 2: expire: time \"soon\""},
		{"state", keaHeader4 + "10.1.2.3,00:11:22:33:44:55,,3600,1772438400,1,0,0,,x,,0\n", "line 2: state \"x\""},
		{"hwaddr", keaHeader4 + "10.1.2.3,00:11:22,,3600,1772438400,1,0,0,,0,,0\n", "line 2: hwaddr: hardware address \"00:11:22\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKea(strings.NewReader(tc.file), "kea-leases4.csv")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
