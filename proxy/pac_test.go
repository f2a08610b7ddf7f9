package proxy

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func mustPAC(t testing.TB, proxy string, nets []string, direct []string) string {
	t.Helper()
	var prefixes []netip.Prefix
	for _, n := range nets {
		prefixes = append(prefixes, netip.MustParsePrefix(n))
	}
	pac, err := PACFile(proxy, prefixes, direct)
	if err != nil {
		t.Fatalf("PACFile: %v", err)
	}
	return string(pac)
}

func TestPACFileText(t *testing.T) {
	pac := mustPAC(t, "Proxy.School.Example.:3128", []string{"10.0.0.0/8", "192.168.1.77/24", "10.0.0.0/8", "2001:db8::/32", "::ffff:172.16.0.0/108"},
		[]string{"intranet.school.example", "*.vle.example", ".mis.example", "INTRANET.school.example"})
	for _, want := range []string{
		"function FindProxyForURL(url, host) {",
		`return "PROXY proxy.school.example:3128";`,
		`if (host === "intranet.school.example" || dnsDomainIs(host, ".intranet.school.example")) {`,
		`if (host === "vle.example" || dnsDomainIs(host, ".vle.example")) {`,
		`if (host === "mis.example" || dnsDomainIs(host, ".mis.example")) {`,
		`isInNet(ip, "10.0.0.0", "255.0.0.0")`,
		`isInNet(ip, "192.168.1.0", "255.255.255.0")`,
		`isInNet(ip, "172.16.0.0", "255.240.0.0")`,
		`isInNet(ip, "127.0.0.0", "255.0.0.0")`,
		`isInNetEx(addrs[i], "2001:db8::/32")`,
		`typeof isInNetEx === "function"`,
	} {
		if !strings.Contains(pac, want) {
			t.Errorf("PAC lacks %q:\n%s", want, pac)
		}
	}
	if strings.Count(pac, `"10.0.0.0"`) != 1 || strings.Count(pac, `"intranet.school.example"`) != 1 {
		t.Error("duplicates not removed")
	}
	if regexp.MustCompile(`return "PROXY [^"]*;`).MatchString(pac) {
		t.Error("PAC falls back to DIRECT when the proxy is down")
	}
}

func TestPACFileNoLocalNetsDoesNotResolve(t *testing.T) {
	pac := mustPAC(t, "10.0.0.1:8080", nil, nil)
	if strings.Contains(pac, "dnsResolve") || strings.Contains(pac, "isInNetEx") {
		t.Errorf("PAC resolves names with no local networks to check:\n%s", pac)
	}
	if !strings.Contains(pac, `return "PROXY 10.0.0.1:8080";`) {
		t.Errorf("proxy line wrong:\n%s", pac)
	}
	if pac6 := mustPAC(t, "[2001:db8::1]:3128", nil, nil); !strings.Contains(pac6, `"PROXY [2001:db8::1]:3128"`) {
		t.Errorf("IPv6 proxy line wrong:\n%s", pac6)
	}
}

func TestPACFileInvalid(t *testing.T) {
	good := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name, proxy string
		nets        []netip.Prefix
		direct      []string
		wantErr     string
	}{
		{"no port", "proxy.example", good, nil, "want host:port"},
		{"port zero", "proxy.example:0", good, nil, "port"},
		{"port too big", "proxy.example:65536", good, nil, "port"},
		{"port not a number", "proxy.example:http", good, nil, "port"},
		{"port with sign", "proxy.example:+80", good, nil, "port"},
		{"port with leading zero", "proxy.example:080", good, nil, "port"},
		{"empty host", ":3128", good, nil, "empty host name"},
		{"underscore", "bad_name.example:3128", good, nil, "not a letter"},
		{"leading hyphen", "-x.example:3128", good, nil, "hyphen"},
		{"empty label", "a..example:3128", good, nil, "label"},
		{"long label", strings.Repeat("a", 64) + ".example:3128", good, nil, "label"},
		{"long name", strings.Repeat("abcdefghi.", 26) + "example:3128", good, nil, "at most 253"},
		{"numeric name", "3232235777:3128", good, nil, "ends in a number"},
		{"zone", "[fe80::1%eth0]:3128", good, nil, "not an address browsers can reach"},
		{"unspecified", "0.0.0.0:3128", good, nil, "not an address browsers can reach"},
		{"script injection", `x";alert(1);"x:3128`, good, nil, "not a letter"},
		{"unicode", "bücher.example:3128", good, nil, "xn--"},
		{"invalid prefix", "proxy.example:3128", []netip.Prefix{{}}, nil, "local network 1"},
		{"empty direct", "proxy.example:3128", good, []string{""}, "empty host name"},
		{"wildcard only", "proxy.example:3128", good, []string{"*"}, "not a letter"},
		{"inner wildcard", "proxy.example:3128", good, []string{"*intranet.example"}, "not a letter"},
		{"direct address", "proxy.example:3128", good, []string{"10.1.2.3"}, "is an address"},
		{"direct space", "proxy.example:3128", good, []string{"intra net.example"}, "not a letter"},
		{"direct quote", "proxy.example:3128", good, []string{`a"+alert(1)+".example`}, "not a letter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pac, err := PACFile(tc.proxy, tc.nets, tc.direct)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q (pac %d bytes)", err, tc.wantErr, len(pac))
			}
			if pac != nil {
				t.Error("a PAC came back with the error")
			}
		})
	}
}

