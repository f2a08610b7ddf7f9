package main

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"hedgerow/categories"
	"hedgerow/proxy"
)

// LDAPSettings is proxy.ldap: proxy logins checked against the school's
// directory (Active Directory or OpenLDAP) instead of hedgerow's own
// accounts. Off while url is empty.
type LDAPSettings struct {
	URL            string         `yaml:"url"`             // ldaps://host[:port], or ldap:// with start_tls; empty: off
	StartTLS       bool           `yaml:"start_tls"`       // upgrade ldap:// before any password is sent
	CAFile         string         `yaml:"ca_file"`         // PEM CA for the directory's certificate; empty: the system's roots
	BindDN         string         `yaml:"bind_dn"`         // service account that searches for users
	BindPassword   string         `yaml:"bind_password"`   // its password (a secret: redacted in logs)
	BaseDN         string         `yaml:"base_dn"`         // where users and groups are searched
	UserFilter     string         `yaml:"user_filter"`     // %s is the escaped login name; default proxy.DefaultUserFilter
	GroupAttribute string         `yaml:"group_attribute"` // user attribute listing group DNs; default memberOf
	GroupMap       []LDAPGroupMap `yaml:"group_map"`       // directory group to hedgerow group, first match wins
	DefaultGroup   string         `yaml:"default_group"`   // group of a user in no mapped group; empty: the device's group
	Timeout        Duration       `yaml:"timeout"`         // one whole login check; default 5s
}

// LDAPGroupMap is one entry of proxy.ldap.group_map.
type LDAPGroupMap struct {
	DirectoryGroup string `yaml:"directory_group"` // a group's DN, or only its CN
	Group          string `yaml:"group"`           // a hedgerow group
}

// defaultLDAPSettings are the defaults shown in deploy/hedgerow.yaml.
func defaultLDAPSettings() LDAPSettings {
	return LDAPSettings{UserFilter: proxy.DefaultUserFilter, GroupAttribute: proxy.DefaultGroupAttribute,
		Timeout: Duration(proxy.DefaultDirectoryTimeout)}
}

// enabled reports whether proxy logins go to the directory.
func (l LDAPSettings) enabled() bool { return l.URL != "" }

// directoryConfig converts the settings for proxy.NewDirectory.
func (l LDAPSettings) directoryConfig(log *slog.Logger) proxy.DirectoryConfig {
	c := proxy.DirectoryConfig{URL: l.URL, StartTLS: l.StartTLS, CAFile: l.CAFile, BindDN: l.BindDN, BindPassword: l.BindPassword,
		BaseDN: l.BaseDN, UserFilter: l.UserFilter, GroupAttribute: l.GroupAttribute, DefaultGroup: l.DefaultGroup,
		Timeout: time.Duration(l.Timeout), Log: log}
	for _, m := range l.GroupMap {
		c.GroupMap = append(c.GroupMap, proxy.GroupMapping{DirectoryGroup: m.DirectoryGroup, Group: m.Group})
	}
	return c
}

// ldapKeys maps proxy.DirectoryConfig's field names to the config file's
// keys, so that errors name what the user wrote.
var ldapKeys = map[string]string{
	"URL": "url", "StartTLS": "start_tls", "CAFile": "ca_file", "BindDN": "bind_dn", "BindPassword": "bind_password",
	"BaseDN": "base_dn", "UserFilter": "user_filter", "GroupAttribute": "group_attribute", "DefaultGroup": "default_group",
	"Timeout": "timeout", "DirectoryGroup": "directory_group", "Group": "group",
}

var reGroupMapField = regexp.MustCompile(`^GroupMap\[(\d+)\]\.(\w+)$`)

// ldapKey turns a proxy.DirectoryConfigError field ("GroupMap[2].Group")
// into the config file's key ("proxy.ldap.group_map[2].group").
func ldapKey(field string) string {
	if m := reGroupMapField.FindStringSubmatch(field); m != nil {
		return "proxy.ldap.group_map[" + m[1] + "]." + ldapKeys[m[2]]
	}
	if k, ok := ldapKeys[field]; ok {
		return "proxy.ldap." + k
	}
	return "proxy.ldap." + strings.ToLower(field)
}

