package patterns

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// CacheLocalOptions configure the in-process layer of a Cache
// (CacheOptions.Local): a bounded map in front of Redis, kept coherent across
// processes by Redis client tracking, or by pub/sub where the server refuses
// tracking (writes that do not go through a cache with a local layer are
// then not seen before TTL). A write that returned in one process stops
// being served by the layers of the others after one network hop. When the
// invalidation connection is lost or the server it tracks changes (failover,
// slot move), the layer is cleared and stays empty until a new connection is
// confirmed: a stale entry is served for at most about 2×PingInterval, and
// never longer than TTL.
//
// A local hit returns the value decoded when it was stored: maps, slices and
// pointers in it are shared by every caller and must not be modified.
type CacheLocalOptions struct {
	// MaxEntries bounds the number of entries held.
	//
	// default: 10,000 when MaxBytes is 0; otherwise no bound on the count
	MaxEntries int

	// MaxBytes bounds the estimated memory of the entries held: per entry,
	// the key, the encoded value as stored in Redis and 64 bytes of overhead.
	//
	// default: 0 (no bound in bytes)
	MaxBytes int64

	// TTL is the longest an entry is served from memory. It is further
	// capped, per entry, by what the entry has left in Redis (less
	// StaleWhileRevalidate), so a local entry never outlives its Redis one.
	//
	// default: 1 minute
	TTL time.Duration

	// PingInterval is how often a quiet invalidation connection is pinged,
	// and how often the server it tracks is checked against the one the
	// application's client reaches (slot owner, failover); a connection that
	// has not answered one PingInterval later is taken as lost and the layer
	// is cleared.
	//
	// default: 1 second
	PingInterval time.Duration
}

// localOverhead is the bytes counted per entry on top of key and value.
const localOverhead = 64

// trackingChannel is where Redis sends BCAST invalidations to a RESP2
// connection that redirects tracking to itself.
const trackingChannel = "__redis__:invalidate"

// errLocalLost reports an invalidation connection that stopped answering.
var errLocalLost = errors.New("patterns: cache local layer: invalidation connection did not answer a ping")

// localEntry is one value held in memory.
type localEntry[T any] struct {
	v        T
	negative bool
	tagged   bool
	tagEpoch uint64 // the layer's tag epoch when the value was read from Redis
	ttl      time.Duration
	weight   uint32
}

const localStripes = 64

// localLayer is the in-process layer of a Cache[T].
//
// Stale-store guard: a reader takes a snapshot (epoch, the key's stripe
// counter, the tag epoch) before its GET, and after storing what the GET
// returned it checks the epoch and the stripe again, dropping the entry if
// either moved. An invalidation bumps the key's stripe, then deletes; a clear
// bumps the epoch, then deletes everything. Whatever the interleaving, a
// value read before a write whose invalidation arrived is never left in the
// layer; tagged entries are checked against the tag epoch on every hit.
type localLayer[T any] struct {
	store *otter.Cache[string, localEntry[T]]

	rdb         redis.UniversalClient
	keyPrefix   string // prefix:cache:{name}: (the tracked prefix)
	entryPrefix string // keyPrefix + "e:"
	tagsKey     string
	channel     string // the pub/sub fallback channel
	ttl, ping   time.Duration
	swr         time.Duration
	minWeight   uint32
	maxEntries  int // the count bound when not weighted
	onError     func(op, key string, err error)

	hits     atomic.Int64 // reads served (CacheStats.LocalHits)
	up       atomic.Bool  // the invalidation subscription is confirmed
	ups      atomic.Int64 // how many times it was confirmed
	tracking atomic.Bool  // the server accepted CLIENT TRACKING on it
	epoch    atomic.Uint64
	tagEpoch atomic.Uint64
	stripes  [localStripes]atomic.Uint64
	seed     maphash.Seed

	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	ps     *redis.PubSub
	closed bool
}

