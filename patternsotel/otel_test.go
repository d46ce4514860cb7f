package patternsotel

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/internal/redisserver"
)

// testRedis returns a client of a fresh redis-server process.
func testRedis(t testing.TB) *redis.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := redisserver.StartProcess(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	rdb, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestSpansAreChildrenOfTheCallers(t *testing.T) {
	ctx := context.Background()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer func() { _ = tp.Shutdown(ctx) }()
	obs, err := New(&Options{TracerProvider: tp, MeterProvider: sdkmetric.NewMeterProvider()})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := patterns.New(testRedis(t), &patterns.Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(ctx, "request")
	lock, err := pc.Obtain(ctx, "invoice:42", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Obtain(ctx, "invoice:42", time.Minute, nil); !errors.Is(err, patterns.ErrNotObtained) {
		t.Fatal(err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := patterns.NewCache[string](pc, "users", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(ctx, "u1", func(context.Context) (string, error) { return "v", nil }, nil); err != nil {
		t.Fatal(err)
	}
	parent.End()

	got := spans.GetSpans()
	byName := map[string][]tracetest.SpanStub{}
	for _, s := range got {
		byName[s.Name] = append(byName[s.Name], s)
	}
	for _, name := range []string{"patterns.lock.obtain", "patterns.lock.release", "patterns.cache.get"} {
		ss := byName[name]
		if len(ss) == 0 {
			t.Fatalf("no span %s in %v", name, got)
		}
		for _, s := range ss {
			if s.Parent.SpanID() != parent.SpanContext().SpanID() || s.SpanContext.TraceID() != parent.SpanContext().TraceID() {
				t.Errorf("%s is not a child of the caller's span", name)
			}
		}
	}
	// The loader runs under the cache.get span.
	load, get := byName["patterns.cache.load"], byName["patterns.cache.get"]
	if len(load) != 1 || load[0].Parent.SpanID() != get[0].SpanContext.SpanID() {
		t.Errorf("cache.load is not a child of cache.get: %v", load)
	}
	outcomes := map[string]bool{}
	for _, s := range byName["patterns.lock.obtain"] {
		for _, a := range s.Attributes {
			if a.Key == AttrOutcome {
				outcomes[a.Value.AsString()] = true
			}
		}
		if s.Status.Code != 0 {
			t.Errorf("status %v for a lock not obtained: an outcome, not an error", s.Status)
		}
	}
	if !outcomes["obtained"] || !outcomes["not-obtained"] {
		t.Errorf("outcomes %v", outcomes)
	}
}

// newPrometheus is the wiring of Example_prometheus: an Observer whose
// metrics a Prometheus registry serves at /metrics.
func newPrometheus() (*Observer, http.Handler, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	obs, err := New(&Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))})
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return obs, mux, nil
}

func TestPrometheusScrape(t *testing.T) {
	ctx := context.Background()
	obs, h, err := newPrometheus()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	pc, err := patterns.New(testRedis(t), &patterns.Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: patterns.FixedWindow})
	if err != nil {
		t.Fatal(err)
	}
	for range 120 {
		if _, err := lim.Allow(ctx, "user-7", patterns.PerMinute(100)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := patterns.NewCache[string](pc, "users", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		if _, err := c.Get(ctx, "u1", func(context.Context) (string, error) { return "v", nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	q, err := pc.Queue("jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.ObserveQueue(q, "jobs"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, _, err := q.Enqueue(ctx, []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	m, _, err := q.TryDequeue(ctx)
	if err != nil || m == nil {
		t.Fatal(m, err)
	}
	// Batches count their messages: 4 items, one a duplicate, enqueue 3;
	// one of the 3 delivered is acked alone, so the AckMany of the 3 acks
	// 2 and finds 1 lease lost.
	bq, err := pc.Queue("batch", nil)
	if err != nil {
		t.Fatal(err)
	}
	items := []patterns.QueueItem{{Body: []byte("a")}, {Body: []byte("b")}, {Body: []byte("c")}}
	for i := range items {
		items[i].ID = string(items[i].Body)
	}
	if _, err := bq.EnqueueMany(ctx, append(items, items[0])); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ms, err := bq.DequeueMany(dctx, 10)
	cancel()
	if err != nil || len(ms) != 3 {
		t.Fatal(len(ms), err)
	}
	if err := ms[0].Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := bq.AckMany(ctx, ms); n != 2 || !errors.Is(err, patterns.ErrQueueLeaseLost) {
		t.Fatal(n, err)
	}
	// A worker runs two jobs: one fails (retried), one succeeds.
	wq, err := pc.Queue("work", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"fail", "ok"} {
		if _, _, err := wq.Enqueue(ctx, []byte(b), nil); err != nil {
			t.Fatal(err)
		}
	}
	wctx, stopWork := context.WithCancel(ctx)
	var handled atomic.Int32
	_ = wq.Work(wctx, func(ctx context.Context, m *patterns.QueueMessage) ([]byte, error) {
		if handled.Add(1) == 2 {
			defer stopWork()
		}
		if string(m.Body) == "fail" {
			return nil, errors.New("failed")
		}
		return nil, nil
	}, &patterns.QueueWorkOptions{Concurrency: 1, Prefetch: -1})
	time.Sleep(100 * time.Millisecond) // the oldest ready message ages
	lock, err := pc.Obtain(ctx, "invoice:42", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}

	body := scrape(t, srv.URL+"/metrics")
	for _, want := range []string{
		`patterns_ratelimit_decisions_total{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="api",patterns_outcome="allowed",patterns_ratelimit_algorithm="fixed-window"} 100`,
		`patterns_ratelimit_decisions_total{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="api",patterns_outcome="denied",patterns_ratelimit_algorithm="fixed-window"} 20`,
		`patterns_cache_requests_total{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="users",patterns_outcome="hit"} 2`,
		`patterns_cache_requests_total{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="users",patterns_outcome="miss"} 1`,
		`patterns_queue_messages_total{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="jobs",patterns_outcome="enqueued"} 5`,
		`patterns_queue_messages_total{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="batch",patterns_outcome="enqueued"} 3`,
		`patterns_queue_messages_total{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="batch",patterns_outcome="delivered"} 3`,
		`patterns_queue_messages_total{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="batch",patterns_outcome="acked"} 3`,
		`patterns_queue_depth{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="jobs"} 4`,
		`patterns_queue_in_flight{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="jobs"} 1`,
		`patterns_lock_hold_duration_seconds_count{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version=""} 1`,
		`patterns_queue_jobs_total{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="work",patterns_outcome="ok"} 1`,
		`patterns_queue_jobs_total{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="work",patterns_outcome="retry"} 1`,
		`patterns_queue_job_duration_seconds_count{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="work",patterns_outcome="ok"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no line\n%s\nin the scrape", want)
		}
	}
	// The age of the oldest ready message: at least the sleep above, on the
	// server's clock.
	agePrefix := `patterns_queue_oldest_ready_seconds{otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version="",patterns_name="jobs"} `
	ageSeen := false
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, agePrefix); ok {
			ageSeen = true
			if age, err := strconv.ParseFloat(v, 64); err != nil || age < 0.09 || age > 60 {
				t.Errorf("oldest ready age %q (%v), want 0.1s or more", v, err)
			}
		}
	}
	if !ageSeen {
		t.Errorf("no line %s... in the scrape", agePrefix)
	}
	exported := exportedSeries()
	for _, l := range strings.Split(body, "\n") {
		if name, _, _ := strings.Cut(l, "{"); strings.HasPrefix(name, "patterns_") && !exported[strings.Fields(name)[0]] {
			t.Errorf("series %s is not in exportedSeries (nor, then, checked in the dashboard)", name)
		}
	}
	if t.Failed() {
		t.Log(grepLines(body, "patterns_"))
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDashboard checks that every query of the Grafana dashboard names a
// metric that the module exports (as the scrape above shows them).
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	exported := exportedSeries()
	metricName := regexp.MustCompile(`\bpatterns_[a-z_]+`)
	// Label names (in matchers and in by/without clauses) are not metrics.
	labels := regexp.MustCompile(`\{[^}]*\}|\b(by|without)\s*\([^)]*\)`)
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			names := metricName.FindAllString(labels.ReplaceAllString(tg.Expr, ""), -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric of the module", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("panel %q: %s is not exported", p.Title, n)
				}
			}
			queries++
		}
	}
	if queries == 0 {
		t.Fatal("no query in the dashboard")
	}
}

// exportedSeries are the Prometheus series of the module's metrics;
// TestPrometheusScrape checks that the scrape holds no other.
func exportedSeries() map[string]bool {
	exported := map[string]bool{}
	for _, base := range []string{"patterns_operation_duration_seconds", "patterns_lock_wait_duration_seconds",
		"patterns_lock_hold_duration_seconds", "patterns_cache_load_duration_seconds", "patterns_queue_job_duration_seconds"} {
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			exported[base+s] = true
		}
	}
	for _, n := range []string{"patterns_ratelimit_decisions_total", "patterns_lock_lost_total", "patterns_cache_requests_total",
		"patterns_queue_messages_total", "patterns_sessions_events_total", "patterns_queue_depth", "patterns_queue_in_flight", "patterns_queue_dead",
		"patterns_queue_oldest_ready_seconds", "patterns_queue_jobs_total"} {
		exported[n] = true
	}
	return exported
}
