package identity

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	macA = "00:11:22:33:44:55"
	macB = "66:77:88:99:aa:bb"
)

var addr3 = netip.MustParseAddr("10.1.2.3")

// public drops the unexported parts of a Who, for comparisons.
func public(w Who) Who { w.deviceGroup = ""; return w }

// clock is a settable clock for a Table.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

type lookupCase struct {
	at   time.Time
	want Who
}

func checkLookups(t *testing.T, tb *Table, addr netip.Addr, cases []lookupCase) {
	t.Helper()
	for _, c := range cases {
		if got := public(tb.Lookup(addr, c.at)); got != c.want {
			t.Errorf("Lookup(%s, %s):\n got %+v\nwant %+v", addr, c.at.Format("15:04:05"), got, c.want)
		}
	}
}

func TestTableLeaseMoves(t *testing.T) {
	clk := &clock{now: utc(12, 0)}
	tb := NewTable(Options{Now: clk.Now})
	a := Who{Device: "pc-a", MAC: macA, DeviceSource: SourceLease, MACSource: SourceLease}
	b := Who{Device: "pc-b", MAC: macB, DeviceSource: SourceLease, MACSource: SourceLease}

	tb.ApplyLeases(LeaseRead{Origin: "dhcpd.leases", Format: FormatISC, At: utc(8, 0), Leases: []Lease{
		{Addr: addr3, MAC: macA, Hostname: "pc-a", Start: utc(8, 0), End: utc(20, 0), Source: FormatISC},
	}})
	checkLookups(t, tb, addr3, []lookupCase{{utc(7, 59), Who{}}, {utc(8, 0), a}, {utc(19, 59), a}, {utc(20, 0), Who{}}})

	// The file, rewritten, holds A's release and B's lease; A's first lease
	// is no longer in it.
	tb.ApplyLeases(LeaseRead{Origin: "dhcpd.leases", Format: FormatISC, At: utc(11, 0), Leases: []Lease{
		{Addr: addr3, MAC: macA, Start: utc(8, 0), End: utc(10, 0), Source: FormatISC},
		{Addr: addr3, MAC: macB, Hostname: "pc-b", Start: utc(10, 30), End: utc(22, 30), Source: FormatISC},
	}})
	checkLookups(t, tb, addr3, []lookupCase{
		{utc(9, 59), a}, {utc(10, 0), Who{}}, {utc(10, 15), Who{}}, {utc(10, 30), b}, {utc(21, 0), b},
	})
	// Reading the same file again changes nothing.
	before := tb.snap.Load()
	tb.ApplyLeases(LeaseRead{Origin: "dhcpd.leases", Format: FormatISC, At: utc(11, 0), Leases: []Lease{
		{Addr: addr3, MAC: macA, Start: utc(8, 0), End: utc(10, 0), Source: FormatISC},
		{Addr: addr3, MAC: macB, Hostname: "pc-b", Start: utc(10, 30), End: utc(22, 30), Source: FormatISC},
	}})
	if tb.snap.Load() != before {
		t.Error("a read that changed nothing published a new snapshot")
	}
	if s := tb.Stats(); s != (Stats{Addresses: 1, Leases: 2}) {
		t.Errorf("Stats = %+v, want 1 address, 2 leases", s)
	}
	if got := tb.Lookup(netip.Addr{}, utc(11, 0)); got.Known() {
		t.Errorf("Lookup of the zero Addr = %+v, want nothing", public(got))
	}
	// An IPv4 address mapped into IPv6 is the same address.
	if got := public(tb.Lookup(netip.MustParseAddr("::ffff:10.1.2.3"), utc(11, 0))); got != b {
		t.Errorf("mapped lookup = %+v, want %+v", got, b)
	}
}

