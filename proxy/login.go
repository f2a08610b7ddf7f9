package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// loginTTL is how long a checked login is trusted without checking it
// again: password hashing is deliberately slow, and a browser sends the
// login with every request. A changed or disabled account takes effect
// within this time.
const loginTTL = time.Minute

// loginCache remembers recent good logins by a hash of user and password,
// and bounds how many slow checks run at once, so a flood of wrong
// passwords cannot take the proxy's CPU.
type loginCache struct {
	auth  Authenticator
	good  *expirable.LRU[[32]byte, string]
	slots chan struct{}
}

func newLoginCache(auth Authenticator) *loginCache {
	return &loginCache{auth: auth, good: expirable.NewLRU[[32]byte, string](10_000, nil, loginTTL), slots: make(chan struct{}, 4)}
}

// errNoAccounts: a group requires logins but no accounts are configured.
var errNoAccounts = errors.New("proxy logins are not configured")

func (c *loginCache) check(ctx context.Context, user, pass string) (group string, err error) {
	if c.auth == nil {
		return "", errNoAccounts
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	if g, ok := c.good.Get(key); ok {
		return g, nil
	}
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	group, err = c.auth.Authenticate(ctx, user, pass)
	if err == nil {
		c.good.Add(key, group)
	}
	return group, err
}
