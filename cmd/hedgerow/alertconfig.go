package main

import (
	"errors"
	"fmt"
	"strings"

	"hedgerow/store/alert"
)

// AlertSettings is the alerts: section of the config file. A channel is off
// when its switch key is empty or false: webhook.url, smtp.addr,
// syslog.enabled.
type AlertSettings struct {
	AdminURL   string               `yaml:"admin_url"`  // base URL alerts link to; empty: no link
	Identities bool                 `yaml:"identities"` // add device address and user to alerts; default false
	Webhook    AlertWebhookSettings `yaml:"webhook"`
	SMTP       AlertSMTPSettings    `yaml:"smtp"`
	Syslog     AlertSyslogSettings  `yaml:"syslog"`
}

// AlertWebhookSettings is alerts.webhook: a signed JSON POST per alert.
type AlertWebhookSettings struct {
	URL     string   `yaml:"url"`     // empty: off
	Secret  string   `yaml:"secret"`  // HMAC key; required with url
	Timeout Duration `yaml:"timeout"` // one try; default 10s
}

// AlertSMTPSettings is alerts.smtp: a plain-text email per alert.
type AlertSMTPSettings struct {
	Addr     string   `yaml:"addr"` // host:port; empty: off
	From     string   `yaml:"from"`
	To       []string `yaml:"to"`
	Username string   `yaml:"username"` // AUTH PLAIN when set (over TLS, or to localhost)
	Password string   `yaml:"password"`
	StartTLS bool     `yaml:"starttls"` // refuse to send unless the server offers STARTTLS
}

// AlertSyslogSettings is alerts.syslog: one line per alert at auth.alert.
type AlertSyslogSettings struct {
	Enabled bool   `yaml:"enabled"`
	Network string `yaml:"network"` // udp, tcp, unix, unixgram; empty with no addr: the local syslog
	Addr    string `yaml:"addr"`
	Tag     string `yaml:"tag"` // default hedgerow
}

// alertKeys maps alert.Config's field names to the config file's keys, so
// that errors name what the user wrote.
var alertKeys = map[string]string{
	"AdminURL":        "alerts.admin_url",
	"Webhook.URL":     "alerts.webhook.url",
	"Webhook.Secret":  "alerts.webhook.secret",
	"Webhook.Timeout": "alerts.webhook.timeout",
	"SMTP.Addr":       "alerts.smtp.addr",
	"SMTP.From":       "alerts.smtp.from",
	"SMTP.To":         "alerts.smtp.to",
	"SMTP.Username":   "alerts.smtp.username",
	"SMTP.Password":   "alerts.smtp.password",
	"Syslog.Network":  "alerts.syslog.network",
	"Syslog.Addr":     "alerts.syslog.addr",
	"Syslog.Tag":      "alerts.syslog.tag",
}

// AlertConfig converts the settings to an alert.Config and checks it;
// errors name the key, as in "alerts.webhook.url: ...". Queue size, tries
// and back-off keep the alert package's defaults.
func (s AlertSettings) AlertConfig() (alert.Config, error) {
	cfg := alert.Config{AdminURL: s.AdminURL, Identities: s.Identities}
	if s.Webhook.URL != "" {
		cfg.Webhook = &alert.WebhookConfig{URL: s.Webhook.URL, Secret: s.Webhook.Secret, Timeout: s.Webhook.Timeout.D()}
	}
	if s.SMTP.Addr != "" {
		cfg.SMTP = &alert.SMTPConfig{Addr: s.SMTP.Addr, From: s.SMTP.From, To: s.SMTP.To,
			Username: s.SMTP.Username, Password: s.SMTP.Password, StartTLS: s.SMTP.StartTLS}
	}
	if s.Syslog.Enabled {
		cfg.Syslog = &alert.SyslogConfig{Network: s.Syslog.Network, Addr: s.Syslog.Addr, Tag: s.Syslog.Tag}
	}
	if err := cfg.Validate(); err != nil {
		var ce *alert.ConfigError
		if !errors.As(err, &ce) {
			return alert.Config{}, fmt.Errorf("alerts: %w", err)
		}
		// "SMTP.To[1]" becomes "alerts.smtp.to[1]".
		field, index, _ := strings.Cut(ce.Field, "[")
		key, ok := alertKeys[field]
		if !ok {
			key = "alerts." + strings.ToLower(field)
		}
		if index != "" {
			key += "[" + index
		}
		return alert.Config{}, fmt.Errorf("%s: %w", key, ce.Err)
	}
	return cfg, nil
}
