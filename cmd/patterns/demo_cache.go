package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redispatterns/patterns"
)

func init() { demos = append(demos, demo{"cache", demoCache}) }

func demoCache(ctx context.Context, pc *patterns.Client, w io.Writer) error {
	type profile struct {
		ID   int
		Name string
	}
	cache, err := patterns.NewCache[profile](pc, "profiles", &patterns.CacheOptions{TTL: time.Minute})
	if err != nil {
		return err
	}
	defer cache.Wait()
	var loads atomic.Int64
	slowDB := func(ctx context.Context) (profile, error) {
		loads.Add(1)
		time.Sleep(200 * time.Millisecond)
		return profile{ID: 7, Name: "Grace"}, nil
	}
	// A stampede: 50 requests for a missing key at once.
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = cache.Get(ctx, "profile:7", slowDB, &patterns.CacheSetOptions{Tags: []string{"team:42"}})
		}()
	}
	wg.Wait()
	fmt.Fprintf(w, "50 concurrent Gets of a missing key: the 200ms loader ran %d time(s), all served in %v\n",
		loads.Load(), time.Since(start).Round(10*time.Millisecond))
	p, _, _ := cache.Lookup(ctx, "profile:7")
	fmt.Fprintf(w, "hit: %+v\n", p)
	if err := cache.InvalidateTags(ctx, "team:42"); err != nil {
		return err
	}
	_, ok, _ := cache.Lookup(ctx, "profile:7")
	fmt.Fprintf(w, "after InvalidateTags(team:42): cached=%t (O(1), whatever the number of entries)\n", ok)
	s := cache.Stats()
	fmt.Fprintf(w, "stats: %d hits, %d misses, %d loads\n", s.Hits, s.Misses, s.Loads)
	if err := cache.Delete(ctx, "profile:7"); err != nil {
		return err
	}
	return demoCacheLocal(ctx, pc, w)
}

// demoCacheLocal shows the in-process layer: a hot key served from memory,
// and a write from elsewhere evicting it.
func demoCacheLocal(ctx context.Context, pc *patterns.Client, w io.Writer) error {
	opt := &patterns.CacheOptions{TTL: time.Minute, Local: &patterns.CacheLocalOptions{MaxEntries: 1000}}
	hot, err := patterns.NewCache[string](pc, "hot", opt)
	if err != nil {
		return err
	}
	defer hot.Close()
	other, err := patterns.NewCache[string](pc, "hot", opt) // stands for another process
	if err != nil {
		return err
	}
	defer other.Close()
	if err := other.Set(ctx, "banner", "summer sale", nil); err != nil {
		return err
	}
	for i := 0; i < 2000 && hot.Stats().LocalHits == 0; i++ { // until the layer is up
		_, _, _ = hot.Lookup(ctx, "banner")
		time.Sleep(time.Millisecond)
	}
	if hot.Stats().LocalHits == 0 {
		_ = other.Delete(ctx, "banner")
		return fmt.Errorf("local layer: no read served from memory after 2000 tries")
	}
	before := hot.Stats()
	start := time.Now()
	for i := 0; i < 10000; i++ {
		_, _, _ = hot.Lookup(ctx, "banner")
	}
	s := hot.Stats()
	fmt.Fprintf(w, "local layer: 10000 Lookups of a hot key in %v (%d from memory, %d from Redis)\n",
		time.Since(start).Round(time.Microsecond), s.LocalHits-before.LocalHits, s.Hits-before.Hits)
	if err := other.Set(ctx, "banner", "winter sale", nil); err != nil {
		return err
	}
	start = time.Now()
	v, _, _ := hot.Lookup(ctx, "banner")
	for ; v != "winter sale" && time.Since(start) < 2*time.Second; v, _, _ = hot.Lookup(ctx, "banner") {
	}
	took := time.Since(start)
	if v != "winter sale" {
		_ = other.Delete(ctx, "banner")
		return fmt.Errorf("another process wrote the key, but this one still read %q %v later: the invalidation did not arrive", v, took.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "another process wrote the key: this one read %q %v later\n", v, took.Round(time.Microsecond))
	return other.Delete(ctx, "banner")
}
