package store

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"hedgerow/categories"
)

func group(p *categories.Policy, name string) *categories.Group {
	for i := range p.Groups {
		if p.Groups[i].Name == name {
			return &p.Groups[i]
		}
	}
	return nil
}

// jsonEq compares an audit record's raw JSON with a value.
func jsonEq(t testing.TB, raw json.RawMessage, v any) bool {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("audit JSON %q: %v", raw, err)
	}
	_ = json.Unmarshal(want, &b)
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	return string(aj) == string(bj)
}

func TestPolicyRoundTrip(t *testing.T) {
	rich := categories.DefaultPolicy(testTax)
	g := group(&rich, "sixth-form")
	g.Allow = []string{"youtube.com", "example.org/lessons/"}
	g.Deny = []string{"bad.example"}
	g.Schedules = []categories.Schedule{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "12:00", To: "13:30", Allow: []string{"social-networks"}}}
	rich.Groups = append(rich.Groups, categories.Group{Name: "year-9-trip", Description: "trip laptops", Mode: categories.ModeAllowlist,
		Blocked: []string{}, Approved: []string{"education", "kids"}})
	rich.School.Allow = []string{"school.example"}
	rich.School.Deny = []string{"cheat.example/answers"}
	rich.Clients = append(rich.Clients,
		categories.ClientRule{Prefix: netip.MustParsePrefix("10.20.0.0/16"), Group: "year-9-trip"},
		categories.ClientRule{Prefix: netip.MustParsePrefix("2001:db8::/48"), Group: "staff"},
		categories.ClientRule{Prefix: netip.MustParsePrefix("10.20.30.40/32"), Group: "staff"})
	rich.TimeZone = "UTC"

	for _, tc := range []struct {
		name string
		p    categories.Policy
	}{
		{"default", categories.DefaultPolicy(testTax)},
		{"rich", rich},
		{"no clients", func() categories.Policy { p := categories.DefaultPolicy(testTax); p.Clients = nil; return p }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openNew(t)
			err := s.UpdatePolicy("it", PolicyChange{Action: "replace", Reason: "test", Apply: func(p *categories.Policy) (string, error) {
				*p = tc.p
				return categories.SchoolGroup, nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			mustCheck(t, s)
			got, err := s.Policy()
			if err != nil {
				t.Fatal(err)
			}
			samePolicy(t, got, tc.p)
			snap := mustSnapshot(t, s)
			samePolicy(t, snap.Policy(), tc.p)
		})
	}
}

func TestUpdatePolicyAudits(t *testing.T) {
	s, c := openNew(t)
	for _, tc := range []struct {
		name    string
		subject string
		apply   func(p *categories.Policy)
		check   func(t *testing.T, p categories.Policy)
	}{
		{"group allow", "ks2", func(p *categories.Policy) {
			g := group(p, "ks2")
			g.Allow = append(g.Allow, "scratch.mit.edu")
		}, func(t *testing.T, p categories.Policy) {
			if !slices.Contains(group(&p, "ks2").Allow, "scratch.mit.edu") {
				t.Error("allow not stored")
			}
		}},
		{"group blocks a category", "sixth-form", func(p *categories.Policy) {
			g := group(p, "sixth-form")
			g.Blocked = append(g.Blocked, "games")
		}, func(t *testing.T, p categories.Policy) {
			if !slices.Contains(group(&p, "sixth-form").Blocked, "games") {
				t.Error("blocked not stored")
			}
		}},
		{"clients", "clients", func(p *categories.Policy) {
			p.Clients = append(p.Clients, categories.ClientRule{Prefix: netip.MustParsePrefix("10.9.0.0/16"), Group: "staff"})
		}, func(t *testing.T, p categories.Policy) {
			if !slices.Contains(p.Clients, categories.ClientRule{Prefix: netip.MustParsePrefix("10.9.0.0/16"), Group: "staff"}) {
				t.Error("client rule not stored")
			}
		}},
		{"school deny", categories.SchoolGroup, func(p *categories.Policy) {
			p.School.Deny = append(p.School.Deny, "deny.example")
		}, func(t *testing.T, p categories.Policy) {
			if !slices.Equal(p.School.Deny, []string{"deny.example"}) {
				t.Errorf("school deny %v", p.School.Deny)
			}
		}},
		{"time zone", "time_zone", func(p *categories.Policy) {
			p.TimeZone = "Europe/Dublin"
		}, func(t *testing.T, p categories.Policy) {
			if p.TimeZone != "Europe/Dublin" {
				t.Errorf("time zone %q", p.TimeZone)
			}
		}},
		{"new group", "year-9", func(p *categories.Policy) {
			p.Groups = append(p.Groups, categories.Group{Name: "year-9", Mode: categories.ModeFilter, Blocked: []string{"adult"}})
		}, func(t *testing.T, p categories.Policy) {
			if group(&p, "year-9") == nil {
				t.Error("group not stored")
			}
		}},
		{"group removed", "year-9", func(p *categories.Policy) {
			p.Groups = slices.DeleteFunc(p.Groups, func(g categories.Group) bool { return g.Name == "year-9" })
		}, func(t *testing.T, p categories.Policy) {
			if group(&p, "year-9") != nil {
				t.Error("group still there")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.Policy()
			n := auditLen(t, s)
			at := c.peek()
			err := s.UpdatePolicy("it-frank", PolicyChange{Action: "edit " + tc.name, Reason: "because " + tc.name, Apply: func(p *categories.Policy) (string, error) {
				tc.apply(p)
				return tc.subject, nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			mustCheck(t, s)
			after, _ := s.Policy()
			tc.check(t, after)

			recs, _ := s.Audit(0)
			if len(recs) != n+1 {
				t.Fatalf("%d audit records, want %d", len(recs), n+1)
			}
			r := recs[0]
			if r.Actor != "it-frank" || r.Action != "edit "+tc.name || r.Target != tc.subject || r.Reason != "because "+tc.name || !r.Time.Equal(at) {
				t.Errorf("audit %+v (want time %v)", r, at)
			}
			wantBefore, wantAfter := policySection(before, tc.subject), policySection(after, tc.subject)
			if tc.subject == "clients" {
				// The audit keeps the rules in the order the change made
				// them; the store reads them back keyed by prefix.
				for _, raw := range []*json.RawMessage{&r.Before, &r.After} {
					var rules []categories.ClientRule
					if err := json.Unmarshal(*raw, &rules); err != nil {
						t.Fatal(err)
					}
					*raw, _ = json.Marshal(sortedClients(categories.Policy{Clients: rules}).Clients)
				}
				wantBefore, wantAfter = sortedClients(before).Clients, sortedClients(after).Clients
			}
			if wantBefore == nil {
				if !absent(r.Before) {
					t.Errorf("audit before %s, want none", r.Before)
				}
			} else if !jsonEq(t, r.Before, wantBefore) {
				t.Errorf("audit before %s, want %+v", r.Before, wantBefore)
			}
			if wantAfter == nil {
				if !absent(r.After) {
					t.Errorf("audit after %s, want none", r.After)
				}
			} else if !jsonEq(t, r.After, wantAfter) {
				t.Errorf("audit after %s, want %+v", r.After, wantAfter)
			}
		})
	}
}

func TestUpdatePolicyFailureChangesNothing(t *testing.T) {
	s, _ := openNew(t)
	for _, tc := range []struct {
		name    string
		reason  string
		apply   func(p *categories.Policy) (string, error)
		wantErr string
	}{
		{"no reason", "", func(p *categories.Policy) (string, error) { p.TimeZone = "UTC"; return "time_zone", nil }, "reason is required"},
		{"apply fails after changing", "r", func(p *categories.Policy) (string, error) {
			p.TimeZone = "UTC"
			group(p, "ks2").Blocked = nil
			p.Clients = nil
			return "ks2", errors.New("no such thing")
		}, "no such thing"},
		{"unknown category", "r", func(p *categories.Policy) (string, error) {
			g := group(p, "ks2")
			g.Blocked = append(g.Blocked, "gamez")
			return "ks2", nil
		}, `unknown category "gamez"`},
		{"client of an unknown group", "r", func(p *categories.Policy) (string, error) {
			p.Clients = append(p.Clients, categories.ClientRule{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Group: "ks5"})
			return "clients", nil
		}, `unknown group "ks5"`},
		{"bad time zone", "r", func(p *categories.Policy) (string, error) { p.TimeZone = "Mars/Olympus"; return "time_zone", nil }, "Mars/Olympus"},
		{"group twice", "r", func(p *categories.Policy) (string, error) {
			p.Groups = append(p.Groups, p.Groups[0])
			return p.Groups[0].Name, nil
		}, "defined twice"},
		{"reserved group name", "r", func(p *categories.Policy) (string, error) {
			p.Groups = append(p.Groups, categories.Group{Name: categories.SchoolGroup, Mode: categories.ModeFilter})
			return categories.SchoolGroup, nil
		}, "reserved"},
		{"bad override", "r", func(p *categories.Policy) (string, error) {
			p.School.Allow = append(p.School.Allow, "http://exa mple.com/")
			return categories.SchoolGroup, nil
		}, "school-wide overrides"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.Policy()
			id, n := txID(t, s), auditLen(t, s)
			err := s.UpdatePolicy("it", PolicyChange{Action: "edit " + tc.name, Reason: tc.reason, Apply: tc.apply})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "edit "+tc.name) {
				t.Fatalf("err %v, want one naming the action and saying %q", err, tc.wantErr)
			}
			if txID(t, s) != id || auditLen(t, s) != n {
				t.Error("failed UpdatePolicy wrote to the database")
			}
			after, _ := s.Policy()
			samePolicy(t, after, before)
			samePolicy(t, after, categories.DefaultPolicy(testTax))
			mustCheck(t, s)
		})
	}
}

func TestAudit(t *testing.T) {
	s, c := openNew(t)
	start := c.peek()
	type rec struct{ actor, action, target, reason string }
	var done []rec
	steps := []func() (rec, error){
		func() (rec, error) {
			return rec{"alice", "lists-add", "a.example", "r1"}, s.AddEntry("alice", "a.example", []string{"adult"}, "r1")
		},
		func() (rec, error) {
			return rec{"bob", "groups deny ks2 b.example", "ks2", "r2"}, s.UpdatePolicy("bob", PolicyChange{Action: "groups deny ks2 b.example", Reason: "r2",
				Apply: func(p *categories.Policy) (string, error) {
					group(p, "ks2").Deny = []string{"b.example"}
					return "ks2", nil
				}})
		},
		func() (rec, error) {
			return rec{"carol", "lists-remove", "a.example", "r3"}, s.RemoveEntry("carol", "a.example", nil, "r3")
		},
		func() (rec, error) {
			_, err := s.ReplaceFeed("dan", feedOf(t, FeedInfo{Name: "v", Reason: "r4"}, map[string][]string{"c.example": {"games"}}, nil))
			return rec{"dan", "import", "feed v", "r4"}, err
		},
		func() (rec, error) {
			return rec{"erin", "remove-feed", "feed v", "r5"}, s.RemoveFeed("erin", "v", "r5")
		},
	}
	for _, st := range steps {
		r, err := st()
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, r)
	}
	slices.Reverse(done)
	done = append(done, rec{"hedgerow", "init", s.Path(), "new database with the default policy"})

	all, err := s.Audit(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(done) {
		t.Fatalf("%d records, want %d", len(all), len(done))
	}
	for i, r := range all {
		if got := (rec{r.Actor, r.Action, r.Target, r.Reason}); got != done[i] {
			t.Errorf("record %d = %+v, want %+v", i, got, done[i])
		}
		if i > 0 && (r.Seq >= all[i-1].Seq || !r.Time.Before(all[i-1].Time)) {
			t.Errorf("record %d (seq %d, %v) not older than record %d (seq %d, %v)", i, r.Seq, r.Time, i-1, all[i-1].Seq, all[i-1].Time)
		}
		if r.Time.Location() != time.UTC || r.Time.Before(start.Add(-time.Hour)) || r.Time.After(c.peek()) {
			t.Errorf("record %d time %v is not from Options.Now", i, r.Time)
		}
	}
	for _, tc := range []struct{ limit, want int }{{1, 1}, {3, 3}, {len(done), len(done)}, {100, len(done)}} {
		got, err := s.Audit(tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want {
			t.Errorf("Audit(%d) gave %d records, want %d", tc.limit, len(got), tc.want)
			continue
		}
		for i := range got {
			if got[i].Seq != all[i].Seq {
				t.Errorf("Audit(%d)[%d] is seq %d, want the newest first (seq %d)", tc.limit, i, got[i].Seq, all[i].Seq)
			}
		}
	}
}

// audit is written to omit Before or After when there is nothing (its
// "if before != nil" checks), and AuditRecord's JSON tags say omitempty; but
// callers pass typed nil pointers (*FeedInfo, *LocalEntry), which are not
// nil interfaces, so the record stores "before":null.
func TestAuditOmitsMissingBeforeAndAfter(t *testing.T) {
	s, _ := openNew(t)
	for _, tc := range []struct {
		name              string
		do                func() error
		wantBefore, wantA bool
	}{
		{"first import", func() error {
			_, err := s.ReplaceFeed("it", feedOf(t, FeedInfo{Name: "v", Reason: "r"}, map[string][]string{"a.example": {"adult"}}, nil))
			return err
		}, false, true},
		{"re-import", func() error {
			_, err := s.ReplaceFeed("it", feedOf(t, FeedInfo{Name: "v", Reason: "r"}, map[string][]string{"a.example": {"adult"}}, nil))
			return err
		}, true, true},
		{"new local entry", func() error { return s.AddEntry("it", "b.example", []string{"games"}, "r") }, false, true},
		{"extended local entry", func() error { return s.AddEntry("it", "b.example", []string{"chat"}, "r") }, true, true},
		{"local entry removed", func() error { return s.RemoveEntry("it", "b.example", nil, "r") }, true, false},
		{"new group", func() error {
			return s.UpdatePolicy("it", PolicyChange{Action: "add group", Reason: "r", Apply: func(p *categories.Policy) (string, error) {
				p.Groups = append(p.Groups, categories.Group{Name: "y9", Mode: categories.ModeFilter})
				return "y9", nil
			}})
		}, false, true},
		{"feed removed", func() error { return s.RemoveFeed("it", "v", "r") }, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); err != nil {
				t.Fatal(err)
			}
			recs, _ := s.Audit(1)
			r := recs[0]
			if (r.Before != nil) != tc.wantBefore {
				t.Errorf("before = %s, want present=%v (absent means omitted, not null)", r.Before, tc.wantBefore)
			}
			if (r.After != nil) != tc.wantA {
				t.Errorf("after = %s, want present=%v (absent means omitted, not null)", r.After, tc.wantA)
			}
		})
	}
}

func TestLoadSnapshotVerdicts(t *testing.T) {
	s, _ := openNew(t)
	type set = map[string][]string
	for _, f := range []*Feed{
		feedOf(t, FeedInfo{Name: "vendor", Reason: "r"}, set{
			"adult.example": {"adult"}, "games.example": {"games"}, "news.example/adult-section": {"adult"}, "kids.example": {"kids"},
		}, nil),
		feedOf(t, FeedInfo{Name: "iwf", Locked: true, Reason: "r"}, set{"locked-adult.example": {"adult"}, "csam.example": {"child-abuse"}}, nil),
	} {
		if _, err := s.ReplaceFeed("it", f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddEntry("it", "handadded.example", []string{"gambling"}, "reported"); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdatePolicy("it", PolicyChange{Action: "overrides", Reason: "r", Apply: func(p *categories.Policy) (string, error) {
		group(p, "ks2").Allow = []string{"games.example", "locked-adult.example", "adult.example/sex-ed"}
		p.School.Deny = []string{"deny.example"}
		return "ks2", nil
	}}); err != nil {
		t.Fatal(err)
	}
	snap := mustSnapshot(t, s)
	now := time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		group, host, path string
		action            categories.Action
		rule              categories.Rule
		cat               string // deciding category, "" for none
		match             string // matching entry host+path, when it matters
	}{
		{"ks2", "adult.example", "", categories.Block, categories.RuleCategory, "adult", "adult.example"},
		{"ks2", "www.adult.example", "", categories.Block, categories.RuleCategory, "adult", "adult.example"},
		{"ks2", "a.b.c.adult.example", "/x", categories.Block, categories.RuleCategory, "adult", "adult.example"},
		{"ks2", "adult.example", "/sex-ed/lesson", categories.Allow, categories.RuleGroupAllow, "", "adult.example/sex-ed"},
		{"ks2", "xadult.example", "", categories.Allow, categories.RuleDefault, "", ""},
		{"staff", "adult.example", "", categories.Block, categories.RuleCategory, "adult", "adult.example"},
		{"sixth-form", "games.example", "", categories.Allow, categories.RuleDefault, "", ""},
		{"ks2", "games.example", "", categories.Allow, categories.RuleGroupAllow, "", "games.example"},
		{"ks3-ks4", "games.example", "", categories.Block, categories.RuleCategory, "games", "games.example"},
		{"ks2", "locked-adult.example", "", categories.Block, categories.RuleLocked, "adult", "locked-adult.example"},
		{"ks2", "www.locked-adult.example", "", categories.Block, categories.RuleLocked, "adult", "locked-adult.example"},
		{"staff", "csam.example", "", categories.Block, categories.RuleCritical, "child-abuse", "csam.example"},
		{"ks2", "handadded.example", "", categories.Block, categories.RuleCategory, "gambling", "handadded.example"},
		{"staff", "www.handadded.example", "", categories.Block, categories.RuleCategory, "gambling", "handadded.example"},
		{"ks2", "news.example", "/adult-section/page", categories.Block, categories.RuleCategory, "adult", "news.example/adult-section"},
		{"ks2", "news.example", "/sport", categories.Allow, categories.RuleDefault, "", ""},
		{"ks2", "news.example", "", categories.Allow, categories.RuleDefault, "", ""},
		{"ks2", "deny.example", "", categories.Block, categories.RuleSchoolDeny, "", "deny.example"},
		{"early-years-ks1", "kids.example", "", categories.Allow, categories.RuleApproved, "kids", "kids.example"},
		{"early-years-ks1", "unknown.example", "", categories.Block, categories.RuleNotApproved, "", ""},
		{"no-such-group", "kids.example", "", categories.Block, categories.RuleUnknownGroup, "", ""},
	} {
		t.Run(tc.group+"/"+tc.host+tc.path, func(t *testing.T) {
			v := snap.Decide(tc.group, tc.host, tc.path, now)
			cat := ""
			if v.Category != nil {
				cat = v.Category.Slug
			}
			if v.Action != tc.action || v.Rule != tc.rule || cat != tc.cat || (tc.match != "" && v.Match+v.MatchPath != tc.match) {
				t.Errorf("Decide = %v by %v, category %q, match %q; want %v by %v, %q, %q (%s)",
					v.Action, v.Rule, cat, v.Match+v.MatchPath, tc.action, tc.rule, tc.cat, tc.match, v.Reason())
			}
		})
	}
	if g, ok := snap.GroupFor(netip.MustParseAddr("192.168.4.5")); !ok || g != "ks2" {
		t.Errorf("GroupFor(192.168.4.5) = %q, %v; want ks2 from the stored client map", g, ok)
	}
	if _, ok := snap.GroupFor(netip.MustParseAddr("8.8.8.8")); ok {
		t.Error("a public address maps to a group")
	}
}

// A chunk that names a category this binary does not know (a newer
// taxonomy, or damage) makes LoadSnapshot fail with an error naming the
// feed, rather than dropping the entries silently.
func TestLoadSnapshotBadChunk(t *testing.T) {
	s, _ := openNew(t)
	if _, err := s.ReplaceFeed("it", feedOf(t, FeedInfo{Name: "vendor", Reason: "r"}, map[string][]string{"a.example": {"adult"}}, nil)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, chunk, wantErr string
	}{
		{"unknown category", "block\tadult,holograms\nb.example\n", "holograms"},
		{"bad header", "allow adult\nb.example\n", "corrupt chunk header"},
		{"no header", "b.example", "without header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bFeeds).Bucket([]byte("vendor")).Bucket([]byte("chunks")).Put([]byte{0xff, 0xff, 0xff, 0xff}, []byte(tc.chunk))
			}); err != nil {
				t.Fatal(err)
			}
			_, err := s.LoadSnapshot()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "vendor") {
				t.Errorf("LoadSnapshot = %v, want an error naming feed vendor and saying %q", err, tc.wantErr)
			}
		})
	}
}

// The time zone written is the time zone read back (or the policy is
// refused). categories.Policy.Validate accepts "" (time.LoadLocation("") is
// UTC), but readPolicy turns a stored "" into DefaultTimeZone, so a policy
// that was validated, compiled and audited as UTC comes back as Europe/London.
func TestPolicyTimeZoneRoundTrip(t *testing.T) {
	s, _ := openNew(t)
	for _, zone := range []string{"UTC", "America/New_York", categories.DefaultTimeZone, ""} {
		t.Run("zone="+zone, func(t *testing.T) {
			err := s.UpdatePolicy("it", PolicyChange{Action: "time zone", Reason: "r", Apply: func(p *categories.Policy) (string, error) {
				p.TimeZone = zone
				return "time_zone", nil
			}})
			if err != nil {
				if zone == "" {
					return // refusing an empty zone is fine too
				}
				t.Fatal(err)
			}
			p, _ := s.Policy()
			if p.TimeZone != zone {
				t.Errorf("wrote time zone %q, read back %q", zone, p.TimeZone)
			}
		})
	}
}
