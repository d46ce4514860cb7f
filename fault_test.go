package patterns

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/patternstest"
)

// faultProxy forwards TCP between clients and a real Redis. While armed, the
// next integer reply (the scripts under test return integers; connection
// handshakes do not) is dropped and its connection reset: the command ran,
// but its reply never reaches the client.
type faultProxy struct {
	ln       net.Listener
	upstream string
	armed    atomic.Bool
	dropped  atomic.Int64
	wg       sync.WaitGroup
}

func newFaultProxy(t *testing.T, upstream string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, upstream: upstream}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

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
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(u, c); u.Close() }()
		go func() {
			defer p.wg.Done()
			defer c.Close()
			defer u.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := u.Read(buf)
				if n > 0 && buf[0] == ':' && p.armed.CompareAndSwap(true, false) {
					p.dropped.Add(1)
					if tc, ok := c.(*net.TCPConn); ok {
						_ = tc.SetLinger(0) // RST, not FIN
					}
					return
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
		}()
	}
}

// TestScriptsAreNotRetried proves that a script whose reply is lost is not
// sent again by go-redis's retry logic (which would apply a non-idempotent
// script twice), while the caller gets a typed error.
func TestScriptsAreNotRetried(t *testing.T) {
	direct := patternstest.Redis(t)
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
	c := &Client{rdb: rdb, prefix: "t"}
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
	ctx := context.Background()
	t.Run("no replica", func(t *testing.T) {
		c := newClient(t, patternstest.Redis(t))
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
		c := newClient(t, patternstest.Cluster(t))
		for _, key := range []string{"a", "b", "c", "d"} {
			_, err := c.Obtain(ctx, key, time.Second, &LockOptions{Replicas: 1, ReplicaTimeout: 10 * time.Millisecond})
			if !errors.Is(err, ErrNotReplicated) {
				t.Fatalf("%s: err = %v, want ErrNotReplicated (the masters have no replicas)", key, err)
			}
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		rdb, _ := patternstest.Sentinel(t)
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
