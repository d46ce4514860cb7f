package patterns_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/redispatterns/patterns"
)

// A plan per customer, read from the request's context (set by the
// authentication middleware), and a cost per endpoint: an export costs 5.
func ExampleLimiterMiddlewareOptions_plan() {
	pc := exampleClient("plans")
	limiter, _ := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: patterns.FixedWindow})
	type planKey struct{}
	plans := map[string]patterns.RatePlan{
		"free": {Name: "free", Limits: []patterns.Limit{patterns.PerMinute(6)}},
		"pro":  {Name: "pro", Limits: []patterns.Limit{patterns.PerMinute(600)}},
	}
	h, err := limiter.Middleware(&patterns.LimiterMiddlewareOptions{
		Key: func(r *http.Request) (string, error) { return r.Header.Get("X-Customer"), nil },
		Plan: func(r *http.Request) (patterns.RatePlan, error) {
			return plans[r.Context().Value(planKey{}).(string)], nil
		},
		Cost: func(r *http.Request) (int, error) {
			if r.URL.Path == "/export" {
				return 5, nil
			}
			return 1, nil
		},
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	if err != nil {
		panic(err)
	}
	defer limiter.Reset(context.Background(), "acme", patterns.PerMinute(6))
	for _, step := range []struct{ plan, path string }{{"free", "/export"}, {"free", "/export"}, {"pro", "/export"}} {
		r := httptest.NewRequest("GET", step.path, nil)
		r.Header.Set("X-Customer", "acme")
		r = r.WithContext(context.WithValue(r.Context(), planKey{}, step.plan))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(step.plan, w.Code, w.Header().Get("X-RateLimit-Remaining"), w.Header().Get("RateLimit-Policy"))
	}
	// Output:
	// free 200 1 "free";q=6;w=60
	// free 429 1 "free";q=6;w=60
	// pro 200 590 "pro";q=600;w=60
}

// A limit lowered mid-period keeps what was used: 8 of 10 used, the plan
// cut to 5 admits nothing more, and raised to 20 admits 12.
func ExampleLimiter_Allow_changedLimit() {
	ctx := context.Background()
	pc := exampleClient("changed")
	limiter, _ := pc.Limiter("api", nil) // a token bucket
	lim := func(rate int) patterns.Limit { return patterns.Limit{Rate: rate, Period: time.Hour} }
	defer limiter.Reset(ctx, "user:7", lim(10))
	for range 8 {
		limiter.Allow(ctx, "user:7", lim(10))
	}
	for _, rate := range []int{5, 20} {
		res, _ := limiter.Peek(ctx, "user:7", 1, lim(rate))
		fmt.Printf("under %d an hour: allowed=%t remaining=%d\n", rate, res.Allowed, res.Remaining)
	}
	// Output:
	// under 5 an hour: allowed=false remaining=0
	// under 20 an hour: allowed=true remaining=11
}

// A quota of calls per calendar month in the customer's time zone, reset
// at midnight on the first, on the server's clock, beside a rate limit.
func ExamplePerCalendarMonth() {
	ctx := context.Background()
	pc := exampleClient("quota")
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err)
	}
	limiter, _ := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: patterns.FixedWindow})
	quota := patterns.PerCalendarMonth(2, paris)
	defer limiter.Reset(ctx, "acme", quota, patterns.PerSecond(10))
	for range 3 {
		res, err := limiter.Allow(ctx, "acme", quota, patterns.PerSecond(10))
		if err != nil {
			panic(err)
		}
		fmt.Println(res.Allowed, res.Remaining, res.Limit, res.RetryAfter <= 31*24*time.Hour)
	}
	// Output:
	// true 1 2/month (Europe/Paris) true
	// true 0 2/month (Europe/Paris) true
	// false 0 2/month (Europe/Paris) true
}
