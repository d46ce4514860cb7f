package patterns

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// newLocalCache returns a cache with a local layer (opt's, else a default
// one; opt itself is not modified), closed by t.Cleanup, once its
// invalidation subscription is confirmed.
func newLocalCache[T any](t testing.TB, c *Client, name string, opt *CacheOptions) *Cache[T] {
	t.Helper()
	var o CacheOptions
	if opt != nil {
		o = *opt
	}
	if o.Local == nil {
		o.Local = &CacheLocalOptions{}
	}
	k, err := NewCache[T](c, name, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	waitLocalUp(t, k, 0)
	return k
}

// waitLocalUp waits up to 10 seconds until the layer's subscription has been
// confirmed more than after times.
func waitLocalUp[T any](t testing.TB, k *Cache[T], after int64) {
	t.Helper()
	eventuallyWithin(t, 10*time.Second, fmt.Sprintf("local layer up (confirmed more than %d times)", after), func() bool {
		return k.local.up.Load() && k.local.ups.Load() > after
	})
}

// eventually polls cond for up to 5 seconds: a liveness check, not a timing
// assertion (the delays are measured in TestCacheLocalTwoProcesses).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 5*time.Second, what, cond)
}

// eventuallyWithin is eventually with a deadline of d.
func eventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdLocally reads key until the local layer holds it: the first read
// after a write may be dropped by the write's own invalidation arriving.
func holdLocally[T any](t testing.TB, k *Cache[T], key string) {
	t.Helper()
	settle(t, k, key)
	eventually(t, key+" held locally", func() bool {
		k.Lookup(context.Background(), key)
		_, ok := k.local.get(key)
		return ok
	})
}

// localLayersInvalidate checks two local layers of one cache on c, as in two
// processes: the first tracks keys (CLIENT TRACKING accepted), and its write
// invalidates what the second holds. opt's TTL is set to a minute.
func localLayersInvalidate(t *testing.T, c *Client, opt CacheOptions) {
	t.Helper()
	ctx := context.Background()
	opt.TTL = time.Minute
	a := newLocalCache[string](t, c, "local", &opt)
	b := newLocalCache[string](t, c, "local", &opt)
	if !a.local.tracking.Load() {
		t.Error("local layer: CLIENT TRACKING refused")
	}
	if err := a.Set(ctx, "k", "v1", nil); err != nil {
		t.Fatal(err)
	}
	holdLocally(t, b, "k")
	if err := a.Set(ctx, "k", "v2", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "invalidation reaches the other layer", func() bool {
		v, _, _ := b.Lookup(ctx, "k")
		return v == "v2"
	})
}

// settle returns once k's layer has handled every invalidation sent to it
// before the call (the tracking messages of earlier writes may still be on
// their way, and one arriving after a later read dropped what that read
// stored). It publishes the name of a key whose stripe is none of avoid's
// on the layer's channel, which reaches the layer's connection after
// everything sent before, and waits until that stripe moves.
func settle[T any](t testing.TB, k *Cache[T], avoid ...string) {
	t.Helper()
	barrier := "barrier"
	for i := 0; slices.ContainsFunc(avoid, func(a string) bool { return k.local.stripe(a) == k.local.stripe(barrier) }); i++ {
		barrier = "barrier" + strconv.Itoa(i)
	}
	stripe := &k.local.stripes[k.local.stripe(barrier)]
	seq := stripe.Load()
	// Published again until seen: a layer that is reconnecting (a failover)
	// misses what is published meanwhile.
	eventually(t, "earlier invalidations handled", func() bool {
		if stripe.Load() != seq {
			return true
		}
		_ = k.c.rdb.Publish(context.Background(), k.local.channel, k.entryKey(barrier)).Err()
		return false
	})
}

