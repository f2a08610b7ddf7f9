package admin

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"hedgerow/categories"
	"hedgerow/store"
)

func TestRestrictionsSeenAndLiftedByTheDSL(t *testing.T) {
	e := newTestEnv(t)
	r := categories.NewRestrictions()
	e.srv.d.Restrictions = r
	pupil := netip.MustParseAddr("10.9.8.7")
	r.Restrict(pupil, time.Now().Add(time.Hour))

	if resp, _ := e.browser().login("vic").get("/restrictions"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer sees restricted devices: %d", resp.StatusCode)
	}
	b := e.browser().login("dora")
	if _, page := b.get("/restrictions"); !strings.Contains(page, "10.9.8.7") {
		t.Errorf("the DSL does not see the restricted device:\n%s", page)
	}
	if resp, body := b.post("/restrictions/10.9.8.7/lift", url.Values{}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "reason is required") {
		t.Errorf("lift without a reason: %d", resp.StatusCode)
	}
	if !r.Active(pupil, time.Now()) {
		t.Fatal("a refused lift lifted the restriction")
	}
	if resp, _ := b.post("/restrictions/10.9.8.7/lift", url.Values{"reason": {"spoke to the pupil and their parents"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("lift: %d", resp.StatusCode)
	}
	if r.Active(pupil, time.Now()) {
		t.Error("the restriction is still in force")
	}
	if resp, _ := b.post("/restrictions/10.9.8.7/lift", url.Values{"reason": {"again"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("lifting a device that is not restricted: %d, want 404", resp.StatusCode)
	}
	var recs []store.AuditRecord
	e.read(func(s *store.Store) error { var err error; recs, err = s.Audit(10); return err })
	var viewed, lifted bool
	for _, rec := range recs {
		viewed = viewed || (rec.Action == "restrictions-view" && rec.Actor == "dora")
		lifted = lifted || (rec.Action == "restrictions-lift" && rec.Target == "device 10.9.8.7" && rec.Reason == "spoke to the pupil and their parents")
	}
	if !viewed || !lifted {
		t.Errorf("audit: viewed %v, lifted %v", viewed, lifted)
	}
}
