package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories"
	"hedgerow/store"
)

// The test directory has two suffixes: dc=school,dc=test runs the memberof
// overlay (groups are read from the user's memberOf, as in Active
// Directory), dc=college,dc=test does not (groups are found by searching
// for member=<user DN>, as in many OpenLDAP schools).
var testSuffixes = []string{"dc=school,dc=test", "dc=college,dc=test"}

const (
	testRootPW    = "root-secret"
	testServicePW = "service-secret"
)

// testSlapd is a slapd on loopback, set up by the test.
type testSlapd struct {
	ldapURL, ldapsURL string
	caFile            string // PEM CA that signed slapd's certificate
	stop              func() // stops slapd and waits for it; safe to call twice
}

// findSlapd returns slapd's path, or skips the test.
func findSlapd(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("slapd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/slapd"); err == nil {
		return "/usr/sbin/slapd"
	}
	t.Skip("slapd is not installed (Debian: apt-get install slapd ldap-utils); the LDAP tests need a real directory server")
	return ""
}

// freePort returns a loopback port nothing listens on just now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSlapd writes a slapd.conf, a CA and a server certificate into a
// temporary directory, starts slapd on two loopback ports (ldap:// with
// StartTLS, and ldaps://), waits until it answers, loads the users and
// groups, and stops it when the test ends.
func startSlapd(t testing.TB) *testSlapd {
	t.Helper()
	bin := findSlapd(t)
	if _, err := os.Stat("/etc/ldap/schema/inetorgperson.schema"); err != nil {
		t.Skip("slapd's schemas are missing from /etc/ldap/schema (Debian package slapd)")
	}
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	var conf strings.Builder
	for _, s := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&conf, "include /etc/ldap/schema/%s.schema\n", s)
	}
	fmt.Fprintf(&conf, "pidfile %s\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload memberof\n", filepath.Join(dir, "slapd.pid"))
	fmt.Fprintf(&conf, "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n", caFile, certFile, keyFile)
	for i, suffix := range testSuffixes {
		db := filepath.Join(dir, fmt.Sprintf("db%d", i))
		if err := os.Mkdir(db, 0o700); err != nil {
			t.Fatal(err)
		}
		// Passwords can only be used to log in; only logged-in accounts read.
		fmt.Fprintf(&conf, "database mdb\nsuffix %q\nrootdn \"cn=admin,%s\"\nrootpw %s\ndirectory %s\nmaxsize 10485760\n"+
			"access to attrs=userPassword by anonymous auth by * none\naccess to * by users read by * none\n",
			suffix, suffix, testRootPW, db)
		if i == 0 {
			conf.WriteString("overlay memberof\n")
		}
	}
	confFile := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ldapPort, ldapsPort := freePort(t), freePort(t)
	sl := &testSlapd{
		ldapURL:  fmt.Sprintf("ldap://127.0.0.1:%d", ldapPort),
		ldapsURL: fmt.Sprintf("ldaps://127.0.0.1:%d", ldapsPort),
		caFile:   caFile,
	}
	logFile, err := os.Create(filepath.Join(dir, "slapd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "-h", sl.ldapURL+"/ "+sl.ldapsURL+"/", "-f", confFile, "-d", "0")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Skipf("slapd cannot be started: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stopped := false
	sl.stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(sl.stop)
	slapdLog := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }

	var admin *ldap.Conn
	for attempt := 0; admin == nil; attempt++ {
		select {
		case <-exited:
			t.Fatalf("slapd exited at start:\n%s", slapdLog())
		default:
		}
		if attempt == 200 {
			t.Fatalf("slapd did not answer on %s:\n%s", sl.ldapURL, slapdLog())
		}
		c, err := ldap.DialURL(sl.ldapURL)
		if err == nil {
			if err = c.Bind("cn=admin,"+testSuffixes[0], testRootPW); err == nil {
				admin = c
				break
			}
			c.Close()
		}
		time.Sleep(25 * time.Millisecond)
	}
	defer admin.Close()
	for _, suffix := range testSuffixes {
		if err := admin.Bind("cn=admin,"+suffix, testRootPW); err != nil {
			t.Fatal(err)
		}
		for _, e := range testEntries(suffix) {
			if err := admin.Add(e); err != nil {
				t.Fatalf("add %s: %v\n%s", e.DN, err, slapdLog())
			}
		}
	}
	// The premise of the two suffixes: memberOf in one, not in the other.
	for i, suffix := range testSuffixes {
		if err := admin.Bind("cn=admin,"+suffix, testRootPW); err != nil {
			t.Fatal(err)
		}
		res, err := admin.Search(ldap.NewSearchRequest("uid=sam,ou=People,"+suffix, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			1, 0, false, "(objectClass=*)", []string{"memberOf"}, nil))
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("read back sam in %s: %v", suffix, err)
		}
		if n := len(res.Entries[0].GetAttributeValues("memberOf")); (i == 0) != (n == 2) {
			t.Fatalf("sam has %d memberOf values in %s; want 2 with the overlay, 0 without", n, suffix)
		}
	}
	return sl
}

