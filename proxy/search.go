package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"

	"hedgerow/categories"
)

// maxSearchTerm bounds a search term kept for an incident: longer than any
// query a person types, short enough that a crafted URL cannot bloat the
// incident log.
const maxSearchTerm = 512

// Search engine names, as SearchTerm returns them and incidents record them.
const (
	engineGoogle     = "google"
	engineBing       = "bing"
	engineDuckDuckGo = "duckduckgo"
	engineYahoo      = "yahoo"
	engineYouTube    = "youtube"
	engineEcosia     = "ecosia"
	engineBrave      = "brave"
	engineStartpage  = "startpage"
	engineYandex     = "yandex"
	engineBaidu      = "baidu"
)

// SearchTerm returns the search engine and the query a pupil typed, from a
// search URL of one of the major engines: Google (www.google.<public suffix>
// and google.<public suffix>: /search, /images, /webhp, parameter q), Bing
// (/search, /images/search, /videos/search, /news/search: q), DuckDuckGo
// (duckduckgo.com/, /html/, /lite/: q), Yahoo (search.yahoo.com and its
// country variants, /search: p), YouTube (www., m. and bare youtube.com
// /results: search_query), Ecosia (/search, /images, /videos, /news: q), Brave
// (search.brave.com /search, /images, /videos, /news: q), Startpage
// (/do/search, /sp/search, /do/dsearch: query or q), Yandex
// (yandex.<public suffix> and ya.ru /search/, /images/search, /video/search:
// text) and Baidu (/s: wd or word).
//
// The engine is one of "google", "bing", "duckduckgo", "yahoo", "youtube",
// "ecosia", "brave", "startpage", "yandex" and "baidu". host must already be
// canonical (lower case, no port, no trailing dot); path is the URL's decoded
// path and rawQuery its raw query.
//
// The term is decoded as url.ParseQuery does ('+' is a space; pairs with a
// bad escape or a ';' are skipped); the first non-empty value wins. Control
// characters become spaces and invalid UTF-8 becomes U+FFFD, because the term
// ends up in an incident a person reads and exports; the result is trimmed
// and cut to at most 512 bytes on a rune boundary. ok is false when the URL
// is not a search or the term is empty, and for the engines' autocomplete
// endpoints, which see every keystroke rather than what the pupil searched
// for (isSuggestion tells those apart).
//
// It runs on every proxied request, so a host that is not a search engine
// costs a few string comparisons and no allocation.
func SearchTerm(host, path, rawQuery string) (engine, term string, ok bool) {
	engine, param, alt := searchEngine(host, path)
	if engine == "" {
		return "", "", false
	}
	if term = queryTerm(rawQuery, param); term == "" && alt != "" {
		term = queryTerm(rawQuery, alt)
	}
	if term == "" {
		return "", "", false
	}
	return engine, term, true
}

