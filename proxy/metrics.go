package proxy

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories"
)

// Results of a proxied request, the label of hedgerow_proxy_requests_total.
const (
	resultAllowed     = "allowed"
	resultBlocked     = "blocked"
	resultRefused     = "refused"       // source address in no mapped range
	resultAuth        = "auth_required" // no or wrong proxy login
	resultBadRequest  = "bad_request"   // malformed, smuggling shapes, misdirected
	resultForbidden   = "forbidden"     // destination or port not allowed
	resultUpstreamErr = "upstream_error"
	resultUnavailable = "unavailable" // the login directory could not be reached
	resultCancelled   = "cancelled"   // the client closed the connection before the answer
)

// Metrics are the proxy's Prometheus metrics, beside the DNS filter's.
type Metrics struct {
	requests    *prometheus.CounterVec
	blocks      *prometheus.CounterVec
	upstream    prometheus.Histogram
	tunnels     prometheus.Gauge
	connects    *prometheus.CounterVec
	limited     *prometheus.CounterVec
	searches    prometheus.Counter
	recorded    prometheus.Counter
	groupCounts sync.Map // [2]string{result, group} -> prometheus.Counter
	reg         prometheus.Registerer
}

// NewMetrics registers the proxy's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedgerow_proxy_requests_total",
			Help: "Proxy requests (CONNECT included) by result (allowed, blocked, refused, auth_required, bad_request, forbidden, upstream_error, unavailable, cancelled) and group (\"none\" before a group is known).",
		}, []string{"result", "group"}),
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedgerow_proxy_blocked_total",
			Help: "Proxy requests blocked, by deciding category (\"none\" for deny rules and allowlist mode) and channel (http, https).",
		}, []string{"category", "channel"}),
		upstream: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hedgerow_proxy_upstream_seconds",
			Help:    "Time from forwarding a request to the origin's response headers.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms to 16 s
		}),
		tunnels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hedgerow_proxy_tunnels_active",
			Help: "CONNECT tunnels and intercepted sessions open now.",
		}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedgerow_proxy_connects_total",
			Help: "CONNECT requests by outcome: tunnelled (spliced without decryption), intercepted (decrypted with the school CA), refused.",
		}, []string{"mode"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hedgerow_proxy_limited_total",
			Help: "Connections or requests turned away by a limit: connections (per client), header_size, header_timeout.",
		}, []string{"limit"}),
		searches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hedgerow_proxy_searches_total",
			Help: "Search-engine searches seen by the proxy (plain HTTP or intercepted).",
		}),
		recorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hedgerow_proxy_attempts_recorded_total",
			Help: "Blocked requests and monitored searches handed to the incident recorder.",
		}),
		reg: reg,
	}
	reg.MustRegister(m.requests, m.blocks, m.upstream, m.tunnels, m.connects, m.limited, m.searches, m.recorded)
	for _, mode := range []string{"tunnelled", "intercepted", "refused"} {
		m.connects.WithLabelValues(mode)
	}
	for _, l := range []string{"connections", "header_size", "header_timeout"} {
		m.limited.WithLabelValues(l)
	}
	return m
}

// request counts one request; the children are cached because label
// lookups are the dearest part of counting.
func (m *Metrics) request(result, group string) {
	if group == "" {
		group = "none"
	}
	k := [2]string{result, group}
	c, ok := m.groupCounts.Load(k)
	if !ok {
		c, _ = m.groupCounts.LoadOrStore(k, m.requests.WithLabelValues(result, group))
	}
	c.(prometheus.Counter).Inc()
}

func (m *Metrics) blocked(v categories.Verdict, channel string) {
	cat := "none"
	if v.Category != nil {
		cat = v.Category.Slug
	}
	m.blocks.WithLabelValues(cat, channel).Inc()
}

// watchCerts exports the leaf certificate cache's counters.
func (m *Metrics) watchCerts(c *LeafCache) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hedgerow_proxy_certificates_minted_total",
			Help: "Leaf certificates minted for intercepted hosts (a cache miss).",
		}, func() float64 { _, misses := c.Stats(); return float64(misses) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hedgerow_proxy_certificates_cached_total",
			Help: "Leaf certificates for intercepted hosts served from the cache.",
		}, func() float64 { hits, _ := c.Stats(); return float64(hits) }),
	)
}
