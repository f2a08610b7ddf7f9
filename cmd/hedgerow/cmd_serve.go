package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"hedgerow/categories"
	"hedgerow/categories/identity"
	"hedgerow/dnsfilter"
	"hedgerow/proxy"
	"hedgerow/store"
	"hedgerow/store/alert"
)

func (a *app) serveCommand() *cobra.Command {
	var configFile, dnsAddr, upstreams, adminAddr, proxyAddr, allowDest string
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--dns ADDR] [--upstream ADDR[,ADDR...]] [--proxy ADDR] [--admin ADDR]",
		Short: "Run the DNS filter and the web proxy",
		Long: `serve runs the DNS filter on UDP and TCP, the HTTP(S) forward proxy, and serves
Prometheus metrics on /metrics and the proxy auto-config file on /proxy.pac and /wpad.dat
of the admin listener. With no flags and no config file it listens on 127.0.0.1:5353 (DNS)
and 127.0.0.1:3128 (proxy), creates the database with the starter policy and lists if
there is none, and forwards allowed names to the resolvers in /etc/resolv.conf (or Quad9
when there are none). The proxy resolves through the same upstreams and cache.
Settings come from the built-in defaults, then the YAML file given with --config (every
key is documented in deploy/hedgerow.yaml), then the flags.

If the database or the lists cannot be loaded it does not start: it never serves pupils
unfiltered. Edits made with the other hedgerow commands or the admin UI take effect within a
second (or at once on SIGHUP). SIGTERM or Ctrl-C stops it cleanly.`,
		Example: `  hedgerow serve
  hedgerow serve --config /etc/hedgerow/hedgerow.yaml
  hedgerow serve --data /var/lib/hedgerow --dns 0.0.0.0:53 --upstream 192.0.2.53,tls://192.0.2.54#dns.example`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.listenerConfig(cmd, configFile, dnsAddr, proxyAddr)
			if err != nil {
				return err
			}
			flags := cmd.Flags()
			if flags.Changed("upstream") {
				cfg.DNS.Upstreams = splitList(upstreams)
			}
			if flags.Changed("admin") {
				cfg.Admin = adminAddr
			}
			if flags.Changed("proxy-allow-dest") {
				cfg.Proxy.AllowDest = splitList(allowDest)
			}
			if len(cfg.DNS.Upstreams) == 0 {
				self := ""
				if len(cfg.DNS.Listen) > 0 {
					self = cfg.DNS.Listen[0]
				}
				cfg.DNS.Upstreams = systemResolvers("/etc/resolv.conf", self)
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			a.log = cfg.Log.NewLogger(a.stderr)
			return a.serve(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML configuration file (see deploy/hedgerow.yaml)")
	cmd.Flags().StringVar(&dnsAddr, "dns", "127.0.0.1:5353", "listen address for DNS, UDP and TCP")
	cmd.Flags().StringVar(&upstreams, "upstream", "", "upstream resolvers, comma-separated: IP[:port], tcp://IP, tls://IP#name (default: /etc/resolv.conf)")
	cmd.Flags().StringVar(&adminAddr, "admin", "127.0.0.1:9153", "listen address for /metrics and /proxy.pac")
	cmd.Flags().StringVar(&proxyAddr, "proxy", "127.0.0.1:3128", `listen address for the HTTP(S) proxy, or "off"`)
	cmd.Flags().StringVar(&allowDest, "proxy-allow-dest", "", "loopback or link-local CIDRs the proxy may connect to anyway, comma-separated (for tests); never hedgerow's own listeners")
	return cmd
}

// listenerConfig is the configuration serve and selftest share: the
// defaults, then the file given with --config, then the --data, --dns and
// --proxy flags (--proxy off turns the proxy off).
func (a *app) listenerConfig(cmd *cobra.Command, configFile, dnsAddr, proxyAddr string) (Config, error) {
	cfg := DefaultConfig()
	if configFile != "" {
		var err error
		if cfg, err = LoadConfig(configFile); err != nil {
			return cfg, err
		}
	}
	flags := cmd.Flags()
	if flags.Changed("data") || cmd.Root().PersistentFlags().Changed("data") {
		cfg.Data = a.dataDir
	}
	a.dataDir = cfg.Data
	if flags.Changed("dns") {
		cfg.DNS.Listen = []string{dnsAddr}
	}
	if flags.Changed("proxy") {
		cfg.Proxy.Listen = []string{proxyAddr}
		if proxyAddr == "off" {
			cfg.Proxy.Listen = nil
		}
	}
	return cfg, nil
}

// serve runs the DNS filter, the proxy and the admin listener until ctx ends.
func (a *app) serve(ctx context.Context, cfg Config) error {
	dnsCfg, err := dnsConfig(cfg)
	if err != nil {
		return err
	}
	start := time.Now()
	logins := &accountLogins{}
	ident, err := a.newIdentity(cfg.Identity)
	if err != nil {
		return err
	}
	load := func() (*categories.Snapshot, error) {
		snap, users, err := a.loadState()
		if err == nil {
			logins.set(users)
			err = ident.setUsers(users)
		}
		return snap, err
	}
	snap, err := load()
	if err != nil {
		return fmt.Errorf("serve: %w (not serving unfiltered)", err)
	}
	filter, err := categories.NewFilter(snap)
	if err != nil {
		return err
	}
	for g := range cfg.DNS.GroupBlockAnswer {
		if !snap.HasGroup(g) {
			a.log.Warn("dns.group_block_answer names a group that does not exist", "group", g)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := dnsfilter.NewMetrics(reg, a.tax)
	alerts, err := a.newAlerts(cfg, reg)
	if err != nil {
		return err
	}
	alertCtx, stopAlerts := context.WithCancel(context.Background())
	alertsDone := make(chan struct{})
	go func() { alerts.Run(alertCtx); close(alertsDone) }()
	defer func() { stopAlerts(); <-alertsDone }() // after the writer has drained (defers run last first)
	// Blocked attempts go through one writer that folds repeats and commits
	// them in batches, opening the database for each batch so the CLI keeps
	// working; a full queue is counted and logged, never silent.
	restrictions := categories.NewRestrictions()
	watchRestrictions(reg, restrictions)
	dnsCfg.Restrictions = restrictions
	dnsCfg.Identity = ident.table
	if err := ident.start(ctx, a.log, reg); err != nil {
		return err
	}
	recorder := store.NewIncidentWriter(store.WriterConfig{
		QueueSize: cfg.Incidents.QueueSize, Interval: cfg.Incidents.BatchInterval.D(), FoldWindow: cfg.Incidents.FoldWindow.D(),
		PatternCount: cfg.Incidents.PatternCount, PatternWindow: cfg.Incidents.PatternWindow.D(), LowReviewCount: cfg.Incidents.LowReviewCount,
		Notify: func(in store.Incident) {
			if alert.Wants(in) {
				alerts.Notify(in) // never blocks: the dispatcher has its own queue
			}
			if in.Rule == store.RulePattern && cfg.Incidents.PatternRestrict > 0 {
				restrictPattern(a.log, restrictions, in, cfg.Incidents.PatternRestrict.D())
			}
		},
		Context: store.NewContextWindow(cfg.Incidents.ContextWindow.D()),
	}, a.writeExisting, a.log, func(total uint64) {
		metrics.IncidentsDropped.Inc()
		if total == 1 || total%10_000 == 0 {
			a.log.Warn("incident queue full: attempts dropped", "dropped_total", total)
		}
	})
	watchWriter(reg, recorder)
	writerCtx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() { recorder.Run(writerCtx); close(writerDone) }()
	defer func() {
		// The servers have stopped: drain what they recorded.
		stopWriter()
		<-writerDone
		st := recorder.Stats()
		a.log.Info("incident writer stopped", "attempts", st.Attempts, "incidents", st.Incidents, "dropped", st.Dropped)
	}()
	go a.retentionLoop(ctx, cfg.Incidents)
	backupFailures := prometheus.NewCounter(prometheus.CounterOpts{Name: "hedgerow_backup_failures_total",
		Help: "Scheduled backups (backup.dir) that failed; the next run tries again."})
	reg.MustRegister(backupFailures)
	go a.backupLoop(ctx, cfg.Backup, backupFailures)
	if cfg.Incidents.DigestEvery > 0 {
		go a.digestLoop(ctx, cfg.Incidents.DigestEvery.D(), alerts)
	}
	srv, err := dnsfilter.New(dnsCfg, filter, metrics, recorder, a.log)
	if err != nil {
		return err
	}
	a.log.Info("lists loaded", "entries", snap.Index().Len(), "domains", snap.Index().Domains(),
		"urls", snap.Index().URLs(), "seconds", time.Since(start).Seconds(), "database", a.dbPath())
	a.log.Info("effective configuration", "config", cfg)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reloadFailures := watchFilter(reg, filter)
	reloadNow := make(chan struct{}, 1)
	go a.reloadLoop(ctx, filter, load, reloadFailures, reloadNow)
	go a.feedUpdateLoop(ctx, cfg.Feeds, a.newFeedMetrics(reg)) // metrics registered before serving; updates on the schedule

	var px *proxy.Server
	var pac []byte
	if len(cfg.Proxy.Listen) > 0 {
		if px, pac, err = a.newProxy(cfg, filter, srv, logins, recorder, restrictions, ident.table, reg); err != nil {
			return err
		}
	}
	h := &health{a: a, started: start, filter: filter, dns: srv, writer: recorder}
	ui, err := a.newAdminUI(cfg, filter, h, restrictions, reg, reloadNow)
	if err != nil {
		return err
	}
	admin := &http.Server{Addr: cfg.Admin, Handler: ui.Handler(adminMux(reg, pac, h)), ReadHeaderTimeout: 5 * time.Second}
	adminLn, err := net.Listen("tcp", cfg.Admin)
	if err != nil {
		return fmt.Errorf("serve: admin listener %s: %w", cfg.Admin, err)
	}
	adminErr := make(chan error, 1)
	go func() {
		if cfg.AdminUI.TLSCert != "" {
			adminErr <- admin.ServeTLS(adminLn, cfg.AdminUI.TLSCert, cfg.AdminUI.TLSKey)
			return
		}
		adminErr <- admin.Serve(adminLn)
	}()
	defer func() {
		shut, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = admin.Shutdown(shut)
	}()
	a.log.Info("serving metrics", "addr", "http://"+cfg.Admin+"/metrics")

	dnsErr := make(chan error, 1)
	go func() {
		dnsErr <- srv.ListenAndServe(ctx, func() { a.log.Info("serving DNS", "listen", strings.Join(dnsCfg.Listen, ",")) })
	}()
	proxyErr := make(chan error, 1)
	if px != nil {
		go func() {
			proxyErr <- px.ListenAndServe(ctx, func() { a.log.Info("serving the proxy", "listen", strings.Join(px.Addrs(), ",")) })
		}()
	}
	// The first to stop stops the others.
	select {
	case err = <-dnsErr:
		dnsErr = nil
	case err = <-proxyErr:
		proxyErr = nil
	case err = <-adminErr:
	}
	cancel()
	if dnsErr != nil {
		if e := <-dnsErr; err == nil {
			err = e
		}
	}
	if px != nil && proxyErr != nil {
		if e := <-proxyErr; err == nil {
			err = e
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	a.log.Info("stopped")
	return err
}

// newAlerts builds the alert dispatcher; with no channel configured it
// accepts incidents and sends nothing.
func (a *app) newAlerts(cfg Config, reg prometheus.Registerer) (*alert.Dispatcher, error) {
	acfg, err := cfg.Alerts.AlertConfig()
	if err != nil {
		return nil, err
	}
	acfg.CategoryName = func(slug string) string {
		if c, ok := a.tax.Lookup(slug); ok {
			return c.Name
		}
		return slug
	}
	if acfg.Webhook == nil && acfg.SMTP == nil && acfg.Syslog == nil {
		a.log.Info("no alert channels configured: critical incidents and patterns are only recorded (see alerts: in the config)")
	}
	return alert.New(acfg, a.log, alert.NewMetrics(reg))
}

// retentionLoop deletes incidents past retention, then compacts so they are
// gone from the file: a minute after start, then every purge_every. The
// incident writer retries its batches while the database is busy.
func (a *app) retentionLoop(ctx context.Context, c IncidentsConfig) {
	r := store.Retention{Low: c.RetentionLow.D(), Incidents: c.Retention.D()}
	wait := time.Minute
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = c.PurgeEvery.D()
		err := a.writeExisting(func(s *store.Store) error {
			res, err := s.Purge(store.RetentionActor, r, a.now(), store.DefaultPurgeBatch)
			if err != nil || res.Incidents+res.Reports == 0 {
				return err
			}
			a.log.Info("retention: deleted incidents and reports past their time", "incidents", res.Incidents, "reports", res.Reports)
			return s.Compact()
		})
		if err != nil {
			a.log.Error("retention purge failed; will try again", "err", err)
			wait = time.Hour
		}
	}
}

// digestLoop emails the safeguarding lead the digest every period.
func (a *app) digestLoop(ctx context.Context, every time.Duration, alerts *alert.Dispatcher) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var d store.Digest
		err := a.readStore(func(s *store.Store) error {
			var err error
			d, err = s.Digest(a.now(), 4)
			return err
		})
		if err == nil {
			var body strings.Builder
			a.writeDigest(&body, d)
			subject := fmt.Sprintf("hedgerow: safeguarding digest (%d incidents, %d waiting for review)", d.Incidents, d.OpenReviews)
			err = alerts.SendEmail(ctx, subject, body.String())
		}
		switch {
		case errors.Is(err, alert.ErrNoMail):
			a.log.Info("the digest is ready (hedgerow incidents digest); set alerts.smtp to have it emailed")
		case err != nil:
			a.log.Error("digest not sent", "err", err)
		}
	}
}

// watchFilter exports the lists in service; the returned counter counts
// failed reloads.
func watchFilter(reg prometheus.Registerer, f *categories.Filter) prometheus.Counter {
	failures := prometheus.NewCounter(prometheus.CounterOpts{Name: "hedgerow_reload_failures_total",
		Help: "Reloads of the lists and policy that failed (the previous ones stayed in service)."})
	reg.MustRegister(failures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hedgerow_index_entries", Help: "List entries in service."},
			func() float64 { return float64(f.Current().Index().Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hedgerow_index_loaded_timestamp_seconds",
			Help: "When the lists in service were loaded (Unix time)."},
			func() float64 { t, _, _ := f.Status(); return float64(t.Unix()) }),
	)
	return failures
}

// watchWriter exports the incident writer's counters.
func watchWriter(reg prometheus.Registerer, w *store.IncidentWriter) {
	counter := func(name, help string, f func(store.WriterStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(w.Stats())) })
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hedgerow_incident_queue_length", Help: "Attempts waiting for the incident writer."},
			func() float64 { return float64(w.Stats().Queued) }),
		counter("hedgerow_incident_attempts_committed_total", "Attempts committed to the incident store (folded into incidents).",
			func(s store.WriterStats) uint64 { return s.Attempts }),
		counter("hedgerow_incidents_created_total", "Incidents created in the store.", func(s store.WriterStats) uint64 { return s.Incidents }),
		counter("hedgerow_incident_commit_failures_total", "Incident commits that failed and were retried (database busy or failing).",
			func(s store.WriterStats) uint64 { return s.Failures }),
	)
}

