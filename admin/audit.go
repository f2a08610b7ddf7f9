package admin

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"hedgerow/store"
)

// Audit page limits: records per page by default and at most.
const (
	auditDefaultLimit = 200
	auditMaxLimit     = 1000
)

// auditQuery selects audit records, newest first.
type auditQuery struct {
	Prefixes []string // the action starts with one of these; none means any action
	Actor    string   // exactly this actor (any case); "" means anyone
	Before   uint64   // only records older than this sequence number; 0 means from the newest
	Limit    int
}

func (q auditQuery) match(r store.AuditRecord) bool {
	if q.Before != 0 && r.Seq >= q.Before {
		return false
	}
	if q.Actor != "" && !strings.EqualFold(r.Actor, q.Actor) {
		return false
	}
	if len(q.Prefixes) == 0 {
		return true
	}
	for _, p := range q.Prefixes {
		if strings.HasPrefix(r.Action, p) {
			return true
		}
	}
	return false
}

// queryAudit returns up to q.Limit matching records, newest first, and
// whether older ones match too. The store reads the trail newest first up
// to a count, so the window read grows fourfold until it holds enough
// matches or the whole trail: a filter that matches often costs one small
// read, a rare one a few reads of the whole trail.
func queryAudit(st *store.Store, q auditQuery) ([]store.AuditRecord, bool, error) {
	window := max(256, 2*q.Limit)
	for {
		all, err := st.Audit(window)
		if err != nil {
			return nil, false, err
		}
		var out []store.AuditRecord
		for _, r := range all {
			if !q.match(r) {
				continue
			}
			if len(out) == q.Limit {
				return out, true, nil
			}
			out = append(out, r)
		}
		if len(all) < window {
			return out, false, nil // the whole trail was read
		}
		window *= 4
	}
}

// auditRow is an audit record as the page shows it.
type auditRow struct {
	store.AuditRecord
	BeforeText string `json:"-"` // Before and After indented for reading
	AfterText  string `json:"-"`
}

type auditPage struct {
	Records []auditRow        `json:"records"`
	Next    uint64            `json:"next_before,omitempty"` // pass as before= for the next (older) page
	Filter  map[string]string `json:"-"`
	Limit   int               `json:"-"`
	Actions []string          `json:"-"`
}

// auditActions are action prefixes the filter suggests.
var auditActions = []string{"lists", "import", "feed-", "remove-feed", "groups", "clients", "users", "tokens",
	"incidents-", "incidents-view", "incidents-show", "incidents-export", "incidents-review", "reports-", "subject-", "retention-purge"}

// auditLog shows the audit trail: who changed what and when, and who looked
// at which incidents.
func (s *Server) auditLog(c *call) (reply, error) {
	q := auditQuery{Actor: c.value("actor"), Limit: auditDefaultLimit}
	if a := c.value("action"); a != "" {
		q.Prefixes = []string{a}
	}
	if v := c.value("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > auditMaxLimit {
			return reply{}, badRequest("limit %q: want a number from 1 to %d", v, auditMaxLimit)
		}
		q.Limit = n
	}
	if v := c.value("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return reply{}, badRequest("before %q: want the record number to page back from, e.g. 1200", v)
		}
		q.Before = n
	}
	var recs []store.AuditRecord
	var more bool
	err := s.d.Read(func(st *store.Store) error {
		var err error
		recs, more, err = queryAudit(st, q)
		return err
	})
	if err != nil {
		return reply{}, err
	}
	p := auditPage{Records: make([]auditRow, 0, len(recs)), Limit: q.Limit, Actions: auditActions,
		Filter: map[string]string{"action": c.value("action"), "actor": q.Actor}}
	for _, r := range recs {
		if r.Action == "incidents-review" && !c.identities() {
			// A review note is the DSL's record about a pupil; it is kept
			// from everyone else here as it is on the incident's page.
			r.Reason = "(the note is visible to the DSL)"
		}
		p.Records = append(p.Records, auditRow{AuditRecord: r, BeforeText: indentJSON(r.Before), AfterText: indentJSON(r.After)})
	}
	if more && len(recs) > 0 {
		p.Next = recs[len(recs)-1].Seq
	}
	if c.api {
		return reply{data: p}, nil
	}
	return reply{page: "audit.html", title: "Audit log", data: p}, nil
}

// indentJSON lays out a record's JSON for reading; the template escapes it.
func indentJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}
