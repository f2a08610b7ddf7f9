// Package alert tells the safeguarding lead at once about critical incidents
// and patterns: an illegal-content attempt or a run of harmful attempts by
// one pupil should not wait for the next look at the review queue. An alert
// goes out through each configured channel (an HTTP webhook, email over SMTP,
// syslog), each on its own queue and goroutine, so that one channel being
// down never holds up the others. Failed tries are retried with back-off,
// counted and logged.
//
// An alert carries no more personal data than the lead needs to decide to
// open the admin UI: the incident's ID, kind, severity, category, group,
// host, channel, first and last time, count and a link to the incident.
// The device address and user name are added only when Config.Identities is
// set; the full URL and any search term are never sent.
//
// # Webhook
//
// The webhook gets a POST with Content-Type application/json and a body
// like
//
//	{"id":42,"kind":"critical","severity":"critical","category":"child-abuse",
//	 "group":"ks2","host":"bad.example","first":"2026-03-02T10:42:05Z",
//	 "last":"2026-03-02T10:42:09Z","count":3,"channel":"dns",
//	 "link":"https://hedgerow.school.example:9153/incidents/42"}
//
// with "device" and "user" added when Identities is set, and "link" left
// out when no AdminURL is configured. "kind" is "critical" for a critical
// incident, "pattern" for a pattern incident (Rule "pattern"), and
// "incident" for anything else a caller chooses to notify.
//
// Every try is signed with the shared secret, so a receiver can tell a real
// alert from a forged one and a fresh one from a replay:
//
//	X-Hedgerow-Timestamp: <unix seconds, decimal, when this try was sent>
//	X-Hedgerow-Signature: sha256=<lower-case hex of HMAC-SHA256(secret, timestamp + "." + body)>
//
// where timestamp is the header's value exactly as sent and body is the
// request body's exact bytes. To verify: recompute the HMAC over the header
// value, a full stop and the raw body, compare it with hmac.Equal, and
// reject timestamps more than a few minutes from the receiver's clock
// (each retry is signed afresh with its own timestamp; the body, including
// "id", stays the same, so a receiver can also ignore duplicates).
//
// A 2xx answer is success. Network errors, 408, 429 and 5xx answers are
// retried with back-off (a 429's Retry-After is honoured up to the back-off
// cap); redirects are not followed and, like any other answer, end the
// alert's tries at once: retrying a request the receiver refuses does not
// help, and the failure is counted and logged.
package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"hedgerow/store"
)

// Defaults and limits.
const (
	DefaultQueueSize      = 1000
	DefaultMaxTries       = 6
	DefaultBackoff        = time.Second
	MaxBackoff            = 5 * time.Minute
	DefaultWebhookTimeout = 10 * time.Second
	DefaultSyslogTag      = "hedgerow"

	// defaultFlushFor is how long Run keeps sending after its context
	// ends: long enough to get the queued alerts out, short enough not to
	// hold up a service stop.
	defaultFlushFor = 5 * time.Second
	// smtpTimeout bounds one SMTP conversation: net/smtp has no context.
	smtpTimeout = 30 * time.Second
)

// rulePattern is the Rule of the incidents the repeat rule raises.
const rulePattern = "pattern"

// Kinds of alert, the "kind" field.
const (
	KindCritical = "critical"
	KindPattern  = "pattern"
	KindIncident = "incident" // anything else a caller notifies
)

// Channel names, the channel label of the metrics.
const (
	ChannelWebhook = "webhook"
	ChannelSMTP    = "smtp"
	ChannelSyslog  = "syslog"
)

// Config chooses the channels and tunes delivery. A nil channel is off; with
// every channel off the Dispatcher accepts incidents and sends nothing.
type Config struct {
	Webhook *WebhookConfig // nil: off
	SMTP    *SMTPConfig    // nil: off
	Syslog  *SyslogConfig  // nil: off
	// AdminURL is the admin UI's base URL, e.g.
	// https://hedgerow.school.example:9153; alerts link to
	// AdminURL + "/incidents/" + ID. Empty: alerts carry no link.
	AdminURL  string
	QueueSize int // alerts waiting per channel at most; default 1000
	// MaxTries bounds the tries per alert and channel (default 6), with
	// exponential back-off between them starting at Backoff (default 1 s),
	// doubling, capped at 5 minutes.
	MaxTries int
	Backoff  time.Duration
	// Identities adds the device address and user to alerts. Off by
	// default: an alert carries no more personal data than needed
	// (category, severity, group, host, time, count, link); the admin UI
	// shows the rest to those entitled to see it.
	Identities bool
	// CategoryName, if not nil, gives a category slug's display name for
	// email subjects and bodies ("Child sexual abuse content" rather than
	// "child-abuse"); it is called from the sending goroutines, so it must
	// be safe for concurrent use. Nil: the slug.
	CategoryName func(slug string) string
}

