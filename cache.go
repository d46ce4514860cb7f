package patterns

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// ErrCacheNotFound is what a loader returns when the thing it loads does not
// exist. The cache then remembers the absence for CacheOptions.NegativeTTL
// and Get returns ErrCacheNotFound, so a missing row is not looked up again on
// every request.
var ErrCacheNotFound = errors.New("patterns: not found")

var (
	scriptCacheGet        = newScript("cache_get")
	scriptCacheSet        = newScript("cache_set")
	scriptCacheInvalidate = newScript("cache_invalidate")
)

// CacheOptions configure a Cache. A nil *CacheOptions means all defaults.
type CacheOptions struct {
	// TTL is how long an entry lives, before jitter.
	//
	// default: 10 minutes
	TTL time.Duration

	// MaxTTL is the longest TTL a Set may ask for; it also bounds how long
	// tag invalidations are remembered. A longer TTL is an error.
	//
	// default: 24 hours
	MaxTTL time.Duration

	// NegativeTTL is how long a "not found" (the loader returned
	// ErrCacheNotFound) is remembered; -1: not at all.
	//
	// default: 30 seconds
	NegativeTTL time.Duration

	// Jitter spreads expiries: each TTL is shortened by a random fraction of
	// it, up to Jitter, so that entries written together do not expire
	// together. Up to 0.5; -1: no jitter.
	//
	// default: 0.1
	Jitter float64

	// StaleWhileRevalidate, when above zero, serves an entry that is older
	// than its TTL for up to this long more, while one background load
	// refreshes it. The entry's Redis TTL is TTL + StaleWhileRevalidate.
	//
	// default: 0 (an entry is served until its TTL, then loaded again)
	StaleWhileRevalidate time.Duration

	// Beta tunes probabilistic early refresh (XFetch): a Get refreshes an
	// entry before it expires with a probability that grows as expiry nears
	// and with how long the entry took to load. 0 turns it off; 1 is the
	// usual value; above 1 refreshes earlier.
	//
	// default: 0 (off)
	Beta float64

	// LoadTimeout bounds a load that Get shares between callers, and a
	// background refresh: the loader's context keeps the values of the
	// context of the Get that started it but not its cancellation, and ends
	// after LoadTimeout. -1: no bound.
	//
	// default: 10 seconds
	LoadTimeout time.Duration

	// LeaseTTL bounds how long one loader may hold the load of a missing key
	// across all processes; LeaseWait is how long the others wait for its
	// value before loading themselves. A load's value is cached only while
	// its lease holds: a load that outlives LeaseTTL returns its value
	// uncached (a write during it may have found no lease to revoke), so
	// LeaseTTL should exceed the slowest load worth caching.
	//
	// default: 5 seconds and 2 seconds
	LeaseTTL, LeaseWait time.Duration

	// Codec encodes values.
	//
	// default: JSON
	Codec Codec

	// CompressAbove, when above zero, deflates encoded values larger than
	// this many bytes.
	//
	// default: 0 (no compression)
	CompressAbove int

	// FailClosed makes Get return Redis errors instead of falling back to
	// the loader when Redis fails or times out.
	//
	// default: false (fail open: Get calls the loader and returns its value)
	FailClosed bool

	// OnError is called with every Redis error the cache absorbs or returns
	// (op is "get", "set", "delete" or "invalidate", or "local" for the loss
	// of the local layer's invalidation connection), and with an error
	// wrapping ErrLoaderPanicked (op "load") when a loader panics with no
	// caller to receive the panic: in a background refresh, or when the Get
	// that started the load has left; for a WriteBehind, with the errors of
	// its persist function (op "persist"). It must be safe for concurrent
	// use.
	//
	// default: nil
	OnError func(op, key string, err error)

	// MaxBatch bounds the keys of one round trip of GetMany, SetMany,
	// DeleteMany and Warm, and of one call of their loader; larger inputs
	// are split. At most 10000.
	//
	// default: 100
	MaxBatch int

	// Local, when not nil, adds an in-process layer in front of Redis,
	// bounded, and kept coherent across processes by Redis client tracking
	// (see CacheLocalOptions). It needs a *redis.Client (standalone or Sentinel)
	// or a *redis.ClusterClient, and the cache must be closed with Close.
	//
	// default: nil (no local layer, no cost)
	Local *CacheLocalOptions
}

