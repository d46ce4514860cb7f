package patterns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// CacheResult is one key's outcome in a batch read: Value when Err is nil.
// Err is ErrCacheNotFound for a key known not to exist, or the error of
// this key alone (its load failed, its entry could not be decoded).
type CacheResult[T any] struct {
	// Key is the cache key, as given.
	Key string
	// Value is the key's value, when Err is nil.
	Value T
	// Err is nil, ErrCacheNotFound, or the error of this key alone.
	Err error
}

// CacheLoadMany loads the values of keys for GetMany and Warm. A key left
// out of the map does not exist (it is cached as "not found" for
// NegativeTTL); an error fails every key of the call, and nothing of it is
// cached.
type CacheLoadMany[T any] func(ctx context.Context, keys []string) (map[string]T, error)

const (
	defaultMaxBatch = 100
	maxMaxBatch     = 10000
)

func (o *CacheOptions) maxBatch() int {
	if o == nil || o.MaxBatch == 0 {
		return defaultMaxBatch
	}
	return o.MaxBatch
}

func checkMaxBatch(n int) error {
	if n < 0 || n > maxMaxBatch {
		return invalidf("MaxBatch %d: want 0 (default) to %d", n, maxMaxBatch)
	}
	return nil
}

// checkKeys refuses an empty or bad key.
func checkCacheKeys(keys []string) error {
	for _, key := range keys {
		if err := checkCacheKey(key); err != nil {
			return err
		}
	}
	return nil
}

// uniqueKeys returns keys without repeats, in first-seen order.
func uniqueKeys(keys []string) []string {
	seen := make(map[string]struct{}, len(keys))
	out := make([]string, 0, len(keys))
	for _, key := range keys {
		if _, ok := seen[key]; !ok {
			seen[key] = struct{}{}
			out = append(out, key)
		}
	}
	return out
}

