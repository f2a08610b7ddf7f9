package alert

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the alert counters. Every channel's series exists from the
// start at zero, so a rule such as increase(hedgerow_alerts_failed_total[1h])
// > 0 works before the first failure.
type Metrics struct {
	sent    map[string]prometheus.Counter // by channel; read-only after NewMetrics
	failed  map[string]prometheus.Counter
	dropped prometheus.Counter
}

// NewMetrics makes the alert counters and registers them with reg (nil: not
// registered; registering twice with one registry panics, as
// prometheus.MustRegister does everywhere else in hedgerow):
//
//	hedgerow_alerts_sent_total{channel}    alerts delivered
//	hedgerow_alerts_failed_total{channel}  failed tries, each one
//	hedgerow_alerts_dropped_total          alerts never delivered: queue full, refused, gave up after MaxTries, or left at shutdown
func NewMetrics(reg prometheus.Registerer) *Metrics {
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedgerow_alerts_sent_total",
		Help: "Alerts delivered, by channel (webhook, smtp, syslog).",
	}, []string{"channel"})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hedgerow_alerts_failed_total",
		Help: "Failed tries to deliver an alert, by channel; a retried alert counts each try.",
	}, []string{"channel"})
	m := &Metrics{
		sent:   map[string]prometheus.Counter{},
		failed: map[string]prometheus.Counter{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hedgerow_alerts_dropped_total",
			Help: "Alerts never delivered: queue full, refused by the receiver, given up after the last try, or still queued at shutdown.",
		}),
	}
	for _, ch := range []string{ChannelWebhook, ChannelSMTP, ChannelSyslog} {
		m.sent[ch] = sent.WithLabelValues(ch)
		m.failed[ch] = failed.WithLabelValues(ch)
	}
	if reg != nil {
		reg.MustRegister(sent, failed, m.dropped)
	}
	return m
}
