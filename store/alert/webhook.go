package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"hedgerow/store"
)

// Webhook request headers; see the package documentation for the scheme.
const (
	HeaderSignature = "X-Hedgerow-Signature"
	HeaderTimestamp = "X-Hedgerow-Timestamp"
)

// Sign returns the X-Hedgerow-Signature value for body sent with the
// X-Hedgerow-Timestamp value timestamp: "sha256=" and the hex HMAC-SHA256,
// keyed with secret, of timestamp + "." + body. Receivers written in Go can
// use it to verify (compare with hmac.Equal).
func Sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

type webhook struct {
	d      *Dispatcher
	cfg    WebhookConfig
	where  string // the URL without path or query, for logs
	client *http.Client
	tr     *http.Transport
	now    func() time.Time
}

func newWebhook(d *Dispatcher, cfg WebhookConfig) *webhook {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultWebhookTimeout
	}
	tr, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		tr = tr.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	return &webhook{d: d, cfg: cfg, where: redactURL(cfg.URL), tr: tr, now: time.Now,
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout,
			// A redirected POST turns into a GET elsewhere: better to
			// fail loudly and have the URL fixed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (w *webhook) close() { w.tr.CloseIdleConnections() }

// send POSTs one alert, signed afresh for this try.
func (w *webhook) send(ctx context.Context, in store.Incident) error {
	body, err := json.Marshal(w.d.payload(in))
	if err != nil {
		return permanent{fmt.Errorf("webhook: encode alert: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return permanent{fmt.Errorf("webhook %s: %w", w.where, err)}
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hedgerow-alert")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(w.cfg.Secret, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		// url.Error quotes the whole URL, token and all: keep its cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook %s: %w", w.where, err)
	}
	defer resp.Body.Close()
	// A little of the answer helps whoever reads the log; reading it to
	// the end lets the connection be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("webhook %s: %s: %q", w.where, resp.Status, strings.TrimSpace(oneLine(string(snippet))))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return retryAfter{err: err, wait: parseRetryAfter(resp.Header.Get("Retry-After"), w.now())}
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return err
	}
	return permanent{err}
}

// parseRetryAfter reads seconds or an HTTP date; 0 if neither.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(min(s, int(MaxBackoff/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
