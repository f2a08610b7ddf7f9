package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"hedgerow/categories"
	"hedgerow/store"
)

func TestCLIBackupRestore(t *testing.T) {
	data := t.TempDir()
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, errs, code := runCLI(t, data, stdin, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s %s", args, code, out, errs)
		}
		return out
	}
	mustRun("", "lists", "add", "kept.example", "--category", "adult", "--reason", "before the backup")

	// Backup into a directory: a timestamped name, 0600, older ones rotated.
	dir := t.TempDir()
	for _, n := range []string{"hedgerow-20200101-000000.db", "hedgerow-20200102-000000.db", "hedgerow-20200103-000000.db"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	out := mustRun("", "backup", dir, "--keep", "2")
	m := regexp.MustCompile(`backup (\S+/hedgerow-\d{8}-\d{6}\.db): `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("backup output %q names no hedgerow-YYYYMMDD-HHMMSS.db file", out)
	}
	backup := m[1]
	if filepath.Dir(backup) != dir || !strings.Contains(out, "holds schema") {
		t.Errorf("backup output %q", out)
	}
	if st, err := os.Stat(backup); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", st, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 || ents[0].Name() != "hedgerow-20200103-000000.db" || !strings.Contains(out, "removed old backup") {
		t.Errorf("after rotation %v; output %q", ents, out)
	}

	// Backup to a file while another handle reads the database.
	reader, err := store.Open(filepath.Join(data, "hedgerow.db"), categories.Builtin(), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "one.db")
	mustRun("", "backup", file)
	reader.Close()
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", st, err)
	}

	mustRun("", "lists", "add", "later.example", "--category", "adult", "--reason", "after the backup")

	// Without --yes and without a terminal, restore refuses.
	live := filepath.Join(data, "hedgerow.db")
	before, _ := os.ReadFile(live)
	out, errs, code := runCLI(t, data, "yes\n", "restore", backup)
	if code == 0 || !strings.Contains(errs, "--yes") || !strings.Contains(errs, "stop hedgerow serve") {
		t.Fatalf("restore without --yes: exit %d: %s %s", code, out, errs)
	}
	if after, _ := os.ReadFile(live); !bytes.Equal(before, after) {
		t.Fatal("refused restore changed the database")
	}

	out = mustRun("", "restore", backup, "--yes")
	if !strings.Contains(out, "restored") || !strings.Contains(out, live+store.BeforeRestoreSuffix) {
		t.Errorf("restore output %q", out)
	}
	out = mustRun("later.example\nkept.example\n", "check", "--group", "ks2", "--json", "-")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[0], `"allow"`) || !strings.Contains(lines[1], `"block"`) {
		t.Errorf("after restore: %s", out)
	}

	// A foreign or damaged file is refused and the database left alone.
	before, _ = os.ReadFile(live)
	bad := filepath.Join(t.TempDir(), "bad.db")
	raw, _ := os.ReadFile(backup)
	os.WriteFile(bad, raw[:len(raw)/2], 0o600)
	foreign := filepath.Join(t.TempDir(), "foreign.db")
	os.WriteFile(foreign, bytes.Repeat([]byte("not a database "), 1000), 0o600)
	for _, f := range []string{bad, foreign} {
		out, errs, code := runCLI(t, data, "", "restore", f, "--yes")
		if code == 0 || !strings.Contains(errs, f) || !strings.Contains(errs, "nothing was changed") {
			t.Errorf("restore %s: exit %d: %s %s", f, code, out, errs)
		}
	}
	if after, _ := os.ReadFile(live); !bytes.Equal(before, after) {
		t.Fatal("refused restore changed the database")
	}

	out = mustRun("", "check-db")
	if !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "local entries") {
		t.Errorf("check-db: %q", out)
	}
	out = mustRun("", "compact")
	if !strings.Contains(out, "compacted") || !strings.Contains(out, "->") {
		t.Errorf("compact: %q", out)
	}
	mustRun("", "check-db")
}

func TestCLICheckDBFailsOnDamage(t *testing.T) {
	data := t.TempDir()
	if _, errs, code := runCLI(t, data, "", "check-db"); code == 0 {
		t.Errorf("check-db without a database: exit 0 (%s)", errs)
	}
	os.WriteFile(filepath.Join(data, "hedgerow.db"), []byte("garbage, not a database"), 0o600)
	if _, errs, code := runCLI(t, data, "", "check-db"); code == 0 || !strings.Contains(errs, "not a hedgerow database") {
		t.Errorf("check-db on garbage: exit %d: %s", code, errs)
	}
}

func TestScheduledBackups(t *testing.T) {
	data, dir := t.TempDir(), filepath.Join(t.TempDir(), "backups")
	if _, stderr, code := runCLI(t, data, "", "lists", "add", "x.example", "--category", "adult", "--reason", "test"); code != 0 {
		t.Fatal(stderr)
	}
	a := &app{dataDir: data, stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler), tax: categories.Builtin(), now: time.Now}
	failures := prometheus.NewCounter(prometheus.CounterOpts{Name: "f"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		a.backupLoop(ctx, BackupConfig{Dir: dir, Every: Duration(1100 * time.Millisecond), Keep: 1}, failures)
		close(done)
	}()
	// Backups are named by the second; wait (bounded) for the second one,
	// after which only the newest is kept.
	var names []string
	deadline := time.Now().Add(20 * time.Second)
	for seen := map[string]bool{}; len(seen) < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("backups seen %v within 20s", seen)
		}
		time.Sleep(100 * time.Millisecond)
		entries, _ := os.ReadDir(dir)
		names = names[:0]
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				seen[e.Name()] = true
				names = append(names, e.Name())
			}
		}
	}
	cancel()
	<-done
	if len(names) != 1 {
		t.Errorf("backups kept %v, want only the newest", names)
	}
	if _, err := store.VerifyFile(filepath.Join(dir, names[0]), categories.Builtin()); err != nil {
		t.Errorf("the kept backup does not verify: %v", err)
	}
	if testutil.ToFloat64(failures) != 0 {
		t.Error("a scheduled backup failed")
	}
}
