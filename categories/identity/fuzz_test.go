package identity

import (
	"fmt"
	"strings"
	"testing"
)

// checkParsed is the oracle of the parser fuzz targets: whatever a parser
// accepts is well formed (valid addresses, canonical MACs, each address's
// leases in order of start and not overlapping, as lookups assume).
func checkParsed(t *testing.T, leases []Lease, format Format) {
	t.Helper()
	for i, l := range leases {
		if !l.Addr.IsValid() || l.Source != format {
			t.Fatalf("lease %d: %+v: invalid address or source", i, l)
		}
		if l.MAC != "" {
			if c, err := CanonicalMAC(l.MAC); err != nil || c != l.MAC {
				t.Fatalf("lease %d: MAC %q is not canonical (%q, %v)", i, l.MAC, c, err)
			}
		}
		if !l.Start.IsZero() && !l.End.IsZero() && !l.Start.Before(l.End) {
			t.Fatalf("lease %d: starts %v, not before its end %v", i, l.Start, l.End)
		}
		if i == 0 || leases[i-1].Addr != l.Addr {
			continue
		}
		prev := leases[i-1]
		if prev.End.IsZero() || l.Start.IsZero() || prev.End.After(l.Start) {
			t.Fatalf("leases %d and %d of %s overlap: %+v, %+v", i-1, i, l.Addr, prev, l)
		}
	}
}

func FuzzParseISC(f *testing.F) {
	f.Add(iscHeader)
	f.Add(`lease 10.1.2.3 { starts 1 2026/03/02 08:00:00; ends 1 2026/03/02 20:00:00; binding state active; hardware ethernet 00:11:22:33:44:55; client-hostname "pc1"; }
lease 10.1.2.3 { starts 1 2026/03/02 08:00:00; ends 1 2026/03/02 10:00:00; binding state released; hardware ethernet 00:11:22:33:44:55; }
lease 10.1.2.3 { starts epoch 1772440200; ends never; binding state active; hardware ethernet 66:77:88:99:aa:bb; uid "\001\"x"; }
lease 10.1.2.3 { starts 1 2026/03/02 09:00:00; ends 1 2026/03/02 09:30:00; binding state free; }`)
	f.Add("lease 10.1.2.3 {\n on expiry { set x = \"}\"; }\n}\n# comment }\n")
	f.Fuzz(func(t *testing.T, file string) {
		leases, err := ParseISC(strings.NewReader(file), "fuzz.leases")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.leases line ") {
				t.Fatalf("error %q does not name the file and line", err)
			}
			return
		}
		checkParsed(t, leases, FormatISC)
	})
}

func FuzzParseKea(f *testing.F) {
	a := "00:11:22:33:44:55"
	f.Add(keaHeader4 + keaRow4("10.1.2.3", a, 43200, utc(20, 0), "pc&#x2c1.", 0) + keaRow4("10.1.2.3", "66:77:88:99:aa:bb", 3600, utc(12, 0), "", 0) +
		keaRow4("10.1.2.3", a, 0, utc(13, 0), "", 0) + keaRow4("10.1.2.3", a, 60, utc(14, 0), "", 2))
	f.Add(keaHeader6 + fmt.Sprintf("2001:db8:1::10,00:01:00:01:aa:bb,3600,%d,1,1800,0,1,128,0,0,tablet-7,%s,0,,1,2,0\n", utc(9, 0).Unix(), a))
	f.Add("address,valid_lifetime,expire\n10.0.0.1,4294967295,0\n")
	f.Fuzz(func(t *testing.T, file string) {
		leases, err := ParseKea(strings.NewReader(file), "fuzz.csv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		checkParsed(t, leases, FormatKea)
	})
}

func FuzzParseDnsmasq(f *testing.F) {
	f.Add("1772481600 00:11:22:33:44:55 10.1.2.3 pc1 01:00:11:22:33:44:55\n0 66:77:88:99:aa:bb 10.1.2.3 * *\n")
	f.Add("duid 00:01:00:01\n1772481600 1234567 2001:db8::10 tablet-7 00:01:00:01:aa:bb:cc:dd\n")
	f.Add("1772481600 06-00:11:22:33:44:55 10.1.2.3 pc1\n1772481600 00- 10.1.2.4 pc2 *\n")
	f.Fuzz(func(t *testing.T, file string) {
		leases, err := ParseDnsmasq(strings.NewReader(file), "fuzz.leases")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.leases") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		checkParsed(t, leases, FormatDnsmasq)
	})
}

func FuzzCanonicalMAC(f *testing.F) {
	for _, s := range []string{"00:11:22:33:44:55", "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "aabbccddeeff", "0:1:2:3:4:5", "00:11:22:33:44:55:66:77"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalMAC(s)
		if err != nil {
			return
		}
		if again, err := CanonicalMAC(c); err != nil || again != c {
			t.Fatalf("CanonicalMAC(%q) = %q, which reads back as %q, %v", s, c, again, err)
		}
		if c != strings.ToLower(c) || (len(c) != 17 && len(c) != 23 && len(c) != 59) {
			t.Fatalf("CanonicalMAC(%q) = %q: not lower-case colon-separated octets", s, c)
		}
	})
}
