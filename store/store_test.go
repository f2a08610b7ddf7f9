package store

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"

	"hedgerow/categories"
)

// ---- helpers shared by the store tests ----

// clock is a fake Options.Now that advances one second per call, so every
// audit record has its own, predictable time.
type clock struct {
	mu   sync.Mutex
	next time.Time
}

func newClock() *clock {
	return &clock{next: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.next
	c.next = c.next.Add(time.Second)
	return t
}

// peek returns the time the next call to Now will return.
func (c *clock) peek() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

var testTax = categories.Builtin()

func defaults() Defaults {
	return Defaults{Policy: categories.DefaultPolicy(testTax)}
}

func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "hedgerow.db")
}

// openNew opens a new database in a temporary directory with the default
// policy, no starter feed and a fake clock.
func openNew(t testing.TB) (*Store, *clock) {
	t.Helper()
	c := newClock()
	s, err := Open(dbPath(t), testTax, Options{Defaults: defaults(), Now: c.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, c
}

func mustCheck(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// txID is the id of the last committed write transaction: it moves exactly
// when something was written.
func txID(t testing.TB, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func auditLen(t testing.TB, s *Store) int {
	t.Helper()
	recs, err := s.Audit(0)
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	return len(recs)
}

func mask(t testing.TB, slugs ...string) categories.Mask {
	t.Helper()
	m, err := testTax.MaskOf(slugs...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sortedClients returns the policy with its client rules in a fixed order:
// the order of the rules does not matter to the lookup, and the store keeps
// them keyed by prefix.
func sortedClients(p categories.Policy) categories.Policy {
	p.Clients = slices.Clone(p.Clients)
	slices.SortFunc(p.Clients, func(a, b categories.ClientRule) int {
		return strings.Compare(a.Prefix.String(), b.Prefix.String())
	})
	return p
}

func samePolicy(t testing.TB, got, want categories.Policy) {
	t.Helper()
	got, want = sortedClients(got), sortedClients(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("policy differs:\n got  %+v\n want %+v", got, want)
	}
}

// fileState is what must not change when a file is left untouched.
type fileState struct {
	sum   [32]byte
	size  int64
	mtime time.Time
	mode  os.FileMode
}

func stateOf(t testing.TB, path string) fileState {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileState{sha256.Sum256(raw), st.Size(), st.ModTime(), st.Mode()}
}

// age sets a file's times well into the past, so that any write shows.
func age(t testing.TB, path string) {
	t.Helper()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// boltFile writes a bbolt database directly with fn.
func boltFile(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if fn != nil {
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
}

// openNoPanic turns a panic inside Open into an error, so one bad case
// fails its own test instead of the whole binary.
func openNoPanic(path string, opts Options) (s *Store, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("Open panicked: %v", r)
		}
	}()
	return Open(path, testTax, opts)
}

// ---- Open: creation, reopening, defaults ----

func TestOpenCreatesSeededDatabase(t *testing.T) {
	starter := func() *Feed {
		f := NewFeed(FeedInfo{Name: "starter", Source: "embedded", Format: "starter", Reason: "starter lists"})
		f.Add("porn.example", mask(t, "adult"))
		f.Add("casino.example", mask(t, "gambling"))
		f.Add("video.example/bad", mask(t, "adult"))
		return f
	}
	for _, tc := range []struct {
		name        string
		starter     *Feed
		wantFeeds   []string
		wantActions []string // audit, newest first
	}{
		{name: "policy only", wantActions: []string{"init"}},
		{name: "with starter feed", starter: starter(), wantFeeds: []string{"starter"}, wantActions: []string{"import", "init"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// What a bare bbolt file's last transaction id is after bbolt's
			// own initialisation: one write transaction more is ours.
			bare := filepath.Join(t.TempDir(), "bare.db")
			boltFile(t, bare, nil)
			db, err := bolt.Open(bare, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			var bareID int
			_ = db.View(func(tx *bolt.Tx) error { bareID = tx.ID(); return nil })
			db.Close()

			path := filepath.Join(t.TempDir(), "sub", "dir", "hedgerow.db")
			c := newClock()
			s, err := Open(path, testTax, Options{Defaults: Defaults{Policy: categories.DefaultPolicy(testTax), Starter: tc.starter}, Now: c.Now})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			mustCheck(t, s)

			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("database file mode %v, want 0600", st.Mode().Perm())
			}
			if s.Path() != path || s.Taxonomy() != testTax {
				t.Errorf("Path/Taxonomy = %q/%p, want %q/%p", s.Path(), s.Taxonomy(), path, testTax)
			}
			if got := txID(t, s); got != bareID+1 {
				t.Errorf("new database took %d write transactions, want 1 (tx id %d, bare bbolt %d)", got-bareID, got, bareID)
			}

			p, err := s.Policy()
			if err != nil {
				t.Fatal(err)
			}
			samePolicy(t, p, categories.DefaultPolicy(testTax))

			feeds, err := s.Feeds()
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range feeds {
				names = append(names, f.Name)
			}
			if !slices.Equal(names, tc.wantFeeds) {
				t.Errorf("feeds %v, want %v", names, tc.wantFeeds)
			}
			recs, err := s.Audit(0)
			if err != nil {
				t.Fatal(err)
			}
			var actions []string
			for _, r := range recs {
				actions = append(actions, r.Action)
				if r.Actor != "hedgerow" {
					t.Errorf("audit %s by %q, want hedgerow", r.Action, r.Actor)
				}
			}
			if !slices.Equal(actions, tc.wantActions) {
				t.Errorf("audit actions %v, want %v", actions, tc.wantActions)
			}

			// The categories are recorded, so a backup carries their meaning.
			err = s.db.View(func(tx *bolt.Tx) error {
				b := tx.Bucket(bCategories)
				for _, c := range testTax.All() {
					if b.Get([]byte(c.Slug)) == nil {
						t.Errorf("category %s not recorded", c.Slug)
					}
				}
				if got := string(tx.Bucket(bMeta).Get(kMagic)); got != magic {
					t.Errorf("magic %q", got)
				}
				if got := binary.BigEndian.Uint32(tx.Bucket(bMeta).Get(kSchema)); got != SchemaVersion {
					t.Errorf("schema %d, want %d", got, SchemaVersion)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			if tc.starter != nil {
				snap, err := s.LoadSnapshot()
				if err != nil {
					t.Fatal(err)
				}
				if v := snap.Decide("ks2", "www.porn.example", "", time.Now()); v.Action != categories.Block {
					t.Errorf("starter entry not in force: %+v", v)
				}
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := dbPath(t)
	c := newClock()
	s, err := Open(path, testTax, Options{Defaults: defaults(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	f := NewFeed(FeedInfo{Name: "vendor", Reason: "bought list"})
	f.Add("adult.example", mask(t, "adult"))
	f.AddException("safe.adult.example", mask(t, "adult"))
	if _, err := s.ReplaceFeed("it", f); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEntry("it", "hand.example", []string{"games"}, "reported"); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdatePolicy("it", PolicyChange{Action: "tz", Reason: "move", Apply: func(p *categories.Policy) (string, error) {
		p.TimeZone = "UTC"
		return "time_zone", nil
	}}); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	wantPolicy, _ := s.Policy()
	wantFeeds, _ := s.Feeds()
	wantFind, _ := s.Find("www.hand.example", "")
	wantAudit, _ := s.Audit(0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with other defaults: they must not touch an existing database.
	other := categories.DefaultPolicy(testTax)
	other.Groups = other.Groups[:1]
	other.Clients = nil
	starter := NewFeed(FeedInfo{Name: "starter", Reason: "x"})
	starter.Add("never.example", mask(t, "adult"))
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readonly=%v", ro), func(t *testing.T) {
			s, err := Open(path, testTax, Options{ReadOnly: ro, Defaults: Defaults{Policy: other, Starter: starter}, Now: c.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mustCheck(t, s)
			p, _ := s.Policy()
			samePolicy(t, p, wantPolicy)
			if p.TimeZone != "UTC" {
				t.Errorf("time zone %q, want UTC", p.TimeZone)
			}
			feeds, _ := s.Feeds()
			if !reflect.DeepEqual(feeds, wantFeeds) {
				t.Errorf("feeds %+v, want %+v", feeds, wantFeeds)
			}
			found, _ := s.Find("www.hand.example", "")
			if !reflect.DeepEqual(found, wantFind) || len(found) != 1 {
				t.Errorf("find %+v, want %+v", found, wantFind)
			}
			recs, _ := s.Audit(0)
			if !reflect.DeepEqual(recs, wantAudit) {
				t.Errorf("audit changed on reopen:\n got  %+v\n want %+v", recs, wantAudit)
			}
		})
	}
}

func TestOpenReadOnly(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		path := dbPath(t)
		_, err := Open(path, testTax, Options{ReadOnly: true})
		if err == nil || !strings.Contains(err.Error(), "no database there") || !strings.Contains(err.Error(), path) {
			t.Fatalf("Open read-only of a missing file: %v, want an error naming the path and saying there is no database", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("read-only open created %s (%v)", path, err)
		}
	})
	t.Run("missing directory is not created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nope")
		_, err := Open(filepath.Join(dir, "hedgerow.db"), testTax, Options{ReadOnly: true})
		if err == nil {
			t.Fatal("want an error")
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("read-only open created %s", dir)
		}
	})
	t.Run("existing database reads, refuses writes, leaves file untouched", func(t *testing.T) {
		path := dbPath(t)
		s, err := Open(path, testTax, Options{Defaults: defaults()})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		age(t, path)
		before := stateOf(t, path)
		r, err := Open(path, testTax, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		mustCheck(t, r)
		p, err := r.Policy()
		if err != nil {
			t.Fatal(err)
		}
		samePolicy(t, p, categories.DefaultPolicy(testTax))
		if err := r.AddEntry("it", "x.example", []string{"adult"}, "why"); err == nil {
			t.Error("AddEntry on a read-only store succeeded")
		}
		if _, err := r.LoadSnapshot(); err != nil {
			t.Errorf("LoadSnapshot read-only: %v", err)
		}
		r.Close()
		if after := stateOf(t, path); after != before {
			t.Errorf("read-only open changed the file: %+v -> %+v", before, after)
		}
	})
	t.Run("uninitialised bbolt file", func(t *testing.T) {
		path := dbPath(t)
		boltFile(t, path, nil)
		age(t, path)
		before := stateOf(t, path)
		_, err := Open(path, testTax, Options{ReadOnly: true})
		if err == nil || !strings.Contains(err.Error(), "read-write") {
			t.Fatalf("err %v, want one saying to open read-write first", err)
		}
		if after := stateOf(t, path); after != before {
			t.Error("file changed")
		}
	})
}

func TestOpenRefusesForeignFiles(t *testing.T) {
	real := func(t *testing.T, path string) {
		s, err := Open(path, testTax, Options{Defaults: defaults()})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	for _, tc := range []struct {
		name    string
		make    func(t *testing.T, path string)
		wantErr string // "" means any error, but not a panic
		roErr   string // for a read-only Open, when it differs
	}{
		{"random bytes", func(t *testing.T, path string) {
			b := make([]byte, 64<<10)
			rand.Read(b)
			os.WriteFile(path, b, 0o600)
		}, "not a hedgerow database", ""},
		{"text file", func(t *testing.T, path string) {
			os.WriteFile(path, []byte("# my notes\nexample.com adult\n"), 0o644)
		}, "not a hedgerow database", ""},
		{"short file", func(t *testing.T, path string) {
			os.WriteFile(path, []byte("hi"), 0o600)
		}, "not a hedgerow database", ""},
		{"empty file", func(t *testing.T, path string) {
			os.WriteFile(path, nil, 0o600)
		}, "not a hedgerow database", ""},
		{"foreign bbolt database", func(t *testing.T, path string) {
			boltFile(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("widgets"))
				if err != nil {
					return err
				}
				return b.Put([]byte("sprocket"), []byte("42"))
			})
		}, "not a hedgerow database", ""},
		{"foreign bbolt database with a meta bucket", func(t *testing.T, path string) {
			boltFile(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bMeta)
				if err != nil {
					return err
				}
				return b.Put(kMagic, []byte("someapp"))
			})
		}, "not a hedgerow database", ""},
		{"newer schema", func(t *testing.T, path string) {
			real(t, path)
			boltFile(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bMeta).Put(kSchema, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
			})
		}, "newer", ""},
		{"older schema without a migration", func(t *testing.T, path string) {
			real(t, path)
			boltFile(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bMeta).Put(kSchema, binary.BigEndian.AppendUint32(nil, 0))
			})
		}, "no migration from schema 0", "open it read-write first"},
		// A hedgerow meta bucket whose schema version is missing (a damaged
		// file): must be an error, not a panic in binary.BigEndian.Uint32.
		{"schema version missing", func(t *testing.T, path string) {
			real(t, path)
			boltFile(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Delete(kSchema) })
		}, "schema", ""},
		{"schema version truncated", func(t *testing.T, path string) {
			real(t, path)
			boltFile(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(kSchema, []byte{1}) })
		}, "schema", ""},
	} {
		for _, ro := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/readonly=%v", tc.name, ro), func(t *testing.T) {
				path := dbPath(t)
				tc.make(t, path)
				age(t, path)
				before := stateOf(t, path)

				start := time.Now()
				s, err := openNoPanic(path, Options{ReadOnly: ro, Defaults: defaults(), LockTimeout: 500 * time.Millisecond})
				if err == nil {
					s.Close()
					t.Fatalf("Open succeeded, want an error containing %q", tc.wantErr)
				}
				if strings.Contains(err.Error(), "panicked") {
					t.Fatalf("%v", err)
				}
				want := tc.wantErr
				if ro && tc.roErr != "" {
					want = tc.roErr
				}
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q, want it to contain %q", err, want)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				if time.Since(start) > 5*time.Second {
					t.Errorf("Open took %v", time.Since(start))
				}
				if after := stateOf(t, path); after != before {
					t.Errorf("file changed: %+v -> %+v", before, after)
				}
				// The file is not left locked by the failed Open.
				db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond, ReadOnly: true})
				if errors.Is(err, bolterr.ErrTimeout) {
					t.Error("file still locked after the failed Open")
				} else if err == nil {
					db.Close()
				}
			})
		}
	}
}

