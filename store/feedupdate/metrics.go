package feedupdate

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/store"
)

// Metrics export the feeds' update state. A nil *Metrics counts nothing.
//
//	hedgerow_feed_updates_total{feed,result}          update checks, by result (updated, not-modified, failed, refused)
//	hedgerow_feed_last_success_timestamp_seconds{feed} when the feed's entries were last known current (import, update or not-modified check)
//	hedgerow_feed_entries{feed}                        the feed's entries (domains, URL prefixes and exceptions)
//	hedgerow_feed_consecutive_failures{feed}           failed or refused checks since the last success, by any process
//
// Every feed that SetFeeds has seen has all its series, at zero before its
// first check, so a rule on increase(...{result="failed"}) works from the
// start.
type Metrics struct {
	updates     *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	entries     *prometheus.GaugeVec
	failures    *prometheus.GaugeVec

	mu    sync.Mutex
	known map[string]bool // feeds with series
}

// NewMetrics makes the feed metrics and registers them with reg (nil: not
// registered; registering twice with one registry panics, as
// prometheus.MustRegister does everywhere else in hedgerow).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedgerow_feed_updates_total",
			Help: "Update checks of imported feeds by this process, by feed and result (updated, not-modified, failed, refused).",
		}, []string{"feed", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hedgerow_feed_last_success_timestamp_seconds",
			Help: "When the feed's entries were last known to match its source: its import, or the last check that updated it or found it unchanged (Unix time).",
		}, []string{"feed"}),
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hedgerow_feed_entries",
			Help: "Entries of the feed in the database: domains, URL prefixes and exceptions.",
		}, []string{"feed"}),
		// From the feed's record, so that checks run by hedgerow lists
		// update in another process show in serve's metrics too.
		failures: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hedgerow_feed_consecutive_failures",
			Help: "Failed or refused update checks of the feed since its last success, whichever process ran them (0 once a check succeeds).",
		}, []string{"feed"}),
		known: map[string]bool{},
	}
	if reg != nil {
		reg.MustRegister(m.updates, m.lastSuccess, m.entries, m.failures)
	}
	return m
}

// SetFeeds sets the gauges from the feeds' records, gives every feed its
// series and drops the series of feeds that are gone.
func (m *Metrics) SetFeeds(infos []store.FeedInfo) {
	if m == nil {
		return
	}
	seen := make(map[string]bool, len(infos))
	for _, info := range infos {
		seen[info.Name] = true
		m.setFeed(info)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.known {
		if !seen[name] {
			delete(m.known, name)
			m.lastSuccess.DeleteLabelValues(name)
			m.entries.DeleteLabelValues(name)
			m.failures.DeleteLabelValues(name)
			m.updates.DeletePartialMatch(prometheus.Labels{"feed": name})
		}
	}
}

// setFeed sets one feed's gauges from its record.
func (m *Metrics) setFeed(info store.FeedInfo) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.known[info.Name] {
		m.known[info.Name] = true
		for _, r := range store.FeedResults() {
			m.updates.WithLabelValues(info.Name, r)
		}
	}
	if t := info.LastSuccess(); !t.IsZero() {
		m.lastSuccess.WithLabelValues(info.Name).Set(float64(t.UnixNano()) / 1e9)
	}
	m.entries.WithLabelValues(info.Name).Set(float64(info.Domains + info.URLs + info.Exceptions))
	m.failures.WithLabelValues(info.Name).Set(float64(info.Failures))
}

// count adds one check of a feed.
func (m *Metrics) count(feed, result string) {
	if m == nil {
		return
	}
	m.updates.WithLabelValues(feed, result).Inc()
}
