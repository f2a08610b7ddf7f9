package starter

import (
	"testing"

	"hedgerow/categories"
)

// TestEmbeddedStarterLists checks the embedded set: every entry canonical,
// every category known, the obvious names present, and small enough to ship.
func TestEmbeddedStarterLists(t *testing.T) {
	tax := categories.Builtin()
	if len(data) > 4<<20 {
		t.Errorf("starter lists are %d bytes compressed; keep them to a few megabytes", len(data))
	}
	perCat := map[string]int{}
	seen := map[string]string{}
	err := Entries(func(target, category string) error {
		if _, ok := tax.Lookup(category); !ok {
			t.Errorf("entry %s: unknown category %q", target, category)
		}
		tg, err := categories.Normalize(target)
		if err != nil || tg.Host+tg.Path != target {
			t.Errorf("entry %q is not canonical (%v)", target, err)
		}
		perCat[category]++
		seen[target] = category
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for target, cat := range map[string]string{
		"pornhub.com": "adult", "bet365.com": "gambling", "dns.google": "circumvention",
		"facebook.com": "social-networks",
	} {
		if seen[target] != cat {
			t.Errorf("%s is %q in the starter lists, want %q", target, seen[target], cat)
		}
	}
	for _, c := range []string{"adult", "gambling", "circumvention", "malware", "drugs", "social-networks", "kids"} {
		if perCat[c] == 0 {
			t.Errorf("no starter entries for %s", c)
		}
	}
	t.Logf("starter lists: %d entries, %d bytes compressed: %v", len(seen), len(data), perCat)
}
