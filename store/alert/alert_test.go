package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/textproto"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/store"
)

// The identities in testIncident: none may appear in logs, and only with
// Identities in alerts.
const (
	testDevice = "10.1.2.3"
	testUser   = "pupil.name"
	testSecret = "correct horse battery staple"
	adminURL   = "https://hedgerow.school.example:9153"
)

func testIncident() store.Incident {
	return store.Incident{ID: 42, First: time.Date(2026, 3, 2, 10, 42, 5, 0, time.UTC),
		Last: time.Date(2026, 3, 2, 10, 42, 9, 0, time.UTC), Count: 3, Channel: "https", Client: testDevice,
		User: testUser, Group: "ks2", Host: "bad.example", URL: "https://bad.example/private-path",
		SearchTerm: "private search", Category: "child-abuse", Severity: "critical", Rule: "critical",
		Blocked: true, Review: true, State: store.StateNew,
		Notes: []store.Note{{Actor: "dsl", Text: "private note"}}}
}

// syncBuffer collects log output from several goroutines.
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

// newTest returns a dispatcher whose metrics are in reg and whose logs are
// checked, at the end of the test, for identities and secret-bearing
// strings (forbidden).
func newTest(t *testing.T, cfg Config, forbidden ...string) (*Dispatcher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	d, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), NewMetrics(reg))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// Registered before run's cleanup, so it runs after Run has returned.
	t.Cleanup(func() {
		out := logs.String()
		for _, f := range append([]string{testDevice, testUser, testSecret, "private"}, forbidden...) {
			if strings.Contains(out, f) {
				t.Errorf("logs contain %q:\n%s", f, out)
			}
		}
		if t.Failed() {
			t.Logf("logs:\n%s", out)
		}
	})
	return d, reg
}