// testEntries are the people and groups of one suffix. Users come first:
// the memberof overlay fills in memberOf as each group is added.
func testEntries(suffix string) []*ldap.AddRequest {
	var out []*ldap.AddRequest
	add := func(dn string, attrs map[string][]string) {
		r := ldap.NewAddRequest(dn+","+suffix, nil)
		for k, v := range attrs {
			r.Attribute(k, v)
		}
		out = append(out, r)
	}
	dc := strings.TrimPrefix(strings.Split(suffix, ",")[0], "dc=")
	root := ldap.NewAddRequest(suffix, nil)
	root.Attribute("objectClass", []string{"dcObject", "organization"})
	root.Attribute("dc", []string{dc})
	root.Attribute("o", []string{dc})
	out = append(out, root)
	for _, ou := range []string{"People", "Staff", "Groups", "Services"} {
		add("ou="+ou, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {ou}})
	}
	add("cn=hedgerow,ou=Services", map[string][]string{"objectClass": {"person"}, "cn": {"hedgerow"}, "sn": {"service"},
		"userPassword": {testServicePW}})
	person := func(ou, uid string) {
		add("uid="+uid+",ou="+ou, map[string][]string{"objectClass": {"inetOrgPerson"}, "uid": {uid}, "cn": {uid},
			"sn": {uid}, "userPassword": {uid + "-pw"}})
	}
	for _, uid := range []string{"sam", "una", "pat", "alice", "twin"} {
		person("People", uid)
	}
	person("Staff", "tina")
	person("Staff", "twin") // a second "twin": the name is ambiguous
	members := func(uids ...string) []string {
		var dns []string
		for _, u := range uids {
			ou := "People"
			if u == "tina" {
				ou = "Staff"
			}
			dns = append(dns, "uid="+u+",ou="+ou+","+suffix)
		}
		return dns
	}
	group := func(cn string, uids ...string) {
		add("cn="+cn+",ou=Groups", map[string][]string{"objectClass": {"groupOfNames"}, "cn": {cn}, "member": members(uids...)})
	}
	group("Year 7", "sam") // added before Sixth Form, so sam's memberOf lists it first
	group("Sixth Form", "sam", "alice")
	group("Staff", "tina")
	group("Chess Club", "una", "tina")
	add("cn=Year 8,ou=Groups", map[string][]string{"objectClass": {"posixGroup"}, "cn": {"Year 8"}, "gidNumber": {"1008"},
		"memberUid": {"pat"}})
	return out
}

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 (ECDSA
// P-256, PEM) and returns the CA, certificate and key files.
func writeTestPKI(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hedgerow test directory CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", der), write("server.key", "PRIVATE KEY", keyDER)
}

// testDirectoryConfig is a working configuration for one suffix.
func testDirectoryConfig(url, suffix string) DirectoryConfig {
	return DirectoryConfig{
		URL:          url,
		BindDN:       "cn=hedgerow,ou=Services," + suffix,
		BindPassword: testServicePW,
		BaseDN:       suffix,
		GroupMap: []GroupMapping{
			{DirectoryGroup: "cn=Staff,ou=Groups," + suffix, Group: "staff"},
			{DirectoryGroup: "Sixth Form", Group: "sixth-form"},
			{DirectoryGroup: "CN=Year 7,OU=groups," + strings.ToUpper(suffix), Group: "ks3-ks4"}, // DNs match without regard to case
			{DirectoryGroup: "year 8", Group: "ks3-ks4"},
		},
		DefaultGroup: "ks2",
		Log:          slog.New(slog.DiscardHandler),
	}
}

func newTestDirectory(t *testing.T, cfg DirectoryConfig) *Directory {
	t.Helper()
	d, err := NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDirectoryLogins checks logins against a real slapd, for a directory
// with memberOf and one without, then with the directory stopped.
func TestDirectoryLogins(t *testing.T) {
	sl := startSlapd(t)
	tests := []struct {
		name, user, pass string
		want             string // the group; "" with bad: ErrBadLogin
		bad              bool
	}{
		{"group given by DN", "tina", "tina-pw", "staff", false},
		{"group given by CN", "alice", "alice-pw", "sixth-form", false},
		{"two mapped groups: the first in the map wins", "sam", "sam-pw", "sixth-form", false},
		{"posix group by memberUid", "pat", "pat-pw", "ks3-ks4", false},
		{"in no mapped group: the default group", "una", "una-pw", "ks2", false},
		{"name in another case", "ALICE", "alice-pw", "sixth-form", false},
		{"wrong password", "alice", "sam-pw", "", true},
		{"password in another case", "alice", "ALICE-PW", "", true},
		{"empty password", "alice", "", "", true},
		{"unknown user", "nobody", "nobody-pw", "", true},
		{"empty user", "", "x", "", true},
		{"ambiguous user", "twin", "twin-pw", "", true},
		{"the service account is not a person", "hedgerow", testServicePW, "", true},
		{"wildcard", "*", "alice-pw", "", true},
		{"wildcard prefix", "ali*", "alice-pw", "", true},
		{"filter injection", "alice)(uid=*", "alice-pw", "", true},
		{"filter injection matching all", "*)(objectClass=*", "alice-pw", "", true},
		{"filter closing", "alice))(|(uid=*", "alice-pw", "", true},
		{"escaped star", `\2a`, "alice-pw", "", true},
		{"NUL in the name", "alice\x00", "alice-pw", "", true},
		{"invalid UTF-8", "alice\xff", "alice-pw", "", true},
		{"very long name", strings.Repeat("a", 300), "alice-pw", "", true},
	}
	for _, suffix := range testSuffixes {
		d := newTestDirectory(t, testDirectoryConfig(sl.ldapURL, suffix))
		for _, tc := range tests {
			t.Run(suffix+"/"+tc.name, func(t *testing.T) {
				got, err := d.Authenticate(context.Background(), tc.user, tc.pass)
				if tc.bad {
					if !errors.Is(err, ErrBadLogin) {
						t.Fatalf("Authenticate(%q) = %q, %v; want ErrBadLogin", tc.user, got, err)
					}
					return
				}
				if err != nil || got != tc.want {
					t.Fatalf("Authenticate(%q) = %q, %v; want %q", tc.user, got, err, tc.want)
				}
			})
		}
	}

	t.Run("no default group: the device's group", func(t *testing.T) {
		cfg := testDirectoryConfig(sl.ldapURL, testSuffixes[1])
		cfg.DefaultGroup = ""
		if got, err := newTestDirectory(t, cfg).Authenticate(context.Background(), "una", "una-pw"); err != nil || got != "" {
			t.Fatalf("got %q, %v; want \"\"", got, err)
		}
	})
	t.Run("custom user filter", func(t *testing.T) {
		cfg := testDirectoryConfig(sl.ldapURL, testSuffixes[0])
		cfg.UserFilter = "(&(objectClass=inetOrgPerson)(cn=%s))"
		if got, err := newTestDirectory(t, cfg).Authenticate(context.Background(), "tina", "tina-pw"); err != nil || got != "staff" {
			t.Fatalf("got %q, %v; want staff", got, err)
		}
	})
	t.Run("TLS", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			url      string
			startTLS bool
		}{{"ldaps", sl.ldapsURL, false}, {"StartTLS", sl.ldapURL, true}} {
			cfg := testDirectoryConfig(tc.url, testSuffixes[0])
			cfg.StartTLS, cfg.CAFile = tc.startTLS, sl.caFile
			d := newTestDirectory(t, cfg)
			if got, err := d.Authenticate(context.Background(), "tina", "tina-pw"); err != nil || got != "staff" {
				t.Errorf("%s: got %q, %v; want staff", tc.name, got, err)
			}
			if _, err := d.Authenticate(context.Background(), "tina", "wrong"); !errors.Is(err, ErrBadLogin) {
				t.Errorf("%s: wrong password: %v; want ErrBadLogin", tc.name, err)
			}
		}
	})
	t.Run("TLS with an untrusted certificate", func(t *testing.T) {
		other, _, _ := writeTestPKI(t, t.TempDir()) // a CA that did not sign slapd's certificate
		for _, tc := range []struct {
			url      string
			startTLS bool
			caFile   string
		}{{sl.ldapsURL, false, other}, {sl.ldapURL, true, other}, {sl.ldapsURL, false, ""}} {
			cfg := testDirectoryConfig(tc.url, testSuffixes[0])
			cfg.StartTLS, cfg.CAFile = tc.startTLS, tc.caFile
			_, err := newTestDirectory(t, cfg).Authenticate(context.Background(), "tina", "tina-pw")
			if err == nil || errors.Is(err, ErrBadLogin) {
				t.Errorf("%s start_tls=%v ca=%q: %v; want an error other than ErrBadLogin", tc.url, tc.startTLS, tc.caFile, err)
			}
		}
	})
	t.Run("wrong service password", func(t *testing.T) {
		cfg := testDirectoryConfig(sl.ldapURL, testSuffixes[0])
		cfg.BindPassword = "wrong"
		_, err := newTestDirectory(t, cfg).Authenticate(context.Background(), "tina", "tina-pw")
		if err == nil || errors.Is(err, ErrBadLogin) || strings.Contains(err.Error(), "wrong") {
			t.Fatalf("%v; want an error other than ErrBadLogin, without the password", err)
		}
	})
	t.Run("base DN that does not exist", func(t *testing.T) {
		cfg := testDirectoryConfig(sl.ldapURL, testSuffixes[0])
		cfg.BaseDN = "ou=Nowhere," + testSuffixes[0]
		_, err := newTestDirectory(t, cfg).Authenticate(context.Background(), "tina", "tina-pw")
		if err == nil || errors.Is(err, ErrBadLogin) {
			t.Fatalf("%v; want an error other than ErrBadLogin", err)
		}
	})

	// Last: the directory goes down.
	d := newTestDirectory(t, testDirectoryConfig(sl.ldapURL, testSuffixes[0]))
	sl.stop()
	for _, pass := range []string{"tina-pw", "wrong"} {
		if g, err := d.Authenticate(context.Background(), "tina", pass); err == nil || errors.Is(err, ErrBadLogin) {
			t.Errorf("directory down, password %q: %q, %v; want an error other than ErrBadLogin", pass, g, err)
		}
	}
}

