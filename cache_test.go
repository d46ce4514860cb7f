package patterns

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

type user struct {
	ID   int
	Name string
}

func newCache[T any](t testing.TB, c *Client, opt *CacheOptions) *Cache[T] {
	t.Helper()
	k, err := NewCache[T](c, "users", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Wait)
	return k
}

func TestCacheReadThrough(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		k := newCache[user](t, c, &CacheOptions{TTL: time.Minute, Jitter: 0.2})
		loads := 0
		load := func(ctx context.Context) (user, error) { loads++; return user{1, "ana"}, nil }
		for i := 0; i < 3; i++ {
			u, err := k.Get(ctx, "user:1", load, nil)
			if err != nil || u != (user{1, "ana"}) {
				t.Fatalf("Get = %+v, %v", u, err)
			}
		}
		if loads != 1 {
			t.Fatalf("loaded %d times", loads)
		}
		s := k.Stats()
		if s.Hits != 2 || s.Misses != 1 || s.Loads != 1 || s.HitRate() < 0.66 {
			t.Fatalf("stats %+v", s)
		}
		// TTL with jitter: within [0.8, 1] of the TTL.
		ttl, _ := rdb.PTTL(ctx, k.entryKey("user:1")).Result()
		if ttl < 47*time.Second || ttl > time.Minute {
			t.Fatalf("TTL %v outside [48s, 60s]", ttl)
		}
		// Write-through and cache-aside.
		if err := k.Set(ctx, "user:2", user{2, "ben"}, &CacheSetOptions{TTL: 30 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if u, ok, err := k.Lookup(ctx, "user:2"); !ok || err != nil || u.Name != "ben" {
			t.Fatalf("Lookup = %+v %t %v", u, ok, err)
		}
		if err := k.Delete(ctx, "user:2"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := k.Lookup(ctx, "user:2"); ok || err != nil {
			t.Fatalf("after Delete: %t %v", ok, err)
		}
		// Negative caching: not found is remembered, and distinct from a zero value.
		misses := 0
		notFound := func(ctx context.Context) (user, error) { misses++; return user{}, ErrCacheNotFound }
		for i := 0; i < 3; i++ {
			if _, err := k.Get(ctx, "user:404", notFound, nil); !errors.Is(err, ErrCacheNotFound) {
				t.Fatalf("Get missing: %v", err)
			}
		}
		if misses != 1 {
			t.Fatalf("not-found loader ran %d times", misses)
		}
		if _, ok, err := k.Lookup(ctx, "user:404"); !ok || !errors.Is(err, ErrCacheNotFound) {
			t.Fatalf("Lookup of a cached not-found: %t %v", ok, err)
		}
		if ttl, _ := rdb.PTTL(ctx, k.entryKey("user:404")).Result(); ttl > 30*time.Second {
			t.Fatalf("negative TTL %v", ttl)
		}
		k.Set(ctx, "zero", user{}, nil)
		if u, ok, err := k.Lookup(ctx, "zero"); !ok || err != nil || u != (user{}) {
			t.Fatalf("zero value: %+v %t %v", u, ok, err)
		}
		// Loader errors are returned and not cached.
		boom := errors.New("db down")
		if _, err := k.Get(ctx, "user:9", func(context.Context) (user, error) { return user{}, boom }, nil); !errors.Is(err, boom) {
			t.Fatalf("loader error: %v", err)
		}
		if _, ok, _ := k.Lookup(ctx, "user:9"); ok {
			t.Fatal("a failed load was cached")
		}
	})
}

func TestCacheCodecs(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	big := strings.Repeat("compressible ", 1000)
	for _, codec := range []Codec{JSON, Msgpack} {
		k := newCache[map[string]string](t, c, &CacheOptions{Codec: codec, CompressAbove: 100})
		if err := k.Set(ctx, "doc", map[string]string{"body": big}, nil); err != nil {
			t.Fatal(err)
		}
		raw, _ := rdb.Get(ctx, k.entryKey("doc")).Result()
		raw = raw[strings.IndexByte(raw, '\n')+1:]
		if raw[0] != 1 || len(raw) > len(big)/4 {
			t.Fatalf("%T: not compressed (%d bytes)", codec, len(raw))
		}
		v, ok, err := k.Lookup(ctx, "doc")
		if !ok || err != nil || v["body"] != big {
			t.Fatalf("%T: round trip failed: %v", codec, err)
		}
	}
}

// TestCacheTagsNoStaleRead interleaves Sets, Lookups and InvalidateTags: a
// Lookup that starts after InvalidateTags returned never sees a value whose
// Set had completed before InvalidateTags started.
func TestCacheTagsNoStaleRead(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		for _, local := range []bool{false, true} {
			t.Run(map[bool]string{false: "redis", true: "local"}[local], func(t *testing.T) {
				testCacheTagsNoStaleRead(t, rdb, local)
			})
		}
	})
}