func TestTableListedLeases(t *testing.T) {
	tb := NewTable(Options{Now: func() time.Time { return utc(12, 0) }})
	dnsmasq := func(at time.Time, leases ...Lease) {
		tb.ApplyLeases(LeaseRead{Origin: "/var/lib/misc/dnsmasq.leases", Format: FormatDnsmasq, At: at, Leases: leases})
	}
	a := Lease{Addr: addr3, MAC: macA, Hostname: "pc-a", End: utc(20, 0), Source: FormatDnsmasq}
	b := Lease{Addr: addr3, MAC: macB, End: utc(21, 0), Source: FormatDnsmasq}
	other := Lease{Addr: netip.MustParseAddr("10.1.2.9"), MAC: "0c:0c:0c:0c:0c:0c", Source: FormatDnsmasq}
	whoA := Who{Device: "pc-a", MAC: macA, DeviceSource: SourceLease, MACSource: SourceLease}
	whoB := Who{MAC: macB, MACSource: SourceLease}

	dnsmasq(utc(9, 0), a, other)
	renewed := a
	renewed.End = utc(21, 0)
	dnsmasq(utc(9, 30), renewed, other) // a renewal keeps the start A was first seen at
	dnsmasq(utc(10, 0), other)          // A released: gone from the file
	dnsmasq(utc(11, 0), b, other)
	checkLookups(t, tb, addr3, []lookupCase{
		{utc(8, 59), Who{}}, // the file does not say A held it before it was seen
		{utc(9, 0), whoA}, {utc(9, 45), whoA}, {utc(10, 0), Who{}}, {utc(11, 0), whoB}, {utc(20, 59), whoB}, {utc(21, 0), Who{}},
	})
	// B taking the address straight from A, with no read in between.
	tb2 := NewTable(Options{Now: func() time.Time { return utc(12, 0) }})
	tb2.ApplyLeases(LeaseRead{Origin: "d", Format: FormatDnsmasq, At: utc(9, 0), Leases: []Lease{a}})
	tb2.ApplyLeases(LeaseRead{Origin: "d", Format: FormatDnsmasq, At: utc(10, 0), Leases: []Lease{b}})
	checkLookups(t, tb2, addr3, []lookupCase{{utc(9, 59), whoA}, {utc(10, 0), whoB}})
}

func TestTableSessions(t *testing.T) {
	clk := &clock{now: utc(8, 0)}
	tb := NewTable(Options{Now: clk.Now})
	tb.ApplyLeases(LeaseRead{Origin: "l", Format: FormatISC, Leases: []Lease{
		{Addr: addr3, MAC: macA, Hostname: "pc-a", Start: utc(8, 0), End: utc(12, 0), Source: FormatISC},
		{Addr: addr3, MAC: macB, Hostname: "pc-b", Start: utc(12, 0), End: utc(18, 0), Source: FormatISC},
	}})
	apply := func(s Session) {
		t.Helper()
		if err := tb.ApplySession(s); err != nil {
			t.Fatal(err)
		}
	}
	apply(Session{Addr: addr3, User: "jsmith", MAC: macA, NAS: "wlc", Start: utc(8, 5)})
	apply(Session{Addr: addr3, User: "jsmith", MAC: macA, NAS: "wlc", Start: utc(8, 5), End: utc(9, 0)})  // Stop
	apply(Session{Addr: addr3, User: "akhan", MAC: macA, NAS: "wlc", Start: utc(9, 10)})                  // Start, never stopped
	apply(Session{Addr: addr3, User: "jsmith", MAC: macA, NAS: "wlc", Start: utc(9, 0), End: utc(9, 30)}) // a late Stop of an old session
	lease := func(dev, mac string) Who {
		return Who{Device: dev, MAC: mac, DeviceSource: SourceLease, MACSource: SourceLease}
	}
	user := func(w Who, u string) Who { w.User, w.UserSource = u, SourceRADIUS; return w }
	checkLookups(t, tb, addr3, []lookupCase{
		{utc(8, 4), lease("pc-a", macA)},
		{utc(8, 5), user(lease("pc-a", macA), "jsmith")},
		{utc(9, 5), user(lease("pc-a", macA), "jsmith")}, // the late Stop says jsmith was on until akhan came
		{utc(9, 10), user(lease("pc-a", macA), "akhan")},
		{utc(11, 59), user(lease("pc-a", macA), "akhan")},
		// The address moved to B: akhan's open session was on A, so it is
		// not B's user.
		{utc(12, 0), lease("pc-b", macB)},
	})

	// An address without a lease: the MAC comes from RADIUS.
	other := netip.MustParseAddr("10.9.9.9")
	apply(Session{Addr: other, User: "staff1", MAC: "0c:0c:0c:0c:0c:0c", NAS: "switch", Start: utc(8, 0)})
	checkLookups(t, tb, other, []lookupCase{{utc(9, 0), Who{MAC: "0c:0c:0c:0c:0c:0c", User: "staff1", MACSource: SourceRADIUS, UserSource: SourceRADIUS}}})

	// The switch restarting ends its sessions, not the controller's.
	tb.EndSessions("switch", utc(10, 0))
	checkLookups(t, tb, other, []lookupCase{{utc(9, 59), Who{MAC: "0c:0c:0c:0c:0c:0c", User: "staff1", MACSource: SourceRADIUS, UserSource: SourceRADIUS}}, {utc(10, 0), Who{}}})
	checkLookups(t, tb, addr3, []lookupCase{{utc(11, 0), user(lease("pc-a", macA), "akhan")}})

	for _, bad := range []Session{{User: "x"}, {Addr: addr3}} {
		if err := tb.ApplySession(bad); err == nil {
			t.Errorf("ApplySession(%+v): no error", bad)
		}
	}
}