func TestCacheLocal(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		// a and b are two independent layers on the same cache, as in two
		// processes.
		a := newLocalCache[user](t, c, "users", &CacheOptions{TTL: time.Minute, Local: &CacheLocalOptions{TTL: 20 * time.Second}})
		b := newLocalCache[user](t, c, "users", &CacheOptions{TTL: time.Minute})
		if !a.local.tracking.Load() {
			t.Fatal("the server did not accept CLIENT TRACKING")
		}
		loads := 0
		load := func(ctx context.Context) (user, error) { loads++; return user{1, "ana"}, nil }
		for i := 0; i < 5; i++ {
			if u, err := a.Get(ctx, "u1", load, nil); err != nil || u.Name != "ana" {
				t.Fatalf("Get = %+v, %v", u, err)
			}
		}
		// miss + load, a Redis hit that fills the layer (a second one when
		// the invalidation of the load's own Set arrived during the first),
		// then local hits.
		if s := a.Stats(); loads != 1 || s.Misses != 1 || s.Hits+s.LocalHits != 4 || s.LocalHits < 2 || s.HitRate() != 0.8 {
			t.Fatalf("loads %d, stats %+v", loads, s)
		}
		// Local TTL: min(option, what is left in Redis).
		e, ok := a.local.store.GetEntry("u1")
		if !ok || e.Value.ttl > 20*time.Second || e.Value.ttl < 19*time.Second {
			t.Fatalf("local TTL %v, want the 20s option", e.Value.ttl)
		}
		a.Set(ctx, "short", user{2, "ben"}, &CacheSetOptions{TTL: 3 * time.Second})
		holdLocally(t, a, "short")
		if e, ok := a.local.store.GetEntry("short"); !ok || e.Value.ttl > 3*time.Second {
			t.Fatalf("local TTL %v over the Redis TTL of 3s", e.Value.ttl)
		}

		// A write in this process evicts at once.
		if err := a.Set(ctx, "u1", user{1, "ana2"}, nil); err != nil {
			t.Fatal(err)
		}
		if u, _, _ := a.Lookup(ctx, "u1"); u.Name != "ana2" {
			t.Fatalf("own write not seen: %+v", u)
		}
		// A write through another layer reaches this one.
		for _, k := range []*Cache[user]{a, b} {
			if u, ok, err := k.Lookup(ctx, "u1"); !ok || err != nil || u.Name != "ana2" {
				t.Fatalf("Lookup %+v %t %v", u, ok, err)
			}
		}
		holdLocally(t, b, "u1")
		hitsBefore := b.Stats().LocalHits
		b.Lookup(ctx, "u1")
		if b.Stats().LocalHits != hitsBefore+1 {
			t.Fatal("b did not serve u1 locally")
		}
		if err := a.Set(ctx, "u1", user{1, "ana3"}, nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, "b sees a's Set", func() bool { u, _, _ := b.Lookup(ctx, "u1"); return u.Name == "ana3" })
		if err := a.Delete(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "b sees a's Delete", func() bool { _, ok, _ := b.Lookup(ctx, "u1"); return !ok })

		// Negative entries are held too.
		notFound := func(ctx context.Context) (user, error) { return user{}, ErrCacheNotFound }
		eventually(t, "negative entry held locally", func() bool {
			if _, err := b.Get(ctx, "404", notFound, nil); !errors.Is(err, ErrCacheNotFound) {
				t.Fatal(err)
			}
			e, ok := b.local.get("404")
			return ok && e.negative
		})
		if _, ok, err := b.Lookup(ctx, "404"); !ok || !errors.Is(err, ErrCacheNotFound) {
			t.Fatalf("local negative hit: %t %v", ok, err)
		}

		// Tags: an invalidation through a evicts b's tagged entries only.
		a.Set(ctx, "t1", user{3, "cy"}, &CacheSetOptions{Tags: []string{"team"}})
		a.Set(ctx, "plain", user{4, "di"}, nil)
		holdLocally(t, b, "t1")
		holdLocally(t, b, "plain")
		if err := a.InvalidateTags(ctx, "team"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := a.Lookup(ctx, "t1"); ok {
			t.Fatal("own InvalidateTags: tagged entry still served")
		}
		eventually(t, "b sees a's InvalidateTags", func() bool { _, ok, _ := b.Lookup(ctx, "t1"); return !ok })
		if _, ok := b.local.get("plain"); !ok {
			t.Fatal("an untagged entry was evicted by a tag invalidation")
		}
		// A write from outside the library is seen too (tracking).
		rdb.Del(ctx, b.entryKey("plain"))
		eventually(t, "b sees a raw DEL", func() bool { _, ok := b.local.get("plain"); return !ok })

		// Close: the layer is emptied and the cache goes on from Redis.
		b.Close()
		if b.local.store.EstimatedSize() != 0 {
			t.Fatal("Close left entries")
		}
		b.Set(ctx, "after", user{5, "ed"}, nil)
		if u, ok, err := b.Lookup(ctx, "after"); !ok || err != nil || u.Name != "ed" {
			t.Fatalf("after Close: %+v %t %v", u, ok, err)
		}
		if _, ok := b.local.get("after"); ok {
			t.Fatal("a closed layer stored an entry")
		}
	})
}

