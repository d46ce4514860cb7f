package patterns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// This file holds the Limiter's in-process layer (LimiterOptions.
// FallbackInstances and DenyLocally): a bounded map of keys to what this
// process knows of them. The decisions stay Redis's; the layer answers
// alone only while Redis cannot be reached (the fallback) and while a key
// that Redis denied cannot be admitted yet (the local deny).
//
// The fallback's limiter is written here rather than taken from
// golang.org/x/time/rate: a decision checks several limits all or nothing
// (x/time/rate checks one; a reservation cancelled on another limit's
// refusal gives its tokens back only approximately), it starts from what
// Redis last reported for the key, and the hand-back needs what each limit
// still holds of the events admitted locally. A GCRA per limit, in integer
// nanoseconds, is a few lines.

// Defaults of the in-process layer.
const (
	defaultFallbackProbe = 100 * time.Millisecond
	defaultLocalKeys     = 10000
)

func (o *LimiterOptions) fallbackInstances() int {
	if o == nil {
		return 0
	}
	return o.FallbackInstances
}

func (o *LimiterOptions) fallbackProbeInterval() time.Duration {
	if o == nil || o.FallbackProbeInterval == 0 {
		return defaultFallbackProbe
	}
	return o.FallbackProbeInterval
}

func (o *LimiterOptions) denyLocally() bool { return o != nil && o.DenyLocally }

func (o *LimiterOptions) localKeys() int {
	if o == nil || o.LocalKeys == 0 {
		return defaultLocalKeys
	}
	return o.LocalKeys
}

// limiterLocal is a Limiter's in-process layer; nil when neither the
// fallback nor the local deny is on.
type limiterLocal struct {
	instances int           // the fallback's share is 1/instances of each limit; 0: no fallback
	probe     time.Duration // during an outage, how often one call tries Redis
	deny      bool          // DenyLocally
	keys      *otter.Cache[string, *localKey]
	base      time.Time // the monotonic clock's origin: now() is time since base

	down      atomic.Bool  // Redis is unreachable: decide locally
	nextProbe atomic.Int64 // now() from which one call tries Redis again
	lastOK    atomic.Int64 // now() when Redis last answered (to the ms)
}

// localKey is what the layer knows of one key (and its limits).
type localKey struct {
	mu sync.Mutex

	// The local deny. regime: Redis denied the key and has not since
	// admitted it with room to spare; until: Redis's RetryAfter ran out
	// (now() ns); deniedN: the request it denied; res: its result.
	regime  bool
	at      int64 // when Redis denied it
	until   int64
	full    int64 // when the key is full again, by Redis's last answer
	deniedN int
	res     LimitResult
	probing bool // one call is at Redis for the key since until passed
	handing bool // one call is handing the key back to Redis

	// The fallback's seed: the last decision Redis made for the key.
	seenAt        int64
	seenRemaining int
	seenLimit     Limit
	seen          bool

	// The fallback's limiter, one GCRA per limit, once the key has been
	// decided locally: tats are the theoretical arrival times (now() ns),
	// admitted the events admitted locally and not yet handed back.
	tats     []int64
	admitted int
	localAt  int64 // the last local admission or hand-back
}

func newLimiterLocal(opt *LimiterOptions) (*limiterLocal, error) {
	inst, deny := opt.fallbackInstances(), opt.denyLocally()
	if inst < 0 {
		return nil, invalidf("limiter fallback instances %d: want 0 (no fallback) or more", inst)
	}
	probe, keys := opt.fallbackProbeInterval(), opt.localKeys()
	if probe < time.Millisecond {
		return nil, invalidf("limiter fallback probe interval %v: want at least 1ms", probe)
	}
	if keys < 1 {
		return nil, invalidf("limiter local keys %d: want 1 or more", keys)
	}
	if inst == 0 && !deny {
		return nil, nil
	}
	store, err := otter.New(&otter.Options[string, *localKey]{
		MaximumSize: keys,
		// Maintenance on the writing goroutine: no goroutine of ours.
		Executor: func(fn func()) { fn() },
	})
	if err != nil {
		return nil, invalidf("limiter local keys: %v", err)
	}
	return &limiterLocal{instances: inst, probe: probe, deny: deny, keys: store, base: time.Now()}, nil
}

