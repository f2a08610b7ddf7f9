package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/admin"
	"hedgerow/categories"
	"hedgerow/store"
)

// newAdminUI builds the admin UI and API for serve. Edits made there reach
// the running filter through reloadNow, within a second.
func (a *app) newAdminUI(cfg Config, filter *categories.Filter, h *health, restrictions *categories.Restrictions, reg prometheus.Registerer, reloadNow chan<- struct{}) (*admin.Server, error) {
	if err := a.ensureFirstAdmin(); err != nil {
		return nil, err
	}
	return admin.New(admin.Config{Hosts: cfg.AdminUI.Hosts, SessionIdle: cfg.AdminUI.SessionIdle.D(), SessionMax: cfg.AdminUI.SessionMax.D(),
		SelftestDir: filepath.Join(cfg.Data, "selftest"), FeedSchedule: feedSchedule(cfg.Feeds)},
		admin.Deps{
			Read:         a.readStore,
			Write:        a.writeExisting,
			Filter:       filter,
			Restrictions: restrictions,
			Changed: func() {
				select {
				case reloadNow <- struct{}{}:
				default: // a reload is already due
				}
			},
			Health: func(ctx context.Context) admin.FilterHealth { return adminHealth(h.check(ctx)) },
			RunSelftest: func(ctx context.Context, who string) (string, string, error) {
				rep, path, err := a.runSelftest(ctx, cfg, selftestFlags{perCategory: 3}, who)
				if err != nil {
					return "", "", err
				}
				return filepath.Base(path), fmt.Sprintf("Self-test done: %d of %d probes agree with the policy, %d disagree; %d groups probed, %d not from this server.",
					rep.Summary.Passed, rep.Summary.Probes, rep.Summary.Failed, len(rep.Summary.Probed), len(rep.Summary.NotProbed)), nil
			},
			Log:     a.log,
			Now:     a.now,
			Metrics: reg,
		})
}

func adminHealth(r Readiness) admin.FilterHealth {
	fh := admin.FilterHealth{Ready: r.Ready, Problems: r.Problems, Version: r.Version, Entries: r.Lists.Entries,
		LoadedAt: r.Lists.LoadedAt, Queue: int(r.Incidents.Queued), Dropped: r.Incidents.Dropped}
	for _, f := range r.Feeds {
		if f.LastResult == store.FeedFailed || f.LastResult == store.FeedRefused {
			fh.FeedsFailing = append(fh.FeedsFailing, fmt.Sprintf("%s: %s %s", f.Name, f.LastResult, f.LastError))
		}
	}
	for _, u := range r.Upstreams {
		fh.Upstreams = append(fh.Upstreams, admin.UpstreamStatus{Name: u.Upstream, OK: u.OK, Error: u.Error})
	}
	return fh
}

// ensureFirstAdmin makes sure someone can log in: with no account holding
// the admin role, it creates "admin" with a random password and prints it
// once to the log (and never again: only its hash is kept).
func (a *app) ensureFirstAdmin() error {
	return a.withStore(func(s *store.Store) error {
		users, err := s.Users()
		if err != nil {
			return err
		}
		if slices.ContainsFunc(users, func(u store.User) bool { return slices.Contains(u.Roles, store.RoleAdmin) && !u.Disabled }) {
			return nil
		}
		var b [15]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		password := base64.RawURLEncoding.EncodeToString(b[:])
		name := "admin"
		err = s.AddUser("hedgerow", "first start: no administrator account existed", store.User{Name: name, Roles: []string{store.RoleAdmin}}, password)
		if errors.Is(err, store.ErrUserExists) {
			return fmt.Errorf("serve: no enabled account has the admin role, and the name %q is taken: give one the role with hedgerow users", name)
		}
		if err != nil {
			return err
		}
		a.log.Warn("first start: created the admin UI account; log in and change this password (it is not shown again)",
			"user", name, "password", password)
		return nil
	})
}

// feedSchedule says when serve updates the feeds, in words.
func feedSchedule(f FeedsConfig) string {
	switch {
	case f.UpdateEvery <= 0:
		return "only by hand (feeds.update_every is 0)"
	case f.UpdateEvery.D() == 24*time.Hour:
		return "every day at " + f.UpdateAt
	}
	return fmt.Sprintf("every %s from %s", f.UpdateEvery, f.UpdateAt)
}
