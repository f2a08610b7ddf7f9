package main

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories"
	"hedgerow/store"
)

// restrictPattern limits the device behind a pattern incident to approved
// sites for a while (incidents.pattern_restrict). The log names the
// incident, not the device: who it was is for the DSL, in the admin UI.
func restrictPattern(log *slog.Logger, r *categories.Restrictions, in store.Incident, d time.Duration) {
	addr, err := netip.ParseAddr(in.Client)
	if err != nil {
		log.Warn("pattern incident without a device address: not restricted", "incident", in.ID)
		return
	}
	until := in.Last.Add(d)
	r.Restrict(addr, until)
	log.Info("device restricted to approved sites after a pattern", "incident", in.ID, "until", until.Format(time.RFC3339))
}

// watchRestrictions exports how many devices are restricted now.
func watchRestrictions(reg prometheus.Registerer, r *categories.Restrictions) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hedgerow_restricted_devices",
		Help: "Devices restricted to approved sites after a pattern of attempts (incidents.pattern_restrict)."},
		func() float64 { return float64(len(r.List(time.Now()))) }))
}
