package patterns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// faultOp is one operation of one pattern, made of one or more calls, that a
// fault test runs again and again. run returns the first error.
type faultOp struct {
	name string
	run  func(ctx context.Context) error
}

// faultOps returns one operation per pattern of c, writes and reads
// together, pipelines and transactions included. Each op keeps the state it
// needs between runs (a session, a queue) and starts afresh when a fault
// lost it.
func faultOps(t testing.TB, c *Client) []faultOp {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var ops []faultOp
	add := func(name string, run func(ctx context.Context) error) {
		ops = append(ops, faultOp{name, run})
	}

	var lockN atomic.Int64
	add("lock", func(ctx context.Context) error {
		// A key per run: a grant whose reply was lost must not block the
		// next run until its TTL.
		l, err := c.Obtain(ctx, "fault-lock-"+strconv.FormatInt(lockN.Add(1), 10), 5*time.Second, nil)
		if err != nil {
			return err
		}
		if err := l.Refresh(ctx, 5*time.Second); err != nil {
			return err
		}
		return l.Release(ctx)
	})

	big := Limit{Rate: 1_000_000, Period: time.Second, Burst: 1_000_000}
	for _, algo := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA} {
		lim, err := c.Limiter("api", &LimiterOptions{Algorithm: algo})
		must(err)
		add("rl-"+algo.String(), func(ctx context.Context) error {
			_, err := lim.Allow(ctx, "fault-rl", big)
			return err
		})
	}
	batch, err := c.Limiter("api", &LimiterOptions{Algorithm: TokenBucket})
	must(err)
	add("rl-batch", func(ctx context.Context) error {
		_, err := batch.AllowBatch(ctx, []LimitRequest{
			{Key: "fault-b1", N: 1, Limits: []Limit{big}},
			{Key: "fault-b2", N: 2, Limits: []Limit{big, PerHour(1_000_000)}},
			{Key: "fault-b3", N: 1, Limits: []Limit{big}},
		})
		return err
	})

	quota, err := c.Limiter("api-quota", &LimiterOptions{Algorithm: FixedWindow})
	must(err)
	add("rl-calendar", func(ctx context.Context) error {
		_, err := quota.Allow(ctx, "fault-rl", PerCalendarMonth(1_000_000, time.UTC), big)
		return err
	})

	cache, err := NewCache[string](c, "fault-cache", &CacheOptions{FailClosed: true, TTL: time.Minute})
	must(err)
	var cacheN atomic.Int64
	add("cache", func(ctx context.Context) error {
		k := "k" + strconv.FormatInt(cacheN.Add(1)%64, 10)
		if err := cache.Set(ctx, k, "v", &CacheSetOptions{Tags: []string{"t"}}); err != nil {
			return err
		}
		if _, err := cache.Get(ctx, k, func(context.Context) (string, error) { return "loaded", nil }, nil); err != nil {
			return err
		}
		return cache.InvalidateTags(ctx, "t")
	})

	sess, err := c.Sessions("web", nil)
	must(err)
	add("session", func(ctx context.Context) error {
		id, err := sess.Create(ctx, "fault-user", map[string]string{"a": "1"})
		if err != nil {
			return err
		}
		if _, _, err := sess.Get(ctx, id); err != nil {
			return err
		}
		return sess.Destroy(ctx, id)
	})

	board, err := c.Board("fault-board", &BoardOptions{Policy: ScoreIncrement, Daily: time.Hour})
	must(err)
	add("board", func(ctx context.Context) error {
		if _, err := board.Submit(ctx, "m", 1); err != nil {
			return err
		}
		_, err := board.Top(ctx, 3, RankCompetition)
		return err
	})

	uniq, err := c.Uniques("fault-uniq", &UniquesOptions{Retention: time.Hour})
	must(err)
	act, err := c.Activity("fault-act", &ActivityOptions{Retention: time.Hour})
	must(err)
	var uniqN atomic.Int64
	add("uniques+activity", func(ctx context.Context) error {
		n := uniqN.Add(1) % 1000
		if _, err := uniq.Add(ctx, "item-"+strconv.FormatInt(n, 10)); err != nil {
			return err
		}
		if _, err := uniq.Count(ctx, time.Now(), 2); err != nil {
			return err
		}
		if _, err := act.Mark(ctx, n); err != nil {
			return err
		}
		_, err := act.Count(ctx, time.Now())
		return err
	})

	q, err := c.Queue("fault-queue", &QueueOptions{Visibility: time.Second, Retention: time.Hour})
	must(err)
	add("queue", func(ctx context.Context) error {
		if _, _, err := q.Enqueue(ctx, []byte("job"), nil); err != nil {
			return err
		}
		m, _, err := q.TryDequeue(ctx)
		if err != nil || m == nil {
			return err
		}
		return m.Ack(ctx)
	})

	wb, err := NewWriteBehind[string](c, "fault-wb", &WriteBehindOptions{Cache: &CacheOptions{TTL: time.Minute}, Queue: &QueueOptions{Retention: time.Hour}})
	must(err)
	add("write-behind", func(ctx context.Context) error {
		return wb.Set(ctx, "k", "v", nil)
	})
	for _, more := range moreFaultOps {
		ops = append(ops, more(t, c)...)
	}
	return ops
}

