package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
)

// The school's interception CA and the leaves minted from it. goproxy's own
// CA and signer are deliberately not used: its leaf keys come from an AES-CTR
// stream keyed by public-ish bytes of the CA key (docs/LIBRARIES.md §1.4), so
// every key here comes straight from crypto/rand.

const (
	// caValidity is long because replacing the root means touching every
	// managed device through MDM or Group Policy.
	caValidity = 10 * 365 * 24 * time.Hour
	// leafValidity is short so a leaked leaf key is useful only briefly, and
	// stays well under the 398-day ceiling some clients enforce even for
	// private roots.
	leafValidity = 7 * 24 * time.Hour
	// backdate tolerates client clocks that run a little slow.
	backdate = time.Hour

	defaultLeafEntries = 10000
	defaultLeafTTL     = 24 * time.Hour
	// maxPEMFile bounds what LoadCA reads: a CA certificate and key are a few
	// kilobytes, so anything larger is the wrong file.
	maxPEMFile = 1 << 20
)

// CA is the school's interception certificate authority.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
}

// Certificate returns the CA certificate; callers must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate PEM-encoded, for serving /ca.crt to
// managed devices. Callers must not modify it.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// CreateCA generates a new CA (ECDSA P-256, self-signed, valid from an hour
// before now for ten years) and writes its certificate and PKCS#8 key. It
// never overwrites: every managed device trusts the old certificate, so
// replacing it by accident would break HTTPS for the whole school.
func CreateCA(certFile, keyFile, commonName string, now time.Time) (*CA, error) {
	commonName = strings.TrimSpace(commonName)
	if commonName == "" {
		return nil, errors.New("create CA: the common name is empty (it is what users see when they inspect an intercepted certificate)")
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("create CA: both a certificate file and a key file are needed")
	}
	if filepath.Clean(certFile) == filepath.Clean(keyFile) {
		return nil, fmt.Errorf("create CA: certificate and key would both be written to %s; they must be separate files (only the certificate is published)", certFile)
	}
	for _, f := range []string{keyFile, certFile} {
		if err := refuseExisting(f); err != nil {
			return nil, err
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create CA: generating key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	skid, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Zero path length: the key signs only leaves, so a stolen leaf
		// key can never be turned into a sub-CA.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		SubjectKeyId:   skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA: signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create CA: parsing the new certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("create CA: encoding key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})

	// The key goes first: if we crash in between, a key without a
	// certificate is harmless, while a published certificate without its
	// key would be useless.
	if err := writeNewFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	if err := writeNewFile(certFile, certPEM, 0o644); err != nil {
		// The key was created by us a moment ago, so removing it is safe
		// and lets the command simply be run again.
		_ = os.Remove(keyFile)
		return nil, fmt.Errorf("create CA: %w", err)
	}
	return &CA{cert: cert, key: key, certPEM: certPEM}, nil
}

// refuseExisting reports a clear error when path already exists.
func refuseExisting(path string) error {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return fmt.Errorf("create CA: %s already exists; refusing to overwrite it (managed devices may trust the current CA: move it aside yourself if you really mean to replace it)", path)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("create CA: checking %s: %w", path, err)
	}
}

// writeNewFile writes data to a temporary file in path's directory and links
// it into place, so a crash never leaves a half-written key and a file that
// appeared since the check is still never replaced.
func writeNewFile(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating directory for %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // a no-op once linked and removed below
	// Chmod rather than relying on the creation mode: the umask must not
	// widen or narrow what we promise.
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// A hard link fails if path exists, unlike rename, which would replace
	// it; fall back to rename only where links are unsupported.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s appeared while the CA was being created; refusing to overwrite it", path)
		}
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("%s appeared while the CA was being created; refusing to overwrite it", path)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	syncDir(dir)
	return nil
}

// syncDir makes the new directory entry durable. It is best effort: some
// platforms cannot open or sync a directory, and the data itself is synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// randomSerial returns a random, positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generating serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID follows RFC 7093 §2 method 1 (SHA-256 of the public key,
// truncated to 160 bits) rather than the SHA-1 of RFC 5280.
func subjectKeyID(pub *ecdsa.PublicKey) ([]byte, error) {
	b, err := pub.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(b)
	return sum[:20], nil
}

