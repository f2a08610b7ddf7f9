package categories

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	_ "time/tzdata" // schedules need Europe/London even where the system has no zoneinfo
)

// polGroup returns the named group of a policy for editing.
func polGroup(tb testing.TB, p *Policy, name string) *Group {
	tb.Helper()
	g := groupNamed(p, name)
	if g == nil {
		tb.Fatalf("policy has no group %q", name)
	}
	return g
}

// groupNamed is polGroup for policy edits that run without a testing.TB;
// it panics when the group is missing, which only a broken test can cause.
func groupNamed(p *Policy, name string) *Group {
	for i := range p.Groups {
		if p.Groups[i].Name == name {
			return &p.Groups[i]
		}
	}
	panic("policy has no group " + name)
}

func TestDefaultPolicyValidates(t *testing.T) {
	p := DefaultPolicy(testTax)
	if err := p.Validate(testTax); err != nil {
		t.Fatalf("DefaultPolicy does not validate: %v", err)
	}
	if _, err := NewSnapshot(testTax, buildTestIndex(t, nil), p); err != nil {
		t.Fatalf("NewSnapshot(DefaultPolicy): %v", err)
	}
	if p.TimeZone != DefaultTimeZone {
		t.Errorf("TimeZone = %q, want %q", p.TimeZone, DefaultTimeZone)
	}
	var names []string
	for _, g := range p.Groups {
		names = append(names, g.Name)
	}
	if want := []string{"early-years-ks1", "ks2", "ks3-ks4", "sixth-form", "staff"}; !slices.Equal(names, want) {
		t.Errorf("groups = %v, want %v", names, want)
	}
	// Two calls share nothing: editing one policy must not edit the next.
	polGroup(t, &p, "staff").Blocked[0] = "games"
	polGroup(t, &p, "ks2").Blocked = append(polGroup(t, &p, "ks2").Blocked[:1], "x")
	q := DefaultPolicy(testTax)
	if err := q.Validate(testTax); err != nil {
		t.Errorf("a second DefaultPolicy shares slices with the first: %v", err)
	}
	if polGroup(t, &q, "staff").Blocked[0] == "games" {
		t.Error("a second DefaultPolicy shares slices with the first")
	}
}

func TestDefaultPolicyGroups(t *testing.T) {
	p := DefaultPolicy(testTax)
	critHigh := testTax.SeverityMask(SeverityCritical) | testTax.SeverityMask(SeverityHigh)
	allowKind := testTax.KindMask(KindAllow)
	if critHigh == 0 || testTax.SeverityMask(SeverityCritical) == 0 {
		t.Fatal("taxonomy has no critical or high categories")
	}
	for _, g := range p.Groups {
		cg, err := compileGroup(testTax, g)
		if err != nil {
			t.Fatalf("group %s: %v", g.Name, err)
		}
		if missing := critHigh &^ cg.blocked; missing != 0 {
			t.Errorf("group %s does not block %s", g.Name, slugsOf(missing))
		}
		if extra := cg.blocked & allowKind; extra != 0 {
			t.Errorf("group %s blocks allow-kind categories %s", g.Name, slugsOf(extra))
		}
		wantMode := ModeFilter
		if g.Name == "early-years-ks1" {
			wantMode = ModeAllowlist
		}
		if g.Mode != wantMode {
			t.Errorf("group %s mode = %q, want %q", g.Name, g.Mode, wantMode)
		}
		if g.Description == "" {
			t.Errorf("group %s has no description", g.Name)
		}
		if len(g.Allow)+len(g.Deny)+len(g.Schedules) != 0 {
			t.Errorf("group %s ships with overrides or schedules", g.Name)
		}
	}
	staff, _ := compileGroup(testTax, *polGroup(t, &p, "staff"))
	if staff.blocked != critHigh {
		t.Errorf("staff blocks %s, want exactly critical+high %s", slugsOf(staff.blocked), slugsOf(critHigh))
	}
	ey, _ := compileGroup(testTax, *polGroup(t, &p, "early-years-ks1"))
	if want := catMask(t, "kids", "education"); ey.approved != want {
		t.Errorf("early-years-ks1 approves %s, want %s", slugsOf(ey.approved), slugsOf(want))
	}
	// Younger groups block at least what older ones do.
	order := []string{"early-years-ks1", "ks2", "ks3-ks4", "sixth-form", "staff"}
	for i := 1; i < len(order); i++ {
		younger, _ := compileGroup(testTax, *polGroup(t, &p, order[i-1]))
		older, _ := compileGroup(testTax, *polGroup(t, &p, order[i]))
		if extra := older.blocked &^ younger.blocked; extra != 0 {
			t.Errorf("%s blocks %s that the younger %s allows", order[i], slugsOf(extra), order[i-1])
		}
	}
	// School-wide: only the trusted education allow list, no denies.
	if len(p.School.Deny) != 0 || p.School.Name != SchoolGroup || !slices.Contains(p.School.Allow, "gov.uk") {
		t.Errorf("school overrides = %+v, want the trusted education allow list under %q", p.School, SchoolGroup)
	}
	for _, a := range p.School.Allow {
		if tg, err := ParseOverride(a); err != nil || tg.Path != "" || tg.Host != a {
			t.Errorf("trusted allow %q is not a canonical host: %v", a, err)
		}
	}
}

