package identity

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc6911"

	"hedgerow/e2e/metrictest"
)

const testSecret = "s3cret-for-tests"

// accountingServer is a listener on a random loopback port.
type accountingServer struct {
	addr string
	reg  *prometheus.Registry
	logs *syncBuffer
}

func startAccounting(t *testing.T, tb *Table, cfg AccountingConfig) *accountingServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &accountingServer{addr: conn.LocalAddr().String(), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	cfg.Secret = testSecret
	a, err := NewAccounting(tb, cfg, slog.New(slog.NewTextHandler(s.logs, nil)), s.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func (s *accountingServer) count(t *testing.T, name, label, value string) float64 {
	t.Helper()
	v, _ := metrictest.Value(t, s.reg, name, label, value)
	return v
}

// radclient sends accounting requests with FreeRADIUS's radclient: the
// attributes of each request on lines, requests apart by a blank line. It
// waits a second for each answer and tries once more.
func radclient(t *testing.T, server, secret, requests string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("radclient")
	if err != nil {
		t.Skip("radclient is not installed (Debian package freeradius-utils, which .ci/run installs): the RADIUS accounting tests need a real RADIUS client")
	}
	cmd := exec.Command(path, "-r", "1", "-t", "1", "-s", server, "acct", secret)
	cmd.Stdin = strings.NewReader(requests)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAccountingRadclient: Start and Stop from a real RADIUS client move an
// address's user; a request with the wrong secret is ignored and counted.
func TestAccountingRadclient(t *testing.T) {
	tb := NewTable(Options{})
	srv := startAccounting(t, tb, AccountingConfig{})
	addr := netip.MustParseAddr("10.30.0.7")
	send := func(requests string) {
		t.Helper()
		if out, err := radclient(t, srv.addr, testSecret, requests); err != nil {
			t.Fatalf("radclient: %v\n%s", err, out)
		}
	}

	send(`Acct-Status-Type = Start
User-Name = "jsmith"
Framed-IP-Address = 10.30.0.7
Calling-Station-Id = "00-16-3E-00-00-0A"
Acct-Session-Id = "wlc-0001"
NAS-IP-Address = 192.0.2.10
`)
	during := time.Now()
	w := tb.Lookup(addr, during)
	if w.User != "jsmith" || w.UserSource != SourceRADIUS || w.MAC != "00:16:3e:00:00:0a" || w.MACSource != SourceRADIUS {
		t.Fatalf("after Start: %+v, want jsmith on 00:16:3e:00:00:0a from RADIUS", public(w))
	}

	send(`Acct-Status-Type = Stop
User-Name = "jsmith"
Framed-IP-Address = 10.30.0.7
Calling-Station-Id = "00-16-3E-00-00-0A"
Acct-Session-Id = "wlc-0001"
Acct-Session-Time = 1
NAS-IP-Address = 192.0.2.10
`)
	if w := tb.Lookup(addr, time.Now()); w.User != "" {
		t.Errorf("after Stop: %+v, want no user", public(w))
	}
	if w := tb.Lookup(addr, during); w.User != "jsmith" {
		t.Errorf("during the stopped session: %+v, want jsmith", public(w))
	}

	send(`Acct-Status-Type = Start
User-Name = "akhan"
Framed-IP-Address = 10.30.0.7
Calling-Station-Id = "00-16-3E-00-00-0B"
Acct-Session-Id = "wlc-0002"
NAS-IP-Address = 192.0.2.10
`)
	if w := tb.Lookup(addr, time.Now()); w.User != "akhan" || w.MAC != "00:16:3e:00:00:0b" {
		t.Errorf("after the second Start: %+v, want akhan", public(w))
	}
	if w := tb.Lookup(addr, during); w.User != "jsmith" {
		t.Errorf("the first session after the second Start: %+v, want jsmith still", public(w))
	}

	// The wrong secret: no answer (radclient gives up), counted, ignored.
	out, err := radclient(t, srv.addr, "not-the-secret", `Acct-Status-Type = Start
User-Name = "mallory"
Framed-IP-Address = 10.30.0.7
`)
	if err == nil {
		t.Errorf("radclient with the wrong secret got an answer:\n%s", out)
	}
	waitFor(t, "the wrong secret to be counted", func() bool {
		return srv.count(t, "hedgerow_identity_radius_dropped_total", "reason", "bad_secret") >= 1
	})
	if w := tb.Lookup(addr, time.Now()); w.User != "akhan" {
		t.Errorf("after a request with the wrong secret: %+v, want akhan still", public(w))
	}
	if !strings.Contains(srv.logs.String(), "wrong shared secret") {
		t.Errorf("the wrong secret is not logged: %q", srv.logs.String())
	}
	if got := srv.count(t, "hedgerow_identity_radius_requests_total", "status", "start"); got != 2 {
		t.Errorf("Starts counted %v, want 2", got)
	}
	if got := srv.count(t, "hedgerow_identity_radius_requests_total", "status", "stop"); got != 1 {
		t.Errorf("Stops counted %v, want 1", got)
	}
	lintMetrics(t, srv.reg)
}

// exchange sends one accounting request with layeh.com/radius's client and
// returns the response code.
func exchange(t *testing.T, server, secret string, p *radius.Packet) (radius.Code, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c := radius.Client{Retry: 0}
	resp, err := c.Exchange(ctx, p, server)
	if err != nil {
		return 0, err
	}
	return resp.Code, nil
}

// TestAccountingRequests covers the rest of the listener's handling, one
// request at a time from the library's own client.
func TestAccountingRequests(t *testing.T) {
	tb := NewTable(Options{})
	srv := startAccounting(t, tb, AccountingConfig{SessionTimeout: time.Hour})
	v4 := netip.MustParseAddr("10.30.0.8")
	v6 := netip.MustParseAddr("2001:db8::8")
	req := func(status rfc2866.AcctStatusType, user string, ip netip.Addr, set func(*radius.Packet)) *radius.Packet {
		p := radius.New(radius.CodeAccountingRequest, []byte(testSecret))
		must(t, rfc2866.AcctStatusType_Set(p, status))
		if user != "" {
			must(t, rfc2865.UserName_SetString(p, user))
		}
		switch {
		case ip.Is4():
			must(t, rfc2865.FramedIPAddress_Set(p, ip.AsSlice()))
		case ip.Is6():
			must(t, rfc6911.FramedIPv6Address_Set(p, ip.AsSlice()))
		}
		must(t, rfc2865.NASIdentifier_SetString(p, "switch-1"))
		if set != nil {
			set(p)
		}
		return p
	}
	answered := func(p *radius.Packet) {
		t.Helper()
		code, err := exchange(t, srv.addr, testSecret, p)
		if err != nil || code != radius.CodeAccountingResponse {
			t.Fatalf("request answered %v, %v; want Accounting-Response", code, err)
		}
	}

	// An Interim-Update for a session whose Start was missed dates it by
	// Acct-Session-Time, and Acct-Delay-Time dates the report.
	answered(req(rfc2866.AcctStatusType_Value_InterimUpdate, "teacher1", v4, func(p *radius.Packet) {
		must(t, rfc2866.AcctSessionTime_Set(p, 600))
		must(t, rfc2866.AcctDelayTime_Set(p, 60))
	}))
	if w := tb.Lookup(v4, time.Now().Add(-10*time.Minute)); w.User != "teacher1" {
		t.Errorf("9 minutes into the session: %+v, want teacher1", public(w))
	}
	if w := tb.Lookup(v4, time.Now().Add(-12*time.Minute)); w.User != "" {
		t.Errorf("before the session: %+v, want no user", public(w))
	}
	// SessionTimeout: with no further Interim-Update, it is over after an hour.
	if w := tb.Lookup(v4, time.Now().Add(2*time.Hour)); w.User != "" {
		t.Errorf("two hours on with no Interim-Update: %+v, want no user", public(w))
	}

	answered(req(rfc2866.AcctStatusType_Value_Start, "pupil6", v6, nil))
	if w := tb.Lookup(v6, time.Now()); w.User != "pupil6" {
		t.Errorf("IPv6 session: %+v, want pupil6", public(w))
	}

	// Sessions without an address or a user are answered but not recorded.
	answered(req(rfc2866.AcctStatusType_Value_Start, "nobody", netip.Addr{}, nil))
	answered(req(rfc2866.AcctStatusType_Value_Start, "nas-picks", netip.MustParseAddr("255.255.255.254"), nil))
	answered(req(rfc2866.AcctStatusType_Value_Start, "", v4, nil))
	if got := srv.count(t, "hedgerow_identity_radius_unusable_total", "reason", "no_address"); got != 2 {
		t.Errorf("no_address counted %v, want 2", got)
	}
	if got := srv.count(t, "hedgerow_identity_radius_unusable_total", "reason", "no_user"); got != 1 {
		t.Errorf("no_user counted %v, want 1", got)
	}

	// Accounting-On from the switch: it restarted, its sessions are over.
	answered(req(rfc2866.AcctStatusType_Value_AccountingOn, "", netip.Addr{}, nil))
	for _, a := range []netip.Addr{v4, v6} {
		if w := tb.Lookup(a, time.Now()); w.User != "" {
			t.Errorf("%s after Accounting-On: %+v, want no user", a, public(w))
		}
	}

	// Not accounting, or too short to be RADIUS: dropped unanswered.
	conn, err := net.Dial("udp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	access := radius.New(radius.CodeAccessRequest, []byte(testSecret))
	must(t, rfc2865.UserName_SetString(access, "x"))
	wire, err := access.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkt := range [][]byte{wire, []byte("short")} {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the dropped packets to be counted", func() bool {
		return srv.count(t, "hedgerow_identity_radius_dropped_total", "reason", "not_accounting") == 1 &&
			srv.count(t, "hedgerow_identity_radius_dropped_total", "reason", "malformed") == 1
	})
}

// TestAccountingClients drops requests from outside the configured clients.
func TestAccountingClients(t *testing.T) {
	tb := NewTable(Options{})
	srv := startAccounting(t, tb, AccountingConfig{Clients: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	p := radius.New(radius.CodeAccountingRequest, []byte(testSecret))
	must(t, rfc2866.AcctStatusType_Set(p, rfc2866.AcctStatusType_Value_Start))
	must(t, rfc2865.UserName_SetString(p, "x"))
	must(t, rfc2865.FramedIPAddress_Set(p, net.IPv4(10, 30, 0, 9)))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := (&radius.Client{Retry: 0}).Exchange(ctx, p, srv.addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request from 127.0.0.1: %v, want no answer", err)
	}
	waitFor(t, "the unknown client to be counted", func() bool {
		return srv.count(t, "hedgerow_identity_radius_dropped_total", "reason", "unknown_client") == 1
	})
	if tb.Lookup(netip.MustParseAddr("10.30.0.9"), time.Now()).Known() {
		t.Error("a request from an unknown client was recorded")
	}
}

func TestNewAccountingNeedsSecret(t *testing.T) {
	if _, err := NewAccounting(NewTable(Options{}), AccountingConfig{Addr: ":0"}, slog.New(slog.DiscardHandler), nil); err == nil {
		t.Error("no secret: no error")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