func TestTableStatic(t *testing.T) {
	tb := NewTable(Options{Now: func() time.Time { return utc(12, 0) }})
	printer := netip.MustParseAddr("10.1.2.200")
	tb.ApplyLeases(LeaseRead{Origin: "l", Format: FormatKea, Leases: []Lease{
		{Addr: addr3, MAC: macA, Hostname: "DESKTOP-8F2K1", Start: utc(8, 0), End: utc(20, 0), Source: FormatKea},
		{Addr: netip.MustParseAddr("10.1.2.4"), MAC: macB, Hostname: "pc-b", Start: utc(8, 0), End: utc(20, 0), Source: FormatKea},
	}})
	if err := tb.ApplySession(Session{Addr: addr3, User: "JSmith", MAC: macA, Start: utc(8, 0)}); err != nil {
		t.Fatal(err)
	}
	err := tb.SetStatic([]StaticDevice{
		{MAC: "00-11-22-33-44-55", Name: "Trolley 3 #12", Group: "ks2"},
		{Addr: addr3, Name: "desk by the door", Group: "ks3-ks4"},
		{Addr: netip.MustParseAddr("10.1.2.4"), Group: "staff"},
		{Addr: printer, Name: "library printer"},
	}, map[string]string{"jsmith": "sixth-form"})
	if err != nil {
		t.Fatal(err)
	}
	w := tb.Lookup(addr3, utc(9, 0))
	want := Who{Device: "Trolley 3 #12", MAC: macA, User: "JSmith", Group: "sixth-form",
		DeviceSource: SourceStatic, MACSource: SourceLease, UserSource: SourceRADIUS, GroupSource: SourceRADIUS}
	if public(w) != want {
		t.Errorf("static MAC and user group:\n got %+v\nwant %+v", public(w), want)
	}
	// The proxy login speaks for the request; a user with no group falls
	// back to the device's.
	if got, want := public(w.WithProxyLogin("teacher1", "staff")), (Who{Device: "Trolley 3 #12", MAC: macA, User: "teacher1", Group: "staff",
		DeviceSource: SourceStatic, MACSource: SourceLease, UserSource: SourceProxyLogin, GroupSource: SourceProxyLogin}); got != want {
		t.Errorf("proxy login:\n got %+v\nwant %+v", got, want)
	}
	if got := w.WithProxyLogin("visitor", ""); got.Group != "ks2" || got.GroupSource != SourceStatic || got.User != "visitor" {
		t.Errorf("proxy login without a group: %+v, want the device's group ks2", public(got))
	}
	if got := w.WithProxyLogin("", "x"); got != w {
		t.Errorf("an empty proxy login changed the Who: %+v", public(got))
	}
	// After the lease, the session (never stopped) still names the MAC, and
	// through it the static name.
	checkLookups(t, tb, addr3, []lookupCase{{utc(21, 0), Who{Device: "Trolley 3 #12", MAC: macA, User: "JSmith", Group: "sixth-form",
		DeviceSource: SourceStatic, MACSource: SourceRADIUS, UserSource: SourceRADIUS, GroupSource: SourceRADIUS}}})
	checkLookups(t, tb, netip.MustParseAddr("10.1.2.4"), []lookupCase{{utc(9, 0), Who{Device: "pc-b", MAC: macB, Group: "staff",
		DeviceSource: SourceLease, MACSource: SourceLease, GroupSource: SourceStatic}}})
	checkLookups(t, tb, printer, []lookupCase{{utc(9, 0), Who{Device: "library printer", DeviceSource: SourceStatic}}})
	if !tb.Lookup(printer, utc(9, 0)).Known() || tb.Lookup(netip.MustParseAddr("10.0.0.1"), utc(9, 0)).Known() {
		t.Error("Known is wrong")
	}

	// Replacing the static entries drops the old ones.
	if err := tb.SetStatic(nil, nil); err != nil {
		t.Fatal(err)
	}
	checkLookups(t, tb, printer, []lookupCase{{utc(9, 0), Who{}}})
	checkLookups(t, tb, addr3, []lookupCase{{utc(9, 0), Who{Device: "DESKTOP-8F2K1", MAC: macA, User: "JSmith",
		DeviceSource: SourceLease, MACSource: SourceLease, UserSource: SourceRADIUS}}})

	bad := []struct {
		devices []StaticDevice
		want    string
	}{
		{[]StaticDevice{{Name: "x"}}, "static device 1 (\"x\"): set exactly one of address and MAC"},
		{[]StaticDevice{{Addr: addr3, MAC: macA, Name: "x"}}, "set exactly one"},
		{[]StaticDevice{{Addr: addr3}}, "static device 1: want a name or a group"},
		{[]StaticDevice{{MAC: "00:11", Name: "x"}}, "static device 1 (\"x\"): hardware address \"00:11\""},
		{[]StaticDevice{{MAC: macA, Name: "x"}, {MAC: "00-11-22-33-44-55", Name: "y"}}, "static device 2 (\"y\"): MAC 00:11:22:33:44:55 is named twice"},
		{[]StaticDevice{{Addr: addr3, Name: "x"}, {Addr: netip.MustParseAddr("::ffff:10.1.2.3"), Name: "y"}}, "address 10.1.2.3 is named twice"},
	}
	for _, tc := range bad {
		if err := tb.SetStatic(tc.devices, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetStatic(%+v) = %v, want an error containing %q", tc.devices, err, tc.want)
		}
	}
}

