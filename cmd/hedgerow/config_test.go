package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const exampleConfig = "../../deploy/hedgerow.yaml"

// writeConfig writes content to a temporary file and returns its path.
func writeConfig(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hedgerow.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	t.Setenv("HEDGEROW_DATA", "")
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Data != "hedgerow-data" || c.Admin != "127.0.0.1:9153" || !slices.Equal(c.DNS.Listen, []string{"127.0.0.1:5353"}) ||
		c.DNS.Upstreams != nil || c.DNS.Timeout.D() != 1800*time.Millisecond || c.DNS.MaxInFlight != 1024 ||
		c.DNS.RateLimit != 200 || c.DNS.BlockAnswer != "nxdomain" || c.Log.Level != "info" || c.Log.Format != "text" {
		t.Errorf("defaults: %+v", c)
	}
	if cs := c.DNS.Cache; cs.MaxEntries != 100000 || cs.MaxTTL.D() != 24*time.Hour || cs.NegativeTTL.D() != time.Hour ||
		cs.StaleFor.D() != 24*time.Hour {
		t.Errorf("cache defaults: %+v", cs)
	}
	t.Setenv("HEDGEROW_DATA", "/srv/hedgerow")
	if d := DefaultConfig().Data; d != "/srv/hedgerow" {
		t.Errorf("data with $HEDGEROW_DATA set: %q", d)
	}
	// Each call returns its own slices: a caller's edits do not leak.
	a := DefaultConfig()
	a.DNS.Listen[0] = "x"
	if DefaultConfig().DNS.Listen[0] != "127.0.0.1:5353" {
		t.Error("DefaultConfig shares its listen slice")
	}
}

// TestConfigExample proves the documented example loads, validates, and
// mentions every key there is.
func TestConfigExample(t *testing.T) {
	c, err := LoadConfig(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
	if c.Data != "/var/lib/hedgerow" || !slices.Equal(c.DNS.Listen, []string{"0.0.0.0:53"}) ||
		!slices.Equal(c.DNS.Upstreams, []string{"9.9.9.9", "149.112.112.112"}) || c.DNS.Timeout.D() != 1800*time.Millisecond {
		t.Errorf("example: %+v", c)
	}

	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	idx := &nodeIndex{keys: map[int][]pathNode{}, values: map[int][]pathNode{}}
	idx.walk(&root, nil, 0)
	present := map[string]bool{}
	for _, ks := range idx.keys {
		for _, k := range ks {
			present[joinPath(k.path)] = true
		}
	}
	for _, key := range allKeys(reflect.TypeFor[Config](), "") {
		if !present[key] {
			t.Errorf("deploy/hedgerow.yaml does not document %s", key)
		}
	}
}

// allKeys lists the dotted YAML keys of a struct type, sections included.
func allKeys(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		key := prefix + strings.Split(f.Tag.Get("yaml"), ",")[0]
		out = append(out, key)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
			out = append(out, allKeys(f.Type, key+".")...)
		}
	}
	return out
}

func TestConfigEmptyFile(t *testing.T) {
	for _, content := range []string{"", "\n\n", "# only a comment\n", "---\n", "~\n"} {
		c, err := LoadConfig(writeConfig(t, content))
		if err != nil {
			t.Errorf("%q: %v", content, err)
			continue
		}
		if !reflect.DeepEqual(c, DefaultConfig()) {
			t.Errorf("%q: %+v, want the defaults", content, c)
		}
	}
}

