package listfile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadHosts reads a generated 100,000-line hosts file (with a
// header, comments and a few bad lines, like the real ones).
func BenchmarkReadHosts(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("# Title: generated\n# Entries: 100000\n\n127.0.0.1 localhost\n")
	for i := 4; i < 100000; i++ {
		switch {
		case i%1000 == 0:
			buf.WriteString("# section\n")
		case i%5000 == 1:
			fmt.Fprintf(&buf, "0.0.0.0 bad..name%d\n", i)
		case i%3 == 0:
			fmt.Fprintf(&buf, "0.0.0.0 www.site-%d.example.com\n", i)
		case i%3 == 1:
			fmt.Fprintf(&buf, "0.0.0.0 cdn%d.media.example-%d.net\n", i%97, i)
		default:
			fmt.Fprintf(&buf, "127.0.0.1 Mixed-Case-%d.Example.ORG\n", i)
		}
	}
	path := filepath.Join(b.TempDir(), "hosts")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := Read(context.Background(), path, Options{Format: FormatHosts, Category: "adult"}, func(Entry) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		if rep.Lines != 100000 {
			b.Fatalf("%d lines", rep.Lines)
		}
	}
}