// checkLocal validates o and returns it with defaults applied.
func checkLocal(o CacheLocalOptions, maxTTL time.Duration) (CacheLocalOptions, error) {
	if o.MaxEntries < 0 || o.MaxBytes < 0 || o.TTL < 0 || o.PingInterval < 0 {
		return o, invalidf("local layer: MaxEntries %d, MaxBytes %d, TTL %v, PingInterval %v: none may be negative", o.MaxEntries, o.MaxBytes, o.TTL, o.PingInterval)
	}
	if o.MaxEntries == 0 && o.MaxBytes == 0 {
		o.MaxEntries = 10_000
	}
	if o.TTL == 0 {
		o.TTL = time.Minute
	}
	if o.PingInterval == 0 {
		o.PingInterval = time.Second
	}
	if err := checkTTL("local TTL", o.TTL); err != nil {
		return o, err
	}
	if o.TTL > maxTTL {
		return o, invalidf("local TTL %v over MaxTTL %v", o.TTL, maxTTL)
	}
	if o.PingInterval < 10*time.Millisecond {
		return o, invalidf("local PingInterval %v: want at least 10ms", o.PingInterval)
	}
	if o.MaxBytes > 0 && o.MaxEntries > 0 && o.MaxBytes/int64(o.MaxEntries) > math.MaxUint32 {
		return o, invalidf("local MaxBytes %d per MaxEntries %d: too large", o.MaxBytes, o.MaxEntries)
	}
	return o, nil
}

// newLocalLayer makes the layer and starts its invalidation listener. Its
// cache's entries are Redis keys entryPrefix + escaped key, its tag record
// tagsKey, and channel is the pub/sub fallback's.
func newLocalLayer[T any](rdb redis.UniversalClient, entryPrefix, tagsKey, channel string, o CacheLocalOptions, copt *CacheOptions) (*localLayer[T], error) {
	switch rdb.(type) {
	case *redis.Client, *redis.ClusterClient:
	default:
		return nil, invalidf("local layer: needs a *redis.Client or *redis.ClusterClient, not %T", rdb)
	}
	l := &localLayer[T]{
		rdb:         rdb,
		keyPrefix:   tagsKey[:strings.LastIndexByte(tagsKey, ':')+1], // prefix:cache:{name}:
		entryPrefix: entryPrefix,
		tagsKey:     tagsKey,
		channel:     channel,
		ttl:         o.TTL,
		ping:        o.PingInterval,
		swr:         copt.StaleWhileRevalidate,
		onError:     copt.OnError,
		seed:        maphash.MakeSeed(),
		done:        make(chan struct{}),
	}
	opt := &otter.Options[string, localEntry[T]]{
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, localEntry[T]]) time.Duration { return e.Value.ttl }),
		// Maintenance on the writing goroutine: no goroutine per write (put
		// waits for it when another goroutine holds it).
		Executor: func(fn func()) { fn() },
	}
	switch {
	case o.MaxBytes > 0:
		// Both bounds at once: each entry weighs at least MaxBytes/MaxEntries,
		// so a total weight within MaxBytes also keeps the count within
		// MaxEntries.
		if o.MaxEntries > 0 {
			l.minWeight = uint32((o.MaxBytes + int64(o.MaxEntries) - 1) / int64(o.MaxEntries))
		}
		opt.MaximumWeight = uint64(o.MaxBytes)
		opt.Weigher = func(_ string, e localEntry[T]) uint32 { return e.weight }
	default:
		opt.MaximumSize = o.MaxEntries
		l.maxEntries = o.MaxEntries
	}
	store, err := otter.New(opt)
	if err != nil {
		return nil, invalidf("local layer: %v", err)
	}
	l.store = store
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.run(ctx)
	return l, nil
}

// localSnap is what a reader saw before its GET.
type localSnap struct {
	epoch, seq, tags uint64
	stripe           uint8
	ok               bool
}

func (l *localLayer[T]) stripe(key string) uint8 {
	return uint8(maphash.String(l.seed, key) % localStripes)
}

// begin takes the snapshot a later put is checked against.
func (l *localLayer[T]) begin(key string) localSnap {
	s := localSnap{epoch: l.epoch.Load()}
	if !l.up.Load() {
		return s
	}
	s.ok = true
	s.stripe = l.stripe(key)
	s.seq = l.stripes[s.stripe].Load()
	s.tags = l.tagEpoch.Load()
	return s
}

// get returns the entry held for key, if any is servable, and counts the
// hit.
func (l *localLayer[T]) get(key string) (localEntry[T], bool) {
	e, ok := l.store.GetIfPresent(key)
	if !ok {
		return e, false
	}
	if e.tagged && e.tagEpoch != l.tagEpoch.Load() {
		l.store.Invalidate(key)
		return e, false
	}
	l.hits.Add(1)
	return e, true
}

