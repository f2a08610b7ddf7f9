package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories/identity"
	"hedgerow/store"
)

// IdentityConfig says where hedgerow learns which device and user is
// behind an address: DHCP lease files, RADIUS accounting, and names IT
// staff give devices.
type IdentityConfig struct {
	Leases  []LeaseFileConfig    `yaml:"leases"`  // lease files to follow
	Poll    Duration             `yaml:"poll"`    // how often lease files are checked for changes; default 5s
	Horizon Duration             `yaml:"horizon"` // how long ended leases and sessions are remembered; default 24h
	RADIUS  RADIUSConfig         `yaml:"radius"`
	Devices []StaticDeviceConfig `yaml:"devices"`
}

// LeaseFileConfig is one DHCP server's lease file.
type LeaseFileConfig struct {
	File   string `yaml:"file"`   // e.g. /var/lib/dhcp/dhcpd.leases
	Format string `yaml:"format"` // isc, kea or dnsmasq
}

// RADIUSConfig is the RADIUS accounting listener.
type RADIUSConfig struct {
	Listen         string   `yaml:"listen"`          // UDP IP:port, e.g. 0.0.0.0:1813; "" is off
	Secret         string   `yaml:"secret"`          // shared secret of the Wi-Fi controller or switch
	Clients        []string `yaml:"clients"`         // addresses or ranges allowed to send accounting; [] is any
	SessionTimeout Duration `yaml:"session_timeout"` // a session with no Interim-Update for this long is over; 0 waits for Stop
}

// StaticDeviceConfig names a device by MAC or address, optionally with a group.
type StaticDeviceConfig struct {
	MAC   string `yaml:"mac"`
	Addr  string `yaml:"addr"`
	Name  string `yaml:"name"`
	Group string `yaml:"group"`
}

func (c IdentityConfig) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	for i, l := range c.Leases {
		key := fmt.Sprintf("identity.leases[%d]", i)
		if strings.TrimSpace(l.File) == "" {
			bad(key+".file", "empty; want the lease file's path, e.g. /var/lib/dhcp/dhcpd.leases")
		}
		if _, err := identity.Format(l.Format).Parser(); err != nil {
			bad(key+".format", "%q: want isc, kea or dnsmasq", l.Format)
		}
	}
	if c.Poll < 0 {
		bad("identity.poll", "%s; want a duration above 0, e.g. 5s", c.Poll)
	}
	if c.Horizon < 0 {
		bad("identity.horizon", "%s; want a duration, e.g. 24h", c.Horizon)
	}
	if r := c.RADIUS; r.Listen != "" {
		if err := checkListenAddr(r.Listen, "0.0.0.0:1813"); err != nil {
			bad("identity.radius.listen", "%v", err)
		}
		if len(r.Secret) < 8 {
			bad("identity.radius.secret", "want the shared secret the controller uses, at least 8 characters")
		}
		for i, cl := range r.Clients {
			if _, err := parsePrefixOrAddr(cl); err != nil {
				bad(fmt.Sprintf("identity.radius.clients[%d]", i), "%q: want an address or CIDR range", cl)
			}
		}
	}
	if _, err := c.staticDevices(); err != nil {
		bad("identity.devices", "%v", err)
	}
	return errs
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	return netip.ParsePrefix(s)
}

func (c IdentityConfig) staticDevices() ([]identity.StaticDevice, error) {
	var out []identity.StaticDevice
	for i, d := range c.Devices {
		sd := identity.StaticDevice{MAC: d.MAC, Name: d.Name, Group: d.Group}
		if d.Addr != "" {
			a, err := netip.ParseAddr(d.Addr)
			if err != nil {
				return nil, fmt.Errorf("device %d: addr %q: want an IP address", i+1, d.Addr)
			}
			sd.Addr = a
		}
		out = append(out, sd)
	}
	// The table checks the rest (one of MAC and address, a name or group).
	return out, identity.NewTable(identity.Options{}).SetStatic(out, nil)
}

// identityParts is the identity table and what feeds it in serve.
type identityParts struct {
	cfg     IdentityConfig
	table   *identity.Table
	devices []identity.StaticDevice
}

func (a *app) newIdentity(cfg IdentityConfig) (*identityParts, error) {
	devices, err := cfg.staticDevices()
	if err != nil {
		return nil, fmt.Errorf("serve: identity.devices: %w", err)
	}
	return &identityParts{cfg: cfg, devices: devices, table: identity.NewTable(identity.Options{Horizon: cfg.Horizon.D()})}, nil
}

// setUsers gives the table the groups of hedgerow's accounts, so a user
// known from RADIUS gets their group; called at every reload.
func (p *identityParts) setUsers(users []store.User) error {
	groups := map[string]string{}
	for _, u := range users {
		if u.Group != "" && !u.Disabled {
			groups[u.Name] = u.Group
		}
	}
	return p.table.SetStatic(p.devices, groups)
}

// start follows the lease files and listens for RADIUS accounting until
// ctx ends. A lease file that cannot be read yet is logged and retried: the
// DHCP server may start after hedgerow.
func (p *identityParts) start(ctx context.Context, log *slog.Logger, reg prometheus.Registerer) error {
	for _, l := range p.cfg.Leases {
		f, err := identity.NewFollower(p.table, identity.FollowerConfig{Path: l.File, Format: identity.Format(l.Format), Every: p.cfg.Poll.D()}, log, reg)
		if err != nil {
			return fmt.Errorf("serve: identity.leases %s: %w", l.File, err)
		}
		go func() {
			if err := f.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("lease file follower stopped", "file", l.File, "err", err)
			}
		}()
		log.Info("following DHCP leases", "file", l.File, "format", l.Format)
	}
	go func() {
		// History past the horizon is personal data no incident needs.
		tick := time.NewTicker(time.Hour)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				p.table.Prune()
			}
		}
	}()
	if r := p.cfg.RADIUS; r.Listen != "" {
		var clients []netip.Prefix
		for _, c := range r.Clients {
			pfx, _ := parsePrefixOrAddr(c) // validated
			clients = append(clients, pfx)
		}
		acct, err := identity.NewAccounting(p.table, identity.AccountingConfig{Addr: r.Listen, Secret: r.Secret, Clients: clients,
			SessionTimeout: r.SessionTimeout.D()}, log, reg)
		if err != nil {
			return fmt.Errorf("serve: identity.radius: %w", err)
		}
		go func() {
			if err := acct.ListenAndServe(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("RADIUS accounting listener stopped", "listen", r.Listen, "err", err)
			}
		}()
		log.Info("listening for RADIUS accounting", "listen", r.Listen)
	}
	return nil
}
