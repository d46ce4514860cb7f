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
			_, _ = cache.Get(ctx, "profile:7", slowDB, &patterns.SetOptions{Tags: []string{"team:42"}})
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
	return cache.Delete(ctx, "profile:7")
}
