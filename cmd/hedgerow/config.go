package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"hedgerow/categories"
	"hedgerow/dnsfilter"
	"hedgerow/proxy"
)

// Config is hedgerow serve's configuration: defaults, then the YAML file, then flags.
//
// The documented example is deploy/hedgerow.yaml. LoadConfig does not
// validate: apply the flags first, then call Validate.
type Config struct {
	Data      string          `yaml:"data"`  // data directory (default: $HEDGEROW_DATA, else ./hedgerow-data)
	Admin     string          `yaml:"admin"` // listener for the admin UI and API, /metrics, health and the PAC file; default 127.0.0.1:9153
	AdminUI   AdminUIConfig   `yaml:"admin_ui"`
	Identity  IdentityConfig  `yaml:"identity"`
	Backup    BackupConfig    `yaml:"backup"`
	DNS       DNSConfig       `yaml:"dns"`
	Proxy     ProxyConfig     `yaml:"proxy"`
	Incidents IncidentsConfig `yaml:"incidents"`
	Alerts    AlertSettings   `yaml:"alerts"`
	Feeds     FeedsConfig     `yaml:"feeds"`
	Log       LogConfig       `yaml:"log"`
}

// FeedsConfig schedules the updates of imported feeds (hedgerow lists
// update runs them by hand).
type FeedsConfig struct {
	UpdateEvery Duration `yaml:"update_every"` // how often every feed is checked; default 24h; 0 = never (by hand only)
	UpdateAt    string   `yaml:"update_at"`    // local time (HH:MM) of the day's first check; default "02:30"
	MaxRemoval  float64  `yaml:"max_removal"`  // largest fraction of a feed one update may remove; default 0.5
	Timeout     Duration `yaml:"timeout"`      // longest one feed's update (download and parse) may take; default 10m
}

// BackupConfig schedules hot backups while serve runs.
type BackupConfig struct {
	Dir   string   `yaml:"dir"`   // directory for dated backups; "" turns scheduled backups off
	Every Duration `yaml:"every"` // how often; default 24h
	Keep  int      `yaml:"keep"`  // newest backups kept; default 14
}

// AdminUIConfig tunes the admin web UI and API.
type AdminUIConfig struct {
	Hosts       []string `yaml:"hosts"`        // host names staff use to reach the UI (besides localhost and IP addresses); others are refused
	SessionIdle Duration `yaml:"session_idle"` // log out after this long unused; default 30m
	SessionMax  Duration `yaml:"session_max"`  // log out after this long in any case; default 12h
	TLSCert     string   `yaml:"tls_cert"`     // PEM certificate and key: serve the admin listener over HTTPS (needed off loopback)
	TLSKey      string   `yaml:"tls_key"`
}

// IncidentsConfig tunes how blocked attempts become incidents.
type IncidentsConfig struct {
	FoldWindow      Duration `yaml:"fold_window"`      // repeats of a device at a site within this are one incident; default 10m
	PatternCount    int      `yaml:"pattern_count"`    // high/critical sites by one device or user that make a pattern; default 5
	PatternWindow   Duration `yaml:"pattern_window"`   // ... within this time; default 30m
	LowReviewCount  int      `yaml:"low_review_count"` // attempts at one low-severity site that send it to review; default 50
	QueueSize       int      `yaml:"queue_size"`       // attempts waiting for the writer; default 100000
	BatchInterval   Duration `yaml:"batch_interval"`   // longest wait for a commit (what a crash can lose); default 1s
	RetentionLow    Duration `yaml:"retention_low"`    // low-severity attempts and monitored searches are deleted after this; default 720h (30 days)
	Retention       Duration `yaml:"retention"`        // other incidents (not escalated ones) and block-page reports; default 8760h (365 days)
	PurgeEvery      Duration `yaml:"purge_every"`      // how often serve deletes what is past retention, then compacts; default 24h
	DigestEvery     Duration `yaml:"digest_every"`     // how often the digest is emailed to alerts.smtp's recipients; default 168h (weekly), 0 = never
	ContextWindow   Duration `yaml:"context_window"`   // for groups with context on: how far back the sites before an incident go; default 30m
	PatternRestrict Duration `yaml:"pattern_restrict"` // a pattern restricts its device to approved sites for this long; default 0 (off)
}

