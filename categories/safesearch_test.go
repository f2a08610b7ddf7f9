package categories

import "testing"

func TestSafeSearchName(t *testing.T) {
	tests := []struct {
		host       string
		safe       bool
		youtube    string
		want       string
		wantExists bool
	}{
		{"www.google.com", true, "", "forcesafesearch.google.com.", true},
		{"google.com", true, "", "forcesafesearch.google.com.", true},
		{"www.google.co.uk", true, "", "forcesafesearch.google.com.", true},
		{"www.google.de", true, "", "forcesafesearch.google.com.", true},
		{"www.google.com", false, "strict", "", false},
		{"mail.google.com", true, "", "", false},
		{"www.google.example.com", true, "", "", false},
		{"notgoogle.com", true, "", "", false},
		{"www.bing.com", true, "", "strict.bing.com.", true},
		{"duckduckgo.com", true, "", "safe.duckduckgo.com.", true},
		{"www.youtube.com", false, "strict", "restrict.youtube.com.", true},
		{"m.youtube.com", true, "moderate", "restrictmoderate.youtube.com.", true},
		{"www.youtube.com", true, "", "", false},
		{"www.example.com", true, "strict", "", false},
	}
	for _, tc := range tests {
		got, ok := SafeSearchName(tc.host, tc.safe, tc.youtube)
		if got != tc.want || ok != tc.wantExists {
			t.Errorf("SafeSearchName(%q, %v, %q) = %q, %v; want %q, %v", tc.host, tc.safe, tc.youtube, got, ok, tc.want, tc.wantExists)
		}
	}
}

func BenchmarkSafeSearchName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		SafeSearchName("www.example.co.uk", true, "strict")
	}
}
