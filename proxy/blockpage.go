package proxy

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// pageFiles holds the pages the proxy serves itself. They are embedded so a
// block page never depends on a file, or anything else, being reachable.
//
//go:embed pages/block.html pages/report.html
var pageFiles embed.FS

// pageTemplates is parsed once at start-up and only read afterwards;
// html/template's Execute is safe for concurrent use.
var pageTemplates = template.Must(template.ParseFS(pageFiles, "pages/block.html", "pages/report.html"))

// BlockInfo is what the block page shows. The caller sends it as the body of
// a 403 with Content-Type text/html; charset=utf-8 and Cache-Control:
// no-store, so that neither the browser nor a shared cache keeps a page that
// names a pupil, a device and what they tried to visit.
type BlockInfo struct {
	URL                 string    // what was asked for (may be just the host for HTTPS)
	Host                string    // the canonical host
	Category            string    // category display name, "" when none (e.g. a deny rule)
	CategoryDescription string    // the category's description, for teachers
	Severity            string    // "critical", "high", "low" or ""
	Reason              string    // the verdict's explanation for a teacher (categories.Verdict.Reason())
	Group               string    // the client's group
	Device              string    // client address, or device/user name when known
	User                string    // the authenticated user, "" when unknown
	Time                time.Time // when it was blocked, in the school's time zone
	SchoolName          string    // "" → "your school"
	ReportPath          string    // where the two forms post; "" → ReportPath
	CSRF                string    // an opaque token, put in a hidden field named "token"
}

// blockView is BlockInfo made ready to show: every string valid UTF-8 (the
// page says it is) and the critical-content redactions applied.
type blockView struct {
	Explanation         string
	Reassure            bool
	Critical            bool
	URL                 string
	Host                string
	Category            string
	CategoryDescription string
	Severity            string
	Reason              string
	Group               string
	Device              string
	User                string
	Time                string
	School              string
	ReportPath          string
	Token               string
}

// blockTimeFormat is RFC 1123 as people in the UK write it; the zone name
// tells a teacher whether it is GMT or BST.
const blockTimeFormat = "Mon 2 Jan 2006, 15:04:05 MST"

// criticalReason replaces the verdict's reason on critical blocks, because
// that reason quotes the matched list entry, which can be the full URL.
const criticalReason = "This site is on a list of illegal content that is blocked for everyone and cannot be " +
	"unblocked. The safeguarding lead can see the full details."

// renderBlockPage writes the block page. Everything it shows is escaped by
// html/template and the blocked URL only ever appears as text, never as a
// link, so a hostile URL cannot script the page or be clicked through.
func renderBlockPage(w io.Writer, info BlockInfo) error {
	if err := pageTemplates.ExecuteTemplate(w, "block.html", newBlockView(info)); err != nil {
		return fmt.Errorf("block page for %q: %w", info.Host, err)
	}
	return nil
}

// newBlockView decides what the page says for info.
func newBlockView(info BlockInfo) blockView {
	v := blockView{
		Critical:            info.Severity == "critical",
		Reassure:            info.Severity == "critical" || info.Severity == "high",
		URL:                 validText(info.URL),
		Host:                validText(info.Host),
		Category:            validText(info.Category),
		CategoryDescription: validText(info.CategoryDescription),
		Severity:            validText(info.Severity),
		Reason:              validText(info.Reason),
		Group:               validText(info.Group),
		Device:              validText(info.Device),
		User:                validText(info.User),
		School:              validText(info.SchoolName),
		ReportPath:          info.ReportPath,
		Token:               validText(info.CSRF),
	}
	if v.School == "" {
		v.School = "your school"
	}
	if v.ReportPath == "" {
		v.ReportPath = ReportPath
	}
	if !info.Time.IsZero() {
		v.Time = info.Time.Format(blockTimeFormat)
	}
	filter := "The filter at " + v.School + " stopped this page"
	switch {
	case v.Critical:
		// The path of a listed illegal URL can itself be distressing or
		// identify a victim, and whoever sees this screen (the pupil, a
		// classmate, a teacher) has no need of it: the host is enough here,
		// in the hidden form fields too, and the DSL has the full URL in
		// the incident. The category's name is not for a child either.
		v.URL = v.Host
		v.Reason = criticalReason
		v.Explanation = filter + " because it is not safe to visit."
	case v.Category == "":
		v.Explanation = filter + " because the school has chosen not to allow this site."
	default:
		v.Explanation = filter + " because it is about " + lowerFirst(v.Category) + "."
	}
	return v
}

// validText returns s with invalid UTF-8 replaced, so the page stays valid
// whatever bytes the request held.
func validText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// lowerFirst lower-cases a category name's first letter to sit mid-sentence
// ("about online games"), but leaves acronyms ("IWF list") alone.
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	next, _ := utf8.DecodeRuneInString(s[n:])
	if !unicode.IsUpper(r) || unicode.IsUpper(next) {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}