func (ll *limiterLocal) now() int64 { return int64(time.Since(ll.base)) }

// entry returns key's entry, made if create and it has none.
func (ll *limiterLocal) entry(key string, create bool) *localKey {
	if e, ok := ll.keys.GetIfPresent(key); ok || !create {
		return e
	}
	e, _ := ll.keys.SetIfAbsent(key, &localKey{})
	return e
}

// localName is the layer's key for a decision: its Redis keys, joined.
func localName(keys []string) string {
	if len(keys) == 1 {
		return keys[0]
	}
	return strings.Join(keys, "\x00")
}

// allowLocal is AllowN with the in-process layer, observed.
func (l *Limiter) allowLocal(ctx context.Context, key string, n int, limits []Limit) (res LimitResult, err error) {
	ctx, done := l.observe(ctx, OpAllow)
	defer func() { done.end(decisionOutcome(res, err), err) }()
	keys, err := l.keys(key, limits)
	if err != nil {
		return LimitResult{}, err
	}
	if n < 1 {
		return LimitResult{}, invalidf("n = %d: want at least 1", n)
	}
	for _, lim := range limits {
		if c := lim.capacity(l.algo); n > c {
			return LimitResult{}, invalidf("n = %d is more than limit %v can ever admit at once (%d)", n, lim, c)
		}
	}
	ll := l.local
	name := localName(keys)
	now := ll.now()

	var e *localKey
	probing := false
	if ll.deny {
		if e = ll.entry(name, false); e != nil {
			e.mu.Lock()
			switch {
			case !e.regime || n < e.deniedN || now >= e.full:
				// Not denied, or a smaller request, or quiet long enough
				// for the key to be full again: Redis decides, for every
				// call.
			case now < e.until:
				res = e.denied(now, e.until)
			case e.probing:
				// Another call is asking Redis: deny until its answer.
				res = e.denied(now, now+int64(time.Millisecond))
			default:
				e.probing, probing = true, true
			}
			e.mu.Unlock()
			if res.Local {
				return res, nil
			}
		}
	}
	if probing {
		defer func() {
			e.mu.Lock()
			e.probing = false
			e.mu.Unlock()
		}()
	}

	if ll.instances > 0 && ll.down.Load() {
		if ctx.Err() != nil {
			return LimitResult{}, fmt.Errorf("patterns: rate limit %q: %w", key, context.Cause(ctx))
		}
		next := ll.nextProbe.Load()
		if now < next || !ll.nextProbe.CompareAndSwap(next, now+int64(ll.probe)) {
			return l.fallback(name, n, limits, now), nil
		}
		// This call probes Redis, with a PING that go-redis retries: the
		// pool may hold connections the outage broke.
		if err := l.c.rdb.Ping(ctx).Err(); err != nil {
			if ll.outage(ctx, err) {
				return l.fallback(name, n, limits, ll.now()), nil
			}
			return LimitResult{}, fmt.Errorf("patterns: rate limit %q: %w", key, err)
		}
		ll.up(ll.now())
	}
	if ll.instances > 0 {
		if err := l.handBack(ctx, key, name, limits); err != nil {
			if err == errHandingBack || ll.outage(ctx, err) {
				return l.fallback(name, n, limits, ll.now()), nil
			}
			return LimitResult{}, err
		}
	}
	res, err = l.decide(ctx, key, n, true, limits)
	if err != nil {
		if ll.instances > 0 && ll.outage(ctx, err) {
			return l.fallback(name, n, limits, ll.now()), nil
		}
		return res, err
	}
	if ll.instances > 0 {
		ll.up(ll.now())
	}
	ll.record(name, e, n, res, ll.now())
	return res, nil
}