// run starts d.Run; the returned stop (also a cleanup) cancels it and
// waits for it to return.
func run(t *testing.T, d *Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(done)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// counter reads a counter from reg; channel "" for the unlabelled one.
func counter(t *testing.T, reg *prometheus.Registry, name, channel string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "channel" {
					got = lp.GetValue()
				}
			}
			if got == channel {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{channel=%q}", name, channel)
	return 0
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// verify checks a webhook request's headers and signature and returns its
// decoded body.
func verify(t *testing.T, r *http.Request, body []byte) map[string]any {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	ts := r.Header.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		t.Errorf("%s = %q: want unix seconds near now", HeaderTimestamp, ts)
	}
	// Recomputed here as a receiver would, not with Sign.
	want := "sha256=" + hmacHex(testSecret, ts+"."+string(body))
	if got := r.Header.Get(HeaderSignature); !hmac.Equal([]byte(got), []byte(want)) {
		t.Errorf("%s = %q, want %q", HeaderSignature, got, want)
	}
	if Sign(testSecret, ts, body) != want {
		t.Errorf("Sign disagrees with the documented scheme")
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return m
}

func TestWebhookRetriesThenDelivers(t *testing.T) {
	var tries atomic.Int32
	got := make(chan map[string]any, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if n := tries.Add(1); n <= 2 {
			http.Error(w, "busy", http.StatusInternalServerError)
			return
		}
		got <- verify(t, r, body)
	}))
	defer srv.Close()

	d, reg := newTest(t, Config{Webhook: &WebhookConfig{URL: srv.URL + "/hook", Secret: testSecret},
		AdminURL: adminURL + "/", MaxTries: 4, Backoff: 5 * time.Millisecond})
	run(t, d)
	d.Notify(testIncident())
	var m map[string]any
	select {
	case m = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no alert delivered")
	}
	want := map[string]any{"id": 42.0, "kind": "critical", "severity": "critical", "category": "child-abuse",
		"group": "ks2", "host": "bad.example", "first": "2026-03-02T10:42:05Z", "last": "2026-03-02T10:42:09Z",
		"count": 3.0, "channel": "https", "link": adminURL + "/incidents/42"}
	if len(m) != len(want) {
		t.Errorf("body has %d fields, want %d: %v", len(m), len(want), m)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	eventually(t, "the sent counter", func() bool { return counter(t, reg, "hedgerow_alerts_sent_total", ChannelWebhook) == 1 })
	if n := tries.Load(); n != 3 {
		t.Errorf("tries = %d, want 3 (two 500s, then success)", n)
	}
	if f := counter(t, reg, "hedgerow_alerts_failed_total", ChannelWebhook); f != 2 {
		t.Errorf("failed = %v, want 2", f)
	}
	if f := counter(t, reg, "hedgerow_alerts_dropped_total", ""); f != 0 {
		t.Errorf("dropped = %v, want 0", f)
	}
}

func TestWebhookFailures(t *testing.T) {
	// The path holds a token, as chat webhooks' do: it must stay out of logs.
	const token = "tok-9f8e7d"
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + closed.Addr().String() + "/hook/" + token
	closed.Close()

	cases := []struct {
		name     string
		status   func(try int32) int // nil: no server, deadURL
		maxTries int
		tries    int32 // requests the receiver sees
		sent     float64
		failed   float64
		dropped  float64
	}{
		{name: "400 gives up at once", status: func(int32) int { return 400 }, maxTries: 5, tries: 1, failed: 1, dropped: 1},
		{name: "403 gives up at once", status: func(int32) int { return 403 }, maxTries: 5, tries: 1, failed: 1, dropped: 1},
		{name: "redirect is not followed", status: func(int32) int { return 302 }, maxTries: 5, tries: 1, failed: 1, dropped: 1},
		{name: "500 until MaxTries", status: func(int32) int { return 500 }, maxTries: 3, tries: 3, failed: 3, dropped: 1},
		{name: "429 is retried", status: func(n int32) int { return map[bool]int{true: 429, false: 204}[n == 1] },
			maxTries: 3, tries: 2, sent: 1, failed: 1},
		{name: "network error is retried", maxTries: 3, failed: 3, dropped: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tries atomic.Int32
			u := deadURL
			if tc.status != nil {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					code := tc.status(tries.Add(1))
					if code == 302 {
						w.Header().Set("Location", "/elsewhere")
					}
					w.WriteHeader(code)
				}))
				defer srv.Close()
				u = srv.URL + "/hook/" + token
			}
			d, reg := newTest(t, Config{Webhook: &WebhookConfig{URL: u, Secret: testSecret},
				MaxTries: tc.maxTries, Backoff: time.Millisecond}, token)
			stop := run(t, d)
			d.Notify(testIncident())
			eventually(t, "the alert to be done with", func() bool {
				return counter(t, reg, "hedgerow_alerts_sent_total", ChannelWebhook)+
					counter(t, reg, "hedgerow_alerts_dropped_total", "") == 1
			})
			stop() // no more tries after Run has returned
			if n := tries.Load(); n != tc.tries {
				t.Errorf("tries = %d, want %d", n, tc.tries)
			}
			for _, c := range []struct {
				name, channel string
				want          float64
			}{
				{"hedgerow_alerts_sent_total", ChannelWebhook, tc.sent},
				{"hedgerow_alerts_failed_total", ChannelWebhook, tc.failed},
				{"hedgerow_alerts_dropped_total", "", tc.dropped},
			} {
				if got := counter(t, reg, c.name, c.channel); got != c.want {
					t.Errorf("%s = %v, want %v", c.name, got, c.want)
				}
			}
		})
	}
}

func TestIdentities(t *testing.T) {
	cases := []struct {
		name       string
		identities bool
		want       map[string]any // beyond the fields every alert has
	}{
		{name: "default leaves identities out", identities: false, want: map[string]any{}},
		{name: "identities when configured", identities: true, want: map[string]any{"device": testDevice, "user": testUser}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan map[string]any, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				got <- verify(t, r, body)
			}))
			defer srv.Close()
			d, _ := newTest(t, Config{Webhook: &WebhookConfig{URL: srv.URL, Secret: testSecret}, Identities: tc.identities})
			run(t, d)
			d.Notify(testIncident())
			m := <-got
			for _, k := range []string{"device", "user"} {
				if v, ok := m[k]; ok != (tc.want[k] != nil) || (ok && v != tc.want[k]) {
					t.Errorf("%s = %v (present %v), want %v", k, v, ok, tc.want[k])
				}
			}
			if m["host"] != "bad.example" {
				t.Errorf("host = %v: always sent", m["host"])
			}
			if _, ok := m["link"]; ok {
				t.Errorf("link %v without an AdminURL", m["link"])
			}
			raw, _ := json.Marshal(m)
			for _, never := range []string{"private-path", "private search", "private note"} {
				if strings.Contains(string(raw), never) {
					t.Errorf("alert carries %q: %s", never, raw)
				}
			}
		})
	}
}