// testCacheTagsNoStaleRead is TestCacheTagsNoStaleRead with or without a
// local layer (in one process, its own writes and invalidations evict at
// once).
func testCacheTagsNoStaleRead(t *testing.T, rdb redis.UniversalClient, local bool) {
	ctx := context.Background()
	c := newClient(t, rdb)
	var k *Cache[int64]
	if local {
		k = newLocalCache[int64](t, c, "users", &CacheOptions{TTL: time.Minute})
	} else {
		k = newCache[int64](t, c, &CacheOptions{TTL: time.Minute})
	}
	var seq, completed, boundary atomic.Int64
	var stale, reads, hits atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // one writer: completion order is seq order
		defer wg.Done()
		for !stop.Load() {
			n := seq.Add(1)
			if err := k.Set(ctx, "k"+strconv.FormatInt(n%10, 10), n, &CacheSetOptions{Tags: []string{"all", "t" + strconv.FormatInt(n%3, 10)}}); err != nil {
				t.Error(err)
				return
			}
			completed.Store(n)
		}
	}()
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				b := boundary.Load()
				v, ok, err := k.Lookup(ctx, "k"+strconv.Itoa(rand.IntN(10)))
				reads.Add(1)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					hits.Add(1)
					if v <= b {
						stale.Add(1)
					}
				}
			}
		}()
	}
	// 40 invalidations at least, and on until the local layer has served a
	// read (a loaded machine may need more), for at most 10 s.
	invalidations := 0
	for begin := time.Now(); invalidations < 40 || local && k.Stats().LocalHits == 0 && time.Since(begin) < 10*time.Second; invalidations++ {
		time.Sleep(5 * time.Millisecond)
		snap := completed.Load()
		if err := k.InvalidateTags(ctx, "all"); err != nil {
			t.Fatal(err)
		}
		boundary.Store(snap)
	}
	stop.Store(true)
	wg.Wait()
	localHits := k.Stats().LocalHits
	t.Logf("%d reads (%d hits, %d of them local) across %d invalidations", reads.Load(), hits.Load(), localHits, invalidations)
	if stale.Load() > 0 {
		t.Fatalf("%d stale reads after InvalidateTags returned", stale.Load())
	}
	if local && localHits == 0 {
		t.Fatal("the local layer served no read: the local variant ran the Redis path only")
	}
	// Entries under another tag are untouched; one written after is served.
	k.Set(ctx, "other", 1, &CacheSetOptions{Tags: []string{"other"}})
	k.InvalidateTags(ctx, "all")
	if _, ok, _ := k.Lookup(ctx, "other"); !ok {
		t.Fatal("an entry of another tag was invalidated")
	}
}

// TestCacheTagBookkeeping writes 30,000 tagged entries (100 tenants x 7
// types; 100,000 entries with PATTERNS_SOAK) and invalidates tags meanwhile: tags add no key per entry (the
// bookkeeping is two keys whatever the number of entries), and once the
// entries expired and MaxTTL passed, nothing of the cache is left.
func TestCacheTagBookkeeping(t *testing.T) {
	t.Parallel()
	rdb := ownRedis(t) // counts every key of the server
	ctx := context.Background()
	c := newClient(t, rdb)
	n := 30_000
	if os.Getenv("PATTERNS_SOAK") != "" {
		n = 100_000
	}
	if testing.Short() {
		n = 10_000
	}
	k := newCache[int](t, c, &CacheOptions{TTL: 2 * time.Second, NegativeTTL: time.Second, MaxTTL: 3 * time.Second, Jitter: 0.01})
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += 16 {
				tags := []string{"tenant" + strconv.Itoa(i%100), "type" + strconv.Itoa(i%7)}
				if err := k.Set(ctx, "e"+strconv.Itoa(i), i, &CacheSetOptions{Tags: tags}); err != nil {
					t.Error(err)
					return
				}
				if i%1000 == 0 {
					k.InvalidateTags(ctx, tags...)
				}
			}
		}(g)
	}
	wg.Wait()
	keys, _ := rdb.DBSize(ctx).Result()
	book := int64(0)
	for _, key := range k.tags {
		m, _ := rdb.MemoryUsage(ctx, key).Result()
		book += m
	}
	tagsHeld, _ := rdb.HLen(ctx, k.tags[0]).Result()
	t.Logf("after %d tagged Sets: %d keys in Redis, tag bookkeeping %d bytes in 2 keys (%d tags)", n, keys, book, tagsHeld)
	if tagsHeld > 107 {
		t.Fatalf("%d tag records for 107 distinct tags", tagsHeld)
	}
	time.Sleep(3500 * time.Millisecond)
	after, _ := rdb.DBSize(ctx).Result()
	if after != 0 {
		t.Fatalf("%d keys left after the entries and MaxTTL expired", after)
	}
}