// TestDirectoryNoBindForEmptyPassword: an empty password is refused before
// any connection; the directory address is one nothing listens on, so a
// connection attempt would give a different error.
func TestDirectoryNoBindForEmptyPassword(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d := newTestDirectory(t, testDirectoryConfig("ldap://"+addr, "dc=school,dc=test"))
	if _, err := d.Authenticate(context.Background(), "alice", ""); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("empty password: %v; want ErrBadLogin", err)
	}
	if _, err := d.Authenticate(context.Background(), "alice", "x"); err == nil || errors.Is(err, ErrBadLogin) {
		t.Fatalf("nothing listening: %v; want a connection error", err)
	}
}

// TestDirectoryUnresponsive: a directory that accepts the connection and
// never answers fails with an error (not ErrBadLogin) once the timeout is
// reached, and so does a check whose request is given up.
func TestDirectoryUnresponsive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for len(held) > 0 {
			(<-held).Close()
		}
	})
	cfg := testDirectoryConfig("ldap://"+ln.Addr().String(), "dc=school,dc=test")
	cfg.Timeout = 200 * time.Millisecond
	d := newTestDirectory(t, cfg)
	if _, err := d.Authenticate(context.Background(), "alice", "alice-pw"); err == nil || errors.Is(err, ErrBadLogin) {
		t.Errorf("unresponsive directory: %v; want an error other than ErrBadLogin", err)
	}
	cfg.Timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := newTestDirectory(t, cfg).Authenticate(ctx, "alice", "alice-pw"); err == nil || errors.Is(err, ErrBadLogin) {
		t.Errorf("cancelled check: %v; want an error other than ErrBadLogin", err)
	}
}