func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, testTax, Options{Defaults: defaults()})
	if err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("Open(directory) = %v, want an error saying it is a directory", err)
	}
}

func TestOpenInvalidDefaults(t *testing.T) {
	path := dbPath(t)
	bad := categories.DefaultPolicy(testTax)
	bad.Groups[1].Blocked = append(bad.Groups[1].Blocked, "no-such-category")
	_, err := Open(path, testTax, Options{Defaults: Defaults{Policy: bad}})
	if err == nil || !strings.Contains(err.Error(), "no-such-category") {
		t.Fatalf("Open with an invalid default policy: %v, want an error naming the category", err)
	}
	// Nothing hedgerow-specific was written: a later Open with good
	// defaults initialises the file.
	s, err := Open(path, testTax, Options{Defaults: defaults()})
	if err != nil {
		t.Fatalf("Open after a failed initialisation: %v", err)
	}
	defer s.Close()
	mustCheck(t, s)
	p, _ := s.Policy()
	samePolicy(t, p, categories.DefaultPolicy(testTax))

	// A starter feed that cannot be stored fails the whole initialisation:
	// the policy written before it in the same transaction is not kept.
	path2 := dbPath(t)
	badStarter := NewFeed(FeedInfo{Name: "", Reason: "x"}) // bbolt refuses an empty bucket name
	badStarter.Add("porn.example", mask(t, "adult"))
	_, err = Open(path2, testTax, Options{Defaults: Defaults{Policy: categories.DefaultPolicy(testTax), Starter: badStarter}})
	if err == nil || !strings.Contains(err.Error(), "starter") {
		t.Fatalf("Open with a bad starter feed: %v, want an error about the starter lists", err)
	}
	other := categories.DefaultPolicy(testTax)
	other.TimeZone = "UTC"
	s2, err := Open(path2, testTax, Options{Defaults: Defaults{Policy: other}})
	if err != nil {
		t.Fatalf("Open after a failed initialisation: %v", err)
	}
	defer s2.Close()
	if p, _ := s2.Policy(); p.TimeZone != "UTC" {
		t.Errorf("half-initialised database kept the first policy (time zone %q)", p.TimeZone)
	}
	if n := auditLen(t, s2); n != 1 {
		t.Errorf("%d audit records, want 1 (init)", n)
	}
}