// keyedLDAPErrors rewrites the errors of proxy's DirectoryConfig checks to
// name the config file's keys, one error per problem.
func keyedLDAPErrors(err error) []error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else if err != nil {
		list = []error{err}
	}
	var out []error
	for _, e := range list {
		var ce *proxy.DirectoryConfigError
		if errors.As(e, &ce) {
			out = append(out, fmt.Errorf("%s: %w", ldapKey(ce.Field), ce.Err))
		} else {
			out = append(out, fmt.Errorf("proxy.ldap: %w", e))
		}
	}
	return out
}

// validate checks proxy.ldap; errors name the key. The CA file is read
// when serve starts, as proxy.upstream_ca is.
func (l LDAPSettings) validate() []error {
	if !l.enabled() {
		// Settings without a url would be silently ignored: most likely a
		// url commented out while the rest was left.
		var set []string
		for key, isSet := range map[string]bool{"start_tls": l.StartTLS, "ca_file": l.CAFile != "", "bind_dn": l.BindDN != "",
			"bind_password": l.BindPassword != "", "base_dn": l.BaseDN != "", "group_map": len(l.GroupMap) > 0,
			"default_group": l.DefaultGroup != ""} {
			if isSet {
				set = append(set, key)
			}
		}
		if len(set) == 0 {
			return nil
		}
		slices.Sort(set)
		verb := "are"
		if len(set) == 1 {
			verb = "is"
		}
		return []error{fmt.Errorf("proxy.ldap.url: empty, but %s %s set; want the directory's URL (e.g. ldaps://dc1.school.example), or remove them",
			strings.Join(set, ", "), verb)}
	}
	return keyedLDAPErrors(l.directoryConfig(nil).Validate())
}

// proxyAuth returns the proxy's Authenticator: the school's directory when
// proxy.ldap.url is set, else hedgerow's own accounts. Mapped groups that
// do not exist are warned about: such users would get their device's group.
func (a *app) proxyAuth(cfg Config, logins *accountLogins, filter *categories.Filter) (proxy.Authenticator, error) {
	l := cfg.Proxy.LDAP
	if !l.enabled() {
		return logins, nil
	}
	d, err := proxy.NewDirectory(l.directoryConfig(a.log))
	if err != nil {
		return nil, fmt.Errorf("serve: %w", errors.Join(keyedLDAPErrors(errors.Unwrap(err))...))
	}
	snap := filter.Current()
	warned := map[string]bool{}
	for _, g := range d.Groups() {
		if !snap.HasGroup(g) && !warned[g] {
			warned[g] = true
			a.log.Warn("proxy.ldap maps directory users to a group that does not exist; they get their device's group "+
				"until it is created (hedgerow groups list)", "group", g)
		}
	}
	a.log.Info("proxy logins are checked against the school's directory", "url", l.URL, "base_dn", l.BaseDN)
	return d, nil
}

// logValue is proxy.ldap for the effective-configuration log line, the
// bind password as redacted by Config.Redacted.
func (l LDAPSettings) logValue() slog.Value {
	var groups []string
	for _, m := range l.GroupMap {
		groups = append(groups, m.DirectoryGroup+"="+m.Group)
	}
	return slog.GroupValue(
		slog.String("url", l.URL),
		slog.Bool("start_tls", l.StartTLS),
		slog.String("ca_file", l.CAFile),
		slog.String("bind_dn", l.BindDN),
		slog.String("bind_password", l.BindPassword),
		slog.String("base_dn", l.BaseDN),
		slog.String("user_filter", l.UserFilter),
		slog.String("group_attribute", l.GroupAttribute),
		slog.String("group_map", strings.Join(groups, "; ")),
		slog.String("default_group", l.DefaultGroup),
		slog.String("timeout", l.Timeout.String()),
	)
}