func TestTablePrune(t *testing.T) {
	clk := &clock{now: utc(12, 0)}
	tb := NewTable(Options{Now: clk.Now, Horizon: time.Hour})
	tb.ApplyLeases(LeaseRead{Origin: "l", Format: FormatISC, Leases: []Lease{
		{Addr: addr3, MAC: macA, Start: utc(8, 0), End: utc(11, 30), Source: FormatISC},
		{Addr: addr3, MAC: macB, Start: utc(11, 30), End: utc(20, 0), Source: FormatISC},
		{Addr: netip.MustParseAddr("10.1.2.4"), MAC: macB, Start: utc(8, 0), End: utc(9, 0), Source: FormatISC},
	}})
	if s := tb.Stats(); s != (Stats{Addresses: 1, Leases: 2}) {
		t.Errorf("after a read: Stats = %+v, want 10.1.2.4's lease, ended before the horizon, pruned", s)
	}
	clk.Set(utc(12, 45))
	tb.Prune()
	if s := tb.Stats(); s != (Stats{Addresses: 1, Leases: 1}) {
		t.Errorf("after Prune at 12:45: Stats = %+v, want 1 address, 1 lease", s)
	}
	if got := tb.Lookup(addr3, utc(10, 0)); got.Known() {
		t.Errorf("Lookup before the horizon = %+v, want nothing", public(got))
	}
	if got := tb.Lookup(addr3, utc(12, 0)); got.MAC != macB {
		t.Errorf("Lookup now = %+v, want B", public(got))
	}
	// All of the address's history past the horizon: it is forgotten, and
	// known again when it is leased again.
	clk.Set(utc(21, 30))
	tb.Prune()
	if s, w := tb.Stats(), tb.Lookup(addr3, utc(19, 0)); s != (Stats{}) || w.Known() {
		t.Errorf("after Prune at 21:30: Stats = %+v, Lookup = %+v; want nothing", s, public(w))
	}
	tb.ApplyLeases(LeaseRead{Origin: "l", Format: FormatISC, Leases: []Lease{
		{Addr: addr3, MAC: macA, Start: utc(21, 0), End: utc(23, 0), Source: FormatISC},
	}})
	if w := tb.Lookup(addr3, utc(21, 30)); w.MAC != macA {
		t.Errorf("leased again: %+v, want A", public(w))
	}
}