func TestConfigPartialFile(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, "dns:\n  timeout: 500ms\n  listen: [\"10.0.0.53:53\", \"[2001:db8::53]:53\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.DNS.Timeout = Duration(500 * time.Millisecond)
	want.DNS.Listen = []string{"10.0.0.53:53", "[2001:db8::53]:53"} // replaced, not appended to
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// TestConfigNullAnswer: YAML reads a bare null as no value; as a block
// answer it means 0.0.0.0.
func TestConfigNullAnswer(t *testing.T) {
	tests := []struct {
		content    string
		want       string
		wantGroups map[string]string
	}{
		{"dns:\n  block_answer: null\n", "null", nil},
		{"dns:\n  block_answer: NULL\n", "null", nil},
		{"dns:\n  block_answer: \"null\"\n", "null", nil},
		{"dns:\n  block_answer: ~\n", "nxdomain", nil}, // no value: the default
		{"dns:\n  block_answer:\n", "nxdomain", nil},
		{"dns:\n  group_block_answer:\n    staff: null\n    ks2: 'null'\n    ks3-ks4: nxdomain\n", "nxdomain",
			map[string]string{"staff": "null", "ks2": "null", "ks3-ks4": "nxdomain"}},
	}
	for _, tc := range tests {
		c, err := LoadConfig(writeConfig(t, tc.content))
		if err != nil {
			t.Errorf("%q: %v", tc.content, err)
			continue
		}
		if c.DNS.BlockAnswer != tc.want || !reflect.DeepEqual(c.DNS.GroupBlockAnswer, tc.wantGroups) {
			t.Errorf("%q: block_answer %q, groups %v; want %q, %v", tc.content, c.DNS.BlockAnswer, c.DNS.GroupBlockAnswer, tc.want, tc.wantGroups)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", tc.content, err)
		}
	}
	// An empty group answer is still an error, not "null".
	c, err := LoadConfig(writeConfig(t, "dns:\n  group_block_answer:\n    staff:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "dns.group_block_answer.staff") {
		t.Errorf("empty group answer: %v", err)
	}
}

func TestConfigDurations(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"1.8s", 1800 * time.Millisecond},
		{"500ms", 500 * time.Millisecond},
		{`"2s"`, 2 * time.Second},
		{"24h", 24 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"0s", 0},
		{"0", 0},
	}
	for _, tc := range tests {
		c, err := LoadConfig(writeConfig(t, "dns:\n  cache:\n    stale_for: "+tc.in+"\n"))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := c.DNS.Cache.StaleFor.D(); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.in, got, tc.want)
		}
	}
	// And back: a Duration marshals to what it reads.
	out, err := yaml.Marshal(struct{ D Duration }{Duration(1800 * time.Millisecond)})
	if err != nil || string(out) != "d: 1.8s\n" {
		t.Errorf("marshal: %q, %v", out, err)
	}
}