// ProxyConfig configures the HTTP(S) forward proxy.
type ProxyConfig struct {
	Listen            []string `yaml:"listen"`               // IP:port; default ["127.0.0.1:3128"]; [] turns the proxy off
	ConnectPorts      []int    `yaml:"connect_ports"`        // ports CONNECT may reach; default [443]
	AllowDest         []string `yaml:"allow_dest"`           // loopback/link-local CIDRs the proxy may connect to anyway (tests); never hedgerow's own ports
	MaxHeaderBytes    int      `yaml:"max_header_bytes"`     // request head limit; default 65536
	HeaderTimeout     Duration `yaml:"header_timeout"`       // time to send a request head; default 10s
	IdleTimeout       Duration `yaml:"idle_timeout"`         // idle keep-alive connections and tunnels close after this; default 2m
	MaxConnsPerClient int      `yaml:"max_conns_per_client"` // connections at once per device; default 256
	ForwardedFor      bool     `yaml:"forwarded_for"`        // add X-Forwarded-For; default false
	// Interception (per group, off by default) needs the school CA, made
	// with hedgerow ca init; hosts here are never decrypted.
	CACert                   string   `yaml:"ca_cert"` // default <data>/ca.crt
	CAKey                    string   `yaml:"ca_key"`  // default <data>/ca.key
	DoNotIntercept           []string `yaml:"do_not_intercept"`
	DoNotInterceptCategories []string `yaml:"do_not_intercept_categories"`
	UpstreamCA               string   `yaml:"upstream_ca"` // extra PEM roots trusted for origins (an intranet's CA)
	SchoolName               string   `yaml:"school_name"` // shown on the block page
	// The PAC file on the admin listener (/proxy.pac, /wpad.dat).
	PACProxy     string   `yaml:"pac_proxy"`      // host:port devices use to reach the proxy; default the first listen address
	PACDirect    []string `yaml:"pac_direct"`     // hosts and domains that go direct (the intranet)
	PACLocalNets []string `yaml:"pac_local_nets"` // CIDRs that go direct; default the private ranges
	// LDAP checks proxy logins against the school's directory instead of
	// hedgerow's own accounts (see ldapconfig.go).
	LDAP LDAPSettings `yaml:"ldap"`
}

// DNSConfig configures the DNS filter.
type DNSConfig struct {
	Listen      []string      `yaml:"listen"`        // IP:port, UDP and TCP; default ["127.0.0.1:5353"]
	Upstreams   []string      `yaml:"upstreams"`     // dnsfilter.ParseUpstream's forms; empty: the resolvers in /etc/resolv.conf
	Timeout     Duration      `yaml:"timeout"`       // how long a client waits before SERVFAIL, default 1.8s
	MaxInFlight int           `yaml:"max_in_flight"` // queries handled at once, default 1024
	RateLimit   int           `yaml:"rate_limit"`    // responses per second per client address, 0 = off (no limiter at all); default 200
	Cache       CacheSettings `yaml:"cache"`
	// BlockAnswer is how blocked names are answered: BlockNXDomain (the
	// default), BlockNull (0.0.0.0 and ::) or BlockPage (the block page's
	// addresses).
	BlockAnswer   string `yaml:"block_answer"`
	BlockPageIPv4 string `yaml:"block_page_ipv4"` // required when blockpage is used anywhere
	BlockPageIPv6 string `yaml:"block_page_ipv6"` // optional: without it AAAA queries for blocked names get no answer
	// GroupBlockAnswer overrides BlockAnswer for some groups (group name to
	// answer). Group names are checked for their form only: whether the
	// group exists is known to the database, not to the config.
	GroupBlockAnswer map[string]string `yaml:"group_block_answer"`
}

// CacheSettings bound the DNS answer cache.
type CacheSettings struct {
	MaxEntries  int      `yaml:"max_entries"`  // answers kept, default 100000
	MaxTTL      Duration `yaml:"max_ttl"`      // longest an answer is kept, whatever its TTL; default 24h
	NegativeTTL Duration `yaml:"negative_ttl"` // longest a "no such name" answer is kept; default 1h
	StaleFor    Duration `yaml:"stale_for"`    // how long an expired answer may still be served while the upstreams fail, 0 = never; default 24h
	// Note for dnsfilter.CacheConfig, where 0 means "the default": stale_for
	// 0 (never) is StaleFor < 0 there.
}

// LogConfig chooses the service's log output.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn or error
	Format string `yaml:"format"` // text (default) or json
}

// The values of block_answer and group_block_answer.
const (
	BlockNXDomain = "nxdomain"  // NXDOMAIN with an SOA for negative caching
	BlockNull     = "null"      // 0.0.0.0 for A, :: for AAAA
	BlockPage     = "blockpage" // the block page's address (block_page_ipv4/ipv6)
)

var (
	blockAnswers = []string{BlockNXDomain, BlockNull, BlockPage}
	logLevels    = []string{"debug", "info", "warn", "error"}
	logFormats   = []string{"text", "json"}
)

// Sanity bounds that catch typos (an extra zero or two) before they cost
// the server its memory.
const (
	maxTimeout     = 30 * time.Second
	maxMaxInFlight = 1_000_000
	maxCacheSize   = 10_000_000
	maxConfigBytes = 1 << 20
)

