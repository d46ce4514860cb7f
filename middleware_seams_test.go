package patterns

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// seamHandler counts the requests it serves.
type seamHandler struct{ runs atomic.Int64 }

func (h *seamHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h.runs.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// deadClient returns a Client on a port nothing listens on: every command
// fails at once with a network error, as when Redis is down.
func deadClient(t *testing.T, prefix string) *Client {
	t.Helper()
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = dead.Close() })
	c, err := New(dead, &Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seamMiddlewares builds, on c, a rate-limit middleware of each algorithm and
// a concurrency middleware, all failing open (the default) unless
// failClosed, all keyed by key.
func seamMiddlewares(t *testing.T, c *Client, key func(*http.Request) (string, error), failClosed bool, onError func(*http.Request, error), next http.Handler) map[string]http.Handler {
	t.Helper()
	hs := map[string]http.Handler{}
	for _, a := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA} {
		l, err := c.Limiter("seam", &LimiterOptions{Algorithm: a})
		if err != nil {
			t.Fatal(err)
		}
		h, err := l.Middleware(&LimiterMiddlewareOptions{Limits: []Limit{PerHour(5)}, Key: key, FailClosed: failClosed, OnError: onError}, next)
		if err != nil {
			t.Fatal(err)
		}
		hs["limiter "+a.String()] = h
	}
	cl, err := c.ConcurrencyLimiter("seam", &ConcurrencyLimiterOptions{Permits: 2})
	if err != nil {
		t.Fatal(err)
	}
	h, err := cl.Middleware(&ConcurrencyMiddlewareOptions{Key: key, FailClosed: failClosed, OnError: onError}, next)
	if err != nil {
		t.Fatal(err)
	}
	hs["concurrency"] = h
	return hs
}

// A key the limiter refuses (a custom Key returning "" for a missing API-key
// header, or an id over MaxIDLen) answers 400 and never runs next: it is
// not "Redis is down", so failing open does not apply. Before, the request
// ran unlimited. Nothing is written and OnError is not told (the client's
// fault); with Redis down it is 400 as well.
func TestMiddlewareInvalidKeyIsBadRequest(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	keys := map[string]func(*http.Request) (string, error){
		"empty":    func(r *http.Request) (string, error) { return r.Header.Get("X-Api-Key"), nil },
		"over cap": func(*http.Request) (string, error) { return strings.Repeat("k", MaxIDLen+1), nil },
		"error":    func(*http.Request) (string, error) { return "", errors.New("no key") },
	}
	var reported atomic.Int64
	onError := func(*http.Request, error) { reported.Add(1) }
	for kname, key := range keys {
		for _, cl := range []*Client{c, deadClient(t, c.prefix)} {
			next := &seamHandler{}
			for name, h := range seamMiddlewares(t, cl, key, false, onError, next) {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
				if w.Code != http.StatusBadRequest {
					t.Errorf("%s, key %s: %d %q, want 400", name, kname, w.Code, w.Body)
				}
			}
			if n := next.runs.Load(); n != 0 {
				t.Errorf("key %s: next ran %d times", kname, n)
			}
		}
	}
	if n := reported.Load(); n != 0 {
		t.Errorf("OnError told %d times of a client's invalid key", n)
	}
	if n := countKeys(t, rdb, c.prefix); n != 0 {
		t.Fatalf("invalid keys wrote %d keys", n)
	}
}

// Redis down (a closed port) still fails open, OnError told; FailClosed
// answers 503.
func TestMiddlewareRedisDownFailsOpen(t *testing.T) {
	c := deadClient(t, uniquePrefix(t))
	key := func(*http.Request) (string, error) { return "client-1", nil }
	for _, failClosed := range []bool{false, true} {
		next := &seamHandler{}
		var reported atomic.Int64
		onError := func(*http.Request, error) { reported.Add(1) }
		hs := seamMiddlewares(t, c, key, failClosed, onError, next)
		for name, h := range hs {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			want := http.StatusNoContent
			if failClosed {
				want = http.StatusServiceUnavailable
			}
			if w.Code != want {
				t.Errorf("%s, FailClosed %v, Redis down: %d %q, want %d", name, failClosed, w.Code, w.Body, want)
			}
		}
		wantRuns := int64(len(hs))
		if failClosed {
			wantRuns = 0
		}
		if next.runs.Load() != wantRuns || reported.Load() != int64(len(hs)) {
			t.Errorf("FailClosed %v: next ran %d times (want %d), OnError told %d times (want %d)",
				failClosed, next.runs.Load(), wantRuns, reported.Load(), len(hs))
		}
	}
}

