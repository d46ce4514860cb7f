package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleClient_Semaphore() {
	ctx := context.Background()
	pc := exampleClient("semaphore")

	// At most 2 exports at once across the fleet; a crashed exporter's
	// permit comes back after its 30 s lease.
	sem, err := pc.Semaphore("exports", &patterns.SemaphoreOptions{Permits: 2, Lease: 30 * time.Second})
	if err != nil {
		panic(err)
	}
	a, _ := sem.Acquire(ctx)
	b, _ := sem.Acquire(ctx)
	_, err = sem.TryAcquire(ctx)
	fmt.Println(errors.Is(err, patterns.ErrNoPermit))

	fmt.Println(a.Release(ctx))
	c, err := sem.TryAcquire(ctx)
	fmt.Println(err)
	_ = b.Release(ctx)
	_ = c.Release(ctx)
	// Output:
	// true
	// <nil>
	// <nil>
}

func ExampleSemaphore_WithPermit() {
	ctx := context.Background()
	pc := exampleClient("withpermit")
	sem, err := pc.Semaphore("reindex", &patterns.SemaphoreOptions{Permits: 3, Lease: 5 * time.Second, Fair: true})
	if err != nil {
		panic(err)
	}
	err = sem.WithPermit(ctx, func(ctx context.Context) error {
		// The lease is refreshed while this runs; ctx is cancelled at once
		// if the permit is lost.
		fmt.Println("reindexing")
		return nil
	})
	fmt.Println(err)
	// Output:
	// reindexing
	// <nil>
}

func ExampleConcurrencyLimiter_Middleware() {
	pc := exampleClient("concurrency")
	// At most 1 slow request in flight per client; more get 429.
	cl, err := pc.ConcurrencyLimiter("reports", &patterns.ConcurrencyLimiterOptions{Permits: 1})
	if err != nil {
		panic(err)
	}
	inside := make(chan struct{})
	done := make(chan struct{})
	h, err := cl.Middleware(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inside)
		<-done
	}))
	if err != nil {
		panic(err)
	}
	first := httptest.NewRecorder()
	served := make(chan struct{})
	go func() {
		defer close(served)
		h.ServeHTTP(first, httptest.NewRequest("GET", "/report", nil))
	}()
	<-inside // the first request is in the handler
	second := httptest.NewRecorder()
	h.ServeHTTP(second, httptest.NewRequest("GET", "/report", nil))
	fmt.Println(second.Code, second.Header().Get("Retry-After"))
	close(done)
	<-served
	fmt.Println(first.Code)
	// Output:
	// 429 1
	// 200
}

func ExampleLimiter_Wait() {
	pc := exampleClient("wait")
	limiter, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: patterns.TokenBucket})
	if err != nil {
		panic(err)
	}
	lim := patterns.Limit{Rate: 10, Period: time.Second, Burst: 1}
	defer limiter.Reset(context.Background(), "crawler", lim)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	for i := 0; i < 3; i++ {
		if err := limiter.Wait(ctx, "crawler", lim); err != nil {
			panic(err)
		}
	}
	fmt.Println("3 events, paced:", time.Since(start) >= 150*time.Millisecond)

	// A wait that cannot end before the deadline returns at once.
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	defer limiter.Reset(ctx, "crawler", patterns.PerHour(1))
	err = limiter.Wait(short, "crawler", patterns.PerHour(1))
	fmt.Println(err == nil)
	err = limiter.Wait(short, "crawler", patterns.PerHour(1))
	fmt.Println(errors.Is(err, patterns.ErrWaitDeadline))
	// Output:
	// 3 events, paced: true
	// true
	// true
}

func ExampleLimiter_AllowAtMost() {
	ctx := context.Background()
	pc := exampleClient("atmost")
	limiter, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: patterns.TokenBucket})
	if err != nil {
		panic(err)
	}
	defer limiter.Reset(ctx, "mailer", patterns.PerMinute(5))
	// A batch of 8 sends against 5 per minute: 5 go now, 3 wait.
	n, res, err := limiter.AllowAtMost(ctx, "mailer", 8, patterns.PerMinute(5))
	if err != nil {
		panic(err)
	}
	fmt.Println(n, res.Remaining)
	n, res, _ = limiter.AllowAtMost(ctx, "mailer", 3, patterns.PerMinute(5))
	fmt.Println(n, res.RetryAfter > 0)
	// Output:
	// 5 0
	// 0 true
}
