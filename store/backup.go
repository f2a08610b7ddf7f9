package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"

	"hedgerow/categories"
)

// BackupInfo is what a backup (or a database) holds.
type BackupInfo struct {
	Schema    int       `json:"schema"`
	Incidents int       `json:"incidents"`
	Reports   int       `json:"reports"`
	Users     int       `json:"users"`
	Feeds     int       `json:"feeds"`
	Entries   int       `json:"entries"` // local entries added by hand
	Created   time.Time `json:"created,omitzero"`
	Size      int64     `json:"size"`
}

// String summarises the info for a person.
func (i BackupInfo) String() string {
	s := fmt.Sprintf("schema %d, %d incidents, %d reports, %d users, %d feeds, %d local entries", i.Schema, i.Incidents, i.Reports, i.Users, i.Feeds, i.Entries)
	if !i.Created.IsZero() {
		s += ", database created " + i.Created.UTC().Format(time.RFC3339)
	}
	return s
}

// RestoreLockTimeout bounds how long Restore waits for the live database's
// lock (serve holds it only briefly, for each reload or batch).
var RestoreLockTimeout = 10 * time.Second

// restoreSuffix names Restore's temporary copy next to the database.
const restoreSuffix = ".restore-"

// BeforeRestoreSuffix names the copy of the replaced database Restore keeps.
const BeforeRestoreSuffix = ".before-restore"

// Backup writes a consistent copy of the database to w while others keep
// reading (bbolt Tx.WriteTo in a read transaction). It works on a Store
// opened read-only, so it can run beside hedgerow serve.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup %s: %w", s.path, err)
	}
	return n, nil
}

// BackupFile writes a backup to path atomically: into a temporary file in
// the same directory (mode 0600, since it holds personal data), fsynced,
// verified with VerifyFile, then renamed into place and the directory
// fsynced. It refuses to write over the live database itself or over an
// existing file that is not a bbolt database. On error nothing is left at
// path that was not there before.
func (s *Store) BackupFile(path string) (int64, error) {
	if st, err := os.Stat(path); err == nil {
		if live, err := os.Stat(s.path); err == nil && os.SameFile(st, live) {
			return 0, fmt.Errorf("backup to %s: that is the live database; choose another file", path)
		}
		if !st.Mode().IsRegular() {
			return 0, fmt.Errorf("backup to %s: exists and is not a regular file", path)
		}
		if st.Size() > 0 {
			if err := checkFile(path, true); err != nil {
				return 0, fmt.Errorf("backup to %s: the file exists and is not a hedgerow backup; refusing to replace it", path)
			}
		}
	}
	dir, base := filepath.Dir(path), filepath.Base(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("backup to %s: %w", path, err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("backup to %s: %w", path, err)
	}
	n, err := s.Backup(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return 0, fmt.Errorf("backup to %s: not enough disk space (it needs about the size of the database file): %w", path, err)
		}
		return 0, fmt.Errorf("backup to %s: %w", path, err)
	}
	if _, err := VerifyFile(tmp, s.tax); err != nil {
		return 0, fmt.Errorf("backup to %s: the copy failed verification, nothing was written: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("backup to %s: %w", path, err)
	}
	done = true
	if err := retentionSyncDir(dir); err != nil {
		return n, fmt.Errorf("backup to %s: written, but fsync of the directory failed: %w", path, err)
	}
	return n, nil
}

// VerifyFile checks that the file at path is a usable hedgerow database
// without changing it: it must be a bbolt file (opened read-only, with a
// shared lock), carry hedgerow's magic and a schema no newer than this
// binary's, and pass bbolt's page consistency check. It reports what the
// file holds. Foreign, damaged or newer files get an error naming the file
// and what is wrong. An older schema is accepted: the next read-write open
// migrates it.
func VerifyFile(path string, tax *categories.Taxonomy) (info BackupInfo, err error) {
	_ = tax // the taxonomy is this binary's; the file's own is not checked against it
	st, err := os.Stat(path)
	if err != nil {
		return info, fmt.Errorf("verify %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return info, fmt.Errorf("verify %s: not a regular file", path)
	}
	info.Size = st.Size()
	if err := checkFile(path, true); err != nil {
		return info, fmt.Errorf("verify %s: not a hedgerow database (not a bbolt file)", path)
	}
	// A damaged file can make bbolt read past the end of its mapping or
	// panic on a bad page: turn both into an error.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("verify %s: damaged database (bbolt failed reading it: %v)", path, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if errors.Is(err, bolterr.ErrTimeout) {
		return info, fmt.Errorf("verify %s: %w", path, ErrLocked)
	}
	if err != nil {
		return info, fmt.Errorf("verify %s: damaged database: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Size() > info.Size {
			return fmt.Errorf("damaged database: truncated (the file has %d bytes, its pages need %d)", info.Size, tx.Size())
		}
		if err := inspect(tx, &info); err != nil {
			return err
		}
		// Read every page of the tree here, where a fault is recovered,
		// before bbolt's checker (on its own goroutine, where it is not)
		// reads them again.
		walk(tx)
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("damaged database, consistency check failed: %w", errors.Join(errs...))
		}
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("verify %s: %w", path, err)
	}
	return info, nil
}