// CacheStats count what a Cache did since it was made. Loads and LoadErrors
// count keys: a batch load of ten keys counts ten.
type CacheStats struct {
	// Hits are reads served by Redis.
	Hits int64
	// LocalHits are reads served by the local layer, without a round trip.
	LocalHits int64
	// Misses are reads that found no usable entry (a load followed).
	Misses int64
	// Loads are the keys given to a loader, in this process.
	Loads int64
	// LoadErrors are the keys whose load returned an error or panicked.
	LoadErrors int64
	// StaleServed are reads answered with an expired value while it was
	// reloaded (StaleWhileRevalidate).
	StaleServed int64
	// EarlyRefreshes are background reloads started before expiry.
	EarlyRefreshes int64
	// RedisErrors are the Redis errors reported to OnError.
	RedisErrors int64
	// FillsRefused are loaded values not cached because their load lease
	// was gone when they were written: a write of the key (Set, Delete, a
	// batch or write-behind write) ran during the load, or the load
	// outlived LeaseTTL. Their callers got them all the same.
	FillsRefused int64
}

// HitRate is (Hits + LocalHits) / (Hits + LocalHits + Misses), or 0 before
// any read.
func (s CacheStats) HitRate() float64 {
	hits := s.Hits + s.LocalHits
	if hits+s.Misses == 0 {
		return 0
	}
	return float64(hits) / float64(hits+s.Misses)
}

// CacheSetOptions tune one Set (and the Set a Get makes after a load).
type CacheSetOptions struct {
	// TTL overrides CacheOptions.TTL for this entry.
	//
	// default: CacheOptions.TTL
	TTL time.Duration
	// Tags invalidate the entry together with every other entry under the
	// same tag (InvalidateTags). At most 64 tags; each is 1 to MaxIDLen
	// bytes and may not contain a newline ('\n') or the byte 0x1f (unit
	// separator): ErrInvalidArgument.
	//
	// default: none
	Tags []string
}

// Cache is a typed read-through / cache-aside cache on Redis, with tags,
// stampede protection and an optional local layer. Every key of a cache
// shares the hash tag {name} (prefix:cache:{name}:...), so a cache is one
// Redis Cluster slot. A hit costs one round trip (two for an entry with
// tags), none from the local layer; Set writes nothing per tag, and
// InvalidateTags is O(1) per tag whatever the number of entries under it.
// Its methods are safe for concurrent use.
type Cache[T any] struct {
	c          *Client
	name       string
	opt        CacheOptions
	tags       [2]string // tag versions hash and sorted set
	group      flightGroup[T]
	refreshing sync.Map       // keys being refreshed in the background
	local      *localLayer[T] // nil without CacheOptions.Local

	hits, misses, loads, loadErrors, stale, early, redisErrs, refused atomic.Int64
	bg                                                                sync.WaitGroup
}

