package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/redispatterns/patterns"
)

func init() { demos = append(demos, demo{"ratelimit", demoRateLimit}) }

func demoRateLimit(ctx context.Context, pc *patterns.Client, w io.Writer) error {
	limit := patterns.Limit{Rate: 3, Period: time.Second, Burst: 3}
	for _, algo := range []patterns.Algorithm{patterns.FixedWindow, patterns.SlidingWindowLog,
		patterns.SlidingWindow, patterns.TokenBucket, patterns.GCRA} {
		l, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: algo})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%-15s 3/s:", algo)
		var last patterns.LimitResult
		for i := 0; i < 5; i++ {
			res, err := l.Allow(ctx, "api-client-7", limit)
			if err != nil {
				return err
			}
			if res.Allowed {
				fmt.Fprint(w, " allow")
			} else {
				fmt.Fprint(w, " deny")
			}
			last = res
		}
		fmt.Fprintf(w, "  (retry after %v)\n", last.RetryAfter)
		if err := l.Reset(ctx, "api-client-7", limit); err != nil {
			return err
		}
	}
	tb, _ := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: patterns.TokenBucket})
	res, err := tb.Allow(ctx, "user:42", patterns.PerSecond(10), patterns.PerDay(1000))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "two limits at once (10/s and 1000/day): allowed=%t, binding limit %v, %d left\n", res.Allowed, res.Limit, res.Remaining)
	return tb.Reset(ctx, "user:42", patterns.PerSecond(10), patterns.PerDay(1000))
}
