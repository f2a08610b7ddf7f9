package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"hedgerow/categories"
)

func TestSearchTerm(t *testing.T) {
	tests := []struct {
		name, url      string
		engine, term   string
		ok             bool
		wantSuggestion bool
	}{
		{"google com", "https://www.google.com/search?q=how+do+volcanoes+work&hl=en", "google", "how do volcanoes work", true, false},
		{"google co.uk", "https://www.google.co.uk/search?client=firefox&q=tudor%20kings", "google", "tudor kings", true, false},
		{"google bare", "https://google.de/search?q=katze", "google", "katze", true, false},
		{"google images legacy", "http://www.google.com/images?q=cats", "google", "cats", true, false},
		{"google image tab", "https://www.google.com/search?tbm=isch&q=cats", "google", "cats", true, false},
		{"google webhp", "https://www.google.com/webhp?q=owls", "google", "owls", true, false},
		{"google home", "https://www.google.com/", "", "", false, false},
		{"google empty q", "https://www.google.com/search?q=", "", "", false, false},
		{"google blank q", "https://www.google.com/search?q=+++", "", "", false, false},
		{"google other path", "https://www.google.com/maps?q=london", "", "", false, false},
		{"google private suffix", "https://google.blogspot.com/search?q=x", "", "", false, false},
		{"google not a suffix", "https://www.google.notarealtld/search?q=x", "", "", false, false},
		{"google sub-brand", "https://mygoogle.com/search?q=x", "", "", false, false},
		{"google autocomplete", "https://www.google.com/complete/search?q=ca&client=gws", "", "", false, true},
		{"google uppercase key", "https://www.google.com/search?Q=cats", "", "", false, false},
		{"google first non-empty", "https://www.google.com/search?q=&q=second&q=third", "google", "second", true, false},
		{"google encoded key", "https://www.google.com/search?%71=cats", "google", "cats", true, false},
		{"google bad escape skipped", "https://www.google.com/search?q=%zz&q=ok", "google", "ok", true, false},
		{"google semicolon pair skipped", "https://www.google.com/search?q=a;b", "", "", false, false},
		{"bing", "https://www.bing.com/search?q=rainforest+animals&form=QBLH", "bing", "rainforest animals", true, false},
		{"bing images", "https://www.bing.com/images/search?q=frogs", "bing", "frogs", true, false},
		{"bing suggestions", "https://www.bing.com/AS/Suggestions?qry=fro&cvid=1", "", "", false, true},
		{"bing osjson", "https://www.bing.com/osjson.aspx?query=fro", "", "", false, true},
		{"ddg", "https://duckduckgo.com/?q=space+facts&t=h_", "duckduckgo", "space facts", true, false},
		{"ddg html", "https://html.duckduckgo.com/html/?q=space", "duckduckgo", "space", true, false},
		{"ddg html on main host", "https://duckduckgo.com/html/?q=space", "duckduckgo", "space", true, false},
		{"ddg ac", "https://duckduckgo.com/ac/?q=spa&kl=wt-wt", "", "", false, true},
		{"yahoo", "https://search.yahoo.com/search?p=weather+leeds", "yahoo", "weather leeds", true, false},
		{"yahoo uk with matrix params", "https://uk.search.yahoo.com/search;_ylt=AwrE;_ylu=Y29s?p=rivers", "yahoo", "rivers", true, false},
		{"yahoo lookalike", "https://evilsearch.yahoo.com/search?p=x", "", "", false, false},
		{"yahoo suggestions", "https://search.yahoo.com/sugg/gossip/gossip-us-ura?command=we", "", "", false, true},
		{"youtube", "https://www.youtube.com/results?search_query=minecraft+castle", "youtube", "minecraft castle", true, false},
		{"youtube mobile", "https://m.youtube.com/results?search_query=lego", "youtube", "lego", true, false},
		{"youtube watch", "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "", "", false, false},
		{"youtube suggest", "https://suggestqueries-clients6.youtube.com/complete/search?client=youtube&q=min", "", "", false, true},
		{"ecosia", "https://www.ecosia.org/search?q=trees", "ecosia", "trees", true, false},
		{"brave", "https://search.brave.com/search?q=privacy", "brave", "privacy", true, false},
		{"brave suggest", "https://search.brave.com/api/suggest?q=pri", "", "", false, true},
		{"startpage", "https://www.startpage.com/do/search?query=maths+games", "startpage", "maths games", true, false},
		{"startpage q", "https://www.startpage.com/sp/search?q=maths", "startpage", "maths", true, false},
		{"yandex ru", "https://yandex.ru/search/?text=%D0%BA%D0%BE%D1%82&lr=213", "yandex", "кот", true, false},
		{"yandex com.tr", "https://yandex.com.tr/search/?text=kedi", "yandex", "kedi", true, false},
		{"yandex images", "https://yandex.com/images/search?text=cats", "yandex", "cats", true, false},
		{"yandex suggest host", "https://suggest.yandex.ru/suggest-ff.cgi?part=ko", "", "", false, true},
		{"ya.ru", "https://ya.ru/search/?text=cats", "yandex", "cats", true, false},
		{"baidu", "https://www.baidu.com/s?wd=%E7%8C%AB&rsv_spt=1", "baidu", "猫", true, false},
		{"baidu mobile word", "https://m.baidu.com/s?word=cat", "baidu", "cat", true, false},
		{"baidu sugrec", "https://www.baidu.com/sugrec?wd=ca", "", "", false, true},
		{"not a search engine", "https://www.bbc.co.uk/news?q=cats", "", "", false, false},
		{"control characters", "https://www.google.com/search?q=a%0Ab%00c%09", "google", "a b c", true, false},
		{"invalid utf-8", "https://www.google.com/search?q=%FFcat", "google", "\uFFFDcat", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			engine, term, ok := SearchTerm(u.Hostname(), u.Path, u.RawQuery)
			if engine != tc.engine || term != tc.term || ok != tc.ok {
				t.Errorf("SearchTerm(%q) = %q, %q, %v; want %q, %q, %v", tc.url, engine, term, ok, tc.engine, tc.term, tc.ok)
			}
			if got := isSuggestion(u.Hostname(), u.Path); got != tc.wantSuggestion {
				t.Errorf("isSuggestion(%q) = %v, want %v", tc.url, got, tc.wantSuggestion)
			}
		})
	}
}