// TestCacheLocalStaleStoreRace checks the guard against the classic race:
// a value read from Redis before a write must not be stored after the
// write's invalidation was handled.
func TestCacheLocalStaleStoreRace(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	k := newLocalCache[int](t, c, "race", nil)
	k.Set(ctx, "k", 1, nil)
	// A reader took its snapshot and read 1 ...
	e, err := k.lookup(ctx, "k")
	if err != nil || !e.hit {
		t.Fatal(e, err)
	}
	// ... then another process wrote 2 and its invalidation was handled ...
	k.local.invalidateRedisKey(k.entryKey("k"))
	// ... then the reader stores what it read: it must not stay.
	k.keep("k", e, 1)
	if _, ok := k.local.get("k"); ok {
		t.Fatal("a value read before an invalidation was kept")
	}
	// Same with a clear (lost connection) and with the layer down.
	e, _ = k.lookup(ctx, "k")
	k.local.clear()
	k.keep("k", e, 1)
	if _, ok := k.local.get("k"); ok {
		t.Fatal("a value read before a clear was kept")
	}
	// A tagged value read before a tag invalidation is not served.
	k.Set(ctx, "t", 1, &CacheSetOptions{Tags: []string{"x"}})
	e, _ = k.lookup(ctx, "t")
	k.local.invalidateRedisKey(k.tags[0])
	k.keep("t", e, 1)
	if _, ok := k.local.get("t"); ok {
		t.Fatal("a tagged value read before a tag invalidation was served")
	}
	// Without interference the value is kept (once the tracking
	// invalidations of the Sets above, which could drop it, are handled).
	settle(t, k, "k", "t")
	e, _ = k.lookup(ctx, "k")
	k.keep("k", e, 1)
	if _, ok := k.local.get("k"); !ok {
		t.Fatal("a clean read was not kept")
	}
	k.local.setUp(false)
	e, _ = k.lookup(ctx, "k")
	k.keep("k", e, 1)
	if _, ok := k.local.get("k"); ok {
		t.Fatal("stored while the invalidation channel was down")
	}
}