// DefaultConfig returns the defaults: a working filter on unprivileged
// loopback ports, forwarding to the resolvers in /etc/resolv.conf.
func DefaultConfig() Config {
	return Config{
		Data:  defaultDataDir(),
		Admin: "127.0.0.1:9153",
		DNS: DNSConfig{
			Listen:      []string{"127.0.0.1:5353"},
			Timeout:     Duration(1800 * time.Millisecond),
			MaxInFlight: 1024,
			RateLimit:   200,
			Cache: CacheSettings{
				MaxEntries:  100_000,
				MaxTTL:      Duration(24 * time.Hour),
				NegativeTTL: Duration(time.Hour),
				StaleFor:    Duration(24 * time.Hour),
			},
			BlockAnswer: BlockNXDomain,
		},
		Proxy: ProxyConfig{
			Listen:                   []string{"127.0.0.1:3128"},
			ConnectPorts:             []int{443},
			MaxHeaderBytes:           64 << 10,
			HeaderTimeout:            Duration(10 * time.Second),
			IdleTimeout:              Duration(2 * time.Minute),
			MaxConnsPerClient:        256,
			DoNotIntercept:           proxy.DefaultConfig().DoNotIntercept,
			DoNotInterceptCategories: proxy.DefaultConfig().DoNotInterceptCategories,
			PACLocalNets:             []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"},
			LDAP:                     defaultLDAPSettings(),
		},
		Incidents: IncidentsConfig{FoldWindow: Duration(10 * time.Minute), PatternCount: 5, PatternWindow: Duration(30 * time.Minute),
			LowReviewCount: 50, QueueSize: 100_000, BatchInterval: Duration(time.Second),
			RetentionLow: Duration(30 * 24 * time.Hour), Retention: Duration(365 * 24 * time.Hour), PurgeEvery: Duration(24 * time.Hour),
			DigestEvery: Duration(7 * 24 * time.Hour), ContextWindow: Duration(30 * time.Minute)},
		AdminUI: AdminUIConfig{SessionIdle: Duration(30 * time.Minute), SessionMax: Duration(12 * time.Hour)},
		Backup:  BackupConfig{Every: Duration(24 * time.Hour), Keep: 14},
		Feeds:   FeedsConfig{UpdateEvery: Duration(24 * time.Hour), UpdateAt: "02:30", MaxRemoval: 0.5, Timeout: Duration(10 * time.Minute)},
		Log:     LogConfig{Level: "info", Format: "text"},
	}
}

// Duration is a time.Duration written in YAML as "1.8s", "500ms", "24h".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d the way UnmarshalYAML reads it.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration with a unit. A bare number other than 0
// is an error: "timeout: 2" could mean seconds or milliseconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	// The message has the decoder's own form, so that LoadConfig can add
	// the key and the form expected.
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal %s into a duration", n.Line, n.ShortTag())}}
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return &yaml.TypeError{Errors: []string{
			fmt.Sprintf("line %d: cannot unmarshal %s %s into a duration", n.Line, n.ShortTag(), yamlShort(n.Value))}}
	}
	*d = Duration(v)
	return nil
}

// LoadConfig reads a YAML file over the defaults. Unknown keys are errors
// naming the key and its line number; so are wrong types and keys given
// twice. An empty file (or one holding only comments) is the defaults.
// The result is not validated: apply flags, then call Validate.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	f, err := os.Open(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return cfg, fmt.Errorf("config %s: larger than %d bytes; is this the right file?", path, maxConfigBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err = dec.Decode(&cfg)
	switch {
	case errors.Is(err, io.EOF):
		return DefaultConfig(), nil // empty, or only comments
	case err != nil:
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return cfg, explainTypeErrors(path, data, te)
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if bytes.HasPrefix(data, []byte("\t")) || bytes.Contains(data, []byte("\n\t")) {
			msg += " (indent with spaces: YAML does not allow tabs)"
		}
		return cfg, fmt.Errorf("config %s: %s", path, msg)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config %s: more than one YAML document (a line of ---); want one", path)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		nullAnswers(&root, &cfg)
	}
	return cfg, nil
}

// nullAnswers restores the block answer "null", which YAML reads as no
// value at all: "block_answer: null" would otherwise quietly keep the
// default, and "staff: null" would become "".
func nullAnswers(root *yaml.Node, cfg *Config) {
	isNull := func(n *yaml.Node) bool {
		return n.Kind == yaml.ScalarNode && n.Style == 0 && n.ShortTag() == "!!null" && strings.EqualFold(n.Value, BlockNull)
	}
	get := func(m *yaml.Node, key string) *yaml.Node {
		if m == nil || m.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i+1]
			}
		}
		return nil
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return
	}
	dns := get(root.Content[0], "dns")
	if v := get(dns, "block_answer"); v != nil && isNull(v) {
		cfg.DNS.BlockAnswer = BlockNull
	}
	if g := get(dns, "group_block_answer"); g != nil && g.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(g.Content); i += 2 {
			if isNull(g.Content[i+1]) && cfg.DNS.GroupBlockAnswer != nil {
				cfg.DNS.GroupBlockAnswer[g.Content[i].Value] = BlockNull
			}
		}
	}
}

