package identity

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// The ends of the nanosecond clock histories are kept on.
const (
	never  = math.MaxInt64 // the end of a span that has not ended
	always = math.MinInt64 // the start of a span whose start nobody knows
)

// span is one holder of an address over [start, end), Unix nanoseconds,
// with what is known of the holder. Lease files and the Table keep the
// history of an address as spans sorted by start that do not overlap.
type span[T any] struct {
	start, end int64
	holder     string // the device or user: spans of one holder merge
	info       T
}

// merge adds n to h, one address's history, and reports whether that
// changed it. The same holder's spans that n overlaps or meets take n's end:
// n is later news of the same lease or session (a renewal, a release, a
// Stop), filled in from the older news where it says less. A span of another
// holder that overlaps n is cut where the later of the two starts, since an
// address has one holder at a time; when both start together, n, the newer
// news, wins.
func merge[T interface {
	comparable
	fillFrom(T) T
}](h []span[T], n span[T]) ([]span[T], bool) {
	// Re-reading a lease file brings mostly what is known already.
	if slices.Contains(h, n) {
		return h, false
	}
	out := make([]span[T], 0, len(h)+1)
	for _, b := range h {
		if b.holder == n.holder && b.start <= n.end && n.start <= b.end {
			n.start = min(n.start, b.start)
			n.info = n.info.fillFrom(b.info)
			continue
		}
		out = append(out, b)
	}
	for i := range out {
		b := &out[i]
		if b.end <= n.start || n.end <= b.start {
			continue
		}
		switch {
		case b.start < n.start:
			b.end = n.start
		case b.start == n.start:
			b.end = b.start
		default:
			n.end = b.start
		}
	}
	out = slices.DeleteFunc(out, func(b span[T]) bool { return b.end <= b.start })
	if n.start < n.end {
		out = append(out, n)
	}
	slices.SortStableFunc(out, func(a, b span[T]) int { return cmp.Compare(a.start, b.start) })
	if slices.Equal(out, h) {
		return h, false
	}
	return out, true
}

// cutAt ends, at the moment at, every span of h running then, and drops
// those it leaves empty; it reports whether that changed h. keep spares
// spans that are not to be ended.
func cutAt[T comparable](h []span[T], at int64, keep func(span[T]) bool) ([]span[T], bool) {
	out := slices.Clone(h)
	changed := false
	for i := range out {
		if b := &out[i]; b.start <= at && at < b.end && !keep(*b) {
			b.end, changed = at, true
		}
	}
	if !changed {
		return h, false
	}
	return slices.DeleteFunc(out, func(b span[T]) bool { return b.end <= b.start }), true
}

// toNanos reads a time onto the span clock; the zero Time reads as zero.
func toNanos(t time.Time, zero int64) int64 {
	switch s := t.Unix(); {
	case t.IsZero():
		return zero
	case s >= math.MaxInt64/int64(time.Second):
		return never
	case s <= math.MinInt64/int64(time.Second):
		return always + 1
	}
	return t.UnixNano()
}

// fromNanos reads a span time back; the ends of the clock read as the zero
// Time, which lease files use for "not known" and "never".
func fromNanos(n int64) time.Time {
	if n == never || n == always {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