func TestDirectoryConfigValidate(t *testing.T) {
	good := testDirectoryConfig("ldaps://dc1.school.example", "dc=school,dc=example")
	tests := []struct {
		name   string
		change func(c *DirectoryConfig)
		field  string // "" : valid
		want   string
	}{
		{"good", func(c *DirectoryConfig) {}, "", ""},
		{"StartTLS", func(c *DirectoryConfig) { c.URL, c.StartTLS = "ldap://dc1.school.example:389", true }, "", ""},
		{"plain ldap on loopback", func(c *DirectoryConfig) { c.URL = "ldap://127.0.0.1:1389/" }, "", ""},
		{"plain ldap on localhost", func(c *DirectoryConfig) { c.URL = "ldap://localhost" }, "", ""},
		{"plain ldap across the network", func(c *DirectoryConfig) { c.URL = "ldap://dc1.school.example" }, "URL", "in clear"},
		{"ldaps with StartTLS", func(c *DirectoryConfig) { c.StartTLS = true }, "StartTLS", "only for ldap://"},
		{"CA file without TLS", func(c *DirectoryConfig) { c.URL, c.CAFile = "ldap://127.0.0.1", "/etc/ca.pem" }, "CAFile", "not encrypted"},
		{"no URL", func(c *DirectoryConfig) { c.URL = "" }, "URL", "ldaps://"},
		{"http URL", func(c *DirectoryConfig) { c.URL = "https://dc1.school.example" }, "URL", `scheme "https"`},
		{"URL without host", func(c *DirectoryConfig) { c.URL = "ldaps://" }, "URL", "ldaps://host"},
		{"URL with a user", func(c *DirectoryConfig) { c.URL = "ldaps://admin:pw@dc1.school.example" }, "URL", "no user"},
		{"URL with a base DN", func(c *DirectoryConfig) { c.URL = "ldaps://dc1.school.example/dc=school,dc=example" }, "URL", "no user, path"},
		{"no bind DN", func(c *DirectoryConfig) { c.BindDN = "" }, "BindDN", "service account"},
		{"bind DN not a DN", func(c *DirectoryConfig) { c.BindDN = "hedgerow" }, "BindDN", "want a DN"},
		{"no bind password", func(c *DirectoryConfig) { c.BindPassword = "" }, "BindPassword", "empty"},
		{"no base DN", func(c *DirectoryConfig) { c.BaseDN = "" }, "BaseDN", "empty"},
		{"base DN not a DN", func(c *DirectoryConfig) { c.BaseDN = "school.example" }, "BaseDN", "want a DN"},
		{"filter without %s", func(c *DirectoryConfig) { c.UserFilter = "(uid=alice)" }, "UserFilter", "no %s"},
		{"filter malformed", func(c *DirectoryConfig) { c.UserFilter = "(uid=%s" }, "UserFilter", "LDAP filter"},
		{"group attribute", func(c *DirectoryConfig) { c.GroupAttribute = "member of" }, "GroupAttribute", "attribute name"},
		{"group attribute OID", func(c *DirectoryConfig) { c.GroupAttribute = "1.2.840.113556.1.2.102" }, "", ""},
		{"mapped group empty", func(c *DirectoryConfig) { c.GroupMap[1].DirectoryGroup = " " }, "GroupMap[1].DirectoryGroup", "empty"},
		{"mapped group bad DN", func(c *DirectoryConfig) { c.GroupMap[0].DirectoryGroup = "cn=Staff,=x" }, "GroupMap[0].DirectoryGroup", "DN"},
		{"mapped group twice", func(c *DirectoryConfig) { c.GroupMap[3].DirectoryGroup = "SIXTH FORM" }, "GroupMap[3].DirectoryGroup", "twice"},
		{"mapped DN twice", func(c *DirectoryConfig) {
			c.GroupMap[1].DirectoryGroup = "cn=staff, ou=groups, dc=school, dc=example"
		}, "GroupMap[1].DirectoryGroup", "twice"},
		{"hedgerow group malformed", func(c *DirectoryConfig) { c.GroupMap[2].Group = "Year 7" }, "GroupMap[2].Group", "lower-case"},
		{"hedgerow group empty", func(c *DirectoryConfig) { c.GroupMap[2].Group = "" }, "GroupMap[2].Group", "1 to 64"},
		{"default group reserved", func(c *DirectoryConfig) { c.DefaultGroup = "school" }, "DefaultGroup", "reserved"},
		{"timeout negative", func(c *DirectoryConfig) { c.Timeout = -time.Second }, "Timeout", "above 0"},
		{"timeout huge", func(c *DirectoryConfig) { c.Timeout = time.Hour }, "Timeout", "at most 1m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.GroupMap = append([]GroupMapping(nil), good.GroupMap...)
			tc.change(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ce *DirectoryConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want a DirectoryConfigError for %s mentioning %q", err, tc.field, tc.want)
			}
			if strings.Contains(err.Error(), testServicePW) {
				t.Errorf("error %q shows the bind password", err)
			}
			if _, err := NewDirectory(c); err == nil {
				t.Error("NewDirectory accepted it")
			}
		})
	}
	c := good
	c.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := NewDirectory(c); err == nil || !strings.Contains(err.Error(), "CAFile") {
		t.Errorf("missing CA file: %v", err)
	}
	if err := os.WriteFile(c.CAFile, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDirectory(c); err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
		t.Errorf("CA file without PEM: %v", err)
	}
}

