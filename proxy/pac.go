package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// PACContentType is the media type a PAC file must be served with: browsers
// and WPAD clients (Windows in particular) ignore a script served as
// anything else.
const PACContentType = "application/x-ns-proxy-autoconfig"

// PACFile returns a proxy auto-config script that sends browsers to
// proxyHostPort ("proxy.school.example:3128") and lets them go DIRECT for
// plain host names (no dot), localhost and 127.0.0.0/8, the local networks
// given and the host names in direct, each of which matches itself and every
// name under it ("intranet.school.example", or "*.school.example" for
// school.example and below).
//
// It uses only the functions every PAC engine has (isPlainHostName,
// dnsDomainIs, isInNet, dnsResolve), as school PAC files conventionally do.
// IPv4 networks are checked with isInNet on the resolved address; IPv6 ones
// with the Microsoft extensions isInNetEx and dnsResolveEx, which Chrome,
// Edge and Windows have but Firefox does not, so they are guarded by typeof
// and a browser without them sends those hosts to the proxy. The script
// resolves names only when there are local networks to check, since
// dnsResolve blocks the browser on a lookup for every request.
//
// Anything else goes to the proxy, with no "; DIRECT" fallback: if the filter
// is down, browsing stops rather than silently going round it.
//
// Every name and address is validated before it is written into the script
// (a bad one is an error naming it), so nothing from the configuration can
// break out of its JavaScript string.
func PACFile(proxyHostPort string, localNets []netip.Prefix, direct []string) ([]byte, error) {
	proxy, err := pacProxy(proxyHostPort)
	if err != nil {
		return nil, err
	}
	var v4, v6 []netip.Prefix
	for i, p := range localNets {
		if !p.IsValid() { // netip.PrefixFrom has already dropped any zone
			return nil, fmt.Errorf("pac: local network %d (%v) is not a valid prefix", i+1, p)
		}
		p = p.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Addr().Is4() {
			v4 = appendNew(v4, p)
		} else {
			v6 = appendNew(v6, p)
		}
	}
	var names []string
	for _, d := range direct {
		name, err := pacDirectName(d)
		if err != nil {
			return nil, err
		}
		names = appendNew(names, name)
	}

	var b strings.Builder
	b.WriteString(`// Proxy auto-config for hedgerow, the school's web filter. This file is
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
`)
	for _, n := range names {
		fmt.Fprintf(&b, "\tif (host === %s || dnsDomainIs(host, %s)) {\n\t\treturn \"DIRECT\";\n\t}\n",
			strconv.Quote(n), strconv.Quote("."+n))
	}
	if len(v4) > 0 {
		b.WriteString("\tvar ip = dnsResolve(host);\n\tif (ip) {\n")
		for _, p := range append([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, v4...) {
			mask := net.IP(net.CIDRMask(p.Bits(), 32)).String()
			fmt.Fprintf(&b, "\t\tif (isInNet(ip, %s, %s)) {\n\t\t\treturn \"DIRECT\";\n\t\t}\n",
				strconv.Quote(p.Addr().String()), strconv.Quote(mask))
		}
		b.WriteString("\t}\n")
	}
	if len(v6) > 0 {
		b.WriteString(`	if (typeof isInNetEx === "function" && typeof dnsResolveEx === "function") {
		var all = dnsResolveEx(host);
		var addrs = all ? all.split(";") : [];
		for (var i = 0; i < addrs.length; i++) {
`)
		for _, p := range v6 {
			fmt.Fprintf(&b, "\t\t\tif (isInNetEx(addrs[i], %s)) {\n\t\t\t\treturn \"DIRECT\";\n\t\t\t}\n",
				strconv.Quote(p.String()))
		}
		b.WriteString("\t\t}\n\t}\n")
	}
	fmt.Fprintf(&b, "\treturn %s;\n}\n", strconv.Quote("PROXY "+proxy))
	return []byte(b.String()), nil
}

// appendNew appends v to s unless s already has it; lists here are short.
func appendNew[T comparable](s []T, v T) []T {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// pacProxy validates "host:port" and returns it as the PAC line wants it.
func pacProxy(hostPort string) (string, error) {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", fmt.Errorf("pac: proxy address %q: want host:port: %w", hostPort, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != port {
		return "", fmt.Errorf("pac: proxy address %q: port %q: want a number from 1 to 65535", hostPort, port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" || ip.IsUnspecified() {
			return "", fmt.Errorf("pac: proxy address %q: %s is not an address browsers can reach", hostPort, host)
		}
		return netip.AddrPortFrom(ip.Unmap(), uint16(n)).String(), nil
	}
	name, err := pacHostName(host)
	if err != nil {
		return "", fmt.Errorf("pac: proxy address %q: %w", hostPort, err)
	}
	return name + ":" + port, nil
}

// pacDirectName validates one entry of the direct list: a DNS name,
// optionally written "*.name" or ".name" (the same thing here: the name and
// everything under it).
func pacDirectName(s string) (string, error) {
	name := s
	if strings.HasPrefix(name, "*.") {
		name = name[2:]
	} else if strings.HasPrefix(name, ".") {
		name = name[1:]
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return "", fmt.Errorf("pac: direct host %q is an address: put it in the local networks as a prefix", s)
	}
	n, err := pacHostName(name)
	if err != nil {
		return "", fmt.Errorf("pac: direct host %q: %w", s, err)
	}
	return n, nil
}

// pacHostName checks that s is a DNS host name (letters, digits and hyphens
// in labels of 1 to 63 bytes, 253 in all, the last label not all digits, so
// it cannot be mistaken for an address) and returns it in lower case without
// a trailing dot. Internationalised names must be given in their xn-- form,
// which is what browsers pass to FindProxyForURL.
func pacHostName(s string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	if name == "" {
		return "", errors.New("empty host name")
	}
	if len(name) > 253 {
		return "", fmt.Errorf("host name is %d bytes: at most 253", len(name))
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("label %q: want 1 to 63 bytes", l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("label %q starts or ends with a hyphen", l)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("label %q: %q is not a letter, digit or hyphen (use the xn-- form for international names)", l, rune(c))
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", fmt.Errorf("%q ends in a number: it is not a host name", name)
	}
	return name, nil
}
