package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	presence "github.com/presenced/presenced"
	"github.com/redis/rueidis"
)

// ErrClosed is returned by every method of a closed Store.
var ErrClosed = errors.New("redisstore: closed")

// ErrNotConnected is the cause of the errors returned while the store has
// not reached Redis yet (it keeps trying in the background).
var ErrNotConnected = errors.New("redisstore: not connected to redis yet")

// ErrContention is the cause of the error returned when an Update lost its
// compare-and-set to other writers until its time ran out.
var ErrContention = errors.New("redisstore: too much contention on one user")

// wrap turns an error of a call to Redis made under ctx (the caller's
// context, before any deadline of the store's own) into what the store
// returns: the caller's context error when it ended, else an error that
// matches presence.ErrUnavailable for every failure that may pass (network,
// timeouts, LOADING, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, READONLY, BUSY,
// MISCONF, OOM), else the error itself.
func wrap(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrClosed) {
		return err
	}
	if errors.Is(err, presence.ErrUnavailable) {
		return fmt.Errorf("redisstore: %s: %w", what, err) // already says so
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("redisstore: %s: %w", what, cerr)
	}
	if re, ok := rueidis.IsRedisErr(err); ok && !transient(re) {
		return fmt.Errorf("redisstore: %s: %w", what, err)
	}
	return presence.Unavailable(fmt.Errorf("redisstore: %s: %w", what, err))
}

// transient reports whether a Redis error reply means "try later".
func transient(re *rueidis.RedisError) bool {
	if re.IsLoading() || re.IsTryAgain() || re.IsClusterDown() {
		return true
	}
	if movedOrAsk(re) {
		// MOVED or ASK reaching us: a slot moved (failover, resharding)
		// under a dedicated connection, which does not follow redirects.
		return true
	}
	msg := re.Error()
	for _, p := range []string{"MASTERDOWN", "READONLY", "BUSY", "MISCONF", "OOM", "NOREPLICAS", "NOPERM"} {
		if strings.HasPrefix(msg, p) {
			return p != "NOPERM"
		}
	}
	return false
}

// notExecuted reports whether err says the command was refused before it
// ran, for a reason that passes within moments (loading, a slot moving, a
// failover), so the store may send it again: it cannot apply twice.
func notExecuted(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return false
	}
	if re.IsLoading() || re.IsTryAgain() || re.IsClusterDown() || re.IsNoScript() {
		return true
	}
	if movedOrAsk(re) {
		return true // the client refreshes its slot map; the retry goes to the new node
	}
	// MISCONF and OOM are refusals too, but do not pass in milliseconds:
	// they are answered at once.
	msg := re.Error()
	return strings.HasPrefix(msg, "MASTERDOWN") || strings.HasPrefix(msg, "READONLY")
}

func isRedisNil(err error) bool { return rueidis.IsRedisNil(err) }

func movedOrAsk(re *rueidis.RedisError) bool {
	_, moved := re.IsMoved()
	_, ask := re.IsAsk()
	return moved || ask
}