func TestSearchTermTruncates(t *testing.T) {
	tests := []struct {
		name, raw string
		wantLen   int
	}{
		{"ascii", strings.Repeat("a", 600), 512},
		// 511 bytes of 'a' then a 3-byte rune straddling the limit: the cut
		// falls before it.
		{"rune boundary", strings.Repeat("a", 511) + "€" + strings.Repeat("b", 10), 511},
		{"exactly the limit", strings.Repeat("a", 512), 512},
		{"trailing space after cut", strings.Repeat("a", 100) + strings.Repeat(" ", 500) + "z", 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"q": {tc.raw}}.Encode()
			_, term, ok := SearchTerm("www.google.com", "/search", q)
			if !ok || len(term) != tc.wantLen || !utf8.ValidString(term) {
				t.Errorf("got ok=%v len=%d valid=%v, want len %d", ok, len(term), utf8.ValidString(term), tc.wantLen)
			}
		})
	}
}

func TestEnforceSafeSearchURL(t *testing.T) {
	tests := []struct {
		name, in, want string
		changed        bool
	}{
		{"google adds", "https://www.google.com/search?q=cats", "https://www.google.com/search?q=cats&safe=active", true},
		{"google co.uk", "https://www.google.co.uk/search?q=cats", "https://www.google.co.uk/search?q=cats&safe=active", true},
		{"google replaces off", "https://www.google.com/search?q=cats&safe=off&hl=en", "https://www.google.com/search?q=cats&hl=en&safe=active", true},
		{"google replaces images", "https://www.google.com/search?safe=images&q=cats", "https://www.google.com/search?q=cats&safe=active", true},
		{"google off twice", "https://www.google.com/search?safe=off&q=cats&safe=off", "https://www.google.com/search?q=cats&safe=active", true},
		{"google active then off", "https://www.google.com/search?safe=active&safe=off&q=x", "https://www.google.com/search?q=x&safe=active", true},
		{"google active twice", "https://www.google.com/search?safe=active&q=x&safe=active", "https://www.google.com/search?q=x&safe=active", true},
		{"google compliant untouched", "https://www.google.com/search?safe=active&q=c%61ts+x", "https://www.google.com/search?safe=active&q=c%61ts+x", false},
		// Google reads only lower-case "safe": SAFE=active does not
		// comply, and SAFE=off is dropped as well as safe=active added.
		{"google uppercase is not the param", "https://www.google.com/search?q=x&SAFE=active", "https://www.google.com/search?q=x&safe=active", true},
		{"google uppercase off dropped", "https://www.google.com/search?Safe=off&q=x&safe=active", "https://www.google.com/search?q=x&safe=active", true},
		{"google encoded key", "https://www.google.com/search?q=x&%73afe=off", "https://www.google.com/search?q=x&safe=active", true},
		{"google bare key", "https://www.google.com/search?q=x&safe", "https://www.google.com/search?q=x&safe=active", true},
		{"google semicolon smuggling", "https://www.google.com/search?q=x;safe=off&safe=active", "https://www.google.com/search?q=x%3Bsafe=off&safe=active", true},
		{"google no query", "https://www.google.com/search", "https://www.google.com/search?safe=active", true},
		{"google autocomplete", "https://www.google.com/complete/search?q=ca", "https://www.google.com/complete/search?q=ca&safe=active", true},
		{"google other path untouched", "https://www.google.com/maps?q=x", "https://www.google.com/maps?q=x", false},
		{"google lookalike untouched", "https://www.google.evil.test/search?q=x", "https://www.google.evil.test/search?q=x", false},
		{"bing adds", "https://www.bing.com/search?q=cats", "https://www.bing.com/search?q=cats&adlt=strict", true},
		{"bing replaces off", "https://www.bing.com/images/search?q=cats&adlt=off", "https://www.bing.com/images/search?q=cats&adlt=strict", true},
		{"bing uppercase off", "https://www.bing.com/search?q=cats&ADLT=OFF&adlt=strict", "https://www.bing.com/search?q=cats&adlt=strict", true},
		{"bing compliant", "https://bing.com/search?adlt=strict&q=x", "https://bing.com/search?adlt=strict&q=x", false},
		{"bing image scroll", "https://www.bing.com/images/async?q=cats&first=30", "https://www.bing.com/images/async?q=cats&first=30&adlt=strict", true},
		{"bing suggestions", "https://www.bing.com/AS/Suggestions?qry=c", "https://www.bing.com/AS/Suggestions?qry=c&adlt=strict", true},
		{"bing static untouched", "https://www.bing.com/rp/abc.js", "https://www.bing.com/rp/abc.js", false},
		{"ddg adds", "https://duckduckgo.com/?q=cats", "https://duckduckgo.com/?q=cats&kp=1", true},
		{"ddg replaces -2", "https://duckduckgo.com/?q=cats&kp=-2", "https://duckduckgo.com/?q=cats&kp=1", true},
		{"ddg replaces -1", "https://html.duckduckgo.com/html/?kp=-1&q=cats", "https://html.duckduckgo.com/html/?q=cats&kp=1", true},
		{"ddg compliant", "https://duckduckgo.com/?q=cats&kp=1", "https://duckduckgo.com/?q=cats&kp=1", false},
		{"ddg results api", "https://links.duckduckgo.com/d.js?q=cats&kp=-2&s=0", "https://links.duckduckgo.com/d.js?q=cats&s=0&kp=1", true},
		{"not a search engine", "https://www.bbc.co.uk/search?q=x&safe=off", "https://www.bbc.co.uk/search?q=x&safe=off", false},
		{"youtube URL untouched", "https://www.youtube.com/results?search_query=x", "https://www.youtube.com/results?search_query=x", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, tc.in, nil)
			if err != nil {
				t.Fatal(err)
			}
			changed := EnforceSafeSearch(r, r.URL.Hostname(), SafeSearchSettings{SafeSearch: true})
			if got := r.URL.String(); got != tc.want || changed != tc.changed {
				t.Errorf("EnforceSafeSearch(%q) = %q, %v; want %q, %v", tc.in, got, changed, tc.want, tc.changed)
			}
			if changed {
				// Idempotent: a second pass finds it compliant.
				if EnforceSafeSearch(r, r.URL.Hostname(), SafeSearchSettings{SafeSearch: true}) {
					t.Errorf("second pass changed %q again to %q", tc.want, r.URL.String())
				}
			}
		})
	}
}

