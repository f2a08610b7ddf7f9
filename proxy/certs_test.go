package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestCA creates a CA in a temporary directory.
func newTestCA(t testing.TB) (ca *CA, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile = filepath.Join(dir, "ca.crt")
	keyFile = filepath.Join(dir, "ca.key")
	ca, err := CreateCA(certFile, keyFile, "Test School Filter CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca, certFile, keyFile
}

func TestCreateCALoadCARoundTrip(t *testing.T) {
	created, certFile, keyFile := newTestCA(t)
	loaded, err := LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Certificate().Equal(created.Certificate()) {
		t.Error("loaded certificate differs from the created one")
	}
	if !bytes.Equal(loaded.CertPEM(), created.CertPEM()) {
		t.Error("loaded PEM differs from the created one")
	}
	onDisk, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, created.CertPEM()) {
		t.Error("CertPEM differs from the file written")
	}

	c := loaded.Certificate()
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: IsCA=%v valid=%v maxPathLen=%d zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if c.Subject.CommonName != "Test School Filter CA" {
		t.Errorf("common name %q", c.Subject.CommonName)
	}
	if len(c.SubjectKeyId) == 0 {
		t.Error("no SubjectKeyId")
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v", c.SerialNumber)
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("public key %T, want ECDSA", c.PublicKey)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d < 10*365*24*time.Hour {
		t.Errorf("validity %v, want at least ten years", d)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Error("key is not a PKCS#8 PEM block")
	}
}

func TestCreateCAFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "data")
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if _, err := CreateCA(certFile, keyFile, "CA", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{keyFile, 0o600},
		{certFile, 0o644},
		{dir, 0o700 | os.ModeDir},
	} {
		info, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode() & (os.ModePerm | os.ModeDir); got != tc.want {
			t.Errorf("%s: mode %v, want %v", tc.path, got, tc.want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want just the two files (no temporaries left)", len(entries))
	}
}

func TestCreateCARefuses(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := func(name string) string { return filepath.Join(dir, name) }
	tests := []struct {
		name              string
		cert, key, common string
		want              string
	}{
		{"existing cert", existing, fresh("a.key"), "CA", "existing already exists"},
		{"existing key", fresh("b.crt"), existing, "CA", "existing already exists"},
		{"same file", fresh("c.pem"), fresh("c.pem"), "CA", "separate files"},
		{"empty name", fresh("d.crt"), fresh("d.key"), " ", "common name is empty"},
		{"no cert path", "", fresh("e.key"), "CA", "both a certificate file and a key file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CreateCA(tc.cert, tc.key, tc.common, time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("existing file was changed to %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("refused CreateCA left files behind: %v", entries)
	}

	// A second init over a good CA changes nothing.
	_, certFile, keyFile := newTestCA(t)
	before, _ := os.ReadFile(keyFile)
	if _, err := CreateCA(certFile, keyFile, "CA", time.Now()); err == nil {
		t.Fatal("second CreateCA succeeded")
	}
	if after, _ := os.ReadFile(keyFile); !bytes.Equal(before, after) {
		t.Error("second CreateCA changed the key")
	}
}

// writeCert self-signs a certificate from tmpl with a new key and writes
// both as PEM files, for building CAs that CreateCA would never make.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestLoadCARefuses(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	_, goodCert, goodKey := newTestCA(t)
	_, _, otherKey := newTestCA(t)

	nonCACert, nonCAKey := writeCert(t, dir, "leaf", &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "not a CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		BasicConstraintsValid: true, IsCA: false,
	})
	expiredCert, expiredKey := writeCert(t, dir, "expired", &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "old CA"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	})

	openKey := filepath.Join(dir, "open.key")
	keyPEM, err := os.ReadFile(goodKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(openKey, keyPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openKey, 0o644); err != nil { // beat the umask
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN NONSENSE-----\nnot base64!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badDER := filepath.Join(dir, "bad-der.crt")
	if err := os.WriteFile(badDER, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), 0o644); err != nil {
		t.Fatal(err)
	}
	badKeyDER := filepath.Join(dir, "bad-der.key")
	if err := os.WriteFile(badKeyDER, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, cert, key string
		want            []string
	}{
		{"non-CA cert", nonCACert, nonCAKey, []string{nonCACert, "not a CA"}},
		{"mismatched key", goodCert, otherKey, []string{otherKey, "does not belong", goodCert}},
		{"world-readable key", goodCert, openKey, []string{"chmod 600 " + openKey}},
		{"garbage cert", garbage, goodKey, []string{garbage, "CERTIFICATE"}},
		{"garbage key", goodCert, garbage, []string{garbage, "PRIVATE KEY"}},
		{"cert swapped for key", goodKey, goodCert, []string{goodKey, "CERTIFICATE"}},
		{"undecodable cert", badDER, goodKey, []string{badDER}},
		{"undecodable key", goodCert, badKeyDER, []string{badKeyDER}},
		{"expired CA", expiredCert, expiredKey, []string{expiredCert, "expired"}},
		{"missing cert", filepath.Join(dir, "none.crt"), goodKey, []string{"none.crt"}},
		{"missing key", goodCert, filepath.Join(dir, "none.key"), []string{"none.key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ca, err := LoadCA(tc.cert, tc.key)
			if err == nil {
				t.Fatalf("loaded %v", ca.Certificate().Subject)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestLoadCAOpenSSLKey accepts the SEC 1 key openssl ecparam writes, with
// its EC PARAMETERS block first, for schools that bring their own CA.
func TestLoadCAOpenSSLKey(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	certFile, keyFile := writeCert(t, dir, "own", &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "own CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	})
	data, _ := os.ReadFile(keyFile)
	b, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)
	if err := os.WriteFile(keyFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewLeafCache(ca, 0, 0).Get("example.com"); err != nil {
		t.Fatal(err)
	}
}

func TestLeafVerifies(t *testing.T) {
	ca, _, _ := newTestCA(t)
	cache := NewLeafCache(ca, 0, 0)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	tests := []struct {
		host, verifyAs string
		ip             bool
	}{
		{"www.example.com", "www.example.com", false},
		{"WWW.Example.COM.", "www.example.com", false},
		{"under_score.example.org", "under_score.example.org", false},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", false},
		{"printer2", "printer2", false},
		{"192.0.2.1", "192.0.2.1", true},
		{"2001:DB8::2", "2001:db8::2", true},
		{"2001:db8::1", "2001:db8::1", true},
		{"::ffff:192.0.2.7", "192.0.2.7", true},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			cert, err := cache.Get(tc.host)
			if err != nil {
				t.Fatal(err)
			}
			leaf := cert.Leaf
			if leaf == nil {
				t.Fatal("Leaf not set")
			}
			if len(cert.Certificate) != 2 || !bytes.Equal(cert.Certificate[0], leaf.Raw) || !bytes.Equal(cert.Certificate[1], ca.Certificate().Raw) {
				t.Error("chain is not [leaf, CA]")
			}
			if tc.ip != (len(leaf.IPAddresses) == 1 && len(leaf.DNSNames) == 0) {
				t.Errorf("SANs: DNS %v, IP %v", leaf.DNSNames, leaf.IPAddresses)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{
				DNSName:   tc.verifyAs,
				Roots:     roots,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				t.Errorf("verify as %s: %v", tc.verifyAs, err)
			}
			if d := leaf.NotAfter.Sub(leaf.NotBefore); d > leafValidity+backdate {
				t.Errorf("leaf valid for %v", d)
			}
			if _, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok {
				t.Errorf("leaf key %T", cert.PrivateKey)
			}
			if leaf.IsCA {
				t.Error("leaf is a CA")
			}
		})
	}
}

func TestLeafRejectsBadHosts(t *testing.T) {
	ca, _, _ := newTestCA(t)
	cache := NewLeafCache(ca, 0, 0)
	for _, host := range []string{
		"", ".", "a..b", "exa mple.com", "example.com/path", "*.example.com",
		"fe80::1%eth0", "[::1]", strings.Repeat("a", 64) + ".com",
		strings.Repeat("abcdefghi.", 26) + "com", "bad\x00name", "münchen.de",
		"1.2.3", "192.0.2.300", "example.123", "1::2::3", "::g",
	} {
		if _, err := cache.Get(host); err == nil {
			t.Errorf("Get(%q) succeeded", host)
		} else if !strings.Contains(err.Error(), "leaf certificate") {
			t.Errorf("Get(%q): unclear error %v", host, err)
		}
	}
	if n := cache.Len(); n != 0 {
		t.Errorf("bad hosts left %d entries", n)
	}
}

func TestLeafConcurrentGetMintsOnce(t *testing.T) {
	ca, _, _ := newTestCA(t)
	cache := NewLeafCache(ca, 0, 0)
	const n = 50
	certs := make([]*tls.Certificate, n)
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			certs[i], errs[i] = cache.Get("concurrent.example")
		})
	}
	start.Done()
	done.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if certs[i] != certs[0] {
			t.Fatalf("goroutine %d got a different certificate", i)
		}
	}
	hits, misses := cache.Stats()
	if misses != 1 || hits != n-1 {
		t.Errorf("hits %d misses %d, want %d and 1", hits, misses, n-1)
	}
}

func TestLeafDistinctHosts(t *testing.T) {
	ca, _, _ := newTestCA(t)
	cache := NewLeafCache(ca, 0, 0)
	if cache.CA() != ca {
		t.Error("CA() is not the issuing CA")
	}
	a, err := cache.Get("a.example")
	if err != nil {
		t.Fatal(err)
	}
	b, err := cache.Get("b.example")
	if err != nil {
		t.Fatal(err)
	}
	ka, kb := a.PrivateKey.(*ecdsa.PrivateKey), b.PrivateKey.(*ecdsa.PrivateKey)
	if ka.Equal(kb) {
		t.Error("two hosts share a key")
	}
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Error("two leaves share a serial number")
	}
	again, _ := cache.Get("a.example")
	if again != a {
		t.Error("second Get of a host minted again")
	}
	if hits, misses := cache.Stats(); hits != 1 || misses != 2 {
		t.Errorf("hits %d misses %d, want 1 and 2", hits, misses)
	}
}

