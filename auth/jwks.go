package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// errKeysNotLoaded is the cause of a refusal while the JWKS URL's keys have
// never been fetched.
var errKeysNotLoaded = errors.New("the JWKS has not been loaded yet")

// Backoff of the retries of a JWKS that could not be loaded at start.
const (
	jwksRetryFirst = time.Second
	jwksRetryMax   = 30 * time.Second
)

// urlKeys are the keys of a JWKS URL. Until a first fetch has succeeded
// (with at least one usable key) it refuses every token whose key is not in
// the given keys (of a JWKS file), reports not ready, and retries in the
// background with backoff; from then on keyfunc refreshes the set hourly
// and on unknown kids.
type urlKeys struct {
	url      string
	override keyfunc.Override
	given    jwt.Keyfunc // the JWKS file's keys, or nil
	logger   *slog.Logger

	givenKeys int // how many keys given holds

	loaded atomic.Pointer[loadedKeys]
	// onDemand limits the loads a token triggers before the first success.
	onDemand *rate.Limiter
	loadMu   sync.Mutex // one load at a time
	mu       sync.Mutex
	last     error // why the last attempt failed
}

type loadedKeys struct {
	k      keyfunc.Keyfunc
	cancel context.CancelFunc
}

// load makes one attempt to fetch the set, unless it is loaded already; on
// success the keys serve from then on.
func (u *urlKeys) load(ctx context.Context) error {
	u.loadMu.Lock()
	defer u.loadMu.Unlock()
	if u.loaded.Load() != nil {
		return nil
	}
	givenKeys := u.givenKeys
	attempt, cancel := context.WithCancel(ctx)
	o := u.override
	no := false
	o.NoErrorReturnFirstHTTPReq = &no
	k, err := keyfunc.NewDefaultOverrideCtx(attempt, []string{u.url}, o)
	if err == nil {
		var all []jwkset.JWK
		if all, err = k.Storage().KeyReadAll(attempt); err == nil && len(all) <= givenKeys {
			err = errors.New("the key set holds no usable signing key")
		}
		if err == nil {
			u.loaded.Store(&loadedKeys{k: k, cancel: cancel})
			u.logger.Info("auth: fetched JWKS", "url", u.url, "keys", len(all)-givenKeys)
			return nil
		}
	}
	cancel()
	u.mu.Lock()
	u.last = err
	u.mu.Unlock()
	return err
}

// retry loads the set with backoff until it succeeds or ctx is done.
func (u *urlKeys) retry(ctx context.Context) {
	wait := jwksRetryFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		err := u.load(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		wait = min(2*wait, jwksRetryMax)
		u.logger.Warn("auth: the JWKS is still not loaded; every token it signs is refused and /readyz answers 503",
			"url", u.url, "err", err, "next_attempt_in", wait.String())
	}
}

// keyfunc finds a token's key: from the fetched set once there is one,
// before that from the given keys, else after a load the token triggers
// (at most one a minute, besides the background retries).
func (u *urlKeys) keyfunc(ctx context.Context) jwt.Keyfunc {
	if l := u.loaded.Load(); l != nil {
		return l.k.KeyfuncCtx(ctx)
	}
	return func(t *jwt.Token) (any, error) {
		if u.given != nil {
			if key, err := u.given(t); err == nil {
				return key, nil
			}
		}
		if u.onDemand.Allow() && u.load(ctx) == nil {
			return u.loaded.Load().k.KeyfuncCtx(ctx)(t)
		}
		return nil, fmt.Errorf("%w from %s", errKeysNotLoaded, u.url)
	}
}

// ready reports nil once the set has been loaded, else why not.
func (u *urlKeys) ready() error {
	if u.loaded.Load() != nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last != nil {
		return fmt.Errorf("the JWKS at %s is not loaded: %w", u.url, u.last)
	}
	return fmt.Errorf("the JWKS at %s is not loaded yet", u.url)
}

// close stops the refresh of the loaded set.
func (u *urlKeys) close() {
	if l := u.loaded.Load(); l != nil {
		l.cancel()
	}
}