// WebhookConfig configures the HTTP webhook.
type WebhookConfig struct {
	URL     string        // http:// or https://
	Secret  string        // signs every request; required
	Timeout time.Duration // one try, default 10 s
}

// SMTPConfig configures email alerts.
type SMTPConfig struct {
	Addr               string   // host:port of the mail server
	From               string   // envelope and header sender, e.g. "Hedgerow <hedgerow@school.example>"
	To                 []string // at least one recipient
	Username, Password string   // AUTH PLAIN when Username is set (net/smtp allows it only over TLS or to localhost)
	// StartTLS requires STARTTLS: without it, TLS is used when the server
	// offers it and the mail goes in the clear when it does not.
	StartTLS bool
}

// SyslogConfig configures syslog alerts.
type SyslogConfig struct {
	// Network and Addr name the syslog server ("udp", "127.0.0.1:514");
	// both empty: the local syslog daemon.
	Network, Addr string
	Tag           string // default "hedgerow"
}

// ConfigError is a Config value New refuses. Field names it as in Go
// ("Webhook.URL", "SMTP.To[1]"), so that a config file loader can name its
// own key instead.
type ConfigError struct {
	Field string
	Err   error
}

// Error names the field and the reason.
// Error names the field and the reason.
func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *ConfigError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate checks c, returning a *ConfigError for the first value that is
// wrong. Secrets are never quoted in errors.
func (c Config) Validate() error {
	if c.AdminURL != "" {
		if err := checkHTTPURL(c.AdminURL); err != nil {
			return fieldErr("AdminURL", "%q: %w", c.AdminURL, err)
		}
		if u, _ := url.Parse(c.AdminURL); u.RawQuery != "" || u.Fragment != "" {
			return fieldErr("AdminURL", "%q: want a base URL without query or fragment", c.AdminURL)
		}
	}
	if c.QueueSize < 0 {
		return fieldErr("QueueSize", "%d: want 0 (default %d) or more", c.QueueSize, DefaultQueueSize)
	}
	if c.MaxTries < 0 {
		return fieldErr("MaxTries", "%d: want 0 (default %d) or more", c.MaxTries, DefaultMaxTries)
	}
	if c.Backoff < 0 || c.Backoff > MaxBackoff {
		return fieldErr("Backoff", "%s: want 0 (default %s) up to %s", c.Backoff, DefaultBackoff, MaxBackoff)
	}
	if w := c.Webhook; w != nil {
		if err := checkHTTPURL(w.URL); err != nil {
			// The URL may hold a token (many chat webhooks do): show only
			// where it points.
			return fieldErr("Webhook.URL", "%s: %w", redactURL(w.URL), err)
		}
		if strings.TrimSpace(w.Secret) == "" {
			return fieldErr("Webhook.Secret", "required: every request is signed with it so the receiver can check it came from hedgerow")
		}
		if w.Timeout < 0 {
			return fieldErr("Webhook.Timeout", "%s: want 0 (default %s) or more", w.Timeout, DefaultWebhookTimeout)
		}
	}
	if s := c.SMTP; s != nil {
		if err := checkHostPort(s.Addr); err != nil {
			return fieldErr("SMTP.Addr", "%q: %w", s.Addr, err)
		}
		if _, err := mail.ParseAddress(s.From); err != nil {
			return fieldErr("SMTP.From", "%q: want an email address: %w", s.From, err)
		}
		if len(s.To) == 0 {
			return fieldErr("SMTP.To", "empty: want at least one recipient")
		}
		for i, to := range s.To {
			if _, err := mail.ParseAddress(to); err != nil {
				return fieldErr(fmt.Sprintf("SMTP.To[%d]", i), "%q: want an email address: %w", to, err)
			}
		}
		if s.Username == "" && s.Password != "" {
			return fieldErr("SMTP.Username", "empty, but a password is set: want both or neither")
		}
		if s.Username != "" && s.Password == "" {
			return fieldErr("SMTP.Password", "empty, but a username is set: want both or neither")
		}
	}
	if s := c.Syslog; s != nil {
		switch s.Network {
		case "":
			if s.Addr != "" {
				return fieldErr("Syslog.Network", "empty, but Addr is %q: want udp or tcp (or unix, unixgram), or no Addr for the local syslog", s.Addr)
			}
		case "udp", "udp4", "udp6", "tcp", "tcp4", "tcp6":
			if err := checkHostPort(s.Addr); err != nil {
				return fieldErr("Syslog.Addr", "%q: %w", s.Addr, err)
			}
		case "unix", "unixgram":
			if s.Addr == "" {
				return fieldErr("Syslog.Addr", "empty: want the path of the syslog socket")
			}
		default:
			return fieldErr("Syslog.Network", "%q: want udp, tcp, unix, unixgram or empty (local syslog)", s.Network)
		}
		if strings.ContainsFunc(s.Tag, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fieldErr("Syslog.Tag", "%q: want no spaces or control characters", s.Tag)
		}
	}
	return nil
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("want an http:// or https:// URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http:// or https:// URL with a host")
	}
	return nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return errors.New("want host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return errors.New("want host:port with a port from 1 to 65535")
	}
	return nil
}