func TestLookupAllocatesNothing(t *testing.T) {
	tb := benchTable(100)
	if err := tb.SetStatic([]StaticDevice{{MAC: macOf(7), Name: "static", Group: "ks2"}}, map[string]string{"user7": "staff"}); err != nil {
		t.Fatal(err)
	}
	at := benchBase.Add(90 * time.Minute)
	a := addrOf(7)
	if w := tb.Lookup(a, at); w.User != "user7" || w.Device != "static" {
		t.Fatalf("Lookup = %+v, want user7 on the static device", public(w))
	}
	if n := testing.AllocsPerRun(1000, func() { tb.Lookup(a, at) }); n != 0 {
		t.Errorf("Lookup allocates %v times, want 0", n)
	}
}

// TestTableConcurrent runs lookups while leases and sessions change, for
// the race detector.
func TestTableConcurrent(t *testing.T) {
	tb := benchTable(200)
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := range 2000 {
				tb.Lookup(addrOf((i+g)%200), benchBase.Add(time.Duration(i)*time.Second))
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			if err := tb.ApplySession(Session{Addr: addrOf(i), User: "late", Start: benchBase.Add(3 * time.Hour)}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for range 5 {
			tb.ApplyLeases(LeaseRead{Origin: "x", Format: FormatDnsmasq, At: benchBase.Add(4 * time.Hour),
				Leases: []Lease{{Addr: addrOf(1), MAC: macA, Source: FormatDnsmasq}}})
			tb.Prune()
		}
	})
	wg.Wait()
	if w := tb.Lookup(addrOf(5), benchBase.Add(3*time.Hour+time.Minute)); w.User != "late" {
		t.Errorf("after the writers: %+v, want user late", public(w))
	}
}

// TestWhoSources checks the names incidents record for each source.
func TestWhoSources(t *testing.T) {
	for _, tt := range []struct {
		who  Who
		want string
	}{
		{Who{}, ""},
		{Who{Device: "pc-1", DeviceSource: SourceLease, MAC: macA, MACSource: SourceRADIUS}, "device: lease, mac: radius"},
		{Who{User: "ann", UserSource: SourceProxyLogin, Group: "staff", GroupSource: SourceStatic}, "user: proxy-login, group: static"},
		{Who{Device: "pc-1", Group: "ks2", GroupSource: SourceRADIUS}, "group: radius"}, // a part with no source is left out
		{Who{DeviceSource: SourceLease}, ""}, // and so is a source with no part
	} {
		if got := tt.who.Sources(); got != tt.want {
			t.Errorf("Sources() of %+v = %q, want %q", public(tt.who), got, tt.want)
		}
	}
	if got := Source(9).String(); got != "" {
		t.Errorf("an unknown source is named %q, want none", got)
	}
}
