package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// What the admin UI keeps: API tokens, the policy's edit version, the key
// behind pseudonyms, and decisions on block-page reports.

var (
	bTokens = []byte("tokens") // schema 3

	kPolicyVersion = []byte("policy_version")
	kPseudonymKey  = []byte("pseudonym_key")
)

// addTokensBucket is the migration from schema 2 to 3, which added API
// tokens.
func addTokensBucket(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists(bTokens)
	return err
}

// TokenPrefix starts every API token, so a leaked one is recognisable in
// logs and secret scanners.
const TokenPrefix = "hrt_"

// Token is an API token as stored: never the token itself, only its hash.
type Token struct {
	ID      string    `json:"id"` // first 12 hex digits of the hash: shown in lists, used to revoke
	User    string    `json:"user"`
	Name    string    `json:"name"` // what the script is for
	Created time.Time `json:"created"`
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateToken makes an API token for an existing, enabled user and returns
// it: this is the only time it is seen, since only its hash is kept.
func (s *Store) CreateToken(actor, user, name string) (string, Token, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return "", Token{}, fmt.Errorf("token name %q: want 1 to 100 characters saying what the token is for", name)
	}
	key, err := userKey(user)
	if err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	var secret [24]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Token{}, err
	}
	token := TokenPrefix + hex.EncodeToString(secret[:])
	h := tokenHash(token)
	t := Token{ID: hex.EncodeToString(h[:6]), User: key, Name: name, Created: s.now().UTC()}
	err = s.db.Update(func(tx *bolt.Tx) error {
		u, err := getUser(tx, key)
		if err != nil {
			return err
		}
		if u.Disabled {
			return fmt.Errorf("user %s is disabled", key)
		}
		raw, err := json.Marshal(t)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bTokens).Put(h, raw); err != nil {
			return err
		}
		return s.audit(tx, actor, "tokens-create", "user "+key, nil, t, name)
	})
	if err != nil {
		return "", Token{}, fmt.Errorf("create token for %s: %w", key, err)
	}
	return token, t, nil
}

// ErrBadToken is returned for a token that does not exist or whose user is
// gone or disabled.
var ErrBadToken = errors.New("unknown or revoked API token")

// TokenUser returns the user a token belongs to.
func (s *Store) TokenUser(token string) (User, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return User{}, ErrBadToken
	}
	var u User
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bTokens).Get(tokenHash(token))
		if raw == nil {
			return ErrBadToken
		}
		var t Token
		if err := json.Unmarshal(raw, &t); err != nil {
			return fmt.Errorf("token record damaged: %w", err)
		}
		var err error
		if u, err = getUser(tx, t.User); err != nil || u.Disabled {
			return ErrBadToken
		}
		return nil
	})
	return u, err
}

// Tokens lists the tokens of a user ("" for everyone's), oldest first.
func (s *Store) Tokens(user string) ([]Token, error) {
	var out []Token
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bTokens).ForEach(func(_, v []byte) error {
			var t Token
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("token record damaged: %w", err)
			}
			if user == "" || t.User == user {
				out = append(out, t)
			}
			return nil
		})
	})
	slices.SortFunc(out, func(a, b Token) int { return a.Created.Compare(b.Created) })
	return out, err
}

// RevokeToken deletes a token by its ID. A user may only revoke their own
// unless owner is "" (administrators).
func (s *Store) RevokeToken(actor, owner, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bTokens).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var t Token
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("token record damaged: %w", err)
			}
			if t.ID != id || (owner != "" && t.User != owner) {
				continue
			}
			if err := c.Delete(); err != nil {
				return err
			}
			return s.audit(tx, actor, "tokens-revoke", "user "+t.User, t, nil, "token "+t.Name)
		}
		return fmt.Errorf("revoke token %q: %w", id, ErrBadToken)
	})
}

// ErrConflict is returned when a change was made against a version of the
// policy that someone else has changed since.
var ErrConflict = errors.New("the policy was changed by someone else since you loaded it")

// PolicyVersion is a number that grows with every policy change, so an
// editor can tell whether what they saw is still current.
func (s *Store) PolicyVersion() (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error { v = policyVersion(tx); return nil })
	return v, err
}

// policyVersion is 1 plus the number of changes recorded, never 0, since a
// PolicyChange with Version 0 is one that does not check.
func policyVersion(tx *bolt.Tx) uint64 {
	raw := tx.Bucket(bSettings).Get(kPolicyVersion)
	if len(raw) != 8 {
		return 1
	}
	return binary.BigEndian.Uint64(raw) + 1
}

func bumpPolicyVersion(tx *bolt.Tx) error {
	return tx.Bucket(bSettings).Put(kPolicyVersion, u64(policyVersion(tx)))
}

// PseudonymKey returns the secret behind pseudonyms, creating it on first
// use. Pseudonyms must stay stable across restarts (a viewer follows one
// pupil's incidents over weeks) and unguessable from the address.
func (s *Store) PseudonymKey() ([]byte, error) {
	var key []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		key = slices.Clone(tx.Bucket(bSettings).Get(kPseudonymKey))
		return nil
	})
	if err != nil || len(key) == 32 {
		return key, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if k := tx.Bucket(bSettings).Get(kPseudonymKey); len(k) == 32 {
			key = slices.Clone(k)
			return nil
		}
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		return tx.Bucket(bSettings).Put(kPseudonymKey, key)
	})
	return key, err
}

// Pseudonym turns an identity (an address, device or user name) into a
// stable stand-in such as "pupil-3f9a1c2b".
func Pseudonym(key []byte, identity string) string {
	if identity == "" {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(identity))
	return "pupil-" + hex.EncodeToString(m.Sum(nil)[:4])
}

// Report states after "new".
const (
	ReportApproved = "approved" // an unblock request granted: an allow override was added
	ReportDeclined = "declined"
	ReportDone     = "done" // a concern the DSL has dealt with
)

// ErrNoReport is returned when the report does not exist.
var ErrNoReport = errors.New("no such report")

// Report returns one report.
func (s *Store) Report(id uint64) (Report, error) {
	var r Report
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bReports).Get(u64(id))
		if raw == nil {
			return fmt.Errorf("report %d: %w", id, ErrNoReport)
		}
		return json.Unmarshal(raw, &r)
	})
	return r, err
}

// DecideReport records what was done about a report, with who and why in
// the audit trail. A report that is no longer new cannot be decided again.
func (s *Store) DecideReport(actor string, id uint64, state, note string) error {
	if state != ReportApproved && state != ReportDeclined && state != ReportDone {
		return fmt.Errorf("report state %q: want %s, %s or %s", state, ReportApproved, ReportDeclined, ReportDone)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bReports)
		raw := b.Get(u64(id))
		if raw == nil {
			return fmt.Errorf("report %d: %w", id, ErrNoReport)
		}
		var r Report
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("report %d: damaged record: %w", id, err)
		}
		if r.State != ReportNew {
			return fmt.Errorf("report %d is already %s", id, r.State)
		}
		r.State = state
		out, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(u64(id), out); err != nil {
			return err
		}
		return s.audit(tx, actor, "reports-"+state, fmt.Sprintf("report %d", id), ReportNew, state, note)
	})
}
