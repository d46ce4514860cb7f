package patterns_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleLimiter_Allow() {
	ctx := context.Background()
	pc := exampleClient("ratelimit")
	limiter, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: patterns.TokenBucket})
	if err != nil {
		panic(err)
	}
	defer limiter.Reset(ctx, "user:42", patterns.PerMinute(3), patterns.PerDay(100))
	// 3 per minute, and 100 per day, checked and consumed together.
	for i := 0; i < 4; i++ {
		res, err := limiter.Allow(ctx, "user:42", patterns.PerMinute(3), patterns.PerDay(100))
		if err != nil {
			panic(err)
		}
		fmt.Printf("allowed=%t remaining=%d retry-after>0=%t\n", res.Allowed, res.Remaining, res.RetryAfter > 0)
	}
	// Output:
	// allowed=true remaining=2 retry-after>0=false
	// allowed=true remaining=1 retry-after>0=false
	// allowed=true remaining=0 retry-after>0=false
	// allowed=false remaining=0 retry-after>0=true
}

func ExampleLimiter_Middleware() {
	pc := exampleClient("middleware")
	limiter, _ := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: patterns.SlidingWindowLog})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	h, err := limiter.Middleware(&patterns.LimiterMiddlewareOptions{
		Limits: []patterns.Limit{{Rate: 2, Period: time.Minute}},
	}, api)
	if err != nil {
		panic(err)
	}
	defer limiter.Reset(context.Background(), "192.0.2.10", patterns.Limit{Rate: 2, Period: time.Minute})
	for i := 0; i < 3; i++ {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/api", nil)
		r.RemoteAddr = "192.0.2.10:4321"
		h.ServeHTTP(w, r)
		fmt.Println(w.Code, w.Header().Get("X-RateLimit-Remaining"), w.Header().Get("Retry-After") != "")
	}
	// Output:
	// 200 1 false
	// 200 0 false
	// 429 0 true
}

func ExampleLimiterOptions_denyLocally() {
	ctx := context.Background()
	pc := exampleClient("ratelimit-local")
	// Floods are denied in this process until the RetryAfter Redis gave;
	// while Redis cannot be reached, each of 4 processes admits a quarter of
	// the limit.
	limiter, err := pc.Limiter("api", &patterns.LimiterOptions{DenyLocally: true, FallbackInstances: 4})
	if err != nil {
		panic(err)
	}
	defer limiter.Reset(ctx, "user:42", patterns.PerMinute(2))
	for i := 0; i < 4; i++ {
		res, err := limiter.Allow(ctx, "user:42", patterns.PerMinute(2))
		if err != nil {
			panic(err)
		}
		fmt.Printf("allowed=%t local=%t\n", res.Allowed, res.Local)
	}
	// Output:
	// allowed=true local=false
	// allowed=true local=false
	// allowed=false local=false
	// allowed=false local=true
}