func TestLeafEviction(t *testing.T) {
	ca, _, _ := newTestCA(t)
	cache := NewLeafCache(ca, 2, 0)
	for _, h := range []string{"one.example", "two.example", "three.example"} {
		if _, err := cache.Get(h); err != nil {
			t.Fatal(err)
		}
	}
	if n := cache.Len(); n != 2 {
		t.Errorf("Len %d, want 2", n)
	}
	// The least recently used host went; asking again mints anew.
	if _, err := cache.Get("one.example"); err != nil {
		t.Fatal(err)
	}
	if _, misses := cache.Stats(); misses != 4 {
		t.Errorf("misses %d, want 4 (the evicted host minted again)", misses)
	}
}

func TestLeafExpiry(t *testing.T) {
	ca, _, _ := newTestCA(t)
	now := time.Now()
	cache := NewLeafCache(ca, 0, time.Hour)
	cache.now = func() time.Time { return now }
	first, err := cache.Get("clock.example")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Minute)
	if c, _ := cache.Get("clock.example"); c != first {
		t.Error("leaf replaced before its TTL")
	}
	now = now.Add(2 * time.Minute)
	second, err := cache.Get("clock.example")
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Error("leaf kept past its TTL")
	}
	if !second.Leaf.NotBefore.After(first.Leaf.NotBefore) {
		t.Error("replacement leaf is not newer")
	}
}