// inspect checks that tx is a hedgerow database this binary can use and
// counts what it holds.
func inspect(tx *bolt.Tx, info *BackupInfo) error {
	meta := tx.Bucket(bMeta)
	if meta == nil {
		return errors.New("not a hedgerow database (a bbolt file without hedgerow's metadata)")
	}
	if !bytes.Equal(meta.Get(kMagic), []byte(magic)) {
		return errors.New("not a hedgerow database (wrong magic)")
	}
	raw := meta.Get(kSchema)
	if len(raw) != 4 {
		return fmt.Errorf("damaged hedgerow database: schema version missing or damaged (%d bytes)", len(raw))
	}
	info.Schema = int(binary.BigEndian.Uint32(raw))
	if info.Schema > SchemaVersion {
		return fmt.Errorf("database schema %d is newer than this hedgerow understands (%d); upgrade hedgerow first", info.Schema, SchemaVersion)
	}
	if c := meta.Get(kCreated); c != nil {
		info.Created, _ = time.Parse(time.RFC3339, string(c))
	}
	count := func(name []byte, buckets bool) int {
		b := tx.Bucket(name)
		if b == nil {
			return 0
		}
		n := 0
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if (v == nil) == buckets {
				n++
			}
		}
		return n
	}
	info.Incidents = count(bIncidents, false)
	info.Reports = count(bReports, false)
	info.Users = count(bUsers, false)
	info.Feeds = count(bFeeds, true)
	info.Entries = count(bEntries, false)
	return nil
}

// walk reads every key and value of every bucket.
func walk(tx *bolt.Tx) {
	var sum byte
	var visit func(b *bolt.Bucket)
	visit = func(b *bolt.Bucket) {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				if child := b.Bucket(k); child != nil {
					visit(child)
				}
				continue
			}
			if len(v) > 0 {
				sum ^= v[0] ^ v[len(v)-1]
			}
		}
	}
	_ = tx.ForEach(func(_ []byte, b *bolt.Bucket) error { visit(b); return nil })
	_ = sum
}

// Info reports what the open database holds.
func (s *Store) Info() (BackupInfo, error) {
	var info BackupInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		info.Size = tx.Size()
		return inspect(tx, &info)
	})
	if err != nil {
		return info, fmt.Errorf("%s: %w", s.path, err)
	}
	return info, nil
}