// TestCacheStampede: 64 goroutines in 2 OS processes Get one missing key
// whose loader takes 200 ms; the loader runs once (counted in Redis).
func TestCacheStampede(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	outs := spawnChildren(t, ctx, rdb, 2, "TestCacheStampedeChild", "PATTERNS_TEST_PREFIX="+prefix)
	n, _ := rdb.Get(ctx, prefix+":loads").Int()
	if n != 1 {
		t.Fatalf("the loader ran %d times; child output:\n%s", n, strings.Join(outs, "\n"))
	}
	rdb.Del(ctx, prefix+":loads", prefix+":cache:{users}:e:hot")
}

func TestCacheStampedeChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestCacheStampede in a child process")
	}
	rdb := childRedis(t)
	prefix := os.Getenv("PATTERNS_TEST_PREFIX")
	c, err := New(rdb, &Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	k := newCache[string](t, c, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := k.Get(ctx, "hot", func(ctx context.Context) (string, error) {
				rdb.Incr(ctx, prefix+":loads")
				time.Sleep(200 * time.Millisecond)
				return "value", nil
			}, nil)
			if err != nil || v != "value" {
				t.Errorf("Get = %q, %v", v, err)
			}
		}()
	}
	wg.Wait()
}

func TestCacheEarlyRefresh(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	var version atomic.Int64
	// The refresh waits for the gate, so that the stale Gets below cannot
	// see its value however slow the machine.
	gate := make(chan struct{})
	var gated atomic.Bool
	load := func(ctx context.Context) (int64, error) {
		if gated.Load() {
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
		time.Sleep(5 * time.Millisecond)
		return version.Add(1), nil
	}
	// Stale-while-revalidate: past its TTL the value is served at once and
	// refreshed once in the background.
	swr := newCache[int64](t, c, &CacheOptions{TTL: 200 * time.Millisecond, StaleWhileRevalidate: 5 * time.Second, Jitter: 0.01})
	if v, _ := swr.Get(ctx, "k", load, nil); v != 1 {
		t.Fatalf("first load %d", v)
	}
	gated.Store(true)
	time.Sleep(300 * time.Millisecond)
	for i := 0; i < 5; i++ {
		if v, _ := swr.Get(ctx, "k", load, nil); v != 1 {
			close(gate)
			t.Fatalf("stale Get returned %d, want the stale 1", v)
		}
	}
	close(gate)
	swr.Wait()
	if v, _ := swr.Get(ctx, "k", load, nil); v != 2 {
		t.Fatalf("after the refresh: %d, want 2 (one refresh)", v)
	}
	if s := swr.Stats(); s.StaleServed < 5 || s.Loads != 2 {
		t.Fatalf("stats %+v", s)
	}
	// XFetch: with a large beta every hit refreshes early.
	xf, _ := NewCache[int64](c, "xfetch", &CacheOptions{TTL: time.Minute, Beta: 1e9})
	t.Cleanup(xf.Wait)
	xf.Get(ctx, "k", load, nil)
	xf.Get(ctx, "k", load, nil)
	xf.Wait()
	if s := xf.Stats(); s.EarlyRefreshes != 1 || s.Loads != 2 {
		t.Fatalf("xfetch stats %+v", s)
	}
}

// TestCacheDegradation stops Redis mid-run: Gets return the loader's values,
// errors reach the hook; Redis back, caching resumes by itself.
func TestCacheDegradation(t *testing.T) {
	t.Parallel()
	rdb, proc := testProcess(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	var hookErrs atomic.Int64
	k := newCache[string](t, c, &CacheOptions{OnError: func(op, key string, err error) { hookErrs.Add(1) }})
	load := func(ctx context.Context) (string, error) { return "fresh", nil }
	if v, err := k.Get(ctx, "a", load, nil); err != nil || v != "fresh" {
		t.Fatal(v, err)
	}
	proc.Stop()
	for i := 0; i < 5; i++ {
		if v, err := k.Get(ctx, "a", load, nil); err != nil || v != "fresh" {
			t.Fatalf("Redis down: Get = %q, %v", v, err)
		}
	}
	if hookErrs.Load() == 0 {
		t.Fatal("errors did not reach the hook")
	}
	closed := newCache[string](t, c, &CacheOptions{FailClosed: true})
	if _, err := closed.Get(ctx, "a", load, nil); err == nil {
		t.Fatal("FailClosed returned no error with Redis down")
	}
	proc.Restart()
	hits := k.Stats().Hits
	for i := 0; i < 50 && k.Stats().Hits == hits; i++ {
		k.Get(ctx, "b", load, nil)
		time.Sleep(20 * time.Millisecond)
	}
	if k.Stats().Hits == hits {
		t.Fatal("caching did not resume after Redis came back")
	}
}

func TestCacheBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		k := newCache[int](t, c, nil)
		load := func(context.Context) (int, error) { return 1, nil }
		rejectsAll(t, rdb, c.prefix, map[string]func() error{
			"empty key":   func() error { _, err := k.Get(ctx, "", load, nil); return err },
			"long key":    func() error { return k.Set(ctx, strings.Repeat("k", MaxIDLen+1), 1, nil) },
			"nil loader":  func() error { _, err := k.Get(ctx, "k", nil, nil); return err },
			"neg ttl":     func() error { return k.Set(ctx, "k", 1, &CacheSetOptions{TTL: -time.Second}) },
			"ttl > max":   func() error { return k.Set(ctx, "k", 1, &CacheSetOptions{TTL: 48 * time.Hour}) },
			"empty tag":   func() error { return k.Set(ctx, "k", 1, &CacheSetOptions{Tags: []string{""}}) },
			"no tag":      func() error { return k.InvalidateTags(ctx) },
			"lookup":      func() error { _, _, err := k.Lookup(ctx, ""); return err },
			"delete":      func() error { return k.Delete(ctx, "") },
			"bad options": func() error { _, err := NewCache[int](c, "x", &CacheOptions{Jitter: 2}); return err },
			"ttl option":  func() error { _, err := NewCache[int](c, "x", &CacheOptions{TTL: -1}); return err },
			"empty name":  func() error { _, err := NewCache[int](c, "", nil); return err },
		})
	})
}