// searchEngine names the engine whose search results page host and path are,
// and the query parameters that hold the term (alt is tried when param is
// missing or empty).
func searchEngine(host, path string) (engine, param, alt string) {
	switch host {
	case "www.bing.com", "bing.com":
		switch path {
		case "/search", "/images/search", "/videos/search", "/news/search":
			return engineBing, "q", ""
		}
		return "", "", ""
	case "duckduckgo.com", "www.duckduckgo.com", "html.duckduckgo.com", "lite.duckduckgo.com":
		switch path {
		case "/", "/html", "/html/", "/lite", "/lite/":
			return engineDuckDuckGo, "q", ""
		}
		return "", "", ""
	case "www.youtube.com", "m.youtube.com", "youtube.com":
		if path == "/results" {
			return engineYouTube, "search_query", "q"
		}
		return "", "", ""
	case "www.ecosia.org", "ecosia.org":
		switch path {
		case "/search", "/images", "/videos", "/news":
			return engineEcosia, "q", ""
		}
		return "", "", ""
	case "search.brave.com":
		switch path {
		case "/search", "/images", "/videos", "/news":
			return engineBrave, "q", ""
		}
		return "", "", ""
	case "www.startpage.com", "startpage.com":
		switch path {
		case "/do/search", "/sp/search", "/do/dsearch", "/do/asearch", "/search":
			return engineStartpage, "query", "q"
		}
		return "", "", ""
	case "www.baidu.com", "baidu.com", "m.baidu.com":
		if path == "/s" {
			return engineBaidu, "wd", "word"
		}
		return "", "", ""
	case "ya.ru", "www.ya.ru":
		if isYandexSearchPath(path) {
			return engineYandex, "text", ""
		}
		return "", "", ""
	}
	switch {
	case isYahooSearchHost(host):
		// Yahoo puts tracking "matrix parameters" in the path:
		// /search;_ylt=...?p=cats.
		if path == "/search" || strings.HasPrefix(path, "/search;") || strings.HasPrefix(path, "/search/") {
			return engineYahoo, "p", ""
		}
	case isGoogleHost(host):
		switch path {
		case "/search", "/images", "/webhp":
			return engineGoogle, "q", ""
		}
	case isYandexHost(host):
		if isYandexSearchPath(path) {
			return engineYandex, "text", ""
		}
	}
	return "", "", ""
}

// isSuggestion reports whether host and path are a search engine's
// autocomplete endpoint: the browser calls it on every keystroke, so what it
// carries is half-typed words, not searches, and must not become incidents.
// Safe search still applies to the ones that honour it (EnforceSafeSearch).
func isSuggestion(host, path string) bool {
	switch host {
	case "suggestqueries.google.com", "suggestqueries-clients6.youtube.com":
		return true
	case "www.bing.com", "bing.com":
		return strings.EqualFold(path, "/AS/Suggestions") || path == "/osjson.aspx"
	case "duckduckgo.com", "www.duckduckgo.com":
		return path == "/ac/" || path == "/ac"
	case "search.brave.com":
		return path == "/api/suggest"
	case "ac.ecosia.org":
		return true
	case "suggestion.baidu.com":
		return true
	case "www.baidu.com", "baidu.com":
		return path == "/sugrec"
	}
	switch {
	case isYahooSearchHost(host):
		return strings.HasPrefix(path, "/sugg/")
	case isGoogleHost(host):
		return path == "/complete/search"
	case strings.HasPrefix(host, "suggest.yandex."):
		return isYandexHost(host[len("suggest."):])
	case isYandexHost(host):
		return strings.HasPrefix(path, "/suggest")
	}
	return false
}

// isGoogleHost reports whether host is Google's search front end in some
// country: google.<public suffix>, bare or with www (google.com, google.co.uk,
// www.google.de). The ICANN check keeps out names such as google.blogspot.com
// that sit under a privately registered suffix.
func isGoogleHost(host string) bool {
	switch host {
	case "www.google.com", "www.google.co.uk", "google.com", "google.co.uk":
		// Nearly every request a UK school sees; publicsuffix allocates an
		// error on each lookup (it tries the name as an IP address first).
		return true
	}
	return isBrandHost(host, "google.")
}

// isYandexHost is isGoogleHost for Yandex (yandex.ru, yandex.com.tr).
func isYandexHost(host string) bool { return isBrandHost(host, "yandex.") }

// isBrandHost reports whether host is brand (ending in a dot) right under an
// ICANN public suffix, bare or with www.
func isBrandHost(host, brand string) bool {
	name := strings.TrimPrefix(host, "www.")
	if !strings.HasPrefix(name, brand) || len(name) == len(brand) {
		return false
	}
	suffix, icann := publicsuffix.PublicSuffix(name)
	return icann && suffix == name[len(brand):]
}

// isYahooSearchHost reports whether host is Yahoo search, worldwide
// (search.yahoo.com) or in a country (uk.search.yahoo.com) or vertical
// (images.search.yahoo.com).
func isYahooSearchHost(host string) bool {
	const s = "search.yahoo.com"
	return host == s || (strings.HasSuffix(host, s) && host[len(host)-len(s)-1] == '.')
}