func TestNotifyFullQueue(t *testing.T) {
	cases := []struct {
		name    string
		queue   int
		notify  int
		dropped float64
	}{
		{name: "room for all", queue: 4, notify: 4, dropped: 0},
		{name: "full", queue: 2, notify: 5, dropped: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Run is not started: nothing takes from the queue.
			d, reg := newTest(t, Config{Webhook: &WebhookConfig{URL: "http://127.0.0.1:9/", Secret: testSecret},
				QueueSize: tc.queue})
			done := make(chan struct{})
			go func() {
				for range tc.notify {
					d.Notify(testIncident())
				}
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Notify blocked")
			}
			if got := counter(t, reg, "hedgerow_alerts_dropped_total", ""); got != tc.dropped {
				t.Errorf("dropped = %v, want %v", got, tc.dropped)
			}
		})
	}
}

func TestNotifyAfterRun(t *testing.T) {
	d, reg := newTest(t, Config{Syslog: &SyslogConfig{Network: "udp", Addr: "127.0.0.1:9"}})
	run(t, d)()
	d.Notify(testIncident())
	if got := counter(t, reg, "hedgerow_alerts_dropped_total", ""); got != 1 {
		t.Errorf("dropped = %v, want 1: an alert after Run must not vanish", got)
	}
}

func TestShutdown(t *testing.T) {
	cases := []struct {
		name    string
		status  func(try int32) int
		sent    float64
		dropped float64
	}{
		// The stop cuts a long back-off short with one more try.
		{name: "stop retries at once", status: func(n int32) int { return map[bool]int{true: 500, false: 200}[n == 1] }, sent: 1},
		// A receiver still failing: the flush ends, the alert is counted.
		{name: "flush gives up and counts", status: func(int32) int { return 500 }, dropped: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tries atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status(tries.Add(1)))
			}))
			defer srv.Close()
			d, reg := newTest(t, Config{Webhook: &WebhookConfig{URL: srv.URL, Secret: testSecret}, Backoff: MaxBackoff})
			d.flushFor = 300 * time.Millisecond
			stop := run(t, d)
			d.Notify(testIncident())
			eventually(t, "the first try", func() bool { return tries.Load() >= 1 })
			start := time.Now()
			stop()
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("Run took %v to return after its context ended", el)
			}
			if got := counter(t, reg, "hedgerow_alerts_sent_total", ChannelWebhook); got != tc.sent {
				t.Errorf("sent = %v, want %v", got, tc.sent)
			}
			if got := counter(t, reg, "hedgerow_alerts_dropped_total", ""); got != tc.dropped {
				t.Errorf("dropped = %v, want %v", got, tc.dropped)
			}
		})
	}
}

// TestChannelsIndependent: a webhook that hangs does not hold up syslog.
func TestChannelsIndependent(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no log/syslog")
	}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	pc := listenUDP(t)
	d, _ := newTest(t, Config{Webhook: &WebhookConfig{URL: srv.URL, Secret: testSecret, Timeout: time.Minute},
		Syslog: &SyslogConfig{Network: "udp", Addr: pc.LocalAddr().String()}})
	d.flushFor = 100 * time.Millisecond
	run(t, d)
	d.Notify(testIncident())
	if line := readUDP(t, pc); !strings.Contains(line, "id=42") {
		t.Errorf("syslog line %q", line)
	}
}

func TestSyslog(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no log/syslog")
	}
	pattern := testIncident()
	pattern.ID, pattern.Rule, pattern.Severity, pattern.Category, pattern.Host = 7, "pattern", "high", "self-harm", "harm example"
	cases := []struct {
		name       string
		in         store.Incident
		identities bool
		want       []string
		notWant    []string
	}{
		{name: "critical", in: testIncident(),
			want: []string{"hedgerow-test[", "alert kind=critical id=42 severity=critical category=child-abuse group=ks2 host=bad.example channel=https count=3",
				"first=2026-03-02T10:42:05Z", "last=2026-03-02T10:42:09Z", "link=" + adminURL + "/incidents/42"},
			notWant: []string{testDevice, testUser, "private", "\n"}},
		{name: "pattern, quoted value", in: pattern,
			want:    []string{"kind=pattern id=7 severity=high category=self-harm", `host="harm example"`},
			notWant: []string{testDevice, testUser}},
		{name: "identities", in: testIncident(), identities: true,
			want: []string{"device=" + testDevice, "user=" + testUser}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := listenUDP(t)
			d, reg := newTest(t, Config{Syslog: &SyslogConfig{Network: "udp", Addr: pc.LocalAddr().String(), Tag: "hedgerow-test"},
				AdminURL: adminURL, Identities: tc.identities})
			run(t, d)
			d.Notify(tc.in)
			line := strings.TrimSuffix(readUDP(t, pc), "\n")
			// <facility*8+severity>: auth (4) and alert (1).
			if !strings.HasPrefix(line, "<33>") {
				t.Errorf("line %q: want priority <33> (auth.alert)", line)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("line %q lacks %q", line, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(line, w) {
					t.Errorf("line %q has %q", line, w)
				}
			}
			eventually(t, "the sent counter", func() bool { return counter(t, reg, "hedgerow_alerts_sent_total", ChannelSyslog) == 1 })
		})
	}
}

