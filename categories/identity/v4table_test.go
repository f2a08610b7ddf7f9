package identity

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestV4Table(t *testing.T) {
	keys := []uint32{0, 1, 0xffffffff, 0x0a000001, 0x0a000101, 0xc0a80001}
	for n := 1; n < 40; n++ { // enough keys for probes to collide and wrap
		keys = append(keys, uint32(n)<<24|uint32(n))
	}
	headerOf := func(i int) header {
		h := header{history: history{off: uint32(i), static: int32(i) - 1, leases: uint8(i), sess: 1}}
		if i%2 == 0 { // every other one with an answer, the strings told apart
			h.cur = answer{from: int64(i) * int64(time.Second), until: int64(i+100) * int64(time.Second), who: Who{
				Device: fmt.Sprint("pc-", i), MAC: macOf(i), User: strings.Repeat("u", i), Group: fmt.Sprint("g", i%3),
				DeviceSource: SourceStatic, MACSource: SourceLease, UserSource: SourceRADIUS, GroupSource: SourceRADIUS,
				deviceGroup: "ks2"}}
		}
		return h
	}
	set := map[uint32]header{}
	for i, k := range keys {
		set[k] = headerOf(i)
	}
	tb := newV4Table(set)
	if tb.n != len(keys) {
		t.Fatalf("n = %d, want %d", tb.n, len(keys))
	}
	check := func(tb *v4Table, k uint32, want header, wantOK bool) {
		t.Helper()
		if h, ok := tb.get(k); ok != wantOK || h != want {
			t.Errorf("get(%#x) = %+v, %v; want %+v, %v", k, h, ok, want, wantOK)
		}
	}
	for i, k := range keys {
		check(tb, k, headerOf(i), true)
	}
	check(tb, 0x0b000000, header{}, false)

	// Adding and replacing copies the table; removing builds it afresh.
	added := tb.with(map[uint32]header{0x0b000000: {history: history{off: 7}}, keys[3]: {history: history{off: 99, static: -1}}, keys[4]: headerOf(6)}, nil)
	check(added, 0x0b000000, header{history: history{off: 7}}, true)
	check(added, keys[3], header{history: history{off: 99, static: -1}}, true)
	check(added, keys[4], headerOf(6), true)
	check(added, keys[8], headerOf(8), true)
	if added.n != len(keys)+1 {
		t.Errorf("after adding: n = %d, want %d", added.n, len(keys)+1)
	}
	checkLive(t, tb)
	checkLive(t, added)
	next := added.with(nil, map[uint32]bool{0: true, keys[5]: true})
	check(next, 0x0b000000, header{history: history{off: 7}}, true)
	check(next, keys[3], header{history: history{off: 99, static: -1}}, true)
	check(next, 0, header{}, false)
	check(next, keys[5], header{}, false)
	check(next, 1, headerOf(1), true)
	check(next, keys[8], headerOf(8), true)
	check(tb, 0, headerOf(0), true) // the original is unchanged
	checkLive(t, next)
	if next.n != len(keys)-1 {
		t.Errorf("after with: n = %d, want %d", next.n, len(keys)-1)
	}
	check(newV4Table(nil), 0, header{}, false)

	// An answer that does not pack is left out, and the history answers.
	long := header{history: history{off: 1, static: -1}, cur: answer{from: 0, until: 10 * int64(time.Second), who: Who{User: strings.Repeat("x", 256), UserSource: SourceRADIUS}}}
	check(newV4Table(map[uint32]header{5: long}), 5, header{history: history{off: 1, static: -1}}, true)
}

// checkLive checks that a table counts right how much of its text its
// answers take.
func checkLive(t *testing.T, tb *v4Table) {
	t.Helper()
	live := 0
	for i := range tb.slots {
		if tb.slots[i].used {
			live += tb.slots[i].textLen()
		}
	}
	if live != tb.live || len(tb.text) < live {
		t.Errorf("live = %d, text %d bytes; the slots take %d", tb.live, len(tb.text), live)
	}
}

