// Package store keeps hedgerow's state in one bbolt file, the single source
// of truth: the schema and its migrations, the category lists (feeds and
// local entries), the groups and client mapping, users, the audit trail and
// incidents. Every change is one transaction with its audit record; the
// in-memory Index is derived from here.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"

	"hedgerow/categories"
)

// ErrNeedsMigration is returned by a read-only Open of a database that an
// older hedgerow wrote (or that is empty): open it read-write once first.
var ErrNeedsMigration = errors.New("database needs initialising or migrating; open it read-write first")

// SchemaVersion is the version this binary writes. Opening a database with a
// newer one is refused; older ones are migrated in place.
const SchemaVersion = 3

// magic marks a bbolt file as hedgerow's.
const magic = "hedgerow"

var (
	bMeta       = []byte("meta")
	bCategories = []byte("categories")
	bFeeds      = []byte("feeds")
	bEntries    = []byte("entries")
	bGroups     = []byte("groups")
	bClients    = []byte("clients")
	bSettings   = []byte("settings")
	bUsers      = []byte("users")
	bAudit      = []byte("audit")
	bIncidents  = []byte("incidents")
	bReports    = []byte("reports") // schema 2

	allBuckets = [][]byte{bMeta, bCategories, bFeeds, bEntries, bGroups, bClients, bSettings, bUsers, bAudit, bIncidents, bReports, bTokens}

	kMagic   = []byte("magic")
	kSchema  = []byte("schema")
	kCreated = []byte("created")
	kTZ      = []byte("time_zone")
)

// ErrLocked is returned when another process holds the database.
var ErrLocked = errors.New("database is in use by another process")

// Store is an open hedgerow database.
type Store struct {
	db   *bolt.DB
	path string
	tax  *categories.Taxonomy
	now  func() time.Time
}

// Options tune Open.
type Options struct {
	// ReadOnly opens with a shared lock and never writes; the file must exist.
	ReadOnly bool
	// LockTimeout bounds the wait for another process's lock (default 2 s).
	LockTimeout time.Duration
	// Defaults seed a new database in its first transaction.
	Defaults Defaults
	// Now is the clock for audit records (default time.Now).
	Now func() time.Time
}

// Defaults is what a new database starts with.
type Defaults struct {
	Policy  categories.Policy
	Starter *Feed // imported as a feed when the database is created; may be nil
}

// Open opens or creates the database at path. Another process holding it
// makes Open fail within the lock timeout with ErrLocked; a file that is not
// a hedgerow database, or one with a newer schema, is an error and is left
// untouched.
func Open(path string, tax *categories.Taxonomy, opts Options) (*Store, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := checkFile(path, opts.ReadOnly); err != nil {
		return nil, err
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.LockTimeout,
		ReadOnly:        opts.ReadOnly,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 1 << 30,
	})
	if errors.Is(err, bolterr.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w (is hedgerow serve running? stop it, or wait for the other command to finish)", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: not a usable hedgerow database: %w", path, err)
	}
	s := &Store{db: db, path: path, tax: tax, now: opts.Now}
	if err := s.prepare(opts); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return s, nil
}

// checkFile refuses, before bbolt touches it, a file that exists but is not
// a bbolt database: bbolt would otherwise try to initialise or reject it in
// ways that are harder to explain.
func checkFile(path string, readOnly bool) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if readOnly {
			return fmt.Errorf("open %s: no database there (run hedgerow serve or hedgerow import to create one)", path)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("open %s: is a directory, want the database file", path)
	}
	hdr := make([]byte, 32)
	n, _ := f.Read(hdr)
	// bbolt's meta page: page header (16 bytes), then magic 0xED0CDAED.
	if n < 20 || binary.LittleEndian.Uint32(hdr[16:20]) != 0xED0CDAED {
		return fmt.Errorf("open %s: not a hedgerow database (not a bbolt file); left untouched", path)
	}
	return nil
}

