// Command fixeddns is a bare miekg/dns server that answers every query with
// one fixed record and no further work: the instant upstream for hedgerow's
// load benchmark, and the ceiling any Go resolver on the machine can reach.
package main

import (
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/miekg/dns"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5300", "listen address (UDP and TCP)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600},
				A:   []byte{192, 0, 2, 1},
			}}
		}
		_ = w.WriteMsg(m)
	})
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: *addr, Net: network, Handler: h}
		go func() {
			if err := srv.ListenAndServe(); err != nil {
				log.Error("fixeddns", "net", network, "err", err)
				os.Exit(1)
			}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
