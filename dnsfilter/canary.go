package dnsfilter

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
