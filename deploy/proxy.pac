// Proxy auto-config for hedgerow, the school's web filter. This file is
// generated from hedgerow's configuration: change that, not this.
//
// Local and intranet sites are reached directly; everything else goes
// through the filter. There is no "; DIRECT" fallback on purpose: if the
// filter is down, browsing stops rather than going round it.
function FindProxyForURL(url, host) {
	host = host.toLowerCase();
	if (host.charAt(0) === "[") {
		host = host.substring(1, host.length - 1); // an IPv6 literal, as some browsers pass it
	}
	// IPv6 literals have no dot either, so they are not plain host names.
	if (isPlainHostName(host) && host.indexOf(":") < 0) {
		return "DIRECT";
	}
	if (host === "localhost" || dnsDomainIs(host, ".localhost") || host === "::1") {
		return "DIRECT";
	}
	// A literal address only: a name such as 127.evil.example can point
	// anywhere, and matching it here would send it round the filter.
	if (/^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/.test(host) && isInNet(host, "127.0.0.0", "255.0.0.0")) {
		return "DIRECT";
	}
	if (host === "intranet.school.example" || dnsDomainIs(host, ".intranet.school.example")) {
		return "DIRECT";
	}
	var ip = dnsResolve(host);
	if (ip) {
		if (isInNet(ip, "127.0.0.0", "255.0.0.0")) {
			return "DIRECT";
		}
		if (isInNet(ip, "10.0.0.0", "255.0.0.0")) {
			return "DIRECT";
		}
		if (isInNet(ip, "172.16.0.0", "255.240.0.0")) {
			return "DIRECT";
		}
		if (isInNet(ip, "192.168.0.0", "255.255.0.0")) {
			return "DIRECT";
		}
	}
	if (typeof isInNetEx === "function" && typeof dnsResolveEx === "function") {
		var all = dnsResolveEx(host);
		var addrs = all ? all.split(";") : [];
		for (var i = 0; i < addrs.length; i++) {
			if (isInNetEx(addrs[i], "fc00::/7")) {
				return "DIRECT";
			}
		}
	}
	return "PROXY proxy.school.example:3128";
}
