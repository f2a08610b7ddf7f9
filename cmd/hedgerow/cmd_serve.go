package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"hedgerow/categories"
	"hedgerow/dnsfilter"
	"hedgerow/store"
)

func (a *app) serveCommand() *cobra.Command {
	cfg := dnsfilter.DefaultConfig()
	var upstreams string
	cmd := &cobra.Command{
		Use:   "serve [--dns ADDR] [--upstream ADDR[,ADDR...]]",
		Short: "Run the DNS filter",
		Long: `serve runs the DNS filter on UDP and TCP. With no flags it listens on 127.0.0.1:5353,
creates the database with the starter policy and lists if there is none, and forwards
allowed names to the resolvers in /etc/resolv.conf (or Quad9 when there are none).
If the database or the lists cannot be loaded it does not start: it never serves pupils
unfiltered. SIGTERM or Ctrl-C stops it cleanly.`,
		Example: `  hedgerow serve
  hedgerow serve --data /var/lib/hedgerow --dns 0.0.0.0:53 --upstream 192.0.2.53:53,192.0.2.54:53`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if upstreams != "" {
				cfg.Upstreams = nil
				for _, u := range splitList(upstreams) {
					cfg.Upstreams = append(cfg.Upstreams, withPort(u))
				}
			} else {
				cfg.Upstreams = systemResolvers("/etc/resolv.conf", cfg.Addr)
			}
			start := time.Now()
			// The first open creates the database if need be; reloads only read.
			if err := a.withStore(func(*store.Store) error { return nil }); err != nil {
				return fmt.Errorf("serve: %w (not serving unfiltered)", err)
			}
			snap, err := a.loadSnapshot()
			if err != nil {
				return fmt.Errorf("serve: %w (not serving unfiltered)", err)
			}
			filter, err := categories.NewFilter(snap)
			if err != nil {
				return err
			}
			srv, err := dnsfilter.New(cfg, filter, a.log)
			if err != nil {
				return err
			}
			a.log.Info("lists loaded", "entries", snap.Index().Len(), "domains", snap.Index().Domains(),
				"urls", snap.Index().URLs(), "seconds", time.Since(start).Seconds(), "database", a.dbPath())
			go a.reloadLoop(cmd.Context(), filter)
			a.log.Info("effective configuration", "dns", cfg.Addr, "upstreams", strings.Join(cfg.Upstreams, ","),
				"timeout", cfg.Timeout, "max_in_flight", cfg.MaxInFlight, "data", a.dataDir)
			err = srv.ListenAndServe(cmd.Context(), func() { a.log.Info("serving DNS", "addr", cfg.Addr) })
			c := &srv.Counters
			a.log.Info("stopped", "allowed", c.Allowed.Load(), "blocked", c.Blocked.Load(), "refused", c.Refused.Load(),
				"servfail", c.ServFail.Load())
			return err
		},
	}
	cmd.Flags().StringVar(&cfg.Addr, "dns", cfg.Addr, "listen address for DNS, UDP and TCP")
	cmd.Flags().StringVar(&upstreams, "upstream", "", "upstream resolvers, IP[:port] comma-separated (default: /etc/resolv.conf)")
	return cmd
}

// loadSnapshot opens the database just long enough to read the lists and
// the policy, so the CLI can edit them while serve runs.
func (a *app) loadSnapshot() (*categories.Snapshot, error) {
	s, err := store.Open(a.dbPath(), a.tax, store.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.LoadSnapshot()
}

// reloadLoop swaps in a new snapshot when the database changes (an edit
// through the CLI) or on SIGHUP. A failed reload keeps the last good lists in
// service and is logged.
func (a *app) reloadLoop(ctx context.Context, filter *categories.Filter) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	lastMod := modTime(a.dbPath())
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		case <-tick.C:
			if m := modTime(a.dbPath()); m.Equal(lastMod) {
				continue
			} else {
				lastMod = m
			}
		}
		start := time.Now()
		if err := filter.Reload(a.loadSnapshot); err != nil {
			a.log.Error("reload failed", "err", err)
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