// TestLeafExpiryEvicts checks that the LRU really drops entries on its own
// clock, so memory is returned even for hosts never asked for again.
func TestLeafExpiryEvicts(t *testing.T) {
	ca, _, _ := newTestCA(t)
	cache := NewLeafCache(ca, 0, 100*time.Millisecond)
	if _, err := cache.Get("short.example"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second) // generous: CI machines can be busy
	for cache.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("entry still cached five seconds after a 100ms TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLeafTTLCapped(t *testing.T) {
	ca, _, _ := newTestCA(t)
	tests := []struct {
		ttl, want time.Duration
	}{
		{0, defaultLeafTTL},
		{-time.Second, defaultLeafTTL},
		{time.Hour, time.Hour},
		{30 * 24 * time.Hour, leafValidity / 2},
	}
	for _, tc := range tests {
		if got := NewLeafCache(ca, 1, tc.ttl).ttl; got != tc.want {
			t.Errorf("ttl %v: got %v, want %v", tc.ttl, got, tc.want)
		}
	}
}

// TestLeafClippedByCA checks a leaf never outlives a nearly expired CA and
// is replaced well before it lapses.
func TestLeafClippedByCA(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	certFile, keyFile := writeCert(t, dir, "short", &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "short CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(2 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	})
	ca, err := LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cache := NewLeafCache(ca, 0, 0)
	cache.now = func() time.Time { return now }
	first, err := cache.Get("clip.example")
	if err != nil {
		t.Fatal(err)
	}
	if first.Leaf.NotAfter.After(ca.Certificate().NotAfter) {
		t.Errorf("leaf NotAfter %v after CA NotAfter %v", first.Leaf.NotAfter, ca.Certificate().NotAfter)
	}
	now = now.Add(61 * time.Minute)
	if again, _ := cache.Get("clip.example"); again == first {
		t.Error("leaf served past half its clipped validity")
	}
	now = now.Add(2 * time.Hour)
	if _, err := cache.Get("late.example"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("minting under an expired CA: %v", err)
	}
}

func TestLeafTLSHandshake(t *testing.T) {
	ca, _, _ := newTestCA(t)
	cache := NewLeafCache(ca, 0, 0)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	for _, host := range []string{"handshake.example", "198.51.100.4"} {
		t.Run(host, func(t *testing.T) {
			serverConn, clientConn := net.Pipe()
			defer serverConn.Close()
			defer clientConn.Close()
			deadline := time.Now().Add(10 * time.Second)
			_ = serverConn.SetDeadline(deadline)
			_ = clientConn.SetDeadline(deadline)

			// IP literals are not sent as SNI, so the server falls back to
			// the host it expects, as the proxy does from CONNECT.
			srv := tls.Server(serverConn, &tls.Config{
				GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
					name := hello.ServerName
					if name == "" {
						name = host
					}
					return cache.Get(name)
				},
			})
			errc := make(chan error, 1)
			go func() {
				err := srv.Handshake()
				if err == nil {
					_, err = srv.Write([]byte("hello"))
				}
				errc <- err
			}()
			cli := tls.Client(clientConn, &tls.Config{RootCAs: roots, ServerName: host})
			if err := cli.Handshake(); err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(cli, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("read %q, %v", buf, err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("server: %v", err)
			}
			if got := cli.ConnectionState().PeerCertificates[0].Subject.CommonName; got != host {
				t.Errorf("peer certificate for %q", got)
			}
		})
	}
}

func TestLeafNoCA(t *testing.T) {
	var cache *LeafCache
	if _, err := cache.Get("x.example"); err == nil {
		t.Error("nil cache minted a leaf")
	}
	if _, err := (&LeafCache{}).Get("x.example"); err == nil {
		t.Error("cache without a CA minted a leaf")
	}
}

func BenchmarkLeafMint(b *testing.B) {
	ca, _, _ := newTestCA(b)
	cache := NewLeafCache(ca, 0, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := cache.Get(fmt.Sprintf("host%d.example", i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkLeafCached(b *testing.B) {
	ca, _, _ := newTestCA(b)
	cache := NewLeafCache(ca, 0, 0)
	if _, err := cache.Get("cached.example"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cache.Get("cached.example"); err != nil {
			b.Fatal(err)
		}
	}
}