// put stores what a GET read after s was taken; redisTTL is the PTTL read
// with it, size the bytes of the Redis entry.
func (l *localLayer[T]) put(s localSnap, key string, v T, negative, tagged bool, redisTTL time.Duration, size int) {
	if !s.ok || redisTTL <= 0 {
		return
	}
	ttl := min(l.ttl, redisTTL-l.swr)
	if ttl <= 0 {
		return
	}
	w := uint32(min(int64(size)+int64(len(key))+localOverhead, math.MaxUint32))
	w = max(w, l.minWeight)
	l.store.Set(key, localEntry[T]{v: v, negative: negative, tagged: tagged, tagEpoch: s.tags, ttl: ttl, weight: w})
	// otter evicts in the maintenance that follows a write, which this
	// goroutine skips when another one (an invalidation, a concurrent put)
	// is running it; wait for that, so that the layer is within its bound
	// when put returns (and over it by at most the puts in flight meanwhile).
	if l.maxEntries == 0 || l.store.EstimatedSize() > l.maxEntries {
		l.store.CleanUp()
	}
	if l.epoch.Load() != s.epoch || l.stripes[s.stripe].Load() != s.seq {
		l.store.Invalidate(key)
	}
}

// invalidate drops key (the caller's key, not escaped).
func (l *localLayer[T]) invalidate(key string) {
	l.stripes[l.stripe(key)].Add(1)
	l.store.Invalidate(key)
}

// invalidateTags makes every tagged entry unservable.
func (l *localLayer[T]) invalidateTags() { l.tagEpoch.Add(1) }

// invalidateRedisKey handles the name of a Redis key that changed.
func (l *localLayer[T]) invalidateRedisKey(rk string) {
	switch {
	case strings.HasPrefix(rk, l.entryPrefix):
		if key, ok := unescapePart(rk[len(l.entryPrefix):]); ok {
			l.invalidate(key)
		}
	case rk == l.tagsKey:
		l.invalidateTags()
	}
}

// clear drops everything.
func (l *localLayer[T]) clear() {
	l.epoch.Add(1)
	l.store.InvalidateAll()
}

func (l *localLayer[T]) setUp(up bool) {
	if up {
		l.clear()
		l.up.Store(true)
		l.ups.Add(1)
		return
	}
	l.up.Store(false)
	l.clear()
}

// close stops the listener and empties the layer.
func (l *localLayer[T]) close() {
	l.mu.Lock()
	l.closed = true
	ps := l.ps
	l.mu.Unlock()
	l.cancel()
	if ps != nil {
		_ = ps.Close()
	}
	<-l.done
	l.setUp(false)
	l.store.StopAllGoroutines()
}

