package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"hedgerow/categories"
)

// DefaultUserFilter finds a login name as an OpenLDAP uid or an Active
// Directory sAMAccountName. Every %s is replaced by the escaped name.
const DefaultUserFilter = "(&(objectClass=person)(|(uid=%s)(sAMAccountName=%s)))"

// DefaultGroupAttribute is the user attribute listing the user's groups in
// Active Directory and in OpenLDAP with the memberof overlay.
const DefaultGroupAttribute = "memberOf"

// DefaultDirectoryTimeout bounds one login check, all round trips included.
const DefaultDirectoryTimeout = 5 * time.Second

// maxLoginName bounds the user names sent to the directory: longer ones are
// no one's, and the proxy is reachable by every pupil.
const maxLoginName = 256

// DirectoryConfig configures proxy logins checked against the school's
// directory (Active Directory or OpenLDAP).
type DirectoryConfig struct {
	// URL is ldap://host[:port] or ldaps://host[:port]. Plain ldap:// is
	// accepted without StartTLS only to a loopback address: pupils'
	// passwords never cross the network in clear.
	URL      string
	StartTLS bool // upgrade an ldap:// connection with StartTLS before any password is sent
	// CAFile holds PEM CA certificates trusted for the directory's
	// certificate; empty means the system's roots. There is deliberately no
	// way to skip verification: a forged directory would accept any password.
	CAFile string

	BindDN       string // the service account that searches for users
	BindPassword string
	BaseDN       string // where users (and, without GroupAttribute values, groups) are searched

	UserFilter     string         // every %s becomes the escaped login name; default DefaultUserFilter
	GroupAttribute string         // user attribute holding group DNs; default DefaultGroupAttribute
	GroupMap       []GroupMapping // directory group to hedgerow group; the first entry matching any of the user's groups wins
	DefaultGroup   string         // the group of a user in no mapped group; "" leaves the device's group
	Timeout        time.Duration  // one whole check; default DefaultDirectoryTimeout

	Log *slog.Logger // nil: no logging
}

// GroupMapping maps one directory group to a hedgerow group.
type GroupMapping struct {
	// DirectoryGroup is a group's DN ("cn=Year 7,ou=Groups,dc=school,dc=example")
	// or only its CN ("Year 7"), matched without regard to case.
	DirectoryGroup string
	Group          string // a hedgerow group name
}

// DirectoryConfigError is a DirectoryConfig value NewDirectory refuses.
// Field names it as in Go ("URL", "GroupMap[2].Group") so that a config
// file loader can name its own key instead.
type DirectoryConfigError struct {
	Field string
	Err   error
}

// Error names the field and the reason.
func (e *DirectoryConfigError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *DirectoryConfigError) Unwrap() error { return e.Err }