func TestQueryKey(t *testing.T) {
	a, _ := QueryKey("SELECT * FROM t WHERE a = ? AND b = ?", 1, map[string]int{"y": 2, "x": 1})
	b, _ := QueryKey("SELECT * FROM t WHERE a = ? AND b = ?", 1, map[string]int{"x": 1, "y": 2})
	c, _ := QueryKey("SELECT * FROM t WHERE a = ? AND b = ?", 2, map[string]int{"x": 1, "y": 2})
	if a != b || a == c || !strings.HasPrefix(a, "q:") || len(a) != 66 {
		t.Fatalf("%s %s %s", a, b, c)
	}
	if _, err := QueryKey("q", func() {}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unencodable parameter: %v", err)
	}
}

// TestCacheOptionsOff: -1 switches off the features that are on by
// default: Jitter (every TTL is the full TTL) and NegativeTTL (a "not
// found" is not stored, and the next Get loads again).
func TestCacheOptionsOff(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		k := newCache[int](t, c, &CacheOptions{TTL: 10 * time.Second, Jitter: -1, NegativeTTL: -1})
		for i := 0; i < 20; i++ {
			key := "j" + strconv.Itoa(i)
			if err := k.Set(ctx, key, i, nil); err != nil {
				t.Fatal(err)
			}
			// Default jitter shortens a TTL by up to 10%: 20 keys all within
			// 1% of it would be a 1 in 10^20 chance.
			if ttl, _ := rdb.PTTL(ctx, k.entryKey(key)).Result(); ttl < 9900*time.Millisecond {
				t.Fatalf("Jitter -1: key %s has a TTL of %v, want 10s", key, ttl)
			}
		}
		loads := 0
		missing := func(context.Context) (int, error) { loads++; return 0, ErrCacheNotFound }
		for i := 0; i < 2; i++ {
			if _, err := k.Get(ctx, "gone", missing, nil); !errors.Is(err, ErrCacheNotFound) {
				t.Fatalf("Get = %v, want ErrCacheNotFound", err)
			}
		}
		if loads != 2 {
			t.Fatalf("NegativeTTL -1: %d loads for 2 Gets of a missing key, want 2", loads)
		}
		if n, _ := rdb.Exists(ctx, k.entryKey("gone")).Result(); n != 0 {
			t.Fatal("NegativeTTL -1: a \"not found\" was stored")
		}
	})
}
