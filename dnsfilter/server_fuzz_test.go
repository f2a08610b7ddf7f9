package dnsfilter

import (
	"log/slog"
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"hedgerow/categories"
	"hedgerow/store"
)

// recordingWriter is a dns.ResponseWriter that keeps what the handler wrote.
type recordingWriter struct {
	remote net.Addr
	msgs   []*dns.Msg
}

func (w *recordingWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (w *recordingWriter) RemoteAddr() net.Addr      { return w.remote }
func (w *recordingWriter) WriteMsg(m *dns.Msg) error { w.msgs = append(w.msgs, m.Copy()); return nil }
func (w *recordingWriter) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	w.msgs = append(w.msgs, m)
	return len(b), nil
}
func (w *recordingWriter) Close() error        { return nil }
func (w *recordingWriter) TsigStatus() error   { return nil }
func (w *recordingWriter) TsigTimersOnly(bool) {}
func (w *recordingWriter) Hijack()             {}

// fuzzServer is a Server with a small index and a local upstream that
// answers everything at once.
func fuzzServer(t testing.TB) *Server {
	return testServer(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		_ = w.WriteMsg(m)
	})
}

// testServer is a Server with blocked.example listed as adult, the default
// policy, and a local upstream answering with answer.
func testServer(t testing.TB, answer dns.HandlerFunc) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &dns.Server{PacketConn: pc, Handler: answer}
	go func() { _ = up.ActivateAndServe() }()
	t.Cleanup(func() { _ = up.Shutdown() })

	tax := categories.Builtin()
	b := categories.NewIndexBuilder(0)
	adult, _ := tax.MaskOf("adult")
	_ = b.Add("blocked.example", adult)
	idx, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := categories.NewSnapshot(tax, idx, categories.DefaultPolicy(tax))
	if err != nil {
		t.Fatal(err)
	}
	filter, err := categories.NewFilter(snap)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Upstreams = []Upstream{{Addr: pc.LocalAddr().String(), Proto: "udp"}}
	cfg.RateLimit = 0
	s, err := New(cfg, filter, NewMetrics(prometheus.NewRegistry(), tax), store.NewMemoryRecorder(16, nil), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.fwd.Close() })
	return s
}

// FuzzServeDNS feeds arbitrary messages to the handler: it must never
// panic, answer at most once, and answer with the query's ID as a response.
func FuzzServeDNS(f *testing.F) {
	for _, name := range []string{"blocked.example.", "www.example.org.", "use-application-dns.net.", "www.youtube.com.", "."} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeHTTPS} {
			m := new(dns.Msg)
			m.SetQuestion(name, qt)
			m.SetEdns0(1232, true)
			raw, _ := m.Pack()
			f.Add(raw)
		}
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		q := new(dns.Msg)
		if err := q.Unpack(raw); err != nil || q.Response {
			return // the server's accept function drops these before the handler
		}
		w := &recordingWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
		s.ServeDNS(w, q)
		if len(w.msgs) > 1 {
			t.Fatalf("%d replies to one query", len(w.msgs))
		}
		if len(w.msgs) == 1 && (w.msgs[0].Id != q.Id || !w.msgs[0].Response) {
			t.Fatalf("reply id %d response %v, want id %d as a response", w.msgs[0].Id, w.msgs[0].Response, q.Id)
		}
	})
}