// moreFaultOps lets a pattern's own test file add its operations to
// faultOps (from an init function), so every fault battery runs them.
var moreFaultOps []func(t testing.TB, c *Client) []faultOp

// faultKind classifies an error seen under faults: "sentinel" (one of the
// package's errors that report a state, such as a lock or session the
// restart lost), "context", "network" (connection refused or reset, EOF, a
// net.Error, the pool's timeout), "loading" (Redis still loading its data),
// or "other": an error nobody can test for, which fails the tests. Errors
// matching ErrUnexpectedReply or ErrInvalidArgument are "other" too: no fault
// may produce them.
func faultKind(err error) string {
	var nerr net.Error
	var rerr redis.Error
	switch {
	case errors.Is(err, ErrUnexpectedReply), errors.Is(err, ErrInvalidArgument):
		return "other"
	case errors.Is(err, ErrNotObtained), errors.Is(err, ErrNotHeld), errors.Is(err, ErrSessionNotFound),
		errors.Is(err, ErrQueueLeaseLost), errors.Is(err, ErrNotOnBoard), errors.Is(err, ErrCacheNotFound),
		errors.Is(err, ErrStreamNotPending):
		return "sentinel"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "context"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, redis.ErrPoolTimeout),
		errors.As(err, &nerr):
		return "network"
	case errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "LOADING"):
		return "loading"
	default:
		return "other"
	}
}

// restartable is a redis-server process that a test shuts down (SHUTDOWN
// NOSAVE) and starts again, empty, on the same port.
type restartable struct {
	t    testing.TB
	srv  *redisserver.Server
	addr string
	port int
}

func startRestartable(t testing.TB) *restartable {
	t.Helper()
	r := &restartable{t: t}
	r.start()
	r.addr, r.port = r.srv.Addr, r.srv.Port()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	srv, err := redisserver.StartProcess(context.Background(), &redisserver.ProcessConfig{Port: r.port})
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = srv
}

// shutdown stops the server with SHUTDOWN NOSAVE and waits for its exit.
func (r *restartable) shutdown() {
	admin := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.ShutdownNoSave(ctx).Err(); err != nil && faultKind(err) != "network" {
		r.t.Errorf("SHUTDOWN NOSAVE: %v", err)
	}
	_ = r.srv.Close() // reaps the process (kills it if SHUTDOWN did not)
}

