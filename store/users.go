package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"hedgerow/categories"
)

// Roles.
const (
	RoleAdmin  = "admin"  // IT staff: lists, policies, clients, users
	RoleDSL    = "dsl"    // designated safeguarding lead: incidents with names
	RoleViewer = "viewer" // dashboards and pseudonymised incidents
)

// Password length limits. bcrypt ignores every byte past the 72nd, so a
// longer password would silently be only as strong as its first 72 bytes;
// it is refused instead.
const (
	MinPasswordChars = 10
	MaxPasswordBytes = 72
)

// ErrUserExists is returned when adding a user whose name is taken.
var ErrUserExists = errors.New("user already exists")

// ErrNoUser is returned when the named user does not exist.
var ErrNoUser = errors.New("no such user")

// dummyHash is a bcrypt hash of a random, forgotten password at
// bcrypt.DefaultCost. CheckPassword compares against it when it is given no
// hash, so a login for an unknown name costs as long as one for a known name
// and does not reveal which names exist.
const dummyHash = "$2a$10$CZxbtbqPVQ4wk.k2TdaO5.gYPm7XQSb55EgmtoNni0CN8gKx8kVnm"

// User is an account: staff who use the admin UI, and pupils or staff who
// log in to the proxy.
type User struct {
	Name     string    `json:"name"`            // login name, lower-cased, 1-64 chars of [a-z0-9._@-]
	Roles    []string  `json:"roles,omitempty"` // none for proxy-only accounts
	Group    string    `json:"group,omitempty"` // policy group for proxy logins ("" → the device's group)
	Hash     []byte    `json:"hash"`
	Created  time.Time `json:"created"`
	Changed  time.Time `json:"changed"` // password last set
	Disabled bool      `json:"disabled,omitempty"`
}

// Account is a user as the web UI, the API and `users list` show it:
// everything but the password hash.
type Account struct {
	Name     string    `json:"name"`
	Roles    []string  `json:"roles"`
	Group    string    `json:"group"`
	Created  time.Time `json:"created"`
	Changed  time.Time `json:"password_changed"`
	Disabled bool      `json:"disabled"`
}

// Account returns u without its hash. Its roles are a copy, never nil, so
// that JSON shows a user with none as [] rather than null.
func (u User) Account() Account {
	return Account{Name: u.Name, Roles: append([]string{}, u.Roles...), Group: u.Group, Created: u.Created, Changed: u.Changed, Disabled: u.Disabled}
}

// userView is what the audit trail keeps of a user: everything but the
// hash, which must never leave the users bucket.
type userView struct {
	Name     string    `json:"name"`
	Roles    []string  `json:"roles,omitempty"`
	Group    string    `json:"group,omitempty"`
	Created  time.Time `json:"created"`
	Changed  time.Time `json:"changed"`
	Disabled bool      `json:"disabled,omitempty"`
}

func viewOf(u User) userView {
	return userView{Name: u.Name, Roles: u.Roles, Group: u.Group, Created: u.Created, Changed: u.Changed, Disabled: u.Disabled}
}

// ValidUserName checks a login name: 1 to 64 characters of letters, digits,
// '.', '_', '@' and '-'. Names are matched without regard to case and stored
// lower-cased, so "Alice" is valid and names the user "alice".
func ValidUserName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("user name %q: want 1 to 64 characters", name)
	}
	// Checked byte by byte before lower-casing: strings.ToLower maps some
	// non-ASCII letters (the Kelvin sign, for one) onto ASCII ones, which
	// would let two different spellings name one account.
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && !strings.ContainsRune("._@-", rune(c)) {
			return fmt.Errorf("user name %q: use letters, digits, '.', '_', '@' and '-'", name)
		}
	}
	return nil
}

// userKey validates a name and returns its stored form.
func userKey(name string) (string, error) {
	if err := ValidUserName(name); err != nil {
		return "", err
	}
	return strings.ToLower(name), nil
}

