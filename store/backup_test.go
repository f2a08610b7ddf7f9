package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// newDB creates a database with one local entry and returns its path, closed.
func newDB(t *testing.T) string {
	t.Helper()
	s, _ := openNew(t)
	if err := s.AddEntry("it", "kept.example", []string{"adult"}, "before the backup"); err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func hasEntry(t *testing.T, path, host string) bool {
	t.Helper()
	s, err := Open(path, testTax, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	found, err := s.Find(host, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		if f.Entry == host {
			return true
		}
	}
	return false
}

func TestBackupWhileOthersRead(t *testing.T) {
	path := newDB(t)
	other, err := Open(path, testTax, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s, err := Open(path, testTax, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup = %d, %v (wrote %d)", n, err, buf.Len())
	}
	out := filepath.Join(t.TempDir(), "b.db")
	n, err = s.BackupFile(out)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", st.Mode().Perm())
	}
	if st.Size() != n {
		t.Errorf("size %d, BackupFile said %d", st.Size(), n)
	}
	info, err := VerifyFile(out, testTax)
	if err != nil {
		t.Fatal(err)
	}
	if info.Schema != SchemaVersion || info.Entries != 1 || info.Size != n || info.Created.IsZero() {
		t.Errorf("info = %+v", info)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// The backup opens as a database with the same data.
	if !hasEntry(t, out, "kept.example") {
		t.Error("backup lacks the entry")
	}
	// Overwriting an existing backup is allowed; the live database and foreign files are not.
	if _, err := s.BackupFile(out); err != nil {
		t.Errorf("overwrite an old backup: %v", err)
	}
	if _, err := s.BackupFile(path); err == nil || !strings.Contains(err.Error(), "live database") {
		t.Errorf("backup over the live database: %v", err)
	}
	foreign := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(foreign, []byte("important notes, not a database"), 0o644)
	if _, err := s.BackupFile(foreign); err == nil {
		t.Error("backup over a foreign file succeeded")
	}
	if raw, _ := os.ReadFile(foreign); string(raw) != "important notes, not a database" {
		t.Error("foreign file changed")
	}
}

func TestRestoreBringsBackTheBackup(t *testing.T) {
	path := newDB(t)
	s, err := Open(path, testTax, Options{})
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "hedgerow-20260304-090000.db")
	if _, err := s.BackupFile(backup); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEntry("it", "later.example", []string{"adult"}, "after the backup"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// A process that opened the file before the restore (serve's batch writer
	// waiting for the lock) must find it retired, not writable.
	waiter, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()

	info, err := Restore(path, backup, testTax)
	if err != nil {
		t.Fatal(err)
	}
	if info.Entries != 1 || info.Schema != SchemaVersion {
		t.Errorf("info = %+v", info)
	}
	if hasEntry(t, path, "later.example") {
		t.Error("entry added after the backup survived the restore")
	}
	if !hasEntry(t, path, "kept.example") {
		t.Error("entry from the backup missing")
	}
	kept := path + BeforeRestoreSuffix
	st, err := os.Stat(kept)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("kept file mode %v", st.Mode().Perm())
	}
	if !hasEntry(t, kept, "later.example") {
		t.Error("the kept old database lacks the later entry")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("restored database mode %v", st.Mode().Perm())
	}
	hdr := make([]byte, 4096)
	if _, err := waiter.ReadAt(hdr, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hdr, make([]byte, 4096)) {
		t.Error("the replaced file's meta page was not zeroed")
	}
	if _, err := bolt.Open(filepath.Join("/proc/self/fd", strconv.Itoa(int(waiter.Fd()))), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second}); err == nil {
		t.Error("the replaced file still opens as a database")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"+restoreSuffix+"*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// Restoring into an empty directory creates the database.
	fresh := filepath.Join(t.TempDir(), "new", "hedgerow.db")
	if _, err := Restore(fresh, backup, testTax); err != nil {
		t.Fatal(err)
	}
	if !hasEntry(t, fresh, "kept.example") {
		t.Error("fresh restore lacks the entry")
	}
}

func TestRestoreRefusesBadFiles(t *testing.T) {
	path := newDB(t)
	good := filepath.Join(t.TempDir(), "good.db")
	{
		s, err := Open(path, testTax, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.BackupFile(good); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	random := make([]byte, 64<<10)
	rand.Read(random)
	flipped := bytes.Clone(raw)
	ps := int(binary.LittleEndian.Uint32(raw[24:28]))
	for _, off := range []int{16 + 40, ps + 16 + 40} { // inside both meta pages
		flipped[off] ^= 0xff
	}
	badPages := bytes.Clone(raw)
	for off := 2 * ps; off < len(badPages); off += ps { // every data page's header
		copy(badPages[off:off+16], bytes.Repeat([]byte{0x5a}, 16))
	}
	emptyBolt := filepath.Join(dir, "empty-bolt.db")
	boltFile(t, emptyBolt, nil)
	otherBolt := filepath.Join(dir, "other-bolt.db")
	boltFile(t, otherBolt, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("magic"), []byte("someone else"))
	})
	newer := filepath.Join(dir, "newer.db")
	os.WriteFile(newer, raw, 0o600)
	boltFile(t, newer, func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put(kSchema, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
	})

	cases := []struct {
		name, path, want string
	}{
		{"truncated", write("truncated.db", raw[:len(raw)/2]), "truncated"},
		{"too short", write("short.db", raw[:100]), "damaged"},
		{"meta flipped", write("flipped.db", flipped), "damaged"},
		{"page headers", write("pages.db", badPages), "damaged"},
		{"random bytes", write("random.db", random), "not a hedgerow database"},
		{"empty file", write("empty.db", nil), "not a hedgerow database"},
		{"empty bbolt file", emptyBolt, "not a hedgerow database"},
		{"foreign bbolt file", otherBolt, "wrong magic"},
		{"newer schema", newer, "newer"},
		{"missing", filepath.Join(dir, "missing.db"), "no such file"},
		{"directory", dir, "not a regular file"},
	}
	age(t, path)
	before := stateOf(t, path)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Restore(path, tc.path, testTax)
			if err == nil {
				t.Fatal("restore succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q, want it to name the file and say %q", err, tc.want)
			}
			if stateOf(t, path) != before {
				t.Error("the live database changed")
			}
			if _, err := os.Stat(path + BeforeRestoreSuffix); err == nil {
				t.Error("a refused restore kept a copy")
			}
		})
	}
}

