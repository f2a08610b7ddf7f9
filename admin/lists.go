package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"hedgerow/categories"
	"hedgerow/categories/listfile"
	"hedgerow/store"
)

// listRoutes are the IT pages for the category lists and the audit log.
func (s *Server) listRoutes() []route {
	const get, post = http.MethodGet, http.MethodPost
	return []route{
		{get, "/lists", roleAdmin, true, true, s.lists},
		{post, "/lists/entries", roleAdmin, true, true, s.addListEntry},
		{post, "/lists/entries/remove", roleAdmin, true, true, s.removeListEntry},
		{post, "/lists/import", roleAdmin, true, true, s.startImport},
		{get, "/lists/import/{id}", roleAdmin, true, true, s.importStatus},
		{get, "/audit", roleAdmin, true, true, s.auditLog},
	}
}

// listChangeActions are the audit actions that change what is on the lists:
// hand edits, imports, scheduled updates and feed removals. Update checks
// that changed nothing ("feed-check") are left out: they would bury the
// changes under one record per feed per night.
var listChangeActions = []string{"lists", "import", "remove-feed", "feed-update"}

// recentListChanges is how many list changes the lists page shows.
const recentListChanges = 20

// foundRow is a stored entry matching the search, and whether it can be
// removed here: only hand-added entries can; a feed's entries come back
// with its next import.
type foundRow struct {
	store.Found
	Removable bool `json:"removable"`
}

// categoryOption is one category in the page's selects.
type categoryOption struct {
	Slug, Name, Severity string
	Approve              bool // an allow-kind category: marks sites as approved rather than blocking them
}

// listForm keeps what was typed into the add form when it is shown again
// with an error.
type listForm struct {
	Target, Category, Reason string
}

// importForm keeps what was typed into the import form (not the file).
type importForm struct {
	URL, Feed, Format, Category, Reason string
	Locked                              bool
}

type listsPage struct {
	Query    string              `json:"query,omitempty"`
	Target   string              `json:"target,omitempty"` // the query as the filter sees it
	Searched bool                `json:"-"`
	Found    []foundRow          `json:"found"`
	Feeds    []store.FeedInfo    `json:"feeds"`
	Changes  []store.AuditRecord `json:"changes"`
	Imports  []importJob         `json:"imports"`
	Schedule string              `json:"schedule"` // when feeds are updated by themselves

	Categories []categoryOption `json:"-"`
	Formats    []string         `json:"-"`
	Add        listForm         `json:"-"`
	Import     importForm       `json:"-"`
}

// importFormats are the formats the import form offers, auto first.
var importFormats = []string{string(listfile.FormatAuto), string(listfile.FormatUT1), string(listfile.FormatHosts),
	string(listfile.FormatDomains), string(listfile.FormatAdblock)}

func (s *Server) lists(c *call) (reply, error) {
	p, err := s.listsData(c, c.value("q"))
	if err != nil {
		return reply{}, err
	}
	if c.api {
		return reply{data: p}, nil
	}
	return reply{page: "lists.html", title: "Lists", data: p}, nil
}