func TestConfigLoadErrors(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string // each must appear in the error
	}{
		{"unknown top-level key", "data: /x\nadmn: 127.0.0.1:9153\n",
			[]string{"line 2", `unknown key "admn"`, "known keys at the top level: data, admin, admin_ui, identity, backup, dns, proxy, incidents, alerts, feeds, log"}},
		{"unknown nested key", "dns:\n  listen: [\"0.0.0.0:53\"]\n  tiemout: 2s\n",
			[]string{"line 3", `unknown key "dns.tiemout"`, "known keys in dns:", "timeout"}},
		{"unknown key two levels down", "dns:\n  cache:\n    max_entires: 5\n",
			[]string{"line 3", `"dns.cache.max_entires"`, "max_entries"}},
		{"unknown key in a flow mapping", "log: {level: info, colour: true}\n",
			[]string{"line 1", `"log.colour"`, "level, format"}},
		{"string for a number", "dns:\n  cache:\n    max_entries: 100\n  max_in_flight: lots\n",
			[]string{"line 4", "dns.max_in_flight: got text `lots`; want a whole number"}},
		{"number too large", "dns:\n  rate_limit: 99999999999999999999999\n",
			[]string{"line 2", "dns.rate_limit", "whole number"}},
		{"scalar for a list", "dns:\n  upstreams: 9.9.9.9\n",
			[]string{"line 2", "dns.upstreams", "want a list"}},
		{"list for a scalar", "log:\n  level:\n    - info\n",
			[]string{"line 3", "log.level", "want a single value"}},
		{"scalar for a section", "dns: yes\n",
			[]string{"line 1", "dns:", "want a mapping"}},
		{"list item of the wrong kind", "dns:\n  listen:\n    - 0.0.0.0:53\n    - {addr: x}\n",
			[]string{"line 4", "dns.listen[1]"}},
		{"list for a group map", "dns:\n  group_block_answer: [ks2]\n",
			[]string{"line 2", "dns.group_block_answer", "group: answer"}},
		{"duration without a unit", "dns:\n  timeout: 2\n",
			[]string{"line 2", "dns.timeout", "`2`", "with a unit", "1.8s"}},
		{"duration that is not one", "dns:\n  cache:\n    max_ttl: a day\n",
			[]string{"line 3", "dns.cache.max_ttl", "`a day`"}},
		{"long bad duration", "dns:\n  cache:\n    negative_ttl: one hour and a bit\n",
			[]string{"line 3", "dns.cache.negative_ttl", "`one hou...`"}},
		{"duration as a list", "dns:\n  timeout: [1s]\n",
			[]string{"line 2", "dns.timeout: got a list; want a duration"}},
		{"key given twice", "log:\n  level: info\n  level: debug\n",
			[]string{"line 3", `"log.level"`, "twice"}},
		{"several errors at once", "dns:\n  timeout: 2\n  max_in_flight: x\nbogus: 1\n",
			[]string{"line 2", "line 3", "line 4", "dns.timeout", "dns.max_in_flight", `"bogus"`}},
		{"YAML syntax", "dns:\n  listen: [0.0.0.0:53\n",
			[]string{"line"}},
		{"tab indentation", "dns:\n\tlisten: []\n",
			[]string{"line 2", "not allow tabs"}},
		{"whole file not a mapping", "- a\n- b\n",
			[]string{"line 1: got a list; want a mapping"}},
		{"two documents", "data: /a\n---\ndata: /b\n",
			[]string{"more than one YAML document"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.content)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatalf("no error, want one mentioning %q", tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			if strings.Contains(msg, "main.") {
				t.Errorf("error %q names a Go type", msg)
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
	big := writeConfig(t, "# "+strings.Repeat("x", maxConfigBytes)+"\n")
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge file: %v", err)
	}
}

func TestConfigValidateErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // each must appear in the error; nil: valid
	}{
		{"empty data", func(c *Config) { c.Data = " " }, []string{"data:", "/var/lib/hedgerow"}},
		{"admin without port", func(c *Config) { c.Admin = "127.0.0.1" }, []string{"admin:", `"127.0.0.1"`, "want IP:port, e.g. 127.0.0.1:9153"}},
		{"admin by name", func(c *Config) { c.Admin = "localhost:9153" }, []string{"admin:", "want IP:port"}},
		{"admin port 0", func(c *Config) { c.Admin = "127.0.0.1:0" }, []string{"admin:", "port 0"}},
		{"no listen address", func(c *Config) { c.DNS.Listen = nil }, []string{"dns.listen:", "at least one IP:port"}},
		{"listen without IP", func(c *Config) { c.DNS.Listen = []string{":53"} }, []string{"dns.listen[0]:", `":53"`, "0.0.0.0:53"}},
		{"listen twice", func(c *Config) { c.DNS.Listen = []string{"10.0.0.1:53", "10.0.0.1:53"} }, []string{"dns.listen[1]:", "twice"}},
		{"listen on the admin address", func(c *Config) { c.DNS.Listen = []string{c.Admin} }, []string{"dns.listen[0]:", "admin address"}},
		{"listen multicast", func(c *Config) { c.DNS.Listen = []string{"224.0.0.251:5353"} }, []string{"dns.listen[0]:", "multicast"}},
		{"IPv6 listen is fine", func(c *Config) { c.DNS.Listen = []string{"[::]:53"} }, nil},
		{"upstream by name", func(c *Config) { c.DNS.Upstreams = []string{"dns.google"} }, []string{"dns.upstreams[0]:", `"dns.google"`, "not an IP address", "tls://IP"}},
		{"upstream scheme", func(c *Config) { c.DNS.Upstreams = []string{"9.9.9.9", "https://dns.quad9.net/dns-query"} },
			[]string{"dns.upstreams[1]:", `unknown scheme "https"`, "tls://IP"}},
		{"tls upstream with a bad name", func(c *Config) { c.DNS.Upstreams = []string{"tls://9.9.9.9#bad_name"} }, []string{"dns.upstreams[0]:", "server name"}},
		{"upstream with a #name but no tls", func(c *Config) { c.DNS.Upstreams = []string{"9.9.9.9#dns.quad9.net"} }, []string{"dns.upstreams[0]:", "only for tls://"}},
		{"upstream port 0", func(c *Config) { c.DNS.Upstreams = []string{"9.9.9.9:0"} }, []string{"dns.upstreams[0]:", "port 0"}},
		{"upstream 0.0.0.0", func(c *Config) { c.DNS.Upstreams = []string{"0.0.0.0"} }, []string{"dns.upstreams[0]:", "not a unicast address"}},
		{"upstream empty", func(c *Config) { c.DNS.Upstreams = []string{""} }, []string{"dns.upstreams[0]:", "empty"}},
		{"upstream is ourselves", func(c *Config) { c.DNS.Upstreams = []string{"127.0.0.1:5353"} }, []string{"dns.upstreams[0]:", "forward queries to itself"}},
		{"upstream is ourselves over TCP", func(c *Config) { c.DNS.Upstreams = []string{"tcp://127.0.0.1:5353"} }, []string{"dns.upstreams[0]:", "itself"}},
		{"upstream is ourselves on a wildcard", func(c *Config) {
			c.DNS.Listen = []string{"0.0.0.0:53"}
			c.DNS.Upstreams = []string{"127.0.0.1"}
		}, []string{"dns.upstreams[0]:", "itself"}},
		{"upstream with credentials hides them", func(c *Config) { c.DNS.Upstreams = []string{"tls://alice:s3cret@9.9.9.9#dns.quad9.net"} },
			[]string{"dns.upstreams[0]:", "REDACTED@9.9.9.9", "not supported"}},
		{"all upstream forms", func(c *Config) {
			c.DNS.Upstreams = []string{"192.0.2.1", "192.0.2.1:53", "2001:db8::1", "[2001:db8::1]:5353", "tcp://192.0.2.2",
				"tls://192.0.2.1#dns.example", "tls://[2001:db8::1]:853#dns.example.", "tls://9.9.9.9", "127.0.0.53"}
		}, nil},
		{"timeout 0", func(c *Config) { c.DNS.Timeout = 0 }, []string{"dns.timeout:", "above 0"}},
		{"timeout huge", func(c *Config) { c.DNS.Timeout = Duration(time.Hour) }, []string{"dns.timeout:", "at most 30s"}},
		{"max_in_flight 0", func(c *Config) { c.DNS.MaxInFlight = 0 }, []string{"dns.max_in_flight:", "whole number from 1"}},
		{"max_in_flight huge", func(c *Config) { c.DNS.MaxInFlight = 1 << 40 }, []string{"dns.max_in_flight:"}},
		{"negative rate_limit", func(c *Config) { c.DNS.RateLimit = -1 }, []string{"dns.rate_limit:", "0 for no limit"}},
		{"rate_limit off", func(c *Config) { c.DNS.RateLimit = 0 }, nil},
		{"cache max_entries 0", func(c *Config) { c.DNS.Cache.MaxEntries = 0 }, []string{"dns.cache.max_entries:"}},
		{"cache max_entries huge", func(c *Config) { c.DNS.Cache.MaxEntries = 1e9 }, []string{"dns.cache.max_entries:", "10000000"}},
		{"cache max_ttl 0", func(c *Config) { c.DNS.Cache.MaxTTL = 0 }, []string{"dns.cache.max_ttl:", "above 0"}},
		{"cache negative_ttl negative", func(c *Config) { c.DNS.Cache.NegativeTTL = Duration(-time.Second) }, []string{"dns.cache.negative_ttl:"}},
		{"cache stale_for negative", func(c *Config) { c.DNS.Cache.StaleFor = Duration(-time.Second) }, []string{"dns.cache.stale_for:", "0 for never"}},
		{"cache stale_for 0", func(c *Config) { c.DNS.Cache.StaleFor = 0 }, nil},
		{"block_answer unknown", func(c *Config) { c.DNS.BlockAnswer = "refused" }, []string{"dns.block_answer:", `"refused"`, "nxdomain, null, blockpage"}},
		{"block_answer upper case", func(c *Config) { c.DNS.BlockAnswer = "NXDOMAIN" }, []string{"dns.block_answer:"}},
		{"block_answer null", func(c *Config) { c.DNS.BlockAnswer = "null" }, nil},
		{"blockpage without an address", func(c *Config) { c.DNS.BlockAnswer = "blockpage" }, []string{"dns.block_page_ipv4:", "blockpage is used"}},
		{"blockpage for a group without an address", func(c *Config) { c.DNS.GroupBlockAnswer = map[string]string{"ks2": "blockpage"} },
			[]string{"dns.block_page_ipv4:", "blockpage is used"}},
		{"blockpage with an IPv4 address", func(c *Config) {
			c.DNS.BlockAnswer = "blockpage"
			c.DNS.BlockPageIPv4 = "10.0.0.80"
		}, nil},
		{"blockpage with both addresses", func(c *Config) {
			c.DNS.GroupBlockAnswer = map[string]string{"staff": "blockpage"}
			c.DNS.BlockPageIPv4 = "10.0.0.80"
			c.DNS.BlockPageIPv6 = "2001:db8::80"
		}, nil},
		{"block page IPv4 not IPv4", func(c *Config) { c.DNS.BlockPageIPv4 = "2001:db8::80" }, []string{"dns.block_page_ipv4:", "want an IPv4 address"}},
		{"block page IPv4 with a port", func(c *Config) { c.DNS.BlockPageIPv4 = "10.0.0.80:80" }, []string{"dns.block_page_ipv4:"}},
		{"block page IPv4 unspecified", func(c *Config) { c.DNS.BlockPageIPv4 = "0.0.0.0" }, []string{"dns.block_page_ipv4:"}},
		{"block page IPv6 not IPv6", func(c *Config) { c.DNS.BlockPageIPv6 = "10.0.0.80" }, []string{"dns.block_page_ipv6:", "want an IPv6 address"}},
		{"block page IPv6 mapped IPv4", func(c *Config) { c.DNS.BlockPageIPv6 = "::ffff:10.0.0.80" }, []string{"dns.block_page_ipv6:"}},
		{"group answer unknown", func(c *Config) { c.DNS.GroupBlockAnswer = map[string]string{"ks2": "sinkhole"} },
			[]string{"dns.group_block_answer.ks2:", `"sinkhole"`, "nxdomain, null, blockpage"}},
		{"group name malformed", func(c *Config) { c.DNS.GroupBlockAnswer = map[string]string{"Year 7": "null"} },
			[]string{"dns.group_block_answer.Year 7:", "lower-case"}},
		{"group name reserved", func(c *Config) { c.DNS.GroupBlockAnswer = map[string]string{"school": "null"} },
			[]string{"dns.group_block_answer.school:", "reserved"}},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, []string{"log.level:", `"verbose"`, "debug, info, warn, error"}},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, []string{"log.format:", `"xml"`, "text, json"}},
		{"every error at once", func(c *Config) {
			c.Admin = "x"
			c.DNS.Timeout = 0
			c.DNS.BlockAnswer = "x"
			c.Log.Format = "x"
		}, []string{"admin:", "dns.timeout:", "dns.block_answer:", "log.format:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.change(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("valid, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "alice") {
				t.Errorf("error %q shows credentials", err)
			}
		})
	}
	// errors.Join: one error per problem, one per line.
	c := DefaultConfig()
	c.Admin, c.Log.Level, c.Log.Format = "", "", ""
	if n := len(c.Validate().(interface{ Unwrap() []error }).Unwrap()); n != 3 {
		t.Errorf("%d errors for 3 problems", n)
	}
}

