package patterns

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// MultiLock is a set of locks obtained together by ObtainMulti. Its methods
// are safe for concurrent use and on a nil *MultiLock (they return
// ErrNotHeld).
type MultiLock struct {
	c      *Client
	names  []string
	token  string
	opt    *LockOptions
	groups []lockGroup // in acquisition order
	// granted is when the successful attempt's first grant was sent: the
	// leases of all the locks run from there.
	granted time.Time
}

// lockGroup is the keys of one slot (one shard on a Ring, everything on a
// single server): one script call serves them.
type lockGroup struct {
	names   []string
	keys    []string // the lock keys, then their fencing counters
	marked  []string // keys, then the locks' waiters markers (for a caller that waits)
	release []string // the lock keys, their waiters markers, their signal lists
}

// ObtainMulti takes the locks named keys for ttl, all or none. The locks are
// the ones Obtain takes: ObtainMulti([a, b]) and Obtain(a) exclude each
// other. Repeated names count once.
//
// On a single server, and on a cluster when every key hashes to one slot, it
// is one script call per attempt, atomic. On a cluster across slots (or a
// Ring across shards) the keys are taken slot by slot, each slot's keys in
// one call, in a fixed order (by slot, then by name); when a slot's keys are
// held by somebody the slots already taken are released before the retry
// strategy's next attempt (unless ctx has ended: they go at their TTL then),
// so two callers never both hold part of the set and wait for each other.
// Between the first slot's grant and the rollback, another caller may find a
// key held that ends up free.
//
// Between attempts it waits as Obtain does: the attempt that finds a lock
// held marks it as waited for, in the same script call, and the caller
// waits for that lock's release to wake it, for at most the retry
// strategy's backoff (see LockOptions.WakeBlock; -1 sleeps the backoff).
//
// It returns ErrNotObtained when a key stays held for as long as the retry
// strategy and ctx allow, and ErrInvalidArgument for an empty list, an empty
// or too long name, a ttl under a millisecond or a WakeBlock under -1
// (nothing is written then).
// opt.Replicas applies to every call.
func (c *Client) ObtainMulti(ctx context.Context, keys []string, ttl time.Duration, opt *LockOptions) (m *MultiLock, err error) {
	ctx, done := c.observe(ctx, PatternLock, OpObtainMulti, "")
	defer func() { done.end(outcome(OutcomeObtained, err), err) }()
	if len(keys) == 0 {
		return nil, invalidf("empty lock key list")
	}
	for _, k := range keys {
		if err := checkID("lock key", k); err != nil {
			return nil, err
		}
	}
	if err := checkTTL("lock ttl", ttl); err != nil {
		return nil, err
	}
	if opt != nil && opt.Replicas < 0 {
		return nil, invalidf("negative Replicas %d", opt.Replicas)
	}
	if opt != nil && opt.WakeBlock < -1 {
		return nil, invalidf("WakeBlock %v: want -1, 0 or more", opt.WakeBlock)
	}
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	m = &MultiLock{c: c, token: token, opt: opt, groups: c.lockGroups(keys)}
	for _, g := range m.groups {
		m.names = append(m.names, g.names...)
	}
	retry := opt.retryStrategy()
	block := opt.wakeBlock(c)
	maxAttempts := math.MaxInt
	if opt == nil || opt.RetryStrategy == nil {
		maxAttempts = 1 // NoRetry: nobody will wait
	}
	var backoff time.Duration
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for attempt := 1; ; attempt++ {
		// As Obtain: a caller that will wait for a release signal has the
		// lock found held marked as waited for (see Client.obtain).
		var mark int64
		if block > 0 && attempt < maxAttempts {
			mark = max(lockWakeMark, 2*backoff+lockWakeMarkSlack).Milliseconds()
		}
		sent := time.Now()
		held, signal, err := m.obtainOnce(ctx, ttl, mark)
		if err != nil {
			if cerr := ctxEnded(ctx, err); attempt > 1 && cerr != nil {
				return nil, fmt.Errorf("%w: %q: %w", ErrNotObtained, m.names, cerr)
			}
			return nil, err
		}
		if held {
			m.granted = sent
			return m, nil
		}
		if backoff = retry.NextBackoff(attempt); backoff <= 0 {
			return nil, ErrNotObtained
		}
		err = c.waitBackoff(ctx, &timer, backoff, signal, block)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrNotObtained, m.names, err)
		}
	}
}

