package categories

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// youtubeHosts are the names YouTube's restricted mode is enforced on
// (Google Workspace Admin Help 6214622, "option DNS").
var youtubeHosts = map[string]bool{
	"www.youtube.com": true, "m.youtube.com": true, "youtubei.googleapis.com": true,
	"youtube.googleapis.com": true, "www.youtube-nocookie.com": true,
}

// IsYouTubeHost reports whether YouTube's restricted mode applies to a
// canonical host.
func IsYouTubeHost(host string) bool { return youtubeHosts[host] }

// SafeSearchName returns the providers' published safe-search name (fully
// qualified, with the trailing dot) that a canonical host must resolve as for
// a group, if any: Google's forcesafesearch for www.google.* in every
// country, Bing's strict, DuckDuckGo's safe, and YouTube's restricted modes.
// The DNS filter answers with it as a CNAME and the proxy dials it: one rule
// for both, so proxied devices keep safe search.
func SafeSearchName(host string, safeSearch bool, youtube string) (string, bool) {
	if youtube != "" && youtubeHosts[host] {
		if youtube == YouTubeModerate {
			return "restrictmoderate.youtube.com.", true
		}
		return "restrict.youtube.com.", true
	}
	if !safeSearch {
		return "", false
	}
	switch host {
	case "www.bing.com", "bing.com":
		return "strict.bing.com.", true
	case "duckduckgo.com", "www.duckduckgo.com":
		return "safe.duckduckgo.com.", true
	}
	// google.com, google.co.uk, www.google.de ...: "google" right under a
	// public suffix, bare or with www.
	if !strings.Contains(host, "google.") {
		return "", false
	}
	name := strings.TrimPrefix(host, "www.")
	if !strings.HasPrefix(name, "google.") {
		return "", false
	}
	if suffix, icann := publicsuffix.PublicSuffix(name); icann && suffix == name[len("google."):] {
		return "forcesafesearch.google.com.", true
	}
	return "", false
}