// redactURL keeps a URL's scheme and host: paths and queries of webhook
// URLs often carry the token that authorises them.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// Wants reports whether an incident should alert at once: a critical one
// (illegal content) or a pattern of harmful attempts. Callers use it to
// choose what to pass to Notify.
func Wants(in store.Incident) bool {
	return in.Severity == "critical" || in.Rule == rulePattern
}

// sender delivers one alert through one channel. Its error says whether a
// later try could succeed.
type sender interface {
	send(ctx context.Context, in store.Incident) error
	close()
}

// permanent marks an error that another try will not fix (a receiver that
// refuses the request, a mail server that refuses a recipient).
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// retryAfter is a retryable error with the receiver's wish for a wait.
type retryAfter struct {
	err  error
	wait time.Duration
}

func (r retryAfter) Error() string { return r.err.Error() }
func (r retryAfter) Unwrap() error { return r.err }

// channel is one channel's queue and sender.
type channel struct {
	name  string
	queue chan store.Incident
	s     sender
}

// Dispatcher queues incidents and sends alerts about them through the
// configured channels.
type Dispatcher struct {
	cfg      Config
	log      *slog.Logger
	m        *Metrics
	chans    []*channel
	flushFor time.Duration
	mail     *smtpSender // for the digest; nil without SMTP

	// mu lets Run close the door: once stopped, Notify counts what it is
	// given as dropped rather than leaving it in a queue nobody reads.
	mu      sync.RWMutex
	stopped bool
	running bool
}

// New checks cfg and returns a Dispatcher; call Run to start sending. log
// may be nil (no logs); m may be nil (counters that are not exported).
func New(cfg Config, log *slog.Logger, m *Metrics) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("alert config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.MaxTries == 0 {
		cfg.MaxTries = DefaultMaxTries
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = DefaultBackoff
	}
	cfg.AdminURL = strings.TrimRight(cfg.AdminURL, "/")
	d := &Dispatcher{cfg: cfg, log: log, m: m, flushFor: defaultFlushFor}
	if w := cfg.Webhook; w != nil {
		if u, _ := url.Parse(w.URL); u.Scheme == "http" && !isLoopback(u.Hostname()) {
			log.Warn("alert webhook is plain http: alerts cross the network unencrypted (signed, but readable)", "url", redactURL(w.URL))
		}
		d.add(ChannelWebhook, newWebhook(d, *w))
	}
	if s := cfg.SMTP; s != nil {
		d.mail = newSMTP(d, *s)
		d.add(ChannelSMTP, d.mail)
	}
	if s := cfg.Syslog; s != nil {
		sl, err := newSyslog(d, *s)
		if err != nil {
			return nil, fmt.Errorf("alert config: Syslog: %w", err)
		}
		d.add(ChannelSyslog, sl)
	}
	return d, nil
}