// NewCache returns the cache named name.
func NewCache[T any](c *Client, name string, opt *CacheOptions) (*Cache[T], error) {
	if c == nil {
		return nil, invalidf("nil client")
	}
	if err := checkID("cache name", name); err != nil {
		return nil, err
	}
	k := &Cache[T]{c: c, name: name}
	if opt != nil {
		k.opt = *opt
	}
	o := &k.opt
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.TTL, 10*time.Minute)
	def(&o.MaxTTL, 24*time.Hour)
	def(&o.NegativeTTL, 30*time.Second)
	def(&o.LeaseTTL, 5*time.Second)
	def(&o.LeaseWait, 2*time.Second)
	if o.LoadTimeout < 0 && o.LoadTimeout != -1 || o.LoadTimeout > 0 && o.LoadTimeout < time.Millisecond {
		return nil, invalidf("LoadTimeout %v: want -1 (no bound), 0 (default) or at least 1ms", o.LoadTimeout)
	}
	switch {
	case opt == nil || opt.Jitter == 0:
		o.Jitter = 0.1
	case opt.Jitter == -1:
		o.Jitter = 0
	}
	if o.Codec == nil {
		o.Codec = JSON
	}
	durations := map[string]time.Duration{"TTL": o.TTL, "MaxTTL": o.MaxTTL, "LeaseTTL": o.LeaseTTL, "LeaseWait": o.LeaseWait}
	if o.NegativeTTL != -1 {
		durations["NegativeTTL"] = o.NegativeTTL
	}
	for name, d := range durations {
		if err := checkTTL(name, d); err != nil {
			return nil, err
		}
	}
	if o.TTL+o.StaleWhileRevalidate > o.MaxTTL || o.NegativeTTL > o.MaxTTL {
		return nil, invalidf("TTL %v (+ stale %v) or NegativeTTL %v over MaxTTL %v", o.TTL, o.StaleWhileRevalidate, o.NegativeTTL, o.MaxTTL)
	}
	if o.Jitter < 0 || o.Jitter > 0.5 || o.Beta < 0 || o.StaleWhileRevalidate < 0 || o.CompressAbove < 0 {
		return nil, invalidf("Jitter %v (-1, or 0 to 0.5), Beta %v, StaleWhileRevalidate %v, CompressAbove %d: out of range", o.Jitter, o.Beta, o.StaleWhileRevalidate, o.CompressAbove)
	}
	if err := checkMaxBatch(o.MaxBatch); err != nil {
		return nil, err
	}
	k.tags = [2]string{c.key("cache", name, "tags"), c.key("cache", name, "tagz")}
	k.group.orphan = func(key string, p *loaderPanic) { k.loaderPanicked(key, p.value) }
	if o.Local != nil {
		lo, err := checkLocal(*o.Local, o.MaxTTL)
		if err != nil {
			return nil, err
		}
		o.Local = &lo
		if k.local, err = newLocalLayer[T](c.rdb, k.entryKey(""), k.tags[0], c.key("cache", name, "inv"), lo, o); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Close stops the local layer (its invalidation connection and goroutine)
// and empties it, then waits for background refreshes like Wait. The cache
// still works after Close, from Redis only. Without a local layer it is
// Wait. Call it when the cache is no longer needed.
func (k *Cache[T]) Close() {
	if k.local != nil {
		k.local.close()
	}
	k.Wait()
}

// Stats returns the counters so far.
func (k *Cache[T]) Stats() CacheStats {
	var localHits int64
	if k.local != nil {
		localHits = k.local.hits.Load()
	}
	return CacheStats{Hits: k.hits.Load(), LocalHits: localHits, Misses: k.misses.Load(), Loads: k.loads.Load(),
		LoadErrors: k.loadErrors.Load(), StaleServed: k.stale.Load(), EarlyRefreshes: k.early.Load(),
		RedisErrors: k.redisErrs.Load(), FillsRefused: k.refused.Load()}
}

// Wait blocks until the background refreshes started by Get, and the loads
// that Get shares between callers, have ended.
func (k *Cache[T]) Wait() {
	k.bg.Wait()
	k.group.wait()
}

func (k *Cache[T]) entryKey(key string) string { return k.c.key("cache", k.name, "e", escapePart(key)) }
func (k *Cache[T]) leaseKey(key string) string { return k.c.key("cache", k.name, "l", escapePart(key)) }

func checkCacheKey(key string) error { return checkID("cache key", key) }

func (k *Cache[T]) redisError(op, key string, err error) error {
	k.redisErrs.Add(1)
	if k.opt.OnError != nil {
		k.opt.OnError(op, key, err)
	}
	return fmt.Errorf("patterns: cache %q: %s %q: %w", k.name, op, key, err)
}

// entry is what a lookup found.
type entry struct {
	hit, negative, stale bool
	payload              string
	delta                time.Duration // how long the value took to load
	ttl                  time.Duration // left in Redis, when asked for
	lease                bool          // on a miss: the caller holds the load lease
	began                int64         // with lease: the server time (µs) it was granted
	tagged               bool          // the entry carries tags
	size                 int           // bytes of the Redis value
	snap                 localSnap     // the local layer's state before the GET
}

// parseEntry reads "1|WRITTEN|DELTA|NEG|TAGS\n" + payload (see cache_get).
func parseEntry(v string) (e entry, written int64, tags []string, ok bool) {
	nl := strings.IndexByte(v, '\n')
	if nl < 0 || !strings.HasPrefix(v, "1|") {
		return e, 0, nil, false
	}
	var f [4]string // written, delta, negative, tags
	rest := v[2:nl]
	for i := 0; i < 3; i++ {
		j := strings.IndexByte(rest, '|')
		if j < 0 {
			return e, 0, nil, false
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	f[3] = rest
	w, err1 := strconv.ParseInt(f[0], 10, 64)
	d, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return e, 0, nil, false
	}
	if f[3] != "" {
		tags = strings.Split(f[3], "\x1f")
	}
	return entry{hit: true, payload: v[nl+1:], negative: f[2] == "1", delta: time.Duration(d) * time.Microsecond}, w, tags, true
}

// lookup serves a hit with a plain GET (and PTTL, in the same round trip,
// when stale-while-revalidate or early refresh need it); an entry with tags
// costs one HMGET more, to check them. Reads in that order are enough: an
// invalidation that returned before the lookup began is seen by the HMGET.
func (k *Cache[T]) lookup(ctx context.Context, key string) (entry, error) {
	ek := k.entryKey(key)
	var v string
	var ttl time.Duration
	var err error
	var snap localSnap
	if k.local != nil {
		snap = k.local.begin(key)
	}
	// One round trip: the GET, and the PTTL when something needs it.
	get := redis.NewStringCmd(ctx, "get", ek)
	var pttl *redis.DurationCmd
	if k.opt.StaleWhileRevalidate > 0 || k.opt.Beta > 0 || k.local != nil {
		pttl = redis.NewDurationCmd(ctx, time.Millisecond, "pttl", ek)
		err = k.c.read(ctx, ek, get, pttl)
	} else {
		err = k.c.read(ctx, ek, get)
	}
	if err == redis.Nil {
		return entry{}, nil
	}
	if err != nil {
		return entry{}, err
	}
	v = get.Val()
	if pttl != nil {
		ttl = pttl.Val()
	}
	e, written, tags, ok := parseEntry(v)
	if !ok {
		return entry{}, nil // not an entry of this library: a miss
	}
	if len(tags) > 0 {
		versions, err := k.tagVersions(ctx, tags)
		if err != nil {
			return entry{}, err
		}
		for _, ver := range versions {
			if s, _ := ver.(string); s != "" {
				if n, _ := strconv.ParseInt(s, 10, 64); n >= written {
					return entry{}, nil
				}
			}
		}
	}
	e.ttl, e.tagged, e.size, e.snap = ttl, len(tags) > 0, len(v), snap
	e.stale = !e.negative && k.opt.StaleWhileRevalidate > 0 && ttl >= 0 && ttl < k.opt.StaleWhileRevalidate
	return e, nil
}

// tagVersions reads the invalidation times of tags (HMGET of the tag hash).
func (k *Cache[T]) tagVersions(ctx context.Context, tags []string) ([]any, error) {
	args := make([]any, 0, 2+len(tags))
	args = append(args, "hmget", k.tags[0])
	for _, t := range tags {
		args = append(args, t)
	}
	cmd := redis.NewSliceCmd(ctx, args...)
	if err := k.c.read(ctx, k.tags[0], cmd); err != nil {
		return nil, err
	}
	return cmd.Val(), nil
}

// lookupOrLease is the miss path: the entry if it landed meanwhile, else the
// loader lease if it is free, in one script.
func (k *Cache[T]) lookupOrLease(ctx context.Context, key, token string) (entry, error) {
	keys := []string{k.tags[0], k.entryKey(key), k.leaseKey(key)}
	v, err := scriptCacheGet.run(ctx, k.c.scr, keys, token, k.opt.LeaseTTL.Milliseconds()).Slice()
	if err != nil {
		return entry{}, err
	}
	if len(v) != 3 {
		return entry{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	if v[0] == nil {
		began, lease := leaseGranted(v[2])
		return entry{lease: lease, began: began}, nil
	}
	s, _ := v[0].(string)
	if e, _, _, ok := parseEntry(s); ok {
		return e, nil
	}
	return entry{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
}

// leaseGranted reads cache_get's lease item: 0, or the server time (µs) at
// which the caller's lease was granted.
func leaseGranted(v any) (began int64, ok bool) {
	s, _ := v.(string)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// Lookup is the cache-aside read: the value if the cache holds it (ok), or
// ok false on a miss. A cached "not found" is ErrCacheNotFound.
func (k *Cache[T]) Lookup(ctx context.Context, key string) (value T, ok bool, err error) {
	ctx, done := k.c.observe(ctx, PatternCache, OpLookup, k.name)
	out := OutcomeHit
	defer func() {
		if !ok && err == nil {
			out = OutcomeMiss
		}
		done.end(cacheOutcome(out, err), err)
	}()
	if err := checkCacheKey(key); err != nil {
		return value, false, err
	}
	if k.local != nil {
		if le, ok := k.local.get(key); ok {
			out = OutcomeLocalHit
			if le.negative {
				return value, true, ErrCacheNotFound
			}
			return le.v, true, nil
		}
	}
	e, err := k.lookup(ctx, key)
	if err != nil {
		return value, false, k.redisError("get", key, err)
	}
	if !e.hit {
		k.misses.Add(1)
		return value, false, nil
	}
	k.hits.Add(1)
	if e.negative {
		k.keep(key, e, value)
		return value, true, ErrCacheNotFound
	}
	value, err = k.decode(e.payload)
	if err == nil {
		k.keep(key, e, value)
	}
	return value, err == nil, err
}

// keep stores a Redis hit in the local layer, if there is one.
func (k *Cache[T]) keep(key string, e entry, v T) {
	if k.local != nil && !e.stale {
		k.local.put(e.snap, key, v, e.negative, e.tagged, e.ttl, e.size)
	}
}

// Get is the read-through read: the cached value, or load's, which it then
// caches, unless a write of key (Set, Delete, their batch forms, or an
// InvalidateTags of one of opt's tags) ran during the load, or the load
// outlived LeaseTTL: the caller then gets the loaded value, uncached. For a missing key at most one load runs at a time across all
// processes (shared in the process, and a short owner-checked lease in
// Redis); the others wait for its value (up to LeaseWait), then load
// themselves. A load that returns ErrCacheNotFound is cached as such. When Redis
// fails, Get calls load and returns its value (the error goes to OnError),
// unless FailClosed. opt may be nil.
//
// A shared load runs in a goroutine of its own, with a context detached
// from the callers' cancellation and bounded by LoadTimeout: each caller
// returns when its own ctx ends (an error wrapping ctx.Err()), and the load
// goes on, caching its value for the next reader. If load panics, the caller
// that started the load panics with an error wrapping ErrLoaderPanicked that
// carries the panic value and the loader's stack (if it has left, the panic
// goes to OnError); the other callers get an error wrapping
// ErrLoaderPanicked; the lease is released.
func (k *Cache[T]) Get(ctx context.Context, key string, load func(ctx context.Context) (T, error), opt *CacheSetOptions) (v T, err error) {
	var zero T
	ctx, done := k.c.observe(ctx, PatternCache, OpGet, k.name)
	out := OutcomeMiss
	defer func() { done.end(cacheOutcome(out, err), err) }()
	if err := checkCacheKey(key); err != nil {
		return zero, err
	}
	if load == nil {
		return zero, invalidf("nil loader")
	}
	if err := k.checkSet(opt); err != nil {
		return zero, err
	}
	if k.local != nil {
		if le, ok := k.local.get(key); ok {
			out = OutcomeLocalHit
			if le.negative {
				return zero, ErrCacheNotFound
			}
			return le.v, nil
		}
	}
	e, err := k.lookup(ctx, key)
	if err != nil {
		if cerr := ctxEnded(ctx, err); cerr != nil {
			return zero, fmt.Errorf("patterns: cache %q: get %q: %w", k.name, key, cerr)
		}
		rerr := k.redisError("get", key, err)
		if k.opt.FailClosed {
			return zero, rerr
		}
		k.misses.Add(1)
		return k.callLoad(ctx, load)
	}
	if e.hit {
		k.hits.Add(1)
		out = OutcomeHit
		if e.stale {
			out = OutcomeStale
			k.stale.Add(1)
			k.refreshInBackground(ctx, key, load, opt)
		} else if k.opt.Beta > 0 && e.delta > 0 && k.xfetch(e) {
			k.early.Add(1)
			k.refreshInBackground(ctx, key, load, opt)
		}
		if e.negative {
			k.keep(key, e, zero)
			return zero, ErrCacheNotFound
		}
		v, err := k.decode(e.payload)
		if err == nil {
			k.keep(key, e, v)
		}
		return v, err
	}
	k.misses.Add(1)
	v, err, left := k.group.do(ctx, key, func() (T, error) {
		lctx, cancel := k.loadContext(ctx)
		defer cancel()
		return k.loadShared(lctx, key, load, opt)
	})
	switch {
	case left:
		return zero, fmt.Errorf("patterns: cache %q: waiting for the load of %q: %w", k.name, key, err)
	case errors.Is(err, ErrLoaderPanicked):
		var p *loaderPanic
		if errors.As(err, &p) {
			err = fmt.Errorf("patterns: cache %q: load %q: %w: %v", k.name, key, ErrLoaderPanicked, p.value)
		}
	}
	return v, err
}

// xfetch decides an early refresh: now - delta*beta*ln(rand) >= expiry.
func (k *Cache[T]) xfetch(e entry) bool {
	gap := -float64(e.delta) * k.opt.Beta * math.Log(rand.Float64())
	return time.Duration(gap) >= e.ttl
}

func (k *Cache[T]) checkSet(opt *CacheSetOptions) error {
	if opt == nil {
		return nil
	}
	if opt.TTL != 0 {
		if err := checkTTL("cache ttl", opt.TTL); err != nil {
			return err
		}
		if opt.TTL+k.opt.StaleWhileRevalidate > k.opt.MaxTTL {
			return invalidf("cache ttl %v over MaxTTL %v", opt.TTL, k.opt.MaxTTL)
		}
	}
	if len(opt.Tags) > 64 {
		return invalidf("%d tags: at most 64", len(opt.Tags))
	}
	for _, t := range opt.Tags {
		if t == "" || len(t) > MaxIDLen || strings.ContainsAny(t, "\n\x1f") {
			return invalidf("tag %q: want 1 to %d bytes, no newline or \\x1f", t, MaxIDLen)
		}
	}
	return nil
}

// Set writes value under key (write-through: call it after writing the
// source of truth). A load of key under way, begun before Set, is not
// cached: Set revokes its lease in the same script. opt may be nil.
func (k *Cache[T]) Set(ctx context.Context, key string, value T, opt *CacheSetOptions) (err error) {
	ctx, done := k.c.observe(ctx, PatternCache, OpSet, k.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkCacheKey(key); err != nil {
		return err
	}
	if err := k.checkSet(opt); err != nil {
		return err
	}
	payload, err := k.encode(value)
	if err != nil {
		return err
	}
	return k.set(ctx, key, payload, false, opt, 0, "", 0)
}

// set writes key's entry: a write (token "": it also revokes the key's load
// lease, so that a load under way is not cached), or the fill of a load
// under token's lease granted at began (written only while token still
// holds the lease, stamped with began).
func (k *Cache[T]) set(ctx context.Context, key string, payload []byte, negative bool, opt *CacheSetOptions, delta time.Duration, token string, began int64) error {
	ttl := k.opt.TTL
	var tags []string
	if opt != nil {
		if opt.TTL != 0 {
			ttl = opt.TTL
		}
		tags = opt.Tags
	}
	neg := 0
	if negative {
		ttl, neg = k.opt.NegativeTTL, 1
	}
	if k.opt.Jitter > 0 {
		ttl -= time.Duration(rand.Float64() * k.opt.Jitter * float64(ttl))
	}
	if k.opt.StaleWhileRevalidate > 0 && !negative {
		ttl += k.opt.StaleWhileRevalidate // stale once less than that is left
	}
	ttl = max(ttl, time.Millisecond)
	n, err := scriptCacheSet.run(ctx, k.c.scr, []string{k.entryKey(key), k.leaseKey(key)},
		token, k.fanout(), payload, ttl.Milliseconds(), strings.Join(tags, "\x1f"), delta.Microseconds(), neg, writtenArg(began)).Int64()
	if err == nil && token != "" && n == 0 {
		k.refused.Add(1)
	}
	k.evictLocal(key)
	if err != nil {
		return k.redisError("set", key, err)
	}
	return nil
}

// fanout is the channel on which writes announce the keys they change, for
// the local layers of other processes that fall back to pub/sub; "" when
// this cache has no local layer or its server tracks keys itself.
func (k *Cache[T]) fanout() string {
	if k.local == nil || k.local.tracking.Load() {
		return ""
	}
	return k.local.channel
}

// evictLocal drops key from the local layer, if any, after a write of it,
// failed or not (the write may have landed).
func (k *Cache[T]) evictLocal(key string) {
	if k.local != nil {
		k.local.invalidate(key)
	}
}

// writtenArg is cache_set's written time: began, or "" for the server's now.
func writtenArg(began int64) string {
	if began <= 0 {
		return ""
	}
	return strconv.FormatInt(began, 10)
}

// Delete removes key's entry (invalidate on write: call it after writing the
// source of truth; the next Get loads afresh). A load of key under way,
// begun before Delete, is not cached: its lease is deleted with the entry.
func (k *Cache[T]) Delete(ctx context.Context, key string) (err error) {
	ctx, done := k.c.observe(ctx, PatternCache, OpDelete, k.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkCacheKey(key); err != nil {
		return err
	}
	ek, lk := k.entryKey(key), k.leaseKey(key)
	if ch := k.fanout(); ch == "" {
		err = k.c.rdb.Del(ctx, ek, lk).Err()
	} else {
		_, err = k.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, ek, lk)
			p.Publish(ctx, ch, ek)
			return nil
		})
	}
	k.evictLocal(key)
	if err != nil {
		return k.redisError("delete", key, err)
	}
	return nil
}

// InvalidateTags makes every entry written before it under any of tags
// unservable, at once and atomically: once it returns, no Get returns such
// an entry. One script, O(len(tags)).
func (k *Cache[T]) InvalidateTags(ctx context.Context, tags ...string) (err error) {
	ctx, done := k.c.observe(ctx, PatternCache, OpInvalidate, k.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if len(tags) == 0 {
		return invalidf("no tag")
	}
	if err := k.checkSet(&CacheSetOptions{Tags: tags}); err != nil {
		return err
	}
	args := make([]any, 0, len(tags)+2)
	args = append(args, k.opt.MaxTTL.Milliseconds(), k.fanout())
	for _, t := range tags {
		args = append(args, t)
	}
	err = scriptCacheInvalidate.run(ctx, k.c.scr, k.tags[:], args...).Err()
	if k.local != nil {
		k.local.invalidateTags()
	}
	if err != nil {
		return k.redisError("invalidate", strings.Join(tags, ","), err)
	}
	return nil
}

// Payload format: one byte of format (0 plain, 1 deflated), then the bytes.
func (k *Cache[T]) encode(v T) ([]byte, error) {
	b, err := k.opt.Codec.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("patterns: cache %q: encode: %w", k.name, err)
	}
	if k.opt.CompressAbove > 0 && len(b) > k.opt.CompressAbove {
		var buf bytes.Buffer
		buf.WriteByte(1)
		w, _ := flate.NewWriter(&buf, flate.BestSpeed)
		_, _ = w.Write(b)
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	out := make([]byte, len(b)+1)
	copy(out[1:], b)
	return out, nil
}

func (k *Cache[T]) decode(p string) (T, error) {
	var v T
	if p == "" {
		return v, fmt.Errorf("%w: empty cache payload", ErrUnexpectedReply)
	}
	// A read-only view of the payload, not a copy: codecs only read it.
	data := unsafe.Slice(unsafe.StringData(p[1:]), len(p)-1)
	if p[0] == 1 {
		var err error
		if data, err = io.ReadAll(flate.NewReader(strings.NewReader(p[1:]))); err != nil {
			return v, fmt.Errorf("patterns: cache %q: inflate: %w", k.name, err)
		}
	}
	if err := k.opt.Codec.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("patterns: cache %q: decode: %w", k.name, err)
	}
	return v, nil
}
