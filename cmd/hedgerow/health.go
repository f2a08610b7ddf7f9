package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"hedgerow/categories"
	"hedgerow/dnsfilter"
	"hedgerow/store"
)

// health answers /healthz and /readyz for a running serve.
type health struct {
	a       *app
	started time.Time
	filter  *categories.Filter
	dns     *dnsfilter.Server
	writer  *store.IncidentWriter
}

// Readiness is what /readyz reports and hedgerow status prints.
type Readiness struct {
	Ready         bool                       `json:"ready"`
	Problems      []string                   `json:"problems,omitempty"`
	Version       string                     `json:"version"`
	Started       time.Time                  `json:"started"`
	UptimeSeconds float64                    `json:"uptime_seconds"`
	Lists         ListsHealth                `json:"lists"`
	Feeds         []FeedHealth               `json:"feeds"` // every imported feed, the starter lists included; null when the database could not be read
	Store         string                     `json:"store"` // "ok", "busy" (another command holds it), or the error
	Upstreams     []dnsfilter.UpstreamHealth `json:"upstreams"`
	Incidents     store.WriterStats          `json:"incidents"`
}

// ListsHealth describes the lists in service.
type ListsHealth struct {
	Entries         int       `json:"entries"`
	Domains         int       `json:"domains"`
	URLs            int       `json:"urls"`
	LoadedAt        time.Time `json:"loaded_at"`
	LastReloadError string    `json:"last_reload_error,omitempty"`
}

// FeedHealth is an imported feed's last update check as the database
// records it, whichever process ran it (serve's schedule or hedgerow lists
// update).
type FeedHealth struct {
	Name        string    `json:"name"`
	Entries     int       `json:"entries"`
	LastResult  string    `json:"last_result,omitempty"` // store.FeedUpdated, FeedNotModified, FeedFailed or FeedRefused; empty before the first check
	LastError   string    `json:"last_error,omitempty"`  // why the last check failed or was refused
	CheckedAt   time.Time `json:"checked_at,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"` // the import, or the last check that found the entries current
	Failures    int       `json:"failures,omitempty"`    // failed or refused checks since the last success
}

func feedHealth(i store.FeedInfo) FeedHealth {
	return FeedHealth{Name: i.Name, Entries: i.Domains + i.URLs + i.Exceptions, LastResult: i.LastResult, LastError: i.LastError,
		CheckedAt: i.CheckedAt, LastSuccess: i.LastSuccess(), Failures: i.Failures}
}

// Failing says whether the feed's last check failed or was refused. That
// is a warning, not a reason to be unready: its old entries stay in service.
func (f FeedHealth) Failing() bool {
	return f.LastResult == store.FeedFailed || f.LastResult == store.FeedRefused
}

// version is the module version and VCS revision the binary was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

// check reports readiness: lists loaded, the store readable, at least one
// upstream answering.
func (h *health) check(ctx context.Context) Readiness {
	r := Readiness{Version: version(), Started: h.started, UptimeSeconds: time.Since(h.started).Seconds(), Store: "ok"}
	snap := h.filter.Current()
	idx := snap.Index()
	loaded, lastErr, _ := h.filter.Status()
	r.Lists = ListsHealth{Entries: idx.Len(), Domains: idx.Domains(), URLs: idx.URLs(), LoadedAt: loaded}
	if lastErr != nil {
		r.Lists.LastReloadError = lastErr.Error()
		r.Problems = append(r.Problems, "the last reload failed; the lists before it stay in service")
	}
	if idx.Len() == 0 {
		r.Problems = append(r.Problems, "no list entries loaded")
	}
	var feeds []store.FeedInfo
	var feedsErr error
	if err := h.a.readStore(func(s *store.Store) error {
		feeds, feedsErr = s.Feeds()
		return nil
	}); errors.Is(err, store.ErrLocked) {
		r.Store = "busy"
	} else if err != nil {
		r.Store = err.Error()
		r.Problems = append(r.Problems, "the database cannot be opened")
	} else if feedsErr != nil {
		r.Store = feedsErr.Error()
		r.Problems = append(r.Problems, "the feeds' records in the database cannot be read")
	} else {
		r.Feeds = make([]FeedHealth, 0, len(feeds))
		for _, f := range feeds {
			r.Feeds = append(r.Feeds, feedHealth(f))
		}
	}
	probeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r.Upstreams = h.dns.ProbeUpstreams(probeCtx)
	answering := false
	for _, u := range r.Upstreams {
		answering = answering || u.OK
	}
	if !answering {
		r.Problems = append(r.Problems, "no upstream resolver answers")
	}
	r.Incidents = h.writer.Stats()
	r.Ready = len(r.Problems) == 0 || (len(r.Problems) == 1 && lastErr != nil)
	return r
}

