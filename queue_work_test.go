package patterns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
)

func init() {
	moreFaultOps = append(moreFaultOps, func(t testing.TB, c *Client) []faultOp {
		q, err := c.Queue("fault-work", &QueueOptions{Visibility: time.Second, Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		w, err := q.newWorker(func(context.Context, *QueueMessage) ([]byte, error) { return nil, nil },
			&QueueWorkOptions{Retry: &QueueRetry{Base: time.Millisecond, Cap: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		w.wctx = context.Background()
		// Each run: one message in; of up to three delivered, one failed
		// (retried), one given back, one completed: the worker's scripts.
		return []faultOp{{name: "queue-work", run: func(ctx context.Context) error {
			if _, _, err := q.Enqueue(ctx, []byte("job"), nil); err != nil {
				return err
			}
			ms, _, err := q.tryDequeue(ctx, 3)
			if err != nil || len(ms) == 0 {
				return err
			}
			if v, _, err := w.fail(ms[0], 1<<30); err != nil || v != 1 {
				return errors.Join(err, fmt.Errorf("%w: fail verdict %d", ErrQueueLeaseLost, v))
			}
			if len(ms) > 1 {
				if _, err := q.run(ctx, "giveback", ms[1].ID, ms[1].token); err != nil {
					return err
				}
			}
			if len(ms) > 2 {
				_, err = q.CompleteMany(ctx, ms[2:], nil)
			}
			return err
		}}}
	})
}

// workFor runs q.Work in the background; the returned stop ends it and
// returns Work's error.
func workFor(t *testing.T, q *Queue, h QueueHandler, opt *QueueWorkOptions) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- q.Work(ctx, h, opt) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-ran:
			case <-time.After(30 * time.Second):
				t.Fatal("Work did not return 30 s after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// workOutcomes returns the outcomes of the queue work observations
// recorded so far, in order.
func workOutcomes(rec *recorder) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []string
	for _, o := range rec.ops {
		if o.op.Operation == OpWork {
			out = append(out, string(o.outcome))
		}
	}
	return out
}

// TestQueueWork: every message is run once and acked; a failing handler is
// retried until it succeeds; a panic is recovered and retried; a permanent
// error dead-letters at once; a timeout ends the handler's context with
// ErrQueueTimeout and is retried; the Observer is told each outcome.
func TestQueueWork(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		rec := &recorder{}
		c.observer = rec
		q, err := c.Queue("work", &QueueOptions{MaxDeliveries: 10})
		if err != nil {
			t.Fatal(err)
		}
		const n = 200
		items := make([]QueueItem, n)
		for i := range items {
			items[i].Body = []byte("ok")
			items[i].ID = "ok" + strconv.Itoa(i)
		}
		items = append(items,
			QueueItem{Body: []byte("fail2"), EnqueueOptions: EnqueueOptions{ID: "fail2"}},
			QueueItem{Body: []byte("panic"), EnqueueOptions: EnqueueOptions{ID: "panic"}},
			QueueItem{Body: []byte("permanent"), EnqueueOptions: EnqueueOptions{ID: "permanent"}},
			QueueItem{Body: []byte("slow"), EnqueueOptions: EnqueueOptions{ID: "slow"}})
		if _, err := q.EnqueueMany(ctx, items); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		runs := map[string]int{}
		var causes []error
		h := func(ctx context.Context, m *QueueMessage) ([]byte, error) {
			mu.Lock()
			runs[m.ID]++
			k := runs[m.ID]
			mu.Unlock()
			switch string(m.Body) {
			case "fail2":
				if k <= 2 {
					return nil, errors.New("not yet")
				}
			case "panic":
				if k == 1 {
					panic("boom")
				}
			case "permanent":
				return nil, QueuePermanent(errors.New("bad input"))
			case "slow":
				if k == 1 {
					<-ctx.Done()
					mu.Lock()
					causes = append(causes, context.Cause(ctx))
					mu.Unlock()
					return nil, ctx.Err()
				}
			}
			return nil, nil
		}
		stop := workFor(t, q, h, &QueueWorkOptions{Concurrency: 8, Timeout: 500 * time.Millisecond,
			Retry: &QueueRetry{Base: time.Millisecond, Cap: 5 * time.Millisecond}})
		waitFor(t, "drained", func() bool {
			st, _ := q.Stats(ctx)
			return st.Ready == 0 && st.InFlight == 0 && st.Dead == 1
		})
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Work = %v, want context.Canceled", err)
		}
		for i := range n {
			if k := runs["ok"+strconv.Itoa(i)]; k != 1 {
				t.Fatalf("ok%d ran %d times", i, k)
			}
		}
		if runs["fail2"] != 3 || runs["panic"] != 2 || runs["permanent"] != 1 || runs["slow"] != 2 {
			t.Fatalf("runs: fail2 %d, panic %d, permanent %d, slow %d", runs["fail2"], runs["panic"], runs["permanent"], runs["slow"])
		}
		if len(causes) != 1 || !errors.Is(causes[0], ErrQueueTimeout) {
			t.Fatalf("timeout causes = %v", causes)
		}
		if dead, _ := q.DeadLetters(ctx, 10); !slices.Equal(dead, []string{"permanent"}) {
			t.Fatalf("dead letters = %v", dead)
		}
		got := map[string]int{}
		for _, o := range workOutcomes(rec) {
			got[o]++
		}
		want := map[string]int{"ok": n + 3, "retry": 2, "panic": 1, "dead": 1, "timeout": 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("work outcomes %v, want %v", got, want)
		}
		rec.mu.Lock()
		for _, o := range rec.ops {
			if o.op.Operation == OpWork && o.outcome == OutcomePanic && !strings.Contains(fmt.Sprint(o.err), "boom") {
				t.Errorf("panic reported without its value: %v", o.err)
			}
		}
		rec.mu.Unlock()
	})
}

// TestQueueWorkBackoff: the n-th failure waits min(Cap, Base*2^(n-1)) on
// the server's clock, the failures are counted apart from the deliveries
// (a lost lease is a delivery, not a failure), and MaxAttempts failures
// dead-letter the message.
func TestQueueWorkBackoff(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	q, err := c.Queue("backoff", &QueueOptions{MaxDeliveries: 20, Visibility: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w, err := q.newWorker(func(context.Context, *QueueMessage) ([]byte, error) { return nil, nil },
		&QueueWorkOptions{Retry: &QueueRetry{MaxAttempts: 5, Base: 10 * time.Millisecond, Cap: 40 * time.Millisecond, Jitter: -1}})
	if err != nil {
		t.Fatal(err)
	}
	w.wctx = ctx
	if _, _, err := q.Enqueue(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	next := func() *QueueMessage {
		t.Helper()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		m, err := q.Dequeue(dctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// A delivery whose lease is lost (a crash) is not a failure.
	next()
	p, _ := q.Peek(ctx, QueueInFlight, 1)
	time.Sleep(p[0].Until + 50*time.Millisecond)
	var m *QueueMessage
	for i, want := range []time.Duration{10, 20, 40, 40} {
		m = next()
		if m.Deliveries != i+2 {
			t.Fatalf("delivery %d: Deliveries = %d", i+2, m.Deliveries)
		}
		verdict, backoff, err := w.fail(m, 5)
		if err != nil || verdict != 1 || backoff != want*time.Millisecond {
			t.Fatalf("failure %d: verdict %d, backoff %v, %v; want 1, %v", i+1, verdict, backoff, err, want*time.Millisecond)
		}
	}
	m = next()
	if verdict, _, err := w.fail(m, 5); err != nil || verdict != 2 {
		t.Fatalf("fifth failure: verdict %d, %v; want 2 (dead)", verdict, err)
	}
	if dead, _ := q.DeadLetters(ctx, 1); len(dead) != 1 || dead[0] != m.ID {
		t.Fatalf("dead = %v", dead)
	}
	// Jitter takes up to its share off.
	w.retry.Jitter = 0.5
	if _, err := q.Redrive(ctx); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		m = next()
		_, backoff, _ := w.fail(m, 100)
		if backoff < 5*time.Millisecond || backoff > 10*time.Millisecond {
			t.Fatalf("backoff %v with jitter 0.5 of 10ms", backoff)
		}
		// Back to failure 1.
		if _, err := c.rdb.HSet(ctx, q.keys[2], "f:"+m.ID, 0).Result(); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := q.Stats(ctx); st.Ready != 1 || st.Dead != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestQueueWorkGracefulShutdown: a worker whose context ends while its
// handlers run lets them finish within ShutdownTimeout and gives back the
// messages it held but had not started, without counting their delivery:
// a second worker then runs the rest. Every message runs exactly once.
func TestQueueWorkGracefulShutdown(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	q, err := c.Queue("graceful", nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	items := make([]QueueItem, n)
	for i := range items {
		items[i] = QueueItem{Body: []byte("x"), EnqueueOptions: EnqueueOptions{ID: strconv.Itoa(i)}}
	}
	if _, err := q.EnqueueMany(ctx, items); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	runs := map[string]int{}
	var redelivered atomic.Int64
	var started atomic.Int64
	h := func(ctx context.Context, m *QueueMessage) ([]byte, error) {
		started.Add(1)
		if m.Deliveries != 1 {
			redelivered.Add(1)
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		runs[m.ID]++
		mu.Unlock()
		return nil, nil
	}
	stop := workFor(t, q, h, &QueueWorkOptions{Concurrency: 4, Prefetch: 8, ShutdownTimeout: 20 * time.Second})
	waitFor(t, "first handlers", func() bool { return started.Load() >= 20 })
	_ = stop()
	mu.Lock()
	first := len(runs)
	mu.Unlock()
	st, _ := q.Stats(ctx)
	if st.InFlight != 0 || st.Ready != int64(n-first) {
		t.Fatalf("after the shutdown: %d run, stats %+v; want none in flight, the rest ready", first, st)
	}
	stop = workFor(t, q, h, &QueueWorkOptions{Concurrency: 8})
	waitFor(t, "drained", func() bool {
		st, _ := q.Stats(ctx)
		return st.Ready == 0 && st.InFlight == 0
	})
	_ = stop()
	for i := range n {
		if k := runs[strconv.Itoa(i)]; k != 1 {
			t.Fatalf("message %d ran %d times", i, k)
		}
	}
	if k := redelivered.Load(); k != 0 {
		t.Fatalf("%d messages had their given-back delivery counted", k)
	}
	t.Logf("%d of %d run before the shutdown, the rest after; 0 run twice", first, n)
}

// TestQueueWorkShutdownTimeout: a handler still running when the
// ShutdownTimeout passes has its message given back at once, uncounted, and
// its context ended with ErrQueueShutdown; Work returns once it returned.
func TestQueueWorkShutdownTimeout(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	rec := &recorder{}
	c.observer = rec
	q, err := c.Queue("abandon", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "long"}); err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	var cause error
	stop := workFor(t, q, func(ctx context.Context, m *QueueMessage) ([]byte, error) {
		close(running)
		<-ctx.Done()
		cause = context.Cause(ctx)
		return nil, ctx.Err()
	}, &QueueWorkOptions{ShutdownTimeout: 50 * time.Millisecond})
	select {
	case <-running:
	case <-time.After(20 * time.Second):
		t.Fatal("handler not started")
	}
	_ = stop()
	if !errors.Is(cause, ErrQueueShutdown) {
		t.Fatalf("cause = %v", cause)
	}
	p, err := q.Peek(ctx, QueueReady, 10)
	if err != nil || len(p) != 1 || p[0].ID != "long" || p[0].Deliveries != 0 || p[0].Until > 0 {
		t.Fatalf("ready after the shutdown: %+v %v; want long, 0 deliveries, due", p, err)
	}
	if got := workOutcomes(rec); !slices.Equal(got, []string{"canceled"}) {
		t.Fatalf("work outcomes %v", got)
	}
}

// TestQueueWorkOutlivesVisibility: a handler that runs five times its
// visibility timeout keeps its lease by the watchdog's extensions: other
// workers on the queue never run the message meanwhile, and the handler's
// context is not ended.
func TestQueueWorkOutlivesVisibility(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	q, err := c.Queue("long", &QueueOptions{Visibility: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	for i := range n {
		if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	runs := map[string]int{}
	var ended atomic.Int64
	h := func(ctx context.Context, m *QueueMessage) ([]byte, error) {
		mu.Lock()
		runs[m.ID]++
		mu.Unlock()
		select {
		case <-ctx.Done():
			ended.Add(1)
			return nil, ctx.Err()
		case <-time.After(3 * time.Second):
		}
		return nil, nil
	}
	var stops []func() error
	for range 3 {
		stops = append(stops, workFor(t, q, h, &QueueWorkOptions{Concurrency: 2, Prefetch: -1}))
	}
	waitFor(t, "drained", func() bool {
		st, _ := q.Stats(ctx)
		return st.Ready == 0 && st.InFlight == 0
	})
	for _, stop := range stops {
		_ = stop()
	}
	for i := range n {
		if k := runs[strconv.Itoa(i)]; k != 1 {
			t.Fatalf("message %d ran %d times", i, k)
		}
	}
	if k := ended.Load(); k != 0 {
		t.Fatalf("%d handlers had their context ended", k)
	}
}

// TestQueueWorkers: a running worker is listed with what it runs, and
// forgotten when Work returns.
func TestQueueWorkers(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	q, err := c.Queue("listed", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "job-1"}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	stop := workFor(t, q, func(ctx context.Context, m *QueueMessage) ([]byte, error) {
		<-release
		return nil, nil
	}, &QueueWorkOptions{ID: "w1", Concurrency: 3, Heartbeat: 50 * time.Millisecond})
	in := c.Inspector()
	var ws []QueueWorkerInfo
	waitFor(t, "worker listed", func() bool {
		ws, err = in.QueueWorkers(ctx, "listed")
		return err == nil && len(ws) == 1 && len(ws[0].Running) == 1
	})
	w := ws[0]
	if w.ID != "w1" || w.Concurrency != 3 || w.Running[0].ID != "job-1" || w.Running[0].Deliveries != 1 || w.Expires <= 0 {
		t.Fatalf("worker %+v", w)
	}
	close(release)
	waitFor(t, "processed", func() bool {
		ws, err = in.QueueWorkers(ctx, "listed")
		return err == nil && len(ws) == 1 && ws[0].Processed == 1 && len(ws[0].Running) == 0
	})
	_ = stop()
	if ws, err := in.QueueWorkers(ctx, "listed"); err != nil || len(ws) != 0 {
		t.Fatalf("after Work returned: %+v %v", ws, err)
	}
}

// TestQueueWorkInvalid: bad options are refused before anything is read.
func TestQueueWorkInvalid(t *testing.T) {
	t.Parallel()
	c := newClient(t, testRedis(t))
	q, err := c.Queue("invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(context.Context, *QueueMessage) ([]byte, error) { return nil, nil }
	for _, o := range []*QueueWorkOptions{{Concurrency: -1}, {Timeout: -1}, {ShutdownTimeout: -2}, {Prefetch: -2},
		{Prefetch: MaxQueueBatch + 1}, {Heartbeat: time.Millisecond}, {ID: strings.Repeat("x", MaxIDLen+1)},
		{Retry: &QueueRetry{MaxAttempts: -1}}, {Retry: &QueueRetry{Jitter: 2}}, {Retry: &QueueRetry{Base: -1}}} {
		if err := q.Work(context.Background(), ok, o); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if err := q.Work(context.Background(), nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("nil handler: %v", err)
	}
	if err := QueuePermanent(nil); err != nil {
		t.Errorf("QueuePermanent(nil) = %v", err)
	}
	base := errors.New("x")
	if err := QueuePermanent(base); !errors.Is(err, ErrQueuePermanent) || !errors.Is(err, base) {
		t.Errorf("QueuePermanent: %v", err)
	}
}

// TestQueueWorkKilled: worker processes (Queue.Work, 8 handlers) are
// SIGKILLed mid-handler again and again, each replaced by a new one, until
// the queue is drained. No message is lost: each one ran to completion at
// least once (and was acked: the queue ends empty, nothing dead); the
// duplicates (runs after the first) are counted and stated: each comes from
// a kill between a handler's end and its batch's ack, or mid-handler. The
// default form runs 3,000 messages; PATTERNS_SOAK=1 runs 25,000.
func TestQueueWorkKilled(t *testing.T) {
	t.Parallel()
	n, minKills := 3000, 5
	if os.Getenv("PATTERNS_SOAK") != "" {
		n, minKills = 25_000, 40
	}
	rdb := testRedis(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	processed := prefix + ":processed"
	t.Cleanup(func() { rdb.Del(context.Background(), processed) })
	c, err := New(rdb, &Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.Queue("killed", killedQueueOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += MaxQueueBatch {
		items := make([]QueueItem, 0, MaxQueueBatch)
		for k := i; k < min(n, i+MaxQueueBatch); k++ {
			items = append(items, QueueItem{Body: []byte("job"), EnqueueOptions: EnqueueOptions{ID: "m" + strconv.Itoa(k)}})
		}
		if _, err := q.EnqueueMany(ctx, items); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATTERNS_TEST_PREFIX=" + prefix}
	kills := 0
	deadline := time.Now().Add(4 * time.Minute)
	for {
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Ready == 0 && st.InFlight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained after %d kills: %+v", kills, st)
		}
		var out bytes.Buffer
		before, _ := rdb.HLen(ctx, processed).Result()
		worker := startChild(t, rdb, "TestQueueWorkKilledChild", &out, env...)
		// Killed at a random moment once it has run something (a loaded
		// machine starts a process slowly), until minKills kills; after
		// that, one worker in two runs until the queue is drained.
		for wait := time.Now().Add(20 * time.Second); time.Now().Before(wait); time.Sleep(5 * time.Millisecond) {
			if k, _ := rdb.HLen(ctx, processed).Result(); k > before {
				break
			}
		}
		if kills >= minKills && kills%2 == 1 {
			for wait := time.Now().Add(time.Minute); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
				if st, _ := q.Stats(ctx); st.Ready == 0 && st.InFlight == 0 {
					break
				}
			}
		} else {
			time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		}
		_ = worker.Process.Signal(syscall.SIGKILL)
		_ = worker.Wait()
		kills++
	}
	runs, err := rdb.HGetAll(ctx, processed).Result()
	if err != nil {
		t.Fatal(err)
	}
	st, _ := q.Stats(ctx)
	lost, dups := 0, 0
	for i := range n {
		k, _ := strconv.Atoi(runs["m"+strconv.Itoa(i)])
		if k == 0 {
			lost++
		}
		dups += max(k-1, 0)
	}
	t.Logf("%d messages, %d worker processes SIGKILLed: %d lost, %d dead, %d duplicate runs (%.1f per kill)",
		n, kills, lost, st.Dead, dups, float64(dups)/float64(kills))
	if lost > 0 || st.Dead > 0 {
		t.Fatalf("%d messages lost, %d dead", lost, st.Dead)
	}
	// A kill strands the messages its handlers ran or held, and those
	// handled but not yet acked: a few batches of the 16 slots at most.
	if dups > 64*kills {
		t.Fatalf("%d duplicates for %d kills", dups, kills)
	}
}

// killedQueueOptions is the queue of TestQueueWorkKilled: stranded leases
// come back quickly.
var killedQueueOptions = &QueueOptions{Visibility: 500 * time.Millisecond, MaxDeliveries: 100}

func TestQueueWorkKilledChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestQueueWorkKilled")
	}
	rdb := childRedis(t)
	prefix := os.Getenv("PATTERNS_TEST_PREFIX")
	c, _ := New(rdb, &Options{Prefix: prefix})
	q, _ := c.Queue("killed", killedQueueOptions)
	err := q.Work(context.Background(), func(ctx context.Context, m *QueueMessage) ([]byte, error) {
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) // the work
		return nil, rdb.HIncrBy(ctx, prefix+":processed", m.ID, 1).Err()
	}, &QueueWorkOptions{Concurrency: 8})
	fmt.Println("work:", err) // runs until killed
}

// TestJobQueue: values go through the codec; a body that does not decode
// is dead at once; a value the codec refuses is an invalid enqueue.
func TestJobQueue(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	rec := &recorder{}
	c.observer = rec
	type job struct{ N int }
	jq, err := NewJobQueue[job](c, "typed", &JobQueueOptions{Codec: Msgpack})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, err := jq.Enqueue(ctx, job{i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := jq.Queue().Enqueue(ctx, []byte{0xc1}, &EnqueueOptions{ID: "garbage"}); err != nil {
		t.Fatal(err)
	}
	var sum atomic.Int64
	if err := jq.Work(ctx, nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil handler: %v", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		ran <- jq.Work(wctx, func(ctx context.Context, v job, m *QueueMessage) error {
			sum.Add(int64(v.N) + 1)
			return nil
		}, &QueueWorkOptions{Concurrency: 2})
	}()
	waitFor(t, "drained", func() bool {
		st, _ := jq.Queue().Stats(ctx)
		return st.Ready == 0 && st.InFlight == 0 && st.Dead == 1
	})
	cancel()
	<-ran
	if sum.Load() != 1+2+3 {
		t.Fatalf("sum %d", sum.Load())
	}
	if dead, _ := jq.Queue().DeadLetters(ctx, 10); !slices.Equal(dead, []string{"garbage"}) {
		t.Fatalf("dead %v", dead)
	}
	rec.mu.Lock()
	rec.ops = nil
	rec.mu.Unlock()
	bad, _ := NewJobQueue[func()](c, "typed", nil)
	if _, _, err := bad.Enqueue(ctx, func() {}, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unencodable: %v", err)
	}
	if got := rec.take(); !slices.Equal(got, []string{"queue.enqueue typed invalid"}) {
		t.Fatalf("reported %q", got)
	}
}

// TestQueueWorkCancelResult: a handler's result is kept for Queue.Result;
// a message canceled while its handler runs ends the handler's context at
// the next extension of its lease (cause ErrQueueCanceled), and is neither
// retried nor completed.
func TestQueueWorkCancelResult(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	rec := &recorder{}
	c.observer = rec
	q, err := c.Queue("results", &QueueOptions{Visibility: 600 * time.Millisecond, ResultRetention: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"done", "cancel"} {
		if _, _, err := q.Enqueue(ctx, []byte(id), &EnqueueOptions{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	started := make(chan struct{})
	causes := make(chan error, 1)
	stop := workFor(t, q, func(ctx context.Context, m *QueueMessage) ([]byte, error) {
		if m.ID == "done" {
			return []byte("result of " + m.ID), nil
		}
		close(started)
		select {
		case <-ctx.Done():
			causes <- context.Cause(ctx)
			return nil, ctx.Err()
		case <-time.After(20 * time.Second):
			causes <- nil
			return nil, nil
		}
	}, &QueueWorkOptions{Concurrency: 2})
	<-started
	if ok, err := q.Cancel(ctx, "cancel"); err != nil || !ok {
		t.Fatalf("Cancel = %t %v", ok, err)
	}
	if cause := <-causes; !errors.Is(cause, ErrQueueCanceled) {
		t.Fatalf("cause = %v", cause)
	}
	waitFor(t, "drained", func() bool {
		st, _ := q.Stats(ctx)
		return st.Ready == 0 && st.InFlight == 0
	})
	_ = stop()
	r, err := q.Result(ctx, "done")
	if err != nil || r.State != QueueJobCompleted || string(r.Result) != "result of done" {
		t.Fatalf("Result(done) = %+v %v", r, err)
	}
	if r, err := q.Result(ctx, "cancel"); err != nil || r.State != QueueJobCanceled {
		t.Fatalf("Result(cancel) = %+v %v", r, err)
	}
	got := workOutcomes(rec)
	slices.Sort(got)
	if !slices.Equal(got, []string{"canceled", "ok"}) {
		t.Fatalf("work outcomes %v", got)
	}
}

// BenchmarkQueueWork: b.N messages, enqueued beforehand in batches, run by
// one Queue.Work with 1, 8 and 64 handlers doing no work; it reports the
// messages run a second (dequeued, handled and completed in batches: the
// worker's whole loop, not the enqueue).
func BenchmarkQueueWork(b *testing.B) {
	rdb := testRedis(b)
	ctx := context.Background()
	for _, conc := range []int{1, 8, 64} {
		b.Run("handlers="+strconv.Itoa(conc), func(b *testing.B) {
			c := newClient(b, rdb)
			q, err := c.Queue("bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i += MaxQueueBatch {
				items := make([]QueueItem, min(MaxQueueBatch, b.N-i))
				for k := range items {
					items[k].Body = []byte("a message body of some forty bytes......")
				}
				if _, err := q.EnqueueMany(ctx, items); err != nil {
					b.Fatal(err)
				}
			}
			var done atomic.Int64
			all := make(chan struct{})
			wctx, stop := context.WithCancel(ctx)
			defer stop()
			b.ResetTimer()
			ran := make(chan error, 1)
			go func() {
				ran <- q.Work(wctx, func(context.Context, *QueueMessage) ([]byte, error) {
					if done.Add(1) == int64(b.N) {
						close(all)
					}
					return nil, nil
				}, &QueueWorkOptions{Concurrency: conc})
			}()
			select {
			case <-all:
			case <-time.After(5 * time.Minute):
				b.Fatal("not drained in 5 minutes")
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			stop()
			<-ran
		})
	}
}