// TestCacheLocalTwoProcesses: one OS process writes a key 10,000 times, the
// other reads it in a loop through its local layer. The reader never sees a
// value older than one it saw before, ends on the last value, serves some
// reads from its layer (else the check is of Redis alone), and the delay
// from a write's return to the reader seeing it (or a newer value) is
// measured and logged.
func TestCacheLocalTwoProcesses(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		n := 10_000
		if testing.Short() {
			n = 1_000
		}
		w := newLocalCache[int64](t, c, "hot", nil)
		if err := w.Set(ctx, "k", 0, nil); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd := startChild(t, rdb, "TestCacheLocalReaderChild", &out,
			"PATTERNS_TEST_PREFIX="+c.prefix, "PATTERNS_TEST_N="+strconv.Itoa(n))
		ready := c.prefix + ":ready"
		eventually(t, "reader ready", func() bool { return rdb.Exists(ctx, ready).Val() == 1 })
		returned := make([]int64, n+1) // wall clock (ns) when Set(n) returned
		for i := 1; i <= n; i++ {
			if err := w.Set(ctx, "k", int64(i), nil); err != nil {
				t.Fatal(err)
			}
			returned[i] = time.Now().UnixNano()
			time.Sleep(100 * time.Microsecond)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("reader: %v\n%s", err, out.String())
		}
		// Lines "SEEN value unixnano", in the order seen, then one
		// "STATS localHits redisHits".
		var seenV, seenT []int64
		localHits, redisHits := int64(-1), int64(-1)
		sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 3 && f[0] == "SEEN" {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				ts, _ := strconv.ParseInt(f[2], 10, 64)
				seenV, seenT = append(seenV, v), append(seenT, ts)
			}
			if len(f) == 3 && f[0] == "STATS" {
				localHits, _ = strconv.ParseInt(f[1], 10, 64)
				redisHits, _ = strconv.ParseInt(f[2], 10, 64)
			}
		}
		if len(seenV) == 0 || seenV[len(seenV)-1] != int64(n) {
			t.Fatalf("the reader did not end on %d:\n%s", n, out.String())
		}
		// Without local hits "never older" would hold trivially (Redis alone).
		if localHits <= 0 || redisHits < 0 {
			t.Fatalf("the reader's layer served %d reads (%d from Redis): its local layer was not exercised:\n%s", localHits, redisHits, out.String())
		}
		delays := make([]time.Duration, 0, n)
		j := 0
		for i := 1; i <= n; i++ {
			for seenV[j] < int64(i) {
				j++
			}
			delays = append(delays, max(0, time.Duration(seenT[j]-returned[i])))
		}
		slices.Sort(delays)
		q := func(p float64) time.Duration { return delays[int(p*float64(len(delays)-1))] }
		t.Logf("%d writes, %d distinct values seen by the reader process; delay from a write's return to the reader seeing it: p50 %v, p90 %v, p99 %v, max %v; reader: %d local hits, %d Redis hits",
			n, len(seenV), q(0.5), q(0.9), q(0.99), delays[len(delays)-1], localHits, redisHits)
	})
}

func TestCacheLocalReaderChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestCacheLocalTwoProcesses in a child process")
	}
	c := childClient(t)
	ctx := context.Background()
	n, err := strconv.ParseInt(os.Getenv("PATTERNS_TEST_N"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	k := newLocalCache[int64](t, c, "hot", nil)
	if err := c.rdb.Set(ctx, c.prefix+":ready", 1, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	last := int64(-1)
	deadline := time.Now().Add(2 * time.Minute)
	for last < n && time.Now().Before(deadline) {
		v, ok, err := k.Lookup(ctx, "k")
		now := time.Now().UnixNano()
		if err != nil || !ok {
			t.Fatalf("Lookup: %d %t %v", v, ok, err)
		}
		if v < last {
			t.Fatalf("saw %d after %d: an older value after a newer one", v, last)
		}
		if v > last {
			last = v
			fmt.Fprintf(&buf, "SEEN %d %d\n", v, now)
		}
		time.Sleep(20 * time.Microsecond) // a busy reader, not a spinning one
	}
	s := k.Stats()
	fmt.Fprintf(&buf, "STATS %d %d\n", s.LocalHits, s.Hits) // local hits, Redis hits
	fmt.Print(buf.String())
}

// TestCacheLocalOtherProcess: Set, Delete and InvalidateTags run by another
// OS process evict this process's local entries.
func TestCacheLocalOtherProcess(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	k := newLocalCache[string](t, c, "docs", nil)
	k.Set(ctx, "set", "old", nil)
	k.Set(ctx, "del", "old", nil)
	k.Set(ctx, "tagged", "old", &CacheSetOptions{Tags: []string{"team"}})
	k.Set(ctx, "plain", "old", nil)
	for _, key := range []string{"set", "del", "tagged", "plain"} {
		holdLocally(t, k, key)
	}
	spawnChildren(t, ctx, rdb, 1, "TestCacheLocalWriterChild", "PATTERNS_TEST_PREFIX="+c.prefix)
	eventually(t, "Set from another process", func() bool { v, _, _ := k.Lookup(ctx, "set"); return v == "new" })
	eventually(t, "Delete from another process", func() bool { _, ok, _ := k.Lookup(ctx, "del"); return !ok })
	eventually(t, "InvalidateTags from another process", func() bool { _, ok, _ := k.Lookup(ctx, "tagged"); return !ok })
	if _, ok := k.local.get("plain"); !ok {
		t.Fatal("an untouched entry was evicted")
	}
}

func TestCacheLocalWriterChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestCacheLocalOtherProcess in a child process")
	}
	ctx := context.Background()
	k, err := NewCache[string](childClient(t), "docs", nil) // no local layer of its own
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Set(ctx, "set", "new", nil); err != nil {
		t.Fatal(err)
	}
	if err := k.Delete(ctx, "del"); err != nil {
		t.Fatal(err)
	}
	if err := k.InvalidateTags(ctx, "team"); err != nil {
		t.Fatal(err)
	}
}