func TestConfigRedacted(t *testing.T) {
	c := DefaultConfig()
	c.DNS.Upstreams = []string{"9.9.9.9", "tls://alice:s3cret@9.9.9.9#dns.quad9.net", "https://bob:pw@doh.example/dns-query",
		"carol:pw@192.0.2.1", "tls://a@b:c@192.0.2.1#x"}
	c.DNS.GroupBlockAnswer = map[string]string{"ks2": "null"}
	r := c.Redacted()
	want := []string{"9.9.9.9", "tls://REDACTED@9.9.9.9#dns.quad9.net", "https://REDACTED@doh.example/dns-query",
		"REDACTED@192.0.2.1", "tls://REDACTED@192.0.2.1#x"}
	if !slices.Equal(r.DNS.Upstreams, want) {
		t.Errorf("redacted upstreams %q, want %q", r.DNS.Upstreams, want)
	}
	// A deep copy: changing it leaves the original alone.
	r.DNS.Listen[0] = "changed"
	r.DNS.GroupBlockAnswer["ks2"] = "changed"
	if c.DNS.Listen[0] == "changed" || c.DNS.GroupBlockAnswer["ks2"] == "changed" {
		t.Error("Redacted shares slices or maps with the original")
	}
	if DefaultConfig().Redacted().DNS.GroupBlockAnswer != nil {
		t.Error("nil map became non-nil")
	}
	// Logging a Config logs the redacted copy.
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("effective configuration", "config", c)
	out := buf.String()
	for _, secret := range []string{"alice", "s3cret", "bob", "carol", "pw@"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line shows %q: %s", secret, out)
		}
	}
	for _, want := range []string{"config.dns.upstreams=", "REDACTED@9.9.9.9", "config.dns.timeout=1.8s", "ks2=null"} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %q: %s", want, out)
		}
	}
}