// chunks calls fn on keys MaxBatch at a time, stopping at its first error.
func (k *Cache[T]) chunks(keys []string, fn func(batch []string) error) error {
	n := k.opt.maxBatch()
	for len(keys) > 0 {
		b := keys[:min(n, len(keys))]
		keys = keys[len(b):]
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// GetMany is the batch read-through read: one result per key, in the order
// of keys (a repeated key gets the same result twice). Keys are read
// MaxBatch at a time: per batch, the local layer first, then one script
// that reads the entries, checks their tags and takes the load lease of
// every missing key that no one else is loading; then one call of loadMany
// with the leased keys, whose values (and "not found" for the keys it left
// out) are written back in one round trip. Keys that another caller, in
// this process or another, is loading are waited for (up to LeaseWait, then
// loaded here), never loaded twice meanwhile. opt applies to every entry
// written.
//
// A key's own failure (its load, its decoding) is in its result; the error
// is for the whole call: bad input (ErrInvalidArgument, nothing read), ctx
// ended, or Redis failing with FailClosed (without it, the keys are loaded
// and returned uncached, and the error goes to OnError). loadMany runs in
// the caller's goroutine, with ctx bounded by LoadTimeout; if it panics,
// the leases are released and the panic goes on up.
func (k *Cache[T]) GetMany(ctx context.Context, keys []string, loadMany CacheLoadMany[T], opt *CacheSetOptions) (_ []CacheResult[T], err error) {
	ctx, done := k.c.observe(ctx, PatternCache, OpGetMany, k.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if loadMany == nil {
		return nil, invalidf("nil loader")
	}
	if err := checkCacheKeys(keys); err != nil {
		return nil, err
	}
	if err := k.checkSet(opt); err != nil {
		return nil, err
	}
	found := make(map[string]CacheResult[T], len(keys))
	err = k.chunks(uniqueKeys(keys), func(batch []string) error {
		res, err := k.getBatch(ctx, batch, loadMany, opt)
		for _, r := range res {
			found[r.Key] = r
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]CacheResult[T], len(keys))
	for i, key := range keys {
		out[i] = found[key]
	}
	return out, nil
}

// getBatch is GetMany for at most MaxBatch distinct keys.
func (k *Cache[T]) getBatch(ctx context.Context, keys []string, loadMany CacheLoadMany[T], opt *CacheSetOptions) ([]CacheResult[T], error) {
	res := make([]CacheResult[T], len(keys))
	snaps := make([]localSnap, len(keys))
	pending := make([]int, 0, len(keys))
	for i, key := range keys {
		res[i].Key = key
		if k.local != nil {
			if le, ok := k.local.get(key); ok {
				res[i].Value = le.v
				if le.negative {
					res[i].Err = ErrCacheNotFound
				}
				continue
			}
			snaps[i] = k.local.begin(key)
		}
		pending = append(pending, i)
	}
	if len(pending) == 0 {
		return res, nil
	}
	var refresh []string
	hit := func(i int, e entry) {
		k.hits.Add(1)
		if e.stale {
			k.stale.Add(1)
			refresh = append(refresh, keys[i])
		} else if k.opt.Beta > 0 && e.delta > 0 && k.xfetch(e) {
			k.early.Add(1)
			refresh = append(refresh, keys[i])
		}
		e.snap = snaps[i]
		k.serve(keys[i], e, &res[i])
	}
	// The hits, from one MGET (and one HMGET of tag versions).
	got, err := k.lookupFast(ctx, keysAt(keys, pending))
	if err != nil {
		if cerr := ctxEnded(ctx, err); cerr != nil {
			return nil, fmt.Errorf("patterns: cache %q: get many: %w", k.name, cerr)
		}
		rerr := k.redisError("get", keys[pending[0]], err)
		if k.opt.FailClosed {
			return nil, rerr
		}
		k.misses.Add(int64(len(pending)))
		k.loadInto(ctx, keys, res, pending, loadMany, opt, "", 0, false)
		return res, nil
	}
	missing := pending[:0]
	for j, i := range pending {
		if got[j].hit {
			hit(i, got[j])
		} else {
			missing = append(missing, i)
		}
	}
	pending = missing
	k.misses.Add(int64(len(pending)))
	// The misses: lease, load, write back; or wait for whoever loads them.
	token := ""
	if len(pending) > 0 {
		if token, err = newToken(); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(k.opt.LeaseWait)
	wait := 5 * time.Millisecond
	for len(pending) > 0 {
		got, err := k.lookupMany(ctx, keysAt(keys, pending), token, 0)
		if err != nil {
			if cerr := ctxEnded(ctx, err); cerr != nil {
				return nil, fmt.Errorf("patterns: cache %q: get many: %w", k.name, cerr)
			}
			rerr := k.redisError("get", keys[pending[0]], err)
			if k.opt.FailClosed {
				return nil, rerr
			}
			k.loadInto(ctx, keys, res, pending, loadMany, opt, "", 0, false)
			break
		}
		var load, others []int
		var began int64 // when this round's leases were granted
		for j, i := range pending {
			e := got[j]
			switch {
			case e.hit: // landed meanwhile
				e.snap = snaps[i]
				k.serve(keys[i], e, &res[i])
			case e.lease:
				load, began = append(load, i), e.began
			default:
				others = append(others, i)
			}
		}
		if len(others) > 0 && time.Now().After(deadline) {
			// Waited long enough: load them here (returned, not cached: the
			// lease holder's fill is).
			load, others = append(load, others...), nil
		}
		if len(load) > 0 {
			k.loadInto(ctx, keys, res, load, loadMany, opt, token, began, true)
		}
		pending = others
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("patterns: cache %q: waiting for %d keys: %w", k.name, len(pending), context.Cause(ctx))
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
	if len(refresh) > 0 {
		k.refreshManyInBackground(ctx, refresh, loadMany, opt)
	}
	return res, nil
}

func keysAt(keys []string, idx []int) []string {
	out := make([]string, len(idx))
	for j, i := range idx {
		out[j] = keys[i]
	}
	return out
}

// serve fills r from a Redis hit and keeps it in the local layer.
func (k *Cache[T]) serve(key string, e entry, r *CacheResult[T]) {
	if e.negative {
		r.Err = ErrCacheNotFound
		k.keep(key, e, r.Value)
		return
	}
	r.Value, r.Err = k.decode(e.payload)
	if r.Err == nil {
		k.keep(key, e, r.Value)
	}
}

// lookupFast reads the entries of keys with one MGET (with their PTTLs in
// the same round trip when stale-while-revalidate, early refresh or the
// local layer need them), then checks the tagged ones with one HMGET of
// their tags' versions: the batch form of lookup, with the same reasoning.
func (k *Cache[T]) lookupFast(ctx context.Context, keys []string) ([]entry, error) {
	rk := make([]string, len(keys))
	for i, key := range keys {
		rk[i] = k.entryKey(key)
	}
	var vals []any
	var ttls []*redis.DurationCmd
	if k.opt.StaleWhileRevalidate > 0 || k.opt.Beta > 0 || k.local != nil {
		var mget *redis.SliceCmd
		ttls = make([]*redis.DurationCmd, len(rk))
		_, err := k.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			mget = p.MGet(ctx, rk...)
			for i, r := range rk {
				ttls[i] = p.PTTL(ctx, r)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		vals = mget.Val()
	} else {
		var err error
		if vals, err = k.c.rdb.MGet(ctx, rk...).Result(); err != nil {
			return nil, err
		}
	}
	if len(vals) != len(keys) {
		return nil, fmt.Errorf("%w: MGET of %d keys gave %d values", ErrUnexpectedReply, len(keys), len(vals))
	}
	out := make([]entry, len(keys))
	var written []int64
	var tagsOf [][]string
	var tags []string
	seen := map[string]bool{}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		e, w, et, ok := parseEntry(s)
		if !ok {
			continue // not an entry of this library: a miss
		}
		if ttls != nil {
			e.ttl = ttls[i].Val()
		}
		e.tagged, e.size = len(et) > 0, len(s)
		e.stale = !e.negative && k.opt.StaleWhileRevalidate > 0 && ttls != nil && e.ttl >= 0 && e.ttl < k.opt.StaleWhileRevalidate
		out[i] = e
		if len(et) > 0 {
			if tagsOf == nil {
				tagsOf, written = make([][]string, len(keys)), make([]int64, len(keys))
			}
			tagsOf[i], written[i] = et, w
			for _, t := range et {
				if !seen[t] {
					seen[t] = true
					tags = append(tags, t)
				}
			}
		}
	}
	if len(tags) == 0 {
		return out, nil
	}
	versions, err := k.tagVersions(ctx, tags)
	if err != nil {
		return nil, err
	}
	at := make(map[string]int64, len(tags))
	for i, ver := range versions {
		if s, _ := ver.(string); s != "" {
			at[tags[i]], _ = strconv.ParseInt(s, 10, 64)
		}
	}
	for i, et := range tagsOf {
		for _, t := range et {
			if n, ok := at[t]; ok && n >= written[i] {
				out[i] = entry{} // invalidated: a miss
				break
			}
		}
	}
	return out, nil
}

// lookupMany runs cache_get on keys: for each, the valid entry or a miss,
// and whether token now holds the key's lease (a miss free to load, or an
// entry with less than below left).
func (k *Cache[T]) lookupMany(ctx context.Context, keys []string, token string, below time.Duration) ([]entry, error) {
	rk := make([]string, 0, 1+2*len(keys))
	rk = append(rk, k.tags[0])
	for _, key := range keys {
		rk = append(rk, k.entryKey(key), k.leaseKey(key))
	}
	v, err := scriptCacheGet.run(ctx, k.c.scr, rk, token, k.opt.LeaseTTL.Milliseconds(), below.Milliseconds()).Slice()
	if err != nil {
		return nil, err
	}
	if len(v) != 3*len(keys) {
		return nil, fmt.Errorf("%w: %d items for %d keys", ErrUnexpectedReply, len(v), len(keys))
	}
	out := make([]entry, len(keys))
	for i := range keys {
		raw, ttl, lease := v[3*i], v[3*i+1], v[3*i+2]
		ms, _ := ttl.(int64)
		out[i].began, out[i].lease = leaseGranted(lease)
		if raw == nil {
			continue
		}
		s, _ := raw.(string)
		e, _, tags, ok := parseEntry(s)
		if !ok {
			return nil, fmt.Errorf("%w: cache entry %q", ErrUnexpectedReply, keys[i])
		}
		e.lease, e.began = out[i].lease, out[i].began
		e.ttl = time.Duration(ms) * time.Millisecond
		e.tagged, e.size = len(tags) > 0, len(s)
		e.stale = !e.negative && k.opt.StaleWhileRevalidate > 0 && ms >= 0 && e.ttl < k.opt.StaleWhileRevalidate
		out[i] = e
	}
	return out, nil
}

// loadInto loads keys[idx] with one call of loadMany and fills their
// results; with write, it caches them, each only while token still holds
// its lease, granted at began (see loadAndSet), and releases the leases.
func (k *Cache[T]) loadInto(ctx context.Context, keys []string, res []CacheResult[T], idx []int, loadMany CacheLoadMany[T], opt *CacheSetOptions, token string, began int64, write bool) {
	batch := keysAt(keys, idx)
	vals, delta, err := k.callLoadMany(ctx, batch, loadMany, token)
	if err != nil {
		for _, i := range idx {
			res[i].Err = fmt.Errorf("patterns: cache %q: load %q: %w", k.name, keys[i], err)
		}
		return
	}
	items := make([]cacheItem, 0, len(idx))
	for _, i := range idx {
		v, ok := vals[keys[i]]
		if !ok {
			res[i].Err = ErrCacheNotFound
			items = append(items, cacheItem{key: keys[i], negative: true})
			continue
		}
		res[i].Value = v
		if payload, perr := k.encode(v); perr == nil {
			items = append(items, cacheItem{key: keys[i], payload: payload})
		}
	}
	if write {
		k.writeBack(ctx, batch, items, opt, delta, token, began)
	}
}

// callLoadMany runs loadMany, counting its keys; on an error or a panic it
// releases token's leases of keys (the panic goes on up).
func (k *Cache[T]) callLoadMany(ctx context.Context, keys []string, loadMany CacheLoadMany[T], token string) (vals map[string]T, delta time.Duration, err error) {
	k.loads.Add(int64(len(keys)))
	ok := false
	defer func() {
		if !ok {
			k.loadErrors.Add(int64(len(keys)))
			if token != "" {
				k.releaseLeases(ctx, keys, token)
			}
		}
	}()
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if d := k.opt.loadTimeout(); d > 0 {
		lctx, cancel = context.WithTimeout(ctx, d)
	}
	defer cancel()
	lctx, done := k.c.observe(lctx, PatternCache, OpLoadMany, k.name)
	defer func() {
		if !ok && err == nil { // a panic: reported, and it goes on up
			done.end(OutcomeError, ErrLoaderPanicked)
			return
		}
		done.end(outcome(OutcomeLoaded, err), err)
	}()
	start := time.Now()
	vals, err = loadMany(lctx, keys)
	ok = err == nil
	return vals, time.Since(start), err
}

// writeBack caches what a load returned, with a context of its own (ctx
// may have ended meanwhile; the values are worth keeping), and releases
// token's leases of keys, written or not.
func (k *Cache[T]) writeBack(ctx context.Context, keys []string, items []cacheItem, opt *CacheSetOptions, delta time.Duration, token string, began int64) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.opt.LeaseTTL)
	defer cancel()
	if len(items) > 0 {
		if err := k.writeMany(wctx, items, opt, delta, token, began); err != nil {
			_ = k.redisError("set", items[0].key, err)
		}
	}
	if len(items) < len(keys) { // some value could not be encoded
		k.releaseLeases(wctx, keys, token)
	}
}

// releaseLeases drops the load leases of keys that token holds, in one
// round trip.
func (k *Cache[T]) releaseLeases(ctx context.Context, keys []string, token string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.opt.LeaseTTL)
	defer cancel()
	calls := make([]call, len(keys))
	for i, key := range keys {
		calls[i] = scriptLockRelease.call([]string{k.leaseKey(key)}, token)
	}
	_ = k.c.runBatch(ctx, calls)
}

// cacheItem is one entry to write.
type cacheItem struct {
	key      string
	payload  []byte
	negative bool
}

// writeMany writes items with one cache_set call, each with its TTL
// (jittered) and opt's tags: a write (token "", which revokes the items'
// load leases), or a fill under token's leases granted at began (each item
// written only while token holds its lease, which is then released).
func (k *Cache[T]) writeMany(ctx context.Context, items []cacheItem, opt *CacheSetOptions, delta time.Duration, token string, began int64) error {
	base := k.opt.TTL
	var tags string
	if opt != nil {
		if opt.TTL != 0 {
			base = opt.TTL
		}
		tags = strings.Join(opt.Tags, "\x1f")
	}
	keys := make([]string, 0, 2*len(items))
	args := make([]any, 0, 2+6*len(items))
	args = append(args, token, k.fanout())
	for _, it := range items {
		ttl, neg := base, 0
		if it.negative {
			ttl, neg = k.opt.NegativeTTL, 1
		}
		if k.opt.Jitter > 0 {
			ttl -= time.Duration(rand.Float64() * k.opt.Jitter * float64(ttl))
		}
		if k.opt.StaleWhileRevalidate > 0 && !it.negative {
			ttl += k.opt.StaleWhileRevalidate
		}
		ttl = max(ttl, time.Millisecond)
		keys = append(keys, k.entryKey(it.key), k.leaseKey(it.key))
		args = append(args, it.payload, ttl.Milliseconds(), tags, delta.Microseconds(), neg, writtenArg(began))
	}
	n, err := scriptCacheSet.run(ctx, k.c.scr, keys, args...).Int64()
	if err == nil && token != "" {
		k.refused.Add(int64(len(items)) - n)
	}
	for _, it := range items {
		k.evictLocal(it.key)
	}
	return err
}

// SetMany writes every value of values under its key, MaxBatch keys per
// round trip, like Set (a load under way of one of them is not cached). Bad input (a bad key, opt, or a value the codec
// refuses) is an error with nothing written.
func (k *Cache[T]) SetMany(ctx context.Context, values map[string]T, opt *CacheSetOptions) (err error) {
	ctx, done := k.c.observe(ctx, PatternCache, OpSetMany, k.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := k.checkSet(opt); err != nil {
		return err
	}
	keys := make([]string, 0, len(values))
	payloads := make(map[string][]byte, len(values))
	for key, v := range values {
		if err := checkCacheKey(key); err != nil {
			return err
		}
		p, err := k.encode(v)
		if err != nil {
			return err
		}
		keys, payloads[key] = append(keys, key), p
	}
	return k.chunks(keys, func(batch []string) error {
		items := make([]cacheItem, len(batch))
		for i, key := range batch {
			items[i] = cacheItem{key: key, payload: payloads[key]}
		}
		if err := k.writeMany(ctx, items, opt, 0, "", 0); err != nil {
			return k.redisError("set", batch[0], err)
		}
		return nil
	})
}

// DeleteMany removes the entries of keys, MaxBatch keys per round trip,
// like Delete (with their load leases: a load under way is not cached).
func (k *Cache[T]) DeleteMany(ctx context.Context, keys []string) (err error) {
	ctx, done := k.c.observe(ctx, PatternCache, OpDeleteMany, k.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkCacheKeys(keys); err != nil {
		return err
	}
	return k.chunks(uniqueKeys(keys), func(batch []string) error {
		rk := make([]string, 0, 2*len(batch)) // entry, lease, entry, lease...
		for _, key := range batch {
			rk = append(rk, k.entryKey(key), k.leaseKey(key))
		}
		ch := k.fanout()
		_, err := k.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, rk...)
			if ch != "" {
				for i := 0; i < len(rk); i += 2 {
					p.Publish(ctx, ch, rk[i])
				}
			}
			return nil
		})
		for _, key := range batch {
			k.evictLocal(key)
		}
		if err != nil {
			return k.redisError("delete", batch[0], err)
		}
		return nil
	})
}

// Warm fills the entries of keys that are missing or close to expiry (less
// than a quarter of their TTL left before they expire or go stale),
// MaxBatch keys per call of loadMany, and returns how many keys it loaded.
// Each such key is leased first, as by GetMany: readers keep getting the
// current entry until Warm overwrites it, readers of a missing key wait for
// Warm's value, and a key someone else is loading is left to them. Entries
// with more time left are not touched. The error joins the batches' load
// errors (the other batches are still written), or is bad input
// (ErrInvalidArgument, nothing written), ctx ended, or a Redis error.
func (k *Cache[T]) Warm(ctx context.Context, keys []string, loadMany CacheLoadMany[T], opt *CacheSetOptions) (_ int, err error) {
	ctx, done := k.c.observe(ctx, PatternCache, OpWarm, k.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if loadMany == nil {
		return 0, invalidf("nil loader")
	}
	if err := checkCacheKeys(keys); err != nil {
		return 0, err
	}
	if err := k.checkSet(opt); err != nil {
		return 0, err
	}
	ttl := k.opt.TTL
	if opt != nil && opt.TTL != 0 {
		ttl = opt.TTL
	}
	below := ttl/4 + k.opt.StaleWhileRevalidate
	loaded := 0
	var loadErrs []error
	err = k.chunks(uniqueKeys(keys), func(batch []string) error {
		n, lerr, err := k.refill(ctx, batch, loadMany, opt, below)
		loaded += n
		if lerr != nil {
			loadErrs = append(loadErrs, lerr)
		}
		return err
	})
	if err != nil {
		return loaded, err
	}
	return loaded, errors.Join(loadErrs...)
}

// refill leases the keys of batch that are missing or have less than below
// left, loads them with one call, and writes them back. It returns how many
// it loaded, the load's error, and a Redis or context error.
func (k *Cache[T]) refill(ctx context.Context, batch []string, loadMany CacheLoadMany[T], opt *CacheSetOptions, below time.Duration) (int, error, error) {
	token, err := newToken()
	if err != nil {
		return 0, nil, err
	}
	got, err := k.lookupMany(ctx, batch, token, below)
	if err != nil {
		if cerr := ctxEnded(ctx, err); cerr != nil {
			return 0, nil, fmt.Errorf("patterns: cache %q: warm: %w", k.name, cerr)
		}
		return 0, nil, k.redisError("get", batch[0], err)
	}
	var idx []int
	var began int64
	for i, e := range got {
		if e.lease {
			idx, began = append(idx, i), e.began
		}
	}
	if len(idx) == 0 {
		return 0, nil, nil
	}
	res := make([]CacheResult[T], len(batch))
	k.loadInto(ctx, batch, res, idx, loadMany, opt, token, began, true)
	for _, i := range idx {
		if res[i].Err != nil && !errors.Is(res[i].Err, ErrCacheNotFound) {
			return 0, res[i].Err, nil
		}
	}
	return len(idx), nil, nil
}

// refreshManyInBackground reloads keys (stale or due for early refresh) in
// one goroutine, each key once at a time in the process and, by its lease,
// across processes. A panic of the loader is recovered and goes to OnError.
func (k *Cache[T]) refreshManyInBackground(ctx context.Context, keys []string, loadMany CacheLoadMany[T], opt *CacheSetOptions) {
	var mine []string
	for _, key := range keys {
		if _, busy := k.refreshing.LoadOrStore(key, struct{}{}); !busy {
			mine = append(mine, key)
		}
	}
	if len(mine) == 0 {
		return
	}
	k.bg.Add(1)
	go func() {
		defer k.bg.Done()
		defer func() {
			for _, key := range mine {
				k.refreshing.Delete(key)
			}
		}()
		defer func() {
			if r := recover(); r != nil {
				k.loaderPanicked(strings.Join(mine, ","), r)
			}
		}()
		ctx, cancel := k.loadContext(ctx)
		defer cancel()
		_, _, _ = k.refill(ctx, mine, loadMany, opt, k.opt.MaxTTL+k.opt.StaleWhileRevalidate+time.Hour)
	}()
}
