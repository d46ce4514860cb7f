package bench

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// One request's overhead of the idempotency middleware and of Do: round
// trips to Redis (counted by a go-redis hook: a command or a pipeline is one)
// and allocations, with the key new (the handler runs) and with a replay,
// beside the bare handler and one EVALSHA in the same run.

// rtCounter counts round trips through a go-redis client.
type rtCounter struct{ n atomic.Int64 }

func (c *rtCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *rtCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *rtCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

func countRoundTrips(b *testing.B, rdb *redis.Client) func() {
	rt := &rtCounter{}
	rdb.AddHook(rt)
	return func() { b.ReportMetric(float64(rt.n.Load())/float64(b.N), "rt/op") }
}

var benchOrder = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/orders/1")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{"order":1,"status":"created"}`))
})

// discard is a ResponseWriter that keeps nothing.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func benchServe(b *testing.B, h http.Handler, key func(i int) string) {
	body := strings.NewReader(`{"sku":1}`)
	r := httptest.NewRequest(http.MethodPost, "/orders", body)
	r.RemoteAddr = net.JoinHostPort("127.0.0.1", "1234")
	w := &discard{h: make(http.Header)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body.Reset(`{"sku":1}`)
		r.Body = readCloser{body}
		r.Header.Set("Idempotency-Key", key(i))
		clear(w.h)
		h.ServeHTTP(w, r)
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

func BenchmarkIdempotencyMiddleware(b *testing.B) {
	ctx := context.Background()
	newKey := func(i int) string { return `"k` + strconv.Itoa(i) + `"` }
	sameKey := func(int) string { return `"same"` }
	b.Run("baseline-handler", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		report := countRoundTrips(b, rdb)
		benchServe(b, benchOrder, sameKey)
		report()
	})
	b.Run("baseline-1x-evalsha", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		sha, err := rdb.ScriptLoad(ctx, "return 1").Result()
		if err != nil {
			b.Fatal(err)
		}
		report := countRoundTrips(b, rdb)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := rdb.EvalSha(ctx, sha, []string{"k"}).Err(); err != nil {
				b.Fatal(err)
			}
		}
		report()
	})
	for _, tc := range []struct {
		name string
		key  func(int) string
	}{{"new-key", newKey}, {"replay", sameKey}} {
		b.Run("middleware-"+tc.name, func(b *testing.B) {
			rdb, pc := benchRedis(b)
			idem, err := pc.Idempotency("bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			h, err := idem.Middleware(nil, benchOrder)
			if err != nil {
				b.Fatal(err)
			}
			// Store the replayed key first: every timed request of the
			// replay case is a replay.
			warm := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(`{"sku":1}`))
			warm.Header.Set("Idempotency-Key", sameKey(0))
			h.ServeHTTP(&discard{h: make(http.Header)}, warm)
			report := countRoundTrips(b, rdb)
			benchServe(b, h, tc.key)
			report()
		})
		b.Run("do-"+tc.name, func(b *testing.B) {
			rdb, pc := benchRedis(b)
			idem, err := pc.Idempotency("bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			val := []byte("result")
			fn := func(context.Context, patterns.IdempotencyLease) ([]byte, error) { return val, nil }
			if _, err := idem.Do(ctx, sameKey(0), "fp", fn); err != nil {
				b.Fatal(err)
			}
			report := countRoundTrips(b, rdb)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := idem.Do(ctx, tc.key(i), "fp", fn); err != nil {
					b.Fatal(err)
				}
			}
			report()
		})
	}
}
