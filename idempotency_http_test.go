package patterns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// idemOrderHandler counts its runs in Redis (INCR counter) and answers 201
// with the count in Location and body, after delay.
func idemOrderHandler(rdb redis.UniversalClient, counter string, delay time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := idemCount(r.Context(), rdb, counter)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/orders/"+strconv.FormatInt(n, 10))
		w.Header().Set("X-Not-Stored", "1")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"order":%d}`, n)
	})
}

// idemCount increments counter and sets its TTL in one MULTI.
func idemCount(ctx context.Context, rdb redis.UniversalClient, counter string) (int64, error) {
	var incr *redis.IntCmd
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, counter)
		p.Expire(ctx, counter, time.Minute)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return incr.Val(), nil
}

func idemRequest(method, key, body string) *http.Request {
	r := httptest.NewRequest(method, "/orders", strings.NewReader(body))
	if key != "" {
		r.Header.Set(IdempotencyKeyHeader, key)
	}
	return r
}

func idemServe(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func wantProblem(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %q %s, want %d problem+json", w.Code, w.Header().Get("Content-Type"), w.Body, status)
	}
	var p struct {
		Type   string
		Title  string
		Status int
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != status || p.Title == "" || p.Type == "" {
		t.Fatalf("problem body %s: %v", w.Body, err)
	}
}

func TestIdempotencyHTTP(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		counter := c.prefix + ":runs"
		idem, _ := c.Idempotency("api", nil)
		var reported []error
		var mu sync.Mutex
		h, err := idem.Middleware(&IdempotencyMiddlewareOptions{
			Scope: func(r *http.Request) (string, error) {
				if a := r.Header.Get("X-Account"); a != "" {
					return a, nil
				}
				return "", errors.New("anonymous")
			},
			MaxResponseBytes: 64,
			OnError:          func(r *http.Request, err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() },
		}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Query().Get("mode") {
			case "fail":
				_, _ = idemCount(r.Context(), rdb, counter)
				http.Error(w, "upstream down", http.StatusBadGateway)
			case "big":
				_, _ = idemCount(r.Context(), rdb, counter)
				w.Write([]byte(strings.Repeat("x", 100)))
			default:
				idemOrderHandler(rdb, counter, 0).ServeHTTP(w, r)
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		runs := func() int64 { n, _ := rdb.Get(ctx, counter).Int64(); return n }
		req := func(key, account, body, mode string) *http.Request {
			r := idemRequest(http.MethodPost, key, body)
			r.URL.RawQuery = "mode=" + mode
			if account != "" {
				r.Header.Set("X-Account", account)
			}
			return r
		}

		first := idemServe(h, req(`"order-1"`, "A", `{"sku":1}`, ""))
		if first.Code != 201 || first.Header().Get("Idempotent-Replayed") != "" {
			t.Fatalf("first: %d %v", first.Code, first.Header())
		}
		again := idemServe(h, req(`"order-1"`, "A", `{"sku":1}`, ""))
		if again.Code != 201 || again.Body.String() != first.Body.String() || again.Header().Get("Idempotent-Replayed") != "true" ||
			again.Header().Get("Location") != first.Header().Get("Location") || again.Header().Get("Content-Type") != "application/json" ||
			again.Header().Get("X-Not-Stored") != "" {
			t.Fatalf("replay: %d %v %s", again.Code, again.Header(), again.Body)
		}
		// A bare token names the same key as the sf-string.
		if w := idemServe(h, req(`order-1`, "A", `{"sku":1}`, "")); w.Body.String() != first.Body.String() {
			t.Fatalf("bare token: %d %s", w.Code, w.Body)
		}
		wantProblem(t, idemServe(h, req(`"order-1"`, "A", `{"sku":2}`, "")), http.StatusUnprocessableEntity)
		// Account B cannot see A's response: its own run.
		b := idemServe(h, req(`"order-1"`, "B", `{"sku":1}`, ""))
		if b.Code != 201 || b.Body.String() == first.Body.String() || b.Header().Get("Idempotent-Replayed") != "" {
			t.Fatalf("account B: %d %s", b.Code, b.Body)
		}
		wantProblem(t, idemServe(h, req(`"order-9"`, "", `{}`, "")), http.StatusForbidden)
		if runs() != 2 {
			t.Fatalf("handler ran %d times, want 2", runs())
		}
		before := countKeys(t, rdb, c.prefix)
		for _, key := range []string{"", `"unterminated`, `"a" , "b"`, `""`, `"` + strings.Repeat("k", MaxIdempotencyKeyLen+1) + `"`, "a b", "\"\x01\""} {
			wantProblem(t, idemServe(h, req(key, "A", `{}`, "")), http.StatusBadRequest)
		}
		two := req("", "A", `{}`, "")
		two.Header.Add(IdempotencyKeyHeader, `"x"`)
		two.Header.Add(IdempotencyKeyHeader, `"y"`)
		wantProblem(t, idemServe(h, two), http.StatusBadRequest)
		if runs() != 2 || countKeys(t, rdb, c.prefix) != before {
			t.Fatalf("bad keys ran the handler or wrote keys")
		}
		// GET is not deduplicated.
		if w := idemServe(h, idemRequest(http.MethodGet, "", "")); w.Code != 201 {
			t.Fatalf("GET: %d", w.Code)
		}
		// 5xx: not stored; the retry runs the handler.
		for i := 0; i < 2; i++ {
			if w := idemServe(h, req(`"f"`, "A", `{}`, "fail")); w.Code != http.StatusBadGateway || w.Header().Get("Idempotent-Replayed") != "" {
				t.Fatalf("5xx %d: %d", i, w.Code)
			}
		}
		if runs() != 5 {
			t.Fatalf("handler ran %d times, want 5", runs())
		}
		// Oversized: passed through whole, not stored, reported.
		for i := 0; i < 2; i++ {
			if w := idemServe(h, req(`"big"`, "A", `{}`, "big")); w.Code != 200 || w.Body.Len() != 100 {
				t.Fatalf("oversized %d: %d %d bytes", i, w.Code, w.Body.Len())
			}
		}
		if runs() != 7 {
			t.Fatalf("handler ran %d times, want 7", runs())
		}
		mu.Lock()
		if len(reported) != 2 || !errors.Is(reported[0], errResponseNotStored) {
			t.Errorf("OnError saw %v", reported)
		}
		mu.Unlock()
	})
}