// Restore replaces the database at dbPath with the backup at backupPath.
//
// The backup is verified first (VerifyFile); anything it refuses leaves the
// live database untouched. Restore then takes the live database's exclusive
// lock (waiting up to RestoreLockTimeout for hedgerow serve's reload or
// batch, or a CLI command, to finish), keeps the current file as
// dbPath+".before-restore" (0600), copies the backup next to the database,
// fsyncs and verifies the copy, renames it over dbPath and fsyncs the
// directory. Before the lock is released the replaced file is retired like
// Compact retires its old file (its meta pages are zeroed), so a process
// that opened it before the rename and waits for the lock gets an
// "invalid database" error and opens the new file, instead of writing into
// one that is no longer the database.
//
// A missing database is simply created from the backup. The live database
// need not be readable: restoring over a damaged one is what this is for.
func Restore(dbPath, backupPath string, tax *categories.Taxonomy) (BackupInfo, error) {
	info, err := VerifyFile(backupPath, tax)
	if err != nil {
		return info, fmt.Errorf("restore: %w; the database was not changed", err)
	}
	dir := filepath.Dir(dbPath)
	if bst, err := os.Stat(backupPath); err == nil {
		if lst, err := os.Stat(dbPath); err == nil && os.SameFile(bst, lst) {
			return info, fmt.Errorf("restore: %s is the live database itself", backupPath)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	old, err := lockLive(dbPath, RestoreLockTimeout)
	if err != nil {
		return info, fmt.Errorf("restore: %w; the database was not changed", err)
	}
	if old != nil {
		defer old.Close() // releases the lock, after the old file is retired
		if err := copyFileAtomic(old, dbPath+BeforeRestoreSuffix); err != nil {
			return info, fmt.Errorf("restore: keep the current database as %s: %w; the database was not changed", dbPath+BeforeRestoreSuffix, err)
		}
	}
	// Leftovers of a restore that was killed: only the lock holder restores.
	if stale, _ := filepath.Glob(filepath.Join(dir, filepath.Base(dbPath)+restoreSuffix+"*")); len(stale) > 0 {
		for _, p := range stale {
			_ = os.Remove(p)
		}
	}
	src, err := os.Open(backupPath)
	if err != nil {
		return info, fmt.Errorf("restore: %w; the database was not changed", err)
	}
	tmp, err := copyToTemp(src, dir, filepath.Base(dbPath)+restoreSuffix+"*")
	src.Close()
	if err != nil {
		return info, fmt.Errorf("restore: copy %s next to the database: %w; the database was not changed", backupPath, err)
	}
	if info, err = VerifyFile(tmp, tax); err != nil {
		os.Remove(tmp)
		return info, fmt.Errorf("restore: the copy of the backup failed verification: %w; the database was not changed", err)
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		os.Remove(tmp)
		return info, fmt.Errorf("restore: replace the database: %w; the database was not changed", err)
	}
	var later []error
	if err := retentionSyncDir(dir); err != nil {
		later = append(later, fmt.Errorf("fsync the directory (a power cut now could bring back the old file): %w", err))
	}
	if old != nil {
		if err := retireFile(old); err != nil {
			later = append(later, fmt.Errorf("retire the replaced file: %w", err))
		}
	}
	if len(later) > 0 {
		return info, fmt.Errorf("restore: the backup is in place, but: %w", errors.Join(later...))
	}
	return info, nil
}

// lockLive opens the file at path and takes bbolt's exclusive lock on it,
// waiting up to timeout. It returns nil, nil if there is no file. It makes
// sure the locked file is still the one at path (a compaction may have
// replaced it while we waited).
func lockLive(path string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil || !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s: %w (stop hedgerow serve, or wait for the other command to finish)", path, ErrLocked)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		fst, err1 := f.Stat()
		pst, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(fst, pst) {
			return f, nil
		}
		f.Close()
		if err2 != nil && !errors.Is(err2, os.ErrNotExist) {
			return nil, err2
		}
	}
}

// retireFile zeroes the meta pages (0 and 1) of a bbolt file that has been
// replaced, so a process that opened it before the replacement cannot use
// it. The page size is read from the file; if that is unreadable the first
// 2 × 64 KiB (bbolt's largest page size) are zeroed, as far as the file goes.
func retireFile(f *os.File) error {
	n := int64(2 << 16)
	hdr := make([]byte, 32)
	if _, err := f.ReadAt(hdr, 0); err == nil && binary.LittleEndian.Uint32(hdr[16:20]) == 0xED0CDAED {
		if ps := int64(binary.LittleEndian.Uint32(hdr[24:28])); ps >= 512 && ps <= 1<<16 {
			n = 2 * ps
		}
	}
	if st, err := f.Stat(); err == nil && st.Size() < n {
		n = st.Size()
	}
	if _, err := f.WriteAt(make([]byte, n), 0); err != nil {
		return err
	}
	return f.Sync()
}

// copyFileAtomic copies the open file src to dst through a temporary file in
// dst's directory (0600), fsynced, renamed and the directory fsynced.
func copyFileAtomic(src *os.File, dst string) error {
	tmp, err := copyToTemp(io.NewSectionReader(src, 0, 1<<62), filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return retentionSyncDir(filepath.Dir(dst))
}

// copyToTemp copies r into a new 0600 temporary file in dir named by
// pattern, fsyncs it and returns its name; on error it removes it.
func copyToTemp(r io.Reader, dir, pattern string) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		if errors.Is(err, syscall.ENOSPC) {
			return "", fmt.Errorf("not enough disk space: %w", err)
		}
		return "", err
	}
	return f.Name(), nil
}

// RotateBackups deletes the oldest files in dir named prefix*.db beyond the
// newest keep, ordered by name (backup names carry a sortable timestamp).
// It returns the paths it removed. keep must be at least 1.
func RotateBackups(dir, prefix string, keep int) (removed []string, err error) {
	if keep < 1 {
		return nil, fmt.Errorf("rotate backups in %s: keep %d, want at least 1", dir, keep)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("rotate backups in %s: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, prefix) && strings.HasSuffix(n, ".db") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(names) <= keep {
		return nil, nil
	}
	var errs []error
	for _, n := range names[:len(names)-keep] {
		p := filepath.Join(dir, n)
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("rotate backups in %s: %w", dir, errors.Join(errs...))
	}
	return removed, nil
}
