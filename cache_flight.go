package patterns

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// ErrLoaderPanicked is the error of a Get that shared a load whose loader
// panicked, and the error passed to CacheOptions.OnError when a loader
// panics with no caller left to receive the panic (a background refresh).
var ErrLoaderPanicked = errors.New("patterns: cache loader panicked")

// loaderPanic is a loader's panic, caught in the goroutine that ran it.
// The caller that started the load panics with it: its message carries the
// panic value and the loader's stack, which the re-raise would otherwise lose.
type loaderPanic struct {
	value  any
	stack  []byte
	goexit bool // the loader called runtime.Goexit: no value to re-raise
}

func (p *loaderPanic) Error() string {
	return fmt.Sprintf("%v: %v\n\n%s", ErrLoaderPanicked, p.value, p.stack)
}

// Unwrap gives ErrLoaderPanicked, and the panic value when it is an error.
func (p *loaderPanic) Unwrap() []error {
	if err, ok := p.value.(error); ok {
		return []error{ErrLoaderPanicked, err}
	}
	return []error{ErrLoaderPanicked}
}

// flightGroup runs one call per key at a time in the process, in a goroutine
// of its own, and shares its result with every caller that asks for the key
// meanwhile; each caller waits only until its own context ends.
//
// Why not golang.org/x/sync/singleflight: its Do runs the call in the first
// caller's goroutine, which then cannot leave by its own deadline; its
// DoChan lets every caller leave, but crashes the process when the call
// panics and never answers when the call calls runtime.Goexit. Here a panic
// is caught and handed over (the starting caller re-raises it, the others
// get ErrLoaderPanicked), results are typed (a nil interface T is a value,
// not a failed type assertion), and no module is added to users' builds.
type flightGroup[T any] struct {
	mu sync.Mutex
	m  map[string]*flight[T]
	wg sync.WaitGroup // calls running

	// orphan receives the panic of a call whose starting caller had left.
	orphan func(key string, p *loaderPanic)
}

type flight[T any] struct {
	done chan struct{} // closed when the call has ended

	// Written by the call's goroutine before done is closed.
	val   T
	err   error
	panic *loaderPanic

	// Under the group's mutex.
	finished bool // the call ended (done is being closed)
	left     bool // the starting caller left before the end
}

// do returns the result of fn for key: it starts fn in a goroutine unless a
// call for key is already running, then waits for that call's end or ctx's,
// whichever comes first. left reports that ctx ended first (err is then
// ctx.Err(); the call goes on). A call that panicked re-panics in the caller
// that started it (with a *loaderPanic); the others get the *loaderPanic as
// err.
func (g *flightGroup[T]) do(ctx context.Context, key string, fn func() (T, error)) (v T, err error, left bool) {
	g.mu.Lock()
	f, ok := g.m[key]
	started := !ok
	if started {
		if g.m == nil {
			g.m = make(map[string]*flight[T])
		}
		f = &flight[T]{done: make(chan struct{})}
		g.m[key] = f
		g.wg.Add(1)
		go g.run(key, f, fn)
	}
	g.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		g.mu.Lock()
		finished := f.finished // ended meanwhile: take the result
		if !finished && started {
			f.left = true
		}
		g.mu.Unlock()
		if !finished {
			return v, ctx.Err(), true
		}
	}
	if p := f.panic; p != nil {
		if started && !p.goexit {
			panic(p)
		}
		return v, p, false
	}
	return f.val, f.err, false
}

// run calls fn and publishes its result, whatever way fn ends.
func (g *flightGroup[T]) run(key string, f *flight[T], fn func() (T, error)) {
	defer g.wg.Done()
	normal := false
	defer func() {
		if !normal && f.panic == nil { // runtime.Goexit: nothing to recover
			f.panic = &loaderPanic{value: "runtime.Goexit called", goexit: true}
		}
		g.mu.Lock()
		if g.m[key] == f {
			delete(g.m, key)
		}
		f.finished = true
		orphan := f.left && f.panic != nil && !f.panic.goexit
		g.mu.Unlock()
		close(f.done)
		if orphan && g.orphan != nil {
			g.orphan(key, f.panic)
		}
	}()
	func() {
		defer func() {
			if !normal {
				if r := recover(); r != nil {
					f.panic = &loaderPanic{value: r, stack: debug.Stack()}
				}
			}
		}()
		f.val, f.err = fn()
		normal = true
	}()
}

// wait blocks until no call is running.
func (g *flightGroup[T]) wait() { g.wg.Wait() }

// loadContext is the context of a shared load or a background refresh:
// ctx's values without its cancellation, bounded by LoadTimeout.
func (k *Cache[T]) loadContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = context.WithoutCancel(ctx)
	if d := k.opt.loadTimeout(); d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

const defaultLoadTimeout = 10 * time.Second

func (o *CacheOptions) loadTimeout() time.Duration {
	if o == nil || o.LoadTimeout == 0 {
		return defaultLoadTimeout
	}
	return o.LoadTimeout
}