func TestIdempotencyHTTPDefaults(t *testing.T) {
	c := newClient(t, testRedis(t))
	idem, _ := c.Idempotency("api", nil)
	var runs atomic.Int64
	h, err := idem.Middleware(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, idemServe(h, idemRequest(http.MethodPost, "", "x")), http.StatusBadRequest)
	for i := 0; i < 2; i++ {
		if w := idemServe(h, idemRequest(http.MethodPatch, `"k"`, "x")); w.Code != http.StatusNoContent {
			t.Fatalf("PATCH: %d", w.Code)
		}
	}
	if w := idemServe(h, idemRequest(http.MethodPut, "", "x")); w.Code != http.StatusNoContent {
		t.Fatalf("PUT: %d", w.Code)
	}
	if runs.Load() != 2 {
		t.Fatalf("runs %d", runs.Load())
	}
	if _, err := idem.Middleware(&IdempotencyMiddlewareOptions{MaxResponseBytes: -1}, h); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("negative bound: %v", err)
	}
	if _, err := idem.Middleware(nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil handler: %v", err)
	}
}

// idemChildResult is what a child of TestIdempotencyHTTPProcesses reports.
type idemChildResult struct {
	Conflicts int            // 409s
	Responses map[string]int // other responses: status, allowlisted headers, body
}

func idemResponseKey(w *httptest.ResponseRecorder) string {
	return fmt.Sprintf("%d|%s|%s|%s", w.Code, w.Header().Get("Content-Type"), w.Header().Get("Location"), w.Body)
}

