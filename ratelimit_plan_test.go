package patterns

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
)

type planCtxKey struct{}

// The middleware with a plan per request (read from the request's context)
// and a cost per request: the headers report the plan's limits and what is
// left after the cost; invalid plans and costs answer 500, a failing Plan
// follows FailClosed, and OnError sees each.
func TestRateLimitMiddlewarePlanAndCost(t *testing.T) {
	c := newClient(t, testRedis(t))
	l := newLimiter(t, c, FixedWindow)
	plans := map[string]RatePlan{
		"free": {Name: "free", Limits: []Limit{PerMinute(6)}},
		"pro":  {Name: "pro", Limits: []Limit{PerMinute(60), PerDay(1000)}},
		"bad":  {Name: "bad", Limits: []Limit{{Rate: 0, Period: 1}}},
		"none": {Name: "none"},
	}
	errPlanStore := errors.New("plan store down")
	var errs atomic.Int64
	opt := &LimiterMiddlewareOptions{
		Key: func(r *http.Request) (string, error) { return r.Header.Get("X-Customer"), nil },
		Plan: func(r *http.Request) (RatePlan, error) {
			name, _ := r.Context().Value(planCtxKey{}).(string)
			if name == "down" {
				return RatePlan{}, errPlanStore
			}
			return plans[name], nil
		},
		Cost: func(r *http.Request) (int, error) {
			if r.URL.Path == "/export" {
				return 5, nil
			}
			if r.URL.Path == "/free" {
				return 0, nil
			}
			return 1, nil
		},
		OnError: func(*http.Request, error) { errs.Add(1) },
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h, err := l.Middleware(opt, ok)
	if err != nil {
		t.Fatal(err)
	}
	do := func(h http.Handler, customer, plan, path string) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("X-Customer", customer)
		r = r.WithContext(context.WithValue(r.Context(), planCtxKey{}, plan))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	// Free: 6 a minute; an export costs 5, a read 1.
	w := do(h, "acme", "free", "/export")
	if w.Code != 204 || w.Header().Get("X-RateLimit-Remaining") != "1" || w.Header().Get("X-RateLimit-Cost") != "5" ||
		w.Header().Get("X-RateLimit-Limit") != "6" || w.Header().Get("RateLimit-Policy") != `"free";q=6;w=60` {
		t.Fatalf("free export: %d %v", w.Code, w.Header())
	}
	if w := do(h, "acme", "free", "/export"); w.Code != 429 || w.Header().Get("X-RateLimit-Remaining") != "1" {
		t.Fatalf("second free export: %d %v", w.Code, w.Header())
	}
	if w := do(h, "acme", "free", "/read"); w.Code != 204 || w.Header().Get("RateLimit") != `"free";r=0;t=`+w.Header().Get("X-RateLimit-Reset") {
		t.Fatalf("free read: %d %v", w.Code, w.Header())
	}
	// The same customer upgraded to pro: its per-minute limit keeps the 6
	// used (one key per period), and the headers list pro's limits.
	w = do(h, "acme", "pro", "/export")
	if w.Code != 204 || w.Header().Get("X-RateLimit-Remaining") != "49" || w.Header().Get("X-RateLimit-Limit") != "60" ||
		w.Header().Get("RateLimit-Policy") != `"pro-1";q=60;w=60, "pro-2";q=1000;w=86400` ||
		w.Header().Get("RateLimit") != `"pro-1";r=49;t=`+w.Header().Get("X-RateLimit-Reset") {
		t.Fatalf("pro export: %d %v", w.Code, w.Header())
	}
	if errs.Load() != 0 {
		t.Fatalf("%d errors reported", errs.Load())
	}
	// Invalid plans and costs: 500, reported, the handler not run.
	for _, tc := range []struct{ plan, path string }{{"bad", "/"}, {"none", "/"}, {"free", "/free"}, {"free", "/export-too-big"}} {
		path := tc.path
		if path == "/export-too-big" {
			// A cost above the free plan's 6 at once.
			h2, _ := l.Middleware(&LimiterMiddlewareOptions{Key: opt.Key, Plan: opt.Plan, OnError: opt.OnError,
				Cost: func(*http.Request) (int, error) { return 7, nil }}, ok)
			before := errs.Load()
			if w := do(h2, "other", tc.plan, "/"); w.Code != 500 || errs.Load() != before+1 {
				t.Fatalf("cost 7 on free: %d", w.Code)
			}
			continue
		}
		before := errs.Load()
		if w := do(h, "other", tc.plan, path); w.Code != 500 || errs.Load() != before+1 {
			t.Fatalf("plan %q path %s: %d, %d errors", tc.plan, path, w.Code, errs.Load()-before)
		}
	}
	// A plan store that fails: fail open by default, 503 with FailClosed.
	before := errs.Load()
	if w := do(h, "acme", "down", "/"); w.Code != 204 || errs.Load() != before+1 {
		t.Fatalf("plan store down, fail open: %d", w.Code)
	}
	closedOpt := *opt
	closedOpt.FailClosed = true
	closed, _ := l.Middleware(&closedOpt, ok)
	if w := do(closed, "acme", "down", "/"); w.Code != 503 {
		t.Fatalf("plan store down, fail closed: %d", w.Code)
	}
	// Remaining stayed where pro left it: 60 - 11 - the read just now.
	if w := do(h, "acme", "pro", "/"); w.Code != 204 || w.Header().Get("X-RateLimit-Remaining") != strconv.Itoa(48) {
		t.Fatalf("pro read: %d %v", w.Code, w.Header())
	}
	// Neither Limits nor Plan; a policy name no header carries.
	if _, err := l.Middleware(&LimiterMiddlewareOptions{Cost: opt.Cost}, ok); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no limits nor plan: %v", err)
	}
	if _, err := l.Middleware(&LimiterMiddlewareOptions{Plan: opt.Plan, Policy: "é"}, ok); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad policy: %v", err)
	}
}