// newProxy builds the proxy beside the DNS filter: it resolves through the
// filter's upstreams, cache and safe-search names, and records into the same
// recorder.
func (a *app) newProxy(cfg Config, filter *categories.Filter, dns *dnsfilter.Server, logins *accountLogins,
	recorder store.Recorder, restrictions *categories.Restrictions, who *identity.Table, reg prometheus.Registerer) (*proxy.Server, []byte, error) {
	pcfg, err := proxyConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	certs, err := a.loadInterceptionCA(cfg)
	if err != nil {
		return nil, nil, err
	}
	auth, err := a.proxyAuth(cfg, logins, filter) // proxy.ldap, else hedgerow's accounts
	if err != nil {
		return nil, nil, err
	}
	px, err := proxy.New(pcfg, proxy.Deps{
		Filter: filter, Resolver: dns, Certs: certs, Auth: auth, Reports: storeReports{a}, Recorder: recorder,
		Metrics: proxy.NewMetrics(reg), Log: a.log, OwnAddrs: append([]string{cfg.Admin}, cfg.DNS.Listen...),
		Restrictions: restrictions, Identity: who,
	})
	if err != nil {
		return nil, nil, err
	}
	pacProxy := cfg.Proxy.PACProxy
	if pacProxy == "" {
		pacProxy = cfg.Proxy.Listen[0]
		if ap, err := netip.ParseAddrPort(pacProxy); err == nil && ap.Addr().IsUnspecified() {
			a.log.Warn("proxy.pac_proxy is not set and the proxy listens on every address: the PAC file names "+
				pacProxy+", which devices cannot use; set proxy.pac_proxy to the address devices reach", "listen", pacProxy)
		}
	}
	var nets []netip.Prefix
	for _, s := range cfg.Proxy.PACLocalNets {
		p, _ := netip.ParsePrefix(s) // validated
		nets = append(nets, p)
	}
	pac, err := proxy.PACFile(pacProxy, nets, cfg.Proxy.PACDirect)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: PAC file: %w", err)
	}
	return px, pac, nil
}

