package patterns

import (
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

func init() {
	moreFaultOps = append(moreFaultOps, func(t testing.TB, c *Client) []faultOp {
		k, err := NewCache[string](c, "fault-batch", &CacheOptions{FailClosed: true, TTL: time.Minute, MaxBatch: 4})
		if err != nil {
			t.Fatal(err)
		}
		load := func(_ context.Context, keys []string) (map[string]string, error) {
			m := map[string]string{}
			for _, key := range keys {
				m[key] = "v" + key
			}
			return m, nil
		}
		var n atomic.Int64
		return []faultOp{{name: "cache-batch", run: func(ctx context.Context) error {
			i := n.Add(1) % 16
			keys := []string{strconv.FormatInt(i, 10), strconv.FormatInt(i+1, 10), strconv.FormatInt(i+2, 10), "x", "y"}
			if err := k.SetMany(ctx, map[string]string{keys[0]: "a", keys[1]: "b"}, &CacheSetOptions{Tags: []string{"t"}}); err != nil {
				return err
			}
			res, err := k.GetMany(ctx, keys, load, nil)
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Err != nil {
					return r.Err
				}
			}
			if _, err := k.Warm(ctx, keys, load, nil); err != nil {
				return err
			}
			return k.DeleteMany(ctx, keys[:2])
		}}}
	})
}

// countingLoader loads "v:KEY" for every key but those in absent, and
// records each call's keys.
type countingLoader struct {
	mu     sync.Mutex
	calls  [][]string
	absent map[string]bool
	err    error
}

func (l *countingLoader) load(_ context.Context, keys []string) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, slices.Clone(keys))
	if l.err != nil {
		return nil, l.err
	}
	m := map[string]string{}
	for _, key := range keys {
		if !l.absent[key] {
			m[key] = "v:" + key
		}
	}
	return m, nil
}

func (l *countingLoader) loaded() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, c := range l.calls {
		out = append(out, c...)
	}
	return out
}

func checkResults(t *testing.T, res []CacheResult[string], keys []string, absent map[string]bool) {
	t.Helper()
	if len(res) != len(keys) {
		t.Fatalf("%d results for %d keys", len(res), len(keys))
	}
	for i, r := range res {
		if r.Key != keys[i] {
			t.Fatalf("result %d is %q, want %q", i, r.Key, keys[i])
		}
		if absent[r.Key] {
			if !errors.Is(r.Err, ErrCacheNotFound) {
				t.Fatalf("%q: %q, %v; want ErrCacheNotFound", r.Key, r.Value, r.Err)
			}
			continue
		}
		if r.Err != nil || (r.Value != "v:"+r.Key && r.Value != "set:"+r.Key) {
			t.Fatalf("%q: %q, %v", r.Key, r.Value, r.Err)
		}
	}
}

func TestCacheGetMany(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		k := newCache[string](t, newClient(t, rdb), &CacheOptions{TTL: time.Minute})
		if err := k.SetMany(ctx, map[string]string{"a": "set:a", "c": "set:c"}, nil); err != nil {
			t.Fatal(err)
		}
		absent := map[string]bool{"gone": true}
		l := &countingLoader{absent: absent}
		keys := []string{"a", "b", "gone", "c", "b", "d"}
		res, err := k.GetMany(ctx, keys, l.load, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, res, keys, absent)
		if got := l.loaded(); len(l.calls) != 1 || !slices.Equal(got, []string{"b", "gone", "d"}) {
			t.Fatalf("loader calls %v; want one call with b, gone, d", l.calls)
		}
		// All cached now, "gone" as not found.
		res, err = k.GetMany(ctx, keys, l.load, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, res, keys, absent)
		if len(l.calls) != 1 {
			t.Fatalf("loader called again: %v", l.calls)
		}
		if v, err := k.Get(ctx, "d", noLoad[string](t), nil); err != nil || v != "v:d" {
			t.Fatalf("Get d = %q, %v", v, err)
		}
		if s := k.Stats(); s.Misses != 3 || s.Hits != 2+5+1 || s.Loads != 3 {
			t.Fatalf("stats %+v", s)
		}
		if err := k.DeleteMany(ctx, []string{"a", "b", "a"}); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := k.Lookup(ctx, "a"); ok {
			t.Fatal("a still cached after DeleteMany")
		}
		if _, ok, _ := k.Lookup(ctx, "c"); !ok {
			t.Fatal("c gone after DeleteMany of a, b")
		}
		if res, err := k.GetMany(ctx, nil, l.load, nil); err != nil || len(res) != 0 {
			t.Fatalf("GetMany of no keys = %v, %v", res, err)
		}
	})
}