// startAndWaitReady starts the server again and returns when it first
// answered PING: a fresh connection every millisecond, in plain RESP, so that
// no client-side dial backoff delays the moment.
func (r *restartable) startAndWaitReady() time.Time {
	r.t.Helper()
	ready := make(chan time.Time, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !closed(done) {
			if pingOnce(r.addr) {
				ready <- time.Now()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() { close(done); wg.Wait() }()
	r.start()
	select {
	case at := <-ready:
		return at
	case <-time.After(10 * time.Second):
		r.t.Fatal("started server never answered the readiness PING")
		return time.Time{}
	}
}

// pingOnce dials addr, sends PING and reports whether +PONG came back.
func pingOnce(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 7)
	n, _ := io.ReadFull(conn, buf)
	return string(buf[:n]) == "+PONG\r\n"
}

// errStateLost is an op's report that state it wrote and then read back is
// gone. A restart (the server comes back empty) during the op explains it;
// any other time it is an error no caller can test for.
var errStateLost = errors.New("patterns: state written by this op is gone")

// faultEvent is one failed call of a fault test.
type faultEvent struct {
	op         string
	start, end time.Time
	err        error
}

// TestRestartBattery runs every pattern at once, each in a tight loop, while
// the server alternately loses its script cache (SCRIPT FLUSH) and restarts
// empty (SHUTDOWN NOSAVE, then a new process on the same port), every second
// or so. It checks that no call panics, that every error is one a caller can
// test for (faultKind), that a SCRIPT FLUSH costs no error at all, and that
// every pattern succeeds again soon after the restarted server first answers
// PING; it logs that recovery time per pattern (max and median).
//
// Restarts alternate a short outage (100 ms, shorter than go-redis's dial
// retries) and a long one (1.2 s). After a long one go-redis's pool has seen
// PoolSize dials fail and stops dialing: it probes the address once a second
// and fails calls at once meanwhile, so recovery then takes up to about a
// second whatever the library does. Idle, every pattern is back within
// about 1 s of either kind of outage; the bounds (2.5 s and 3 s) leave room
// for a loaded machine and still fail a pattern that waits for a timeout
// (go-redis's read timeout is 3 s) or stays broken.
//
// It runs for 15 s; PATTERNS_SOAK=1 runs it for 2 minutes, -short for 6 s.
func TestRestartBattery(t *testing.T) {
	t.Parallel()
	duration := 15 * time.Second
	if os.Getenv("PATTERNS_SOAK") != "" {
		duration = 2 * time.Minute
	}
	if testing.Short() {
		duration = 6 * time.Second // still both kinds of outage
	}
	outages := []struct {
		name       string
		down, want time.Duration
	}{{"short", 100 * time.Millisecond, 2500 * time.Millisecond}, {"long", 1200 * time.Millisecond, 3 * time.Second}}
	srv := startRestartable(t)
	// A pool with a connection per op and to spare: with fewer, the op
	// goroutines queue for connections, and the dial errors of an outage
	// can trip go-redis's dial circuit breaker (open until its probe, once
	// a second, succeeds) past the restart, into a SCRIPT FLUSH window.
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr, PoolSize: 64})
	t.Cleanup(func() { rdb.Close() })
	c := newClient(t, rdb, allTimeBoard)
	ops := faultOps(t, c)

	// restart is one shutdown and start of the server.
	type restart struct {
		outage  int                  // index in outages
		downAt  time.Time            // when the server was gone
		readyAt time.Time            // when the new one first answered PING
		firstOK map[string]time.Time // per op: the end of its first success among calls started after downAt
	}
	var (
		mu       sync.Mutex
		failures []faultEvent
		restarts []*restart
		okCount  = map[string]int{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !closed(stop) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				start := time.Now()
				err := func() (err error) {
					defer func() {
						if p := recover(); p != nil {
							err = fmt.Errorf("panic: %v", p)
						}
					}()
					return op.run(ctx)
				}()
				end := time.Now()
				cancel()
				mu.Lock()
				if err == nil {
					okCount[op.name]++
					if n := len(restarts); n > 0 && start.After(restarts[n-1].downAt) {
						if _, seen := restarts[n-1].firstOK[op.name]; !seen {
							restarts[n-1].firstOK[op.name] = end
						}
					}
				} else {
					failures = append(failures, faultEvent{op.name, start, end, err})
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(2 * time.Millisecond) // the server is down: do not spin
				}
			}
		}()
	}

	// flushWindows are the periods, from a SCRIPT FLUSH to the next shutdown,
	// in which no call may fail.
	type window struct{ from, to time.Time }
	var flushWindows []window
	allRecovered := func(r *restart) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(r.firstOK) == len(ops)
	}
	begin := time.Now()
	for time.Since(begin) < duration {
		// Lose the script cache, under load.
		time.Sleep(500 * time.Millisecond)
		from := time.Now()
		if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
			t.Errorf("SCRIPT FLUSH: %v", err)
		}
		time.Sleep(time.Second)
		flushWindows = append(flushWindows, window{from, time.Now()})

		// Restart empty on the same port, short and long outages in turn.
		r := &restart{outage: len(restarts) % len(outages), firstOK: map[string]time.Time{}}
		srv.shutdown()
		mu.Lock()
		r.downAt = time.Now()
		restarts = append(restarts, r)
		mu.Unlock()
		time.Sleep(outages[r.outage].down) // the patterns fail meanwhile
		// The op goroutines never read readyAt: no lock needed.
		r.readyAt = srv.startAndWaitReady()
		for deadline := time.Now().Add(5 * time.Second); !allRecovered(r) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()

	restartedDuring := func(f faultEvent) bool {
		for _, r := range restarts {
			if r.downAt.After(f.start) && r.downAt.Before(f.end) {
				return true
			}
		}
		return false
	}
	kinds := map[string]int{}
	unprefixed := map[string]string{}
	for _, f := range failures {
		k := faultKind(f.err)
		if errors.Is(f.err, errStateLost) && restartedDuring(f) {
			k = "lost in a restart"
		}
		kinds[k]++
		if !strings.HasPrefix(f.err.Error(), "patterns: ") {
			unprefixed[f.op] = f.err.Error()
		}
		if k == "other" {
			t.Errorf("%s: error no caller can test for: %v (%T)", f.op, f.err, f.err)
		}
		for _, w := range flushWindows {
			if f.start.After(w.from) && f.end.Before(w.to) {
				t.Errorf("%s failed after SCRIPT FLUSH, with the server up: %v", f.op, f.err)
			}
		}
	}
	t.Logf("%d restarts, %d script flushes in %v; successful runs per op: %v; failed runs by kind: %v",
		len(restarts), len(flushWindows), time.Since(begin).Round(time.Millisecond), okCount, kinds)
	for op, msg := range unprefixed {
		t.Errorf("%s: error without the package's prefix: %s", op, msg)
	}
	if len(restarts) < len(outages) {
		t.Fatalf("only %d restarts: the run proves little", len(restarts))
	}
	for k, o := range outages {
		for _, op := range ops {
			var recov []time.Duration
			for i, r := range restarts {
				if r.outage != k {
					continue
				}
				end, ok := r.firstOK[op.name]
				if !ok {
					t.Errorf("%s: no success within 5 s of restart %d", op.name, i+1)
					continue
				}
				recov = append(recov, max(end.Sub(r.readyAt), 0))
			}
			if len(recov) == 0 {
				continue
			}
			slices.Sort(recov)
			worst, p50 := recov[len(recov)-1], recov[len(recov)/2]
			t.Logf("recovery after a %s outage (%v), %-18s max %6.1f ms, p50 %6.1f ms (%d restarts)", o.name, o.down, op.name,
				float64(worst.Microseconds())/1000, float64(p50.Microseconds())/1000, len(recov))
			if worst > o.want {
				t.Errorf("%s: first success %v after the server answered PING (%s outage), over %v", op.name, worst, o.name, o.want)
			}
		}
	}
}
