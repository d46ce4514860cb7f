package patterns

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The writes a load can race with: each runs while a loader is blocked, and
// the load's fill must then not be cached.
var fillWrites = []string{"delete", "delete-many", "set", "set-many", "invalidate"}

// fillWrite runs the write named w on key "k" (tag "t").
func fillWrite(ctx context.Context, k *Cache[string], w string) error {
	switch w {
	case "delete":
		return k.Delete(ctx, "k")
	case "delete-many":
		return k.DeleteMany(ctx, []string{"k", "other"})
	case "set":
		return k.Set(ctx, "k", "v2", nil)
	case "set-many":
		return k.SetMany(ctx, map[string]string{"k": "v2", "other": "o"}, nil)
	case "invalidate":
		return k.InvalidateTags(ctx, "t")
	}
	panic(w)
}

// checkAfterFill checks what a cache holds for "k" after a fill that raced
// with the write w: what Set wrote, or nothing (and the next Get loads).
func checkAfterFill(t *testing.T, ctx context.Context, k *Cache[string], w string) {
	t.Helper()
	v, ok, err := k.Lookup(ctx, "k")
	switch {
	case err != nil:
		t.Fatalf("Lookup after %s during a load: %v", w, err)
	case w == "set" || w == "set-many":
		if !ok || v != "v2" {
			t.Fatalf("Lookup after %s during a load = %q, %t; want what the write wrote, v2", w, v, ok)
		}
		return
	case ok:
		t.Fatalf("Lookup after %s during a load = %q; want a miss (the load began before the write)", w, v)
	}
	got, err := k.Get(ctx, "k", func(context.Context) (string, error) { return "v3", nil }, &CacheSetOptions{Tags: []string{"t"}})
	if err != nil || got != "v3" {
		t.Fatalf("Get after %s during a load = %q, %v; want a new load (v3)", w, got, err)
	}
}

// blocker is a loader that announces its start and waits for release.
type blocker struct{ started, release chan struct{} }

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}), release: make(chan struct{})}
}

func (b *blocker) wait(ctx context.Context) error {
	close(b.started)
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Second):
		return errors.New("never released")
	}
}

func (b *blocker) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-b.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the loader did not start")
	}
}

// fillCache is a cache for the fill tests: with or without a local layer.
func fillCache(t *testing.T, c *Client, name string, local bool, opt CacheOptions) *Cache[string] {
	t.Helper()
	if opt.TTL == 0 {
		opt.TTL = time.Minute
	}
	if local {
		return newLocalCache[string](t, c, name, &opt)
	}
	k, err := NewCache[string](c, name, &opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// TestCacheWriteDuringLoad is the cache-aside race: a Get misses and loads
// (v1, slowly); meanwhile the source of truth changes and a writer calls
// Delete, Set or InvalidateTags; then the load returns. The caller of the
// load gets v1 (it asked before the write), but v1 is not cached: the next
// read sees what the write left (a miss, or what Set wrote). Standalone and
// cluster, with and without a local layer.
func TestCacheWriteDuringLoad(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		for _, local := range []bool{false, true} {
			for _, w := range fillWrites {
				t.Run(map[bool]string{false: "redis", true: "local"}[local]+"/"+w, func(t *testing.T) {
					k := fillCache(t, c, "fill-"+w+map[bool]string{false: "", true: "-local"}[local], local, CacheOptions{})
					b := newBlocker()
					type res struct {
						v   string
						err error
					}
					got := make(chan res, 1)
					go func() {
						v, err := k.Get(ctx, "k", func(ctx context.Context) (string, error) {
							return "v1", b.wait(ctx)
						}, &CacheSetOptions{Tags: []string{"t"}})
						got <- res{v, err}
					}()
					b.waitStarted(t)
					if err := fillWrite(ctx, k, w); err != nil {
						t.Fatal(err)
					}
					close(b.release)
					if r := <-got; r.v != "v1" || r.err != nil {
						t.Fatalf("the Get whose load raced = %q, %v; want the loaded v1", r.v, r.err)
					}
					k.Wait()
					checkAfterFill(t, ctx, k, w)
					// A write revoked the lease: the fill was refused. A tag
					// invalidation does not: the fill is written, hidden.
					want := int64(1)
					if w == "invalidate" {
						want = 0
					}
					if got := k.Stats().FillsRefused; got != want {
						t.Fatalf("FillsRefused = %d after %s during a load, want %d", got, w, want)
					}
				})
			}
		}
	})
}

