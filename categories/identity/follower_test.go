package identity

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"hedgerow/e2e/metrictest"
)

// syncBuffer is a log sink the follower's goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lintMetrics checks the registered names against Prometheus conventions.
func lintMetrics(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "hedgerow_identity_") {
			t.Errorf("metric %s is not named hedgerow_identity_*", mf.GetName())
		}
	}
}

// replaceFile writes a lease file the way dhcpd rewrites one: a new file
// renamed into place, so that a reader never sees half of it. mtime, when
// not zero, is set as the file's modification time.
func replaceFile(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond, boundedly, until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

func iscStamp(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d %s", t.Weekday(), t.Format("2006/01/02 15:04:05"))
}

func iscLease(addr, mac, host string, start, end time.Time, state string) string {
	return fmt.Sprintf("lease %s {\n  starts %s;\n  ends %s;\n  cltt %s;\n  binding state %s;\n  next binding state free;\n  hardware ethernet %s;\n  client-hostname \"%s\";\n}\n",
		addr, iscStamp(start), iscStamp(end), iscStamp(start), state, mac, host)
}

// leaseMove is one format's lease file before and after the address moved
// from laptop A to laptop B at the moment move.
type leaseMove struct {
	format        Format
	file          string
	before, after func(move time.Time) string
	// mtime gives the file's modification time: dnsmasq's file says when
	// leases end but not when they start, so the time it changed does.
	mtime bool
}

func leaseMoves() []leaseMove {
	const addr, a, b = "10.20.0.5", "00:16:3e:00:00:0a", "00:16:3e:00:00:0b"
	return []leaseMove{
		{
			format: FormatISC, file: "dhcpd.leases",
			before: func(move time.Time) string {
				return iscHeader + iscLease(addr, a, "laptop-a", move.Add(-2*time.Hour), move.Add(10*time.Hour), "active")
			},
			after: func(move time.Time) string {
				return iscHeader + iscLease(addr, a, "laptop-a", move.Add(-2*time.Hour), move.Add(10*time.Hour), "active") +
					iscLease(addr, a, "laptop-a", move.Add(-2*time.Hour), move, "released") +
					iscLease(addr, b, "laptop-b", move, move.Add(12*time.Hour), "active")
			},
		},
		{
			format: FormatKea, file: "kea-leases4.csv",
			before: func(move time.Time) string {
				return keaHeader4 + keaRow4(addr, a, 43200, move.Add(10*time.Hour), "laptop-a", 0)
			},
			after: func(move time.Time) string {
				return keaHeader4 + keaRow4(addr, a, 43200, move.Add(10*time.Hour), "laptop-a", 0) +
					keaRow4(addr, a, 0, move, "laptop-a", 0) +
					keaRow4(addr, b, 43200, move.Add(12*time.Hour), "laptop-b", 0)
			},
		},
		{
			format: FormatDnsmasq, file: "dnsmasq.leases", mtime: true,
			before: func(move time.Time) string {
				return fmt.Sprintf("%d %s %s laptop-a 01:%s\n", move.Add(10*time.Hour).Unix(), a, addr, a)
			},
			after: func(move time.Time) string {
				return fmt.Sprintf("%d %s %s laptop-b *\n", move.Add(12*time.Hour).Unix(), b, addr)
			},
		},
	}
}

// TestFollowerLeaseMoves follows a lease file in each format while the
// address moves from laptop A to laptop B: a lookup at a moment before the
// move names A, after it B, and a file that fails to parse leaves the last
// good data in service, logged and counted.
func TestFollowerLeaseMoves(t *testing.T) {
	addr := netip.MustParseAddr("10.20.0.5")
	for _, lm := range leaseMoves() {
		t.Run(string(lm.format), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), lm.file)
			move := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
			mtime := func(at time.Time) time.Time {
				if lm.mtime {
					return at
				}
				return time.Time{}
			}
			replaceFile(t, path, lm.before(move), mtime(move.Add(-2*time.Hour)))

			reg := prometheus.NewRegistry()
			logs := &syncBuffer{}
			tb := NewTable(Options{})
			f, err := NewFollower(tb, FollowerConfig{Path: path, Format: lm.format, Every: 5 * time.Millisecond},
				slog.New(slog.NewTextHandler(logs, nil)), reg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			// replace changes the file and waits until the follower has read
			// it: until a read after the last one before the change.
			replace := func(what, content string, mtime time.Time) {
				n := f.Status().Reads
				replaceFile(t, path, content, mtime)
				waitFor(t, what, func() bool { return f.Status().Reads > n })
			}

			waitFor(t, "the first read", func() bool { return f.Status().Reads >= 1 })
			if w := tb.Lookup(addr, move.Add(-time.Hour)); w.Device != "laptop-a" || w.MAC != "00:16:3e:00:00:0a" {
				t.Fatalf("before the move: %+v, want laptop-a", public(w))
			}

			replace("the read after the move", lm.after(move), mtime(move))
			for _, c := range []struct {
				at   time.Time
				want string
			}{
				{move.Add(-time.Hour), "laptop-a"},
				{move.Add(-time.Second), "laptop-a"},
				{move, "laptop-b"},
				{time.Now(), "laptop-b"},
			} {
				w := tb.Lookup(addr, c.at)
				if w.Device != c.want || w.DeviceSource != SourceLease || w.MACSource != SourceLease {
					t.Errorf("Lookup at move%+v: %+v, want %s from the lease", c.at.Sub(move), public(w), c.want)
				}
			}

			// A file that fails to parse: the last good data stays, and the
			// failure is logged and counted.
			failures := []string{"format", string(lm.format), "result", "error"}
			replaceFile(t, path, "lease 10.20.0.5 {\n  starts garbage;\n", time.Time{})
			waitFor(t, "the failed read", func() bool { return f.Status().Failures >= 1 })
			if w := tb.Lookup(addr, time.Now()); w.Device != "laptop-b" {
				t.Errorf("after a bad file: %+v, want laptop-b still", public(w))
			}
			if v, _ := metrictest.Value(t, reg, "hedgerow_identity_lease_reads_total", failures...); v != 1 {
				t.Errorf("failed reads counted %v, want 1", v)
			}
			if st := f.Status(); st.LastErr == nil || !strings.Contains(st.LastErr.Error(), path) {
				t.Errorf("status error %v, want one naming %s", st.LastErr, path)
			}
			if !strings.Contains(logs.String(), "lease file not read") || !strings.Contains(logs.String(), path) {
				t.Errorf("log %q does not report the bad file", logs.String())
			}

			// Fixed again: read again, and the failure is not counted twice.
			replace("the read of the fixed file", lm.after(move), mtime(move))
			if v, _ := metrictest.Value(t, reg, "hedgerow_identity_lease_reads_total", failures...); v != 1 {
				t.Errorf("failed reads counted %v after the fix, want 1", v)
			}
			if st := f.Status(); st.LastErr != nil || st.Leases == 0 {
				t.Errorf("status after the fix: %+v", st)
			}
			lintMetrics(t, reg)
		})
	}
}

