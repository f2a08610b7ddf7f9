package store

import (
	"errors"
	"strings"
	"testing"

	"hedgerow/categories"
)

func TestTokens(t *testing.T) {
	s, _ := openNew(t)
	if err := s.AddUser("it", "test", User{Name: "alice", Roles: []string{RoleAdmin}}, "a long password 1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateToken("it", "alice", " "); err == nil {
		t.Error("a token without a name was made")
	}
	if _, _, err := s.CreateToken("it", "nobody", "x"); !errors.Is(err, ErrNoUser) {
		t.Errorf("token for a missing user: %v", err)
	}
	tok, info, err := s.CreateToken("it", "alice", "nightly export")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) != len(TokenPrefix)+48 || info.User != "alice" {
		t.Fatalf("token %q %+v", tok, info)
	}
	u, err := s.TokenUser(tok)
	if err != nil || u.Name != "alice" {
		t.Fatalf("TokenUser: %+v %v", u, err)
	}
	for _, bad := range []string{"", tok + "x", "hrt_" + strings.Repeat("0", 48), strings.TrimPrefix(tok, TokenPrefix)} {
		if _, err := s.TokenUser(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("TokenUser(%q): %v, want ErrBadToken", bad, err)
		}
	}
	list, err := s.Tokens("alice")
	if err != nil || len(list) != 1 || list[0].ID != info.ID {
		t.Fatalf("Tokens: %+v %v", list, err)
	}
	if err := s.RevokeToken("bob", "bob", info.ID); !errors.Is(err, ErrBadToken) {
		t.Errorf("someone else revoked alice's token: %v", err)
	}
	// A disabled user's token stops working at once.
	if err := s.UpdateUser("it", "test", "alice", func(u *User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenUser(tok); !errors.Is(err, ErrBadToken) {
		t.Errorf("disabled user's token: %v", err)
	}
	if err := s.RevokeToken("it", "", info.ID); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.Tokens(""); len(list) != 0 {
		t.Errorf("revoked token still listed: %+v", list)
	}
	recs, _ := s.Audit(3)
	if recs[0].Action != "tokens-revoke" || strings.Contains(string(recs[0].Before), tok) {
		t.Errorf("audit %+v", recs[0])
	}
}

func TestPolicyVersionConflict(t *testing.T) {
	s, _ := openNew(t)
	v, err := s.PolicyVersion()
	if err != nil {
		t.Fatal(err)
	}
	change := func(version uint64) error {
		return s.UpdatePolicy("it", PolicyChange{Action: "test", Reason: "test", Version: version,
			Apply: func(p *categories.Policy) (string, error) {
				p.Groups[0].Description += "!"
				return p.Groups[0].Name, nil
			}})
	}
	if err := change(v); err != nil {
		t.Fatalf("change at the current version: %v", err)
	}
	if err := change(v); !errors.Is(err, ErrConflict) {
		t.Errorf("change at a stale version: %v, want ErrConflict", err)
	}
	if err := change(0); err != nil {
		t.Errorf("unversioned change (the CLI): %v", err)
	}
	if v2, _ := s.PolicyVersion(); v2 != v+2 {
		t.Errorf("version %d after two changes from %d", v2, v)
	}
}

func TestPseudonyms(t *testing.T) {
	s, _ := openNew(t)
	k1, err := s.PseudonymKey()
	if err != nil || len(k1) != 32 {
		t.Fatal(k1, err)
	}
	k2, _ := s.PseudonymKey()
	if string(k1) != string(k2) {
		t.Error("pseudonym key changed between calls")
	}
	a, b := Pseudonym(k1, "10.0.0.5"), Pseudonym(k1, "10.0.0.6")
	if a == b || a != Pseudonym(k1, "10.0.0.5") || !strings.HasPrefix(a, "pupil-") || strings.Contains(a, "10.0") {
		t.Errorf("pseudonyms %q %q", a, b)
	}
	if Pseudonym(k1, "") != "" {
		t.Error("empty identity got a pseudonym")
	}
}

func TestDecideReport(t *testing.T) {
	s, _ := openNew(t)
	id, err := s.AddReport(Report{Kind: ReportUnblock, Client: "10.0.0.5", Host: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DecideReport("it", id, "maybe", ""); err == nil {
		t.Error("unknown state accepted")
	}
	if err := s.DecideReport("it", id+9, ReportApproved, ""); !errors.Is(err, ErrNoReport) {
		t.Errorf("missing report: %v", err)
	}
	if err := s.DecideReport("it", id, ReportApproved, "science lesson"); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Report(id); r.State != ReportApproved {
		t.Errorf("state %q", r.State)
	}
	if err := s.DecideReport("it", id, ReportDeclined, ""); err == nil {
		t.Error("a decided report was decided again")
	}
}