// listsData gathers the lists page: the search q (if any), the feeds, the
// recent changes and imports.
func (s *Server) listsData(c *call, q string) (listsPage, error) {
	p := listsPage{Query: q, Found: []foundRow{}, Imports: s.imports.list(),
		Formats: importFormats, Import: importForm{Format: string(listfile.FormatAuto)}}
	tax := s.d.Filter.Current().Taxonomy()
	for _, cat := range tax.All() {
		p.Categories = append(p.Categories, categoryOption{Slug: cat.Slug, Name: cat.Name,
			Severity: cat.Severity.String(), Approve: cat.Kind == categories.KindAllow})
	}
	var target categories.Target
	if q != "" {
		var err error
		if target, err = categories.Normalize(q); err != nil {
			return p, badRequest("search: %v; want a domain like example.com or a URL like https://example.com/page", err)
		}
		p.Target, p.Searched = target.Host+target.Path, true
	}
	err := s.d.Read(func(st *store.Store) error {
		if q != "" {
			found, err := st.Find(target.Host, target.Path)
			if err != nil {
				return fmt.Errorf("search %s: %w", p.Target, err)
			}
			for _, f := range found {
				p.Found = append(p.Found, foundRow{Found: f, Removable: f.Feed == store.LocalFeed})
			}
		}
		var err error
		if p.Feeds, err = st.Feeds(); err != nil {
			return fmt.Errorf("read feeds: %w", err)
		}
		for i := range p.Feeds {
			p.Feeds[i].Source = store.RedactSource(p.Feeds[i].Source) // a provider's password stays in the database
		}
		p.Changes, _, err = queryAudit(st, auditQuery{Prefixes: listChangeActions, Limit: recentListChanges})
		return err
	})
	p.Schedule = s.cfg.FeedSchedule
	if p.Feeds == nil {
		p.Feeds = []store.FeedInfo{}
	}
	if p.Changes == nil {
		p.Changes = []store.AuditRecord{}
	}
	return p, err
}

// listsFailed answers a failed change from the lists page: the API gets the
// error; a person gets the lists page again with the error above it and
// what they typed still in the form, so nothing has to be typed twice.
// Errors that are not about the input (the database is busy, a conflict,
// not found) go to the usual error page.
func (s *Server) listsFailed(c *call, err error, q string, fill func(*listsPage)) (reply, error) {
	status := http.StatusBadRequest
	var he *httpError
	switch {
	case c.api, errors.Is(err, store.ErrLocked), errors.Is(err, store.ErrConflict):
		return reply{}, err
	case errors.As(err, &he):
		if he.status != http.StatusBadRequest && he.status != http.StatusConflict {
			return reply{}, err
		}
		status = he.status
	default:
		s.d.Log.Warn("admin list change refused", "path", c.r.URL.Path, "user", c.user.Name, "err", err)
	}
	p, perr := s.listsData(c, q)
	if perr != nil && q != "" {
		p, perr = s.listsData(c, "") // the search was the bad input: show the page without it
	}
	if perr != nil {
		return reply{}, err
	}
	fill(&p)
	return reply{page: "lists.html", title: "Lists", data: p, status: status, errMsg: err.Error()}, nil
}

// requireReason returns the trimmed reason, or an error naming the field:
// every change to the lists is audited with why it was made.
func requireReason(c *call, what string) (string, error) {
	r := c.value("reason")
	if r == "" {
		return "", badRequest("%s: a reason is required (it is kept in the audit log: say why)", what)
	}
	return r, nil
}