// pacHarness evaluates a PAC file in node with stubbed PAC functions and a
// fake DNS, and prints FindProxyForURL's answers, in order, and the resolver
// call counts as JSON.
const pacHarness = `
const fs = require("fs"), vm = require("vm"), net = require("net");
const pac = fs.readFileSync(process.argv[2], "utf8");
const cfg = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const calls = {dnsResolve: 0, dnsResolveEx: 0};
function ip4(s) {
	const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
	return m ? ((+m[1] << 24) | (+m[2] << 16) | (+m[3] << 8) | +m[4]) >>> 0 : null;
}
const sandbox = {
	isPlainHostName: h => h.indexOf(".") < 0,
	dnsDomainIs: (h, d) => h.length >= d.length && h.substring(h.length - d.length) === d,
	shExpMatch: (s, p) => new RegExp("^" + p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$").test(s),
	dnsResolve: h => { calls.dnsResolve++; return ip4(h) !== null ? h : (cfg.dns[h] || null); },
	isInNet: (h, pat, mask) => {
		const a = ip4(h) !== null ? h : (cfg.dns[h] || null);
		if (a === null || ip4(a) === null) return false;
		return ((ip4(a) & ip4(mask)) >>> 0) === ((ip4(pat) & ip4(mask)) >>> 0);
	},
};
if (cfg.ex) {
	sandbox.dnsResolveEx = h => {
		calls.dnsResolveEx++;
		if (net.isIP(h)) return h;
		return [].concat(cfg.dns6[h] || [], cfg.dns[h] ? [cfg.dns[h]] : []).join(";");
	};
	sandbox.isInNetEx = (ip, prefix) => {
		const [addr, bits] = prefix.split("/");
		const fam = net.isIPv6(addr) ? "ipv6" : "ipv4";
		if (net.isIP(ip) !== (fam === "ipv6" ? 6 : 4)) return false;
		const bl = new net.BlockList();
		bl.addSubnet(addr, +bits, fam);
		return bl.check(ip, fam);
	};
}
vm.createContext(sandbox);
vm.runInContext(pac, sandbox, {filename: "proxy.pac"});
const results = cfg.cases.map(([url, host]) => sandbox.FindProxyForURL(url, host));
process.stdout.write(JSON.stringify({results, calls}));
`

type pacCase struct{ url, host, want string }

// runPAC evaluates pac in node for the cases; ex says whether the engine
// has the IPv6 extensions.
// It returns the answers in the order of the cases and how often the script
// called each resolver.
func runPAC(t *testing.T, node, pac string, ex bool, dns map[string]string, dns6 map[string][]string, cases []pacCase) (results []string, calls map[string]int) {
	t.Helper()
	dir := t.TempDir()
	var raw [][2]string
	for _, c := range cases {
		raw = append(raw, [2]string{c.url, c.host})
	}
	cfg, err := json.Marshal(map[string]any{"ex": ex, "dns": dns, "dns6": dns6, "cases": raw})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"harness.js": []byte(pacHarness), "proxy.pac": []byte(pac), "cfg.json": cfg}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, filepath.Join(dir, "harness.js"), filepath.Join(dir, "proxy.pac"), filepath.Join(dir, "cfg.json")).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s\nPAC:\n%s", err, out, pac)
	}
	var got struct {
		Results []string
		Calls   map[string]int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if len(got.Results) != len(cases) {
		t.Fatalf("node gave %d answers for %d cases", len(got.Results), len(cases))
	}
	return got.Results, got.Calls
}

func TestPACFileInNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed, so the PAC script is not executed; the string tests still ran")
	}
	const proxy = "PROXY proxy.school.example:3128"
	pac := mustPAC(t, "proxy.school.example:3128", []string{"10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"},
		[]string{"intranet.school.example", "*.vle.example"})
	dns := map[string]string{
		"printer.school.example": "10.20.30.40",
		"www.bbc.co.uk":          "151.101.0.81",
		"nas.home.example":       "192.168.1.5",
		"127.0.0.1.nip.io":       "127.0.0.1",
	}
	dns6 := map[string][]string{"v6only.school.example": {"2001:db8::9"}, "v6.example": {"2606:4700::1111"}}
	common := []pacCase{
		{"http://intranet/", "intranet", "DIRECT"},
		{"http://localhost:8080/", "localhost", "DIRECT"},
		{"http://app.localhost/", "app.localhost", "DIRECT"},
		{"http://127.0.0.1/", "127.0.0.1", "DIRECT"},
		{"http://127.1.2.3/", "127.1.2.3", "DIRECT"},
		{"http://[::1]/", "[::1]", "DIRECT"},
		{"http://127.evil.example/", "127.evil.example", proxy},
		{"http://127.0.0.1.nip.io/", "127.0.0.1.nip.io", "DIRECT"}, // resolves to the device itself: nothing to filter
		{"http://intranet.school.example/", "intranet.school.example", "DIRECT"},
		{"http://INTRANET.School.Example/", "INTRANET.School.Example", "DIRECT"},
		{"http://www.intranet.school.example/", "www.intranet.school.example", "DIRECT"},
		{"http://evilintranet.school.example/", "evilintranet.school.example", proxy},
		{"http://intranet.school.example.evil.test/", "intranet.school.example.evil.test", proxy},
		{"http://vle.example/", "vle.example", "DIRECT"},
		{"http://my.vle.example/", "my.vle.example", "DIRECT"},
		{"http://printer.school.example/", "printer.school.example", "DIRECT"},
		{"http://nas.home.example/", "nas.home.example", "DIRECT"},
		{"http://10.2.3.4/", "10.2.3.4", "DIRECT"},
		{"http://www.bbc.co.uk/", "www.bbc.co.uk", proxy},
		{"http://blocked.example/", "blocked.example", proxy}, // NXDOMAIN from the DNS filter: the proxy shows the block page
		{"http://172.16.0.1/", "172.16.0.1", proxy},
		// A conventional PAC's isPlainHostName would let every IPv6
		// literal round the filter.
		{"http://[2606:4700::1111]/", "[2606:4700::1111]", proxy},
		{"http://[2606:4700::1111]/", "2606:4700::1111", proxy},
		{"http://v6.example/", "v6.example", proxy},
	}
	t.Run("with IPv6 extensions", func(t *testing.T) {
		cases := append(append([]pacCase{}, common...),
			pacCase{"http://[2001:db8::5]/", "[2001:db8::5]", "DIRECT"},
			pacCase{"http://v6only.school.example/", "v6only.school.example", "DIRECT"})
		got, _ := runPAC(t, node, pac, true, dns, dns6, cases)
		checkPAC(t, got, cases)
	})
	t.Run("without IPv6 extensions", func(t *testing.T) {
		cases := append(append([]pacCase{}, common...),
			pacCase{"http://[2001:db8::5]/", "[2001:db8::5]", proxy},
			pacCase{"http://v6only.school.example/", "v6only.school.example", proxy})
		got, _ := runPAC(t, node, pac, false, dns, dns6, cases)
		checkPAC(t, got, cases)
	})
	t.Run("no local networks", func(t *testing.T) {
		pac := mustPAC(t, "[2001:db8::1]:8080", nil, nil)
		cases := []pacCase{
			{"http://intranet/", "intranet", "DIRECT"},
			{"http://127.0.0.1/", "127.0.0.1", "DIRECT"},
			{"http://printer.school.example/", "printer.school.example", "PROXY [2001:db8::1]:8080"},
			{"http://www.bbc.co.uk/", "www.bbc.co.uk", "PROXY [2001:db8::1]:8080"},
		}
		got, calls := runPAC(t, node, pac, true, dns, dns6, cases)
		checkPAC(t, got, cases)
		if calls["dnsResolve"] != 0 || calls["dnsResolveEx"] != 0 {
			t.Errorf("PAC resolved names with no local networks: %v", calls)
		}
	})
}

func checkPAC(t *testing.T, got []string, cases []pacCase) {
	t.Helper()
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("FindProxyForURL(%q, %q) = %q, want %q", c.url, c.host, got[i], c.want)
		}
	}
}

// safePACString is what any string literal in a generated PAC may hold.
var (
	pacStringRE   = regexp.MustCompile(`"[^"\n]*"`)
	safePACString = regexp.MustCompile(`^"[a-zA-Z0-9.:/\[\] ;*\-]*"$`)
)

func FuzzPACFile(f *testing.F) {
	f.Add("proxy.school.example:3128", "intranet.school.example", "10.0.0.0/8")
	f.Add(`x";alert(1)//:80`, `*.a"b`, "2001:db8::/32")
	f.Add("[::1]:1", ".Example.COM.", "::ffff:10.0.0.0/104")
	f.Fuzz(func(t *testing.T, proxy, direct, prefix string) {
		var nets []netip.Prefix
		if p, err := netip.ParsePrefix(prefix); err == nil {
			nets = append(nets, p)
		}
		pac, err := PACFile(proxy, nets, strings.Split(direct, ","))
		if err != nil {
			if pac != nil {
				t.Fatal("PAC returned with an error")
			}
			return
		}
		for _, s := range pacStringRE.FindAllString(string(pac), -1) {
			if !safePACString.MatchString(s) {
				t.Fatalf("unsafe string literal %s in PAC:\n%s", s, pac)
			}
		}
		if strings.Count(string(pac), "function FindProxyForURL") != 1 || !strings.HasSuffix(string(pac), "}\n") {
			t.Fatalf("malformed PAC:\n%s", pac)
		}
	})
}

func BenchmarkPACFile(b *testing.B) {
	nets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	direct := []string{"intranet.school.example", "vle.example"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PACFile("proxy.school.example:3128", nets, direct); err != nil {
			b.Fatal(err)
		}
	}
}