// TestIdempotencyHTTPChild is one process of TestIdempotencyHTTPProcesses:
// 50 goroutines send the same request with one key at once.
func TestIdempotencyHTTPChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestIdempotencyHTTPProcesses")
	}
	c := childClient(t)
	wait := os.Getenv("IDEM_TEST_WAIT") == "1"
	idem, err := c.Idempotency("procs", &IdempotencyOptions{Wait: wait})
	if err != nil {
		t.Fatal(err)
	}
	h, err := idem.Middleware(nil, idemOrderHandler(c.rdb, c.prefix+":runs", 300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start, _ := strconv.ParseInt(os.Getenv("IDEM_TEST_START"), 10, 64)
	time.Sleep(time.Until(time.UnixMilli(start)))
	res := idemChildResult{Responses: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			w := idemServe(h, idemRequest(http.MethodPost, `"same"`, `{"sku":1}`).WithContext(ctx))
			mu.Lock()
			defer mu.Unlock()
			if w.Code == http.StatusConflict {
				res.Conflicts++
				return
			}
			res.Responses[idemResponseKey(w)]++
		}()
	}
	wg.Wait()
	b, _ := json.Marshal(res)
	fmt.Printf("IDEMRESULT %s\n", b)
}

// TestIdempotencyHTTPProcesses: 2 processes × 50 goroutines send one request
// with one key at once. The handler runs once (counted in Redis); every
// response is the original's (identical status, allowlisted headers, body)
// or 409; with Wait, every response is the original's.
func TestIdempotencyHTTPProcesses(t *testing.T) {
	if isChild() {
		t.Skip("parent only")
	}
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		for _, wait := range []string{"0", "1"} {
			t.Run("wait="+wait, func(t *testing.T) {
				c := newClient(t, rdb)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				start := time.Now().Add(3 * time.Second).UnixMilli()
				outs := spawnChildren(t, ctx, rdb, 2, "TestIdempotencyHTTPChild", "PATTERNS_TEST_PREFIX="+c.prefix,
					"IDEM_TEST_WAIT="+wait, "IDEM_TEST_START="+strconv.FormatInt(start, 10))
				all := map[string]int{}
				conflicts := 0
				for i, out := range outs {
					_, line, ok := strings.Cut(out, "IDEMRESULT ")
					line, _, _ = strings.Cut(line, "\n")
					var res idemChildResult
					if !ok || json.Unmarshal([]byte(line), &res) != nil {
						t.Fatalf("child %d: no result:\n%s", i, out)
					}
					conflicts += res.Conflicts
					for k, n := range res.Responses {
						all[k] += n
					}
				}
				runs, _ := rdb.Get(ctx, c.prefix+":runs").Int64()
				keys := make([]string, 0, len(all))
				for k := range all {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				t.Logf("wait=%s: handler ran %d times; 409: %d; responses: %v", wait, runs, conflicts, all)
				if runs != 1 {
					t.Errorf("handler ran %d times", runs)
				}
				if len(keys) != 1 || !strings.HasPrefix(keys[0], "201|application/json|/orders/1|") || all[keys[0]]+conflicts != 100 {
					t.Errorf("responses %v and %d conflicts: want one response, the original's, and 409s, 100 in all", all, conflicts)
				}
				if wait == "1" && conflicts != 0 {
					t.Errorf("with Wait, %d responses were 409", conflicts)
				}
			})
		}
	})
}

// TestIdempotencyHTTPKillChild runs the handler and hangs in it: the parent
// kills this process mid-handler.
func TestIdempotencyHTTPKillChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestIdempotencyHTTPKilledHolder")
	}
	c := childClient(t)
	idem, err := c.Idempotency("kill", &IdempotencyOptions{Lease: idemKillLease})
	if err != nil {
		t.Fatal(err)
	}
	h, err := idem.Middleware(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idemCount(r.Context(), c.rdb, c.prefix+":runs")
		time.Sleep(time.Minute)
	}))
	if err != nil {
		t.Fatal(err)
	}
	idemServe(h, idemRequest(http.MethodPost, `"k"`, "body"))
}

const idemKillLease = 4 * time.Second

