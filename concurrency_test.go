package patterns

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestConcurrencyLimiter(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		l, err := c.ConcurrencyLimiter("api", &ConcurrencyLimiterOptions{Permits: 2})
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.Acquire(ctx, "tenant-a")
		if err != nil {
			t.Fatal(err)
		}
		b, err := l.Acquire(ctx, "tenant-a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Acquire(ctx, "tenant-a"); !errors.Is(err, ErrNoPermit) {
			t.Fatalf("third in flight: %v", err)
		}
		// Keys are independent, and so are limiters of another name.
		other, err := c.ConcurrencyLimiter("api:v2", &ConcurrencyLimiterOptions{Permits: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []func() (*Permit, error){
			func() (*Permit, error) { return l.Acquire(ctx, "tenant-b") },
			func() (*Permit, error) { return other.Acquire(ctx, "tenant-a") },
		} {
			p, err := f()
			if err != nil {
				t.Fatal(err)
			}
			_ = p.Release(ctx)
		}
		_ = a.Release(ctx)
		err = l.Do(ctx, "tenant-a", func(ctx context.Context) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		_ = b.Release(ctx)
	})
}

// TestConcurrencyMiddleware: 50 concurrent requests of one client to a
// handler that blocks, 10 permits: 10 run at once, 40 get 429 with
// Retry-After; a panicking handler gives its permit back.
func TestConcurrencyMiddleware(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		l, err := c.ConcurrencyLimiter("http", &ConcurrencyLimiterOptions{Permits: 10, Lease: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var inside, peak atomic.Int64
		release := make(chan struct{})
		h, err := l.Middleware(&ConcurrencyMiddlewareOptions{RetryAfter: 1500 * time.Millisecond},
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := inside.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				select {
				case <-release:
				case <-time.After(30 * time.Second):
				}
				inside.Add(-1)
			}))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		const requests = 50
		codes := make(chan *http.Response, requests)
		var refused atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < requests; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					refused.Add(1)
				}
				codes <- resp
			}()
		}
		// Hold the 10 inside until the other 40 have been answered.
		deadline := time.Now().Add(30 * time.Second)
		for refused.Load() < requests-10 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		close(release)
		wg.Wait()
		close(codes)
		byCode := map[int]int{}
		for resp := range codes {
			byCode[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "2" {
				t.Errorf("Retry-After = %q, want 2", resp.Header.Get("Retry-After"))
			}
		}
		if byCode[http.StatusOK] != 10 || byCode[http.StatusTooManyRequests] != requests-10 || peak.Load() > 10 {
			t.Fatalf("codes %v, peak %d in flight; want 10 OK, 40 refused, peak <= 10", byCode, peak.Load())
		}
		t.Logf("%d requests, 10 permits: codes %v, at most %d in the handler at once", requests, byCode, peak.Load())

		// A handler that panics: its permit is released, the panic goes on.
		one, err := c.ConcurrencyLimiter("panic", &ConcurrencyLimiterOptions{Permits: 1})
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		ph, err := one.Middleware(&ConcurrencyMiddlewareOptions{StatusCode: http.StatusServiceUnavailable},
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls++
				if calls == 1 {
					panic(http.ErrAbortHandler)
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		serve := func() (code int, panicked bool) {
			defer func() { panicked = recover() != nil }()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/", nil)
			ph.ServeHTTP(rec, req)
			return rec.Code, false
		}
		if _, panicked := serve(); !panicked {
			t.Fatal("panic swallowed")
		}
		if code, _ := serve(); code != http.StatusOK {
			t.Fatalf("after a panic: %d, want 200 (the permit is back)", code)
		}
	})
}

func TestConcurrencyMiddlewareOptions(t *testing.T) {
	c := newClient(t, testRedis(t))
	l, err := c.ConcurrencyLimiter("x", &ConcurrencyLimiterOptions{Permits: 1})
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, o := range []*ConcurrencyMiddlewareOptions{{StatusCode: 500}, {RetryAfter: -1}} {
		if _, err := l.Middleware(o, ok); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if _, err := l.Middleware(nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("nil handler: %v", err)
	}
	// A full key answers 503 when asked to.
	h, err := l.Middleware(&ConcurrencyMiddlewareOptions{StatusCode: http.StatusServiceUnavailable, Key: func(*http.Request) (string, error) { return "k", nil }}, ok)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Acquire(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("full: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	_ = p.Release(context.Background())
}