func TestDefaultPolicyClients(t *testing.T) {
	s, err := NewSnapshot(testTax, buildTestIndex(t, nil), DefaultPolicy(testTax))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want string // "" for no group
	}{
		{"127.0.0.1", "ks2"},
		{"127.255.255.254", "ks2"},
		{"::1", "ks2"},
		{"10.0.0.1", "ks2"},
		{"10.255.255.255", "ks2"},
		{"172.16.0.1", "ks2"},
		{"172.31.255.255", "ks2"},
		{"192.168.1.20", "ks2"},
		{"fd12:3456::1", "ks2"},
		{"fc00::1", "ks2"},
		{"fd00::1%eth0", "ks2"},
		{"::ffff:192.168.1.20", "ks2"},
		{"::ffff:127.0.0.1", "ks2"},
		{"8.8.8.8", ""},
		{"::ffff:8.8.8.8", ""},
		{"172.32.0.1", ""},
		{"172.15.255.255", ""},
		{"192.169.0.1", ""},
		{"11.0.0.1", ""},
		{"2001:4860:4860::8888", ""},
		{"fe80::1", ""},
		{"::", ""},
		{"0.0.0.0", ""},
	}
	for _, tt := range tests {
		g, ok := s.GroupFor(netip.MustParseAddr(tt.addr))
		if g != tt.want || ok != (tt.want != "") {
			t.Errorf("GroupFor(%s) = %q, %v; want %q", tt.addr, g, ok, tt.want)
		}
	}
	if g, ok := s.GroupFor(netip.Addr{}); ok {
		t.Errorf("GroupFor(invalid) = %q, want no group", g)
	}
}

