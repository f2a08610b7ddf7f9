// Package feedupdate keeps imported feeds current. For one feed it reads the
// source again — a conditional GET (ETag, Last-Modified) for an http(s)
// URL, a modification-time check for a file or directory — parses it with
// listfile and replaces the feed's entries through store.UpdateFeed, which
// refuses a copy that would remove most of the feed. A download or parse
// failure keeps the old entries. Every check's result is recorded on the
// feed and audited, and counted in metrics.
//
// The database is opened only to read the feed's record and to write the
// result, never while downloading or parsing, so the servers and the CLI
// keep working meanwhile.
package feedupdate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"hedgerow/categories"
	"hedgerow/categories/listfile"
	"hedgerow/store"
)

// Defaults of Options.
const (
	DefaultActor    = "hedgerow:feed-update"
	DefaultTimeout  = 10 * time.Minute
	DefaultMaxBytes = 1 << 30 // UT1's whole collection is some 20 MB gzipped, 100 MB plain
)

// Options configure an Updater.
type Options struct {
	// Open runs fn with the database open for writing (required).
	Open func(fn func(*store.Store) error) error
	// Taxonomy turns the lists' category slugs into masks (required).
	Taxonomy *categories.Taxonomy
	// Actor names the updater in the audit trail; default DefaultActor.
	Actor string
	// MaxRemoval is the largest fraction of a feed one update may remove
	// unless forced; default store.DefaultMaxRemoval.
	MaxRemoval float64
	// Timeout bounds one feed's whole update, download and parse
	// included; default DefaultTimeout.
	Timeout time.Duration
	// MaxBytes is the largest download accepted; default DefaultMaxBytes.
	MaxBytes int64
	// TempDir holds downloads while they are parsed; default os.TempDir().
	TempDir string
	// HTTPClient fetches URLs; nil means a client with connect, TLS and
	// response-header timeouts (the body is bounded by Timeout).
	HTTPClient *http.Client
	// Metrics, if not nil, counts every check.
	Metrics *Metrics
}

// Updater updates feeds one at a time; its methods may be called from
// several goroutines, but two updates of one feed at once race (the later
// one is dropped with store.ErrFeedChanged).
type Updater struct {
	opts Options
}

// New checks the options and fills in the defaults.
func New(opts Options) (*Updater, error) {
	if opts.Open == nil || opts.Taxonomy == nil {
		return nil, errors.New("feedupdate: Options.Open and Options.Taxonomy are required")
	}
	if opts.MaxRemoval < 0 || opts.MaxRemoval > 1 {
		return nil, fmt.Errorf("feedupdate: maximum removal %v; want a fraction from 0 to 1, e.g. 0.5", opts.MaxRemoval)
	}
	if opts.MaxRemoval == 0 {
		opts.MaxRemoval = store.DefaultMaxRemoval
	}
	if opts.Actor == "" {
		opts.Actor = DefaultActor
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = defaultClient()
	}
	return &Updater{opts: opts}, nil
}

// defaultClient bounds everything but the body, which the update's own
// timeout bounds: a big list on a slow line may legitimately take minutes.
func defaultClient() *http.Client {
	dialer := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
	}}
}

// Request is how one feed is updated.
type Request struct {
	// Force reads the source even if it seems unchanged (no conditional
	// request, no modification-time check) and accepts any removal.
	Force bool
	// Progress, if set, is called now and then with the bytes downloaded
	// (for a URL) or read (for a local source) and the total when known.
	Progress func(done, total int64)
}

// Result is what one update did.
type Result struct {
	Feed      string             `json:"feed"`
	Source    string             `json:"source"` // passwords in a URL redacted
	Result    string             `json:"result"` // store.FeedUpdated, FeedNotModified, FeedFailed or FeedRefused
	Change    store.FeedChange   `json:"change"` // for refused: what the update would have done
	Entries   int                `json:"entries"`
	Malformed int                `json:"malformed"`
	Problems  []listfile.Problem `json:"problems,omitempty"`
	Error     string             `json:"error,omitempty"`
	Seconds   float64            `json:"seconds"`
	Err       error              `json:"-"`
}

// Update checks one feed and updates it if its source changed. The result
// is recorded on the feed (and audited) unless ctx was cancelled, which
// abandons the update and leaves the feed as it was; a feed that does not
// exist or cannot be updated (store.FeedInfo.Updatable) is a failed result
// recorded nowhere.
func (u *Updater) Update(ctx context.Context, name string, req Request) Result {
	start := time.Now()
	res := u.update(ctx, name, req)
	res.Seconds = time.Since(start).Seconds()
	if res.Err != nil {
		res.Error = res.Err.Error()
	}
	return res
}

