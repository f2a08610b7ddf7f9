package categories

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

func TestLabelStart(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < 20000; i++ {
		b := make([]byte, r.IntN(40))
		for j := range b {
			b[j] = "ab.-9\x2e\x2f\xae"[r.IntN(8)] // '.', and bytes one bit away from it
		}
		s := string(b)
		for end := 0; end <= len(s); end++ {
			want := strings.LastIndexByte(s[:end], '.') + 1
			if got := labelStart(b, end); got != want {
				t.Fatalf("labelStart(%q, %d) = %d, want %d", s, end, got, want)
			}
		}
	}
}

// The hash of a name alone must be the hash its walk gives the level: a
// name hashed differently inside a longer host would never be found.
func TestNameHashInsideHost(t *testing.T) {
	k := newNameHasher()
	r := rand.New(rand.NewPCG(6, 6))
	for i := 0; i < 20000; i++ {
		host := ixRandomName(r)
		if r.IntN(4) == 0 {
			host = strings.Repeat("x", r.IntN(9)) + "." + host
		}
		h, end := k.k0, len(host)
		for start := 0; end >= 0; end = start - 1 {
			start = strings.LastIndexByte(host[:end], '.') + 1
			h = k.label(h, host, start, end)
			if want := k.name(host[start:]); h != want {
				t.Fatalf("level %q of %q: hash %x, alone %x", host[start:], host, h, want)
			}
		}
	}
}

// FuzzIndexWalk lists every level of a host and checks that the walk finds
// each of them, as a map walked label by label does.
func FuzzIndexWalk(f *testing.F) {
	for _, s := range []string{"www.example.com", "a.b", "12345678.co.uk", "abcdefgh.abcdefghi.x", "1.2.3.4", "::1",
		"a..b", ".a.b", "a.b.", "x.yyyyyyy.zzzzzzzz.w", "ab"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if host == "" || len(host) > 253 || strings.ContainsAny(host, "/") {
			return
		}
		cats := []string{"games", "chat", "dating", "shopping", "webmail", "forums", "ai", "mature", "adult", "gambling"}
		var levels []string
		for i := 0; ; {
			levels = append(levels, host[i:])
			j := strings.IndexByte(host[i:], '.')
			if j < 0 || isIPLiteral(host) {
				break
			}
			i += j + 1
		}
		if len(levels) > 1 {
			levels = levels[:len(levels)-1] // the top-level label alone is never looked up
		}
		b := NewIndexBuilder(len(levels))
		want := Mask(0)
		for i, l := range levels {
			m := catMask(t, cats[i%len(cats)])
			if checkName([]byte(l)) != nil || len(l) > 255 {
				continue
			}
			if err := b.AddBytes([]byte(l), m); err != nil {
				t.Fatalf("AddBytes(%q): %v", l, err)
			}
			want |= m
		}
		idx, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		if got := idx.Classify(host, "").Cats; got != want {
			t.Fatalf("Classify(%q) = %s, want %s (levels %q)", host, slugsOf(got), slugsOf(want), levels)
		}
		// The host copied into a longer buffer reads the same.
		buf := "........" + host + "zzzzzzzz"
		inner := buf[8 : 8+len(host)]
		if unsafe.StringData(inner) == unsafe.StringData(host) {
			t.Fatal("not a copy")
		}
		if got := idx.Classify(inner, "").Cats; got != want {
			t.Fatalf("Classify(%q) inside a buffer = %s, want %s", host, slugsOf(got), slugsOf(want))
		}
	})
}