// LoadCA reads the CA certificate and its private key, refusing anything
// that would fail later in a more confusing way: a certificate that is not a
// CA or has expired, a key that does not belong to it, or a key file that
// other users can read.
func LoadCA(certFile, keyFile string) (*CA, error) {
	cert, err := LoadCACertificate(certFile)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("load CA: the certificate in %s expired on %s; create a new CA and deploy it to managed devices", certFile, cert.NotAfter.UTC().Format(time.DateOnly))
	}
	if now.Before(cert.NotBefore) {
		return nil, fmt.Errorf("load CA: the certificate in %s is not valid until %s; check this machine's clock", certFile, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	key, err := loadKey(keyFile)
	if err != nil {
		return nil, err
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("load CA: the key in %s does not belong to the certificate in %s", keyFile, certFile)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	return &CA{cert: cert, key: key, certPEM: certPEM}, nil
}

// LoadCACertificate reads and checks just the CA certificate, for commands
// that show or publish it and should not need the private key.
func LoadCACertificate(certFile string) (*x509.Certificate, error) {
	data, err := readSmallFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: %w", err)
	}
	var block *pem.Block
	for rest := data; ; {
		block, rest = pem.Decode(rest)
		if block == nil || block.Type == "CERTIFICATE" {
			break
		}
	}
	if block == nil {
		return nil, fmt.Errorf("load CA certificate: %s holds no PEM \"CERTIFICATE\" block (expected the CA certificate written by \"hedgerow ca init\")", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: parsing %s: %w", certFile, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("load CA certificate: the certificate in %s (%s) is not a CA certificate (basic constraints CA:TRUE missing)", certFile, cert.Subject)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("load CA certificate: the certificate in %s (%s) may not sign certificates (key usage lacks certSign)", certFile, cert.Subject)
	}
	return cert, nil
}

// loadKey reads a private key: PKCS#8 as CreateCA writes it, or the SEC 1
// and PKCS#1 forms openssl produces, for schools that bring their own CA.
func loadKey(keyFile string) (crypto.Signer, error) {
	f, err := os.Open(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the check and the read are of
	// the same file.
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load CA key: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("load CA key: %s is not a regular file", keyFile)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load CA key: %s is readable by other users (mode %04o); whoever holds it can impersonate any website to every managed device: run chmod 600 %s", keyFile, info.Mode().Perm(), keyFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("load CA key: reading %s: %w", keyFile, err)
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("load CA key: %s is larger than %d bytes; expected a PEM private key", keyFile, maxPEMFile)
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("load CA key: %s holds no PEM private key (expected a \"PRIVATE KEY\" block as written by \"hedgerow ca init\")", keyFile)
		}
		var key any
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("load CA key: %s is encrypted; the proxy must start unattended, so store it decrypted with mode 0600", keyFile)
		default:
			continue // e.g. the "EC PARAMETERS" block openssl ecparam writes first
		}
		if err != nil {
			return nil, fmt.Errorf("load CA key: parsing %s block in %s: %w", block.Type, keyFile, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("load CA key: %s holds a %T, which cannot sign certificates", keyFile, key)
		}
	}
}

// readSmallFile reads a file that should be a few kilobytes, refusing huge
// ones instead of reading them into memory.
func readSmallFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes; expected a PEM file", name, maxPEMFile)
	}
	return data, nil
}

// LeafCache mints leaf certificates for intercepted hosts and keeps them, so
// the signing cost is paid once per host rather than once per connection
// (goproxy issue #430: uncached signing dominated CPU).
type LeafCache struct {
	ca    *CA
	ttl   time.Duration
	lru   *expirable.LRU[string, *leafEntry]
	group singleflight.Group
	now   func() time.Time // a field so tests can move time on

	hits, misses atomic.Uint64
}

// leafEntry pairs a leaf with the time it must be replaced, which can be
// sooner than the cache TTL when the CA itself is about to expire.
type leafEntry struct {
	cert    *tls.Certificate
	staleAt time.Time
}

// NewLeafCache returns a cache of at most maxEntries leaves (default 10000),
// each kept for ttl (default 24h, capped at half a leaf's validity so no
// client is ever handed a leaf about to expire).
//
// The underlying expirable LRU runs a cleanup goroutine that can never be
// stopped, so create one LeafCache per CA for the life of the process rather
// than one per reload.
func NewLeafCache(ca *CA, maxEntries int, ttl time.Duration) *LeafCache {
	if maxEntries <= 0 {
		maxEntries = defaultLeafEntries
	}
	if ttl <= 0 {
		ttl = defaultLeafTTL
	}
	ttl = min(ttl, leafValidity/2)
	return &LeafCache{
		ca:  ca,
		ttl: ttl,
		lru: expirable.NewLRU[string, *leafEntry](maxEntries, nil, ttl),
		now: time.Now,
	}
}

// Get returns the leaf certificate for host: a lower-case DNS name or an
// IPv4/IPv6 literal (which gets an IP SAN). Concurrent calls for a host that
// is not cached share a single generation.
func (c *LeafCache) Get(host string) (*tls.Certificate, error) {
	if c == nil || c.ca == nil {
		return nil, errors.New("leaf certificate: no CA configured")
	}
	host, ip, err := canonicalLeafHost(host)
	if err != nil {
		return nil, err
	}
	if cert, ok := c.cached(host); ok {
		c.hits.Add(1)
		return cert, nil
	}
	minted := false // set only if this caller's closure is the one that runs
	v, err, _ := c.group.Do(host, func() (any, error) {
		// Look again: a generation for this host may have finished between
		// our miss and joining the group.
		if cert, ok := c.cached(host); ok {
			return cert, nil
		}
		minted = true
		c.misses.Add(1)
		e, err := c.mint(host, ip)
		if err != nil {
			return nil, err
		}
		c.lru.Add(host, e)
		return e.cert, nil
	})
	if err != nil {
		return nil, err
	}
	if !minted {
		c.hits.Add(1)
	}
	return v.(*tls.Certificate), nil
}

