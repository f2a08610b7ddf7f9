//go:build !windows && !plan9

package alert

import (
	"context"
	"fmt"
	"log/syslog"

	"hedgerow/store"
)

// syslogSender writes one line per alert at LOG_ALERT in the auth facility:
// auth logs are the ones kept from ordinary users, and the line may carry
// identities when the school turns them on.
type syslogSender struct {
	d   *Dispatcher
	cfg SyslogConfig
	w   *syslog.Writer // owned by the channel's goroutine; nil until the first send, and after a failure
}

func newSyslog(d *Dispatcher, cfg SyslogConfig) (sender, error) {
	if cfg.Tag == "" {
		cfg.Tag = DefaultSyslogTag
	}
	return &syslogSender{d: d, cfg: cfg}, nil
}

func (s *syslogSender) where() string {
	if s.cfg.Network == "" {
		return "local syslog"
	}
	return "syslog " + s.cfg.Network + " " + s.cfg.Addr
}

// send connects on first use rather than in New, so a syslog server that is
// down at start-up costs retries, not the service.
func (s *syslogSender) send(_ context.Context, in store.Incident) error {
	if s.w == nil {
		w, err := syslog.Dial(s.cfg.Network, s.cfg.Addr, syslog.LOG_ALERT|syslog.LOG_AUTH, s.cfg.Tag)
		if err != nil {
			return fmt.Errorf("%s: %w", s.where(), err)
		}
		s.w = w
	}
	if err := s.w.Alert(s.d.syslogLine(s.d.payload(in))); err != nil {
		s.close()
		return fmt.Errorf("%s: %w", s.where(), err)
	}
	return nil
}

func (s *syslogSender) close() {
	if s.w != nil {
		_ = s.w.Close()
		s.w = nil
	}
}