// TestSnapshotsStayPut checks that publishing appends without disturbing
// what an older snapshot reads, and that the space left behind is
// reclaimed: a flood of sessions on one address neither grows the table
// without end nor changes old answers.
func TestSnapshotsStayPut(t *testing.T) {
	tb := benchTable(20)
	a := addrOf(3)
	at := benchBase.Add(2 * time.Hour)
	s0 := tb.snap.Load()
	var w0 Who
	s0.lookup(a, at.UnixNano(), &w0)
	if w0.User != "user3" {
		t.Fatalf("before: %+v", public(w0))
	}
	for i := range 3000 {
		s := Session{Addr: a, User: "roamer" + string(rune('a'+i%26)), Start: at.Add(time.Duration(i) * time.Second)}
		if err := tb.ApplySession(s); err != nil {
			t.Fatal(err)
		}
	}
	var w Who
	if s0.lookup(a, at.UnixNano(), &w); w != w0 {
		t.Errorf("the old snapshot changed: %+v, was %+v", public(w), public(w0))
	}
	s := tb.snap.Load()
	if n := len(s.entries); n > 3*4096 {
		t.Errorf("%d entries after a flood on one address: space left behind is not reclaimed", n)
	}
	if n := len(s.v4new.text); n > 2*s.v4new.live+4096 {
		t.Errorf("the text of recent changes is %d bytes after a flood on one address, its answers %d", n, s.v4new.live)
	}
	checkLive(t, s.v4new)
	if st := tb.Stats(); st.Sessions != 2*19+maxHistory || st.Addresses != 20 {
		t.Errorf("Stats = %+v, want %d sessions (history capped at %d) on 20 addresses", st, 2*19+maxHistory, maxHistory)
	}
	if w := tb.Lookup(a, at.Add(2999*time.Second)); w.User != "roamer"+string(rune('a'+2999%26)) {
		t.Errorf("after the flood: %+v", public(w))
	}
	if w := tb.Lookup(addrOf(4), at); w.User != "user4" {
		t.Errorf("another address after the flood: %+v", public(w))
	}
	if w := tb.Lookup(netip.MustParseAddr("2001:db8::1"), at); w.Known() {
		t.Errorf("unknown IPv6 address: %+v", public(w))
	}
}

// TestV4TableAgainstMap changes a table many times, keys crowded into few
// home slots so that probes run long, and checks it against a
// Go map after each change.
func TestV4TableAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[uint32]header{}
	tb := newV4Table(nil)
	for round := range 300 {
		set, gone := map[uint32]header{}, map[uint32]bool{}
		for range 1 + rng.IntN(8) {
			k := uint32(rng.IntN(64)) << 26 // few distinct high bits: long runs
			if rng.IntN(3) == 0 {
				gone[k] = true
				delete(set, k)
			} else {
				set[k] = header{history: history{off: uint32(round), static: -1}}
				if round%2 == 1 { // an answer, for the text to be replaced too
					set[k] = header{history: history{off: uint32(round), static: -1},
						cur: answer{until: 10 * int64(time.Second), who: Who{User: fmt.Sprint("user", round), UserSource: SourceRADIUS}}}
				}
				delete(gone, k)
			}
		}
		tb = tb.with(set, gone)
		checkLive(t, tb)
		for k := range gone {
			delete(want, k)
		}
		maps.Copy(want, set)
		if tb.n != len(want) {
			t.Fatalf("round %d: n = %d, want %d", round, tb.n, len(want))
		}
		for k := range uint32(64) {
			h, ok := tb.get(k << 26)
			if wh, wok := want[k<<26]; ok != wok || h != wh {
				t.Fatalf("round %d: get(%#x) = %+v, %v; want %+v, %v", round, k<<26, h, ok, wh, wok)
			}
		}
	}
}

// TestTableFolds changes more addresses one by one than the table of
// recent changes holds, so that they are folded into the main table, and
// checks every address after each fold.
func TestTableFolds(t *testing.T) {
	const n = 3 * foldAfter
	tb := benchTable(n)
	at := benchBase.Add(3 * time.Hour)
	for i := range n {
		if err := tb.ApplySession(Session{Addr: addrOf(i), User: "late", Start: at}); err != nil {
			t.Fatal(err)
		}
		if (i+1)%foldAfter != 1 {
			continue // just after a fold
		}
		for j := range n {
			want := "user"
			if j <= i {
				want = "late"
			}
			if w := tb.Lookup(addrOf(j), at); !strings.HasPrefix(w.User, want) {
				t.Fatalf("after %d changes, %s: %+v, want %s", i+1, addrOf(j), public(w), want)
			}
		}
	}
	if s := tb.snap.Load(); s.v4new.n >= foldAfter || s.v4.n != n {
		t.Errorf("v4new holds %d, v4 %d; want fewer than %d and %d", s.v4new.n, s.v4.n, foldAfter, n)
	}
}