// prepare checks the schema of an existing database, migrates an older one,
// or initialises a new one, each in a single transaction.
func (s *Store) prepare(opts Options) error {
	var state string // "new", "ok", "migrate"
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return errors.New("not a hedgerow database (a bbolt file without hedgerow's metadata); left untouched")
			}
			state = "new"
			return nil
		}
		if !bytes.Equal(meta.Get(kMagic), []byte(magic)) {
			return errors.New("not a hedgerow database (wrong magic); left untouched")
		}
		raw := meta.Get(kSchema)
		if len(raw) != 4 {
			return fmt.Errorf("not a usable hedgerow database: schema version missing or damaged (%d bytes); left untouched", len(raw))
		}
		v := binary.BigEndian.Uint32(raw)
		switch {
		case v > SchemaVersion:
			return fmt.Errorf("database schema %d is newer than this hedgerow understands (%d); upgrade hedgerow, the file is left untouched", v, SchemaVersion)
		case v < SchemaVersion:
			state = "migrate"
		default:
			state = "ok"
		}
		return nil
	})
	if err != nil {
		return err
	}
	if opts.ReadOnly {
		if state != "ok" {
			return ErrNeedsMigration
		}
		return nil
	}
	switch state {
	case "new":
		return s.initialise(opts.Defaults)
	case "migrate":
		// The file is copied before it is changed, so an upgrade that goes
		// wrong (or a school that must go back to the older hedgerow) has
		// the database exactly as the older version left it.
		if _, err := s.BackupFile(s.path + ".pre-upgrade"); err != nil {
			return fmt.Errorf("backup before migrating: %w (nothing was changed)", err)
		}
		return s.migrate()
	}
	return s.syncCategories()
}

func (s *Store) initialise(d Defaults) error {
	if err := d.Policy.Validate(s.tax); err != nil {
		return fmt.Errorf("default policy: %w", err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bMeta)
		ver := binary.BigEndian.AppendUint32(nil, SchemaVersion)
		if err := errors.Join(meta.Put(kMagic, []byte(magic)), meta.Put(kSchema, ver),
			meta.Put(kCreated, []byte(s.now().UTC().Format(time.RFC3339)))); err != nil {
			return err
		}
		if err := putCategories(tx, s.tax); err != nil {
			return err
		}
		if err := putPolicy(tx, d.Policy); err != nil {
			return err
		}
		if err := s.audit(tx, "hedgerow", "init", s.path, nil, d.Policy, "new database with the default policy"); err != nil {
			return err
		}
		if d.Starter != nil {
			if _, _, err := s.replaceFeedTx(tx, "hedgerow", d.Starter); err != nil {
				return fmt.Errorf("starter lists: %w", err)
			}
		}
		return nil
	})
}

// migrations[v] upgrades schema v to v+1. Each runs in the same transaction
// as the version bump, so a failed migration leaves the file as it was.
var migrations = map[uint32]func(tx *bolt.Tx) error{
	1: addReportsBucket,
	2: addTokensBucket,
}

func (s *Store) migrate() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bMeta)
		v := binary.BigEndian.Uint32(meta.Get(kSchema))
		for ; v < SchemaVersion; v++ {
			m, ok := migrations[v]
			if !ok {
				return fmt.Errorf("no migration from schema %d", v)
			}
			if err := m(tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return meta.Put(kSchema, binary.BigEndian.AppendUint32(nil, SchemaVersion))
	})
}

// syncCategories records the taxonomy of this binary in the database, so a
// backup carries the meaning of the slugs it uses.
func (s *Store) syncCategories() error {
	same := true
	_ = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCategories)
		for _, c := range s.tax.All() {
			want, _ := json.Marshal(categoryRecord(c))
			if !bytes.Equal(b.Get([]byte(c.Slug)), want) {
				same = false
			}
		}
		return nil
	})
	if same {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error { return putCategories(tx, s.tax) })
}

type catRecord struct {
	Slug        string `json:"slug"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Severity    string `json:"severity"`
	Kind        string `json:"kind"`
}

func categoryRecord(c categories.Category) catRecord {
	return catRecord{c.Slug, c.Name, c.Description, c.Severity.String(), c.Kind.String()}
}

func putCategories(tx *bolt.Tx, t *categories.Taxonomy) error {
	b := tx.Bucket(bCategories)
	for _, c := range t.All() {
		v, err := json.Marshal(categoryRecord(c))
		if err != nil {
			return err
		}
		if err := b.Put([]byte(c.Slug), v); err != nil {
			return err
		}
	}
	return nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Taxonomy returns the taxonomy the store was opened with.
func (s *Store) Taxonomy() *categories.Taxonomy { return s.tax }

// Close releases the database.
func (s *Store) Close() error { return s.db.Close() }

// Check verifies the database's internal consistency (bbolt's page checks).
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() { // drain: the checker goroutine sends every error
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("consistency check of %s: %w", s.path, errors.Join(errs...))
		}
		return nil
	})
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