// Validate returns every problem at once (errors.Join), each naming the key
// and the form expected.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if strings.TrimSpace(c.Data) == "" {
		bad("data", "empty; want the data directory, e.g. /var/lib/hedgerow")
	}
	if err := checkListenAddr(c.Admin, "127.0.0.1:9153"); err != nil {
		bad("admin", "%v", err)
	}
	ui := c.AdminUI
	if ui.SessionIdle <= 0 || ui.SessionMax < ui.SessionIdle {
		bad("admin_ui", "session_idle %s and session_max %s: want both above 0, session_max at least session_idle", ui.SessionIdle, ui.SessionMax)
	}
	if (ui.TLSCert == "") != (ui.TLSKey == "") {
		bad("admin_ui.tls_cert", "give both tls_cert and tls_key, or neither")
	}
	for i, h := range ui.Hosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			bad(fmt.Sprintf("admin_ui.hosts[%d]", i), "%q: want a host name such as filter.school.example, without port or scheme", h)
		}
	}

	d := c.DNS
	if len(d.Listen) == 0 {
		bad("dns.listen", "empty; want at least one IP:port, e.g. [0.0.0.0:53]")
	}
	listen := make(map[netip.AddrPort]bool)
	for i, l := range d.Listen {
		key := fmt.Sprintf("dns.listen[%d]", i)
		if err := checkListenAddr(l, "0.0.0.0:53, [::]:53 or 10.0.0.53:53 (an address of this server)"); err != nil {
			bad(key, "%v", err)
			continue
		}
		ap := netip.MustParseAddrPort(l)
		if listen[ap] {
			bad(key, "%s is listed twice", l)
		}
		listen[ap] = true
		if admin, err := netip.ParseAddrPort(c.Admin); err == nil && admin == ap {
			bad(key, "%s is also the admin address; they need different ports", l)
		}
	}
	for i, u := range d.Upstreams {
		key := fmt.Sprintf("dns.upstreams[%d]", i)
		if strings.Contains(u, "@") {
			// Checked first: the parser's errors repeat their input.
			bad(key, "%s: user names and passwords (user@) are not supported; want IP, IP:port or tls://IP[:port]#name", quoteShort(redactString(u)))
			continue
		}
		up, err := dnsfilter.ParseUpstream(u)
		if err != nil {
			bad(key, "%s", strings.TrimPrefix(err.Error(), "dnsfilter: "))
			continue
		}
		if up.Proto != "tls" && forwardsToSelf(netip.MustParseAddrPort(up.Addr), listen) {
			bad(key, "%s is hedgerow's own listen address: it would forward queries to itself", quoteShort(u))
		}
	}
	if d.Timeout <= 0 || d.Timeout.D() > maxTimeout {
		bad("dns.timeout", "%s; want a duration above 0 and at most %s, e.g. 1.8s", d.Timeout, maxTimeout)
	}
	if d.MaxInFlight <= 0 || d.MaxInFlight > maxMaxInFlight {
		bad("dns.max_in_flight", "%d; want a whole number from 1 to %d, e.g. 1024", d.MaxInFlight, maxMaxInFlight)
	}
	if d.RateLimit < 0 {
		bad("dns.rate_limit", "%d; want responses per second per client, 0 for no limit, e.g. 200", d.RateLimit)
	}
	cs := d.Cache
	if cs.MaxEntries <= 0 || cs.MaxEntries > maxCacheSize {
		bad("dns.cache.max_entries", "%d; want a whole number from 1 to %d, e.g. 100000", cs.MaxEntries, maxCacheSize)
	}
	if cs.MaxTTL <= 0 {
		bad("dns.cache.max_ttl", "%s; want a duration above 0, e.g. 24h", cs.MaxTTL)
	}
	if cs.NegativeTTL <= 0 {
		bad("dns.cache.negative_ttl", "%s; want a duration above 0, e.g. 1h", cs.NegativeTTL)
	}
	if cs.StaleFor < 0 {
		bad("dns.cache.stale_for", "%s; want a duration, 0 for never, e.g. 24h", cs.StaleFor)
	}

	if !slices.Contains(blockAnswers, d.BlockAnswer) {
		bad("dns.block_answer", "%q; want one of %s", d.BlockAnswer, strings.Join(blockAnswers, ", "))
	}
	usesPage := d.BlockAnswer == BlockPage
	groups := make([]string, 0, len(d.GroupBlockAnswer))
	for g := range d.GroupBlockAnswer {
		groups = append(groups, g)
	}
	slices.Sort(groups) // errors in a stable order
	for _, g := range groups {
		a := d.GroupBlockAnswer[g]
		key := "dns.group_block_answer." + g
		if err := categories.ValidGroupName(g); err != nil {
			bad(key, "%v", err)
		}
		if !slices.Contains(blockAnswers, a) {
			bad(key, "%q; want one of %s", a, strings.Join(blockAnswers, ", "))
		}
		usesPage = usesPage || a == BlockPage
	}
	if d.BlockPageIPv4 == "" {
		if usesPage {
			bad("dns.block_page_ipv4", "empty, but blockpage is used; want the block page server's IPv4 address, e.g. 10.0.0.80")
		}
	} else if ip, err := netip.ParseAddr(d.BlockPageIPv4); err != nil || !ip.Is4() || ip.IsUnspecified() {
		bad("dns.block_page_ipv4", "%s; want an IPv4 address, e.g. 10.0.0.80", quoteShort(d.BlockPageIPv4))
	}
	if d.BlockPageIPv6 != "" {
		if ip, err := netip.ParseAddr(d.BlockPageIPv6); err != nil || !ip.Is6() || ip.Is4In6() || ip.IsUnspecified() || ip.Zone() != "" {
			bad("dns.block_page_ipv6", "%s; want an IPv6 address, e.g. 2001:db8::80", quoteShort(d.BlockPageIPv6))
		}
	}

	errs = append(errs, c.Proxy.validate(c)...)
	errs = append(errs, c.Identity.validate()...)
	if b := c.Backup; b.Dir != "" && (b.Every.D() < time.Minute || b.Keep < 1) {
		bad("backup", "every %s and keep %d: want every at least 1m (e.g. 24h) and keep at least 1 (e.g. 14)", b.Every, b.Keep)
	}
	if _, err := c.Alerts.AlertConfig(); err != nil {
		errs = append(errs, err)
	}
	inc := c.Incidents
	if inc.FoldWindow <= 0 || inc.FoldWindow.D() > 24*time.Hour {
		bad("incidents.fold_window", "%s; want a duration above 0 and at most 24h, e.g. 10m", inc.FoldWindow)
	}
	if inc.PatternCount < 2 {
		bad("incidents.pattern_count", "%d; want 2 or more, e.g. 5", inc.PatternCount)
	}
	if inc.PatternWindow <= 0 {
		bad("incidents.pattern_window", "%s; want a duration above 0, e.g. 30m", inc.PatternWindow)
	}
	if inc.ContextWindow <= 0 || inc.ContextWindow.D() > 2*time.Hour {
		bad("incidents.context_window", "%s; want a duration above 0 and at most 2h, e.g. 30m", inc.ContextWindow)
	}
	if inc.PatternRestrict < 0 || inc.PatternRestrict.D() > 7*24*time.Hour {
		bad("incidents.pattern_restrict", "%s; want 0 (off) or a duration up to 168h, e.g. 2h", inc.PatternRestrict)
	}
	if inc.LowReviewCount < 1 {
		bad("incidents.low_review_count", "%d; want 1 or more, e.g. 50", inc.LowReviewCount)
	}
	if inc.QueueSize < 100 || inc.QueueSize > 10_000_000 {
		bad("incidents.queue_size", "%d; want 100 to 10000000, e.g. 100000", inc.QueueSize)
	}
	if inc.RetentionLow.D() < 24*time.Hour {
		bad("incidents.retention_low", "%s; want at least 24h, e.g. 720h (30 days)", inc.RetentionLow)
	}
	if inc.Retention.D() < 24*time.Hour {
		bad("incidents.retention", "%s; want at least 24h, e.g. 8760h (365 days)", inc.Retention)
	}
	if inc.PurgeEvery.D() < time.Minute {
		bad("incidents.purge_every", "%s; want at least 1m, e.g. 24h", inc.PurgeEvery)
	}
	if inc.DigestEvery < 0 || (inc.DigestEvery > 0 && inc.DigestEvery.D() < time.Hour) {
		bad("incidents.digest_every", "%s; want 0 (never) or at least 1h, e.g. 168h (weekly)", inc.DigestEvery)
	}
	if inc.BatchInterval <= 0 || inc.BatchInterval.D() > time.Minute {
		bad("incidents.batch_interval", "%s; want a duration above 0 and at most 1m, e.g. 1s", inc.BatchInterval)
	}

	errs = append(errs, c.Feeds.validate()...)

	if !slices.Contains(logLevels, c.Log.Level) {
		bad("log.level", "%q; want one of %s", c.Log.Level, strings.Join(logLevels, ", "))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		bad("log.format", "%q; want one of %s", c.Log.Format, strings.Join(logFormats, ", "))
	}
	return errors.Join(errs...)
}

