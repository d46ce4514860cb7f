package patterns

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func init() {
	moreFaultOps = append(moreFaultOps, func(t testing.TB, c *Client) []faultOp {
		q, err := c.Queue("fault-queue-ops", &QueueOptions{Visibility: time.Second, MaxDeliveries: 1, Retention: time.Hour, MaxLen: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		return []faultOp{{name: "queue batch", run: func(ctx context.Context) error {
			if _, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("a")}, {Body: []byte("b"), EnqueueOptions: EnqueueOptions{Priority: QueuePriorityHigh}}}); err != nil {
				return err
			}
			ms, _, err := q.tryDequeue(ctx, 2)
			if err != nil || len(ms) == 0 {
				return err
			}
			if err := ms[0].Nack(ctx); err != nil && !errors.Is(err, ErrQueueLeaseLost) {
				return err
			}
			if _, err := q.Redrive(ctx); err != nil {
				return err
			}
			if _, err := q.AckMany(ctx, ms[1:]); err != nil && !errors.Is(err, ErrQueueLeaseLost) {
				return err
			}
			if _, err := q.Peek(ctx, QueueReady, 10); err != nil {
				return err
			}
			if _, err := q.Pause(ctx); err != nil {
				return err
			}
			if _, err := q.Resume(ctx); err != nil {
				return err
			}
			if _, err := q.PurgeDead(ctx); err != nil {
				return err
			}
			_, err = q.Stats(ctx)
			return err
		}}}
	})
	moreOnceOps = append(moreOnceOps, func(t *testing.T, c, dc *Client, direct *redis.Client) []onceOp {
		q, err := c.Queue("once-queue-many", &QueueOptions{Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		dq, err := dc.Queue("once-queue-many", &QueueOptions{Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		// Generated ids: a retried script would enqueue the batch twice.
		return []onceOp{{name: "queue enqueue-many", run: func(ctx context.Context) error {
			_, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("a")}, {Body: []byte("b")}})
			return err
		}, applied: func(ctx context.Context) int64 {
			st, err := dq.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return st.Ready
		}, perRun: 2}}
	})
}