// WithMultiLock obtains the locks named keys for ttl (as ObtainMulti), runs
// fn while holding them and releases them. A watchdog refreshes every lock
// every ttl/3 while fn runs, as WithLock does: the lease runs from when the
// successful attempt was sent, and when a lock is lost fn's context is
// cancelled with cause ErrNotHeld and WithMultiLock returns an error
// matching ErrNotHeld along with fn's error. ObtainMulti's errors are
// returned as they are, and fn is not called. A panic in fn releases the
// locks and goes on up the caller's stack.
func (c *Client) WithMultiLock(ctx context.Context, keys []string, ttl time.Duration, opt *LockOptions, fn func(ctx context.Context) error) error {
	if fn == nil {
		return c.observeFailed(ctx, PatternLock, OpObtainMulti, "", invalidf("nil function"))
	}
	m, err := c.ObtainMulti(ctx, keys, ttl, opt)
	if err != nil {
		return err
	}
	ls := &lease{granted: m.granted, ttl: ttl, release: m.Release,
		refresh: func(ctx context.Context) error { return m.Refresh(ctx, ttl) },
		c:       c, obs: obsTag{pattern: PatternLock}}
	return holdResult(ls.hold(ctx, fn))
}

// obtainOnce makes one attempt at every group, in order, and rolls back the
// groups taken when one is held or fails. With mark > 0 the lock found held
// is marked as waited for, for mark milliseconds, and signal is its signal
// list.
func (m *MultiLock) obtainOnce(ctx context.Context, ttl time.Duration, mark int64) (ok bool, signal string, err error) {
	for i, g := range m.groups {
		var n, at, acked int64
		var cmd *redis.Cmd
		if mark > 0 {
			cmd, acked, err = m.c.runLockCmd(ctx, m.opt, scriptLockObtain, g.marked, m.token, ttl.Milliseconds(), fenceTTLArg, mark)
		} else {
			cmd, acked, err = m.c.runLockCmd(ctx, m.opt, scriptLockObtain, g.keys, m.token, ttl.Milliseconds(), fenceTTLArg)
		}
		if err == nil {
			n, at, err = obtainReply(cmd)
		}
		if err == nil && n > 0 {
			if want, _ := m.opt.replicas(); acked < int64(want) {
				err = fmt.Errorf("%w: %d of %d replicas acknowledged", ErrNotReplicated, acked, want)
			}
		}
		if err != nil || n <= 0 {
			// A lost reply may hide a grant: group i is released too (the
			// release is owner-checked). When ctx has ended the rollback is
			// not attempted, as Obtain does not release a grant whose
			// reply was lost: those locks go at their TTL.
			if ctx.Err() == nil {
				_, _ = m.releaseGroups(ctx, m.groups[:i+1])
			}
			if err != nil {
				return false, "", fmt.Errorf("patterns: obtain locks %q: %w", m.names, err)
			}
			if mark > 0 && at >= 1 && int(at) <= len(g.names) {
				signal = g.release[2*len(g.names)+int(at)-1]
			}
			return false, signal, nil
		}
	}
	return true, "", nil
}

// obtainReply reads lock_obtain's reply: n is the fencing token (> 0) or the
// negated TTL of the lock found held, at that lock's position in KEYS
// (1-based; the reply names it when the call had several locks).
func obtainReply(cmd *redis.Cmd) (n, at int64, err error) {
	v, err := cmd.Result()
	if err != nil {
		return 0, 0, err
	}
	switch v := v.(type) {
	case int64:
		if v > 0 {
			return v, 0, nil
		}
		return v, 1, nil
	case []any:
		if len(v) == 2 {
			n, ok1 := v[0].(int64)
			at, ok2 := v[1].(int64)
			if ok1 && ok2 {
				return n, at, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("unexpected lock_obtain reply %v", v)
}

// releaseGroups releases groups, on a context of its own when ctx is done,
// and returns how many locks were deleted and the first error.
func (m *MultiLock) releaseGroups(ctx context.Context, groups []lockGroup) (int64, error) {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), m.c.releaseTimeout)
		defer cancel()
	}
	var deleted int64
	var first error
	for _, g := range groups {
		// Releasing wakes the callers of Obtain and ObtainMulti waiting for
		// one of the locks.
		n, err := scriptLockRelease.run(ctx, m.c.scr, g.release, m.token, lockSignalTTLArg).Int64()
		if err != nil && first == nil {
			first = err
		}
		deleted += n
	}
	return deleted, first
}