// validate checks the feeds section; errors name the key.
func (f FeedsConfig) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("feeds.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	// List providers ask for no more than a few downloads a day; an hour
	// also keeps a typo ("24m" for "24h") from hammering them.
	if f.UpdateEvery < 0 || (f.UpdateEvery > 0 && f.UpdateEvery.D() < time.Hour) {
		bad("update_every", "%s; want 0 (by hand only) or at least 1h, e.g. 24h", f.UpdateEvery)
	}
	if _, _, err := f.at(); err != nil {
		bad("update_at", "%v", err)
	}
	if !(f.MaxRemoval > 0 && f.MaxRemoval <= 1) {
		bad("max_removal", "%v; want a fraction above 0 and at most 1, e.g. 0.5 (1 turns the check off)", f.MaxRemoval)
	}
	if f.Timeout.D() < 10*time.Second || f.Timeout.D() > 24*time.Hour {
		bad("timeout", "%s; want from 10s to 24h, e.g. 10m", f.Timeout)
	}
	return errs
}

// at parses update_at.
func (f FeedsConfig) at() (hour, minute int, err error) {
	h, m, ok := strings.Cut(f.UpdateAt, ":")
	hour, herr := strconv.Atoi(h)
	minute, merr := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || herr != nil || merr != nil || hour < 0 || hour > 23 || minute < 0 || minute > 59 {
		return 0, 0, fmt.Errorf("%s; want a local time HH:MM from 00:00 to 23:59, e.g. \"02:30\"", quoteShort(f.UpdateAt))
	}
	return hour, minute, nil
}