// outage reports whether err, of a call on ctx, says that Redis cannot be
// reached (a network error, a timeout that is not ctx's, a server that
// refuses to serve), and if so marks the outage, probing again one probe
// interval later. Invalid input, a reply the library cannot read and an
// ended context are not outages.
func (ll *limiterLocal) outage(ctx context.Context, err error) bool {
	if !unreachable(ctx, err) {
		return false
	}
	now := ll.now()
	if now-ll.lastOK.Load() < int64(ll.probe) {
		// Redis answered within a probe interval: the call decides
		// locally, the next ones try Redis (a connection broken by an
		// outage that just ended fails once).
		return true
	}
	if !ll.down.Load() {
		ll.nextProbe.Store(now + int64(ll.probe))
		ll.down.Store(true)
	}
	return true
}

// up records that Redis answered at now.
func (ll *limiterLocal) up(now int64) {
	if ll.down.Load() {
		ll.down.Store(false)
	}
	if now-ll.lastOK.Load() >= int64(time.Millisecond) {
		ll.lastOK.Store(now)
	}
}

// serverDown are the error replies of a server that cannot serve now.
var serverDown = []string{"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "OOM", "NOREPLICAS", "NOAUTH", "NOPERM"}

// unreachable reports whether err says that Redis cannot be reached or
// cannot serve: see limiterLocal.outage.
func unreachable(ctx context.Context, err error) bool {
	if err == nil || errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrUnexpectedReply) ||
		ctxEnded(ctx, err) != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, redis.ErrPoolTimeout) {
		return true
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range serverDown {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
	}
	return false
}

// record keeps what Redis decided for the key: the fallback's seed, and for
// the local deny a denial until its RetryAfter. e is the key's entry when
// the call found one.
func (ll *limiterLocal) record(name string, e *localKey, n int, res LimitResult, now int64) {
	denied := ll.deny && !res.Allowed && res.RetryAfter > 0
	if e == nil {
		if ll.instances == 0 && !denied {
			return
		}
		e = ll.entry(name, true)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ll.instances > 0 {
		e.seen, e.seenAt, e.seenRemaining, e.seenLimit = true, now, res.Remaining, res.Limit
	}
	switch {
	case denied:
		e.regime, e.at, e.until, e.deniedN, e.res = true, now, now+int64(res.RetryAfter), n, res
		e.full = now + int64(res.ResetAfter)
	case res.Allowed && res.Remaining > 0:
		e.regime = false
	case res.Allowed:
		// Admitted with nothing left: the next call asks Redis alone.
		e.until, e.full = now, now+int64(res.ResetAfter)
	}
}

// denied is the local deny's result at now, the key denied until until.
func (e *localKey) denied(now, until int64) LimitResult {
	res := e.res
	res.Local = true
	res.RetryAfter = ceilMs(time.Duration(until - now))
	res.ResetAfter = max(res.ResetAfter-time.Duration(now-e.at), res.RetryAfter)
	return res
}

// shares returns, for lim, the fallback's emission interval (one event per
// interval: the limit's rate divided among the instances) and its
// tolerance (capacity: the limit's burst divided among them, at least one
// event, at least n), in ns.
func (l *Limiter) shares(lim Limit, n int) (interval, tolerance int64) {
	inst := float64(l.local.instances)
	interval = max(sat(float64(lim.Period)*inst/float64(lim.Rate)), 1)
	capacity := max(float64(lim.capacity(l.algo))/inst, 1, float64(n))
	return interval, sat(math.Floor(capacity) * float64(interval))
}

// maxLocalNs bounds the fallback's durations (about 36 years), so that
// sums of two stay within int64.
const maxLocalNs = 1 << 60

// sat is x, ns, as an int64 of at most maxLocalNs.
func sat(x float64) int64 { return int64(min(x, maxLocalNs)) }

// fallback decides a request of n locally, on the key's share of each
// limit, during an outage. The key's limiter starts from what Redis last
// reported for it (Remaining of the binding limit, refilled since), or at
// rest.
func (l *Limiter) fallback(name string, n int, limits []Limit, now int64) LimitResult {
	e := l.local.entry(name, true)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.tats) != len(limits) || (e.seen && e.seenAt > e.localAt) {
		// Afresh: Redis decided the key after its last local decision.
		e.tats, e.admitted = make([]int64, len(limits)), 0
		for i, lim := range limits {
			e.tats[i] = now
			if e.seen && e.seenLimit == lim {
				// The used part of the limit, as Redis last saw it, at
				// the global rate: this process's share of it at its share
				// of the rate takes as long to drain.
				used := float64(lim.capacity(l.algo) - e.seenRemaining)
				_, tol := l.shares(lim, 1)
				e.tats[i] = min(e.seenAt+sat(used*float64(lim.Period)/float64(lim.Rate)), now+tol)
			}
		}
	}
	res := LimitResult{Allowed: true, Local: true, Remaining: math.MaxInt}
	var retry, reset int64
	next := make([]int64, len(limits))
	for i, lim := range limits {
		iv, tol := l.shares(lim, n)
		next[i] = max(e.tats[i], now) + sat(float64(n)*float64(iv))
		if over := next[i] - now - tol; over > 0 {
			res.Allowed = false
			retry = max(retry, over)
		}
	}
	for i, lim := range limits {
		iv, tol := l.shares(lim, n)
		tat := next[i]
		if !res.Allowed {
			tat = max(e.tats[i], now)
		}
		if left := int((tol - (tat - now)) / iv); left < res.Remaining {
			res.Remaining, res.Limit = max(left, 0), lim
		}
		reset = max(reset, tat-now)
	}
	if res.Allowed {
		copy(e.tats, next)
		e.localAt = now
		e.admitted += n
	}
	res.RetryAfter = ceilMs(time.Duration(retry))
	res.ResetAfter = ceilMs(time.Duration(reset))
	return res
}

