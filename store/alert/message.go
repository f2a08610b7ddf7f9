package alert

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"hedgerow/store"
)

// payload is an alert's content: the webhook's JSON, and the fields the
// email and the syslog line show. Device and User are set only when the
// school has chosen to send identities.
type payload struct {
	ID       uint64    `json:"id"`
	Kind     string    `json:"kind"`
	Severity string    `json:"severity"`
	Category string    `json:"category"`
	Group    string    `json:"group"`
	Host     string    `json:"host"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Count    int       `json:"count"`
	Channel  string    `json:"channel"`
	Link     string    `json:"link,omitempty"`
	Device   string    `json:"device,omitempty"`
	User     string    `json:"user,omitempty"`
}

// payload picks from an incident what an alert may carry. The host is
// always there: the lead needs to know what was attempted. The URL and any
// search term are never there: they can say far more about a child.
func (d *Dispatcher) payload(in store.Incident) payload {
	p := payload{ID: in.ID, Kind: kind(in), Severity: in.Severity, Category: in.Category, Group: in.Group,
		Host: in.Host, First: in.First.UTC(), Last: in.Last.UTC(), Count: in.Count, Channel: in.Channel}
	if d.cfg.AdminURL != "" {
		p.Link = d.cfg.AdminURL + "/incidents/" + strconv.FormatUint(in.ID, 10)
	}
	if d.cfg.Identities {
		p.Device, p.User = in.Client, in.User
	}
	return p
}

func kind(in store.Incident) string {
	switch {
	case in.Rule == rulePattern:
		return KindPattern
	case in.Severity == "critical":
		return KindCritical
	}
	return KindIncident
}

// categoryName is the category's display name for people to read.
func (d *Dispatcher) categoryName(slug string) string {
	if d.cfg.CategoryName != nil && slug != "" {
		if n := oneLine(d.cfg.CategoryName(slug)); n != "" {
			return n
		}
	}
	return slug
}

// subject is the email's subject line. It never names a pupil or device,
// whatever Identities says: subjects show in notification pop-ups and mail
// lists that other people see.
func (d *Dispatcher) subject(p payload) string {
	what := p.Severity + " incident"
	switch p.Kind {
	case KindCritical:
		what = "critical incident"
	case KindPattern:
		what = "pattern of attempts"
	}
	if c := d.categoryName(p.Category); c != "" {
		what += " (" + c + ")"
	}
	return oneLine("hedgerow: " + what + " at " + p.Last.Local().Format("15:04"))
}

// body is the email's plain text.
func (d *Dispatcher) body(p payload) string {
	var b strings.Builder
	switch p.Kind {
	case KindCritical:
		b.WriteString("A device tried to reach content in a critical (illegal) category.\n\n")
	case KindPattern:
		b.WriteString("Repeated attempts at harmful content by one device or user raised a pattern incident.\n\n")
	default:
		b.WriteString("An incident was raised for your attention.\n\n")
	}
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-10s %s\n", k+":", oneLine(v))
		}
	}
	cat := p.Category
	if n := d.categoryName(p.Category); n != p.Category {
		cat = n + " (" + p.Category + ")"
	}
	const when = "2006-01-02 15:04:05 MST"
	line("Incident", strconv.FormatUint(p.ID, 10))
	line("Kind", p.Kind)
	line("Severity", p.Severity)
	line("Category", cat)
	line("Group", p.Group)
	line("Host", p.Host)
	line("Channel", p.Channel)
	line("First", p.First.Local().Format(when))
	line("Last", p.Last.Local().Format(when))
	line("Attempts", strconv.Itoa(p.Count))
	line("Device", p.Device)
	line("User", p.User)
	if p.Link != "" {
		fmt.Fprintf(&b, "\nOpen the incident: %s\n", p.Link)
	}
	if !d.cfg.Identities {
		b.WriteString("\nThis email leaves out who and which device: the admin UI shows them to those entitled to see them.\n")
	}
	return b.String()
}

// syslogLine is the alert as one line of key=value pairs.
func (d *Dispatcher) syslogLine(p payload) string {
	var b strings.Builder
	b.WriteString("alert")
	kv := func(k, v string) {
		if v == "" {
			return
		}
		b.WriteString(" " + k + "=")
		if strings.ContainsFunc(v, func(r rune) bool { return r == ' ' || r == '"' || r == '=' || !unicode.IsPrint(r) }) {
			v = strconv.Quote(v)
		}
		b.WriteString(v)
	}
	kv("kind", p.Kind)
	kv("id", strconv.FormatUint(p.ID, 10))
	kv("severity", p.Severity)
	kv("category", p.Category)
	kv("group", p.Group)
	kv("host", p.Host)
	kv("channel", p.Channel)
	kv("count", strconv.Itoa(p.Count))
	kv("first", p.First.Format(time.RFC3339))
	kv("last", p.Last.Format(time.RFC3339))
	kv("device", p.Device)
	kv("user", p.User)
	kv("link", p.Link)
	return b.String()
}

// oneLine replaces control characters, so a value can't start a new header
// or log line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}