// callLoad runs load, counting it; a panic is counted as a load error and
// goes on up.
func (k *Cache[T]) callLoad(ctx context.Context, load func(ctx context.Context) (T, error)) (T, error) {
	k.loads.Add(1)
	ok := false
	defer func() {
		if !ok {
			k.loadErrors.Add(1)
		}
	}()
	lctx, done := k.c.observe(ctx, PatternCache, OpLoad, k.name)
	ended := false
	defer func() {
		if !ended { // a panic: reported, and it goes on up
			done.end(OutcomeError, ErrLoaderPanicked)
		}
	}()
	v, err := load(lctx)
	ended, ok = true, err == nil || errors.Is(err, ErrCacheNotFound)
	done.end(cacheOutcome(OutcomeLoaded, err), err)
	return v, err
}

// loaderPanicked reports a loader's panic that no caller received.
func (k *Cache[T]) loaderPanicked(key string, value any) {
	if k.opt.OnError != nil {
		k.opt.OnError("load", key, fmt.Errorf("patterns: cache %q: load %q: %w: %v", k.name, key, ErrLoaderPanicked, value))
	}
}

// loadShared runs once per key per process at a time (the flight group),
// detached from its callers (ctx is from loadContext): take the lease and
// load, or wait for the holder's value.
func (k *Cache[T]) loadShared(ctx context.Context, key string, load func(ctx context.Context) (T, error), opt *CacheSetOptions) (T, error) {
	var zero T
	token, err := newToken()
	if err != nil {
		return zero, err
	}
	deadline := time.Now().Add(k.opt.LeaseWait)
	wait := 5 * time.Millisecond
	for {
		e, err := k.lookupOrLease(ctx, key, token)
		if err != nil {
			rerr := k.redisError("get", key, err)
			if k.opt.FailClosed {
				return zero, rerr
			}
			return k.callLoad(ctx, load)
		}
		if e.hit {
			if e.negative {
				return zero, ErrCacheNotFound
			}
			return k.decode(e.payload)
		}
		if e.lease || time.Now().After(deadline) {
			// Past the deadline without the lease, the value is returned and
			// not cached: the holder's fill is.
			return k.loadAndSet(ctx, key, load, opt, token, e.began)
		}
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("patterns: cache %q: waiting for %q: %w", k.name, key, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// loadAndSet loads and caches the value, with the lease token granted at
// began (which the Set releases). The value is cached only if token still
// holds the lease when it is written: a write of key during the load
// (Set, Delete, and their batch forms) revokes the lease, as does its
// expiry (LeaseTTL); the caller gets the value all the same. If the load
// fails, panics or its value cannot be encoded, the lease is released for
// the next caller.
func (k *Cache[T]) loadAndSet(ctx context.Context, key string, load func(ctx context.Context) (T, error), opt *CacheSetOptions, token string, began int64) (v T, err error) {
	released := false
	defer func() {
		if !released {
			k.releaseLease(ctx, key, token)
		}
	}()
	start := time.Now()
	v, err = k.callLoad(ctx, load)
	delta := time.Since(start)
	switch {
	case errors.Is(err, ErrCacheNotFound):
		if k.opt.NegativeTTL > 0 {
			released = k.set(ctx, key, nil, true, opt, delta, token, began) == nil
		}
		return v, err
	case err != nil:
		return v, err
	}
	if payload, perr := k.encode(v); perr == nil {
		released = k.set(ctx, key, payload, false, opt, delta, token, began) == nil
	}
	return v, nil
}

// releaseLease drops the load lease if token still holds it (owner-checked,
// as a lock), so that the next caller loads. It has a context of its own:
// ctx may be the one that ended the load.
func (k *Cache[T]) releaseLease(ctx context.Context, key, token string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.opt.LeaseTTL)
	defer cancel()
	_ = scriptLockRelease.run(ctx, k.c.scr, []string{k.leaseKey(key)}, token).Err()
}

// refreshInBackground reloads key in a goroutine, one at a time per key in
// the process and, by the lease, across processes. A panic of the loader is
// recovered and goes to OnError.
func (k *Cache[T]) refreshInBackground(ctx context.Context, key string, load func(ctx context.Context) (T, error), opt *CacheSetOptions) {
	if _, busy := k.refreshing.LoadOrStore(key, struct{}{}); busy {
		return
	}
	k.bg.Add(1)
	go func() {
		defer k.bg.Done()
		defer k.refreshing.Delete(key)
		defer func() {
			if r := recover(); r != nil {
				k.loaderPanicked(key, r)
			}
		}()
		ctx, cancel := k.loadContext(ctx)
		defer cancel()
		token, err := newToken()
		if err != nil {
			return
		}
		// Only one process refreshes: the lease (taken by cache_get whatever
		// the entry's TTL, for the server time of its grant).
		got, err := k.lookupMany(ctx, []string{key}, token, k.opt.MaxTTL+k.opt.StaleWhileRevalidate+time.Hour)
		if err != nil || !got[0].lease {
			return
		}
		_, _ = k.loadAndSet(ctx, key, load, opt, token, got[0].began)
	}()
}