// lockGroups dedupes names and groups their keys by the call that can take
// them together, in acquisition order: by slot on a cluster, by hash tag on a
// Ring, all in one otherwise; names sorted within each.
func (c *Client) lockGroups(names []string) []lockGroup {
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	var by func(key string) int
	switch c.rdb.(type) {
	case *redis.ClusterClient:
		by = clusterSlot
	case *redis.Ring:
		by = nil // one group per name: a Ring shards by hash tag
	default:
		by = func(string) int { return 0 }
	}
	type keyed struct {
		slot int
		name string
		key  string
	}
	all := make([]keyed, len(names))
	for i, n := range names {
		k := c.key("lock", n)
		slot := i
		if by != nil {
			slot = by(k)
		}
		all[i] = keyed{slot, n, k}
	}
	slices.SortStableFunc(all, func(a, b keyed) int { return a.slot - b.slot })
	var groups []lockGroup
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].slot == all[i].slot {
			j++
		}
		g := lockGroup{marked: make([]string, 0, 3*(j-i))}
		for _, x := range all[i:j] {
			g.names = append(g.names, x.name)
			g.marked = append(g.marked, x.key)
		}
		for _, x := range all[i:j] {
			g.marked = append(g.marked, x.key+":fence")
		}
		for _, x := range all[i:j] {
			g.marked = append(g.marked, x.key+":wake:waiting")
		}
		g.keys = g.marked[: 2*len(g.names) : 2*len(g.names)]
		g.release = append(g.release, g.keys[:len(g.names)]...)
		g.release = append(g.release, g.marked[2*len(g.names):]...)
		for _, x := range all[i:j] {
			g.release = append(g.release, x.key+":wake")
		}
		groups = append(groups, g)
		i = j
	}
	return groups
}

// clusterSlot returns the Redis Cluster slot of key: CRC16-XMODEM of its hash
// tag (the part between the first '{' and the next '}', when not empty, else
// the whole key), modulo 16384.
func clusterSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % 16384)
}

// Keys returns the names the locks were obtained with, deduplicated, in
// acquisition order.
func (m *MultiLock) Keys() []string {
	if m == nil {
		return nil
	}
	return slices.Clone(m.names)
}

// Token returns the random token that proves ownership of the locks.
func (m *MultiLock) Token() string {
	if m == nil {
		return ""
	}
	return m.token
}

// Release deletes every lock the caller still owns and wakes the callers of
// Obtain and ObtainMulti waiting for one of them. It returns ErrNotHeld when some were not
// held any more (the others are deleted all the same).
// Like Lock.Release it reaches Redis even when ctx is already done.
func (m *MultiLock) Release(ctx context.Context) (err error) {
	if m == nil {
		return ErrNotHeld
	}
	if m.c.observer != nil {
		var done obsEnd
		ctx, done = m.c.observeOp(ctx, ObserveOp{Pattern: PatternLock, Operation: OpReleaseMulti, Held: time.Since(m.granted)})
		defer func() { done.end(outcome(OutcomeReleased, err), err) }()
	}
	n, err := m.releaseGroups(ctx, m.groups)
	if err != nil {
		return fmt.Errorf("patterns: release locks %q: %w", m.names, err)
	}
	if n != int64(len(m.names)) {
		return ErrNotHeld
	}
	return nil
}

// Refresh extends every lock to ttl from now. It returns ErrNotHeld when one
// of them is no longer held; the locks of other slots may have been extended
// then.
func (m *MultiLock) Refresh(ctx context.Context, ttl time.Duration) (err error) {
	if m == nil {
		return ErrNotHeld
	}
	ctx, done := m.c.observe(ctx, PatternLock, OpRefreshMulti, "")
	defer func() { done.end(lostOutcome(err), err) }()
	if err := checkTTL("lock ttl", ttl); err != nil {
		return err
	}
	_, err = m.touch(ctx, ttl)
	return err
}

// TTL returns the shortest time any of the locks has left. May return
// ErrNotHeld.
func (m *MultiLock) TTL(ctx context.Context) (_ time.Duration, err error) {
	if m == nil {
		return 0, ErrNotHeld
	}
	ctx, done := m.c.observe(ctx, PatternLock, OpTTLMulti, "")
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	return m.touch(ctx, 0)
}

func (m *MultiLock) touch(ctx context.Context, ttl time.Duration) (time.Duration, error) {
	if m == nil {
		return 0, ErrNotHeld
	}
	var opt *LockOptions
	if ttl > 0 {
		opt = m.opt
	}
	least := time.Duration(-1)
	var lost error
	for _, g := range m.groups {
		n, acked, err := m.c.runLock(ctx, opt, scriptLockTouch, g.keys[:len(g.names)], m.token, ttl.Milliseconds())
		if err != nil {
			return 0, fmt.Errorf("patterns: locks %q: %w", m.names, err)
		}
		if n < 0 {
			lost = ErrNotHeld
			continue
		}
		if want, _ := opt.replicas(); acked < int64(want) && lost == nil {
			lost = fmt.Errorf("%w: %d of %d replicas acknowledged", ErrNotReplicated, acked, want)
		}
		if d := time.Duration(n) * time.Millisecond; least < 0 || d < least {
			least = d
		}
	}
	if lost != nil {
		if errors.Is(lost, ErrNotHeld) {
			return 0, ErrNotHeld
		}
		return 0, lost
	}
	return least, nil
}
