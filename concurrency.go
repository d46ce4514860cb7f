package patterns

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// ConcurrencyLimiterOptions configure a ConcurrencyLimiter. Permits is
// required.
type ConcurrencyLimiterOptions struct {
	// Permits is how many requests of one key may be in flight at once (>= 1).
	Permits int

	// Lease bounds how long a permit outlives a holder that crashed. Holders
	// that stay alive keep theirs with Permit.Refresh (the middleware does).
	//
	// default: 30s
	Lease time.Duration

	// RetryStrategy says whether and when Acquire tries again while the key
	// is full. Retrying always stops when the context is done.
	//
	// default: NoRetry() (answer at once)
	RetryStrategy RetryStrategy
}

func (o *ConcurrencyLimiterOptions) semaphore() *SemaphoreOptions {
	if o == nil {
		return nil
	}
	retry := o.RetryStrategy
	if retry == nil {
		retry = NoRetry()
	}
	return &SemaphoreOptions{Permits: o.Permits, Lease: o.Lease, RetryStrategy: retry}
}

// ConcurrencyLimiter bounds the requests in flight per key (a user, a
// tenant, a partner API): one Semaphore per key, made on demand. Keys:
// prefix:conc:{key}:NAME (and the semaphore's suffixes), in the key's slot,
// each with a TTL. Safe for concurrent use.
type ConcurrencyLimiter struct {
	c    *Client
	name string
	opt  SemaphoreOptions
}

// ConcurrencyLimiter returns the concurrency limiter called name. It returns
// ErrInvalidArgument for an empty or too long name, opt without Permits (or
// with fewer than one), or a negative Lease.
func (c *Client) ConcurrencyLimiter(name string, opt *ConcurrencyLimiterOptions) (*ConcurrencyLimiter, error) {
	if err := checkID("concurrency limiter name", name); err != nil {
		return nil, err
	}
	so := opt.semaphore()
	if err := so.validate(); err != nil {
		return nil, err
	}
	return &ConcurrencyLimiter{c: c, name: name, opt: *so}, nil
}

// semaphore returns key's semaphore.
func (l *ConcurrencyLimiter) semaphore(key string) (*Semaphore, error) {
	if err := checkID("concurrency key", key); err != nil {
		return nil, err
	}
	s := l.c.newSemaphore(key, l.c.key("conc", key, escapePart(l.name)), &l.opt)
	s.obs = obsTag{PatternConcurrency, l.name}
	return s, nil
}

// Acquire takes one of key's permits, retrying as the options say, and
// returns ErrNoPermit when key has Permits requests in flight. Release the
// permit when the request is done.
func (l *ConcurrencyLimiter) Acquire(ctx context.Context, key string) (*Permit, error) {
	s, err := l.semaphore(key)
	if err != nil {
		return nil, l.c.observeFailed(ctx, PatternConcurrency, OpAcquire, l.name, err)
	}
	return s.Acquire(ctx)
}

// Do runs fn holding one of key's permits (see Semaphore.WithPermit: the
// lease, which runs from the successful grant however long the retries
// took, is kept alive while fn runs, and fn's context is cancelled if the
// permit is lost). It returns ErrNoPermit, without calling fn, when key is
// full.
func (l *ConcurrencyLimiter) Do(ctx context.Context, key string, fn func(ctx context.Context) error) error {
	s, err := l.semaphore(key)
	if err != nil {
		return l.c.observeFailed(ctx, PatternConcurrency, OpAcquire, l.name, err)
	}
	return s.WithPermit(ctx, fn)
}