func listenUDP(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func readUDP(t *testing.T, pc net.PacketConn) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no syslog message: %v", err)
	}
	return string(buf[:n])
}

// smtpServer is a minimal SMTP server on loopback: EHLO/HELO, MAIL FROM,
// RCPT TO, DATA, RSET, NOOP, QUIT, no STARTTLS, no AUTH.
type smtpServer struct {
	ln   net.Listener
	msgs chan smtpMsg
	wg   sync.WaitGroup
}

type smtpMsg struct {
	from string
	to   []string
	data []byte
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, msgs: make(chan smtpMsg, 10)}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(conn) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *smtpServer) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(conn)
	var msg smtpMsg
	reply := func(format string, args ...any) bool { return tp.PrintfLine(format, args...) == nil }
	if !reply("220 smtp.test ESMTP ready") {
		return
	}
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		ok := true
		switch strings.ToUpper(verb) {
		case "EHLO":
			ok = reply("250-smtp.test hello %s", arg) && reply("250 8BITMIME")
		case "HELO":
			ok = reply("250 smtp.test")
		case "MAIL":
			msg = smtpMsg{from: addrArg(arg)}
			ok = reply("250 OK")
		case "RCPT":
			msg.to = append(msg.to, addrArg(arg))
			ok = reply("250 OK")
		case "DATA":
			if !reply("354 end with <CRLF>.<CRLF>") {
				return
			}
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			msg.data = data
			s.msgs <- msg
			ok = reply("250 OK queued")
		case "RSET", "NOOP":
			ok = reply("250 OK")
		case "QUIT":
			reply("221 bye")
			return
		default:
			ok = reply("502 5.5.2 command not recognised")
		}
		if !ok {
			return
		}
	}
}

// addrArg takes the address out of "FROM:<a@b> BODY=8BITMIME".
func addrArg(arg string) string {
	_, a, _ := strings.Cut(arg, "<")
	a, _, _ = strings.Cut(a, ">")
	return a
}