func (u *Updater) update(ctx context.Context, name string, req Request) Result {
	res := Result{Feed: name, Result: store.FeedFailed}
	var info store.FeedInfo
	err := u.opts.Open(func(s *store.Store) error {
		var err error
		info, err = s.FeedByName(name)
		return err
	})
	if err == nil {
		err = info.Updatable()
	}
	if err != nil {
		res.Err = fmt.Errorf("update feed %s: %w", name, err)
		return res
	}
	res.Source = store.RedactSource(info.Source)
	res.Entries = info.Domains + info.URLs + info.Exceptions

	uctx, cancel := context.WithTimeout(ctx, u.opts.Timeout)
	defer cancel()
	res = u.check(uctx, info, req, res)
	if ctx.Err() != nil && res.Err != nil {
		// Shutting down or stopped by hand: not the source's fault.
		res.Result = store.FeedFailed
		res.Err = fmt.Errorf("update feed %s: %w (nothing was changed)", name, ctx.Err())
		return res
	}
	if errors.Is(res.Err, context.DeadlineExceeded) {
		res.Err = fmt.Errorf("%w (the update took longer than %s)", res.Err, u.opts.Timeout)
	}
	u.record(info, &res)
	return res
}

// check fetches and parses the source and applies the copy; res.Result
// says what happened, res.Err why it did not update.
func (u *Updater) check(ctx context.Context, info store.FeedInfo, req Request, res Result) Result {
	src, err := u.fetch(ctx, info, req)
	if err != nil {
		res.Err = err
		return res
	}
	defer src.cleanup()
	if src.notModified {
		res.Result, res.Err = store.FeedNotModified, nil
		return res
	}
	f, rep, err := u.parse(ctx, info, src)
	res.Malformed, res.Problems = rep.Malformed, rep.Problems
	if err != nil {
		res.Err = err
		return res
	}
	err = u.opts.Open(func(s *store.Store) error {
		ch, err := s.UpdateFeed(u.opts.Actor, f, store.FeedUpdate{
			Based: info.ImportedAt, MaxRemoval: u.opts.MaxRemoval, Force: req.Force,
			ETag: src.etag, LastModified: src.lastModified, SourceStamp: src.stamp,
		})
		res.Change = ch
		return err
	})
	var refused *store.RefusedError
	switch {
	case err == nil:
		res.Result = store.FeedUpdated
		res.Entries = f.Info.Domains + f.Info.URLs + f.Info.Exceptions
	case errors.As(err, &refused):
		res.Result, res.Change = store.FeedRefused, refused.Change
	}
	res.Err = err
	return res
}

// record writes the result of a check that did not update the feed, and
// refreshes the metrics. A failure to record is added to res.Err.
func (u *Updater) record(info store.FeedInfo, res *Result) {
	if errors.Is(res.Err, store.ErrFeedChanged) {
		return // the newer import is what the feed's record should say
	}
	err := u.opts.Open(func(s *store.Store) error {
		if res.Result != store.FeedUpdated {
			detail := ""
			if res.Err != nil {
				detail = res.Err.Error()
			}
			if err := s.RecordFeedCheck(u.opts.Actor, info.Name, res.Result, detail); err != nil {
				return err
			}
		}
		now, err := s.FeedByName(info.Name)
		if err == nil {
			u.opts.Metrics.setFeed(now)
		}
		return err
	})
	u.opts.Metrics.count(info.Name, res.Result)
	if err != nil {
		res.Err = errors.Join(res.Err, fmt.Errorf("record the result of feed %s: %w", info.Name, err))
	}
}

// parse reads a fetched copy into a feed. A copy with no entries, or with
// more malformed items than entries, is not a list any more (an error page,
// a changed format) and fails rather than emptying the feed.
func (u *Updater) parse(ctx context.Context, info store.FeedInfo, src fetched) (*store.Feed, listfile.Report, error) {
	f := store.NewFeed(store.FeedInfo{Name: info.Name})
	opts := listfile.Options{Format: listfile.Format(info.Format), Category: info.Category, Progress: src.progress}
	rep, err := listfile.Read(ctx, src.path, opts, f.Collect(u.opts.Taxonomy))
	for i := range rep.Problems {
		rep.Problems[i].File = src.rename(rep.Problems[i].File)
	}
	switch {
	case err != nil:
		return nil, rep, &renamed{msg: src.rename(err.Error()), err: err}
	case rep.Entries == 0:
		return nil, rep, fmt.Errorf("%s: no entries in %d lines (%d malformed); is it still a %s list?", src.name, rep.Lines, rep.Malformed, info.Format)
	case rep.Malformed > rep.Entries:
		p := rep.Problems[0]
		return nil, rep, fmt.Errorf("%s: %d of %d items are malformed (the first: line %d %q: %s); is it still a %s list?",
			src.name, rep.Malformed, rep.Malformed+rep.Entries, p.Line, p.Text, p.Reason, info.Format)
	}
	f.Info.Malformed = rep.Malformed
	return f, rep, nil
}

// renamed is an error whose text names the source instead of the
// temporary file a download was parsed from; errors.Is still sees the
// original.
type renamed struct {
	msg string
	err error
}

func (e *renamed) Error() string { return e.msg }
func (e *renamed) Unwrap() error { return e.err }

// isURL reports whether a feed's source is fetched over HTTP.
func isURL(source string) bool {
	l := strings.ToLower(source)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}
