package patterns

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoLeader is returned by Leader when no candidate leads.
var ErrNoLeader = errors.New("patterns: no leader")

// tokenLen is the length of newToken's tokens. A leader's lock holds its
// token followed by the identity it campaigned with.
const tokenLen = 22

// Elect campaigns for the leadership called name and runs fn while this
// candidate leads, for cron-style singletons across a fleet. Leadership is a
// lock (prefix:elect:{name}) held for ttl and refreshed every ttl/3 while fn
// runs, as WithLock does (the lease runs from the grant that won, however
// long the campaign took); identity is what Leader reports while it leads.
//
// A candidate that does not lead tries again every ttl/4, so when a leader
// dies another candidate leads within about 1.25 ttl. When leadership is
// lost (a refresh finds the lock taken, or no refresh succeeded in time),
// fn's context is cancelled with cause ErrNotHeld and, once fn has returned,
// Elect campaigns again.
//
// fn runs on the caller's goroutine. When fn returns while still leading,
// Elect resigns (releases the lock) and returns fn's error, nil included.
// When ctx ends, Elect resigns and returns an error matching ctx's error. A
// panic in fn resigns and goes on up the caller's stack. ErrInvalidArgument
// for an empty or too long name or identity, a ttl under 4 milliseconds or a
// nil fn.
func (c *Client) Elect(ctx context.Context, name, identity string, ttl time.Duration, fn func(ctx context.Context) error) (err error) {
	ctx, done := c.observe(ctx, PatternElect, OpElect, name)
	defer func() { done.end(outcome(OutcomeResigned, err), err) }()
	if err := checkID("election name", name); err != nil {
		return err
	}
	if err := checkID("leader identity", identity); err != nil {
		return err
	}
	if ttl < 4*time.Millisecond {
		return invalidf("election ttl %v: want at least 4ms", ttl)
	}
	if fn == nil {
		return invalidf("nil function")
	}
	key := c.key("elect", name)
	campaign := &LockOptions{RetryStrategy: LinearBackoff(ttl / 4)}
	pause := time.Duration(0) // after an error: 10ms, doubling up to ttl/4
	for {
		token, err := newToken()
		if err != nil {
			return err
		}
		l, err := c.obtain(ctx, c.newLockAt(name, key, key+":fence", token+identity, ttl, nil), campaign)
		if err != nil {
			if cerr := ctxEnded(ctx, err); cerr != nil {
				return fmt.Errorf("patterns: elect %q: %w", name, cerr)
			}
			// A failed attempt (Redis unreachable): campaign again, soon.
			pause = min(max(2*pause, 10*time.Millisecond), ttl/4)
			if !sleepCtx(ctx, pause) {
				return fmt.Errorf("patterns: elect %q: %w", name, context.Cause(ctx))
			}
			continue
		}
		pause = 0
		ferr, lost, _ := l.lease().hold(ctx, fn)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("patterns: elect %q: %w", name, context.Cause(ctx))
		case lost == nil:
			return ferr
		}
	}
}

// sleepCtx sleeps d, or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Leader returns the identity of the candidate that leads the election
// called name, or ErrNoLeader when none does.
func (c *Client) Leader(ctx context.Context, name string) (leader string, err error) {
	ctx, done := c.observe(ctx, PatternElect, OpLeader, name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkID("election name", name); err != nil {
		return "", err
	}
	v, err := c.rdb.Get(ctx, c.key("elect", name)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNoLeader
	}
	if err != nil {
		return "", fmt.Errorf("patterns: leader of %q: %w", name, err)
	}
	if len(v) <= tokenLen {
		return "", fmt.Errorf("%w: leader of %q: %q", ErrUnexpectedReply, name, v)
	}
	return v[tokenLen:], nil
}
