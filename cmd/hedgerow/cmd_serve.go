package main

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"hedgerow/categories"
	"hedgerow/dnsfilter"
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
			s, err := a.openStore()
			if err != nil {
				return fmt.Errorf("serve: %w (not serving unfiltered)", err)
			}
			defer s.Close()
			start := time.Now()
			snap, err := s.LoadSnapshot()
			if err != nil {
				return fmt.Errorf("serve: %w (not serving unfiltered)", err)
			}
			filter := categories.NewFilter(snap)
			srv, err := dnsfilter.New(cfg, filter, a.log)
			if err != nil {
				return err
			}
			a.log.Info("lists loaded", "entries", snap.Index().Len(), "domains", snap.Index().Domains(),
				"urls", snap.Index().URLs(), "seconds", time.Since(start).Seconds(), "database", s.Path())
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