// TestFollowerMissingFile starts before the DHCP server has written its
// file: the absence is reported once, and the file is read once it comes.
func TestFollowerMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dnsmasq.leases")
	reg := prometheus.NewRegistry()
	tb := NewTable(Options{})
	f, err := NewFollower(tb, FollowerConfig{Path: path, Format: FormatDnsmasq}, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	// A second follower on the same registry shares the metric.
	if _, err := NewFollower(tb, FollowerConfig{Path: path + "2", Format: FormatISC}, slog.New(slog.DiscardHandler), reg); err != nil {
		t.Fatal(err)
	}
	if err := f.Poll(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Poll of a missing file: %v, want an error naming it", err)
	}
	if err := f.Poll(); err != nil {
		t.Fatalf("second Poll of the missing file: %v, want it reported once", err)
	}
	replaceFile(t, path, fmt.Sprintf("%d 00:16:3e:00:00:0a 10.20.0.6 pc6 *\n", time.Now().Add(time.Hour).Unix()), time.Now().Add(-time.Minute))
	if err := f.Poll(); err != nil {
		t.Fatal(err)
	}
	if w := tb.Lookup(netip.MustParseAddr("10.20.0.6"), time.Now()); w.Device != "pc6" {
		t.Errorf("after the file came: %+v, want pc6", public(w))
	}
	st := f.Status()
	if st.Reads != 1 || st.Failures != 1 || st.Leases != 1 {
		t.Errorf("status %+v, want 1 read, 1 failure, 1 lease", st)
	}
	if err := f.Poll(); err != nil || f.Status().Reads != 1 {
		t.Errorf("Poll of an unchanged file: %v, reads %d; want no re-read", err, f.Status().Reads)
	}
}

func TestNewFollowerErrors(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if _, err := NewFollower(NewTable(Options{}), FollowerConfig{Path: "x", Format: "windows"}, log, nil); err == nil || !strings.Contains(err.Error(), "windows") {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := NewFollower(NewTable(Options{}), FollowerConfig{Format: FormatISC}, log, nil); err == nil {
		t.Error("no path: no error")
	}
}