func TestDirectoryMapGroup(t *testing.T) {
	d := newTestDirectory(t, testDirectoryConfig("ldaps://dc1", "dc=school,dc=test"))
	for _, tc := range []struct {
		groups []string
		want   string
	}{
		{nil, "ks2"},
		{[]string{"cn=Chess Club,ou=Groups,dc=school,dc=test"}, "ks2"},
		{[]string{"cn=Year 7,ou=Groups,dc=school,dc=test", "cn=Staff,ou=Groups,dc=school,dc=test"}, "staff"},
		{[]string{"cn=Staff,ou=Groups,dc=other,dc=test"}, "ks2"}, // a DN entry matches that DN only
		{[]string{"cn=Sixth Form,ou=Anywhere,dc=other,dc=test"}, "sixth-form"},
		{[]string{"ou=Sixth Form,dc=school,dc=test"}, "ks2"}, // a CN entry matches a cn= RDN only
		{[]string{"CN=YEAR 7,OU=GROUPS,DC=SCHOOL,DC=TEST"}, "ks3-ks4"},
		{[]string{"Year 8"}, "ks3-ks4"}, // not a DN: compared as a name
		{[]string{"cn=Year 8+gidNumber=1008,ou=Groups,dc=school,dc=test"}, "ks3-ks4"},
		{[]string{"not a dn = ,,"}, "ks2"},
	} {
		if got := d.mapGroup(tc.groups); got != tc.want {
			t.Errorf("mapGroup(%q) = %q, want %q", tc.groups, got, tc.want)
		}
	}
	if got := d.Groups(); strings.Join(got, ",") != "staff,sixth-form,ks3-ks4,ks3-ks4,ks2" {
		t.Errorf("Groups() = %q", got)
	}
}