// run keeps an invalidation connection up until the layer is closed.
func (l *localLayer[T]) run(ctx context.Context) {
	defer close(l.done)
	wait := 20 * time.Millisecond
	for {
		wasUp, err := l.session(ctx)
		l.setUp(false)
		if ctx.Err() != nil {
			return
		}
		if err != nil && l.onError != nil {
			l.onError("local", "", fmt.Errorf("patterns: cache local layer: %w", err))
		}
		if wasUp {
			wait = 20 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// nodeOptions returns the options of the server that owns the cache's keys.
func (l *localLayer[T]) nodeOptions(ctx context.Context) (*redis.Options, error) {
	switch c := l.rdb.(type) {
	case *redis.ClusterClient:
		n, err := c.MasterForKey(ctx, l.tagsKey)
		if err != nil {
			return nil, err
		}
		return n.Options(), nil
	case *redis.Client:
		return c.Options(), nil
	}
	return nil, fmt.Errorf("unsupported client %T", l.rdb)
}

// serverRunID returns the run_id of the server rdb reaches, or "" when the
// server does not tell (INFO refused).
func serverRunID(ctx context.Context, rdb redis.Cmdable) (string, error) {
	info, err := rdb.Info(ctx, "server").Result()
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if id, ok := strings.CutPrefix(line, "run_id:"); ok {
			return strings.TrimSpace(id), nil
		}
	}
	return "", nil
}

// checkServer reports an error when the application's client no longer
// reaches the server that the invalidation connection tracks (addr, runID):
// a cluster slot that moved, a failover, a restart.
func (l *localLayer[T]) checkServer(ctx context.Context, addr, runID string) error {
	var node redis.Cmdable = l.rdb
	if cc, ok := l.rdb.(*redis.ClusterClient); ok {
		n, err := cc.MasterForKey(ctx, l.tagsKey)
		if err != nil {
			return err
		}
		if n.Options().Addr != addr {
			return fmt.Errorf("the cache's slot moved from %s to %s", addr, n.Options().Addr)
		}
		node = n
	}
	now, err := serverRunID(ctx, node)
	if err != nil {
		return err
	}
	if runID != "" && now != "" && now != runID {
		return fmt.Errorf("the cache's keys moved to another server (run_id %s, tracking %s)", now, runID)
	}
	return nil
}

// connOptions derives the options of the invalidation connection from the
// application's: same server, credentials, TLS and dialer; RESP2 (tracking
// messages then arrive as pub/sub messages, which go-redis's PubSub reads);
// tracking set up on every (re)connect, and the server's run_id recorded in
// runID.
func (l *localLayer[T]) connOptions(src *redis.Options, runID *atomic.Pointer[string]) *redis.Options {
	o := *src
	o.Protocol = 2
	o.PushNotificationProcessor = nil
	o.MaintNotificationsConfig = nil
	o.ClientSideCache = nil
	o.ClientSideCacheConfig = nil
	o.ClientSideCacheRefreshOnInvalidate = false
	o.ClientSideCacheCoalesceMisses = false
	o.AutoPipelineOptions = nil
	o.PoolSize = 1
	o.MinIdleConns = 0
	user := src.OnConnect
	o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		if user != nil {
			if err := user(ctx, cn); err != nil {
				return err
			}
		}
		rid, err := serverRunID(ctx, cn)
		if err != nil {
			return err
		}
		runID.Store(&rid)
		id, err := cn.ClientID(ctx).Result()
		if err == nil {
			err = cn.ClientTrackingOn(ctx, &redis.ClientTrackingOptions{Redirect: id, Bcast: true, Prefixes: []string{l.keyPrefix}}).Err()
		}
		var rerr redis.Error
		switch {
		case err == nil:
			l.tracking.Store(true)
		case errors.As(err, &rerr):
			l.tracking.Store(false) // refused: the pub/sub fallback
		default:
			return err
		}
		return nil
	}
	return &o
}

// session runs one invalidation connection until it fails; wasUp reports
// whether its subscription was confirmed.
func (l *localLayer[T]) session(ctx context.Context) (wasUp bool, err error) {
	src, err := l.nodeOptions(ctx)
	if err != nil {
		return false, err
	}
	addr := src.Addr
	var runID atomic.Pointer[string]
	cl := redis.NewClient(l.connOptions(src, &runID))
	defer cl.Close()
	ps := cl.Subscribe(ctx, trackingChannel, l.channel)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = ps.Close()
		return false, nil
	}
	l.ps = ps
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.ps = nil
		l.mu.Unlock()
		_ = ps.Close()
	}()
	pinged := false
	checked := time.Now()
	for {
		msg, err := ps.ReceiveTimeout(ctx, l.ping)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return wasUp, err
			}
			if pinged {
				return wasUp, errLocalLost
			}
			if err := ps.Ping(ctx); err != nil {
				return wasUp, err
			}
			pinged = true
		}
		if time.Since(checked) >= l.ping {
			checked = time.Now()
			rid := ""
			if p := runID.Load(); p != nil {
				rid = *p
			}
			if err := l.checkServer(ctx, addr, rid); err != nil {
				return wasUp, err
			}
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Count == 2 {
				wasUp = true
				l.setUp(true)
			}
		case *redis.Message:
			pinged = false
			if m.Channel == trackingChannel {
				for _, k := range m.PayloadSlice {
					l.invalidateRedisKey(k)
				}
				if m.PayloadSlice == nil {
					l.invalidateRedisKey(m.Payload)
				}
			} else {
				l.invalidateRedisKey(m.Payload)
			}
		case *redis.Pong:
			pinged = false
		}
	}
}

// unescapePart reverses escapePart.
func unescapePart(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, lo := strings.IndexByte(hexDigits, s[i+1]), strings.IndexByte(hexDigits, s[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b), true
}