func TestEnforceSafeSearchOff(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "https://www.google.com/search?q=x&safe=off", nil)
	r.Header.Set("YouTube-Restrict", "Strict")
	if EnforceSafeSearch(r, "www.google.com", SafeSearchSettings{}) {
		t.Error("changed a request for a group with safe search off")
	}
	if r.URL.RawQuery != "q=x&safe=off" {
		t.Errorf("query = %q", r.URL.RawQuery)
	}
}

func TestEnforceSafeSearchYouTube(t *testing.T) {
	tests := []struct {
		name, host string
		sent       []string // client's YouTube-Restrict values
		mode       string
		want       []string
		changed    bool
	}{
		{"strict added", "www.youtube.com", nil, categories.YouTubeStrict, []string{"Strict"}, true},
		{"moderate added", "m.youtube.com", nil, categories.YouTubeModerate, []string{"Moderate"}, true},
		{"client moderate overwritten", "www.youtube.com", []string{"Moderate"}, categories.YouTubeStrict, []string{"Strict"}, true},
		{"client sends two", "youtubei.googleapis.com", []string{"Strict", "Moderate"}, categories.YouTubeStrict, []string{"Strict"}, true},
		{"client empty value", "youtube.googleapis.com", []string{""}, categories.YouTubeStrict, []string{"Strict"}, true},
		{"already strict", "www.youtube-nocookie.com", []string{"Strict"}, categories.YouTubeStrict, []string{"Strict"}, false},
		{"off leaves client value", "www.youtube.com", []string{"Strict"}, "", []string{"Strict"}, false},
		{"off adds nothing", "www.youtube.com", nil, "", nil, false},
		{"unknown mode fails closed", "www.youtube.com", nil, "lenient", []string{"Strict"}, true},
		{"other host untouched", "www.bbc.co.uk", nil, categories.YouTubeStrict, nil, false},
		{"bare youtube.com is the DNS rewrite's job", "youtube.com", nil, categories.YouTubeStrict, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "https://"+tc.host+"/watch?v=x", nil)
			for _, v := range tc.sent {
				r.Header.Add("YouTube-Restrict", v)
			}
			changed := EnforceSafeSearch(r, tc.host, SafeSearchSettings{SafeSearch: true, YouTube: tc.mode})
			got := r.Header.Values("YouTube-Restrict")
			if changed != tc.changed || strings.Join(got, ",") != strings.Join(tc.want, ",") || len(got) != len(tc.want) {
				t.Errorf("got %q, changed %v; want %q, %v", got, changed, tc.want, tc.changed)
			}
			if r.URL.RawQuery != "v=x" {
				t.Errorf("query changed to %q", r.URL.RawQuery)
			}
		})
	}
}