// adminMux serves /metrics, /healthz, /readyz and the PAC file; the admin UI
// sits in front of it (admin.Server.Handler).
func adminMux(reg *prometheus.Registry, pac []byte, h *health) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /readyz", h.readyz)
	if pac != nil {
		servePAC := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", proxy.PACContentType)
			w.Header().Set("Cache-Control", "max-age=300")
			_, _ = w.Write(pac)
		}
		mux.HandleFunc("GET /proxy.pac", servePAC)
		mux.HandleFunc("GET /wpad.dat", servePAC)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry: reg, MaxRequestsInFlight: 2, Timeout: 10 * time.Second}))
	return mux
}

// dnsConfig turns the validated configuration into the DNS filter's.
func dnsConfig(cfg Config) (dnsfilter.Config, error) {
	d := dnsfilter.DefaultConfig()
	d.Listen = cfg.DNS.Listen
	ups, err := dnsfilter.ParseUpstreams(strings.Join(cfg.DNS.Upstreams, ","))
	if err != nil {
		return d, err
	}
	d.Upstreams = ups
	d.Timeout = cfg.DNS.Timeout.D()
	d.MaxInFlight = cfg.DNS.MaxInFlight
	d.RateLimit = cfg.DNS.RateLimit
	d.BlockAnswer = cfg.DNS.BlockAnswer
	d.GroupBlockAnswer = cfg.DNS.GroupBlockAnswer
	if cfg.DNS.BlockPageIPv4 != "" {
		d.BlockPageIPv4, _ = netip.ParseAddr(cfg.DNS.BlockPageIPv4) // validated
	}
	if cfg.DNS.BlockPageIPv6 != "" {
		d.BlockPageIPv6, _ = netip.ParseAddr(cfg.DNS.BlockPageIPv6)
	}
	d.Cache = dnsfilter.CacheConfig{
		MaxEntries:  cfg.DNS.Cache.MaxEntries,
		MaxTTL:      cfg.DNS.Cache.MaxTTL.D(),
		NegativeTTL: cfg.DNS.Cache.NegativeTTL.D(),
		StaleFor:    cfg.DNS.Cache.StaleFor.D(),
	}
	if d.Cache.StaleFor == 0 {
		d.Cache.StaleFor = -1 // "never serve stale"; 0 would mean the default
	}
	return d, nil
}