// validate checks the proxy section; errors name the key.
func (p ProxyConfig) validate(c Config) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("proxy.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	taken := map[netip.AddrPort]string{}
	if ap, err := netip.ParseAddrPort(c.Admin); err == nil {
		taken[ap] = "the admin address"
	}
	for _, l := range c.DNS.Listen {
		if ap, err := netip.ParseAddrPort(l); err == nil {
			taken[ap] = "a DNS listen address" // DNS uses TCP too
		}
	}
	for i, l := range p.Listen {
		key := fmt.Sprintf("listen[%d]", i)
		if err := checkListenAddr(l, "0.0.0.0:3128 or 10.0.0.3:3128 (an address of this server)"); err != nil {
			bad(key, "%v", err)
			continue
		}
		ap := netip.MustParseAddrPort(l)
		if what, ok := taken[ap]; ok {
			bad(key, "%s is also %s; they need different ports", l, what)
		}
		taken[ap] = "another proxy listen address"
	}
	for i, port := range p.ConnectPorts {
		if port < 1 || port > 65535 {
			bad(fmt.Sprintf("connect_ports[%d]", i), "%d; want a port from 1 to 65535, e.g. 443", port)
		}
	}
	for i, cidr := range p.AllowDest {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			bad(fmt.Sprintf("allow_dest[%d]", i), "%s; want a CIDR, e.g. 127.0.0.0/8", quoteShort(cidr))
		}
	}
	for i, cidr := range p.PACLocalNets {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			bad(fmt.Sprintf("pac_local_nets[%d]", i), "%s; want a CIDR, e.g. 10.0.0.0/8", quoteShort(cidr))
		}
	}
	for key, list := range map[string][]string{"do_not_intercept": p.DoNotIntercept, "pac_direct": p.PACDirect} {
		for i, d := range list {
			if n, err := categories.NormalizeHost(d); err != nil || n != d {
				bad(fmt.Sprintf("%s[%d]", key, i), "%s; want a lower-case host or domain name, e.g. intranet.school.example", quoteShort(d))
			}
		}
	}
	if _, err := categories.Builtin().MaskOf(p.DoNotInterceptCategories...); err != nil {
		bad("do_not_intercept_categories", "%v", err)
	}
	if p.MaxHeaderBytes < 4096 || p.MaxHeaderBytes > 1<<20 {
		bad("max_header_bytes", "%d; want 4096 to 1048576, e.g. 65536", p.MaxHeaderBytes)
	}
	if p.HeaderTimeout <= 0 || p.HeaderTimeout.D() > 5*time.Minute {
		bad("header_timeout", "%s; want a duration above 0 and at most 5m, e.g. 10s", p.HeaderTimeout)
	}
	if p.IdleTimeout <= 0 {
		bad("idle_timeout", "%s; want a duration above 0, e.g. 2m", p.IdleTimeout)
	}
	if p.MaxConnsPerClient <= 0 {
		bad("max_conns_per_client", "%d; want a whole number above 0, e.g. 256", p.MaxConnsPerClient)
	}
	if p.PACProxy != "" {
		if _, port, err := net.SplitHostPort(p.PACProxy); err != nil || port == "" {
			bad("pac_proxy", "%s; want host:port as devices reach the proxy, e.g. proxy.school.example:3128", quoteShort(p.PACProxy))
		}
	}
	errs = append(errs, p.LDAP.validate()...)
	return errs
}

// Redacted returns a deep copy safe to log: the user information of any
// upstream (user:password@) is replaced by "REDACTED". Config.LogValue logs
// this copy, so slog never sees the original.
func (c Config) Redacted() Config {
	r := c
	if r.Alerts.Webhook.Secret != "" {
		r.Alerts.Webhook.Secret = "REDACTED"
	}
	if r.Alerts.SMTP.Password != "" {
		r.Alerts.SMTP.Password = "REDACTED"
	}
	if r.Identity.RADIUS.Secret != "" {
		r.Identity.RADIUS.Secret = "REDACTED"
	}
	if r.Proxy.LDAP.BindPassword != "" {
		r.Proxy.LDAP.BindPassword = "REDACTED"
	}
	r.Proxy.LDAP.GroupMap = slices.Clone(c.Proxy.LDAP.GroupMap)
	r.DNS.Listen = slices.Clone(c.DNS.Listen)
	r.DNS.Upstreams = nil
	for _, u := range c.DNS.Upstreams {
		r.DNS.Upstreams = append(r.DNS.Upstreams, redactString(u))
	}
	if c.DNS.GroupBlockAnswer != nil {
		r.DNS.GroupBlockAnswer = make(map[string]string, len(c.DNS.GroupBlockAnswer))
		for g, a := range c.DNS.GroupBlockAnswer {
			r.DNS.GroupBlockAnswer[g] = a
		}
	}
	return r
}