func (d *Dispatcher) add(name string, s sender) {
	d.chans = append(d.chans, &channel{name: name, queue: make(chan store.Incident, d.cfg.QueueSize), s: s})
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Notify queues an alert about in on every channel without waiting. A
// channel whose queue is full (it has been failing for a while) loses this
// alert: the loss is counted in hedgerow_alerts_dropped_total and logged,
// never silent. The same holds once Run has returned.
func (d *Dispatcher) Notify(in store.Incident) {
	in.Notes = nil // reviewers' notes are never sent; don't hold on to them
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, c := range d.chans {
		if d.stopped {
			d.drop(c.name, in, "alerts have stopped")
			continue
		}
		select {
		case c.queue <- in:
		default:
			d.drop(c.name, in, "queue full")
		}
	}
}

// drop counts and logs an alert that will not be sent. The log names the
// incident, never the pupil.
func (d *Dispatcher) drop(channel string, in store.Incident, why string) {
	d.m.dropped.Inc()
	d.log.Error("alert not sent", "channel", channel, "incident", in.ID, "severity", in.Severity,
		"category", in.Category, "reason", why)
}

// Run sends queued alerts until ctx is done, then keeps trying what is
// queued for a few seconds, counts and logs what is left, and returns. Call
// it once; Notify after Run has returned counts a drop.
func (d *Dispatcher) Run(ctx context.Context) {
	d.mu.Lock()
	if d.running || d.stopped {
		d.mu.Unlock()
		d.log.Error("alert dispatcher: Run called more than once")
		return
	}
	d.running = true
	d.mu.Unlock()

	// hard ends the flush: sends go on for flushFor after ctx is done, so
	// an alert queued just before a stop still has its chance.
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-hard.Done():
			return
		}
		t := time.NewTimer(d.flushFor)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-hard.Done():
		}
	}()

	var wg sync.WaitGroup
	for _, c := range d.chans {
		wg.Go(func() { d.work(ctx, hard, c) })
	}
	wg.Wait()

	// Close the door, then count anything that slipped in meanwhile.
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	for _, c := range d.chans {
		left := len(c.queue)
		for range left {
			<-c.queue
			d.m.dropped.Inc()
		}
		if left > 0 {
			d.log.Error("alerts not sent before shutdown", "channel", c.name, "alerts", left)
		}
		c.s.close()
	}
}

// work is one channel's loop: it sends its queue's alerts in order until ctx
// is done, then what is still queued until hard is done.
func (d *Dispatcher) work(ctx, hard context.Context, c *channel) {
	for {
		select {
		case in := <-c.queue:
			d.deliver(ctx, hard, c, in)
			continue
		case <-ctx.Done():
		}
		break
	}
	left := 0
	for {
		select {
		case in := <-c.queue:
			if hard.Err() != nil {
				d.m.dropped.Inc()
				left++
				continue
			}
			d.deliver(ctx, hard, c, in)
			continue
		default:
		}
		break
	}
	if left > 0 {
		d.log.Error("alerts not sent before shutdown", "channel", c.name, "alerts", left)
	}
}

// deliver tries to send one alert through one channel, up to MaxTries
// times with back-off; it counts every failed try and a final give-up.
func (d *Dispatcher) deliver(ctx, hard context.Context, c *channel, in store.Incident) {
	wait := d.cfg.Backoff
	for try := 1; ; try++ {
		err := c.s.send(hard, in)
		if err == nil {
			d.m.sent[c.name].Inc()
			return
		}
		if hard.Err() != nil {
			// Stopped mid-try: not the receiver's failure.
			d.drop(c.name, in, "shutdown before it could be sent")
			return
		}
		d.m.failed[c.name].Inc()
		var p permanent
		if errors.As(err, &p) {
			d.log.Error("alert refused; not retrying", "channel", c.name, "incident", in.ID, "try", try, "err", err)
			d.m.dropped.Inc()
			return
		}
		if try >= d.cfg.MaxTries {
			d.log.Error("alert failed; giving up", "channel", c.name, "incident", in.ID, "tries", try, "err", err)
			d.m.dropped.Inc()
			return
		}
		next := wait
		var ra retryAfter
		if errors.As(err, &ra) && ra.wait > next {
			next = min(ra.wait, MaxBackoff)
		}
		d.log.Warn("alert failed; will retry", "channel", c.name, "incident", in.ID, "try", try, "in", next, "err", err)
		if !sleep(ctx, hard, next) {
			d.drop(c.name, in, "shutdown before it could be sent")
			return
		}
		wait = min(wait*2, MaxBackoff)
	}
}

// sleep waits for dur; when ctx ends during the wait it returns at once so
// the flush gets one more try in, and it reports false once hard is done.
func sleep(ctx, hard context.Context, dur time.Duration) bool {
	t := time.NewTimer(dur)
	defer t.Stop()
	soft := ctx.Done()
	if ctx.Err() != nil {
		soft = nil // already flushing: wait the back-off out
	}
	select {
	case <-t.C:
	case <-soft:
	case <-hard.Done():
		return false
	}
	return hard.Err() == nil
}