// loadState opens the database just long enough to read the lists, the
// policy and the accounts, so the CLI can edit them while serve runs.
func (a *app) loadState() (*categories.Snapshot, []store.User, error) {
	var snap *categories.Snapshot
	var users []store.User
	err := a.readStore(func(s *store.Store) error {
		var err error
		if snap, err = s.LoadSnapshot(); err != nil {
			return err
		}
		users, err = s.Users()
		return err
	})
	return snap, users, err
}

// reloadLoop swaps in a new snapshot when the database changes (an edit
// through the CLI) or on SIGHUP. A failed reload keeps the last good lists in
// service and is logged.
func (a *app) reloadLoop(ctx context.Context, filter *categories.Filter, load func() (*categories.Snapshot, error), failures prometheus.Counter, now <-chan struct{}) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// The database file is watched often: a stat is cheap, and an edit from
	// the CLI should take effect within a second too.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	lastMod := modTime(a.dbPath())
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		case <-now:
			lastMod = modTime(a.dbPath())
		case <-tick.C:
			m := modTime(a.dbPath())
			if m.Equal(lastMod) {
				continue
			}
			lastMod = m
		}
		start := time.Now()
		if err := filter.Reload(load); err != nil {
			a.log.Error("reload failed", "err", err)
			failures.Inc()
			lastMod = time.Time{} // try again at the next tick
			continue
		}
		a.log.Info("lists reloaded", "entries", filter.Current().Index().Len(), "seconds", time.Since(start).Seconds())
	}
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// withPort adds DNS's port to an address that has none.
func withPort(addr string) string {
	if _, err := netip.ParseAddrPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), "53")
}

// systemResolvers reads the nameservers of resolv.conf, leaving out our own
// listen address so hedgerow never forwards to itself.
func systemResolvers(path, self string) []string {
	var out []string
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "nameserver" {
				if u := withPort(fields[1]); u != self {
					out = append(out, u)
				}
			}
		}
	}
	if len(out) == 0 {
		out = []string{"9.9.9.9:53", "149.112.112.112:53"}
	}
	return out
}
