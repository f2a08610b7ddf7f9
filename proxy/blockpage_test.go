package proxy

import (
	"bytes"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func testBlockInfo() BlockInfo {
	return BlockInfo{
		URL:                 "http://games.example/play/level-1?x=1",
		Host:                "games.example",
		Category:            "Online games",
		CategoryDescription: "Online and downloadable games.",
		Severity:            "low",
		Reason:              "blocked: games.example is listed as Online games, which group ks2 blocks",
		Group:               "ks2",
		Device:              "10.1.2.3",
		User:                "pupil42",
		Time:                time.Date(2026, 3, 4, 10, 5, 6, 0, time.FixedZone("GMT", 0)),
		SchoolName:          "Hedgerow Primary",
		ReportPath:          "/.well-known/hedgerow/report",
		CSRF:                "tok123",
	}
}

func renderString(t *testing.T, info BlockInfo) string {
	t.Helper()
	var b bytes.Buffer
	if err := renderBlockPage(&b, info); err != nil {
		t.Fatalf("renderBlockPage: %v", err)
	}
	return b.String()
}

func TestBlockPageContent(t *testing.T) {
	page := renderString(t, testBlockInfo())
	for _, want := range []string{
		`<html lang="en">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		"<h1>This page is blocked</h1>",
		"The filter at Hedgerow Primary stopped this page because it is about online games.",
		"If you think that&#39;s a mistake, you can tell us below.",
		"http://games.example/play/level-1?x=1",
		"Online and downloadable games.",
		"blocked: games.example is listed as Online games, which group ks2 blocks",
		"<dd>ks2</dd>", "<dd>10.1.2.3</dd>", "<dd>pupil42</dd>",
		"Wed 4 Mar 2026, 10:05:06 GMT",
		`<label for="unblock-message">Why do you need it?</label>`,
		`<textarea id="unblock-message" name="message"`,
		"Ask IT to check this page",
		`<label for="concern-message">What happened? (only the safeguarding lead will see this)</label>`,
		`<textarea id="concern-message" name="message"`,
		"Tell the safeguarding lead",
		":focus-visible",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "upset or worried") {
		t.Error("low severity page has the reassurance meant for harmful content")
	}
	forms := formsOf(t, page)
	if len(forms) != 2 {
		t.Fatalf("found %d forms, want 2", len(forms))
	}
	for i, kind := range []string{ReportUnblock, ReportConcern} {
		f := forms[i]
		if f.action != "/.well-known/hedgerow/report" || f.method != "post" {
			t.Errorf("form %d: action %q method %q", i, f.action, f.method)
		}
		want := map[string]string{"kind": kind, "url": "http://games.example/play/level-1?x=1",
			"host": "games.example", "category": "Online games", "token": "tok123"}
		for k, v := range want {
			if f.hidden[k] != v {
				t.Errorf("form %d: hidden %s = %q, want %q", i, k, f.hidden[k], v)
			}
		}
	}
}

// The page must be self-contained and script-free.
func TestBlockPageSelfContained(t *testing.T) {
	page := renderString(t, testBlockInfo())
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "src=", "href=", "@import", "url(", "http-equiv=\"refresh\""} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}

func TestBlockPageEscapes(t *testing.T) {
	const evil = `<script>alert(1)</script>"'&`
	info := BlockInfo{
		URL: "javascript:alert(1)//" + evil, Host: "h" + evil, Category: "c" + evil, CategoryDescription: "d" + evil,
		Severity: "high", Reason: "r" + evil, Group: "g" + evil, Device: "dev" + evil, User: "u" + evil,
		SchoolName: "s" + evil, ReportPath: "javascript:alert(2)", CSRF: `t"><script>x</script>`,
		Time: time.Unix(0, 0).UTC(),
	}
	page := renderString(t, info)
	if strings.Contains(page, "<script") || strings.Contains(page, "alert(2)") {
		t.Fatalf("unescaped script or javascript: action in page:\n%s", page)
	}
	// The URL is text only: no attribute other than the hidden value holds
	// it, and no link exists at all.
	if strings.Contains(page, "href") {
		t.Error("page has a link")
	}
	if !strings.Contains(page, "javascript:alert(1)//&lt;script&gt;") {
		t.Error("URL is not shown as escaped text")
	}
	for _, f := range formsOf(t, page) {
		if f.hidden["url"] != info.URL || f.hidden["token"] != info.CSRF || f.hidden["host"] != info.Host {
			t.Errorf("hidden fields do not round-trip: %q", f.hidden)
		}
		if strings.Contains(f.action, "javascript") {
			t.Errorf("form action %q", f.action)
		}
	}
	if !strings.Contains(page, "upset or worried") {
		t.Error("high severity page lacks the reassurance")
	}
}

func TestBlockPageInvalidUTF8(t *testing.T) {
	info := testBlockInfo()
	info.URL = "http://x.example/\xff\xfe"
	page := renderString(t, info)
	if !strings.Contains(page, "http://x.example/\uFFFD") || !utf8.ValidString(page) {
		t.Error("invalid UTF-8 not replaced")
	}
}

func TestBlockPageCriticalHidesPath(t *testing.T) {
	info := testBlockInfo()
	info.URL = "http://bad.example/secret/victim-name.jpg"
	info.Host = "bad.example"
	info.Category = "Child sexual abuse content"
	info.Severity = "critical"
	info.Reason = "blocked for everyone: bad.example/secret/victim-name.jpg is listed as Child sexual abuse content"
	page := renderString(t, info)
	if strings.Contains(page, "secret") || strings.Contains(page, "victim-name") {
		t.Errorf("critical page shows the URL path:\n%s", page)
	}
	if !strings.Contains(page, "bad.example") {
		t.Error("critical page does not show the host")
	}
	if strings.Contains(page, "about child sexual abuse") {
		t.Error("critical page names the category to the child")
	}
	if !strings.Contains(page, "upset or worried") {
		t.Error("critical page lacks the reassurance")
	}
	forms := formsOf(t, page)
	if len(forms) != 1 || forms[0].hidden["kind"] != ReportConcern || forms[0].hidden["url"] != "bad.example" {
		t.Errorf("critical page forms: %+v; want only the concern form, url = host", forms)
	}
}

func TestBlockPageDefaults(t *testing.T) {
	page := renderString(t, BlockInfo{Host: "denied.example", URL: "http://denied.example/"})
	for _, want := range []string{
		"The filter at your school stopped this page because the school has chosen not to allow this site.",
		`action="` + ReportPath + `"`,
		"none (a site rule)",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, absent := range []string{"<dt>User</dt>", "<dt>Device</dt>", "<dt>Time</dt>"} {
		if strings.Contains(page, absent) {
			t.Errorf("page has empty row %q", absent)
		}
	}
}

func TestLowerFirst(t *testing.T) {
	for in, want := range map[string]string{"Online games": "online games", "IWF list": "IWF list", "": "", "x": "x", "Émoji": "émoji"} {
		if got := lowerFirst(in); got != want {
			t.Errorf("lowerFirst(%q) = %q, want %q", in, got, want)
		}
	}
}

type parsedForm struct {
	action, method string
	hidden         map[string]string
}

var (
	formRE   = regexp.MustCompile(`(?s)<form method="([^"]*)" action="([^"]*)"[^>]*>(.*?)</form>`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// formsOf finds the page's forms and their hidden fields, unescaped as a
// browser would.
func formsOf(t *testing.T, page string) []parsedForm {
	t.Helper()
	var out []parsedForm
	for _, m := range formRE.FindAllStringSubmatch(page, -1) {
		f := parsedForm{method: m[1], action: html.UnescapeString(m[2]), hidden: map[string]string{}}
		for _, h := range hiddenRE.FindAllStringSubmatch(m[3], -1) {
			f.hidden[h[1]] = html.UnescapeString(h[2])
		}
		out = append(out, f)
	}
	return out
}

func TestRenderReportThanks(t *testing.T) {
	tests := []struct {
		kind, school string
		want         []string
		wantErr      bool
	}{
		{ReportUnblock, "Hedgerow Primary", []string{"Thank you", "asked IT at Hedgerow Primary"}, false},
		{ReportConcern, "", []string{"Thank you", "safeguarding lead at your school", "not in trouble", "0800 1111"}, false},
		{ReportConcern, "<b>x</b>", []string{"&lt;b&gt;x&lt;/b&gt;"}, false},
		{"other", "", nil, true},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		err := renderReportThanks(&b, tc.kind, tc.school)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v", tc.kind, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: page lacks %q", tc.kind, w)
			}
		}
	}
}

func reportRequest(method, contentType, body string) *http.Request {
	r := httptest.NewRequest(method, "http://blocked.example"+ReportPath, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

func TestParseReport(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	good := url.Values{"kind": {"unblock"}, "url": {"http://games.example/a"}, "host": {"games.example"},
		"category": {"Online games"}, "token": {"tok"}, "message": {"  for my homework \r\n on Romans  "}}
	with := func(k, v string) string {
		f := url.Values{}
		for key, vals := range good {
			f[key] = vals
		}
		if v == "\x00delete" {
			delete(f, k)
		} else {
			f[k] = []string{v}
		}
		return f.Encode()
	}
	tests := []struct {
		name, method, ctype, body string
		want                      Report
		wantErr                   string // substring of the error; "" for none
	}{
		{"good", "POST", form, good.Encode(), Report{Kind: "unblock", URL: "http://games.example/a", Host: "games.example",
			Category: "Online games", Message: "for my homework \r\n on Romans", Token: "tok"}, ""},
		{"concern without message", "POST", form + "; charset=UTF-8", "kind=concern&host=games.example&token=tok",
			Report{Kind: "concern", Host: "games.example", Token: "tok"}, ""},
		{"duplicate message", "POST", form, good.Encode() + "&message=", Report{}, "field message is given 2 times"},
		{"concern", "POST", form, with("kind", "concern"), Report{Kind: "concern", URL: "http://games.example/a", Host: "games.example",
			Category: "Online games", Message: "for my homework \r\n on Romans", Token: "tok"}, ""},
		{"wrong method", "GET", form, good.Encode(), Report{}, "method GET"},
		{"wrong content type", "POST", "multipart/form-data; boundary=x", good.Encode(), Report{}, "content type"},
		{"no content type", "POST", "", good.Encode(), Report{}, "content type"},
		{"wrong charset", "POST", form + "; charset=iso-8859-1", good.Encode(), Report{}, "charset"},
		{"oversize body", "POST", form, with("message", strings.Repeat("a", 17<<10)), Report{}, "larger than 16384"},
		{"bad kind", "POST", form, with("kind", "delete"), Report{}, "field kind"},
		{"missing kind", "POST", form, with("kind", "\x00delete"), Report{}, "field kind is missing"},
		{"missing host", "POST", form, with("host", "\x00delete"), Report{}, "field host is missing"},
		{"missing token", "POST", form, with("token", ""), Report{}, "field token is missing"},
		{"long message", "POST", form, with("message", strings.Repeat("é", 2001)), Report{}, "field message is 4002 bytes"},
		{"message at the limit after trim", "POST", form, with("message", "  "+strings.Repeat("a", 4000)+"\n"), Report{Kind: "unblock",
			URL: "http://games.example/a", Host: "games.example", Category: "Online games", Message: strings.Repeat("a", 4000), Token: "tok"}, ""},
		{"long url", "POST", form, with("url", "http://x/"+strings.Repeat("a", 2048)), Report{}, "field url"},
		{"long host", "POST", form, with("host", strings.Repeat("a", 254)), Report{}, "field host"},
		{"long category", "POST", form, with("category", strings.Repeat("a", 65)), Report{}, "field category"},
		{"invalid utf-8", "POST", form, with("message", "bad \xff byte"), Report{}, "field message is not valid UTF-8"},
		{"control character in host", "POST", form, with("host", "a\x00b"), Report{}, "field host contains control"},
		{"control character in message", "POST", form, with("message", "a\x1bb"), Report{}, "field message contains control"},
		{"duplicate kind", "POST", form, good.Encode() + "&kind=concern", Report{}, "field kind is given 2 times"},
		{"bad form encoding", "POST", form, "kind=%zz", Report{}, "not valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseReport(reportRequest(tc.method, tc.ctype, tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseReportOversizeIsMaxBytesError(t *testing.T) {
	_, err := parseReport(reportRequest("POST", "application/x-www-form-urlencoded", strings.Repeat("a", 20<<10)))
	if _, ok := errors.AsType[*http.MaxBytesError](err); !ok {
		t.Errorf("err = %v, want a *http.MaxBytesError inside", err)
	}
}

func TestParseReportNilBody(t *testing.T) {
	r := reportRequest("POST", "application/x-www-form-urlencoded", "")
	r.Body = nil
	if _, err := parseReport(r); err == nil {
		t.Error("nil body accepted")
	}
}

// The block page's own forms, posted as a browser would, must parse.
func TestBlockPageFormsParse(t *testing.T) {
	info := testBlockInfo()
	info.URL = "http://games.example/a?b=<c>&d='e'"
	for _, f := range formsOf(t, renderString(t, info)) {
		v := url.Values{"message": {"please"}}
		for k, val := range f.hidden {
			v.Set(k, val)
		}
		rep, err := parseReport(reportRequest("POST", "application/x-www-form-urlencoded", v.Encode()))
		if err != nil {
			t.Fatalf("%s form: %v", f.hidden["kind"], err)
		}
		if rep.URL != info.URL || rep.Host != info.Host || rep.Kind != f.hidden["kind"] || rep.Token != info.CSRF {
			t.Errorf("round trip: %+v", rep)
		}
	}
}

func FuzzParseReport(f *testing.F) {
	f.Add("POST", "application/x-www-form-urlencoded", "kind=unblock&host=a.example&token=t&message=hi")
	f.Add("POST", "application/x-www-form-urlencoded; charset=utf-8", "kind=concern&host=%FF&token=t")
	f.Add("POST", "text/plain", "kind=concern")
	f.Add("GET", "", "")
	f.Fuzz(func(t *testing.T, method, ctype, body string) {
		r := &http.Request{Method: method, Header: http.Header{"Content-Type": {ctype}}, Body: io.NopCloser(strings.NewReader(body))}
		rep, err := parseReport(r)
		if err != nil {
			return
		}
		if rep.Kind != ReportUnblock && rep.Kind != ReportConcern {
			t.Fatalf("kind %q accepted", rep.Kind)
		}
		for name, v := range map[string]string{"url": rep.URL, "host": rep.Host, "category": rep.Category, "message": rep.Message, "token": rep.Token} {
			if !utf8.ValidString(v) || v != strings.TrimSpace(v) {
				t.Fatalf("field %s = %q", name, v)
			}
		}
		if len(rep.Message) > maxReportMessage || len(rep.URL) > maxReportURL || len(rep.Host) > maxReportHost ||
			len(rep.Category) > maxReportCategory || rep.Host == "" || rep.Token == "" {
			t.Fatalf("limits not enforced: %+v", rep)
		}
		// Whatever was accepted renders safely on the page.
		var b bytes.Buffer
		if err := renderBlockPage(&b, BlockInfo{URL: rep.URL, Host: rep.Host, Category: rep.Category, CSRF: rep.Token}); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "<script") {
			t.Fatal("script in page")
		}
	})
}

func BenchmarkRenderBlockPage(b *testing.B) {
	info := testBlockInfo()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := renderBlockPage(&buf, info); err != nil {
			b.Fatal(err)
		}
	}
}