var attrName = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$`)

// withDefaults fills in the defaults for the empty fields.
func (c DirectoryConfig) withDefaults() DirectoryConfig {
	if c.UserFilter == "" {
		c.UserFilter = DefaultUserFilter
	}
	if c.GroupAttribute == "" {
		c.GroupAttribute = DefaultGroupAttribute
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultDirectoryTimeout
	}
	return c
}

// Validate checks c (defaults applied) without touching the network or the
// disk. It returns every problem at once, each a *DirectoryConfigError; the
// bind password is never quoted.
func (c DirectoryConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &DirectoryConfigError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	u, err := parseDirectoryURL(c.URL)
	if err != nil {
		bad("URL", "%v", err)
	} else {
		switch {
		case u.Scheme == "ldaps" && c.StartTLS:
			bad("StartTLS", "ldaps:// is encrypted from the start; StartTLS is only for ldap://")
		case u.Scheme == "ldap" && !c.StartTLS && !isLoopbackHost(u.Hostname()):
			bad("URL", "%q sends pupils' passwords across the network in clear; want ldaps://%s or StartTLS", c.URL, u.Host)
		case u.Scheme == "ldap" && !c.StartTLS && c.CAFile != "":
			bad("CAFile", "set, but the connection is not encrypted; want ldaps:// or StartTLS with it")
		}
	}
	if c.BindDN == "" {
		bad("BindDN", "empty; want the DN of a service account that may search users, e.g. cn=hedgerow,ou=Services,dc=school,dc=example")
	} else if _, err := ldap.ParseDN(c.BindDN); err != nil {
		bad("BindDN", "%q: %v; want a DN, e.g. cn=hedgerow,ou=Services,dc=school,dc=example", c.BindDN, err)
	}
	if c.BindPassword == "" {
		// An empty password is an unauthenticated bind, which "succeeds" and
		// then searches anonymously.
		bad("BindPassword", "empty; want the service account's password")
	}
	if c.BaseDN == "" {
		bad("BaseDN", "empty; want the DN under which users are found, e.g. dc=school,dc=example")
	} else if _, err := ldap.ParseDN(c.BaseDN); err != nil {
		bad("BaseDN", "%q: %v; want a DN, e.g. dc=school,dc=example", c.BaseDN, err)
	}
	if !strings.Contains(c.UserFilter, "%s") {
		bad("UserFilter", "%q has no %%s for the login name; want e.g. %s", c.UserFilter, DefaultUserFilter)
	} else if _, err := ldap.CompileFilter(userFilter(c.UserFilter, "name")); err != nil {
		bad("UserFilter", "%q: %v; want an LDAP filter such as %s", c.UserFilter, err, DefaultUserFilter)
	}
	if !attrName.MatchString(c.GroupAttribute) {
		bad("GroupAttribute", "%q; want an attribute name such as memberOf", c.GroupAttribute)
	}
	seen := map[string]bool{}
	for i, m := range c.GroupMap {
		field := fmt.Sprintf("GroupMap[%d]", i)
		key, err := groupKey(m.DirectoryGroup)
		switch {
		case err != nil:
			bad(field+".DirectoryGroup", "%v", err)
		case seen[key]:
			bad(field+".DirectoryGroup", "%q is mapped twice; the first entry wins, so this one never applies", m.DirectoryGroup)
		}
		seen[key] = true
		if err := categories.ValidGroupName(m.Group); err != nil {
			bad(field+".Group", "%v", err)
		}
	}
	if c.DefaultGroup != "" {
		if err := categories.ValidGroupName(c.DefaultGroup); err != nil {
			bad("DefaultGroup", "%v", err)
		}
	}
	if c.Timeout < 0 || c.Timeout > time.Minute {
		bad("Timeout", "%s; want a duration above 0 and at most 1m, e.g. 5s", c.Timeout)
	}
	return errors.Join(errs...)
}

// parseDirectoryURL checks a directory URL: ldap or ldaps, a host, nothing else.
func parseDirectoryURL(s string) (*url.URL, error) {
	const want = "want ldaps://host[:port] or ldap://host[:port], e.g. ldaps://dc1.school.example"
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return nil, fmt.Errorf("%q; %s", s, want)
	}
	if u.Scheme != "ldap" && u.Scheme != "ldaps" {
		return nil, fmt.Errorf("%q: scheme %q; %s", s, u.Scheme, want)
	}
	if u.Hostname() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q; %s (no user, path or query)", s, want)
	}
	return u, nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// groupKey is the form under which a GroupMap entry is compared for
// duplicates: the folded DN, or "cn=" and the folded CN.
func groupKey(g string) (string, error) {
	if strings.TrimSpace(g) == "" {
		return "", errors.New("empty; want a group's DN or CN, e.g. cn=Year 7,ou=Groups,dc=school,dc=example or Year 7")
	}
	if !strings.Contains(g, "=") {
		return "cn=" + strings.ToLower(g), nil
	}
	dn, err := ldap.ParseDN(g)
	if err != nil {
		return "", fmt.Errorf("%q: %v; want a DN or a plain CN", g, err)
	}
	return strings.ToLower(dn.String()), nil
}

// userFilter puts the escaped login name into the filter: never the raw
// name, or "*" or ")(uid=*" would match someone else.
func userFilter(filter, user string) string {
	return strings.ReplaceAll(filter, "%s", ldap.EscapeFilter(user))
}

// Directory checks proxy logins against an LDAP directory: it binds as the
// service account, finds the one user entry for the login name, binds as
// that entry with the password, and maps the user's groups to a hedgerow
// group. It implements Authenticator; only a wrong name or password is
// ErrBadLogin, so a directory that cannot be reached fails closed (503).
//
// Each check uses its own connection: the proxy caches good logins and
// bounds concurrent checks, so connections are few.
type Directory struct {
	cfg     DirectoryConfig
	scheme  string
	addr    string // host:port
	tls     *tls.Config
	mapping []groupMatcher
	log     *slog.Logger
}

// groupMatcher is one GroupMap entry, parsed.
type groupMatcher struct {
	dn    *ldap.DN // set for an entry given as a DN
	cn    string   // set for an entry given as a CN
	group string
}

// NewDirectory checks cfg and reads its CA file. It does not contact the
// directory: that happens on the first login, so a directory that is down
// at start-up does not stop the filter.
func NewDirectory(cfg DirectoryConfig) (*Directory, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	u, _ := parseDirectoryURL(cfg.URL) // validated
	d := &Directory{cfg: cfg, scheme: u.Scheme, log: cfg.Log}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	port := u.Port()
	if port == "" {
		port = "389"
		if u.Scheme == "ldaps" {
			port = "636"
		}
	}
	d.addr = net.JoinHostPort(u.Hostname(), port)
	if u.Scheme == "ldaps" || cfg.StartTLS {
		d.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ldap: %w", &DirectoryConfigError{Field: "CAFile", Err: err})
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ldap: %w", &DirectoryConfigError{Field: "CAFile",
					Err: fmt.Errorf("%s: no PEM certificates found; want the CA certificate that signed the directory's", cfg.CAFile)})
			}
			d.tls.RootCAs = pool
		}
	}
	for _, m := range cfg.GroupMap {
		gm := groupMatcher{group: m.Group}
		if strings.Contains(m.DirectoryGroup, "=") {
			gm.dn, _ = ldap.ParseDN(m.DirectoryGroup) // validated
		} else {
			gm.cn = m.DirectoryGroup
		}
		d.mapping = append(d.mapping, gm)
	}
	return d, nil
}

// Groups returns the hedgerow groups the directory can give, the default
// group included, so the program can warn about ones that do not exist.
func (d *Directory) Groups() []string {
	var out []string
	for _, m := range d.mapping {
		out = append(out, m.group)
	}
	if d.cfg.DefaultGroup != "" {
		out = append(out, d.cfg.DefaultGroup)
	}
	return out
}

// Authenticate implements Authenticator.
func (d *Directory) Authenticate(ctx context.Context, user, password string) (string, error) {
	// An empty password would make the user's bind an unauthenticated bind,
	// which LDAP servers answer with success: refused before any connection.
	if password == "" || user == "" || len(user) > maxLoginName || !utf8.ValidString(user) {
		return "", ErrBadLogin
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	conn, err := d.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()

	if err := conn.Bind(d.cfg.BindDN, d.cfg.BindPassword); err != nil {
		return "", fmt.Errorf("ldap %s: bind as the service account %s: %w", d.cfg.URL, d.cfg.BindDN, err)
	}
	entry, err := d.findUser(conn, user)
	if err != nil {
		return "", err
	}
	// Groups are read as the service account, which may read them where a
	// pupil's own account may not; they are used only once the password is.
	groups, err := d.groupsOf(conn, entry)
	if err != nil {
		return "", err
	}
	if err := conn.Bind(entry.DN, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			d.log.Debug("ldap: wrong password", "user", user)
			return "", ErrBadLogin
		}
		return "", fmt.Errorf("ldap %s: bind as %s: %w", d.cfg.URL, entry.DN, err)
	}
	return d.mapGroup(groups), nil
}

// connect dials the directory with the check's deadline on the socket, so
// every TLS handshake and round trip below is bounded by it, and a request
// that is given up (the client left) closes the connection at once.
func (d *Directory) connect(ctx context.Context) (*ldap.Conn, error) {
	var dialer net.Dialer
	raw, err := dialer.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, fmt.Errorf("ldap %s: connect: %w", d.cfg.URL, err)
	}
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	c := net.Conn(raw)
	if d.scheme == "ldaps" {
		tc := tls.Client(raw, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			stop()
			_ = raw.Close()
			return nil, fmt.Errorf("ldap %s: TLS: %w", d.cfg.URL, err)
		}
		c = tc
	}
	conn := ldap.NewConn(&stopConn{Conn: c, stop: stop}, d.scheme == "ldaps")
	conn.Start()
	conn.SetTimeout(time.Until(deadline))
	if d.cfg.StartTLS {
		if err := conn.StartTLS(d.tls); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("ldap %s: StartTLS: %w", d.cfg.URL, err)
		}
	}
	return conn, nil
}

// stopConn releases the cancellation hook with the connection.
type stopConn struct {
	net.Conn
	stop func() bool
}

// Close implements net.Conn.
func (c *stopConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// findUser returns the one entry the login name finds. None, or more than
// one, is ErrBadLogin: a name must never log in as somebody else.
func (d *Directory) findUser(conn *ldap.Conn, user string) (*ldap.Entry, error) {
	req := ldap.NewSearchRequest(d.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2,
		int(d.cfg.Timeout/time.Second)+1, false, userFilter(d.cfg.UserFilter, user),
		[]string{d.cfg.GroupAttribute, "uid"}, nil)
	res, err := conn.Search(req)
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1):
		d.log.Warn("ldap: a login name matches more than one directory entry; refused", "user", user, "base_dn", d.cfg.BaseDN)
		return nil, ErrBadLogin
	case err != nil:
		return nil, fmt.Errorf("ldap %s: search for user %q under %s: %w", d.cfg.URL, user, d.cfg.BaseDN, err)
	case len(res.Entries) == 0:
		d.log.Debug("ldap: no such user", "user", user)
		return nil, ErrBadLogin
	}
	return res.Entries[0], nil
}

// groupsOf returns the user's groups: the group attribute's values, or,
// where the directory keeps no such attribute (OpenLDAP without the
// memberof overlay), the groups that name the user as a member.
func (d *Directory) groupsOf(conn *ldap.Conn, entry *ldap.Entry) ([]string, error) {
	if groups := entry.GetEqualFoldAttributeValues(d.cfg.GroupAttribute); len(groups) > 0 {
		return groups, nil
	}
	dn := ldap.EscapeFilter(entry.DN)
	filter := "(|(member=" + dn + ")(uniqueMember=" + dn + ")"
	if uid := entry.GetEqualFoldAttributeValue("uid"); uid != "" {
		filter += "(memberUid=" + ldap.EscapeFilter(uid) + ")" // posixGroup
	}
	filter += ")"
	req := ldap.NewSearchRequest(d.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
		int(d.cfg.Timeout/time.Second)+1, false, filter, []string{"1.1"}, nil)
	res, err := conn.Search(req)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		// The server's own limit: the groups returned still count.
		d.log.Warn("ldap: the directory's size limit cut a user's group list short", "user", entry.DN, "groups", len(res.Entries))
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("ldap %s: search for the groups of %s: %w", d.cfg.URL, entry.DN, err)
	}
	groups := make([]string, 0, len(res.Entries))
	for _, e := range res.Entries {
		groups = append(groups, e.DN)
	}
	return groups, nil
}

// mapGroup returns the group of the first GroupMap entry that matches any
// of the user's groups, else the default group.
func (d *Directory) mapGroup(groups []string) string {
	dns := make([]*ldap.DN, len(groups))
	for i, g := range groups {
		dns[i], _ = ldap.ParseDN(g) // nil: a value that is not a DN, compared as a name
	}
	for _, m := range d.mapping {
		for i, g := range groups {
			if m.matches(g, dns[i]) {
				return m.group
			}
		}
	}
	return d.cfg.DefaultGroup
}

// matches reports whether a user's group (its value and, when it is one,
// its parsed DN) is the entry's group.
func (m groupMatcher) matches(value string, dn *ldap.DN) bool {
	if m.dn != nil {
		return dn != nil && m.dn.EqualFold(dn)
	}
	if dn == nil || len(dn.RDNs) == 0 {
		return strings.EqualFold(value, m.cn)
	}
	for _, a := range dn.RDNs[0].Attributes {
		if strings.EqualFold(a.Type, "cn") && strings.EqualFold(a.Value, m.cn) {
			return true
		}
	}
	return false
}