// handBack charges Redis, once Redis answers again, with what the key's
// local limiter admitted during the outage and still holds: for each limit,
// the events admitted locally that its share has not yet drained (at most
// what it admitted), times the instances, consumed as far as the limit has
// room (AllowAtMost). Redis, which refilled meanwhile, so holds what it
// would hold had the outage's events gone through it, and the processes'
// next decisions find no fresh budget beside what they admitted.
//
// Times the instances: the processes find Redis again one after the other
// (within a probe interval); the first to hand back charges for all, as if
// each had admitted what it did, so that it cannot spend the others' shares
// before they hand theirs back (which then find no room, and charge
// nothing more). Where the others admitted less, the key is over-strict by
// the difference, once.
func (l *Limiter) handBack(ctx context.Context, key, name string, limits []Limit) error {
	e := l.local.entry(name, false)
	if e == nil {
		return nil
	}
	e.mu.Lock()
	if e.handing {
		e.mu.Unlock()
		return errHandingBack
	}
	tats, admitted := slices.Clone(e.tats), e.admitted
	if len(tats) != len(limits) || admitted == 0 {
		e.mu.Unlock()
		return nil
	}
	e.handing = true
	e.mu.Unlock()
	now := l.local.now()
	var err error
	for i, lim := range limits {
		iv, _ := l.shares(lim, 1)
		held := min(int64(admitted), (tats[i]-now+iv-1)/iv) * int64(l.local.instances)
		if held <= 0 {
			continue
		}
		if _, _, err = l.allowAtMost(ctx, key, int(held), limits[i:i+1]); err != nil {
			// Not handed back: still owed, but for the limits charged.
			for j := range i {
				e.tats[j] = min(e.tats[j], now)
			}
			break
		}
	}
	e.mu.Lock()
	if err == nil {
		// Handed back. The local limiter stays as it is, for a call that
		// fails again before Redis decides the key anew (a connection the
		// outage broke): it goes on from here rather than afresh.
		e.admitted, e.localAt = 0, now
	}
	e.handing = false
	e.mu.Unlock()
	return err
}

// errHandingBack is handBack's answer to a call that finds another call
// handing the key back: the call decides locally meanwhile.
var errHandingBack = errors.New("patterns: rate limit: the key is being handed back to Redis")