// noLoad is a loader that fails the test if called.
func noLoad[T any](t *testing.T) func(context.Context) (T, error) {
	return func(context.Context) (T, error) {
		t.Error("loader called")
		var zero T
		return zero, nil
	}
}

func TestCacheGetManySplitsBatches(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		k := newCache[string](t, newClient(t, rdb), &CacheOptions{MaxBatch: 3})
		var keys []string
		for i := 0; i < 11; i++ {
			keys = append(keys, "k"+strconv.Itoa(i))
		}
		if err := k.SetMany(ctx, map[string]string{"k1": "set:k1", "k5": "set:k5", "k9": "set:k9", "k10": "set:k10"}, nil); err != nil {
			t.Fatal(err)
		}
		l := &countingLoader{}
		rev := slices.Clone(keys)
		slices.Reverse(rev)
		res, err := k.GetMany(ctx, rev, l.load, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, res, rev, nil)
		for _, c := range l.calls {
			if len(c) > 3 {
				t.Fatalf("a loader call of %d keys over MaxBatch 3: %v", len(c), l.calls)
			}
		}
		if got := l.loaded(); len(got) != 7 {
			t.Fatalf("loaded %v, want the 7 missing keys once", got)
		}
		if err := k.DeleteMany(ctx, keys); err != nil {
			t.Fatal(err)
		}
		for _, key := range keys {
			if _, ok, _ := k.Lookup(ctx, key); ok {
				t.Fatalf("%s still cached", key)
			}
		}
	})
}

func TestCacheGetManyTags(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		k := newCache[string](t, newClient(t, rdb), nil)
		if err := k.SetMany(ctx, map[string]string{"a": "set:a", "b": "set:b"}, &CacheSetOptions{Tags: []string{"red"}}); err != nil {
			t.Fatal(err)
		}
		if err := k.Set(ctx, "c", "set:c", &CacheSetOptions{Tags: []string{"blue"}}); err != nil {
			t.Fatal(err)
		}
		if err := k.InvalidateTags(ctx, "red"); err != nil {
			t.Fatal(err)
		}
		l := &countingLoader{}
		keys := []string{"a", "b", "c", "d"}
		res, err := k.GetMany(ctx, keys, l.load, &CacheSetOptions{Tags: []string{"green"}})
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, res, keys, nil)
		if res[0].Value != "v:a" || res[2].Value != "set:c" || !slices.Equal(l.loaded(), []string{"a", "b", "d"}) {
			t.Fatalf("results %v, loads %v: want a, b (invalidated) and d loaded, c served", res, l.calls)
		}
		// What GetMany wrote carries its tags.
		if err := k.InvalidateTags(ctx, "green"); err != nil {
			t.Fatal(err)
		}
		if _, err := k.GetMany(ctx, keys, l.load, nil); err != nil {
			t.Fatal(err)
		}
		if got := l.loaded(); !slices.Equal(got, []string{"a", "b", "d", "a", "b", "d"}) {
			t.Fatalf("loads %v: want a, b, d loaded again after their tag's invalidation", l.calls)
		}
	})
}