// Report kinds: what the two block page forms ask for.
const (
	// ReportUnblock asks IT to check whether a page should be unblocked.
	ReportUnblock = "unblock"
	// ReportConcern tells the safeguarding lead about something that
	// happened; only the DSL sees it.
	ReportConcern = "concern"
)

// Report is a pupil's or teacher's report from the block page.
type Report struct {
	Kind     string // ReportUnblock or ReportConcern
	URL      string // the blocked URL (the host alone for critical content)
	Host     string // the blocked host
	Category string // the category display name, "" for a site rule
	Message  string // what the person wrote, trimmed; may be empty
	Token    string // the CSRF token from the page, for the caller to check
}

// Limits on a report. The body limit is the whole form; the others keep a
// report something a person can read and a form field the page itself
// could have sent (the textarea's maxlength is the message limit).
const (
	maxReportBody     = 16 << 10
	maxReportMessage  = 4000
	maxReportURL      = 2048
	maxReportHost     = 253
	maxReportCategory = 64
	maxReportToken    = 256
	reportMediaType   = "application/x-www-form-urlencoded"
)

// parseReport reads and validates a report form posted from the block page:
// method POST, Content-Type application/x-www-form-urlencoded, a body of at
// most 16 KiB, kind one of the two, host and token present, message at most
// 4000 bytes once trimmed, url, host and category at most 2048, 253 and 64
// bytes, every field valid UTF-8, given at most once and without control
// characters (the message may have line breaks and tabs). Errors name the
// field; the caller answers 405 when r.Method is not POST and 400 otherwise.
// The token is returned unchecked: checking it is the caller's job.
func parseReport(r *http.Request) (Report, error) {
	if r.Method != http.MethodPost {
		return Report{}, fmt.Errorf("report: method %s: the form must be sent with POST", r.Method)
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != reportMediaType {
		return Report{}, fmt.Errorf("report: content type %q: want %s", ct, reportMediaType)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return Report{}, fmt.Errorf("report: charset %q: want utf-8", cs)
	}
	if r.Body == nil {
		return Report{}, errors.New("report: the request has no body")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxReportBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return Report{}, fmt.Errorf("report: the form is larger than %d bytes: %w", maxReportBody, err)
		}
		return Report{}, fmt.Errorf("report: reading the form: %w", err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Report{}, fmt.Errorf("report: the form is not valid: %w", err)
	}
	var rep Report
	fields := []struct {
		name     string
		dst      *string
		max      int
		required bool
	}{
		{"kind", &rep.Kind, maxReportCategory, true},
		{"url", &rep.URL, maxReportURL, false},
		{"host", &rep.Host, maxReportHost, true},
		{"category", &rep.Category, maxReportCategory, false},
		{"message", &rep.Message, maxReportMessage, false},
		{"token", &rep.Token, maxReportToken, true},
	}
	for _, f := range fields {
		if *f.dst, err = reportField(form, f.name, f.max, f.required); err != nil {
			return Report{}, err
		}
	}
	if rep.Kind != ReportUnblock && rep.Kind != ReportConcern {
		return Report{}, fmt.Errorf("report: field kind is %q: want %q or %q", rep.Kind, ReportUnblock, ReportConcern)
	}
	return rep, nil
}

// reportField returns one trimmed, validated field of a report form.
func reportField(form url.Values, name string, max int, required bool) (string, error) {
	vals := form[name]
	if len(vals) > 1 {
		return "", fmt.Errorf("report: field %s is given %d times: want it once", name, len(vals))
	}
	var v string
	if len(vals) == 1 {
		v = strings.TrimSpace(vals[0])
	}
	switch {
	case v == "" && required:
		return "", fmt.Errorf("report: field %s is missing", name)
	case !utf8.ValidString(v):
		return "", fmt.Errorf("report: field %s is not valid UTF-8", name)
	case len(v) > max:
		return "", fmt.Errorf("report: field %s is %d bytes: at most %d allowed", name, len(v), max)
	}
	for _, r := range v {
		if unicode.IsControl(r) && (name != "message" || (r != '\n' && r != '\r' && r != '\t')) {
			return "", fmt.Errorf("report: field %s contains control character %U", name, r)
		}
	}
	return v, nil
}

// thanksView is what the thank-you page needs.
type thanksView struct {
	Concern bool
	School  string
}

// renderReportThanks writes the page shown after a report is filed, telling
// the person who will read it. As with the block page, the caller sends it
// with Cache-Control: no-store.
func renderReportThanks(w io.Writer, kind string, schoolName string) error {
	if kind != ReportUnblock && kind != ReportConcern {
		return fmt.Errorf("report thank-you page: kind %q: want %q or %q", kind, ReportUnblock, ReportConcern)
	}
	v := thanksView{Concern: kind == ReportConcern, School: validText(schoolName)}
	if v.School == "" {
		v.School = "your school"
	}
	if err := pageTemplates.ExecuteTemplate(w, "report.html", v); err != nil {
		return fmt.Errorf("report thank-you page: %w", err)
	}
	return nil
}
