package dnsfilter

import (
	"strings"

	"golang.org/x/net/publicsuffix"

	"hedgerow/categories"
)

// youtubeHosts are the names YouTube's restricted mode is enforced on
// (Google Workspace Admin Help 6214622, "option DNS").
var youtubeHosts = map[string]bool{
	"www.youtube.com": true, "m.youtube.com": true, "youtubei.googleapis.com": true,
	"youtube.googleapis.com": true, "www.youtube-nocookie.com": true,
}

// safeSearchTarget returns the providers' published safe-search name that a
// host must be answered with for a group, if any: Google's forcesafesearch
// for www.google.* in every country, Bing's strict, DuckDuckGo's safe, and
// YouTube's restricted modes.
func safeSearchTarget(host string, safeSearch bool, youtube string) (string, bool) {
	if youtube != "" && youtubeHosts[host] {
		if youtube == categories.YouTubeModerate {
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

// Canary answers that keep browsers on the school's resolver.
const (
	// canaryFirefoxDoH: NXDOMAIN makes Firefox keep its default DoH off.
	canaryFirefoxDoH = "use-application-dns.net"
	// canaryDDR: discovery of designated resolvers (RFC 9462); no answer, so
	// clients are not upgraded to an encrypted resolver elsewhere.
	canaryDDR = "_dns.resolver.arpa"
)

// privateRelayCanaries are Apple's iCloud Private Relay canary names: a
// quick NXDOMAIN tells devices to turn Relay off on this network.
var privateRelayCanaries = map[string]bool{"mask.icloud.com": true, "mask-h2.icloud.com": true}
