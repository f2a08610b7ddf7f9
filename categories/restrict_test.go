package categories

import (
	"net/netip"
	"testing"
	"time"
)

func TestRestrictions(t *testing.T) {
	snap, err := NewSnapshot(testTax, buildTestIndex(t, []ixEntry{
		{target: "games.example", cats: []string{"games"}}, {target: "learn.example", cats: []string{"education"}},
		{target: "news.example", cats: []string{"news"}}}), DefaultPolicy(testTax))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRestrictions()
	pupil, other := netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("10.0.0.8")
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	r.Restrict(netip.MustParseAddr("::ffff:10.0.0.7"), now.Add(time.Hour)) // IPv4-mapped: the same device
	r.Restrict(pupil, now.Add(time.Minute))                                // never shortens
	for _, tc := range []struct {
		addr netip.Addr
		at   time.Time
		host string
		act  Action
		rule Rule
	}{
		{pupil, now, "news.example", Block, RuleRestricted},
		{pupil, now, "unlisted.example", Block, RuleRestricted},
		{pupil, now, "learn.example", Allow, RuleApproved},
		{pupil, now, "games.example", Block, RuleCategory}, // the group's own policy still comes first
		{other, now, "news.example", Allow, RuleDefault},
		{pupil, now.Add(2 * time.Hour), "news.example", Allow, RuleDefault}, // ended
	} {
		v := snap.DecideFor(r, tc.addr, "ks3-ks4", tc.host, "", tc.at)
		if v.Action != tc.act || v.Rule != tc.rule {
			t.Errorf("%s at %s %s: %s %s, want %s %s", tc.addr, tc.at.Format("15:04"), tc.host, v.Action, v.Rule, tc.act, tc.rule)
		}
	}
	if got := snap.DecideFor(r, pupil, "ks3-ks4", "news.example", "", now).Reason(); got == "" {
		t.Error("no reason for a restricted block")
	}
	if l := r.List(now); len(l) != 1 || l[0].Addr != pupil {
		t.Errorf("List %v", l)
	}
	r.Lift(pupil)
	if r.Active(pupil, now) || len(r.List(now)) != 0 {
		t.Error("lifted restriction still active")
	}
	var none *Restrictions
	if none.Active(pupil, now) {
		t.Error("a nil set restricts")
	}
}

func BenchmarkRestrictionsActiveEmpty(b *testing.B) {
	r := NewRestrictions()
	a := netip.MustParseAddr("10.0.0.7")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if r.Active(a, now) {
			b.Fatal("restricted")
		}
	}
}