func TestEnforceSafeSearchOddRequests(t *testing.T) {
	if EnforceSafeSearch(nil, "www.google.com", SafeSearchSettings{SafeSearch: true, YouTube: "strict"}) {
		t.Error("nil request reported a change")
	}
	r := &http.Request{} // no URL, no header
	if !EnforceSafeSearch(r, "www.youtube.com", SafeSearchSettings{SafeSearch: true, YouTube: "strict"}) {
		t.Error("header not set on a request with a nil Header")
	}
	if EnforceSafeSearch(&http.Request{}, "www.google.com", SafeSearchSettings{SafeSearch: true}) {
		t.Error("nil URL reported a change")
	}
}

func TestSafeSearchAllocs(t *testing.T) {
	tests := []struct{ name, url, host string }{
		{"not a search engine", "https://www.bbc.co.uk/news?q=x", "www.bbc.co.uk"},
		{"google compliant", "https://www.google.co.uk/search?q=cats&safe=active", "www.google.co.uk"},
		{"youtube compliant", "https://www.youtube.com/watch?v=x", "www.youtube.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, tc.url, nil)
			r.Header.Set("YouTube-Restrict", "Strict")
			s := SafeSearchSettings{SafeSearch: true, YouTube: categories.YouTubeStrict}
			if n := testing.AllocsPerRun(100, func() { EnforceSafeSearch(r, tc.host, s) }); n != 0 {
				t.Errorf("EnforceSafeSearch: %v allocs, want 0", n)
			}
			u := r.URL
			if n := testing.AllocsPerRun(100, func() { SearchTerm(tc.host, u.Path, "") }); n != 0 {
				t.Errorf("SearchTerm: %v allocs, want 0", n)
			}
		})
	}
}