func TestSMTP(t *testing.T) {
	names := func(slug string) string {
		return map[string]string{"child-abuse": "Child sexual abuse content"}[slug]
	}
	pattern := testIncident()
	pattern.Rule, pattern.Severity, pattern.Category = "pattern", "high", "self-harm"
	hhmm := testIncident().Last.Local().Format("15:04")
	cases := []struct {
		name       string
		in         store.Incident
		identities bool
		subject    string
		body       []string
		notInBody  []string
	}{
		{name: "critical, no identities", in: testIncident(),
			subject: "hedgerow: critical incident (Child sexual abuse content) at " + hhmm,
			body: []string{"Incident:  42", "Category:  Child sexual abuse content (child-abuse)", "Severity:  critical",
				"Group:     ks2", "Host:      bad.example", "Attempts:  3", "Open the incident: " + adminURL + "/incidents/42"},
			notInBody: []string{testDevice, testUser, "private"}},
		{name: "pattern", in: pattern,
			subject:   "hedgerow: pattern of attempts (self-harm) at " + hhmm,
			body:      []string{"Kind:      pattern", "Category:  self-harm\n"},
			notInBody: []string{testDevice, testUser}},
		{name: "identities", in: testIncident(), identities: true,
			subject: "hedgerow: critical incident (Child sexual abuse content) at " + hhmm,
			body:    []string{"Device:    " + testDevice, "User:      " + testUser}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startSMTP(t)
			d, reg := newTest(t, Config{SMTP: &SMTPConfig{Addr: srv.ln.Addr().String(), From: "Hedgerow <hedgerow@school.example>",
				To: []string{"dsl@school.example", "Deputy DSL <deputy@school.example>"}},
				AdminURL: adminURL, Identities: tc.identities, CategoryName: names})
			run(t, d)
			d.Notify(tc.in)
			var msg smtpMsg
			select {
			case msg = <-srv.msgs:
			case <-time.After(10 * time.Second):
				t.Fatal("no mail")
			}
			if msg.from != "hedgerow@school.example" || strings.Join(msg.to, ",") != "dsl@school.example,deputy@school.example" {
				t.Errorf("envelope from %q to %q", msg.from, msg.to)
			}
			m, err := mail.ReadMessage(bytes.NewReader(msg.data))
			if err != nil {
				t.Fatalf("message: %v\n%s", err, msg.data)
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
			if err != nil || subject != tc.subject {
				t.Errorf("subject %q (%v), want %q", subject, err, tc.subject)
			}
			for _, never := range []string{testDevice, testUser} {
				if strings.Contains(subject, never) {
					t.Errorf("subject %q names %q", subject, never)
				}
			}
			raw, err := io.ReadAll(quotedprintable.NewReader(m.Body))
			if err != nil {
				t.Fatalf("body: %v", err)
			}
			body := string(raw)
			for _, w := range tc.body {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tc.notInBody {
				if strings.Contains(body, w) || strings.Contains(string(msg.data), w) {
					t.Errorf("mail has %q:\n%s", w, msg.data)
				}
			}
			eventually(t, "the sent counter", func() bool { return counter(t, reg, "hedgerow_alerts_sent_total", ChannelSMTP) == 1 })
		})
	}
}

// TestSMTPStartTLSRequired: a server that doesn't offer STARTTLS gets no
// mail and no second try when the config requires it.
func TestSMTPStartTLSRequired(t *testing.T) {
	srv := startSMTP(t)
	d, reg := newTest(t, Config{SMTP: &SMTPConfig{Addr: srv.ln.Addr().String(), From: "hedgerow@school.example",
		To: []string{"dsl@school.example"}, StartTLS: true}, MaxTries: 3, Backoff: time.Millisecond})
	stop := run(t, d)
	d.Notify(testIncident())
	eventually(t, "the drop", func() bool { return counter(t, reg, "hedgerow_alerts_dropped_total", "") == 1 })
	stop()
	if f := counter(t, reg, "hedgerow_alerts_failed_total", ChannelSMTP); f != 1 {
		t.Errorf("failed = %v, want 1", f)
	}
	select {
	case m := <-srv.msgs:
		t.Errorf("mail sent without TLS:\n%s", m.data)
	default:
	}
}

func TestConfigValidation(t *testing.T) {
	hook := func(u, secret string) *WebhookConfig { return &WebhookConfig{URL: u, Secret: secret} }
	mailer := func(edit func(*SMTPConfig)) *SMTPConfig {
		s := &SMTPConfig{Addr: "mail.school.example:587", From: "hedgerow@school.example", To: []string{"dsl@school.example"}}
		edit(s)
		return s
	}
	cases := []struct {
		name  string
		cfg   Config
		field string // "": valid
		msg   string
	}{
		{name: "all off", cfg: Config{}},
		{name: "all on", cfg: Config{Webhook: hook("https://hooks.example/a", "s"), SMTP: mailer(func(*SMTPConfig) {}),
			Syslog: &SyslogConfig{}, AdminURL: adminURL}},
		{name: "bad webhook scheme", cfg: Config{Webhook: hook("ftp://hooks.example/a", "s")}, field: "Webhook.URL", msg: "http"},
		{name: "webhook without host", cfg: Config{Webhook: hook("https:///a", "s")}, field: "Webhook.URL", msg: "host"},
		{name: "webhook not a URL", cfg: Config{Webhook: hook("hooks.example", "s")}, field: "Webhook.URL"},
		{name: "webhook token not echoed", cfg: Config{Webhook: hook("ftp://hooks.example/tok-123", "s")}, field: "Webhook.URL"},
		{name: "missing secret", cfg: Config{Webhook: hook("https://hooks.example/a", " ")}, field: "Webhook.Secret", msg: "required"},
		{name: "negative timeout", cfg: Config{Webhook: &WebhookConfig{URL: "https://h.example", Secret: "s", Timeout: -1}}, field: "Webhook.Timeout"},
		{name: "smtp addr without port", cfg: Config{SMTP: mailer(func(s *SMTPConfig) { s.Addr = "mail.school.example" })}, field: "SMTP.Addr", msg: "host:port"},
		{name: "smtp bad port", cfg: Config{SMTP: mailer(func(s *SMTPConfig) { s.Addr = "mail:smtp" })}, field: "SMTP.Addr"},
		{name: "smtp bad from", cfg: Config{SMTP: mailer(func(s *SMTPConfig) { s.From = "hedgerow" })}, field: "SMTP.From"},
		{name: "empty To", cfg: Config{SMTP: mailer(func(s *SMTPConfig) { s.To = nil })}, field: "SMTP.To", msg: "at least one"},
		{name: "bad To", cfg: Config{SMTP: mailer(func(s *SMTPConfig) { s.To = append(s.To, "nobody") })}, field: "SMTP.To[1]"},
		{name: "username without password", cfg: Config{SMTP: mailer(func(s *SMTPConfig) { s.Username = "u" })}, field: "SMTP.Password"},
		{name: "syslog bad addr", cfg: Config{Syslog: &SyslogConfig{Network: "udp", Addr: "127.0.0.1"}}, field: "Syslog.Addr", msg: "host:port"},
		{name: "syslog addr without network", cfg: Config{Syslog: &SyslogConfig{Addr: "127.0.0.1:514"}}, field: "Syslog.Network"},
		{name: "syslog bad network", cfg: Config{Syslog: &SyslogConfig{Network: "http", Addr: "127.0.0.1:514"}}, field: "Syslog.Network"},
		{name: "syslog tag with space", cfg: Config{Syslog: &SyslogConfig{Tag: "a b"}}, field: "Syslog.Tag"},
		{name: "bad admin URL", cfg: Config{AdminURL: "hedgerow:9153"}, field: "AdminURL"},
		{name: "admin URL with query", cfg: Config{AdminURL: adminURL + "?x=1"}, field: "AdminURL", msg: "query"},
		{name: "negative queue", cfg: Config{QueueSize: -1}, field: "QueueSize"},
		{name: "negative tries", cfg: Config{MaxTries: -1}, field: "MaxTries"},
		{name: "backoff too long", cfg: Config{Backoff: time.Hour}, field: "Backoff"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(tc.cfg, nil, nil)
			if tc.field == "" {
				if err != nil || d == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted the config, want an error about %s", tc.field)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Errorf("error %q: want a ConfigError for %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q: want %q and %q in it", err, tc.field, tc.msg)
			}
			for _, secret := range []string{"tok-123", "s\""} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows %q", err, secret)
				}
			}
		})
	}
}