// TestCacheLocalRedisRestart restarts Redis under a reader: the layers are
// cleared, and once the reader's layer is back no read returns a value of
// before the restart.
func TestCacheLocalRedisRestart(t *testing.T) {
	rdb, proc := testProcess(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	var lost atomic.Int64
	r := newLocalCache[string](t, c, "users", &CacheOptions{OnError: func(op, key string, err error) {
		if op == "local" {
			lost.Add(1)
		}
	}})
	w := newLocalCache[string](t, c, "users", nil)
	if err := w.Set(ctx, "k", "before", nil); err != nil {
		t.Fatal(err)
	}
	holdLocally(t, r, "k")
	ups, wUps := r.local.ups.Load(), w.local.ups.Load()
	proc.Restart() // an empty server: "before" is gone from Redis
	// Reads go on meanwhile; once the layer is confirmed again none may
	// return "before".
	var stale atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			back := r.local.ups.Load() > ups
			v, ok, _ := r.Lookup(ctx, "k")
			if back && ok && v == "before" {
				stale.Add(1)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	waitLocalUp(t, r, ups)
	waitLocalUp(t, w, wUps)
	if _, ok := r.local.get("k"); ok {
		t.Fatal("the layer was not cleared by the reconnect")
	}
	eventually(t, "Set after the restart", func() bool { return w.Set(ctx, "k", "after", nil) == nil })
	eventually(t, "reader sees the new value", func() bool { v, _, _ := r.Lookup(ctx, "k"); return v == "after" })
	stop.Store(true)
	wg.Wait()
	if stale.Load() > 0 {
		t.Fatalf("%d reads returned the value of before the restart after the layer came back", stale.Load())
	}
	if lost.Load() == 0 {
		t.Fatal("the loss of the invalidation connection was not reported")
	}
}

// TestCacheLocalPubSubFallback denies CLIENT TRACKING by ACL: the layers
// fall back to pub/sub invalidations published by the writers.
func TestCacheLocalPubSubFallback(t *testing.T) {
	rdb, _ := testProcess(t)
	ctx := context.Background()
	if err := rdb.Do(ctx, "ACL", "SETUSER", "default", "-client|tracking").Err(); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, rdb)
	a := newLocalCache[int](t, c, "n", nil)
	b := newLocalCache[int](t, c, "n", nil)
	if a.local.tracking.Load() || b.local.tracking.Load() {
		t.Fatal("tracking reported on although the ACL denies it")
	}
	a.Set(ctx, "k", 1, &CacheSetOptions{Tags: []string{"t"}})
	holdLocally(t, b, "k")
	a.Set(ctx, "k", 2, &CacheSetOptions{Tags: []string{"t"}})
	eventually(t, "published Set", func() bool { v, _, _ := b.Lookup(ctx, "k"); return v == 2 })
	a.InvalidateTags(ctx, "t")
	eventually(t, "published InvalidateTags", func() bool { _, ok, _ := b.Lookup(ctx, "k"); return !ok })
	a.Set(ctx, "k", 3, nil)
	holdLocally(t, b, "k")
	a.Delete(ctx, "k")
	eventually(t, "published Delete", func() bool { _, ok, _ := b.Lookup(ctx, "k"); return !ok })

	// A write-behind over the same cache: its Set evicts from its own layer
	// at once and publishes to the others.
	wb, err := NewWriteBehind[int](c, "n", &WriteBehindOptions{Cache: &CacheOptions{Local: &CacheLocalOptions{}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wb.Cache().Close)
	waitLocalUp(t, wb.Cache(), 0)
	a.Set(ctx, "k", 4, nil)
	holdLocally(t, b, "k")
	holdLocally(t, wb.Cache(), "k")
	if err := wb.Set(ctx, "k", 5, nil); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := wb.Cache().Lookup(ctx, "k"); v != 5 {
		t.Fatalf("own layer after WriteBehind.Set: %d, want 5", v)
	}
	eventually(t, "published WriteBehind.Set", func() bool { v, _, _ := b.Lookup(ctx, "k"); return v == 5 })
}

// TestCacheLocalMemoryBound fills layers far past their bounds.
func TestCacheLocalMemoryBound(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	value := strings.Repeat("x", 1000)
	for _, tc := range []struct {
		name string
		opt  CacheLocalOptions
	}{
		{"entries", CacheLocalOptions{MaxEntries: 100}},
		{"bytes", CacheLocalOptions{MaxBytes: 64 << 10}},
		{"both", CacheLocalOptions{MaxEntries: 20, MaxBytes: 64 << 10}},
	} {
		k := newLocalCache[string](t, c, "fill-"+tc.name, &CacheOptions{TTL: time.Minute, Local: &tc.opt})
		// put weighs an entry as its key, its Redis value (the encoded,
		// here uncompressed, value and a header) and localOverhead: at least
		// len(value)+localOverhead bytes. The live count (EstimatedSize, the
		// hash table's size: no maintenance runs to read it) times that must
		// stay within MaxBytes.
		minWeight := int64(len(value) + localOverhead)
		maxSize := 0
		for i := 0; i < 3000; i++ {
			key := "k" + strconv.Itoa(i)
			if err := k.Set(ctx, key, value, nil); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := k.Lookup(ctx, key); !ok || err != nil {
				t.Fatal(ok, err)
			}
			maxSize = max(maxSize, k.local.store.EstimatedSize())
		}
		held := 0
		for i := 0; i < 3000; i++ {
			if _, ok := k.local.get("k" + strconv.Itoa(i)); ok {
				held++
			}
		}
		t.Logf("%s: 3000 entries of ~1KB through a layer bounded by %+v: at most %d entries (at least %d bytes); %d held at the end",
			tc.name, tc.opt, maxSize, int64(maxSize)*minWeight, held)
		if held == 0 {
			t.Fatal("nothing held")
		}
		// The layer's own invalidation goroutine may be running otter's
		// maintenance when a put returns (see put): one entry over.
		if tc.opt.MaxEntries > 0 && maxSize > tc.opt.MaxEntries+1 {
			t.Fatalf("%d entries over MaxEntries %d", maxSize, tc.opt.MaxEntries)
		}
		if tc.opt.MaxBytes > 0 && int64(maxSize-1)*minWeight > tc.opt.MaxBytes {
			t.Fatalf("%d entries of at least %d bytes each: over MaxBytes %d", maxSize, minWeight, tc.opt.MaxBytes)
		}
		k.Close()
	}
}

func TestCacheLocalBadOptions(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": rdb.Options().Addr}})
	t.Cleanup(func() { ring.Close() })
	rc, _ := New(ring, nil)
	for name, o := range map[string]*CacheLocalOptions{
		"negative entries": {MaxEntries: -1},
		"negative bytes":   {MaxBytes: -1},
		"negative ttl":     {TTL: -time.Second},
		"ttl over max":     {TTL: 48 * time.Hour},
		"tiny ping":        {PingInterval: time.Millisecond},
		"sub-ms ttl":       {TTL: time.Microsecond},
	} {
		if _, err := NewCache[int](c, "x", &CacheOptions{Local: o}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := NewCache[int](rc, "x", &CacheOptions{Local: &CacheLocalOptions{}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ring: %v, want ErrInvalidArgument", err)
	}
}

func TestUnescapePart(t *testing.T) {
	for _, s := range []string{"plain", "a:b", "50%", "{x}", "\x00\n", "%41"} {
		if got, ok := unescapePart(escapePart(s)); !ok || got != s {
			t.Errorf("%q: got %q %t", s, got, ok)
		}
	}
	for _, s := range []string{"%", "%4", "%zz"} {
		if _, ok := unescapePart(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

// TestCacheLocalSlotMove migrates the cache's slot to another master under a
// reader: its layer leaves the old master (cleared) and tracks the new one,
// so a write after the move still reaches it.
func TestCacheLocalSlotMove(t *testing.T) {
	t.Parallel()
	rdb := ownCluster(t) // moves a slot
	ctx := context.Background()
	c := newClient(t, rdb)
	r := newLocalCache[string](t, c, "moving", &CacheOptions{Local: &CacheLocalOptions{PingInterval: 50 * time.Millisecond}})
	w, err := NewCache[string](c, "moving", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Set(ctx, "k", "v1", nil); err != nil {
		t.Fatal(err)
	}
	holdLocally(t, r, "k")
	ups := r.local.ups.Load()

	slot := int(rdb.ClusterKeySlot(ctx, r.tags[0]).Val())
	src, err := rdb.MasterForKey(ctx, r.tags[0])
	if err != nil {
		t.Fatal(err)
	}
	var dst *redis.Client
	var mu sync.Mutex
	rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		if n.Options().Addr != src.Options().Addr {
			dst = n
		}
		return nil
	})
	srcID, dstID := src.ClusterMyID(ctx).Val(), dst.ClusterMyID(ctx).Val()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	keys := src.ClusterGetKeysInSlot(ctx, slot, 1000).Val()
	host, port, _ := strings.Cut(dst.Options().Addr, ":")
	args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	if len(keys) > 0 {
		must(src.Do(ctx, args...).Err())
	}
	rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		return n.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err()
	})
	// The reader reads the moved entry again (from the new master) and may
	// hold it locally; a write on the new master must still reach it.
	holdLocally(t, r, "k")
	if err := w.Set(ctx, "k", "v2", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reader sees a write made after the slot moved", func() bool { v, _, _ := r.Lookup(ctx, "k"); return v == "v2" })
	waitLocalUp(t, r, ups) // the layer moved to the new master
}

// TestCacheLocalSentinelFailover fails the master over under a reader (a
// Sentinel failover client): a write on the new master still reaches the
// reader's layer.
func TestCacheLocalSentinelFailover(t *testing.T) {
	t.Parallel()
	rdb, set := testSentinel(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	r := newLocalCache[string](t, c, "failover", &CacheOptions{Local: &CacheLocalOptions{PingInterval: 100 * time.Millisecond}})
	w, err := NewCache[string](c, "failover", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Set(ctx, "k", "v1", nil); err != nil {
		t.Fatal(err)
	}
	holdLocally(t, r, "k")
	if n, err := rdb.Wait(ctx, 1, 1000).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT: %d replicas acknowledged, %v", n, err)
	}
	if err := set.Failover(ctx); err != nil {
		t.Fatal(err)
	}
	_, replica := set.Addrs()
	port := "tcp_port:" + replica[strings.LastIndex(replica, ":")+1:]
	eventually(t, "client on the promoted replica", func() bool {
		info, _ := rdb.Info(ctx, "server").Result()
		return strings.Contains(info, port)
	})
	eventually(t, "write after the failover", func() bool { return w.Set(ctx, "k", "v2", nil) == nil })
	eventually(t, "reader sees a write made after the failover", func() bool { v, _, _ := r.Lookup(ctx, "k"); return v == "v2" })
	holdLocally(t, r, "k")
	if err := w.Set(ctx, "k", "v3", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reader sees the next write", func() bool { v, _, _ := r.Lookup(ctx, "k"); return v == "v3" })
	t.Logf("layer confirmed %d times", r.local.ups.Load())
}

// TestCacheLocalQuietConnection: a quiet invalidation connection is pinged,
// answers, and stays up (no clear, no reconnect).
func TestCacheLocalQuietConnection(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	var errs atomic.Int64
	k := newLocalCache[int](t, c, "quiet", &CacheOptions{
		OnError: func(op, key string, err error) { errs.Add(1); t.Log(op, err) },
		Local:   &CacheLocalOptions{PingInterval: 20 * time.Millisecond},
	})
	time.Sleep(300 * time.Millisecond) // 15 ping intervals
	if n := k.local.ups.Load(); n != 1 || errs.Load() != 0 || !k.local.up.Load() {
		t.Fatalf("confirmed %d times, %d errors: the quiet connection was dropped", n, errs.Load())
	}
}
