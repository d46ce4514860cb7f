package patterns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fault batteries (restart, network, ACL) run a grouped queue with
// both group limits: enqueue in two groups, dequeue and ack.
func init() {
	moreFaultOps = append(moreFaultOps, func(t testing.TB, c *Client) []faultOp {
		q, err := c.Queue("fault-fair", &QueueOptions{Visibility: time.Second, Retention: time.Hour,
			GroupConcurrency: 4, GroupRate: Limit{Rate: 100000, Period: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		var n atomic.Int64
		return []faultOp{{name: "queue-groups", run: func(ctx context.Context) error {
			g := fmt.Sprint("tenant", n.Add(1)%2)
			if _, _, err := q.Enqueue(ctx, []byte(g), &EnqueueOptions{Group: g}); err != nil {
				return err
			}
			ms, _, err := q.tryDequeue(ctx, 2)
			if err != nil || len(ms) == 0 {
				return err
			}
			_, err = q.AckMany(ctx, ms)
			return err
		}}}
	})
}

// drainOrder takes every due message with TryDequeue and acks it, returning
// the bodies in delivery order.
func drainOrder(t *testing.T, q *Queue) []string {
	t.Helper()
	ctx := context.Background()
	var order []string
	for {
		m, _, err := q.TryDequeue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			return order
		}
		order = append(order, string(m.Body))
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// lastAt returns the 1-based position of the last body of group g
// (bodies "g/i") in order, 0 if none.
func lastAt(order []string, g string) int {
	last := 0
	for i, b := range order {
		if strings.HasPrefix(b, g+"/") {
			last = i + 1
		}
	}
	return last
}

// TestQueueGroupsRoundRobin: groups take turns, one message each, in the
// order they first had a due message; a group of many messages does not
// delay the small ones enqueued after it; ungrouped messages come first;
// priority orders a group's own messages.
func TestQueueGroupsRoundRobin(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("fair", nil)
		if err != nil {
			t.Fatal(err)
		}
		big := make([]QueueItem, 50)
		for i := range big {
			big[i] = QueueItem{Body: fmt.Appendf(nil, "big/%d", i), EnqueueOptions: EnqueueOptions{Group: "big"}}
		}
		if _, err := q.EnqueueMany(ctx, big); err != nil {
			t.Fatal(err)
		}
		small := []string{"s1", "s2", "s3"}
		for _, g := range small {
			for i := range 3 {
				if _, _, err := q.Enqueue(ctx, fmt.Appendf(nil, "%s/%d", g, i), &EnqueueOptions{Group: g}); err != nil {
					t.Fatal(err)
				}
			}
		}
		// A high-priority message of big goes before big's others, at big's
		// next turn, not before the other groups' turns.
		if _, _, err := q.Enqueue(ctx, []byte("big/urgent"), &EnqueueOptions{Group: "big", Priority: QueuePriorityHigh}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("plain/0"), nil); err != nil {
			t.Fatal(err)
		}
		st, err := q.Stats(ctx)
		if err != nil || st.Ready != 50+9+2 {
			t.Fatalf("Stats = %+v, %v; want 61 ready", st, err)
		}
		gs, err := q.Groups(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		ready := map[string]int64{}
		for _, g := range gs {
			ready[g.Name] = g.Ready
		}
		if len(gs) != 4 || ready["big"] != 51 || ready["s1"] != 3 || ready["s3"] != 3 {
			t.Fatalf("Groups = %+v", gs)
		}
		order := drainOrder(t, q)
		if len(order) != 61 {
			t.Fatalf("%d delivered, want 61: %v", len(order), order)
		}
		// Within a group, messages due in the same millisecond go by id:
		// compare groups only, beyond the first two.
		want := "plain/0 big/urgent s1 s2 s3 big s1 s2 s3 big s1 s2 s3 big big"
		got := order[:2]
		for _, b := range order[2:15] {
			got = append(got, strings.Split(b, "/")[0])
		}
		if strings.Join(got, " ") != want {
			t.Fatalf("order:\n got %s\nwant %s", strings.Join(got, " "), want)
		}
		for _, g := range small {
			if at := lastAt(order, g); at > 14 {
				t.Errorf("group %s done at delivery %d, want by 14", g, at)
			}
		}
		if gs, err := q.Groups(ctx, 10); err != nil || len(gs) != 0 {
			t.Errorf("Groups after the drain = %+v, %v", gs, err)
		}
		if st, err := q.Stats(ctx); err != nil || st.Ready != 0 || st.InFlight != 0 {
			t.Errorf("Stats after the drain = %+v, %v", st, err)
		}
	})
}

// TestQueueGroupsDelayed: a group whose only message is delayed waits
// outside the rotation and joins it when the message is due; Dequeue
// wakes for it.
func TestQueueGroupsDelayed(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		q, err := c.Queue("fair-delay", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("late/0"), &EnqueueOptions{Group: "late", Delay: 300 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("now/0"), &EnqueueOptions{Group: "now"}); err != nil {
			t.Fatal(err)
		}
		if got := drainOrder(t, q); strings.Join(got, " ") != "now/0" {
			t.Fatalf("due first: %v", got)
		}
		m, wait, err := q.TryDequeue(ctx)
		if err != nil || m != nil || wait <= 0 || wait > 300*time.Millisecond {
			t.Fatalf("TryDequeue while late/0 is delayed = %v %v %v", m, wait, err)
		}
		gs, err := q.Groups(ctx, 10)
		if err != nil || len(gs) != 1 || gs[0].Name != "late" || gs[0].Ready != 1 || gs[0].Wait <= 0 {
			t.Fatalf("Groups = %+v %v", gs, err)
		}
		m, err = q.Dequeue(ctx)
		if err != nil || string(m.Body) != "late/0" {
			t.Fatalf("Dequeue = %v %v", m, err)
		}
		ps, err := q.Peek(ctx, QueueInFlight, 5)
		if err != nil || len(ps) != 1 || ps[0].Group != "late" {
			t.Fatalf("Peek in flight = %+v %v", ps, err)
		}
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestQueueGroupsLeases: visibility timeouts, Nack, Extend, dead letters,
// Redrive, PurgeDead, pause and MaxLen with grouped messages.
func TestQueueGroupsLeases(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		q, err := c.Queue("fair-lease", &QueueOptions{Visibility: 200 * time.Millisecond, MaxDeliveries: 2, MaxLen: 3,
			GroupConcurrency: 1, Backoff: func(int) time.Duration { return 0 }})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			// a0 high: back from a lease that ran out, it goes first again.
			o := &EnqueueOptions{Group: "a", ID: fmt.Sprint("a", i), Priority: QueuePriority(max(1-i, 0))}
			if _, _, err := q.Enqueue(ctx, fmt.Appendf(nil, "a/%d", i), o); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{Group: "b"}); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("4th message past MaxLen 3: %v", err)
		}
		// GroupConcurrency 1: a0 in flight holds back a1 and a2.
		m, _, err := q.TryDequeue(ctx)
		if err != nil || m == nil || m.ID != "a0" {
			t.Fatalf("first = %v %v", m, err)
		}
		if m2, _, err := q.TryDequeue(ctx); err != nil || m2 != nil {
			t.Fatalf("second while a0 is in flight = %v %v", m2, err)
		}
		if err := m.Extend(ctx, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		// Lease runs out: a0 comes back (delivery 2), not a1.
		m, err = q.Dequeue(ctx)
		if err != nil || m.ID != "a0" || m.Deliveries != 2 {
			t.Fatalf("after the lease ran out = %+v %v", m, err)
		}
		// Nack at MaxDeliveries: a dead letter; a1 is next.
		if err := m.Nack(ctx); err != nil {
			t.Fatal(err)
		}
		if d, err := q.DeadLetters(ctx, 5); err != nil || len(d) != 1 || d[0] != "a0" {
			t.Fatalf("dead = %v %v", d, err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("again"), &EnqueueOptions{Group: "a", ID: "a0"}); !errors.Is(err, ErrQueueDeadLetter) {
			t.Fatalf("enqueue of a grouped dead letter's id: %v", err)
		}
		m, _, err = q.TryDequeue(ctx)
		if err != nil || m == nil || m.ID != "a1" {
			t.Fatalf("after a0 died = %v %v", m, err)
		}
		if err := m.Nack(ctx); err != nil { // backoff 0: due again now
			t.Fatal(err)
		}
		if ps, err := q.Peek(ctx, QueueReady, 5); err != nil || len(ps) != 2 || ps[0].Group != "a" {
			t.Fatalf("Peek ready = %+v %v", ps, err)
		}
		if n, err := q.Redrive(ctx); err != nil || n != 1 {
			t.Fatalf("Redrive = %d %v", n, err)
		}
		if _, err := q.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if m, _, err := q.TryDequeue(ctx); err != nil || m != nil {
			t.Fatalf("paused: %v %v", m, err)
		}
		if _, err := q.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for range 3 {
			m, err := q.Dequeue(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got[m.ID] = m.Deliveries
			if err := m.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got["a0"] != 1 || got["a1"] != 2 || got["a2"] != 1 {
			t.Fatalf("deliveries = %v", got)
		}
		if st, err := q.Stats(ctx); err != nil || st != (QueueStats{}) {
			t.Fatalf("Stats = %+v %v", st, err)
		}
		// A late Ack of a grouped message whose lease ran out still wins.
		if _, _, err := q.Enqueue(ctx, []byte("late"), &EnqueueOptions{Group: "c"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("d"), &EnqueueOptions{Group: "d"}); err != nil {
			t.Fatal(err)
		}
		m, err = q.Dequeue(ctx)
		if err != nil || string(m.Body) != "late" {
			t.Fatal(m, err)
		}
		time.Sleep(250 * time.Millisecond)
		m2, _, err := q.TryDequeue(ctx) // d's turn; returns m to its group on the way
		if err != nil || m2 == nil || string(m2.Body) != "d" {
			t.Fatal(m2, err)
		}
		if err := m.Ack(ctx); err != nil {
			t.Fatalf("late Ack: %v", err)
		}
		if err := m2.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err := q.Stats(ctx); err != nil || st != (QueueStats{}) {
			t.Fatalf("Stats = %+v %v", st, err)
		}
	})
}

// TestQueueGroupConcurrency: 8 consumers on groups limited to 2 in flight
// each: no group ever has more than 2 messages between Dequeue and Ack.
func TestQueueGroupConcurrency(t *testing.T) {
	t.Parallel()
	perGroup := 40
	if os.Getenv("PATTERNS_SOAK") == "1" {
		perGroup = 1000
	}
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		const limit = 2
		q, err := c.Queue("fair-conc", &QueueOptions{GroupConcurrency: limit})
		if err != nil {
			t.Fatal(err)
		}
		groups := []string{"a", "b", "c"}
		var items []QueueItem
		for i := range perGroup {
			for _, g := range groups {
				items = append(items, QueueItem{Body: []byte(g), EnqueueOptions: EnqueueOptions{Group: g}})
			}
			if len(items) >= 900 || i == perGroup-1 {
				if _, err := q.EnqueueMany(ctx, items); err != nil {
					t.Fatal(err)
				}
				items = items[:0]
			}
		}
		var inflight [3]atomic.Int32
		var most [3]atomic.Int32
		var done atomic.Int32
		total := int32(perGroup * len(groups))
		var wg sync.WaitGroup
		errc := make(chan error, 8)
		runCtx, stop := context.WithCancel(ctx) // ends the consumers waiting once all is done
		defer stop()
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done.Load() < total {
					ms, err := q.DequeueMany(runCtx, 2)
					if err != nil {
						errc <- err
						return
					}
					for _, m := range ms {
						g := int(m.Body[0] - 'a')
						n := inflight[g].Add(1)
						for {
							old := most[g].Load()
							if n <= old || most[g].CompareAndSwap(old, n) {
								break
							}
						}
					}
					time.Sleep(time.Millisecond)
					for _, m := range ms {
						inflight[m.Body[0]-'a'].Add(-1) // before Ack: the server frees the slot after it
						if err := m.Ack(ctx); err != nil {
							errc <- err
							return
						}
						if done.Add(1) == total {
							stop()
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if !errors.Is(err, context.Canceled) || done.Load() < total {
				t.Fatal(err)
			}
		}
		for i, g := range groups {
			if m := most[i].Load(); m > limit || m < 1 {
				t.Errorf("group %s: at most %d in flight, want 1 to %d", g, m, limit)
			}
		}
		if done.Load() != total {
			t.Fatalf("%d of %d done", done.Load(), total)
		}
	})
}

// TestQueueGroupRate: a group's rate limit (a token bucket of burst 2,
// one token an hour) lets 2 of its messages through, and no more, while
// the other groups go on.
func TestQueueGroupRate(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("fair-rate", &QueueOptions{GroupRate: Limit{Rate: 1, Period: time.Hour, Burst: 2}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			for _, g := range []string{"a", "b"} {
				if _, _, err := q.Enqueue(ctx, fmt.Appendf(nil, "%s/%d", g, i), &EnqueueOptions{Group: g}); err != nil {
					t.Fatal(err)
				}
			}
		}
		order := drainOrder(t, q)
		var got []string
		for _, b := range order {
			got = append(got, strings.Split(b, "/")[0])
		}
		if strings.Join(got, " ") != "a b a b" {
			t.Fatalf("delivered %v, want 2 of a and 2 of b in turn", order)
		}
		_, wait, err := q.TryDequeue(ctx)
		if err != nil || wait < 50*time.Minute {
			t.Fatalf("wait = %v %v, want about an hour", wait, err)
		}
		gs, err := q.Groups(ctx, 10)
		if err != nil || len(gs) != 2 || gs[0].Ready != 3 || gs[0].Wait < 50*time.Minute {
			t.Fatalf("Groups = %+v %v", gs, err)
		}
		// A new group has its own bucket.
		if _, _, err := q.Enqueue(ctx, []byte("c/0"), &EnqueueOptions{Group: "c"}); err != nil {
			t.Fatal(err)
		}
		if got := drainOrder(t, q); strings.Join(got, " ") != "c/0" {
			t.Fatalf("new group: %v", got)
		}
	})
}

// TestQueueGroupsBadInput: bad group options and names write nothing.
func TestQueueGroupsBadInput(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	c := newClient(t, rdb)
	ctx := context.Background()
	for _, o := range []*QueueOptions{{GroupConcurrency: -1}, {GroupRate: Limit{Rate: 0, Period: time.Second}},
		{GroupRate: Limit{Rate: 1, Period: time.Microsecond}}} {
		if _, err := c.Queue("bad", o); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Queue(%+v): %v", o, err)
		}
	}
	q, err := c.Queue("bad", nil)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("g", MaxIDLen+1)
	rejectsAll(t, rdb, c.prefix, map[string]func() error{
		"Enqueue": func() error {
			_, _, err := q.Enqueue(ctx, nil, &EnqueueOptions{Group: long})
			return err
		},
		"EnqueueMany": func() error {
			_, err := q.EnqueueMany(ctx, []QueueItem{{}, {EnqueueOptions: EnqueueOptions{Group: long}}})
			return err
		},
		"Groups": func() error {
			_, err := q.Groups(ctx, 0)
			return err
		},
	})
}

// TestFunctionsIncludeSections: the queue's script and its function in the
// Functions library carry rl_token_bucket's bucket section in place of the
// include line, the one copy of the bucket arithmetic both run.
func TestFunctionsIncludeSections(t *testing.T) {
	code := Functions().Code
	_, q, ok := strings.Cut(code, "\n-- scripts/queue.lua\n")
	if !ok {
		t.Fatal("no queue function in the library")
	}
	q, _, _ = strings.Cut(q, "\nredis.register_function")
	for _, src := range []string{q, scriptQueue.src} {
		if strings.Contains(src, "\n-- include: ") {
			t.Error("an include line left in the queue's code")
		}
		for _, f := range []string{"local function tb_state(", "local function tb_next("} {
			if strings.Count(src, f) != 1 {
				t.Errorf("%d copies of %q in the queue's code, want 1", strings.Count(src, f), f)
			}
		}
	}
}