// ValidPassword checks a new password's length: at least MinPasswordChars
// characters and at most MaxPasswordBytes bytes. Callers that ask for a
// password twice can check it before asking the second time.
func ValidPassword(password string) error {
	if n := utf8.RuneCountInString(password); n < MinPasswordChars {
		return fmt.Errorf("password is %d characters: want at least %d", n, MinPasswordChars)
	}
	if len(password) > MaxPasswordBytes {
		return fmt.Errorf("password is %d bytes: want at most %d (bcrypt ignores the rest)", len(password), MaxPasswordBytes)
	}
	return nil
}

func hashPassword(password string) ([]byte, error) {
	if err := ValidPassword(password); err != nil {
		return nil, err
	}
	return bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
}

// normaliseRoles checks roles and returns them sorted without repeats, so
// the same set of roles is always stored the same way.
func normaliseRoles(roles []string) ([]string, error) {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		switch r {
		case RoleAdmin, RoleDSL, RoleViewer:
			out = append(out, r)
		default:
			return nil, fmt.Errorf("role %q: want %s, %s or %s", r, RoleAdmin, RoleDSL, RoleViewer)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// checkUserGroup refuses a group the stored policy does not have. "school"
// holds the school-wide overrides and is not a group anyone can be in.
func checkUserGroup(tx *bolt.Tx, group string) error {
	if group == "" {
		return nil
	}
	p, err := readPolicy(tx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(p.Groups))
	for _, g := range p.Groups {
		if g.Name == group {
			return nil
		}
		names = append(names, g.Name)
	}
	if group == categories.SchoolGroup {
		return fmt.Errorf("group %q holds the school-wide overrides; pick an age group (%s)", group, strings.Join(names, ", "))
	}
	return fmt.Errorf("unknown group %q (groups: %s)", group, strings.Join(names, ", "))
}

func requireUserReason(action, name, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("%s %s: a reason is required (schools must record why accounts change)", action, name)
	}
	return nil
}

func getUser(tx *bolt.Tx, key string) (User, error) {
	var u User
	raw := tx.Bucket(bUsers).Get([]byte(key))
	if raw == nil {
		return u, fmt.Errorf("user %q: %w", key, ErrNoUser)
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, fmt.Errorf("user %q: damaged record: %w", key, err)
	}
	return u, nil
}

func putUser(tx *bolt.Tx, u User) error {
	raw, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("user %q: %w", u.Name, err)
	}
	return tx.Bucket(bUsers).Put([]byte(u.Name), raw)
}

// AddUser creates an account with the given password. Roles must be known
// and a non-empty Group must exist in the stored policy; Hash, Created and
// Changed are set here. The audit record never holds the password or hash.
func (s *Store) AddUser(actor, reason string, u User, password string) error {
	key, err := userKey(u.Name)
	if err != nil {
		return fmt.Errorf("add user: %w", err)
	}
	if err := requireUserReason("add user", key, reason); err != nil {
		return err
	}
	roles, err := normaliseRoles(u.Roles)
	if err != nil {
		return fmt.Errorf("add user %s: %w", key, err)
	}
	// Hashed before the transaction: bcrypt takes tens of milliseconds, too
	// long to hold the write lock that serve's incident writer also needs.
	hash, err := hashPassword(password)
	if err != nil {
		return fmt.Errorf("add user %s: %w", key, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bUsers).Get([]byte(key)) != nil {
			return fmt.Errorf("add user %s: %w", key, ErrUserExists)
		}
		if err := checkUserGroup(tx, u.Group); err != nil {
			return fmt.Errorf("add user %s: %w", key, err)
		}
		now := s.now().UTC()
		nu := User{Name: key, Roles: roles, Group: u.Group, Hash: hash, Created: now, Changed: now, Disabled: u.Disabled}
		if err := putUser(tx, nu); err != nil {
			return err
		}
		return s.audit(tx, actor, "users-add", "user "+key, nil, viewOf(nu), reason)
	})
}

// SetPassword replaces a user's password.
func (s *Store) SetPassword(actor, reason, name, password string) error {
	key, err := userKey(name)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if err := requireUserReason("set password of", key, reason); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", key, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		u, err := getUser(tx, key)
		if err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		before := viewOf(u)
		u.Hash, u.Changed = hash, s.now().UTC()
		if err := putUser(tx, u); err != nil {
			return err
		}
		return s.audit(tx, actor, "users-passwd", "user "+key, before, viewOf(u), reason)
	})
}

