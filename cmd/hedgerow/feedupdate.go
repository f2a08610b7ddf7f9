package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/store"
	"hedgerow/store/feedupdate"
)

// newFeedMetrics registers the feed metrics on reg with a series for every
// feed in the database, so that /metrics has them from the first scrape.
// serve calls it before starting feedUpdateLoop (as its argument).
func (a *app) newFeedMetrics(reg prometheus.Registerer) *feedupdate.Metrics {
	m := feedupdate.NewMetrics(reg)
	a.refreshFeedMetrics(m)
	return m
}

// feeds reads every feed's record.
func (a *app) feeds() (infos []store.FeedInfo, err error) {
	err = a.readStore(func(s *store.Store) error {
		infos, err = s.Feeds()
		return err
	})
	return infos, err
}

// refreshFeedMetrics sets the feed gauges from the database; a failure only
// leaves them as they were.
func (a *app) refreshFeedMetrics(m *feedupdate.Metrics) {
	infos, err := a.feeds()
	if err != nil {
		a.log.Warn("feed metrics not refreshed", "err", err)
		return
	}
	m.SetFeeds(infos)
}

// feedUpdateLoop updates the imported feeds on cfg's schedule until ctx
// ends: at update_at, then every update_every. A minute after start it
// also catches up on feeds not checked for longer than update_every (the
// machine was off at night). Each update opens the database only briefly
// (writeExisting), and serve's reloadLoop picks up the change. Between
// runs it keeps the feed gauges in step with imports and updates made with
// the CLI.
func (a *app) feedUpdateLoop(ctx context.Context, cfg FeedsConfig, m *feedupdate.Metrics) {
	every := cfg.UpdateEvery.D()
	hour, minute, err := cfg.at()
	if err != nil { // Validate has said so already
		a.log.Error("scheduled list updates are off", "err", err)
		return
	}
	u, err := feedupdate.New(feedupdate.Options{Open: a.writeExisting, Taxonomy: a.tax,
		MaxRemoval: cfg.MaxRemoval, Timeout: cfg.Timeout.D(), Metrics: m})
	if err != nil {
		a.log.Error("scheduled list updates are off", "err", err)
		return
	}
	var next time.Time
	var catchUp <-chan time.Time
	if every > 0 {
		next = firstFeedUpdate(time.Now(), hour, minute, every)
		catchUp = time.After(time.Minute)
		a.log.Info("scheduled list updates", "next", next.Format(time.DateTime), "every", every.String())
	} else {
		a.log.Info("scheduled list updates are off (feeds.update_every: 0); hedgerow lists update runs them by hand")
	}
	// A stat of the database file; the records are read again only when it
	// changed, so a check run with hedgerow lists update shows in /metrics
	// within seconds.
	refresh := time.NewTicker(5 * time.Second)
	defer refresh.Stop()
	lastMod := modTime(a.dbPath())
	for {
		var due <-chan time.Time
		timer := time.NewTimer(time.Until(next))
		if every > 0 {
			due = timer.C
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-refresh.C:
			if mod := modTime(a.dbPath()); !mod.Equal(lastMod) {
				lastMod = mod
				a.refreshFeedMetrics(m)
			}
		case <-catchUp:
			catchUp = nil
			a.updateFeeds(ctx, u, m, func(f store.FeedInfo) bool {
				last := f.CheckedAt
				if f.ImportedAt.After(last) {
					last = f.ImportedAt
				}
				return time.Since(last) > every
			})
		case <-due:
			a.updateFeeds(ctx, u, m, func(store.FeedInfo) bool { return true })
			next = nextFeedUpdate(next, time.Now(), every)
			a.log.Info("next scheduled list update", "at", next.Format(time.DateTime))
		}
		timer.Stop()
	}
}