func TestOpenMigratesOlderSchema(t *testing.T) {
	path := dbPath(t)
	s, err := Open(path, testTax, Options{Defaults: defaults()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	boltFile(t, path, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bIncidents); err != nil { // as if schema 0 had no incidents
			return err
		}
		return tx.Bucket(bMeta).Put(kSchema, binary.BigEndian.AppendUint32(nil, SchemaVersion-1))
	})

	saved := migrations
	t.Cleanup(func() { migrations = saved })
	for _, tc := range []struct {
		name    string
		m       func(tx *bolt.Tx) error
		wantErr string
		wantVer uint32
	}{
		{"failing migration leaves the file as it was", func(tx *bolt.Tx) error {
			tx.Bucket(bMeta).Put([]byte("migrated"), []byte("half"))
			return errors.New("boom")
		}, "boom", SchemaVersion - 1},
		{"migration runs with the version bump", func(tx *bolt.Tx) error {
			return tx.Bucket(bMeta).Put([]byte("migrated"), []byte("yes"))
		}, "", SchemaVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			migrations = map[uint32]func(tx *bolt.Tx) error{SchemaVersion - 1: tc.m}
			age(t, path)
			before := stateOf(t, path)
			s, err := Open(path, testTax, Options{Defaults: defaults()})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if after := stateOf(t, path); after != before {
					t.Errorf("failed migration changed the file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mustCheck(t, s)
			_ = s.db.View(func(tx *bolt.Tx) error {
				if v := binary.BigEndian.Uint32(tx.Bucket(bMeta).Get(kSchema)); v != tc.wantVer {
					t.Errorf("schema %d, want %d", v, tc.wantVer)
				}
				if got := string(tx.Bucket(bMeta).Get([]byte("migrated"))); got != "yes" {
					t.Errorf("migration marker %q", got)
				}
				if tx.Bucket(bIncidents) == nil {
					t.Error("missing bucket not created by migrate")
				}
				return nil
			})
			// The file as the older version left it was kept before migrating.
			info, err := VerifyFile(path+".pre-upgrade", testTax)
			if err != nil || info.Schema != SchemaVersion-1 {
				t.Errorf("pre-upgrade backup: %+v, %v; want a schema %d copy", info, err, SchemaVersion-1)
			}
		})
	}
}

// ---- locking across processes ----

const helperEnv = "HEDGEROW_STORE_TEST_HELPER_DB"

// TestHelperProcess is not a test: TestOpenLockedByAnotherProcess runs the
// test binary again with it to hold the database from another process.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestOpenLockedByAnotherProcess")
	}
	s, err := Open(path, categories.Builtin(), Options{ReadOnly: os.Getenv(helperEnv+"_RO") == "1", LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	// Hold the lock until killed (or until the parent goes and stdin closes).
	io.Copy(io.Discard, os.Stdin)
	s.Close()
	os.Exit(0)
}

// holdInOtherProcess starts a process that opens path and holds it; the
// returned function kills it.
func holdInOtherProcess(t *testing.T, path string, readOnly bool) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	if readOnly {
		cmd.Env = append(cmd.Env, helperEnv+"_RO=1")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			cmd.Process.Kill()
			stdin.Close()
			cmd.Wait()
		})
	}
	t.Cleanup(kill)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if line == "ready" || strings.HasPrefix(line, "error:") {
				ready <- line
				break
			}
		}
		io.Copy(io.Discard, out)
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		if !ok || line != "ready" {
			t.Fatalf("helper process did not open the database: %q", line)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("helper process did not start")
	}
	return kill
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("in helper")
	}
	for _, tc := range []struct {
		holderRO, openerRO bool
		wantLocked         bool
	}{
		{false, false, true},
		{false, true, true},
		{true, false, true},
		{true, true, false}, // two readers share the lock
	} {
		t.Run(fmt.Sprintf("holder-readonly=%v/opener-readonly=%v", tc.holderRO, tc.openerRO), func(t *testing.T) {
			path := dbPath(t)
			s, err := Open(path, testTax, Options{Defaults: defaults()})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			kill := holdInOtherProcess(t, path, tc.holderRO)

			start := time.Now()
			s, err = Open(path, testTax, Options{ReadOnly: tc.openerRO, LockTimeout: 500 * time.Millisecond, Defaults: defaults()})
			took := time.Since(start)
			if took > 5*time.Second {
				t.Errorf("Open took %v with a 500ms lock timeout", took)
			}
			if !tc.wantLocked {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("second Open of a database held by another process succeeded")
			}
			if !errors.Is(err, ErrLocked) {
				t.Errorf("error %v does not wrap ErrLocked", err)
			}
			if !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q should name the file and say it is in use by another process", err)
			}
			if took < 400*time.Millisecond {
				t.Errorf("Open gave up after %v, before the 500ms lock timeout", took)
			}

			// Once the other process is gone, the database opens.
			kill()
			s, err = Open(path, testTax, Options{ReadOnly: tc.openerRO, LockTimeout: 2 * time.Second})
			if err != nil {
				t.Fatalf("Open after the holder exited: %v", err)
			}
			mustCheck(t, s)
			s.Close()
		})
	}
}