func TestCacheGetManyLoaderError(t *testing.T) {
	ctx := context.Background()
	k := newCache[string](t, newClient(t, testRedis(t)), &CacheOptions{LeaseWait: 10 * time.Second})
	if err := k.Set(ctx, "a", "set:a", nil); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	l := &countingLoader{err: boom}
	res, err := k.GetMany(ctx, []string{"a", "b"}, l.load, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Value != "set:a" || !errors.Is(res[1].Err, boom) {
		t.Fatalf("results %+v: want a served and b failed", res)
	}
	// The lease was released: the next call loads at once, not after LeaseWait.
	l.err = nil
	start := time.Now()
	if res, err := k.GetMany(ctx, []string{"b"}, l.load, nil); err != nil || res[0].Value != "v:b" {
		t.Fatalf("%+v, %v", res, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v: the failed load's lease was kept", d)
	}
	// A panic releases the leases too, and goes on up.
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		_, _ = k.GetMany(ctx, []string{"p"}, func(context.Context, []string) (map[string]string, error) { panic("x") }, nil)
	}()
	if n, _ := k.c.rdb.Exists(ctx, k.leaseKey("p")).Result(); n != 0 {
		t.Fatal("lease of p kept after the loader panicked")
	}
}

func TestCacheBatchBadInput(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	c := newClient(t, rdb)
	k := newCache[string](t, c, nil)
	l := &countingLoader{}
	bad := []string{"ok", ""}
	if _, err := k.GetMany(ctx, bad, l.load, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("GetMany with an empty key: %v", err)
	}
	if _, err := k.GetMany(ctx, []string{"ok"}, nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("GetMany with no loader: %v", err)
	}
	if _, err := k.GetMany(ctx, []string{"ok"}, l.load, &CacheSetOptions{Tags: []string{"a\nb"}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("GetMany with a bad tag: %v", err)
	}
	if _, err := k.Warm(ctx, bad, l.load, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Warm with an empty key: %v", err)
	}
	if err := k.SetMany(ctx, map[string]string{"ok": "v", "": "v"}, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("SetMany with an empty key: %v", err)
	}
	if err := k.DeleteMany(ctx, bad); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("DeleteMany with an empty key: %v", err)
	}
	if len(l.calls) != 0 {
		t.Fatalf("loader called: %v", l.calls)
	}
	if n, _ := rdb.Exists(ctx, k.entryKey("ok"), k.leaseKey("ok")).Result(); n != 0 {
		t.Fatal("bad input wrote keys")
	}
	for _, n := range []int{-1, maxMaxBatch + 1} {
		if _, err := NewCache[string](c, "x", &CacheOptions{MaxBatch: n}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("MaxBatch %d: %v", n, err)
		}
	}
}

func TestCacheGetManyLocal(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, testRedis(t))
	k := newLocalCache[string](t, c, "users", &CacheOptions{TTL: time.Minute})
	l := &countingLoader{absent: map[string]bool{"z": true}}
	keys := []string{"a", "b", "z"}
	for i := 0; i < 2; i++ {
		res, err := k.GetMany(ctx, keys, l.load, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, res, keys, l.absent)
	}
	deadline := time.Now().Add(5 * time.Second)
	for k.Stats().LocalHits < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: the local layer served nothing", k.Stats())
		}
		if _, err := k.GetMany(ctx, keys, l.load, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.calls) != 1 {
		t.Fatalf("loader calls %v", l.calls)
	}
}

func TestCacheWarm(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		k := newCache[string](t, newClient(t, rdb), &CacheOptions{TTL: time.Minute, Jitter: 0.01, MaxBatch: 2})
		if err := k.Set(ctx, "fresh", "set:fresh", nil); err != nil {
			t.Fatal(err)
		}
		if err := k.Set(ctx, "old", "set:old", &CacheSetOptions{TTL: 5 * time.Second}); err != nil {
			t.Fatal(err) // 5s left of a minute: under a quarter
		}
		l := &countingLoader{absent: map[string]bool{"gone": true}}
		keys := []string{"fresh", "old", "new1", "new2", "gone"}
		n, err := k.Warm(ctx, keys, l.load, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := l.loaded()
		slices.Sort(got)
		if n != 4 || !slices.Equal(got, []string{"gone", "new1", "new2", "old"}) {
			t.Fatalf("Warm loaded %d: %v", n, l.calls)
		}
		for _, c := range l.calls {
			if len(c) > 2 {
				t.Fatalf("a loader call over MaxBatch: %v", l.calls)
			}
		}
		res, err := k.GetMany(ctx, keys, noLoadMany(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, res, keys, l.absent)
		if res[1].Value != "v:old" {
			t.Fatalf("old = %q: not refreshed", res[1].Value)
		}
		if n, err := k.Warm(ctx, keys, l.load, nil); err != nil || n != 0 {
			t.Fatalf("second Warm loaded %d, %v", n, err)
		}
		boom := errors.New("boom")
		if _, err := k.Warm(ctx, []string{"x"}, func(context.Context, []string) (map[string]string, error) { return nil, boom }, nil); !errors.Is(err, boom) {
			t.Fatalf("Warm with a failing loader: %v", err)
		}
	})
}

