package identity

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseDnsmasq(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []Lease
	}{
		{
			name: "DHCPv4 leases: a name, none, and one that never ends",
			file: "1772481600 00:11:22:33:44:55 10.1.2.3 trolley-3-12 01:00:11:22:33:44:55\n" +
				"1772481600 66:77:88:99:AA:BB 10.1.2.4 * *\n" +
				"0 0c:0c:0c:0c:0c:0c 10.1.2.5 printer *\n",
			want: []Lease{
				{Addr: netip.MustParseAddr("10.1.2.3"), MAC: "00:11:22:33:44:55", ClientID: "01:00:11:22:33:44:55",
					Hostname: "trolley-3-12", End: utc(20, 0), Source: FormatDnsmasq},
				{Addr: netip.MustParseAddr("10.1.2.4"), MAC: "66:77:88:99:aa:bb", End: utc(20, 0), Source: FormatDnsmasq},
				{Addr: netip.MustParseAddr("10.1.2.5"), MAC: "0c:0c:0c:0c:0c:0c", Hostname: "printer", Source: FormatDnsmasq},
			},
		},
		{
			name: "DHCPv6 leases after the server DUID line carry an IAID, not a MAC",
			file: "1772481600 00:11:22:33:44:55 10.1.2.3 pc1 *\n" +
				"duid 00:01:00:01:2d:b2:0c:f7:52:54:00:12:34:56\n" +
				"1772481600 1234567 2001:db8::10 tablet-7 00:01:00:01:aa:bb:cc:dd\n" +
				"1772481600 89 2001:db8::11 * *\n",
			want: []Lease{
				{Addr: netip.MustParseAddr("10.1.2.3"), MAC: "00:11:22:33:44:55", Hostname: "pc1", End: utc(20, 0), Source: FormatDnsmasq},
				{Addr: netip.MustParseAddr("2001:db8::10"), ClientID: "00:01:00:01:aa:bb:cc:dd", Hostname: "tablet-7", End: utc(20, 0), Source: FormatDnsmasq},
				{Addr: netip.MustParseAddr("2001:db8::11"), ClientID: "iaid 89", End: utc(20, 0), Source: FormatDnsmasq},
			},
		},
		{
			name: "another hardware type, and none",
			file: "1772481600 06-00:11:22:33:44:55 10.1.2.3 pc1\n" +
				"1772481600 00- 10.1.2.4 pc2 01:02\n",
			want: []Lease{
				{Addr: netip.MustParseAddr("10.1.2.3"), MAC: "00:11:22:33:44:55", Hostname: "pc1", End: utc(20, 0), Source: FormatDnsmasq},
				{Addr: netip.MustParseAddr("10.1.2.4"), ClientID: "01:02", Hostname: "pc2", End: utc(20, 0), Source: FormatDnsmasq},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDnsmasq(strings.NewReader(tc.file), "dnsmasq.leases")
			if err != nil {
				t.Fatal(err)
			}
			checkLeases(t, got, tc.want)
		})
	}
}

func TestParseDnsmasqErrors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"fields", "1772481600 00:11:22:33:44:55 10.1.2.3\n", "dnsmasq.leases line 1: want \"EXPIRY MAC ADDRESS HOSTNAME CLIENT-ID\", got 3 fields"},
		{"expiry", "\n1772481600x 00:11:22:33:44:55 10.1.2.3 pc1 *\n", "dnsmasq.leases line 2: expiry: time \"1772481600x\""},
		{"address", "1772481600 00:11:22:33:44:55 10.1.2 pc1 *\n", "line 1: address \"10.1.2\""},
		{"mac", "1772481600 00:11:22:33:44 10.1.2.3 pc1 *\n", "line 1: MAC: hardware address \"00:11:22:33:44\""},
		{"line too long", "1772481600 00:11:22:33:44:55 10.1.2.3 " + strings.Repeat("x", maxToken) + " *\n", "dnsmasq.leases: bufio.Scanner: token too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDnsmasq(strings.NewReader(tc.file), "dnsmasq.leases")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCanonicalMAC(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"00:11:22:33:44:55", "00:11:22:33:44:55", true},
		{"AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff", true},
		{"aabb.ccdd.eeff", "aa:bb:cc:dd:ee:ff", true},
		{"AABBCCDDEEFF", "aa:bb:cc:dd:ee:ff", true},
		{"0:1b:2:33:4:5", "00:1b:02:33:04:05", true},
		{" 00:11:22:33:44:55 ", "00:11:22:33:44:55", true},
		{"00:11:22:33:44", "", false},
		{"00:11:22:33:44:5g", "", false},
		{"00:11:22:33:44:555", "", false},
		{"00::22:33:44:55", "", false},
		{"+441234567890", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, err := CanonicalMAC(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("CanonicalMAC(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"isc", "KEA", " dnsmasq "} {
		f, err := ParseFormat(s)
		if err != nil {
			t.Fatalf("ParseFormat(%q): %v", s, err)
		}
		if _, err := f.Parser(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, err := ParseFormat("windows"); err == nil || !strings.Contains(err.Error(), `"windows"`) {
		t.Fatalf("ParseFormat(windows): %v, want an error naming it", err)
	}
	if _, err := Format("x").Parser(); err == nil {
		t.Fatal("Format(x).Parser(): no error")
	}
}