// LogValue makes slog log the redacted configuration.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	d := r.DNS
	groups := make([]string, 0, len(d.GroupBlockAnswer))
	for g, a := range d.GroupBlockAnswer {
		groups = append(groups, g+"="+a)
	}
	slices.Sort(groups)
	return slog.GroupValue(
		slog.String("data", r.Data),
		slog.String("admin", r.Admin),
		slog.Group("dns",
			slog.String("listen", strings.Join(d.Listen, ",")),
			slog.String("upstreams", strings.Join(d.Upstreams, ",")),
			slog.String("timeout", d.Timeout.String()),
			slog.Int("max_in_flight", d.MaxInFlight),
			slog.Int("rate_limit", d.RateLimit),
			slog.Int("cache_max_entries", d.Cache.MaxEntries),
			slog.String("cache_max_ttl", d.Cache.MaxTTL.String()),
			slog.String("cache_negative_ttl", d.Cache.NegativeTTL.String()),
			slog.String("cache_stale_for", d.Cache.StaleFor.String()),
			slog.String("block_answer", d.BlockAnswer),
			slog.String("block_page_ipv4", d.BlockPageIPv4),
			slog.String("block_page_ipv6", d.BlockPageIPv6),
			slog.String("group_block_answer", strings.Join(groups, ",")),
		),
		slog.Group("proxy",
			slog.String("listen", strings.Join(c.Proxy.Listen, ",")),
			slog.Any("connect_ports", c.Proxy.ConnectPorts),
			slog.String("allow_dest", strings.Join(c.Proxy.AllowDest, ",")),
			slog.Int("max_header_bytes", c.Proxy.MaxHeaderBytes),
			slog.String("header_timeout", c.Proxy.HeaderTimeout.String()),
			slog.String("idle_timeout", c.Proxy.IdleTimeout.String()),
			slog.Int("max_conns_per_client", c.Proxy.MaxConnsPerClient),
			slog.Bool("forwarded_for", c.Proxy.ForwardedFor),
			slog.String("upstream_ca", c.Proxy.UpstreamCA),
			slog.String("pac_proxy", c.Proxy.PACProxy),
			slog.Attr{Key: "ldap", Value: r.Proxy.LDAP.logValue()},
		),
		slog.Group("feeds",
			slog.String("update_every", r.Feeds.UpdateEvery.String()),
			slog.String("update_at", r.Feeds.UpdateAt),
			slog.Float64("max_removal", r.Feeds.MaxRemoval),
			slog.String("timeout", r.Feeds.Timeout.String()),
		),
		slog.String("log_level", r.Log.Level),
		slog.String("log_format", r.Log.Format),
	)
}

// NewLogger returns the logger l describes, writing to w. Call it on a
// validated config; unknown values fall back to info and text.
func (l LogConfig) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// checkListenAddr checks an IP:port to listen on.
func checkListenAddr(s, example string) error {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return fmt.Errorf("%s; want IP:port, e.g. %s", quoteShort(s), example)
	}
	if ap.Port() == 0 {
		return fmt.Errorf("%s: port 0; want a fixed port, e.g. %s", quoteShort(s), example)
	}
	if ap.Addr().IsMulticast() {
		return fmt.Errorf("%s: a multicast address; want an address of this server", quoteShort(s))
	}
	return nil
}

// forwardsToSelf reports whether a plain upstream is one of our own listen
// addresses: exactly, or a loopback address on the port of a wildcard
// listener.
func forwardsToSelf(up netip.AddrPort, listen map[netip.AddrPort]bool) bool {
	for l := range listen {
		if l == up {
			return true
		}
		if l.Port() == up.Port() && l.Addr().IsUnspecified() && up.Addr().IsLoopback() {
			return true
		}
	}
	return false
}

// redactString hides the user information (everything up to the last '@'
// after any scheme) of an address or URL. It errs on the side of hiding:
// a malformed value is redacted as if the '@' began the host.
func redactString(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	start := 0
	if i := strings.Index(s, "://"); i >= 0 && i < at {
		start = i + 3
	}
	return s[:start] + "REDACTED" + s[at:]
}

// yamlShort quotes a value the way the YAML decoder's messages do, so that
// nodeIndex can find it again.
func yamlShort(v string) string {
	if len(v) > 10 {
		v = v[:7] + "..."
	}
	return "`" + v + "`"
}

// quoteShort quotes s for an error message, shortened if long.
func quoteShort(s string) string {
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return strconv.Quote(s)
}

// explainTypeErrors turns the YAML decoder's messages, which name a line and
// a Go type, into messages that also name the key ("dns.timeout") and the
// form expected, one error per problem.
func explainTypeErrors(path string, data []byte, te *yaml.TypeError) error {
	var root yaml.Node
	idx := &nodeIndex{keys: map[int][]pathNode{}, values: map[int][]pathNode{}}
	if yaml.Unmarshal(data, &root) == nil {
		idx.walk(&root, nil, 0)
	}
	var errs []error
	for _, msg := range te.Errors {
		errs = append(errs, fmt.Errorf("config %s: %s", path, idx.explain(msg)))
	}
	return errors.Join(errs...)
}

// pathNode is a node of the YAML tree and the key path leading to it.
type pathNode struct {
	path []string // "dns", "listen", "[0]"
	node *yaml.Node
}