// UpdateUser changes a user's roles, group or disabled flag through apply,
// in one transaction with an audit record of before and after. The name,
// hash and times cannot be changed here (SetPassword sets a password); an
// error from apply, or a result that does not validate, changes nothing.
func (s *Store) UpdateUser(actor, reason, name string, apply func(u *User) error) error {
	key, err := userKey(name)
	if err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	if err := requireUserReason("update user", key, reason); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		old, err := getUser(tx, key)
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		u := old
		u.Roles, u.Hash = slices.Clone(old.Roles), slices.Clone(old.Hash) // apply must not reach the original
		if err := apply(&u); err != nil {
			return fmt.Errorf("update user %s: %w", key, err)
		}
		if u.Name != old.Name || string(u.Hash) != string(old.Hash) || !u.Created.Equal(old.Created) || !u.Changed.Equal(old.Changed) {
			return fmt.Errorf("update user %s: the name, password and times cannot be changed this way", key)
		}
		if u.Roles, err = normaliseRoles(u.Roles); err != nil {
			return fmt.Errorf("update user %s: %w", key, err)
		}
		if u.Group != old.Group {
			if err := checkUserGroup(tx, u.Group); err != nil {
				return fmt.Errorf("update user %s: %w", key, err)
			}
		}
		if err := putUser(tx, u); err != nil {
			return err
		}
		return s.audit(tx, actor, updateAction(old, u), "user "+key, viewOf(old), viewOf(u), reason)
	})
}

// updateAction names a user change in the audit trail, so a listing that
// shows no before and after still tells a disabled account from an edit.
func updateAction(old, u User) string {
	if slices.Equal(old.Roles, u.Roles) && old.Group == u.Group && old.Disabled != u.Disabled {
		if u.Disabled {
			return "users-disable"
		}
		return "users-enable"
	}
	return "users-update"
}

// RemoveUser deletes an account.
func (s *Store) RemoveUser(actor, reason, name string) error {
	key, err := userKey(name)
	if err != nil {
		return fmt.Errorf("remove user: %w", err)
	}
	if err := requireUserReason("remove user", key, reason); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		u, err := getUser(tx, key)
		if err != nil {
			return fmt.Errorf("remove user: %w", err)
		}
		if err := tx.Bucket(bUsers).Delete([]byte(key)); err != nil {
			return err
		}
		return s.audit(tx, actor, "users-remove", "user "+key, viewOf(u), nil, reason)
	})
}

// Users returns every account, sorted by name.
func (s *Store) Users() ([]User, error) {
	var out []User
	err := s.db.View(func(tx *bolt.Tx) error {
		// Keys are lower-case ASCII, so bbolt's byte order is name order.
		return tx.Bucket(bUsers).ForEach(func(k, v []byte) error {
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("user %q: damaged record: %w", k, err)
			}
			out = append(out, u)
			return nil
		})
	})
	return out, err
}

// User returns one account; ErrNoUser when there is none by that name.
func (s *Store) User(name string) (User, error) {
	key, err := userKey(name)
	if err != nil {
		return User{}, err
	}
	var u User
	err = s.db.View(func(tx *bolt.Tx) error {
		var gerr error
		u, gerr = getUser(tx, key)
		return gerr
	})
	return u, err
}

// CheckPassword reports whether password is the user's and the account is
// enabled. The comparison is bcrypt's, whose time does not depend on how
// much of the password is right; a user without a hash (pass User{} for a
// name that does not exist) costs the same bcrypt run and is refused.
func CheckPassword(u User, password string) bool {
	if len(password) > MaxPasswordBytes {
		return false // bcrypt would compare only the first 72 bytes
	}
	hash := u.Hash
	if len(hash) == 0 {
		hash = []byte(dummyHash)
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	return ok && len(u.Hash) > 0 && !u.Disabled
}