// cached returns a cached leaf that is not yet due for replacement.
func (c *LeafCache) cached(host string) (*tls.Certificate, bool) {
	e, ok := c.lru.Get(host)
	if !ok {
		return nil, false
	}
	if !c.now().Before(e.staleAt) {
		return nil, false
	}
	return e.cert, true
}

// CA returns the authority the leaves are issued from, so the proxy can
// publish its certificate without being handed it separately.
func (c *LeafCache) CA() *CA { return c.ca }

// Len returns the number of cached leaves (expired ones may linger until the
// next cleanup tick).
func (c *LeafCache) Len() int { return c.lru.Len() }

// Stats returns the counters for metrics: misses is the number of leaves
// minted (the expensive part), hits every other successful Get, including
// those that shared another caller's generation.
func (c *LeafCache) Stats() (hits, misses uint64) {
	return c.hits.Load(), c.misses.Load()
}

// mint issues a new leaf for host signed by the CA.
func (c *LeafCache) mint(host string, ip netip.Addr) (*leafEntry, error) {
	now := c.now()
	caCert := c.ca.cert
	notAfter := now.Add(leafValidity)
	if caCert.NotAfter.Before(notAfter) {
		// A leaf outliving its issuer fails verification anyway.
		notAfter = caCert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("leaf certificate for %s: the CA %q expired on %s", host, caCert.Subject.CommonName, caCert.NotAfter.UTC().Format(time.DateOnly))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("leaf certificate for %s: generating key: %w", host, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("leaf certificate for %s: %w", host, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip.IsValid() {
		tmpl.Subject.CommonName = ip.String()
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, c.ca.key)
	if err != nil {
		return nil, fmt.Errorf("leaf certificate for %s: signing: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("leaf certificate for %s: parsing: %w", host, err)
	}
	// Replace at half the remaining validity at the latest, so a leaf
	// clipped by a nearly expired CA is not served until its last second.
	staleAt := now.Add(min(c.ttl, notAfter.Sub(now)/2))
	return &leafEntry{
		cert: &tls.Certificate{
			Certificate: [][]byte{der, caCert.Raw},
			PrivateKey:  key,
			Leaf:        leaf,
		},
		staleAt: staleAt,
	}, nil
}

// canonicalLeafHost checks host and returns the cache key and, for an IP
// literal, the address. Upper case and a trailing dot are folded rather than
// refused, since they name the same host.
func canonicalLeafHost(host string) (string, netip.Addr, error) {
	if host == "" {
		return "", netip.Addr{}, errors.New("leaf certificate: empty host name")
	}
	// Only try an address parse where one is possible: a failed ParseAddr
	// allocates its error, which would be the only allocation on a hit.
	// Names such as "printer2" end in a digit too, so they fall through.
	colon := strings.IndexByte(host, ':') >= 0
	if last := host[len(host)-1]; colon || ('0' <= last && last <= '9') {
		ip, err := netip.ParseAddr(host)
		switch {
		case err == nil && ip.Zone() != "":
			return "", netip.Addr{}, fmt.Errorf("leaf certificate: %q: an IPv6 zone cannot appear in a certificate", host)
		case err == nil && ip.Is4In6():
			ip = ip.Unmap()
			return ip.String(), ip, nil
		case err == nil:
			// host itself is the key: canonical input (the contract)
			// then costs no allocation on a hit.
			return host, ip, nil
		case colon:
			return "", netip.Addr{}, fmt.Errorf("leaf certificate: %q is neither an IP address nor a host name: %w", host, err)
		}
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if err := checkHostName(name); err != nil {
		return "", netip.Addr{}, fmt.Errorf("leaf certificate: %q is not a valid host name: %w", host, err)
	}
	return name, netip.Addr{}, nil
}

// checkHostName accepts what clients will match against a DNS SAN: labels of
// letters, digits, hyphens and (outside the WebPKI, but seen in the wild)
// underscores.
func checkHostName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("%d characters, more than 253", len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("label of %d characters, more than 63", len(label))
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if ('a' <= ch && ch <= 'z') || ('0' <= ch && ch <= '9') || ch == '-' || ch == '_' {
				continue
			}
			return fmt.Errorf("character %q not allowed", ch)
		}
	}
	// "1.2.3" is a mistyped address, not a name: no top-level domain is
	// all digits (RFC 3696 §2).
	tld := name[strings.LastIndexByte(name, '.')+1:]
	if strings.Trim(tld, "0123456789") == "" {
		return errors.New("all-numeric last label (a malformed IP address?)")
	}
	return nil
}