func joinPath(p []string) string {
	var b strings.Builder
	for i, s := range p {
		if i > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// nodeIndex finds the keys and values on a line.
type nodeIndex struct {
	keys, values map[int][]pathNode
}

func (x *nodeIndex) walk(n *yaml.Node, path []string, depth int) {
	if depth > 64 {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			x.values[c.Line] = append(x.values[c.Line], pathNode{path, c})
			x.walk(c, path, depth+1)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := append(slices.Clip(path), k.Value)
			x.keys[k.Line] = append(x.keys[k.Line], pathNode{p, k})
			x.values[v.Line] = append(x.values[v.Line], pathNode{p, v})
			x.walk(v, p, depth+1)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := append(slices.Clip(path), "["+strconv.Itoa(i)+"]")
			x.values[c.Line] = append(x.values[c.Line], pathNode{p, c})
			x.walk(c, p, depth+1)
		}
	}
}

var (
	reLine       = regexp.MustCompile(`^line (\d+): (.*)$`)
	reNotFound   = regexp.MustCompile(`^field (.+) not found in type (\S+)$`)
	reAlreadySet = regexp.MustCompile(`^field (.+) already set in type \S+$`)
	reDupKey     = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	reUnmarshal  = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `(.*)`)? into (.+)$")
	typeHints    = map[string]string{
		"int":                 "a whole number",
		"string":              "a single value",
		"[]string":            "a list: [a, b] or one '- item' per line",
		"a duration":          "a duration: a number with a unit (ms, s, m or h), e.g. 1.8s, 500ms, 24h",
		"float64":             "a number, e.g. 0.5",
		"[]main.LDAPGroupMap": "a list: one '- directory_group: ..., group: ...' per entry",
	}
	tagWords = map[string]string{"!!str": "text", "!!int": "a number", "!!float": "a number", "!!bool": "true/false",
		"!!seq": "a list", "!!map": "a mapping", "!!null": "nothing", "!!binary": "binary data", "!!timestamp": "a date"}
	sectionsKnown = sectionKeys()
)

// sectionKeys maps each struct type of Config (as the decoder names it,
// "main.DNSConfig") to its YAML keys.
func sectionKeys() map[string][]string {
	out := map[string][]string{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		if t.Kind() != reflect.Struct || out[t.String()] != nil {
			return
		}
		var keys []string
		for f := range t.Fields() {
			if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
				keys = append(keys, name)
			}
			add(f.Type)
		}
		out[t.String()] = keys
	}
	add(reflect.TypeFor[Config]())
	return out
}

// explain rewrites one decoder message.
func (x *nodeIndex) explain(msg string) string {
	m := reLine.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	if f := reNotFound.FindStringSubmatch(rest); f != nil {
		key := x.keyPath(line, f[1])
		where := "at the top level"
		if i := strings.LastIndexByte(key, '.'); i >= 0 {
			where = "in " + key[:i]
		}
		hint := ""
		if keys := sectionsKnown[f[2]]; len(keys) > 0 {
			hint = " (known keys " + where + ": " + strings.Join(keys, ", ") + ")"
		}
		return fmt.Sprintf("line %d: unknown key %q%s", line, key, hint)
	}
	if f := reAlreadySet.FindStringSubmatch(rest); f != nil {
		return fmt.Sprintf("line %d: key %q is given twice", line, x.keyPath(line, f[1]))
	}
	if f := reDupKey.FindStringSubmatch(rest); f != nil {
		return fmt.Sprintf("line %d: key %q is given twice (first at line %s)", line, x.keyPath(line, f[1]), f[2])
	}
	if f := reUnmarshal.FindStringSubmatch(rest); f != nil {
		got := tagWords[f[1]]
		if got == "" {
			got = f[1]
		}
		if f[2] != "" {
			got += " `" + f[2] + "`"
		}
		want := typeHints[f[3]]
		switch {
		case strings.HasPrefix(f[3], "map["):
			want = "a mapping: one 'group: answer' per line"
		case strings.HasPrefix(f[3], "main."):
			want = "a mapping: indented 'key: value' lines"
		case want == "":
			want = f[3]
		}
		text := "got " + got + "; want " + want
		if key := x.valuePath(line, f[1], f[2]); key != "" {
			return fmt.Sprintf("line %d: %s: %s", line, key, text)
		}
		return fmt.Sprintf("line %d: %s", line, text)
	}
	return msg
}

// keyPath returns the full path of key name on line, or name if the line
// has no such key.
func (x *nodeIndex) keyPath(line int, name string) string {
	for _, k := range x.keys[line] {
		if k.path[len(k.path)-1] == name {
			return joinPath(k.path)
		}
	}
	return name
}

// valuePath returns the path of the value a "cannot unmarshal" message is
// about: the value on the line with that tag and (shortened) text, or the
// common part of the paths when that is not enough to tell them apart.
func (x *nodeIndex) valuePath(line int, tag, text string) string {
	cands := x.values[line]
	narrow := func(keep func(pathNode) bool) {
		var out []pathNode
		for _, c := range cands {
			if keep(c) {
				out = append(out, c)
			}
		}
		if len(out) > 0 {
			cands = out
		}
	}
	narrow(func(c pathNode) bool { return c.node.ShortTag() == tag })
	if text != "" {
		prefix := strings.TrimSuffix(text, "...")
		narrow(func(c pathNode) bool { return strings.HasPrefix(c.node.Value, prefix) })
	}
	if len(cands) == 0 {
		return ""
	}
	common := cands[0].path
	for _, c := range cands[1:] {
		n := 0
		for n < len(common) && n < len(c.path) && common[n] == c.path[n] {
			n++
		}
		common = common[:n]
	}
	return joinPath(common)
}