func TestConfigNewLogger(t *testing.T) {
	var buf bytes.Buffer
	l := LogConfig{Level: "warn", Format: "json"}.NewLogger(&buf)
	l.Info("hidden")
	l.Warn("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"msg":"shown"`) {
		t.Errorf("output %q", out)
	}
}

func FuzzLoadConfig(f *testing.F) {
	if data, err := os.ReadFile(exampleConfig); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"", "dns:\n  timeout: 2\n", "dns: {listen: [\"[::]:53\"], upstreams: [\"tls://9.9.9.9#dns.quad9.net\"]}\n",
		"a: &x [*x]\n", "dns:\n  group_block_answer: {ks2: blockpage}\n  block_page_ipv4: 10.0.0.1\n",
		"log: [1, {a: b}]\n", "? [a]\n: b\n", "dns:\n  cache:\n    max_ttl: !!binary aGVsbG8=\n",
		"<<: {data: x}\n", "dns:\n  timeout: 1s\n---\n",
	} {
		f.Add([]byte(s))
	}
	// One file per fuzzing process, rewritten each time: a directory per
	// input would cost more than the input.
	p := filepath.Join(f.TempDir(), "c.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(p)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		_ = c.Validate()
		_ = c.Redacted()
		slog.New(slog.DiscardHandler).Info("x", "config", c)
	})
}