func TestCheckAfterEveryKindOfChange(t *testing.T) {
	// Check after a mixed sequence of every kind of change.
	s, _ := openNew(t)
	steps := []struct {
		name string
		do   func() error
	}{
		{"import", func() error {
			f := NewFeed(FeedInfo{Name: "a", Reason: "r"})
			for i := range 5000 {
				f.Add(fmt.Sprintf("n%05d.example", i), mask(t, "adult"))
			}
			_, err := s.ReplaceFeed("it", f)
			return err
		}},
		{"re-import smaller", func() error {
			f := NewFeed(FeedInfo{Name: "a", Reason: "r"})
			for i := range 100 {
				f.Add(fmt.Sprintf("n%05d.example", i), mask(t, "games"))
			}
			_, err := s.ReplaceFeed("it", f)
			return err
		}},
		{"add entry", func() error { return s.AddEntry("it", "x.example", []string{"chat"}, "r") }},
		{"remove entry", func() error { return s.RemoveEntry("it", "x.example", nil, "r") }},
		{"policy", func() error {
			return s.UpdatePolicy("it", PolicyChange{Action: "a", Reason: "r", Apply: func(p *categories.Policy) (string, error) {
				p.School.Deny = append(p.School.Deny, "bad.example")
				return categories.SchoolGroup, nil
			}})
		}},
		{"remove feed", func() error { return s.RemoveFeed("it", "a", "r") }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if err := s.Check(); err != nil {
			t.Fatalf("Check after %s: %v", st.name, err)
		}
	}
}