func FuzzSearchTerm(f *testing.F) {
	f.Add("www.google.com", "/search", "q=cats&safe=off")
	f.Add("www.bing.com", "/search", "q=%FF%FE+a")
	f.Add("yandex.ru", "/search/", "text=%D0%BA")
	f.Add("search.yahoo.com", "/search;_ylt=x", "p=a;b&p=c")
	f.Add("duckduckgo.com", "/", "q="+strings.Repeat("%E2%82%AC", 300))
	f.Fuzz(func(t *testing.T, host, path, rawQuery string) {
		engine, term, ok := SearchTerm(host, path, rawQuery)
		if len(term) > maxSearchTerm {
			t.Fatalf("term is %d bytes", len(term))
		}
		if !utf8.ValidString(term) {
			t.Fatalf("term %q is not valid UTF-8", term)
		}
		if ok != (term != "") || ok != (engine != "") {
			t.Fatalf("inconsistent: %q, %q, %v", engine, term, ok)
		}
		if ok && isSuggestion(host, path) {
			t.Fatalf("%s%s is both a search and a suggestion", host, path)
		}
		if term != strings.TrimSpace(term) {
			t.Fatalf("term %q is not trimmed", term)
		}
	})
}

func FuzzEnforceSafeSearch(f *testing.F) {
	f.Add("www.google.com", "/search", "q=cats&safe=off")
	f.Add("www.bing.com", "/search", "ADLT=off&q=x;adlt=off")
	f.Add("duckduckgo.com", "/", "kp=-2&kp=1&%6Bp=-1")
	f.Fuzz(func(t *testing.T, host, path, rawQuery string) {
		r := &http.Request{URL: &url.URL{Path: path, RawQuery: rawQuery}, Header: http.Header{}}
		s := SafeSearchSettings{SafeSearch: true, YouTube: categories.YouTubeModerate}
		EnforceSafeSearch(r, host, s)
		key, value := safeSearchParam(host, path)
		if key == "" {
			if r.URL.RawQuery != rawQuery {
				t.Fatalf("query of a non-search request changed: %q -> %q", rawQuery, r.URL.RawQuery)
			}
			return
		}
		// Exactly one pair names the parameter, in any case or spelling,
		// and it carries the wanted value; no raw ';' remains to split on.
		n := 0
		for _, pair := range strings.Split(r.URL.RawQuery, "&") {
			k, v, _ := strings.Cut(pair, "=")
			if queryKeyIs(k, key, true) {
				n++
				if k != key || v != value {
					t.Fatalf("%q: bad pair %q", r.URL.RawQuery, pair)
				}
			}
		}
		if n != 1 || strings.Contains(r.URL.RawQuery, ";") {
			t.Fatalf("%q -> %q: %d %s pairs", rawQuery, r.URL.RawQuery, n, key)
		}
		if EnforceSafeSearch(r, host, s) {
			t.Fatalf("not idempotent on %q", r.URL.RawQuery)
		}
	})
}

func BenchmarkSearchTerm(b *testing.B) {
	benches := []struct{ name, host, path, query string }{
		{"non-search", "www.bbc.co.uk", "/news/articles/c0000000", "at_medium=RSS"},
		{"google", "www.google.co.uk", "/search", "client=firefox-b-d&q=how+do+volcanoes+work&hl=en"},
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				SearchTerm(bc.host, bc.path, bc.query)
			}
		})
	}
}

func BenchmarkEnforceSafeSearch(b *testing.B) {
	s := SafeSearchSettings{SafeSearch: true, YouTube: categories.YouTubeStrict}
	benches := []struct{ name, url, host string }{
		{"non-search", "https://www.bbc.co.uk/news?x=1", "www.bbc.co.uk"},
		{"google-compliant", "https://www.google.co.uk/search?q=volcanoes&safe=active", "www.google.co.uk"},
		{"google-rewrite", "https://www.google.co.uk/search?q=volcanoes&safe=off", "www.google.co.uk"},
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			r, _ := http.NewRequest(http.MethodGet, bc.url, nil)
			orig := r.URL.RawQuery
			b.ReportAllocs()
			for b.Loop() {
				r.URL.RawQuery = orig
				EnforceSafeSearch(r, bc.host, s)
			}
		})
	}
}