func (h *health) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	rd := h.check(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rd)
}

// statusCommand prints a running serve's readiness for a person.
func (a *app) statusCommand() *cobra.Command {
	var adminAddr string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--admin ADDR]",
		Short: "Is the running filter healthy: version, uptime, lists, database, upstreams, incident queue",
		Long: `status asks the running hedgerow serve (its admin listener's /readyz) how it is and prints
the answer. It exits 0 when the filter is ready, 1 when it is not, and 2 when it cannot be reached.`,
		Example: "  hedgerow status\n  hedgerow status --admin 10.0.0.53:9153 --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			client := &http.Client{Timeout: 10 * time.Second}
			resp, err := client.Get("http://" + adminAddr + "/readyz")
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("status: hedgerow serve does not answer at %s: %w", adminAddr, err)}
			}
			defer resp.Body.Close()
			var rd Readiness
			if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rd); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("status: %s/readyz: %w", adminAddr, err)}
			}
			if asJSON {
				if err := a.printJSON(rd); err != nil {
					return err
				}
			} else {
				a.printReadiness(rd)
			}
			if !rd.Ready {
				return &exitError{code: 1, err: errors.New("status: not ready")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&adminAddr, "admin", "127.0.0.1:9153", "the admin listener of hedgerow serve")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printReadiness(rd Readiness) {
	w := a.stdout
	state := "ready"
	if !rd.Ready {
		state = "NOT READY"
	}
	fmt.Fprintf(w, "hedgerow %s: %s, up %s (since %s)\n", rd.Version, state,
		(time.Duration(rd.UptimeSeconds) * time.Second).String(), rd.Started.Local().Format("2006-01-02 15:04"))
	for _, p := range rd.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	fmt.Fprintf(w, "lists:     %d entries (%d domains, %d URLs), loaded %s\n", rd.Lists.Entries, rd.Lists.Domains, rd.Lists.URLs,
		rd.Lists.LoadedAt.Local().Format("2006-01-02 15:04:05"))
	if rd.Lists.LastReloadError != "" {
		fmt.Fprintf(w, "           last reload failed: %s\n", rd.Lists.LastReloadError)
	}
	a.printFeeds(rd.Feeds)
	fmt.Fprintf(w, "database:  %s\n", rd.Store)
	for _, u := range rd.Upstreams {
		if u.OK {
			fmt.Fprintf(w, "upstream:  %s answers (%s)\n", u.Upstream, u.RTT.Round(time.Microsecond))
		} else {
			fmt.Fprintf(w, "upstream:  %s DOES NOT ANSWER: %s\n", u.Upstream, u.Error)
		}
	}
	fmt.Fprintf(w, "incidents: %d waiting to be written, %d attempts written, %d dropped\n",
		rd.Incidents.Queued, rd.Incidents.Attempts, rd.Incidents.Dropped)
}

// printFeeds writes how many feeds there are and a line for each whose
// last update check failed or was refused.
func (a *app) printFeeds(feeds []FeedHealth) {
	w := a.stdout
	if feeds == nil {
		fmt.Fprintln(w, "feeds:     unknown (the database could not be read)")
		return
	}
	var failing []FeedHealth
	for _, f := range feeds {
		if f.Failing() {
			failing = append(failing, f)
		}
	}
	if len(failing) == 0 {
		fmt.Fprintf(w, "feeds:     %d, none failing to update\n", len(feeds))
		return
	}
	fmt.Fprintf(w, "feeds:     %d, %d failing to update (their old entries stay in service):\n", len(feeds), len(failing))
	for _, f := range failing {
		fmt.Fprintf(w, "           %s: last check %s at %s, %d time(s) since the last success (%s): %s\n", f.Name, strings.ToUpper(f.LastResult),
			f.CheckedAt.Local().Format("2006-01-02 15:04:05"), f.Failures, f.LastSuccess.Local().Format("2006-01-02 15:04:05"), f.LastError)
	}
}