func noLoadMany(t *testing.T) CacheLoadMany[string] {
	return func(_ context.Context, keys []string) (map[string]string, error) {
		t.Errorf("loader called with %v", keys)
		return nil, nil
	}
}

// TestCacheGetManyTwoProcesses: 2 OS processes, 4 goroutines each, GetMany
// overlapping key sets of missing keys with a slow loader; every key is
// loaded exactly once (counted in Redis).
func TestCacheGetManyTwoProcesses(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		outs := spawnChildren(t, ctx, rdb, 2, "TestCacheGetManyChild", "PATTERNS_TEST_PREFIX="+c.prefix)
		counts := c.key("cache", "batch", "loads")
		m, err := rdb.HGetAll(ctx, counts).Result()
		if err != nil {
			t.Fatal(err)
		}
		rdb.Del(ctx, counts)
		if len(m) != 40 {
			t.Fatalf("%d keys loaded, want 40; children:\n%s", len(m), strings.Join(outs, "\n"))
		}
		for key, n := range m {
			if n != "1" {
				t.Fatalf("%s loaded %s times; children:\n%s", key, n, strings.Join(outs, "\n"))
			}
		}
	})
}

func TestCacheGetManyChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestCacheGetManyTwoProcesses in a child process")
	}
	c := childClient(t)
	k, err := NewCache[string](c, "batch", &CacheOptions{LeaseWait: 20 * time.Second, LeaseTTL: 20 * time.Second, MaxBatch: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Wait()
	counts := c.key("cache", "batch", "loads")
	load := func(ctx context.Context, keys []string) (map[string]string, error) {
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, key := range keys {
				p.HIncrBy(ctx, counts, key, 1)
			}
			p.Expire(ctx, counts, time.Minute)
			return nil
		})
		if err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
		m := map[string]string{}
		for _, key := range keys {
			m[key] = "v:" + key
		}
		return m, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Goroutine g asks keys 5g to 5g+24: overlapping windows of 40 keys.
			var keys []string
			for i := 5 * g; i < 5*g+25; i++ {
				keys = append(keys, fmt.Sprintf("k%02d", i))
			}
			if os.Getenv("PATTERNS_TEST_CHILD_INDEX") == "1" {
				slices.Reverse(keys)
			}
			res, err := k.GetMany(ctx, keys, load, nil)
			if err != nil {
				t.Errorf("GetMany: %v", err)
				return
			}
			for i, r := range res {
				if r.Key != keys[i] || r.Err != nil || r.Value != "v:"+keys[i] {
					t.Errorf("result %d: %+v", i, r)
				}
			}
		}()
	}
	wg.Wait()
}

// TestCacheGetManyStale: a stale entry is served by GetMany and refreshed
// once in the background.
func TestCacheGetManyStale(t *testing.T) {
	ctx := context.Background()
	k := newCache[string](t, newClient(t, testRedis(t)), &CacheOptions{TTL: time.Minute, StaleWhileRevalidate: 30 * time.Second, Jitter: 0.01})
	if err := k.Set(ctx, "s", "set:s", &CacheSetOptions{TTL: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // past its TTL: stale for 30s more
	l := &countingLoader{}
	res, err := k.GetMany(ctx, []string{"s"}, l.load, nil)
	if err != nil || res[0].Value != "set:s" {
		t.Fatalf("%+v, %v: want the stale value", res, err)
	}
	k.Wait()
	if got := l.loaded(); !slices.Equal(got, []string{"s"}) || k.Stats().StaleServed != 1 {
		t.Fatalf("loads %v, stats %+v: want one background refresh", l.calls, k.Stats())
	}
	if v, ok, err := k.Lookup(ctx, "s"); !ok || err != nil || v != "v:s" {
		t.Fatalf("after the refresh: %q, %v, %v", v, ok, err)
	}
}
