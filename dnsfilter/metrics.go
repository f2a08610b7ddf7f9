package dnsfilter

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories"
)

// Result is how a query ended, the label of hedgerow_dns_queries_total.
type Result int

// Results.
const (
	ResultAllowed Result = iota
	ResultBlocked
	ResultRefused
	ResultServFail
	ResultDropped // overload or malformed
	numResults
)

var resultNames = [numResults]string{"allowed", "blocked", "refused", "servfail", "dropped"}

// Metrics are the DNS filter's Prometheus metrics. Every child the hot path
// touches is resolved ahead of time, so counting a query is an atomic add,
// never a label lookup.
type Metrics struct {
	queries    *prometheus.CounterVec
	blocks     [64]prometheus.Counter // by category ID
	decision   prometheus.Histogram
	upstream   *prometheus.HistogramVec
	upstreamEr *prometheus.CounterVec
	inflight   prometheus.Gauge
	recorded   prometheus.Counter
	// IncidentsDropped counts attempts the recorder had to let go (its
	// queue or ring was full): never silent.
	IncidentsDropped prometheus.Counter
	noGroup          [numResults]prometheus.Counter // queries from unmapped sources

	reg    prometheus.Registerer
	mu     sync.Mutex
	groups atomic.Pointer[map[string]*[numResults]prometheus.Counter]
}

// NewMetrics registers the DNS filter's metrics with reg.
func NewMetrics(reg prometheus.Registerer, tax *categories.Taxonomy) *Metrics {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedgerow_dns_queries_total",
			Help: "DNS queries answered, by result (allowed, blocked, refused, servfail, dropped) and group (\"none\" for unmapped sources).",
		}, []string{"result", "group"}),
		decision: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hedgerow_dns_decision_seconds",
			Help:    "Time to identify the client and decide a query name, excluding upstream time.",
			Buckets: prometheus.ExponentialBuckets(0.0000005, 2, 14), // 0.5 µs to 4 ms
		}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hedgerow_dns_upstream_seconds",
			Help:    "Latency of exchanges with upstream resolvers, by upstream.",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 16), // 0.25 ms to 8 s
		}, []string{"upstream"}),
		upstreamEr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedgerow_dns_upstream_errors_total",
			Help: "Failed exchanges with upstream resolvers, by upstream.",
		}, []string{"upstream"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hedgerow_dns_inflight_queries",
			Help: "Queries being handled right now.",
		}),
		recorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hedgerow_dns_attempts_recorded_total",
			Help: "Blocked queries handed to the incident recorder.",
		}),
		IncidentsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hedgerow_incidents_dropped_total",
			Help: "Blocked attempts the incident recorder could not keep.",
		}),
	}
	blocks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedgerow_dns_blocks_total",
		Help: "Blocked DNS queries by deciding category and its severity.",
	}, []string{"category", "severity"})
	for _, c := range tax.All() {
		m.blocks[c.ID] = blocks.WithLabelValues(c.Slug, c.Severity.String())
	}
	for r := range numResults {
		m.noGroup[r] = m.queries.WithLabelValues(resultNames[r], "none")
	}
	m.reg = reg
	empty := map[string]*[numResults]prometheus.Counter{}
	m.groups.Store(&empty)
	reg.MustRegister(m.queries, blocks, m.decision, m.upstream, m.upstreamEr, m.inflight, m.recorded, m.IncidentsDropped)
	return m
}

// watchCache exports the cache's counters, read when Prometheus scrapes.
func (m *Metrics) watchCache(reg prometheus.Registerer, c *Cache) {
	counter := func(name, help string, v func(CacheStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(c.Stats())) })
	}
	reg.MustRegister(
		counter("hedgerow_dns_cache_hits_total", "Allowed queries answered fresh from the cache.", func(s CacheStats) uint64 { return s.Hits }),
		counter("hedgerow_dns_cache_misses_total", "Allowed queries the cache could not answer.", func(s CacheStats) uint64 { return s.Misses }),
		counter("hedgerow_dns_cache_stale_total", "Stale answers served while upstreams failed (RFC 8767).", func(s CacheStats) uint64 { return s.Stale }),
		counter("hedgerow_dns_cache_evictions_total", "Cache entries pushed out to make room.", func(s CacheStats) uint64 { return s.Evictions }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hedgerow_dns_cache_entries", Help: "Entries in the cache."},
			func() float64 { return float64(c.Len()) }),
	)
}

// query counts one answered query.
func (m *Metrics) query(group string, r Result) {
	if group == "" {
		m.noGroup[r].Inc()
		return
	}
	if cs, ok := (*m.groups.Load())[group]; ok {
		cs[r].Inc()
		return
	}
	m.newGroup(group)[r].Inc()
}

// newGroup resolves the counters of a group seen for the first time (groups
// can be added while serving); readers never wait for it.
func (m *Metrics) newGroup(group string) *[numResults]prometheus.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.groups.Load()
	if cs, ok := old[group]; ok {
		return cs
	}
	cs := new([numResults]prometheus.Counter)
	for r := range numResults {
		cs[r] = m.queries.WithLabelValues(resultNames[r], group)
	}
	next := make(map[string]*[numResults]prometheus.Counter, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[group] = cs
	m.groups.Store(&next)
	return cs
}

// blocked counts a block by its deciding category.
func (m *Metrics) blocked(v categories.Verdict) {
	if v.Category != nil {
		m.blocks[v.Category.ID].Inc()
	}
}

// observeUpstream records one upstream exchange.
func (m *Metrics) observeUpstream(upstream string, d time.Duration, err error) {
	if err != nil {
		m.upstreamEr.WithLabelValues(upstream).Inc()
		return
	}
	m.upstream.WithLabelValues(upstream).Observe(d.Seconds())
}