func BenchmarkDirectoryMapGroup(b *testing.B) {
	d, err := NewDirectory(testDirectoryConfig("ldaps://dc1", "dc=school,dc=test"))
	if err != nil {
		b.Fatal(err)
	}
	groups := []string{"cn=Chess Club,ou=Groups,dc=school,dc=test", "cn=Domain Users,cn=Users,dc=school,dc=test",
		"cn=Year 7,ou=Groups,dc=school,dc=test"}
	b.ReportAllocs()
	for b.Loop() {
		if d.mapGroup(groups) != "ks3-ks4" {
			b.Fatal("wrong group")
		}
	}
}

// BenchmarkDirectoryLogin measures one whole check against the real slapd
// (connect, two binds, two searches without memberOf). The proxy caches
// good logins, so this is paid at most once a minute per user.
func BenchmarkDirectoryLogin(b *testing.B) {
	sl := startSlapd(b)
	d, err := NewDirectory(testDirectoryConfig(sl.ldapURL, testSuffixes[1]))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if g, err := d.Authenticate(context.Background(), "sam", "sam-pw"); err != nil || g != "sixth-form" {
			b.Fatalf("%q, %v", g, err)
		}
	}
}

// TestLDAPProxyLogins runs the proxy with logins checked against slapd: a
// good login reaches the origin in the user's mapped group, a bad one gets
// 407, and with the directory down 503; the origin is never reached
// without a good login.
func TestLDAPProxyLogins(t *testing.T) {
	sl := startSlapd(t)
	dir := newTestDirectory(t, testDirectoryConfig(sl.ldapURL, testSuffixes[0]))
	var hits atomic.Int64
	origin := loginOrigin(t, &hits)
	addr, rec := testLoginProxy(t, dir)

	get := func(user, pass, path string) (int, string) {
		t.Helper()
		u, _ := url.Parse("http://" + addr)
		if user != "" {
			u.User = url.UserPassword(user, pass)
		}
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: 30 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get("http://" + path)
		if err != nil {
			t.Fatalf("GET %s as %q: %v", path, user, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	if code, body := get("sam", "sam-pw", origin+"/hello"); code != 200 || body != "ok /hello" {
		t.Fatalf("good login: %d %q; want 200 from the origin", code, body)
	}
	if code, _ := get("sam", "sam-pw", "blocked.example/"); code != 403 {
		t.Errorf("good login, blocked site: %d; want 403", code)
	}
	if got := rec.Recent(1); len(got) != 1 || got[0].User != "sam" || got[0].Group != "sixth-form" {
		t.Errorf("recorded %+v; want sam in sixth-form (his directory group)", got)
	}
	before := hits.Load()
	for _, tc := range []struct{ user, pass string }{{"sam", "wrong"}, {"sam", ""}, {"*", "sam-pw"}, {"", ""}} {
		if code, _ := get(tc.user, tc.pass, origin+"/bad"); code != http.StatusProxyAuthRequired {
			t.Errorf("login %q/%q: %d; want 407", tc.user, tc.pass, code)
		}
	}
	sl.stop()
	if code, body := get("tina", "tina-pw", origin+"/down"); code != http.StatusServiceUnavailable {
		t.Errorf("directory down: %d %q; want 503", code, body)
	}
	if n := hits.Load() - before; n != 0 {
		t.Errorf("the origin was reached %d times without a good login", n)
	}
}

// loginOrigin is a plain HTTP origin on loopback answering "ok <path>" and
// counting its requests.
func loginOrigin(t *testing.T, hits *atomic.Int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "ok "+r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// testLoginProxy runs a proxy for 127.0.0.0/8 (group ks2, which requires a
// login) with blocked.example listed as adult and auth checking logins.
func testLoginProxy(t *testing.T, auth Authenticator) (string, *store.MemoryRecorder) {
	t.Helper()
	tax := categories.Builtin()
	b := categories.NewIndexBuilder(0)
	adult, _ := tax.MaskOf("adult")
	_ = b.Add("blocked.example", adult)
	idx, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	pol := categories.DefaultPolicy(tax)
	pol.Clients = []categories.ClientRule{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Group: "ks2"}}
	for i := range pol.Groups {
		if pol.Groups[i].Name == "ks2" {
			pol.Groups[i].ProxyLogin = true
		}
	}
	snap, err := categories.NewSnapshot(tax, idx, pol)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.ProxySettings("ks2").Login || !snap.HasGroup("sixth-form") {
		t.Fatal("the test policy lacks ks2 with logins or sixth-form")
	}
	filter, err := categories.NewFilter(snap)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen = []string{fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	cfg.AllowDest = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	rec := store.NewMemoryRecorder(1000, nil)
	s, err := New(cfg, Deps{Filter: filter, Resolver: loopbackResolver{}, Recorder: rec, Auth: auth,
		Metrics: NewMetrics(prometheus.NewRegistry()), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- s.ListenAndServe(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("proxy did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy stopped with %v", err)
		}
	})
	return cfg.Listen[0], rec
}

// FuzzDirectoryUserFilter: whatever the login name, the filter sent is one
// equality match on exactly that name (never a wildcard, never a second
// clause), and mapping a directory group of any text does not panic.
func FuzzDirectoryUserFilter(f *testing.F) {
	for _, s := range []string{"alice", "*", "ali*", "alice)(uid=*", "*)(objectClass=*", `\2a`, "a\x00b", "Zoë", "\xff", "(", `\`} {
		f.Add(s)
	}
	d, err := NewDirectory(testDirectoryConfig("ldaps://dc1", "dc=school,dc=test"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, user string) {
		p, err := ldap.CompileFilter(userFilter("(uid=%s)", user))
		if err != nil {
			t.Fatalf("name %q: filter does not compile: %v", user, err)
		}
		if p.Tag != ldap.FilterEqualityMatch || len(p.Children) != 2 || string(p.Children[1].Data.Bytes()) != user {
			t.Fatalf("name %q: filter is not one equality match on the name", user)
		}
		_ = d.mapGroup([]string{user, "cn=" + user + ",dc=school,dc=test"})
	})
}
