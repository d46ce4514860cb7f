package patterns_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// exampleRedis returns the examples' go-redis client and a key prefix of
// the example's own, for examples that make their Client themselves.
func exampleRedis(name string) (redis.UniversalClient, string) {
	pc := exampleClient(name)
	return pc.Redis(), pc.Prefix()
}

// Many goroutines calling the patterns at once share pipelines with
// Options.Coalesce; every decision stays exact.
func ExampleNew() {
	ctx := context.Background()
	rdb, prefix := exampleRedis("coalesce") // your *redis.Client (ContextTimeoutEnabled: true), and your prefix
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: prefix, Coalesce: true})
	if err != nil {
		panic(err)
	}
	limiter, err := pc.Limiter("api", nil)
	if err != nil {
		panic(err)
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Go(func() {
			for i := 0; i < 4; i++ {
				res, err := limiter.Allow(ctx, "user:42", patterns.PerDay(50))
				if err != nil {
					fmt.Println(err)
					return
				}
				if res.Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	fmt.Println("admitted", admitted.Load(), "of 64")
	// Output:
	// admitted 50 of 64
}

// printObserver prints what the library tells an Observer: one line per
// operation, at its end.
type printObserver struct{}

func (printObserver) Start(ctx context.Context, op patterns.ObserveOp) (context.Context, func(patterns.ObserveEnd)) {
	return ctx, func(end patterns.ObserveEnd) {
		fmt.Printf("%s.%s %q: %s\n", op.Pattern, op.Operation, op.Name, end.Outcome)
	}
}

// An Observer sees every public operation of every pattern, with its
// outcome; patternsotel turns them into OpenTelemetry spans and metrics.
func ExampleObserver() {
	ctx := context.Background()
	rdb, prefix := exampleRedis("observer")
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: prefix, Observer: printObserver{}})
	if err != nil {
		panic(err)
	}
	lock, err := pc.Obtain(ctx, "invoice:42", 10*time.Second, nil)
	if err != nil {
		panic(err)
	}
	_, _ = pc.Obtain(ctx, "invoice:42", 10*time.Second, nil)
	_ = lock.Release(ctx)

	limiter, _ := pc.Limiter("api", nil)
	_, _ = limiter.Allow(ctx, "user:42", patterns.PerMinute(1))
	_, _ = limiter.Allow(ctx, "user:42", patterns.PerMinute(1))
	// Output:
	// lock.obtain "": obtained
	// lock.obtain "": not-obtained
	// lock.release "": released
	// ratelimit.allow "api": allowed
	// ratelimit.allow "api": denied
}
