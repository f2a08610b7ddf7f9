package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"hedgerow/proxy"
	"hedgerow/store"
)

// proxyConfig turns the validated configuration into the proxy's.
func proxyConfig(cfg Config) (proxy.Config, error) {
	p := proxy.DefaultConfig()
	c := cfg.Proxy
	p.Listen = c.Listen
	p.ConnectPorts = c.ConnectPorts
	for _, s := range c.AllowDest {
		pfx, _ := netip.ParsePrefix(s) // validated
		p.AllowDest = append(p.AllowDest, pfx.Masked())
	}
	p.MaxHeaderBytes = c.MaxHeaderBytes
	p.ReadHeaderTimeout = c.HeaderTimeout.D()
	p.IdleTimeout = c.IdleTimeout.D()
	p.MaxConnsPerClient = c.MaxConnsPerClient
	p.ForwardedFor = c.ForwardedFor
	p.DoNotIntercept = c.DoNotIntercept
	p.DoNotInterceptCategories = c.DoNotInterceptCategories
	p.SchoolName = c.SchoolName
	if c.UpstreamCA != "" {
		pem, err := os.ReadFile(c.UpstreamCA)
		if err != nil {
			return p, fmt.Errorf("proxy.upstream_ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return p, fmt.Errorf("proxy.upstream_ca %s: no PEM certificates found; want a CA certificate file", c.UpstreamCA)
		}
		p.UpstreamCAs = pool
	}
	return p, nil
}

// loadInterceptionCA loads the school CA when it has been created; without
// it no group can intercept, and the proxy tunnels all HTTPS.
func (a *app) loadInterceptionCA(cfg Config) (*proxy.LeafCache, error) {
	certFile, keyFile := cfg.Proxy.CACert, cfg.Proxy.CAKey
	if certFile == "" {
		certFile = filepath.Join(cfg.Data, "ca.crt")
	}
	if keyFile == "" {
		keyFile = filepath.Join(cfg.Data, "ca.key")
	}
	if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
		a.log.Info("no school CA: HTTPS is tunnelled, never intercepted (hedgerow ca init creates one)", "cert", certFile)
		return nil, nil
	}
	ca, err := proxy.LoadCA(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("serve: school CA: %w", err)
	}
	a.log.Info("school CA loaded: groups with interception on can decrypt HTTPS", "cert", certFile)
	return proxy.NewLeafCache(ca, 0, 0), nil
}

// accountLogins checks proxy logins against hedgerow's own accounts as of
// the last reload.
type accountLogins struct {
	users atomic.Pointer[map[string]store.User]
}

func (l *accountLogins) set(users []store.User) {
	m := make(map[string]store.User, len(users))
	for _, u := range users {
		m[u.Name] = u
	}
	l.users.Store(&m)
}

// Authenticate implements proxy.Authenticator.
func (l *accountLogins) Authenticate(_ context.Context, user, password string) (string, error) {
	var u store.User
	if m := l.users.Load(); m != nil {
		u = (*m)[strings.ToLower(user)]
	}
	if !store.CheckPassword(u, password) { // an unknown name costs the same
		return "", proxy.ErrBadLogin
	}
	return u.Group, nil
}

// storeReports files block-page reports, opening the database just for the
// write so the CLI keeps working beside serve.
type storeReports struct{ a *app }

// AddReport implements proxy.Reporter.
func (r storeReports) AddReport(rep store.Report) (uint64, error) {
	var id uint64
	err := r.a.withStore(func(s *store.Store) error {
		var err error
		id, err = s.AddReport(rep)
		return err
	})
	return id, err
}