// TestAnswerAgreesWithHistory builds random histories, publishing at
// random moments, and checks that wherever a header's answer claims to
// hold, the history says the same, at every start and end and a nanosecond
// either side.
func TestAnswerAgreesWithHistory(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	clk := &clock{now: benchBase}
	tb := NewTable(Options{Now: clk.Now, Horizon: 48 * time.Hour})
	if err := tb.SetStatic([]StaticDevice{{MAC: macOf(1), Name: "trolley-1", Group: "ks3"}, {Addr: addrOf(2), Group: "ks2"}},
		map[string]string{"u1": "staff"}); err != nil {
		t.Fatal(err)
	}
	moment := func() time.Time { return benchBase.Add(time.Duration(rng.IntN(600)) * time.Minute) }
	var moments []int64
	answered := 0
	for round := range 400 {
		clk.Set(moment())
		a := addrOf(rng.IntN(4))
		if rng.IntN(2) == 0 {
			start := moment()
			tb.ApplyLeases(LeaseRead{Origin: "isc", Format: FormatISC, At: clk.Now(), Leases: []Lease{
				{Addr: a, MAC: macOf(rng.IntN(3)), Hostname: fmt.Sprint("pc-", round), Start: start, End: start.Add(time.Duration(1+rng.IntN(120)) * time.Minute), Source: FormatISC}}})
		} else {
			s := Session{Addr: a, User: fmt.Sprint("u", rng.IntN(3)), Start: moment()}
			if rng.IntN(3) == 0 {
				s.MAC = macOf(rng.IntN(3))
			}
			if rng.IntN(2) == 0 {
				s.End = s.Start.Add(time.Duration(1+rng.IntN(90)) * time.Minute)
			}
			if err := tb.ApplySession(s); err != nil {
				t.Fatal(err)
			}
		}
		s := tb.snap.Load()
		for _, e := range s.entries {
			moments = append(moments, e.start-1, e.start, e.start+1, e.end-1, e.end, e.end+1)
		}
		for i := range 4 {
			h, ok := s.header(addrOf(i))
			if !ok {
				continue
			}
			for _, at := range moments {
				var got, want Who
				s.fill(&want, h.history, at)
				if s.lookup(addrOf(i), at, &got); got != want {
					t.Fatalf("round %d, %s at %d (answer for [%d, %d)):\n got %+v\nwant %+v", round, addrOf(i), at, h.cur.from, h.cur.until, got, want)
				}
				if h.cur.from <= at && at < h.cur.until {
					answered++
				}
			}
		}
		moments = moments[:0]
	}
	if answered == 0 {
		t.Error("no lookup was answered from a header's answer")
	}
}

// TestV4SlotIsHalfACacheLine keeps a slot to half a cache line: a lookup
// that waits for one line, and lines the cache keeps for two addresses,
// are the point of the table.
func TestV4SlotIsHalfACacheLine(t *testing.T) {
	if size := unsafe.Sizeof(v4Slot{}); size != 32 {
		t.Errorf("a v4Slot is %d bytes, want 32", size)
	}
}

func TestSeconds(t *testing.T) {
	const sec = int64(time.Second)
	for _, tt := range []struct {
		from, until int64
		f, u        uint32
		ok          bool
	}{
		{10 * sec, 20 * sec, 10, 20, true},
		{10*sec + 1, 20*sec - 1, 11, 19, true}, // narrowed inwards, never widened
		{always, never, 0, math.MaxUint32, true},
		{-5 * sec, 3 * sec, 0, 3, true},
		{10*sec + 1, 11*sec - 1, 0, 0, false}, // no whole second inside
		{10 * sec, 10 * sec, 0, 0, false},
		{math.MaxUint32 * sec, never, 0, 0, false}, // past what a slot holds
	} {
		f, u, ok := seconds(tt.from, tt.until)
		if ok != tt.ok || ok && (f != tt.f || u != tt.u) {
			t.Errorf("seconds(%d, %d) = %d, %d, %v; want %d, %d, %v", tt.from, tt.until, f, u, ok, tt.f, tt.u, tt.ok)
		}
	}
}