// A request whose own context has ended is not "Redis is down": 503, next
// does not run, even failing open; OnError is told. The idempotency
// middleware with FailOpen likewise.
func TestMiddlewareContextEndedDoesNotFailOpen(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	key := func(*http.Request) (string, error) { return "client-1", nil }
	next := &seamHandler{}
	var reported atomic.Int64
	onError := func(*http.Request, error) { reported.Add(1) }
	hs := seamMiddlewares(t, c, key, false, onError, next)
	idem, err := c.Idempotency("seam", nil)
	if err != nil {
		t.Fatal(err)
	}
	hs["idempotency"], err = idem.Middleware(&IdempotencyMiddlewareOptions{FailOpen: true, OnError: onError}, next)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range hs {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/", strings.NewReader("x")).WithContext(ctx)
		r.Header.Set(IdempotencyKeyHeader, `"k1"`)
		h.ServeHTTP(w, r)
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("%s, context ended: %d %q, want 503", name, w.Code, w.Body)
		}
	}
	if next.runs.Load() != 0 || reported.Load() != int64(len(hs)) {
		t.Fatalf("context ended: next ran %d times (want 0), OnError told %d times (want %d)",
			next.runs.Load(), reported.Load(), len(hs))
	}
}

// The options passed to a middleware are never written, and changing them
// afterwards changes nothing: the idempotency middleware canonicalized
// Headers in place (a data race between two middlewares of one options
// value), and the rate-limit and concurrency middlewares read the caller's
// Limits and TrustedProxies at each request.
func TestMiddlewareOptionsNotModified(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	idem, err := c.Idempotency("opts-copy", nil)
	if err != nil {
		t.Fatal(err)
	}
	headers := []string{"content-type", "x-request-id", "LOCATION"}
	orig := slices.Clone(headers)
	iopt := &IdempotencyMiddlewareOptions{Headers: headers, Methods: []string{"POST"}}
	var wg sync.WaitGroup
	mws := make([]http.Handler, 2)
	for i := range mws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := idem.Middleware(iopt, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-Id", "r1")
				w.WriteHeader(http.StatusCreated)
			}))
			if err != nil {
				t.Error(err)
				return
			}
			mws[i] = h
			for j := range 3 { // a first run, then replays
				w := httptest.NewRecorder()
				r := httptest.NewRequest("POST", "/", strings.NewReader("x"))
				r.Header.Set(IdempotencyKeyHeader, `"k`+string(rune('0'+i))+`"`)
				h.ServeHTTP(w, r)
				if w.Code != http.StatusCreated || w.Header().Get("X-Request-Id") != "r1" {
					t.Errorf("middleware %d request %d: %d %v", i, j, w.Code, w.Header())
				}
			}
		}()
	}
	wg.Wait()
	if !slices.Equal(headers, orig) {
		t.Fatalf("Headers written: %q, passed %q", headers, orig)
	}
	// Methods changed afterwards: the middleware still applies to POST (a
	// POST without a key answers 400).
	iopt.Methods[0] = "GET"
	w := httptest.NewRecorder()
	mws[0].ServeHTTP(w, httptest.NewRequest("POST", "/", strings.NewReader("x")))
	if w.Code != http.StatusBadRequest {
		t.Fatalf("Methods changed after Middleware(): a POST without a key got %d, want 400", w.Code)
	}

	// Limits and TrustedProxies changed afterwards: the middleware keeps
	// what it was given.
	l, err := c.Limiter("opts-copy", nil)
	if err != nil {
		t.Fatal(err)
	}
	lopt := &LimiterMiddlewareOptions{Limits: []Limit{PerHour(1)}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	next := &seamHandler{}
	lh, err := l.Middleware(lopt, next)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.ConcurrencyLimiter("opts-copy", &ConcurrencyLimiterOptions{Permits: 1})
	if err != nil {
		t.Fatal(err)
	}
	copt := &ConcurrencyMiddlewareOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	var ch http.Handler
	nested := 0
	serve := func(h http.Handler, peer string) int {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr, r.Header["X-Forwarded-For"] = peer+":1234", []string{"198.51.100.7"}
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := serve(lh, "10.1.1.1"); code != http.StatusNoContent {
		t.Fatalf("first request: %d", code)
	}
	lopt.Limits[0] = PerHour(100)
	lopt.TrustedProxies[0] = netip.MustParsePrefix("192.0.2.0/24")
	// The client is still 198.51.100.7 through the proxy 10.2.2.2, and its
	// limit still 1 an hour.
	if code := serve(lh, "10.2.2.2"); code != http.StatusTooManyRequests {
		t.Fatalf("options changed after Middleware(): second request of the client got %d, want 429", code)
	}
	// The concurrency key: 10.2.2.2 is still a trusted proxy, so a second
	// request of 198.51.100.7 through it, while the first holds the only
	// permit, is refused.
	ch, err = cl.Middleware(copt, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.RemoteAddr == "10.1.1.1:1234" {
			nested = serve(ch, "10.2.2.2")
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	copt.TrustedProxies[0] = netip.MustParsePrefix("192.0.2.0/24")
	if code := serve(ch, "10.1.1.1"); code != http.StatusOK || nested != http.StatusTooManyRequests {
		t.Fatalf("concurrency, options changed after Middleware(): %d, the second request of the client %d, want 200 and 429", code, nested)
	}
}

// The session middleware: a cookie naming no session (garbage, or a
// well-formed ID never issued) is no session: next runs anonymous, nothing
// is written or reported, no error. A session that cannot be loaded
// because Redis is down is not "no session" either: next runs anonymous
// with SessionHandle.Err set, OnError is told, and its changes are dropped,
// so a Redis that comes back mid-request does not replace the client's
// cookie with a new session (which logged the user out).
func TestSessionMiddlewareBadCookieAndOutage(t *testing.T) {
	rdb, proc := testProcess(t)
	c := newClient(t, rdb)
	s, err := c.Sessions("seam", nil)
	if err != nil {
		t.Fatal(err)
	}
	var reported atomic.Int64
	var seen *SessionHandle
	var restart bool
	h, err := s.Middleware(&SessionMiddlewareOptions{Insecure: true, OnError: func(*http.Request, error) { reported.Add(1) }},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = SessionFrom(r.Context())
			if restart {
				proc.Restart() // Redis is back before the commit
			}
			if r.URL.Path == "/set" {
				seen.Set("k", "v")
			}
			w.WriteHeader(http.StatusNoContent)
		}))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(path, cookie string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(&http.Cookie{Name: "session", Value: cookie})
		h.ServeHTTP(w, r)
		return w
	}
	unknown := strings.Repeat("A", sessionIDLen)
	for _, cookie := range []string{"garbage", unknown, strings.Repeat("A", sessionIDLen+1)} {
		w := serve("/peek", cookie)
		if w.Code != http.StatusNoContent || seen.ID() != "" || seen.User() != "" || seen.Err() != nil || w.Header().Get("Set-Cookie") != "" {
			t.Fatalf("cookie %q: %d, id %q, err %v, Set-Cookie %q", cookie, w.Code, seen.ID(), seen.Err(), w.Header().Get("Set-Cookie"))
		}
	}
	if n := countKeys(t, rdb, c.prefix); n != 0 || reported.Load() != 0 {
		t.Fatalf("cookies naming no session wrote %d keys, OnError told %d times", n, reported.Load())
	}
	// Redis down while the session loads, back before the commit.
	id, err := s.Create(t.Context(), "zoe", map[string]string{"a": "1"})
	if err != nil {
		t.Fatal(err)
	}
	proc.Stop()
	restart = true
	w := serve("/set", id)
	if w.Code != http.StatusNoContent || seen.Err() == nil || seen.User() != "" || seen.ID() != "" {
		t.Fatalf("Redis down: %d, err %v, user %q, id %q", w.Code, seen.Err(), seen.User(), seen.ID())
	}
	if sc := w.Header().Get("Set-Cookie"); sc != "" {
		t.Fatalf("Redis down at load: the cookie was replaced (%q)", sc)
	}
	if n := countKeys(t, rdb, c.prefix); n != 0 || reported.Load() != 1 {
		t.Fatalf("Redis down at load: %d keys written, OnError told %d times (want 1)", n, reported.Load())
	}
}