// TestIdempotencyHTTPKilledHolder: a holder SIGKILLed mid-handler blocks the
// key (409) until its lease ends; then a retry runs the handler.
func TestIdempotencyHTTPKilledHolder(t *testing.T) {
	if isChild() {
		t.Skip("parent only")
	}
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		idem, _ := c.Idempotency("kill", &IdempotencyOptions{Lease: idemKillLease})
		var runs atomic.Int64
		h, _ := idem.Middleware(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			w.WriteHeader(http.StatusCreated)
		}))
		cmd := startChild(t, rdb, "TestIdempotencyHTTPKillChild", new(bytes.Buffer), "PATTERNS_TEST_PREFIX="+c.prefix)
		deadline := time.Now().Add(60 * time.Second)
		for {
			n, _ := rdb.Get(ctx, c.prefix+":runs").Int64()
			if n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the child did not start its handler")
			}
			time.Sleep(20 * time.Millisecond)
		}
		killed := time.Now()
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		w := idemServe(h, idemRequest(http.MethodPost, `"k"`, "body"))
		if since := time.Since(killed); since < idemKillLease/2 {
			wantProblem(t, w, http.StatusConflict)
			if runs.Load() != 0 {
				t.Fatal("handler ran while the dead holder's lease lasted")
			}
			t.Logf("retry %v after the kill, lease %v: %d", since.Round(time.Millisecond), idemKillLease, w.Code)
		} else {
			t.Logf("retry %v after the kill: too late to tell the lease from its end, 409 not checked", since.Round(time.Millisecond))
		}
		for runs.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the lease of the dead holder never ended")
			}
			time.Sleep(100 * time.Millisecond)
			if w := idemServe(h, idemRequest(http.MethodPost, `"k"`, "body")); w.Code != http.StatusConflict && w.Code != http.StatusCreated {
				t.Fatalf("retry: %d %s", w.Code, w.Body)
			}
		}
		t.Logf("a retry ran the handler %v after the kill", time.Since(killed).Round(time.Millisecond))
		if w := idemServe(h, idemRequest(http.MethodPost, `"k"`, "body")); w.Code != http.StatusCreated || w.Header().Get("Idempotent-Replayed") != "true" || runs.Load() != 1 {
			t.Fatalf("after the retry: %d, runs %d", w.Code, runs.Load())
		}
	})
}

// TestIdempotencyHTTPFingerprintAndHeaders: the default fingerprint is the
// method, the path with the query and the body's hash (another of any of
// them with the same key: 422, the handler not run); Fingerprint replaces
// it; Headers and ReplayHeader choose what a replay carries.
func TestIdempotencyHTTPFingerprintAndHeaders(t *testing.T) {
	c := newClient(t, testRedis(t))
	idem, _ := c.Idempotency("fp", nil)
	var runs atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		w.Header().Set("X-Order", strconv.FormatInt(n, 10))
		w.Header().Set("Location", "/orders/"+strconv.FormatInt(n, 10))
		w.WriteHeader(http.StatusCreated)
	})
	h, err := idem.Middleware(nil, handler)
	if err != nil {
		t.Fatal(err)
	}
	if w := idemServe(h, idemRequest(http.MethodPost, `"d"`, "x")); w.Code != http.StatusCreated {
		t.Fatalf("first: %d", w.Code)
	}
	other := idemRequest(http.MethodPost, `"d"`, "x")
	other.URL.Path = "/refunds"
	query := idemRequest(http.MethodPost, `"d"`, "x")
	query.URL.RawQuery = "dry=1"
	for name, r := range map[string]*http.Request{"path": other, "query": query, "method": idemRequest(http.MethodPatch, `"d"`, "x"), "body": idemRequest(http.MethodPost, `"d"`, "y")} {
		w := idemServe(h, r)
		if w.Code != http.StatusUnprocessableEntity {
			t.Errorf("another %s, same key: %d, want 422", name, w.Code)
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", runs.Load())
	}

	custom, err := idem.Middleware(&IdempotencyMiddlewareOptions{
		Fingerprint:  func(r *http.Request, body []byte) string { return r.URL.Path }, // the body does not count
		Headers:      []string{"x-order"},
		ReplayHeader: "X-Replayed",
	}, handler)
	if err != nil {
		t.Fatal(err)
	}
	first := idemServe(custom, idemRequest(http.MethodPost, `"c"`, "a"))
	again := idemServe(custom, idemRequest(http.MethodPost, `"c"`, "b"))
	if runs.Load() != 2 || again.Code != http.StatusCreated || again.Header().Get("X-Replayed") != "true" ||
		again.Header().Get("Idempotent-Replayed") != "" || again.Header().Get("X-Order") != first.Header().Get("X-Order") ||
		again.Header().Get("Location") != "" {
		t.Fatalf("custom fingerprint and headers: runs %d, replay %d %v (first %v)", runs.Load(), again.Code, again.Header(), first.Header())
	}
}