// updateFeeds updates, one after another, the updatable feeds that due
// selects, and logs each result.
func (a *app) updateFeeds(ctx context.Context, u *feedupdate.Updater, m *feedupdate.Metrics, due func(store.FeedInfo) bool) {
	infos, err := a.feeds()
	if err != nil {
		a.log.Error("list update: cannot read the feeds; will try at the next scheduled time", "err", err)
		return
	}
	for _, info := range infos {
		if info.Updatable() != nil || !due(info) {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		res := u.Update(ctx, info.Name, feedupdate.Request{})
		args := []any{"feed", res.Feed, "result", res.Result, "added", res.Change.Added, "removed", res.Change.Removed,
			"kept", res.Change.Kept, "entries", res.Entries, "seconds", res.Seconds}
		switch res.Result {
		case store.FeedUpdated, store.FeedNotModified:
			a.log.Info("list update", args...)
		default:
			a.log.Warn("list update: the old entries stay in service", append(args, "err", res.Err)...)
		}
	}
	a.refreshFeedMetrics(m)
}

// firstFeedUpdate is the first scheduled update after now: update_at
// (local time) on the next day it comes or, for intervals under a day,
// the first of update_at plus whole multiples of the interval.
func firstFeedUpdate(now time.Time, hour, minute int, every time.Duration) time.Time {
	y, mo, d := now.Date()
	t := time.Date(y, mo, d, hour, minute, 0, 0, now.Location())
	if every < 24*time.Hour {
		for t.After(now) { // at most a day's worth of steps: every is at least an hour
			t = t.Add(-every)
		}
		for !t.After(now) {
			t = t.Add(every)
		}
		return t
	}
	if !t.After(now) {
		t = t.AddDate(0, 0, 1)
	}
	return t
}

// nextFeedUpdate is the first slot after prev that is after now: slots
// missed while an update ran long (or the machine slept) are skipped.
// Whole days are counted on the calendar, so a nightly update stays at
// update_at across the clock changes.
func nextFeedUpdate(prev, now time.Time, every time.Duration) time.Time {
	step := func(t time.Time) time.Time {
		if every%(24*time.Hour) == 0 {
			return t.AddDate(0, 0, int(every/(24*time.Hour)))
		}
		return t.Add(every)
	}
	t := step(prev)
	for !t.After(now) {
		t = step(t)
	}
	return t
}

// runListsUpdate is `hedgerow lists update`: the named feeds, or every
// updatable one, updated now with progress and a line per feed.
func (a *app) runListsUpdate(ctx context.Context, names []string, force, asJSON bool, maxRemoval float64, timeout time.Duration) error {
	if !(maxRemoval > 0 && maxRemoval <= 1) {
		return fmt.Errorf("lists update: --max-removal %v; want a fraction above 0 and at most 1, e.g. 0.5", maxRemoval)
	}
	if timeout <= 0 {
		return fmt.Errorf("lists update: --timeout %s; want a duration above 0, e.g. 10m", timeout)
	}
	var infos []store.FeedInfo
	if err := a.readStore(func(s *store.Store) error {
		var err error
		infos, err = s.Feeds()
		return err
	}); err != nil {
		return err
	}
	targets, err := feedsToUpdate(infos, names)
	if err != nil {
		return err
	}
	results := []feedupdate.Result{}
	if len(targets) == 0 {
		if asJSON {
			return a.printJSON(results)
		}
		fmt.Fprintln(a.stdout, "no feeds to update: only the starter lists are installed (add a list with hedgerow import SOURCE --feed NAME)")
		return nil
	}
	u, err := feedupdate.New(feedupdate.Options{Open: a.writeExisting, Taxonomy: a.tax, Actor: actor(), MaxRemoval: maxRemoval, Timeout: timeout})
	if err != nil {
		return err
	}
	bad := 0
	for _, info := range targets {
		p := a.progress("feed " + info.Name)
		res := u.Update(ctx, info.Name, feedupdate.Request{Force: force, Progress: p.update})
		p.done()
		results = append(results, res)
		if res.Result == store.FeedFailed || res.Result == store.FeedRefused {
			bad++
		}
		if !asJSON {
			a.printFeedResult(res)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if asJSON {
		if err := a.printJSON(results); err != nil {
			return err
		}
	}
	if bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d feeds not updated (failed or refused); their old entries stay in service", bad, len(results))}
	}
	return nil
}

// feedsToUpdate picks the named feeds, each of which must exist and be
// updatable, or with no names every updatable feed.
func feedsToUpdate(infos []store.FeedInfo, names []string) ([]store.FeedInfo, error) {
	if len(names) == 0 {
		var out []store.FeedInfo
		for _, info := range infos {
			if info.Updatable() == nil {
				out = append(out, info)
			}
		}
		return out, nil
	}
	byName := map[string]store.FeedInfo{}
	for _, info := range infos {
		byName[info.Name] = info
	}
	var out []store.FeedInfo
	var errs []error
	for _, name := range names {
		info, ok := byName[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("lists update %s: no such feed (hedgerow lists feeds shows them)", name))
		case info.Updatable() != nil:
			errs = append(errs, fmt.Errorf("lists update: %w", info.Updatable()))
		default:
			out = append(out, info)
		}
	}
	return out, errors.Join(errs...)
}

// printFeedResult writes one feed's summary line.
func (a *app) printFeedResult(r feedupdate.Result) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", r.Feed, r.Result)
	switch r.Result {
	case store.FeedUpdated:
		fmt.Fprintf(&b, ": %d added, %d removed, %d kept; %d entries", r.Change.Added, r.Change.Removed, r.Change.Kept, r.Entries)
		if r.Malformed > 0 {
			fmt.Fprintf(&b, "; %d malformed lines skipped", r.Malformed)
		}
	case store.FeedNotModified:
		fmt.Fprintf(&b, ": %d entries", r.Entries)
	default:
		fmt.Fprintf(&b, ": %s", r.Error)
	}
	fmt.Fprintf(&b, " (%.1fs)\n", r.Seconds)
	fmt.Fprint(a.stdout, b.String())
}