// ConcurrencyMiddlewareOptions configure ConcurrencyLimiter.Middleware.
type ConcurrencyMiddlewareOptions struct {
	// Key returns the key a request is counted under. An error answers 400,
	// and so does a key the limiter refuses (empty, or over MaxIDLen bytes):
	// such a request never runs unbounded.
	//
	// default: ClientNetwork(r, TrustedProxies, IPv4PrefixLen, IPv6PrefixLen)
	// (an IPv6 client is counted by its /64)
	Key func(r *http.Request) (string, error)

	// IPv4PrefixLen: as LimiterMiddlewareOptions.IPv4PrefixLen.
	//
	// default: 32
	IPv4PrefixLen int

	// IPv6PrefixLen: as LimiterMiddlewareOptions.IPv6PrefixLen.
	//
	// default: 64
	IPv6PrefixLen int

	// TrustedProxies: as LimiterMiddlewareOptions.TrustedProxies.
	//
	// default: none
	TrustedProxies []netip.Prefix

	// StatusCode answers a request whose key is full: 429 or 503.
	//
	// default: http.StatusTooManyRequests
	StatusCode int

	// RetryAfter is what the Retry-After header of a refused request says,
	// rounded up to whole seconds. (Requests in flight end when they end: no
	// exact time exists.)
	//
	// default: 1s
	RetryAfter time.Duration

	// FailClosed answers 503 when Redis cannot be reached, instead of letting
	// the request through. Failing open applies only when Redis cannot be
	// reached (a network or server error): an invalid key answers 400, and a
	// request whose own context ended while it waited for a permit answers
	// 503; neither runs next.
	//
	// default: false (fail open)
	FailClosed bool

	// OnError is called with every error of an Acquire or Release (Redis
	// unreachable, a timeout, the request's context ended), not with a
	// client's invalid key. It must be safe for concurrent use.
	//
	// default: nil
	OnError func(r *http.Request, err error)
}

// Middleware bounds the requests next serves at once per key. A request
// takes a permit before next runs and gives it back when next returns, or
// panics (the panic goes on after the release); the lease is refreshed while
// next runs, and next's request context is cancelled if the permit is lost.
// A request whose key is full gets StatusCode (429 by default)
// with Retry-After. It returns ErrInvalidArgument for a StatusCode other
// than 429 or 503 or a negative RetryAfter.
//
// Errors: a Key error or an invalid key (empty, over MaxIDLen) answers 400;
// a request whose context ends before it has a permit answers 503; only an
// error of Redis itself (unreachable, a timeout, a server error) takes the
// fail-open path, or 503 with FailClosed. next runs in no other case. opt is
// copied: changing it (or its slices) afterwards changes nothing.
func (l *ConcurrencyLimiter) Middleware(opt *ConcurrencyMiddlewareOptions, next http.Handler) (http.Handler, error) {
	var o ConcurrencyMiddlewareOptions
	if opt != nil {
		o = *opt
	}
	if next == nil {
		return nil, invalidf("concurrency middleware: nil handler")
	}
	switch o.StatusCode {
	case 0:
		o.StatusCode = http.StatusTooManyRequests
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
	default:
		return nil, invalidf("concurrency middleware: status %d: want 429 or 503", o.StatusCode)
	}
	if o.RetryAfter < 0 {
		return nil, invalidf("concurrency middleware: negative RetryAfter %v", o.RetryAfter)
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = time.Second
	}
	if o.Key == nil {
		key, err := clientNetworkKey(o.TrustedProxies, o.IPv4PrefixLen, o.IPv6PrefixLen)
		if err != nil {
			return nil, err
		}
		o.Key = key
	}
	retryAfter := strconv.FormatInt(seconds(o.RetryAfter), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := o.Key(r)
		if err != nil {
			http.Error(w, "concurrency limit: no client key", http.StatusBadRequest)
			return
		}
		p, err := l.Acquire(r.Context(), key)
		switch {
		case errors.Is(err, ErrNoPermit):
			w.Header().Set("Retry-After", retryAfter)
			http.Error(w, http.StatusText(o.StatusCode), o.StatusCode)
			return
		case err != nil:
			if !decisionFailed(w, r, "concurrency limit", key, err, o.FailClosed, o.OnError) {
				next.ServeHTTP(w, r)
			}
			return
		}
		_, _, rerr := p.hold(r.Context(), func(ctx context.Context) error {
			next.ServeHTTP(w, r.WithContext(ctx))
			return nil
		})
		if rerr != nil && !errors.Is(rerr, ErrNotHeld) && o.OnError != nil {
			o.OnError(r, rerr)
		}
	}), nil
}
