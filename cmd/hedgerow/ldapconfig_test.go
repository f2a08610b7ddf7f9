package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hedgerow/categories"
	"hedgerow/proxy"
)

const ldapYAML = `proxy:
  ldap:
    url: ldaps://dc1.school.example
    ca_file: /etc/hedgerow/school-ca.pem
    bind_dn: cn=hedgerow,ou=Services,dc=school,dc=example
    bind_password: s3cret-bind
    base_dn: dc=school,dc=example
    group_map:
      - directory_group: cn=Staff,ou=Groups,dc=school,dc=example
        group: staff
      - directory_group: Sixth Form
        group: sixth-form
    default_group: ks2
    timeout: 3s
`

func TestConfigLDAPLoad(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, ldapYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("does not validate: %v", err)
	}
	l := c.Proxy.LDAP
	if !l.enabled() || l.URL != "ldaps://dc1.school.example" || l.BindPassword != "s3cret-bind" || l.DefaultGroup != "ks2" ||
		l.Timeout.D() != 3*time.Second || len(l.GroupMap) != 2 || l.GroupMap[1] != (LDAPGroupMap{"Sixth Form", "sixth-form"}) {
		t.Errorf("loaded %+v", l)
	}
	// Keys left out keep their defaults.
	if l.UserFilter != proxy.DefaultUserFilter || l.GroupAttribute != "memberOf" {
		t.Errorf("defaults lost: %+v", l)
	}
	d := l.directoryConfig(nil)
	if d.GroupMap[0].Group != "staff" || d.Timeout != 3*time.Second || d.CAFile != l.CAFile {
		t.Errorf("directoryConfig: %+v", d)
	}
	if DefaultConfig().Proxy.LDAP.enabled() {
		t.Error("LDAP is on by default")
	}
}

func TestConfigLDAPLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "proxy:\n  ldap:\n    bind_pw: x\n", []string{"line 3", `unknown key "proxy.ldap.bind_pw"`, "bind_password"}},
		{"group_map as a mapping", "proxy:\n  ldap:\n    timeout: 5s\n    group_map: {Staff: staff}\n", []string{"line 4", "proxy.ldap.group_map", "directory_group"}},
		{"timeout without unit", "proxy:\n  ldap:\n    timeout: 5\n", []string{"line 3", "proxy.ldap.timeout", "a duration"}},
		{"unknown group_map key", "proxy:\n  ldap:\n    group_map:\n      - {cn: Staff, group: staff}\n", []string{"line 4", `"proxy.ldap.group_map[0].cn"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.yaml))
			if err == nil {
				t.Fatalf("loaded; want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigLDAPValidate(t *testing.T) {
	on := func(c *Config) {
		c.Proxy.LDAP.URL = "ldaps://dc1.school.example"
		c.Proxy.LDAP.BindDN = "cn=hedgerow,dc=school,dc=example"
		c.Proxy.LDAP.BindPassword = "s3cret-bind"
		c.Proxy.LDAP.BaseDN = "dc=school,dc=example"
		c.Proxy.LDAP.GroupMap = []LDAPGroupMap{{"Staff", "staff"}, {"Year 7", "ks3-ks4"}}
	}
	tests := []struct {
		name   string
		change func(l *LDAPSettings)
		want   []string // each must appear in the error; nil: valid
	}{
		{"good", func(l *LDAPSettings) {}, nil},
		{"start_tls", func(l *LDAPSettings) { l.URL, l.StartTLS = "ldap://dc1.school.example", true }, nil},
		{"off with settings left", func(l *LDAPSettings) { l.URL = "" }, []string{"proxy.ldap.url:", "empty", "base_dn, bind_dn, bind_password, group_map are set"}},
		{"off with one setting left", func(l *LDAPSettings) { *l = defaultLDAPSettings(); l.StartTLS = true }, []string{"proxy.ldap.url:", "start_tls is set"}},
		{"plain ldap", func(l *LDAPSettings) { l.URL = "ldap://dc1.school.example" }, []string{"proxy.ldap.url:", "in clear", "StartTLS"}},
		{"ldaps with start_tls", func(l *LDAPSettings) { l.StartTLS = true }, []string{"proxy.ldap.start_tls:"}},
		{"bad scheme", func(l *LDAPSettings) { l.URL = "dc1.school.example" }, []string{"proxy.ldap.url:", "ldaps://host"}},
		{"no bind_dn", func(l *LDAPSettings) { l.BindDN = "" }, []string{"proxy.ldap.bind_dn:", "service account"}},
		{"no bind_password", func(l *LDAPSettings) { l.BindPassword = "" }, []string{"proxy.ldap.bind_password:", "empty"}},
		{"bad base_dn", func(l *LDAPSettings) { l.BaseDN = "school" }, []string{"proxy.ldap.base_dn:", "want a DN"}},
		{"bad user_filter", func(l *LDAPSettings) { l.UserFilter = "(uid=alice)" }, []string{"proxy.ldap.user_filter:", "%s"}},
		{"bad group_attribute", func(l *LDAPSettings) { l.GroupAttribute = "" }, nil}, // empty: the default
		{"bad group_attribute name", func(l *LDAPSettings) { l.GroupAttribute = "member_of" }, []string{"proxy.ldap.group_attribute:"}},
		{"bad group", func(l *LDAPSettings) { l.GroupMap[1].Group = "Year7" }, []string{"proxy.ldap.group_map[1].group:", "lower-case"}},
		{"bad directory group", func(l *LDAPSettings) { l.GroupMap[0].DirectoryGroup = "" }, []string{"proxy.ldap.group_map[0].directory_group:", "empty"}},
		{"directory group twice", func(l *LDAPSettings) { l.GroupMap[1].DirectoryGroup = "staff" }, []string{"proxy.ldap.group_map[1].directory_group:", "twice"}},
		{"bad default_group", func(l *LDAPSettings) { l.DefaultGroup = "school" }, []string{"proxy.ldap.default_group:", "reserved"}},
		{"timeout 0", func(l *LDAPSettings) { l.Timeout = 0 }, nil}, // the default
		{"timeout huge", func(l *LDAPSettings) { l.Timeout = Duration(time.Hour) }, []string{"proxy.ldap.timeout:", "at most 1m"}},
		{"every error at once", func(l *LDAPSettings) { l.BindDN, l.BaseDN, l.DefaultGroup = "", "", "X" },
			[]string{"proxy.ldap.bind_dn:", "proxy.ldap.base_dn:", "proxy.ldap.default_group:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			on(&c)
			tc.change(&c.Proxy.LDAP)
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
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the bind password", err)
			}
		})
	}
}

func TestConfigLDAPRedacted(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, ldapYAML))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if r.Proxy.LDAP.BindPassword != "REDACTED" || c.Proxy.LDAP.BindPassword != "s3cret-bind" {
		t.Errorf("bind password %q, original %q", r.Proxy.LDAP.BindPassword, c.Proxy.LDAP.BindPassword)
	}
	r.Proxy.LDAP.GroupMap[0].Group = "changed"
	if c.Proxy.LDAP.GroupMap[0].Group == "changed" {
		t.Error("Redacted shares group_map with the original")
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("effective configuration", "config", c)
	out := buf.String()
	if strings.Contains(out, "s3cret") {
		t.Errorf("log line shows the bind password: %s", out)
	}
	for _, want := range []string{"config.proxy.ldap.url=ldaps://dc1.school.example", "config.proxy.ldap.bind_password=REDACTED",
		`config.proxy.ldap.group_map="cn=Staff,ou=Groups,dc=school,dc=example=staff; Sixth Form=sixth-form"`, "config.proxy.ldap.timeout=3s"} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %q: %s", want, out)
		}
	}
}

// TestConfigLDAPProxyAuth: serve's choice of authenticator, the warning
// about a mapped group that does not exist, and a CA file that cannot be
// read named by its key.
func TestConfigLDAPProxyAuth(t *testing.T) {
	tax := categories.Builtin()
	idx, err := categories.NewIndexBuilder(0).Build()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := categories.NewSnapshot(tax, idx, categories.DefaultPolicy(tax))
	if err != nil {
		t.Fatal(err)
	}
	filter, err := categories.NewFilter(snap)
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	a := &app{log: slog.New(slog.NewTextHandler(&logBuf, nil))}
	logins := &accountLogins{}

	cfg := DefaultConfig()
	if auth, err := a.proxyAuth(cfg, logins, filter); err != nil || auth != proxy.Authenticator(logins) {
		t.Fatalf("without proxy.ldap: %T, %v; want hedgerow's accounts", auth, err)
	}

	c, err := LoadConfig(writeConfig(t, ldapYAML))
	if err != nil {
		t.Fatal(err)
	}
	c.Proxy.LDAP.CAFile = ""
	c.Proxy.LDAP.GroupMap = append(c.Proxy.LDAP.GroupMap, LDAPGroupMap{"Year 12", "year-12"})
	auth, err := a.proxyAuth(c, logins, filter)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := auth.(*proxy.Directory); !ok {
		t.Fatalf("with proxy.ldap: %T; want *proxy.Directory", auth)
	}
	if out := logBuf.String(); !strings.Contains(out, "group=year-12") || strings.Contains(out, "group=staff") {
		t.Errorf("want one warning, for year-12: %s", out)
	}

	c.Proxy.LDAP.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	_, err = a.proxyAuth(c, logins, filter)
	if err == nil || !strings.Contains(err.Error(), "proxy.ldap.ca_file:") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing CA file: %v; want an error naming proxy.ldap.ca_file", err)
	}
}