// listCategories gathers the categories of a form or JSON call: the field
// "category" or "categories", one value or several, blanks dropped.
func listCategories(c *call) []string {
	var out []string
	for _, v := range append(slices.Clone(c.values("category")), c.values("categories")...) {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// listTarget turns the typed target into the stored, canonical form.
func listTarget(c *call) (string, error) {
	in := c.value("target")
	if in == "" {
		return "", badRequest("target is required: a domain like example.com or a URL prefix like example.com/forum")
	}
	t, err := categories.ParseOverride(in)
	if err != nil {
		return "", badRequest("target: %v; want a domain like example.com or a URL prefix like example.com/forum", err)
	}
	return t.Host + t.Path, nil
}

func (s *Server) addListEntry(c *call) (reply, error) {
	form := listForm{Target: c.value("target"), Category: c.value("category"), Reason: c.value("reason")}
	failed := func(err error) (reply, error) {
		return s.listsFailed(c, err, form.Target, func(p *listsPage) { p.Add = form })
	}
	target, err := listTarget(c)
	if err != nil {
		return failed(err)
	}
	cats := listCategories(c)
	if len(cats) == 0 {
		return failed(badRequest("category is required: choose the category %s belongs in", target))
	}
	if _, err := s.d.Filter.Current().Taxonomy().MaskOf(cats...); err != nil {
		return failed(badRequest("category: %v", err))
	}
	reason, err := requireReason(c, "add "+target)
	if err != nil {
		return failed(err)
	}
	if err := s.d.Write(func(st *store.Store) error { return st.AddEntry(c.actor(), target, cats, reason) }); err != nil {
		return failed(err)
	}
	s.d.Changed()
	return reply{redirect: "/lists?q=" + url.QueryEscape(target),
		message: fmt.Sprintf("Added %s to %s.", target, strings.Join(cats, ", ")),
		data:    map[string]any{"target": target, "categories": cats}}, nil
}

func (s *Server) removeListEntry(c *call) (reply, error) {
	failed := func(err error) (reply, error) { return s.listsFailed(c, err, c.value("target"), func(*listsPage) {}) }
	target, err := listTarget(c)
	if err != nil {
		return failed(err)
	}
	cats := listCategories(c)
	if _, err := s.d.Filter.Current().Taxonomy().MaskOf(cats...); err != nil {
		return failed(badRequest("categories: %v", err))
	}
	reason, err := requireReason(c, "remove "+target)
	if err != nil {
		return failed(err)
	}
	if err := s.d.Write(func(st *store.Store) error { return st.RemoveEntry(c.actor(), target, cats, reason) }); err != nil {
		return failed(err)
	}
	s.d.Changed()
	what := target
	if len(cats) > 0 {
		what = fmt.Sprintf("%s from %s", target, strings.Join(cats, ", "))
	}
	return reply{redirect: "/lists?q=" + url.QueryEscape(target), message: "Removed " + what + ".",
		data: map[string]any{"target": target, "categories": cats}}, nil
}

// Import job states.
const (
	importRunning = "running"
	importDone    = "done"
	importFailed  = "failed"
)

// keptImports is how many finished imports are remembered (in memory only:
// the feeds themselves and the audit log are the lasting record).
const keptImports = 20

// importJob is one import of a feed, run in the background. The running
// goroutine updates it under importJobs.mu; everyone else sees copies.
type importJob struct {
	ID       uint64               `json:"id"`
	Feed     string               `json:"feed"`
	Source   string               `json:"source"` // the URL (password hidden) or "upload <file name>"
	Format   string               `json:"format"`
	Category string               `json:"category,omitempty"`
	Locked   bool                 `json:"locked"`
	Reason   string               `json:"reason"`
	By       string               `json:"by"`
	State    string               `json:"state"` // running, done or failed
	Started  time.Time            `json:"started"`
	Finished time.Time            `json:"finished,omitzero"`
	Done     int64                `json:"bytes_done"`
	Total    int64                `json:"bytes_total"` // 0 while unknown (e.g. a download without a length)
	Percent  int                  `json:"percent"`     // of Total; -1 while unknown
	Summary  *store.ImportSummary `json:"summary,omitempty"`
	Error    string               `json:"error,omitempty"`

	done chan struct{} // closed when the job has ended
}

// importJobs holds the running import and the last finished ones. Its zero
// value is ready to use. One import at a time: an import holds a whole
// list in memory and ends in one large write transaction, and two at once
// would only slow both and the filter's reload.
type importJobs struct {
	mu   sync.Mutex
	last uint64
	jobs []*importJob // oldest first
}

// errImportRunning refuses a second import while one runs.
func errImportRunning(j *importJob) error {
	return &httpError{http.StatusConflict, fmt.Sprintf(
		"an import is running (feed %s, started by %s); wait for it to finish (see /lists/import/%d) and try again", j.Feed, j.By, j.ID)}
}

// busy returns the conflict error if an import is running.
func (ij *importJobs) busy() error {
	ij.mu.Lock()
	defer ij.mu.Unlock()
	for _, j := range ij.jobs {
		if j.State == importRunning {
			return errImportRunning(j)
		}
	}
	return nil
}

// start registers j as the running import, unless one already runs.
func (ij *importJobs) start(j *importJob) error {
	ij.mu.Lock()
	defer ij.mu.Unlock()
	for _, r := range ij.jobs {
		if r.State == importRunning {
			return errImportRunning(r)
		}
	}
	ij.last++
	j.ID, j.State, j.Percent, j.done = ij.last, importRunning, -1, make(chan struct{})
	ij.jobs = append(ij.jobs, j)
	return nil
}

func (ij *importJobs) progress(j *importJob, done, total int64) {
	ij.mu.Lock()
	defer ij.mu.Unlock()
	j.Done, j.Total = done, total
	j.Percent = -1
	if total > 0 {
		j.Percent = int(min(100, done*100/total))
	}
}

// finish ends j and forgets the oldest finished jobs beyond keptImports.
func (ij *importJobs) finish(j *importJob, sum *store.ImportSummary, err error, now time.Time) {
	ij.mu.Lock()
	defer ij.mu.Unlock()
	j.Finished, j.Summary, j.State = now, sum, importDone
	if err != nil {
		j.State, j.Error = importFailed, err.Error()
	}
	finished := 0
	for _, r := range ij.jobs {
		if r.State != importRunning {
			finished++
		}
	}
	ij.jobs = slices.DeleteFunc(ij.jobs, func(r *importJob) bool {
		if r.State == importRunning || finished <= keptImports {
			return false
		}
		finished--
		return true
	})
	close(j.done)
}

func (ij *importJobs) get(id uint64) (importJob, bool) {
	ij.mu.Lock()
	defer ij.mu.Unlock()
	for _, j := range ij.jobs {
		if j.ID == id {
			return *j, true
		}
	}
	return importJob{}, false
}

// list returns copies of the jobs, newest first.
func (ij *importJobs) list() []importJob {
	ij.mu.Lock()
	defer ij.mu.Unlock()
	out := make([]importJob, 0, len(ij.jobs))
	for i := len(ij.jobs) - 1; i >= 0; i-- {
		out = append(out, *ij.jobs[i])
	}
	return out
}

// importSpec is a checked import request.
type importSpec struct {
	feed, format, category, reason string
	locked                         bool
	source                         string // kept in the feed's record: the URL, or "" for an upload, which cannot be fetched again
	display                        string // the source as people see it
	path                           string // what listfile reads: the URL or the uploaded copy
	cleanup                        func()
}

// importFormatsNeedingCategory are the formats whose lines carry no
// category, so the import must give one.
var importFormatsNeedingCategory = []string{string(listfile.FormatHosts), string(listfile.FormatDomains), string(listfile.FormatAdblock)}

// checkImport validates everything but the file's contents.
func (s *Server) checkImport(c *call, form importForm) (importSpec, error) {
	sp := importSpec{feed: form.Feed, format: form.Format, category: form.Category, reason: form.Reason, locked: form.Locked, cleanup: func() {}}
	if sp.feed == "" {
		return sp, badRequest("feed is required: a name for this list such as iwf or ut1 (importing the same name again replaces its entries)")
	}
	if err := store.ValidFeedName(sp.feed); err != nil {
		return sp, badRequest("feed: %v", err)
	}
	if !slices.Contains(importFormats, sp.format) {
		return sp, badRequest("format %q: want one of %s", sp.format, strings.Join(importFormats, ", "))
	}
	switch {
	case sp.format == string(listfile.FormatUT1) && sp.category != "":
		return sp, badRequest("category %q: UT1 lists name their own categories; leave the category empty", sp.category)
	case sp.category == "" && slices.Contains(importFormatsNeedingCategory, sp.format):
		return sp, badRequest("category is required for a %s list: choose the category its entries belong in", sp.format)
	case sp.category != "":
		if _, err := s.d.Filter.Current().Taxonomy().MaskOf(sp.category); err != nil {
			return sp, badRequest("category: %v", err)
		}
	}
	if sp.reason == "" {
		return sp, badRequest("import of feed %s: a reason is required (schools must record why a list is used)", sp.feed)
	}
	upload := uploadedFile(c)
	switch {
	case upload != nil && form.URL != "":
		return sp, badRequest("give either a file or a URL to import, not both")
	case upload == nil && form.URL == "":
		return sp, badRequest("file or url is required: upload a list file, or give the http(s) address to download it from")
	case upload == nil:
		u, err := url.Parse(form.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// Only downloads: a path on this server would let the form
			// read any file the service can (and show its lines as
			// malformed entries).
			return sp, badRequest("url %q: want an http:// or https:// address", store.RedactSource(form.URL))
		}
		sp.source, sp.path, sp.display = form.URL, form.URL, u.Redacted()
	}
	return sp, nil
}

// uploadedFile returns the "file" part of a multipart form, if a file was
// chosen.
func uploadedFile(c *call) *multipart.FileHeader {
	if c.r.MultipartForm == nil {
		return nil
	}
	for _, fh := range c.r.MultipartForm.File["file"] {
		if fh.Filename != "" {
			return fh
		}
	}
	return nil
}

// uploadExt is the extension of an uploaded file's name that tells
// listfile how to read it (.gz, .tar.gz, .tgz, .tar, .txt, ...), or "".
func uploadExt(name string) string {
	name = strings.ToLower(name)
	if strings.HasSuffix(name, ".tar.gz") {
		return ".tar.gz"
	}
	ext := filepath.Ext(name)
	if len(ext) < 2 || len(ext) > 10 {
		return ""
	}
	for _, r := range ext[1:] {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return ""
		}
	}
	return ext
}

// saveUpload copies the uploaded file to a temporary file of our own, with
// the original extension so that .gz and .tar.gz are read as such: the
// request's own copy is deleted when the handler returns, long before the
// import has read it.
func saveUpload(fh *multipart.FileHeader, sp *importSpec) error {
	base := path.Base(strings.ReplaceAll(fh.Filename, `\`, "/"))
	src, err := fh.Open()
	if err != nil {
		return fmt.Errorf("upload %s: %w", base, err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp("", "hedgerow-import-*"+uploadExt(base))
	if err != nil {
		return fmt.Errorf("upload %s: keep a copy: %w", base, err)
	}
	_, err = io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("upload %s: keep a copy: %w", base, err)
	}
	sp.path, sp.display = tmp.Name(), "upload "+base
	sp.cleanup = func() { _ = os.Remove(tmp.Name()) }
	return nil
}

func checked(v string) bool { return v == "on" || v == "1" || v == "true" || v == "yes" }

// startImport checks an import request and starts it in the background;
// the page follows its progress at /lists/import/{id}.
func (s *Server) startImport(c *call) (reply, error) {
	form := importForm{URL: c.value("url"), Feed: c.value("feed"), Format: c.value("format"),
		Category: c.value("category"), Reason: c.value("reason"), Locked: checked(c.value("locked"))}
	if form.Format == "" {
		form.Format = string(listfile.FormatAuto)
	}
	failed := func(err error) (reply, error) {
		return s.listsFailed(c, err, "", func(p *listsPage) { p.Import = form })
	}
	sp, err := s.checkImport(c, form)
	if err != nil {
		return failed(err)
	}
	// Refuse early, before copying a large upload for nothing; start
	// checks again, as another request may have started one meanwhile.
	if err := s.imports.busy(); err != nil {
		return failed(err)
	}
	if fh := uploadedFile(c); fh != nil {
		if err := saveUpload(fh, &sp); err != nil {
			return reply{}, err
		}
	}
	job := &importJob{Feed: sp.feed, Source: sp.display, Format: sp.format, Category: sp.category, Locked: sp.locked,
		Reason: sp.reason, By: c.actor(), Started: s.d.Now()}
	if err := s.imports.start(job); err != nil {
		sp.cleanup()
		return failed(err)
	}
	snapshot, _ := s.imports.get(job.ID)
	go s.runImport(job, sp)
	return reply{redirect: fmt.Sprintf("/lists/import/%d", job.ID),
		message: fmt.Sprintf("Import %d of feed %s started.", job.ID, sp.feed), data: snapshot}, nil
}

// runImport reads the list and replaces the feed, as "hedgerow import"
// does; the feed changes only if the whole list was read.
func (s *Server) runImport(job *importJob, sp importSpec) {
	defer sp.cleanup()
	start := time.Now()
	sum, err := s.importFeed(job, sp)
	if sum != nil {
		sum.Seconds = time.Since(start).Seconds()
	}
	if err != nil {
		err = fmt.Errorf("import of feed %s from %s: %s (nothing was changed)", sp.feed, sp.display,
			strings.ReplaceAll(err.Error(), sp.path, sp.display))
		s.d.Log.Warn("admin import failed", "feed", sp.feed, "source", sp.display, "user", job.By, "err", err)
	} else {
		s.d.Log.Info("admin import done", "feed", sp.feed, "source", sp.display, "user", job.By,
			"added", sum.Change.Added, "removed", sum.Change.Removed, "kept", sum.Change.Kept)
	}
	s.imports.finish(job, sum, err, s.d.Now())
}

func (s *Server) importFeed(job *importJob, sp importSpec) (*store.ImportSummary, error) {
	tax := s.d.Filter.Current().Taxonomy()
	if sp.category != "" {
		if _, err := tax.MaskOf(sp.category); err != nil {
			return nil, err
		}
	}
	f := store.NewFeed(store.FeedInfo{Name: sp.feed, Source: sp.source, Format: sp.format, Locked: sp.locked,
		Reason: sp.reason, Category: sp.category})
	rep, err := listfile.Read(context.Background(), sp.path,
		listfile.Options{Format: listfile.Format(sp.format), Category: sp.category,
			Progress: func(done, total int64) { s.imports.progress(job, done, total) }},
		f.Collect(tax))
	for i := range rep.Problems {
		rep.Problems[i].File = strings.ReplaceAll(rep.Problems[i].File, sp.path, sp.display)
	}
	sum := &store.ImportSummary{Files: rep.Files, Lines: rep.Lines, Malformed: rep.Malformed, Problems: rep.Problems, Ignored: rep.Ignored}
	if err != nil {
		return sum, err
	}
	if f.Len() == 0 {
		// An empty copy is far more likely a wrong file or a broken
		// download than a list that really became empty; replacing the
		// feed with it would silently unblock everything it held.
		return sum, fmt.Errorf("the list has no usable entries (%d lines, %d malformed); remove the feed instead if it is no longer wanted", rep.Lines, rep.Malformed)
	}
	f.Info.Malformed = rep.Malformed
	err = s.d.Write(func(st *store.Store) error {
		var err error
		sum.Change, err = st.ReplaceFeed(job.By, f)
		return err
	})
	if err != nil {
		return sum, err
	}
	sum.Domains, sum.URLs, sum.Exceptions = f.Info.Domains, f.Info.URLs, f.Info.Exceptions
	s.d.Changed()
	return sum, nil
}

// importStatus shows an import's progress, and its summary or error once
// it has ended.
func (s *Server) importStatus(c *call) (reply, error) {
	id, err := c.id("id")
	if err != nil {
		return reply{}, err
	}
	j, ok := s.imports.get(id)
	if !ok {
		return reply{}, notFound("import %d: no such import (the last %d are kept, and none across a restart; the audit log records every import)", id, keptImports)
	}
	if c.api {
		return reply{data: j}, nil
	}
	return reply{page: "import.html", title: fmt.Sprintf("Import of feed %s", j.Feed), data: j}, nil
}