// isYandexSearchPath reports whether path is one of Yandex's results pages.
func isYandexSearchPath(path string) bool {
	return strings.HasPrefix(path, "/search") || strings.HasPrefix(path, "/images/search") ||
		strings.HasPrefix(path, "/video/search")
}

// queryTerm returns the first non-empty, cleaned value of the parameter key in
// a raw query, with url.ParseQuery's rules but without building the map.
func queryTerm(rawQuery, key string) string {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if strings.IndexByte(pair, ';') >= 0 {
			continue // url.ParseQuery rejects these; so do we
		}
		k, v, _ := strings.Cut(pair, "=")
		if !queryKeyIs(k, key, false) {
			continue
		}
		v, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		if v = cleanTerm(v); v != "" {
			return v
		}
	}
	return ""
}

// queryKeyIs reports whether a raw query key, once decoded, is key (in any
// case when fold is set).
func queryKeyIs(raw, key string, fold bool) bool {
	if raw == key || (fold && strings.EqualFold(raw, key)) {
		return true
	}
	if len(raw) < len(key) || strings.IndexAny(raw, "%+") < 0 {
		return false // nothing to decode, so the comparison above was final
	}
	dec, err := url.QueryUnescape(raw)
	if err != nil {
		return false
	}
	return dec == key || (fold && strings.EqualFold(dec, key))
}

// cleanTerm makes a decoded search term fit to store and show: no control
// characters, valid UTF-8, trimmed, at most maxSearchTerm bytes.
func cleanTerm(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			// strings.Map turns invalid bytes into U+FFFD on its own.
			s = strings.Map(func(r rune) rune {
				if unicode.IsControl(r) {
					return ' '
				}
				return r
			}, s)
			break
		}
	}
	s = strings.TrimSpace(s)
	if len(s) > maxSearchTerm {
		i := maxSearchTerm
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = strings.TrimSpace(s[:i])
	}
	return s
}

// SafeSearchSettings is what a group enforces (categories.Snapshot's
// SearchSettings gives both).
type SafeSearchSettings struct {
	// SafeSearch turns on Google, Bing and DuckDuckGo safe search.
	SafeSearch bool
	// YouTube is the restricted mode: categories.YouTubeStrict,
	// categories.YouTubeModerate or "" for off.
	YouTube string
}

// youtubeRestrictHeader is YouTube's restricted-mode request header, spelt in
// Go's canonical form so that reading it indexes the map without allocating.
const youtubeRestrictHeader = "Youtube-Restrict"

// EnforceSafeSearch rewrites a request to a search engine so that safe search
// is on, for a proxied request the proxy can see (plain HTTP or intercepted
// HTTPS). host is r's canonical host, as the caller already derived it.
//
//   - Google search, image and autocomplete paths get safe=active, Bing's
//     search, image, video and autocomplete paths adlt=strict, DuckDuckGo's
//     results pages and their JavaScript endpoints kp=1.
//   - www.youtube.com, m.youtube.com, youtubei.googleapis.com,
//     youtube.googleapis.com and www.youtube-nocookie.com get the
//     YouTube-Restrict header, "Strict" or "Moderate", replacing whatever the
//     client sent. When the group has YouTube off the request is left alone:
//     a client that asks for restriction itself keeps it. A YouTube value
//     other than the two modes counts as strict, so a typo fails closed.
//
// Every pair whose key decodes to the engine's parameter is removed before
// the one wanted value is appended, so a client that sends safe=off, twice,
// or safe=off&safe=active, ends with exactly safe=active. Keys are compared
// without regard to case: Google reads only the lower-case "safe", so
// dropping SAFE=off loses nothing there, and Bing's servers treat parameter
// names without regard to case, so leaving ADLT=off could win. A raw ';' in
// the query is escaped to %3B while rewriting, because some servers split
// pairs on ';' and would otherwise see a "safe=off" hidden inside another
// value. Other pairs keep their bytes and their order.
//
// Only r.URL.RawQuery and r.Header change; a request that already complies
// (or goes to any other host) is not touched and costs no allocation.
// changed reports whether the request was modified, URL or header.
//
// This is the second line of defence: the dialler's DNS rewrite to the
// providers' safe-search names (categories.SafeSearchName) is the first, and
// the only one for HTTPS that is not intercepted.
func EnforceSafeSearch(r *http.Request, host string, s SafeSearchSettings) (changed bool) {
	if r == nil {
		return false
	}
	if s.YouTube != "" && categories.IsYouTubeHost(host) {
		want := "Strict"
		if s.YouTube == categories.YouTubeModerate {
			want = "Moderate"
		}
		if v := r.Header[youtubeRestrictHeader]; len(v) != 1 || v[0] != want {
			if r.Header == nil {
				r.Header = make(http.Header)
			}
			r.Header[youtubeRestrictHeader] = []string{want}
			changed = true
		}
	}
	if !s.SafeSearch || r.URL == nil {
		return changed
	}
	key, value := safeSearchParam(host, r.URL.Path)
	if key == "" {
		return changed
	}
	if q, rewritten := enforceParam(r.URL.RawQuery, key, value); rewritten {
		r.URL.RawQuery = q
		changed = true
	}
	return changed
}