// dequeueWithin is Dequeue with a deadline of seconds.
func dequeueWithin(t *testing.T, q *Queue) *QueueMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := q.Dequeue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestQueueRedrive: dead letters go back to consumers with their delivery
// count reset, by id or all; purged ones are gone, bodies included.
func TestQueueRedrive(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("redrive", &QueueOptions{MaxDeliveries: 2, Backoff: func(int) time.Duration { return 0 }})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b", "c"} {
			if _, _, err := q.Enqueue(ctx, []byte("body-"+id), &EnqueueOptions{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		// Two deliveries each, nacked: all dead.
		for range 6 {
			if err := dequeueWithin(t, q).Nack(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if st, _ := q.Stats(ctx); st.Dead != 3 || st.Ready != 0 {
			t.Fatalf("stats %+v, want 3 dead", st)
		}
		dead, err := q.Peek(ctx, QueueDead, 10)
		if err != nil || len(dead) != 3 || dead[0].Deliveries != 2 || string(dead[0].Body) != "body-"+dead[0].ID {
			t.Fatalf("Peek dead = %+v %v", dead, err)
		}
		if n, err := q.Redrive(ctx, "b", "no-such"); err != nil || n != 1 {
			t.Fatalf("Redrive(b, no-such) = %d %v", n, err)
		}
		m := dequeueWithin(t, q)
		if m.ID != "b" || m.Deliveries != 1 || string(m.Body) != "body-b" {
			t.Fatalf("redriven = %+v, want b with Deliveries 1", m)
		}
		// The count was reset: MaxDeliveries 2 allows one more delivery.
		if err := m.Nack(ctx); err != nil {
			t.Fatal(err)
		}
		m = dequeueWithin(t, q)
		if m.ID != "b" || m.Deliveries != 2 {
			t.Fatalf("second delivery after redrive = %+v", m)
		}
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := q.Redrive(ctx); err != nil || n != 2 {
			t.Fatalf("Redrive() = %d %v, want 2", n, err)
		}
		if st, _ := q.Stats(ctx); st.Dead != 0 || st.Ready != 2 {
			t.Fatalf("after Redrive all: %+v", st)
		}
		got := map[string]int{}
		var held []*QueueMessage
		for range 2 {
			m := dequeueWithin(t, q)
			got[m.ID] = m.Deliveries
			held = append(held, m)
		}
		for _, m := range held {
			if err := m.Nack(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got["a"] != 1 || got["c"] != 1 {
			t.Fatalf("redriven deliveries %v, want a:1 c:1", got)
		}
		for range 2 {
			if err := dequeueWithin(t, q).Nack(ctx); err != nil { // dead again
				t.Fatal(err)
			}
		}
		if n, err := q.PurgeDead(ctx, "a"); err != nil || n != 1 {
			t.Fatalf("PurgeDead(a) = %d %v", n, err)
		}
		if n, err := q.PurgeDead(ctx); err != nil || n != 1 {
			t.Fatalf("PurgeDead() = %d %v", n, err)
		}
		if st, _ := q.Stats(ctx); st != (QueueStats{}) {
			t.Fatalf("after purge: %+v", st)
		}
		if n, _ := rdb.HLen(ctx, q.keys[2]).Result(); n != 0 {
			t.Fatalf("purge left %d fields in the messages hash", n)
		}
		// A purged id may be enqueued again.
		if _, queued, err := q.Enqueue(ctx, []byte("again"), &EnqueueOptions{ID: "a"}); err != nil || !queued {
			t.Fatalf("re-enqueue after purge: %t %v", queued, err)
		}
	})
}

// TestQueueMaxLen: a full queue refuses with ErrQueueFull and writes
// nothing; a batch is all or nothing; in-flight messages count, dead ones do
// not.
func TestQueueMaxLen(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("bounded", &QueueOptions{MaxLen: 3, MaxDeliveries: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b"} {
			if _, _, err := q.Enqueue(ctx, []byte(id), &EnqueueOptions{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		seq, _ := rdb.Get(ctx, q.keys[5]).Result()
		_, err = q.EnqueueMany(ctx, []QueueItem{{Body: []byte("x")}, {Body: []byte("y"), EnqueueOptions: EnqueueOptions{ID: "y"}}})
		if !errors.Is(err, ErrQueueFull) {
			t.Fatalf("EnqueueMany past MaxLen: %v, want ErrQueueFull", err)
		}
		if st, _ := q.Stats(ctx); st.Ready != 2 {
			t.Fatalf("a refused batch wrote: %+v", st)
		}
		if ok, _ := rdb.HExists(ctx, q.keys[2], "y").Result(); ok {
			t.Fatal("a refused batch wrote a body")
		}
		if s, _ := rdb.Get(ctx, q.keys[5]).Result(); s != seq {
			t.Fatalf("a refused batch moved the id counter from %q to %q", seq, s)
		}
		// A duplicate does not count: one new message fits.
		res, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("a2"), EnqueueOptions: EnqueueOptions{ID: "a"}}, {Body: []byte("c"), EnqueueOptions: EnqueueOptions{ID: "c"}}})
		if err != nil || len(res) != 2 || res[0].Queued || !res[1].Queued {
			t.Fatalf("EnqueueMany(dup, new) = %+v %v", res, err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("d"), nil); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Enqueue on a full queue: %v", err)
		}
		if _, queued, err := q.Enqueue(ctx, []byte("b"), &EnqueueOptions{ID: "b"}); err != nil || queued {
			t.Fatalf("duplicate on a full queue: %t %v, want a no-op", queued, err)
		}
		// In flight still counts; a dead letter does not.
		m := dequeueWithin(t, q)
		if _, _, err := q.Enqueue(ctx, []byte("d"), nil); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Enqueue with 2 ready + 1 in flight: %v", err)
		}
		if err := m.Nack(ctx); err != nil { // MaxDeliveries 1: dead
			t.Fatal(err)
		}
		if _, queued, err := q.Enqueue(ctx, []byte("d"), nil); err != nil || !queued {
			t.Fatalf("Enqueue after a message died: %t %v", queued, err)
		}
		if st, _ := q.Stats(ctx); st.Ready != 3 || st.Dead != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// TestQueuePause: while paused, consumers get nothing and a blocked Dequeue
// waits; producers still enqueue; Resume releases the waiting consumers.
func TestQueuePause(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("pausable", nil)
		if err != nil {
			t.Fatal(err)
		}
		if changed, err := q.Pause(ctx); err != nil || !changed {
			t.Fatalf("Pause = %t %v", changed, err)
		}
		if changed, _ := q.Pause(ctx); changed {
			t.Fatal("second Pause changed the state")
		}
		if ttl, _ := rdb.PTTL(ctx, q.keys[8]).Result(); ttl <= 0 {
			t.Fatalf("paused flag TTL %v", ttl)
		}
		const consumers = 3
		for i := range consumers {
			if _, _, err := q.Enqueue(ctx, []byte(strconv.Itoa(i)), nil); err != nil {
				t.Fatalf("Enqueue while paused: %v", err)
			}
		}
		if m, wait, err := q.TryDequeue(ctx); m != nil || wait != -1 || err != nil {
			t.Fatalf("TryDequeue while paused = %v %v %v", m, wait, err)
		}
		if st, _ := q.Stats(ctx); !st.Paused || st.Ready != consumers {
			t.Fatalf("stats %+v", st)
		}
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var got atomic.Int64
		errs := make(chan error, consumers)
		for range consumers {
			go func() {
				m, err := q.Dequeue(dctx)
				if err == nil {
					got.Add(1)
					err = m.Ack(ctx)
				}
				errs <- err
			}()
		}
		// Across more than one of Dequeue's 1s waits, nothing comes.
		time.Sleep(1500 * time.Millisecond)
		if n := got.Load(); n != 0 {
			t.Fatalf("%d messages delivered while paused", n)
		}
		resumed := time.Now()
		if changed, err := q.Resume(ctx); err != nil || !changed {
			t.Fatalf("Resume = %t %v", changed, err)
		}
		for range consumers {
			if err := <-errs; err != nil {
				t.Fatalf("consumer after Resume: %v", err)
			}
		}
		t.Logf("%d waiting consumers served %v after Resume", consumers, time.Since(resumed))
		if st, _ := q.Stats(ctx); st.Paused || st.Ready != 0 {
			t.Fatalf("after Resume: %+v", st)
		}
		if changed, _ := q.Resume(ctx); changed {
			t.Fatal("second Resume changed the state")
		}
	})
}

// TestQueuePriority: producers enqueue all three priorities at once (some
// one by one, some in batches); every delivery is of the highest
// priority due, and nacked messages keep their priority.
func TestQueuePriority(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("prio", &QueueOptions{Backoff: func(int) time.Duration { return 0 }})
		if err != nil {
			t.Fatal(err)
		}
		prios := []QueuePriority{QueuePriorityLow, QueuePriorityNormal, QueuePriorityHigh}
		// Paused while the producers run, so that the order of delivery
		// depends on priority only.
		if _, err := q.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		const producers, each = 4, 60
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var batch []QueueItem
				for i := range each {
					opt := EnqueueOptions{ID: fmt.Sprintf("p%d-%d", p, i), Priority: prios[(i+p)%3]}
					if p%2 == 0 {
						if _, _, err := q.Enqueue(ctx, []byte{byte(opt.Priority + 1)}, &opt); err != nil {
							t.Error(err)
							return
						}
						continue
					}
					batch = append(batch, QueueItem{Body: []byte{byte(opt.Priority + 1)}, EnqueueOptions: opt})
					if len(batch) == 7 || i == each-1 {
						if _, err := q.EnqueueMany(ctx, batch); err != nil {
							t.Error(err)
							return
						}
						batch = nil
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if _, err := q.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		var order []QueuePriority
		renacked := false
		for len(order) < producers*each {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ms, err := q.DequeueMany(dctx, 9)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			var acks []*QueueMessage
			for _, m := range ms {
				if QueuePriority(m.Body[0])-1 != priorityOf(m.ID, prios) {
					t.Fatalf("message %s: body %d, priority %d", m.ID, m.Body[0], priorityOf(m.ID, prios))
				}
				// Nack the first high-priority message once: it comes back
				// ahead of every normal and low one.
				if !renacked && m.Deliveries == 1 && priorityOf(m.ID, prios) == QueuePriorityHigh {
					renacked = true
					if err := m.Nack(ctx); err != nil {
						t.Fatal(err)
					}
					continue
				}
				order = append(order, priorityOf(m.ID, prios))
				acks = append(acks, m)
			}
			if n, err := q.AckMany(ctx, acks); err != nil || n != len(acks) {
				t.Fatalf("AckMany = %d %v", n, err)
			}
		}
		for i := 1; i < len(order); i++ {
			if order[i] > order[i-1] {
				t.Fatalf("delivery %d has priority %d after %d: %v", i, order[i], order[i-1], order)
			}
		}
		if order[0] != QueuePriorityHigh || order[len(order)-1] != QueuePriorityLow {
			t.Fatalf("order %v", order)
		}
	})
}

// priorityOf returns the priority the producers of TestQueuePriority gave id
// ("p<producer>-<i>").
func priorityOf(id string, prios []QueuePriority) QueuePriority {
	p, i, _ := strings.Cut(strings.TrimPrefix(id, "p"), "-")
	pn, _ := strconv.Atoi(p)
	in, _ := strconv.Atoi(i)
	return prios[(in+pn)%3]
}

// TestQueueBatch: EnqueueMany, DequeueMany and AckMany, one script call
// each; AckMany acks what it still holds and reports the rest lost.
func TestQueueBatch(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("batch", &QueueOptions{Visibility: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("old"), &EnqueueOptions{ID: "k"}); err != nil {
			t.Fatal(err)
		}
		res, err := q.EnqueueMany(ctx, []QueueItem{
			{Body: []byte("1")},
			{Body: []byte("2"), EnqueueOptions: EnqueueOptions{ID: "x"}},
			{Body: []byte("3"), EnqueueOptions: EnqueueOptions{ID: "x"}}, // duplicate in the batch
			{Body: []byte("4"), EnqueueOptions: EnqueueOptions{ID: "k"}}, // pending already
			{Body: []byte("5"), EnqueueOptions: EnqueueOptions{Delay: time.Hour}},
		})
		if err != nil || len(res) != 5 {
			t.Fatalf("EnqueueMany = %+v %v", res, err)
		}
		want := []bool{true, true, false, false, true}
		for i, r := range res {
			if r.Queued != want[i] || r.ID == "" {
				t.Fatalf("EnqueueMany = %+v, want queued %v", res, want)
			}
		}
		if res[1].ID != "x" || res[2].ID != "x" || res[0].ID == res[4].ID {
			t.Fatalf("ids %+v", res)
		}
		if res, err := q.EnqueueMany(ctx, nil); err != nil || res != nil {
			t.Fatalf("EnqueueMany(nil) = %v %v", res, err)
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ms, err := q.DequeueMany(dctx, 10) // 3 due, 1 delayed
		if err != nil || len(ms) != 3 {
			t.Fatalf("DequeueMany = %d %v", len(ms), err)
		}
		ids := map[string]bool{}
		for _, m := range ms {
			ids[m.ID] = true
			if m.Deliveries != 1 {
				t.Fatalf("message %+v", m)
			}
		}
		if len(ids) != 3 || !ids["x"] || !ids["k"] {
			t.Fatalf("dequeued %v", ids)
		}
		if st, _ := q.Stats(ctx); st.InFlight != 3 || st.Ready != 1 {
			t.Fatalf("stats %+v", st)
		}
		if p, err := q.Peek(ctx, QueueInFlight, 10); err != nil || len(p) != 3 || p[0].Until <= 0 {
			t.Fatalf("Peek in flight = %+v %v", p, err)
		}
		if p, err := q.Peek(ctx, QueueReady, 10); err != nil || len(p) != 1 || p[0].Until < 59*time.Minute || string(p[0].Body) != "5" {
			t.Fatalf("Peek ready = %+v %v", p, err)
		}
		if n, err := q.AckMany(ctx, ms[:2]); err != nil || n != 2 {
			t.Fatalf("AckMany = %d %v", n, err)
		}
		// Acked already, and a lease that ran out (redelivered since).
		time.Sleep(400 * time.Millisecond)
		again := dequeueWithin(t, q)
		if again.ID != ms[2].ID || again.Deliveries != 2 {
			t.Fatalf("redelivery %+v", again)
		}
		n, err := q.AckMany(ctx, []*QueueMessage{ms[0], ms[2], again})
		if n != 1 || !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatalf("AckMany(acked, stale, held) = %d %v", n, err)
		}
		if st, _ := q.Stats(ctx); st.InFlight != 0 || st.Ready != 1 {
			t.Fatalf("stats %+v", st)
		}
		// Only the delayed message is left: the wait ends with ctx.
		cctx, ccancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer ccancel()
		if _, err := q.DequeueMany(cctx, 5); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("DequeueMany with only a delayed message: %v", err)
		}
	})
}

// TestQueueOldestReady: Stats measures how long the oldest due message has
// waited, on the server's clock; delayed messages do not count.
func TestQueueOldestReady(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("age", nil)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := q.Stats(ctx); st.OldestReady != 0 {
			t.Fatalf("empty queue: %+v", st)
		}
		if _, _, err := q.Enqueue(ctx, []byte("later"), &EnqueueOptions{Delay: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if st, _ := q.Stats(ctx); st.OldestReady != 0 || st.Ready != 1 {
			t.Fatalf("only a delayed message: %+v", st)
		}
		start := time.Now()
		if _, _, err := q.Enqueue(ctx, []byte("now"), &EnqueueOptions{Priority: QueuePriorityLow}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		st, err := q.Stats(ctx)
		if err != nil || st.OldestReady < 250*time.Millisecond || st.OldestReady > time.Since(start)+50*time.Millisecond {
			t.Fatalf("OldestReady %v after %v (%v)", st.OldestReady, time.Since(start), err)
		}
	})
}

func TestQueueOpsBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, _ := c.Queue("jobs", nil)
		other, _ := c.Queue("other", nil)
		many := make([]QueueItem, MaxQueueBatch+1)
		big := make([]QueueItem, 17)
		for i := range big {
			big[i].Body = make([]byte, MaxMessageBytes)
		}
		rejectsAll(t, rdb, c.prefix, map[string]func() error{
			"maxlen":   func() error { _, err := c.Queue("x", &QueueOptions{MaxLen: -1}); return err },
			"priority": func() error { _, _, err := q.Enqueue(ctx, nil, &EnqueueOptions{Priority: 2}); return err },
			"batch priority": func() error {
				_, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("ok")}, {EnqueueOptions: EnqueueOptions{Priority: -2}}})
				return err
			},
			"batch delay": func() error {
				_, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("ok")}, {EnqueueOptions: EnqueueOptions{Delay: -1}}})
				return err
			},
			"batch size":      func() error { _, err := q.EnqueueMany(ctx, many); return err },
			"batch bytes":     func() error { _, err := q.EnqueueMany(ctx, big); return err },
			"dequeue 0":       func() error { _, err := q.DequeueMany(ctx, 0); return err },
			"dequeue many":    func() error { _, err := q.DequeueMany(ctx, MaxQueueBatch+1); return err },
			"peek state":      func() error { _, err := q.Peek(ctx, "gone", 1); return err },
			"peek 0":          func() error { _, err := q.Peek(ctx, QueueReady, 0); return err },
			"redrive empty":   func() error { _, err := q.Redrive(ctx, "a", ""); return err },
			"purge long":      func() error { _, err := q.PurgeDead(ctx, strings.Repeat("i", MaxIDLen+1)); return err },
			"ack nil":         func() error { _, err := q.AckMany(ctx, []*QueueMessage{nil}); return err },
			"ack other queue": func() error { _, err := q.AckMany(ctx, []*QueueMessage{{ID: "1", q: other}}); return err },
		})
	})
}

// TestQueueResumeSignals: Resume pushes the signal list, one element per
// ready message (at most 64), so that consumers blocked on it wake at once
// rather than at the end of their wait.
func TestQueueResumeSignals(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("resume-signal", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		items := make([]QueueItem, 3)
		if _, err := q.EnqueueMany(ctx, items); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Del(ctx, q.keys[4]).Err(); err != nil { // the enqueue's own signals
			t.Fatal(err)
		}
		if _, err := q.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.LLen(ctx, q.keys[4]).Result(); n != 3 {
			t.Fatalf("signal list after Resume: %d elements, want 3", n)
		}
		if ttl, _ := rdb.PTTL(ctx, q.keys[4]).Result(); ttl <= 0 {
			t.Fatalf("signal list TTL %v", ttl)
		}
	})
}