func TestRestoreWaitsForTheLock(t *testing.T) {
	path := newDB(t)
	backup := filepath.Join(t.TempDir(), "b.db")
	s, err := Open(path, testTax, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BackupFile(backup); err != nil {
		t.Fatal(err)
	}
	old := RestoreLockTimeout
	defer func() { RestoreLockTimeout = old }()
	RestoreLockTimeout = 200 * time.Millisecond
	if _, err := Restore(path, backup, testTax); !errors.Is(err, ErrLocked) {
		t.Fatalf("restore while the database is held: %v, want ErrLocked", err)
	}
	RestoreLockTimeout = 10 * time.Second
	done := make(chan error, 1)
	go func() { _, err := Restore(path, backup, testTax); done <- err }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("restore did not wait for the lock: %v", err)
	default:
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyFile(path, testTax); err != nil {
		t.Fatal(err)
	}
}

func TestRotateBackups(t *testing.T) {
	dir := t.TempDir()
	names := []string{"hedgerow-20260101-000000.db", "hedgerow-20260103-000000.db", "hedgerow-20260102-000000.db",
		"hedgerow-20260104-000000.db", "other-20250101-000000.db", "hedgerow-notes.txt"}
	for _, n := range names {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	removed, err := RotateBackups(dir, "hedgerow-", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "hedgerow-20260101-000000.db"), filepath.Join(dir, "hedgerow-20260102-000000.db")}
	if strings.Join(removed, ",") != strings.Join(want, ",") {
		t.Errorf("removed %v, want %v", removed, want)
	}
	left, _ := os.ReadDir(dir)
	var got []string
	for _, e := range left {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != "hedgerow-20260103-000000.db,hedgerow-20260104-000000.db,hedgerow-notes.txt,other-20250101-000000.db" {
		t.Errorf("left %v", got)
	}
	if removed, err := RotateBackups(dir, "hedgerow-", 5); err != nil || len(removed) != 0 {
		t.Errorf("nothing to rotate: %v %v", removed, err)
	}
	if _, err := RotateBackups(dir, "hedgerow-", 0); err == nil {
		t.Error("keep 0 accepted")
	}
}

func TestVerifyFileMatchesInfo(t *testing.T) {
	path := newDB(t)
	info, err := VerifyFile(path, testTax)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, testTax, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Info()
	if err != nil {
		t.Fatal(err)
	}
	got.Size, info.Size = 0, 0
	if got != info {
		t.Errorf("Info %+v, VerifyFile %+v", got, info)
	}
}