func TestWants(t *testing.T) {
	cases := []struct {
		severity, rule string
		want           bool
	}{
		{"critical", "critical", true},
		{"critical", "group-deny", true},
		{"high", "pattern", true},
		{"high", "group-deny", false},
		{"low", "group-deny", false},
		{"", "", false},
	}
	for _, tc := range cases {
		in := store.Incident{Severity: tc.severity, Rule: tc.rule}
		if got := Wants(in); got != tc.want {
			t.Errorf("Wants(severity %q, rule %q) = %v, want %v", tc.severity, tc.rule, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{"99999999999", MaxBackoff},
		{"-5", 0},
		{"soon", 0},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tc := range cases {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// hmacHex is the receiver's side of the signature, written out with the
// standard library rather than with Sign.
func hmacHex(secret, msg string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(msg))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestSendEmail(t *testing.T) {
	srv := startSMTP(t)
	d, _ := newTest(t, Config{SMTP: &SMTPConfig{Addr: srv.ln.Addr().String(), From: "hedgerow@school.example",
		To: []string{"dsl@school.example"}}})
	if err := d.SendEmail(context.Background(), "hedgerow: weekly digest", "Incidents: 3\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-srv.msgs:
		if !strings.Contains(string(m.data), "Subject: hedgerow: weekly digest") || !strings.Contains(string(m.data), "Incidents: 3") {
			t.Errorf("email:\n%s", m.data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no email")
	}
	none, _ := newTest(t, Config{})
	if err := none.SendEmail(context.Background(), "s", "b"); !errors.Is(err, ErrNoMail) {
		t.Errorf("without SMTP: %v", err)
	}
}