// The middleware's other options: KeyOptional, FailOpen (and OnError), a
// scope that fails, bounds on the request body and on the scoped key.
func TestIdempotencyHTTPOptions(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	idem, err := c.Idempotency("opts", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var runs atomic.Int64
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.WriteHeader(http.StatusCreated)
	})
	serve := func(opt *IdempotencyMiddlewareOptions, r *http.Request) *httptest.ResponseRecorder {
		t.Helper()
		h, err := idem.Middleware(opt, next)
		if err != nil {
			t.Fatal(err)
		}
		return idemServe(h, r)
	}
	wantRuns := func(n int64) {
		t.Helper()
		if got := runs.Load(); got != n {
			t.Fatalf("handler ran %d times, want %d", got, n)
		}
	}

	// KeyOptional: no key passes through, not deduplicated.
	for i := 0; i < 2; i++ {
		if w := serve(&IdempotencyMiddlewareOptions{KeyOptional: true}, idemRequest(http.MethodPost, "", "x")); w.Code != http.StatusCreated {
			t.Fatalf("KeyOptional without a key: %d", w.Code)
		}
	}
	wantRuns(2)

	// Rejected before anything is written: a scope that fails (403), a body
	// over MaxRequestBytes (413), a scope and key over MaxIDLen (400).
	failScope := func(*http.Request) (string, error) { return "", errors.New("no account") }
	wantProblem(t, serve(&IdempotencyMiddlewareOptions{Scope: failScope}, idemRequest(http.MethodPost, `"k1"`, "x")), http.StatusForbidden)
	wantProblem(t, serve(&IdempotencyMiddlewareOptions{MaxRequestBytes: 4}, idemRequest(http.MethodPost, `"k2"`, "12345")), http.StatusRequestEntityTooLarge)
	longScope := func(*http.Request) (string, error) { return strings.Repeat("a", MaxIDLen), nil }
	wantProblem(t, serve(&IdempotencyMiddlewareOptions{Scope: longScope}, idemRequest(http.MethodPost, `"k3"`, "x")), http.StatusBadRequest)
	wantRuns(2)
	if n := countKeys(t, rdb, c.prefix); n != 0 {
		t.Fatalf("rejected requests wrote %d keys", n)
	}
	// A body of exactly MaxRequestBytes is taken.
	if w := serve(&IdempotencyMiddlewareOptions{MaxRequestBytes: 4}, idemRequest(http.MethodPost, `"k2"`, "1234")); w.Code != http.StatusCreated {
		t.Fatalf("body at the bound: %d", w.Code)
	}
	wantRuns(3)

	// Redis unreachable: 503, or the handler with FailOpen; OnError is told
	// either way.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = dead.Close() })
	dc, err := New(dead, &Options{Prefix: c.prefix})
	if err != nil {
		t.Fatal(err)
	}
	didem, err := dc.Idempotency("opts", nil)
	if err != nil {
		t.Fatal(err)
	}
	var reported atomic.Int64
	onError := func(*http.Request, error) { reported.Add(1) }
	for _, open := range []bool{false, true} {
		h, err := didem.Middleware(&IdempotencyMiddlewareOptions{FailOpen: open, OnError: onError}, next)
		if err != nil {
			t.Fatal(err)
		}
		w := idemServe(h, idemRequest(http.MethodPost, `"k4"`, "x").WithContext(ctx))
		if open {
			if w.Code != http.StatusCreated {
				t.Fatalf("FailOpen, Redis down: %d %s", w.Code, w.Body)
			}
			continue
		}
		wantProblem(t, w, http.StatusServiceUnavailable)
	}
	wantRuns(4)
	if reported.Load() != 2 {
		t.Fatalf("OnError told %d times, want 2", reported.Load())
	}
}