func TestPolicyValidateErrors(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(p *Policy)
		errHas []string
	}{
		{name: "unknown blocked category",
			edit:   func(p *Policy) { polGroup(t, p, "ks2").Blocked = append(polGroup(t, p, "ks2").Blocked, "gamez") },
			errHas: []string{`group "ks2" blocked`, `unknown category "gamez"`, "known:"}},
		{name: "unknown approved category",
			edit:   func(p *Policy) { polGroup(t, p, "early-years-ks1").Approved = []string{"toys"} },
			errHas: []string{`group "early-years-ks1" approved`, `unknown category "toys"`}},
		{name: "bad mode",
			edit:   func(p *Policy) { polGroup(t, p, "ks2").Mode = "strict" },
			errHas: []string{`group "ks2"`, `mode "strict"`, `"filter"`, `"allowlist"`}},
		{name: "empty mode",
			edit:   func(p *Policy) { polGroup(t, p, "staff").Mode = "" },
			errHas: []string{`group "staff"`, `mode ""`}},
		{name: "duplicate group",
			edit:   func(p *Policy) { p.Groups = append(p.Groups, Group{Name: "ks2", Mode: ModeFilter}) },
			errHas: []string{`group "ks2" defined twice`}},
		{name: "upper-case group name",
			edit:   func(p *Policy) { p.Groups = append(p.Groups, Group{Name: "KS5", Mode: ModeFilter}) },
			errHas: []string{`group name "KS5"`, "lower-case"}},
		{name: "reserved group name",
			edit:   func(p *Policy) { p.Groups = append(p.Groups, Group{Name: SchoolGroup, Mode: ModeFilter}) },
			errHas: []string{`group name "school" is reserved`}},
		{name: "empty group name",
			edit:   func(p *Policy) { p.Groups = append(p.Groups, Group{Mode: ModeFilter}) },
			errHas: []string{`group name ""`}},
		{name: "client range with unknown group",
			edit: func(p *Policy) {
				p.Clients = append(p.Clients, ClientRule{Prefix: netip.MustParsePrefix("10.9.0.0/16"), Group: "ks5"})
			},
			errHas: []string{`client range 10.9.0.0/16: unknown group "ks5"`}},
		{name: "client range mapped to the school pseudo-group",
			edit: func(p *Policy) {
				p.Clients = append(p.Clients, ClientRule{Prefix: netip.MustParsePrefix("10.9.0.0/16"), Group: SchoolGroup})
			},
			errHas: []string{`client range 10.9.0.0/16: unknown group "school"`}},
		{name: "bad time zone",
			edit:   func(p *Policy) { p.TimeZone = "Mars/Olympus_Mons" },
			errHas: []string{`time zone "Mars/Olympus_Mons"`}},
		{name: "schedule without days",
			edit: func(p *Policy) {
				polGroup(t, p, "ks3-ks4").Schedules = []Schedule{{From: "12:00", To: "13:00", Allow: []string{"games"}}}
			},
			errHas: []string{`group "ks3-ks4" schedule 1`, "no days"}},
		{name: "schedule with a bad day",
			edit: func(p *Policy) {
				polGroup(t, p, "ks3-ks4").Schedules = []Schedule{
					{Days: []string{"mon"}, From: "12:00", To: "13:00", Allow: []string{"games"}},
					{Days: []string{"monday"}, From: "12:00", To: "13:00", Allow: []string{"games"}},
				}
			},
			errHas: []string{`group "ks3-ks4" schedule 2`, `day "monday"`}},
		{name: "schedule with a bad time",
			edit: func(p *Policy) {
				polGroup(t, p, "ks3-ks4").Schedules = []Schedule{{Days: []string{"mon"}, From: "25:00", To: "13:00", Allow: []string{"games"}}}
			},
			errHas: []string{`group "ks3-ks4" schedule 1`, `time "25:00"`, "HH:MM"}},
		{name: "schedule with a bad end time",
			edit: func(p *Policy) {
				polGroup(t, p, "ks3-ks4").Schedules = []Schedule{{Days: []string{"mon"}, From: "12:00", To: "noon", Allow: []string{"games"}}}
			},
			errHas: []string{`group "ks3-ks4" schedule 1`, `time "noon"`}},
		{name: "schedule with an empty window",
			edit: func(p *Policy) {
				polGroup(t, p, "ks3-ks4").Schedules = []Schedule{{Days: []string{"mon"}, From: "12:00", To: "12:00", Allow: []string{"games"}}}
			},
			errHas: []string{`group "ks3-ks4" schedule 1`, "empty"}},
		{name: "schedule that changes nothing",
			edit: func(p *Policy) {
				polGroup(t, p, "ks3-ks4").Schedules = []Schedule{{Days: []string{"mon"}, From: "12:00", To: "13:00"}}
			},
			errHas: []string{`group "ks3-ks4" schedule 1`, "changes no category"}},
		{name: "schedule with an unknown category",
			edit: func(p *Policy) {
				polGroup(t, p, "ks3-ks4").Schedules = []Schedule{{Days: []string{"mon"}, From: "12:00", To: "13:00", Block: []string{"socials"}}}
			},
			errHas: []string{`group "ks3-ks4" schedule 1`, `unknown category "socials"`}},
		{name: "bad group override",
			edit:   func(p *Policy) { polGroup(t, p, "ks2").Allow = []string{"exa mple.com"} },
			errHas: []string{`group "ks2"`, `"exa mple.com"`}},
		{name: "group override with a query",
			edit:   func(p *Policy) { polGroup(t, p, "ks2").Deny = []string{"example.com/a?b=1"} },
			errHas: []string{`group "ks2"`, `"example.com/a?b=1"`, "query"}},
		{name: "group override both allowed and denied",
			edit: func(p *Policy) {
				polGroup(t, p, "ks2").Allow = []string{"example.com"}
				polGroup(t, p, "ks2").Deny = []string{"http://EXAMPLE.com"}
			},
			errHas: []string{`group "ks2"`, "both allowed and denied"}},
		{name: "bad school override",
			edit:   func(p *Policy) { p.School.Deny = []string{"http://[::1"} },
			errHas: []string{"school-wide overrides", `"http://[::1"`}},
		{name: "every problem at once",
			edit: func(p *Policy) {
				polGroup(t, p, "ks2").Blocked = []string{"gamez"}
				polGroup(t, p, "staff").Mode = "open"
				p.TimeZone = "Nowhere/Else"
			},
			errHas: []string{`group "ks2" blocked`, `group "staff"`, `time zone "Nowhere/Else"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy(testTax)
			tt.edit(&p)
			err := p.Validate(testTax)
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, frag := range tt.errHas {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("Validate error %q does not contain %q", err, frag)
				}
			}
			if _, serr := NewSnapshot(testTax, buildTestIndex(t, nil), p); serr == nil {
				t.Error("NewSnapshot accepted a policy that Validate rejects")
			}
		})
	}
}

func TestPolicyValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		edit func(p *Policy)
	}{
		{name: "schedules", edit: func(p *Policy) {
			polGroup(t, p, "ks3-ks4").Schedules = []Schedule{
				{Days: []string{"mon", "tue"}, From: "12:30", To: "13:30", Allow: []string{"social-networks"}},
				{Days: []string{"fri"}, From: "22:00", To: "02:00", Block: []string{"games"}},
				{Days: []string{"sun"}, From: "00:00", To: "23:59", Allow: []string{"games"}, Block: []string{"shopping"}},
			}
		}},
		{name: "overrides", edit: func(p *Policy) {
			polGroup(t, p, "ks2").Allow = []string{"www.example.com", "example.org/homework", "http://1.2.3.4"}
			polGroup(t, p, "ks2").Deny = []string{"example.com", "example.org/homework/games"}
			p.School.Allow = []string{"bbc.co.uk"}
			p.School.Deny = []string{"https://example.net/x"}
		}},
		{name: "same URL allowed and denied (deny wins at decision time)", edit: func(p *Policy) {
			polGroup(t, p, "ks2").Allow = []string{"example.org/a"}
			polGroup(t, p, "ks2").Deny = []string{"example.org/a"}
		}},
		{name: "utc", edit: func(p *Policy) { p.TimeZone = "UTC" }},
		{name: "extra group", edit: func(p *Policy) {
			p.Groups = append(p.Groups, Group{Name: "visitors-2", Mode: ModeFilter, Blocked: []string{"adult"}})
			p.Clients = append(p.Clients, ClientRule{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Group: "visitors-2"})
		}},
		{name: "no clients", edit: func(p *Policy) { p.Clients = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy(testTax)
			tt.edit(&p)
			if err := p.Validate(testTax); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

// Client ranges come from JSON and the CLI. A range that is not a prefix at
// all, or the same range given to two groups, is bad input that should be
// named, not silently ignored or resolved by the order of the list.
func TestPolicyValidateClientRanges(t *testing.T) {
	tests := []struct {
		name   string
		rules  []ClientRule
		errHas string
	}{
		{name: "zero prefix (JSON \"prefix\": \"\")",
			rules:  []ClientRule{{Group: "ks2"}},
			errHas: "client range"},
		{name: "same range, two groups",
			rules: []ClientRule{
				{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Group: "ks2"},
				{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Group: "staff"},
			},
			errHas: "10.0.0.0/8"},
		{name: "same range written IPv4-mapped, two groups",
			rules: []ClientRule{
				{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Group: "ks2"},
				{Prefix: netip.MustParsePrefix("::ffff:10.0.0.0/104"), Group: "staff"},
			},
			errHas: "10.0.0.0/8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy(testTax)
			p.Clients = tt.rules
			err := p.Validate(testTax)
			if err == nil {
				t.Fatalf("Validate accepted client rules %v", tt.rules)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("Validate error %q does not contain %q", err, tt.errHas)
			}
		})
	}
	// The same range twice for the same group is harmless.
	p := DefaultPolicy(testTax)
	p.Clients = append(p.Clients, p.Clients[0])
	if err := p.Validate(testTax); err != nil {
		t.Errorf("a repeated identical client rule: %v", err)
	}
}

func TestValidGroupName(t *testing.T) {
	tests := []struct {
		name   string
		errHas string // "" for valid
	}{
		{"ks2", ""},
		{"early-years-ks1", ""},
		{"sixth-form", ""},
		{"a", ""},
		{"7", ""},
		{"-", ""},
		{strings.Repeat("a", 64), ""},
		{"", "1 to 64"},
		{strings.Repeat("a", 65), "1 to 64"},
		{SchoolGroup, "reserved"},
		{"KS2", "lower-case"},
		{"ks 2", "lower-case"},
		{"ks_2", "lower-case"},
		{"ks2.", "lower-case"},
		{"élève", "lower-case"},
		{"staff\n", "lower-case"},
		{"schools", ""},
	}
	for _, tt := range tests {
		err := ValidGroupName(tt.name)
		switch {
		case tt.errHas == "" && err != nil:
			t.Errorf("ValidGroupName(%q) = %v, want nil", tt.name, err)
		case tt.errHas != "" && err == nil:
			t.Errorf("ValidGroupName(%q) = nil, want an error", tt.name)
		case err != nil && (!strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), "group name")):
			t.Errorf("ValidGroupName(%q) = %q, want it to mention %q", tt.name, err, tt.errHas)
		}
	}
}

func TestParseDays(t *testing.T) {
	tests := []struct {
		spec   string
		want   []string
		errHas string
	}{
		{spec: "mon-fri", want: []string{"mon", "tue", "wed", "thu", "fri"}},
		{spec: "sat,sun", want: []string{"sat", "sun"}},
		{spec: "fri-mon", want: []string{"fri", "sat", "sun", "mon"}},
		{spec: "sun-sat", want: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
		{spec: "mon-sun", want: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}},
		{spec: "sat-fri", want: []string{"sat", "sun", "mon", "tue", "wed", "thu", "fri"}},
		{spec: "mon,wed-fri", want: []string{"mon", "wed", "thu", "fri"}},
		{spec: "wed", want: []string{"wed"}},
		{spec: "wed-wed", want: []string{"wed"}},
		{spec: "MON-Fri", want: []string{"mon", "tue", "wed", "thu", "fri"}},
		{spec: "mon, tue", want: []string{"mon", "tue"}},
		{spec: " sat , sun ", want: []string{"sat", "sun"}},
		{spec: "", errHas: `""`},
		{spec: "monday", errHas: `"monday" is not a day`},
		{spec: "mon-friday", errHas: `"friday" is not a day`},
		{spec: "mon-", errHas: `"" is not a day`},
		{spec: "-fri", errHas: `"" is not a day`},
		{spec: "mon,,fri", errHas: "not a day"},
		{spec: "mon,", errHas: "not a day"},
		{spec: "mon-wed-fri", errHas: "not a day"},
		{spec: "1-5", errHas: `"1" is not a day`},
		{spec: "mon;tue", errHas: "not a day"},
	}
	for _, tt := range tests {
		got, err := ParseDays(tt.spec)
		if tt.errHas != "" {
			if err == nil {
				t.Errorf("ParseDays(%q) = %v, want an error", tt.spec, got)
			} else if !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), "mon, tue") {
				t.Errorf("ParseDays(%q) error %q should contain %q and list the days", tt.spec, err, tt.errHas)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseDays(%q) = %v, %v; want %v", tt.spec, got, err, tt.want)
		}
	}
}

func TestParseClient(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		errHas []string
	}{
		{in: "10.1.2.3", want: "10.1.2.3/32"},
		{in: "0.0.0.0", want: "0.0.0.0/32"},
		{in: "2001:db8::1", want: "2001:db8::1/128"},
		{in: "::1", want: "::1/128"},
		{in: "::ffff:10.1.2.3", want: "10.1.2.3/32"},
		{in: "10.1.0.0/16", want: "10.1.0.0/16"},
		{in: "10.1.2.3/32", want: "10.1.2.3/32"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "::/0", want: "::/0"},
		{in: "10.1.2.3/16", errHas: []string{`"10.1.2.3/16"`, "host bits", "10.1.0.0/16"}},
		{in: "192.168.1.1/24", errHas: []string{"did you mean 192.168.1.0/24?"}},
		{in: "2001:db8::1/32", errHas: []string{"host bits", "2001:db8::/32"}},
		{in: "10.1.2.3/33", errHas: []string{`"10.1.2.3/33"`, "CIDR"}},
		{in: "10.1.2/24", errHas: []string{`"10.1.2/24"`}},
		{in: "10.1.2.256", errHas: []string{`client "10.1.2.256"`, "address or CIDR"}},
		{in: "fe80::1%eth0", errHas: []string{`"fe80::1%eth0"`, "zone"}},
		{in: "fe80::%eth0/64", errHas: []string{`"fe80::%eth0/64"`}},
		{in: "example.com", errHas: []string{`"example.com"`}},
		{in: "", errHas: []string{`""`}},
		{in: "/", errHas: []string{`"/"`}},
		{in: " 10.1.2.3", errHas: []string{`" 10.1.2.3"`}},
		{in: "10.1.2.3/", errHas: []string{`"10.1.2.3/"`}},
	}
	for _, tt := range tests {
		got, err := ParseClient(tt.in)
		if tt.errHas != nil {
			if err == nil {
				t.Errorf("ParseClient(%q) = %s, want an error", tt.in, got)
				continue
			}
			for _, frag := range tt.errHas {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("ParseClient(%q) error %q does not contain %q", tt.in, err, frag)
				}
			}
			continue
		}
		if err != nil || got != netip.MustParsePrefix(tt.want) {
			t.Errorf("ParseClient(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

// ParseClient unmaps an IPv4-mapped address ("::ffff:10.1.2.3" is
// 10.1.2.3/32), and compileClients treats a mapped range as the IPv4 range;
// ParseClient should store a mapped CIDR the same way, or the same range has
// two spellings in the store and the CLI.
func TestParseClientMappedCIDR(t *testing.T) {
	for in, want := range map[string]string{
		"::ffff:10.1.0.0/112":  "10.1.0.0/16",
		"::ffff:10.1.2.3/128":  "10.1.2.3/32",
		"::ffff:0.0.0.0/96":    "0.0.0.0/0",
		"::ffff:192.0.2.0/120": "192.0.2.0/24",
	} {
		got, err := ParseClient(in)
		if err != nil || got != netip.MustParsePrefix(want) {
			t.Errorf("ParseClient(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
}

func TestParseOverride(t *testing.T) {
	tests := []struct {
		in         string
		host, path string
		errHas     string
	}{
		{in: "example.com", host: "example.com"},
		{in: "WWW.Example.COM.", host: "www.example.com"},
		{in: "http://example.com", host: "example.com"},
		{in: "https://example.com", host: "example.com"},
		{in: "https://example.com:8443", host: "example.com"},
		{in: "https://example.com/", host: "example.com"}, // "/" is the whole host
		{in: "example.com/", host: "example.com"},
		{in: "example.com/homework", host: "example.com", path: "/homework"},
		{in: "https://user@example.com/a/./b/../c", host: "example.com", path: "/a/c"},
		{in: "http://example.com#top", host: "example.com"},
		{in: "//example.com", host: "example.com"},
		{in: "[2001:db8::1]/x", host: "2001:db8::1", path: "/x"},
		{in: "1.2.3.4", host: "1.2.3.4"},
		{in: "bücher.example", host: "xn--bcher-kva.example"},
		// The scheme is case-insensitive and white space is ignored, so
		// these mean the whole host just like "http://example.com".
		{in: "HTTP://example.com", host: "example.com"},
		{in: "Https://Example.com", host: "example.com"},
		{in: " http://example.com", host: "example.com"},
		{in: "https://example.com\n", host: "example.com"},
		{in: "", errHas: "empty"},
		{in: "example.com/a?b=1", errHas: "query"},
		{in: "https://example.com/?q=x", errHas: "query"},
		{in: "exa mple.com", errHas: `"exa mple.com"`},
		{in: "http://[::1", errHas: `"http://[::1"`},
	}
	for _, tt := range tests {
		got, err := ParseOverride(tt.in)
		if tt.errHas != "" {
			if err == nil {
				t.Errorf("ParseOverride(%q) = %+v, want an error", tt.in, got)
			} else if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("ParseOverride(%q) error %q does not contain %q", tt.in, err, tt.errHas)
			}
			continue
		}
		if err != nil || got.Host != tt.host || got.Path != tt.path || got.Query != "" {
			t.Errorf("ParseOverride(%q) = %+v, %v; want host %q path %q", tt.in, got, err, tt.host, tt.path)
		}
	}
}

func TestClientMap(t *testing.T) {
	p := DefaultPolicy(testTax)
	p.Clients = nil
	for _, c := range []struct{ prefix, group string }{
		{"10.0.0.0/8", "ks2"},
		{"10.1.0.0/16", "ks3-ks4"},
		{"10.1.2.3/32", "staff"},
		{"10.1.2.0/24", "sixth-form"},
		{"2001:db8::/32", "ks2"},
		{"2001:db8:1::/48", "staff"},
		{"2001:db8:1:2::5/128", "early-years-ks1"},
		{"::ffff:192.0.2.0/120", "ks3-ks4"}, // written IPv4-mapped: same as 192.0.2.0/24
		{"198.51.100.7/24", "sixth-form"},   // host bits set in a stored rule: masked
		{"8.0.0.0/8", "staff"},              // same length as 10.0.0.0/8
		{"800::/8", "ks2"},                  // an IPv6 /8 shares the length list with IPv4 /8s
	} {
		p.Clients = append(p.Clients, ClientRule{Prefix: netip.MustParsePrefix(c.prefix), Group: c.group})
	}
	s, err := NewSnapshot(testTax, buildTestIndex(t, nil), p)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ addr, want string }{
		{"10.9.9.9", "ks2"},
		{"10.1.9.9", "ks3-ks4"},
		{"10.1.2.3", "staff"},
		{"10.1.2.4", "sixth-form"},
		{"10.1.3.3", "ks3-ks4"},
		{"::ffff:10.1.2.3", "staff"},
		{"::ffff:10.9.9.9", "ks2"},
		{"11.0.0.1", ""},
		{"8.8.8.8", "staff"},
		{"2001:db8::1", "ks2"},
		{"2001:db8:1::1", "staff"},
		{"2001:db8:1:2::5", "early-years-ks1"},
		{"2001:db8:1:2::6", "staff"},
		{"2001:db8:2::1", "ks2"},
		{"2001:db9::1", ""},
		{"2001:db8::1%eth0", "ks2"},
		{"192.0.2.77", "ks3-ks4"},
		{"::ffff:192.0.2.77", "ks3-ks4"},
		{"192.0.3.1", ""},
		{"198.51.100.200", "sixth-form"},
		{"800::1", "ks2"},
		{"8.0.0.1", "staff"},
		{"::a00:1", ""}, // IPv4-compatible (not mapped) addresses are IPv6
	}
	for _, tt := range tests {
		g, ok := s.GroupFor(netip.MustParseAddr(tt.addr))
		if g != tt.want || ok != (tt.want != "") {
			t.Errorf("GroupFor(%s) = %q, %v; want %q", tt.addr, g, ok, tt.want)
		}
	}
}

func FuzzParseDays(f *testing.F) {
	for _, s := range []string{"mon-fri", "sat,sun", "fri-mon", "mon,wed-fri", "MON", "", "mon-", "-", ",", "sun-sat", "x", "mon - fri", "tue-tue,tue"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		days, err := ParseDays(spec)
		if err != nil {
			if !strings.Contains(err.Error(), "days") {
				t.Errorf("ParseDays(%q) error %q does not say what it is about", spec, err)
			}
			return
		}
		if len(days) == 0 {
			t.Fatalf("ParseDays(%q) = no days and no error", spec)
		}
		for _, d := range days {
			if _, ok := weekdays[d]; !ok {
				t.Fatalf("ParseDays(%q) = %q: %q is not a day name", spec, days, d)
			}
		}
		// The output is a valid schedule and reads back as itself.
		if _, err := compileSchedule(testTax, Schedule{Days: days, From: "09:00", To: "10:00", Allow: []string{"games"}}); err != nil {
			t.Fatalf("ParseDays(%q) = %q, which a schedule rejects: %v", spec, days, err)
		}
		again, err := ParseDays(strings.Join(days, ","))
		if err != nil || !slices.Equal(again, days) {
			t.Fatalf("ParseDays(%q) = %q, but the joined form gives %q, %v", spec, days, again, err)
		}
	})
}

func FuzzParseClient(f *testing.F) {
	for _, s := range []string{"10.1.2.3", "10.1.0.0/16", "10.1.2.3/16", "::ffff:10.1.2.3", "::ffff:10.0.0.0/104", "2001:db8::/32",
		"2001:db8::1/32", "fe80::1%eth0", "fe80::%eth0/64", "", "/", "1.2.3.4/33", "0.0.0.0/0", "::/0", "garbage"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseClient(s)
		if err != nil {
			if !strings.Contains(err.Error(), "client") {
				t.Errorf("ParseClient(%q) error %q does not say what it is about", s, err)
			}
			if p.IsValid() {
				t.Errorf("ParseClient(%q) returned %s with an error", s, p)
			}
			return
		}
		if !p.IsValid() {
			t.Fatalf("ParseClient(%q) = invalid prefix, no error", s)
		}
		if p.Masked() != p {
			t.Fatalf("ParseClient(%q) = %s, not masked (%s)", s, p, p.Masked())
		}
		if p.Addr().Zone() != "" {
			t.Fatalf("ParseClient(%q) = %s with a zone", s, p)
		}
		if !strings.Contains(s, "/") {
			if p.Bits() != p.Addr().BitLen() || p.Addr().Is4In6() {
				t.Fatalf("ParseClient(%q) = %s, want a single unmapped address", s, p)
			}
		}
		rt, err := netip.ParsePrefix(p.String())
		if err != nil || rt != p {
			t.Fatalf("ParseClient(%q) = %s, which ParsePrefix reads as %s, %v", s, p, rt, err)
		}
		again, err := ParseClient(p.String())
		if err != nil || again != p {
			t.Fatalf("ParseClient(%q) = %s, but ParseClient(%q) = %s, %v", s, p, p.String(), again, err)
		}
		// The prefix works as a client rule: its own address maps to it.
		cm := compileClients([]ClientRule{{Prefix: p, Group: "g"}})
		if g, ok := cm.lookup(p.Addr()); !ok || g != "g" {
			t.Fatalf("client rule %s does not match its own address %s", p, p.Addr())
		}
	})
}

func FuzzParseOverride(f *testing.F) {
	for _, s := range []string{"example.com", "http://example.com", "HTTP://example.com", "https://example.com/", "example.com/homework",
		"example.com/a?b=1", "[2001:db8::1]/x", "http://[::1", "bücher.example/Seite", "//example.com/x", "", " x.org ", "1.2.3.4/p/../q",
		"ftp://example.com", "http:\\\\example.com\\a", "example.com/%2e%2e/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseOverride(s)
		if err != nil {
			if tg != (Target{}) {
				t.Errorf("ParseOverride(%q) returned %+v with an error", s, tg)
			}
			return
		}
		if tg.Host == "" || tg.Query != "" || (tg.Path != "" && tg.Path[0] != '/') {
			t.Fatalf("ParseOverride(%q) = %#v: not a valid entry target", s, tg)
		}
		again, err := ParseOverride(tg.String())
		if err != nil || again != tg {
			t.Fatalf("ParseOverride(%q) = %#v, but ParseOverride(%q) = %#v, %v", s, tg, tg.String(), again, err)
		}
		// An override that parses compiles, and matches its own target.
		o, err := compileOverrides([]string{s}, nil)
		if err != nil {
			t.Fatalf("ParseOverride(%q) succeeded but compileOverrides failed: %v", s, err)
		}
		path := tg.Path
		if path == "" {
			path = "/"
		}
		idx, _ := NewIndexBuilder(0).Build()
		o.bind(idx)
		var w walk
		idx.walk(tg.Host, path, &[2]*overrideSet{&o}, &w)
		if hit := w.over[0]; !hit.found || !hit.allow || tg.Host[hit.start:] != tg.Host {
			t.Fatalf("override %q does not match its own target %s", s, tg)
		}
	})
}
