package store

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteIncidentsCSV writes incidents in the CSV layout the school's
// safeguarding record system imports; the CLI and the admin UI both use it.
func WriteIncidentsCSV(w io.Writer, incs []Incident) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "first", "last", "count", "channel", "device", "user", "group", "host", "url", "search_term",
		"category", "severity", "rule", "intent", "review", "state", "notes", "device_name", "mac", "identified_by"})
	for _, in := range incs {
		var notes []string
		for _, n := range in.Notes {
			notes = append(notes, n.Time.Format(time.RFC3339)+" "+n.Actor+" "+n.State+": "+n.Text)
		}
		_ = cw.Write([]string{strconv.FormatUint(in.ID, 10), in.First.Format(time.RFC3339), in.Last.Format(time.RFC3339),
			strconv.Itoa(in.Count), in.Channel, csvSafe(in.Client), csvSafe(in.User), in.Group, csvSafe(in.Host), csvSafe(in.URL), csvSafe(in.SearchTerm),
			in.Category, in.Severity, in.Rule, in.Intent, strconv.FormatBool(in.Review), in.State, csvSafe(strings.Join(notes, " | ")),
			csvSafe(in.Device), in.MAC, in.Identified})
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe stops a spreadsheet from running a pupil's search term (or a
// note) as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
