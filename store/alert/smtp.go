package alert

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"

	"hedgerow/store"
)

type smtpSender struct {
	d        *Dispatcher
	cfg      SMTPConfig
	host     string // the server's name, for TLS and PlainAuth
	from     *mail.Address
	to       []*mail.Address
	heloName string
}

func newSMTP(d *Dispatcher, cfg SMTPConfig) *smtpSender {
	// Validate has checked these parse.
	host, _, _ := net.SplitHostPort(cfg.Addr)
	from, _ := mail.ParseAddress(cfg.From)
	s := &smtpSender{d: d, cfg: cfg, host: host, from: from, heloName: heloName()}
	for _, t := range cfg.To {
		a, _ := mail.ParseAddress(t)
		s.to = append(s.to, a)
	}
	return s
}

// heloName is this machine's name for EHLO: some servers turn away
// "localhost", net/smtp's default.
func heloName() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsFunc(h, func(r rune) bool {
		return !(r == '.' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		return "localhost"
	}
	return h
}

func (s *smtpSender) close() {}

// send delivers one email in one SMTP conversation.
func (s *smtpSender) send(ctx context.Context, in store.Incident) error {
	if err := s.converse(ctx, s.message(s.d.payload(in))); err != nil {
		return fmt.Errorf("smtp %s: %w", s.cfg.Addr, err)
	}
	return nil
}

func (s *smtpSender) converse(ctx context.Context, msg []byte) error {
	dl := net.Dialer{Timeout: smtpTimeout}
	conn, err := dl.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	// net/smtp knows no context: a deadline bounds a stuck server, and
	// cancelling ctx cuts the conversation short.
	_ = conn.SetDeadline(time.Now().Add(smtpTimeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return classify(err)
	}
	defer c.Close()
	if err := c.Hello(s.heloName); err != nil {
		return classify(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("starttls: %w", classify(err))
		}
	} else if s.cfg.StartTLS {
		// Another try won't make the server offer it; it may be someone
		// in between stripping it.
		return permanent{errors.New("the server does not offer STARTTLS, which the config requires")}
	}
	if s.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.host)); err != nil {
			return fmt.Errorf("auth: %w", classify(err))
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return fmt.Errorf("mail from: %w", classify(err))
	}
	for _, to := range s.to {
		if err := c.Rcpt(to.Address); err != nil {
			return fmt.Errorf("rcpt to %s: %w", to.Address, classify(err))
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", classify(err))
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: %w", classify(err))
	}
	// The mail is accepted; a failed QUIT does not undo that.
	_ = c.Quit()
	return nil
}

// classify marks the server's 5xx answers permanent: the server has said
// no, not "later".
func classify(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return permanent{err}
	}
	return err
}

// ErrNoMail is returned by SendEmail when no SMTP server is configured.
var ErrNoMail = errors.New("no SMTP server configured (alerts.smtp)")

// SendEmail sends one plain-text email to the alert recipients at once, in
// the caller's goroutine (the weekly digest): the caller decides whether to
// try again.
func (d *Dispatcher) SendEmail(ctx context.Context, subject, body string) error {
	if d.mail == nil {
		return ErrNoMail
	}
	if err := d.mail.converse(ctx, d.mail.compose("digest", subject, body)); err != nil {
		return fmt.Errorf("smtp %s: %w", d.mail.cfg.Addr, err)
	}
	return nil
}

// message is the email: short plain text, no identity in the subject.
func (s *smtpSender) message(p payload) []byte {
	return s.compose(fmt.Sprintf("alert-%d", p.ID), s.d.subject(p), s.d.body(p))
}

// compose builds a plain-text email; tag goes into the Message-ID.
func (s *smtpSender) compose(tag, subject, body string) []byte {
	var b strings.Builder
	to := make([]string, len(s.to))
	for i, a := range s.to {
		to[i] = a.String()
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	h("From", s.from.String())
	h("To", strings.Join(to, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", subject))
	h("Date", time.Now().Format(time.RFC1123Z))
	h("Message-ID", fmt.Sprintf("<hedgerow-%s-%s@%s>", tag, hex.EncodeToString(id), s.heloName))
	h("Auto-Submitted", "auto-generated")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	// Quoted-printable keeps the mail 7-bit with short lines whatever a
	// category name holds and whatever the server supports.
	h("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	_ = qp.Close()
	return []byte(b.String())
}
