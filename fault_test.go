package patterns

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// faultProxy forwards TCP between clients and a real Redis and breaks the
// traffic on demand: the network faults of the fault battery. It is written
// here rather than taken from Toxiproxy because a test dependency of the root
// module would enter the module graph of every user of the library.
//
// While armed, the next integer reply (the scripts under test return
// integers; connection handshakes do not) is dropped and its connection
// reset: the command ran, but its reply never reaches the client. set
// installs a standing fault on every reply (latency, drop, or a reset of a
// share of the connections) or on every request (a stall).
type faultProxy struct {
	ln       net.Listener
	upstream string
	armed    atomic.Bool
	dropped  atomic.Int64
	fault    atomic.Pointer[netFault]
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]bool
	stopped  bool
	quit     chan struct{} // closed by close: stalled requests give up
}

// netFault is a standing fault on the replies, or with stall on the
// requests.
type netFault struct {
	latency, jitter time.Duration // each reply chunk is delayed by latency ± jitter
	drop            bool          // replies are discarded
	resetShare      float64       // share of connections, drawn per connection, reset at their next reply
	// stall holds every request back, in order, until a fault without
	// stall is set: the commands do not reach the server at all (the
	// connections stay open, so a client waits for its read timeout).
	stall bool
	// refuse makes the server unreachable: open connections are cut at
	// their next request, new ones at once, and nothing reaches the server.
	refuse bool
}

func newFaultProxy(t testing.TB, upstream string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}, quit: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// set installs f on every reply from now on; nil removes it.
func (p *faultProxy) set(f *netFault) { p.fault.Store(f) }

// close stops accepting, cuts every connection and waits for the copies.
func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	if !p.stopped {
		close(p.quit)
	}
	p.stopped = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track records c so that close can cut it; false once the proxy is closed.
func (p *faultProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *faultProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		if f := p.fault.Load(); f != nil && f.refuse {
			c.Close()
			u.Close()
			continue
		}
		if !p.track(c, u) {
			c.Close()
			u.Close()
			return
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.requests(c, u); u.Close() }()
		go func() { defer p.wg.Done(); p.replies(c, u); p.untrack(c, u) }()
	}
}

// requests copies the client's requests to the server, holding them back
// while the standing fault stalls.
func (p *faultProxy) requests(c, u net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		for n > 0 {
			if f := p.fault.Load(); f == nil || !f.stall {
				break
			}
			select {
			case <-p.quit:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		if f := p.fault.Load(); n > 0 && f != nil && f.refuse {
			return
		}
		if n > 0 {
			if _, werr := u.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// replies copies the server's replies to the client, applying the faults.
func (p *faultProxy) replies(c, u net.Conn) {
	defer c.Close()
	defer u.Close()
	reset := func() {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
	}
	var drawnFor *netFault
	doomed := false
	buf := make([]byte, 32<<10)
	for {
		n, err := u.Read(buf)
		if n > 0 && buf[0] == ':' && p.armed.CompareAndSwap(true, false) {
			p.dropped.Add(1)
			reset()
			return
		}
		if f := p.fault.Load(); n > 0 && f != nil {
			if f != drawnFor {
				drawnFor, doomed = f, mrand.Float64() < f.resetShare
			}
			switch {
			case doomed:
				reset()
				return
			case f.drop:
				n = 0
			case f.latency > 0:
				d := f.latency
				if f.jitter > 0 {
					d += time.Duration(mrand.Int64N(int64(2*f.jitter))) - f.jitter
				}
				time.Sleep(d)
			}
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestScriptsAreNotRetried proves that a script whose reply is lost is not
// sent again by go-redis's retry logic (which would apply a non-idempotent
// script twice), while the caller gets a typed error.
func TestScriptsAreNotRetried(t *testing.T) {
	direct := testRedis(t)
	proxy := newFaultProxy(t, direct.Options().Addr)
	// A client with go-redis's default retries (3) through the proxy.
	rdb := redis.NewClient(&redis.Options{Addr: proxy.addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	counter := "t:not-retried:" + uniquePrefix(t)
	t.Cleanup(func() { direct.Del(ctx, counter) })
	incr := &script{name: "test_incr", src: "return redis.call('INCR', KEYS[1])"}
	incr.Script = redis.NewScript(incr.src)

	arm := func() { proxy.armed.Store(true) }
	// Plain go-redis EVAL is retried after the reset: the increment runs twice.
	arm()
	if err := rdb.Eval(ctx, incr.src, []string{counter}).Err(); err != nil {
		t.Fatalf("go-redis retried Eval: %v", err)
	}
	if n, _ := direct.Get(ctx, counter).Int(); n != 2 {
		t.Fatalf("baseline: counter = %d, want 2 (go-redis retries the lost reply)", n)
	}

	// The library's call runs it once and reports the lost reply.
	arm()
	err := incr.run(ctx, rdb, []string{counter}).Err()
	if err == nil {
		t.Fatal("want an error for the lost reply")
	}
	if n, _ := direct.Get(ctx, counter).Int(); n != 3 {
		t.Fatalf("counter = %d, want 3: the script ran %d times", n, n-2)
	}
	// Pipelines too.
	arm()
	c := &Client{rdb: rdb, scr: rdb, prefix: "t"}
	err = c.runBatch(ctx, []call{incr.call([]string{counter}), incr.call([]string{counter})})
	if err == nil {
		n, _ := direct.Get(ctx, counter).Int()
		t.Fatalf("want an error for the lost pipeline reply; counter %d, dropped %d", n, proxy.dropped.Load())
	}
	if n, _ := direct.Get(ctx, counter).Int(); n != 5 {
		t.Fatalf("counter = %d, want 5 after one pipelined pair", n)
	}
	if proxy.dropped.Load() != 3 {
		t.Fatalf("dropped %d replies, want 3", proxy.dropped.Load())
	}
	// And the client works again afterwards.
	if err := incr.run(ctx, rdb, []string{counter}).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestLockReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("no replica", func(t *testing.T) {
		c := newClient(t, testRedis(t))
		_, err := c.Obtain(ctx, "k", time.Second, &LockOptions{Replicas: 1, ReplicaTimeout: 20 * time.Millisecond})
		if !errors.Is(err, ErrNotReplicated) {
			t.Fatalf("err = %v, want ErrNotReplicated", err)
		}
		// The unreplicated grant was released: the lock is free.
		l, err := c.Obtain(ctx, "k", time.Second, nil)
		if err != nil {
			t.Fatalf("lock not released after ErrNotReplicated: %v", err)
		}
		_ = l.Release(ctx)
		if _, err := c.Obtain(ctx, "k", time.Second, &LockOptions{Replicas: -1}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("negative Replicas: %v", err)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		c := newClient(t, testCluster(t))
		for _, key := range []string{"a", "b", "c", "d"} {
			_, err := c.Obtain(ctx, key, time.Second, &LockOptions{Replicas: 1, ReplicaTimeout: 10 * time.Millisecond})
			if !errors.Is(err, ErrNotReplicated) {
				t.Fatalf("%s: err = %v, want ErrNotReplicated (the masters have no replicas)", key, err)
			}
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		rdb, _ := testSentinel(t)
		c := newClient(t, rdb)
		opt := &LockOptions{Replicas: 1, ReplicaTimeout: time.Second}
		l, err := c.Obtain(ctx, "k", time.Second, opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Refresh(ctx, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Obtain(ctx, "k", time.Second, &LockOptions{Replicas: 2, ReplicaTimeout: 20 * time.Millisecond}); !errors.Is(err, ErrNotReplicated) {
			t.Fatalf("2 replicas of 1: %v", err)
		}
	})
}