// TestCacheWriteDuringBatchLoad is TestCacheWriteDuringLoad for the batch
// fills: GetMany, Warm, and a stale-while-revalidate background refresh.
func TestCacheWriteDuringBatchLoad(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		for _, mode := range []string{"get-many", "warm", "refresh", "refresh-many"} {
			for _, w := range fillWrites {
				t.Run(mode+"/"+w, func(t *testing.T) {
					opt := CacheOptions{}
					if mode == "refresh" || mode == "refresh-many" {
						opt = CacheOptions{TTL: 100 * time.Millisecond, StaleWhileRevalidate: time.Minute, Jitter: -1}
					}
					k := fillCache(t, c, "fillb-"+mode+"-"+w, false, opt)
					tags := &CacheSetOptions{Tags: []string{"t"}}
					b := newBlocker()
					loadMany := func(ctx context.Context, keys []string) (map[string]string, error) {
						out := map[string]string{}
						for _, key := range keys {
							out[key] = "v1"
						}
						return out, b.wait(ctx)
					}
					load := func(ctx context.Context) (string, error) { return "v1", b.wait(ctx) }
					if mode == "refresh" || mode == "refresh-many" {
						// A stale entry: served while one background load refreshes it.
						if err := k.Set(ctx, "k", "v0", tags); err != nil {
							t.Fatal(err)
						}
						deadline := time.Now().Add(10 * time.Second)
						for {
							if ttl, _ := rdb.PTTL(ctx, k.entryKey("k")).Result(); ttl >= 0 && ttl < time.Minute { // less than StaleWhileRevalidate left: stale
								break
							}
							if time.Now().After(deadline) {
								t.Fatal("the entry did not go stale")
							}
							time.Sleep(20 * time.Millisecond)
						}
					}
					done := make(chan error, 1)
					go func() {
						var err error
						switch mode {
						case "get-many":
							var r []CacheResult[string]
							if r, err = k.GetMany(ctx, []string{"k"}, loadMany, tags); err == nil && (r[0].Value != "v1" || r[0].Err != nil) {
								err = errors.New("GetMany = " + r[0].Value)
							}
						case "warm":
							var n int
							if n, err = k.Warm(ctx, []string{"k"}, loadMany, tags); err == nil && n != 1 {
								err = errors.New("Warm loaded nothing")
							}
						case "refresh":
							var v string
							if v, err = k.Get(ctx, "k", load, tags); err == nil && v != "v0" {
								err = errors.New("Get of a stale entry = " + v)
							}
						case "refresh-many":
							var r []CacheResult[string]
							if r, err = k.GetMany(ctx, []string{"k"}, loadMany, tags); err == nil && r[0].Value != "v0" {
								err = errors.New("GetMany of a stale entry = " + r[0].Value)
							}
						}
						done <- err
					}()
					b.waitStarted(t)
					if err := fillWrite(ctx, k, w); err != nil {
						t.Fatal(err)
					}
					close(b.release)
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					k.Wait()
					checkAfterFill(t, ctx, k, w)
					want := int64(1) // the write revoked the lease; a tag invalidation does not
					if w == "invalidate" {
						want = 0
					}
					if got := k.Stats().FillsRefused; got != want {
						t.Fatalf("FillsRefused = %d after %s during a load, want %d", got, w, want)
					}
				})
			}
		}
	})
}

// TestCacheFillAfterLeaseExpired: a load that outlives LeaseTTL has lost its
// lease, and with it the guarantee that no write ran meanwhile (the write
// that ran may have found no lease to revoke): its caller gets the value,
// which is not cached.
func TestCacheFillAfterLeaseExpired(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		k := fillCache(t, c, "fill-expired", false, CacheOptions{LeaseTTL: 200 * time.Millisecond})
		b := newBlocker()
		got := make(chan error, 1)
		go func() {
			v, err := k.Get(ctx, "k", func(ctx context.Context) (string, error) { return "v1", b.wait(ctx) }, nil)
			if err == nil && v != "v1" {
				err = errors.New("Get = " + v)
			}
			got <- err
		}()
		b.waitStarted(t)
		deadline := time.Now().Add(10 * time.Second)
		for rdb.Exists(ctx, k.leaseKey("k")).Val() == 1 {
			if time.Now().After(deadline) {
				t.Fatal("the lease did not expire")
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(b.release)
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		k.Wait()
		if v, ok, err := k.Lookup(ctx, "k"); ok || err != nil {
			t.Fatalf("Lookup after a load that outlived its lease = %q, %t, %v; want a miss", v, ok, err)
		}
		if got := k.Stats().FillsRefused; got != 1 {
			t.Fatalf("FillsRefused = %d, want 1", got)
		}
	})
}

// TestCacheWriteDuringNegativeLoad: a load that found nothing
// (ErrCacheNotFound) is not cached as "not found" when a write ran during
// it: a Set during it stays, a Delete leaves a miss.
func TestCacheWriteDuringNegativeLoad(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		for _, w := range fillWrites {
			t.Run(w, func(t *testing.T) {
				k := fillCache(t, c, "filln-"+w, false, CacheOptions{})
				b := newBlocker()
				got := make(chan error, 1)
				go func() {
					_, err := k.Get(ctx, "k", func(ctx context.Context) (string, error) {
						if err := b.wait(ctx); err != nil {
							return "", err
						}
						return "", ErrCacheNotFound
					}, &CacheSetOptions{Tags: []string{"t"}})
					got <- err
				}()
				b.waitStarted(t)
				if err := fillWrite(ctx, k, w); err != nil {
					t.Fatal(err)
				}
				close(b.release)
				if err := <-got; !errors.Is(err, ErrCacheNotFound) {
					t.Fatalf("the Get whose load raced: %v; want ErrCacheNotFound", err)
				}
				k.Wait()
				checkAfterFill(t, ctx, k, w)
			})
		}
	})
}
