package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories"
	"hedgerow/dnsfilter"
	"hedgerow/store"
)

// answeringResolver runs a DNS server on loopback that answers every
// query NOERROR (enough for the upstream probe of /readyz) and returns its
// address.
func answeringResolver(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			_ = w.WriteMsg(m)
		})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("test resolver did not start within 10s")
	}
	return pc.LocalAddr().String()
}

// startHealth serves /readyz for the database in data as serve does, with
// an upstream that answers, and returns the admin listener's address.
func startHealth(t *testing.T, data string) string {
	t.Helper()
	a := &app{dataDir: data, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, log: slog.New(slog.DiscardHandler),
		tax: categories.Builtin(), now: time.Now}
	snap, _, err := a.loadState()
	if err != nil {
		t.Fatal(err)
	}
	filter, err := categories.NewFilter(snap)
	if err != nil {
		t.Fatal(err)
	}
	writer := store.NewIncidentWriter(store.WriterConfig{}, a.writeExisting, a.log, nil)
	up, err := dnsfilter.ParseUpstream(answeringResolver(t))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dnsfilter.New(dnsfilter.Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []dnsfilter.Upstream{up}},
		filter, dnsfilter.NewMetrics(prometheus.NewRegistry(), a.tax), writer, a.log)
	if err != nil {
		t.Fatal(err)
	}
	h := &health{a: a, started: time.Now(), filter: filter, dns: srv, writer: writer}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", h.readyz)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// TestStatusFeedUpdates: a feed whose last update check failed or was
// refused shows in /readyz and in hedgerow status, with the reason, while
// the filter stays ready (the old entries are in service); a later good
// update clears it.
func TestStatusFeedUpdates(t *testing.T) {
	fs := &feedServer{}
	fs.set(100, `"a"`, 0)
	list := httptest.NewServer(fs)
	defer list.Close()
	data := t.TempDir()
	if out, errs, code := runCLI(t, data, "", "import", list.URL+"/adult.txt", "--feed", "web", "--category", "adult", "--reason", "provider list"); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	admin := startHealth(t, data)

	steps := []struct {
		name       string
		n          int // entries the list server has
		etag       string
		status     int
		updateExit int
		result     string
		failures   int
		want       []string // in hedgerow status's output
		wantNot    []string
	}{
		{name: "updated", n: 100, etag: `"a"`, result: store.FeedUpdated,
			want: []string{"feeds:     2, none failing to update"}, wantNot: []string{"FAILED", "REFUSED"}},
		{name: "server error", n: 100, etag: `"b"`, status: http.StatusInternalServerError, updateExit: 1, result: store.FeedFailed, failures: 1,
			want: []string{"feeds:     2, 1 failing to update (their old entries stay in service):", "web: last check FAILED at ",
				"1 time(s) since the last success", "HTTP status 500"}},
		{name: "refused", n: 10, etag: `"c"`, updateExit: 1, result: store.FeedRefused, failures: 2,
			want:    []string{"web: last check REFUSED at ", "2 time(s) since the last success", "would remove 90 of its 100 entries"},
			wantNot: []string{"HTTP status 500"}},
		{name: "good again", n: 100, etag: `"d"`, result: store.FeedUpdated,
			want: []string{"feeds:     2, none failing to update"}, wantNot: []string{"FAILED", "REFUSED"}},
	}
	for _, st := range steps {
		fs.set(st.n, st.etag, st.status)
		if out, errs, code := runCLI(t, data, "", "lists", "update", "web"); code != st.updateExit {
			t.Fatalf("%s: lists update: exit %d, want %d\n%s%s", st.name, code, st.updateExit, out, errs)
		}

		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var rd Readiness
		err = json.NewDecoder(resp.Body).Decode(&rd)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !rd.Ready {
			t.Fatalf("%s: /readyz %d ready=%v problems=%v err=%v", st.name, resp.StatusCode, rd.Ready, rd.Problems, err)
		}
		var web, starter *FeedHealth
		for i := range rd.Feeds {
			switch rd.Feeds[i].Name {
			case "web":
				web = &rd.Feeds[i]
			case "starter":
				starter = &rd.Feeds[i]
			}
		}
		if web == nil || starter == nil {
			t.Fatalf("%s: /readyz feeds %+v; want web and starter", st.name, rd.Feeds)
		}
		if web.LastResult != st.result || web.Failures != st.failures || web.Failing() != (st.failures > 0) ||
			(web.LastError != "") != (st.failures > 0) || web.CheckedAt.IsZero() || web.LastSuccess.IsZero() || web.Entries != 100 {
			t.Errorf("%s: /readyz feed web %+v; want result %s after %d failures, still 100 entries", st.name, *web, st.result, st.failures)
		}
		if starter.LastResult != "" || starter.Failing() || starter.Entries == 0 {
			t.Errorf("%s: /readyz starter feed %+v", st.name, *starter)
		}

		out, errs, code := runCLI(t, data, "", "status", "--admin", admin)
		if code != 0 || !strings.Contains(out, ": ready, up ") {
			t.Errorf("%s: status: exit %d (a failing feed is a warning, not unready)\n%s%s", st.name, code, out, errs)
		}
		for _, w := range st.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: status lacks %q:\n%s", st.name, w, out)
			}
		}
		for _, w := range st.wantNot {
			if strings.Contains(out, w) {
				t.Errorf("%s: status says %q:\n%s", st.name, w, out)
			}
		}
	}
}

func TestStatusPrintFeeds(t *testing.T) {
	checked := time.Date(2026, 3, 4, 2, 30, 0, 0, time.Local)
	tests := []struct {
		name  string
		feeds []FeedHealth
		want  []string // lines, in order
	}{
		{name: "database not read", feeds: nil, want: []string{"feeds:     unknown (the database could not be read)"}},
		{name: "none", feeds: []FeedHealth{}, want: []string{"feeds:     0, none failing to update"}},
		{name: "never checked and current", feeds: []FeedHealth{{Name: "starter"}, {Name: "ut1", LastResult: store.FeedNotModified}},
			want: []string{"feeds:     2, none failing to update"}},
		{name: "one failed, one refused", feeds: []FeedHealth{
			{Name: "starter"},
			{Name: "ut1", LastResult: store.FeedFailed, LastError: "download: connection refused", CheckedAt: checked,
				LastSuccess: checked.Add(-48 * time.Hour), Failures: 2},
			{Name: "iwf", LastResult: store.FeedRefused, LastError: "would remove 90 of its 100 entries", CheckedAt: checked,
				LastSuccess: checked.Add(-24 * time.Hour), Failures: 1},
			{Name: "porn", LastResult: store.FeedUpdated},
		}, want: []string{
			"feeds:     4, 2 failing to update (their old entries stay in service):",
			"           ut1: last check FAILED at 2026-03-04 02:30:00, 2 time(s) since the last success (2026-03-02 02:30:00): download: connection refused",
			"           iwf: last check REFUSED at 2026-03-04 02:30:00, 1 time(s) since the last success (2026-03-03 02:30:00): would remove 90 of its 100 entries",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			a := &app{stdout: &out}
			a.printFeeds(tc.feeds)
			if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("printFeeds:\n%s\nwant:\n%s", out.String(), strings.Join(tc.want, "\n"))
			}
		})
	}
}