// safeSearchParam returns the query parameter and value that turn strict safe
// search on for a host and path, or "" when the request is not a search.
func safeSearchParam(host, path string) (key, value string) {
	switch host {
	case "www.bing.com", "bing.com":
		// Results pages end in /search; the image and video grids load
		// more results from under /images/ and /videos/ as you scroll.
		if strings.HasSuffix(path, "/search") || strings.HasPrefix(path, "/images/") ||
			strings.HasPrefix(path, "/videos/") || isSuggestion(host, path) {
			return "adlt", "strict"
		}
		return "", ""
	case "duckduckgo.com", "www.duckduckgo.com", "html.duckduckgo.com", "lite.duckduckgo.com",
		"links.duckduckgo.com":
		switch path {
		case "/", "/html", "/html/", "/lite", "/lite/", "/ac", "/ac/",
			"/d.js", "/i.js", "/v.js", "/news.js":
			return "kp", "1"
		}
		return "", ""
	}
	if isGoogleHost(host) {
		switch path {
		case "/search", "/images", "/webhp", "/imghp", "/complete/search":
			return "safe", "active"
		}
	}
	return "", ""
}

// enforceParam returns rawQuery with exactly one key=value and no other pair
// whose key is key in any case or spelling, and whether that differs from
// rawQuery. A compliant query is returned as it is, without allocating.
func enforceParam(rawQuery, key, value string) (string, bool) {
	semicolon := strings.IndexByte(rawQuery, ';') >= 0
	matches, exact := 0, 0
	for rest := rawQuery; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		k, v, hasEq := strings.Cut(pair, "=")
		if queryKeyIs(k, key, true) {
			matches++
			if k == key && hasEq && v == value {
				exact++
			}
		}
	}
	if !semicolon && matches == 1 && exact == 1 {
		return rawQuery, false
	}
	var b strings.Builder
	b.Grow(len(rawQuery) + len(key) + len(value) + 2 + 2*strings.Count(rawQuery, ";"))
	for rest := rawQuery; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		k, _, _ := strings.Cut(pair, "=")
		if pair == "" || queryKeyIs(k, key, true) {
			continue
		}
		// Escaped so that a server which splits pairs on ';' sees the one
		// pair we saw: "q=x;safe=off" must not turn into safe=off there.
		for {
			seg, after, found := strings.Cut(pair, ";")
			b.WriteString(seg)
			if !found {
				break
			}
			b.WriteString("%3B")
			pair = after
		}
		b.WriteByte('&')
	}
	b.WriteString(key)
	b.WriteByte('=')
	b.WriteString(value)
	return b.String(), true
}
