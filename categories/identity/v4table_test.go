package identity

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestV4Table(t *testing.T) {
	keys := []uint32{0, 1, 0xffffffff, 0x0a000001, 0x0a000101, 0xc0a80001}
	for n := 1; n < 40; n++ { // enough keys for probes to collide and wrap
		keys = append(keys, uint32(n)<<24|uint32(n))
	}
	tb := newV4Table(len(keys))
	for i, k := range keys {
		tb.put(k, header{off: uint32(i), static: int32(i) - 1, leases: uint8(i), sess: 1})
	}
	tb.put(keys[3], header{off: 99, static: -1}) // replacing does not add
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
		want := header{off: uint32(i), static: int32(i) - 1, leases: uint8(i), sess: 1}
		if i == 3 {
			want = header{off: 99, static: -1}
		}
		check(tb, k, want, true)
	}
	check(tb, 0x0b000000, header{}, false)

	next := tb.with(map[uint32]header{0x0b000000: {off: 7}}, map[uint32]bool{0: true, keys[5]: true})
	check(next, 0x0b000000, header{off: 7}, true)
	check(next, 0, header{}, false)
	check(next, keys[5], header{}, false)
	check(next, 1, header{off: 1, static: 0, leases: 1, sess: 1}, true)
	check(tb, 0, header{off: 0, static: -1, sess: 1}, true) // the original is unchanged
	if next.n != len(keys)-1 {
		t.Errorf("after with: n = %d, want %d", next.n, len(keys)-1)
	}
	check(newV4Table(0), 0, header{}, false)
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
	h0, _ := s0.header(a)
	w0 := s0.who(h0, at.UnixNano())
	if w0.User != "user3" {
		t.Fatalf("before: %+v", public(w0))
	}
	for i := range 3000 {
		s := Session{Addr: a, User: "roamer" + string(rune('a'+i%26)), Start: at.Add(time.Duration(i) * time.Second)}
		if err := tb.ApplySession(s); err != nil {
			t.Fatal(err)
		}
	}
	if w := s0.who(h0, at.UnixNano()); w != w0 {
		t.Errorf("the old snapshot changed: %+v, was %+v", public(w), public(w0))
	}
	s := tb.snap.Load()
	if n := len(s.entries); n > 3*4096 {
		t.Errorf("%d entries after a flood on one address: space left behind is not reclaimed", n)
	}
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
// home slots so that deletions shift probe runs, and checks it against a
// Go map after each change.
func TestV4TableAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[uint32]header{}
	tb := newV4Table(0)
	for round := range 300 {
		set, gone := map[uint32]header{}, map[uint32]bool{}
		for range 1 + rng.IntN(8) {
			k := uint32(rng.IntN(64)) << 26 // few distinct high bits: long runs
			if rng.IntN(3) == 0 {
				gone[k] = true
				delete(set, k)
			} else {
				set[k] = header{off: uint32(round), static: -1}
				delete(gone, k)
			}
		}
		tb = tb.with(set, gone)
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
