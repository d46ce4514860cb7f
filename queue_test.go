package patterns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestQueue(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("jobs", &QueueOptions{Visibility: 300 * time.Millisecond, MaxDeliveries: 2,
			Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
		if err != nil {
			t.Fatal(err)
		}
		id, queued, err := q.Enqueue(ctx, []byte("a"), nil)
		if err != nil || !queued || id == "" {
			t.Fatalf("Enqueue = %q %t %v", id, queued, err)
		}
		// Dedup: the same id while pending is a no-op.
		if _, queued, _ := q.Enqueue(ctx, []byte("b"), &EnqueueOptions{ID: "order-7"}); !queued {
			t.Fatal("first order-7 not queued")
		}
		if _, queued, _ := q.Enqueue(ctx, []byte("b2"), &EnqueueOptions{ID: "order-7"}); queued {
			t.Fatal("duplicate order-7 queued")
		}
		m1, err := q.Dequeue(ctx)
		if err != nil || string(m1.Body) != "a" || m1.Deliveries != 1 {
			t.Fatalf("first = %+v %v", m1, err)
		}
		if err := m1.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m1.Ack(ctx); !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatalf("second Ack: %v", err)
		}
		// Visibility timeout: not acked, delivered again.
		m2, _ := q.Dequeue(ctx)
		if string(m2.Body) != "b" {
			t.Fatalf("second = %q", m2.Body)
		}
		if m, _, _ := q.TryDequeue(ctx); m != nil {
			t.Fatal("an in-flight message was delivered twice at once")
		}
		time.Sleep(350 * time.Millisecond)
		again, err := q.Dequeue(ctx)
		if err != nil || again.ID != "order-7" || again.Deliveries != 2 {
			t.Fatalf("redelivery = %+v %v", again, err)
		}
		if err := m2.Ack(ctx); !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatalf("stale consumer's Ack: %v, want ErrLeaseLost", err)
		}
		// Second delivery nacked: MaxDeliveries 2 reached -> dead letter.
		if err := again.Nack(ctx); err != nil {
			t.Fatal(err)
		}
		dead, _ := q.DeadLetters(ctx, 10)
		if len(dead) != 1 || dead[0] != "order-7" {
			t.Fatalf("dead letters %v", dead)
		}
		// Delay and extend.
		q.Enqueue(ctx, []byte("later"), &EnqueueOptions{Delay: 200 * time.Millisecond})
		if m, wait, _ := q.TryDequeue(ctx); m != nil || wait <= 0 || wait > 200*time.Millisecond {
			t.Fatalf("delayed message: %v, wait %v", m, wait)
		}
		start := time.Now()
		m3, _ := q.Dequeue(ctx)
		if string(m3.Body) != "later" || time.Since(start) < 150*time.Millisecond {
			t.Fatalf("delayed message came after %v", time.Since(start))
		}
		if err := m3.Extend(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond) // past the 300ms visibility, within the extension
		if m, _, _ := q.TryDequeue(ctx); m != nil {
			t.Fatal("an extended lease was redelivered")
		}
		if err := m3.Nack(ctx); err != nil {
			t.Fatal(err)
		}
		m4, _ := q.Dequeue(ctx) // after the 100ms backoff
		if m4.ID != m3.ID || m4.Deliveries != 2 {
			t.Fatalf("after Nack: %+v", m4)
		}
		m4.Ack(ctx)
		st, err := q.Stats(ctx)
		if err != nil || st != (QueueStats{Ready: 0, InFlight: 0, Dead: 1}) {
			t.Fatalf("stats %+v %v", st, err)
		}
		// A blocked Dequeue honours its context.
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := q.Dequeue(cctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dequeue on an empty queue: %v", err)
		}
	})
}

func TestQueueBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, _ := c.Queue("jobs", nil)
		rejectsAll(t, rdb, c.prefix, map[string]func() error{
			"empty name": func() error { _, err := c.Queue("", nil); return err },
			"big body":   func() error { _, _, err := q.Enqueue(ctx, make([]byte, MaxMessageBytes+1), nil); return err },
			"long id": func() error {
				_, _, err := q.Enqueue(ctx, nil, &EnqueueOptions{ID: strings.Repeat("i", MaxIDLen+1)})
				return err
			},
			"neg delay":  func() error { _, _, err := q.Enqueue(ctx, nil, &EnqueueOptions{Delay: -1}); return err },
			"visibility": func() error { _, err := c.Queue("x", &QueueOptions{Visibility: -1}); return err },
			"deliveries": func() error { _, err := c.Queue("x", &QueueOptions{MaxDeliveries: -2}); return err },
		})
	})
}

// TestQueueLatency reports how long a waiting consumer takes to get a
// message after Enqueue returns (measured, not asserted).
func TestQueueLatency(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	q, _ := c.Queue("lat", nil)
	var lat []time.Duration
	for i := 0; i < 200; i++ {
		got := make(chan time.Time, 1)
		go func() {
			m, err := q.Dequeue(ctx)
			if err == nil {
				got <- time.Now()
				m.Ack(ctx)
			}
		}()
		time.Sleep(2 * time.Millisecond) // the consumer is waiting
		sent := time.Now()
		q.Enqueue(ctx, []byte("x"), nil)
		lat = append(lat, (<-got).Sub(sent))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("enqueue-to-dequeue latency for a waiting consumer over %d messages: p50 %v, p99 %v, max %v",
		len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}

// TestQueueKilledConsumers: a producer process (4 goroutines) enqueues N
// messages while consumer processes (4 goroutines each) are killed with
// SIGKILL at random and replaced. At the end every message is acked or
// dead, none is lost, and duplicates (processed more than once) are counted:
// each comes from a kill between processing and ack.
func TestQueueKilledConsumers(t *testing.T) {
	t.Parallel()
	n := 20_000
	if os.Getenv("PATTERNS_SOAK") != "" {
		n = 100_000
	}
	if testing.Short() {
		n = 3000
	}
	rdb := testRedis(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	t.Cleanup(func() { rdb.Del(context.Background(), prefix+":processed") })
	env := []string{"PATTERNS_TEST_PREFIX=" + prefix, "PATTERNS_TEST_N=" + strconv.Itoa(n)}
	var prodOut bytes.Buffer
	producer := startChild(t, rdb, "TestQueueProducerChild", &prodOut, env...)
	kills := 0
	c, _ := New(rdb, &Options{Prefix: prefix})
	q, _ := c.Queue("work", &QueueOptions{Visibility: 500 * time.Millisecond, MaxDeliveries: 50})
	done := false
	var producerErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); producerErr = producer.Wait() }()
	produced := make(chan struct{})
	go func() { wg.Wait(); close(produced) }()
	// Each consumer is killed at a random moment after it has processed
	// something (a loaded machine starts a process slowly: a kill on a
	// timer alone could kill every consumer before its first message). The
	// test is bounded by a deadline, not by a number of kills.
	deadline := time.Now().Add(4 * time.Minute)
	for !done {
		var out bytes.Buffer
		before, _ := rdb.HLen(ctx, prefix+":processed").Result()
		consumer := startChild(t, rdb, "TestQueueConsumerChild", &out, env...)
		for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			if n, _ := rdb.HLen(ctx, prefix+":processed").Result(); n > before {
				break
			}
		}
		time.Sleep(time.Duration(rand.IntN(600)) * time.Millisecond)
		_ = consumer.Process.Signal(syscall.SIGKILL)
		_ = consumer.Wait()
		kills++
		st, _ := q.Stats(ctx)
		select {
		case <-produced:
			done = st.Ready == 0 && st.InFlight == 0
		default:
		}
		if !done && time.Now().After(deadline) {
			t.Fatalf("not drained after %d kills: %+v", kills, st)
		}
	}
	if producerErr != nil {
		t.Fatalf("producer: %v\n%s", producerErr, prodOut.String())
	}
	// The queue is empty: every message was acked or is dead. None lost:
	// each was processed at least once or sits in the dead-letter list.
	dead, _ := q.DeadLetters(ctx, n)
	isDead := map[string]bool{}
	for _, id := range dead {
		isDead[id] = true
	}
	processed, _ := rdb.HGetAll(ctx, prefix+":processed").Result()
	dups, lost := 0, 0
	for i := 0; i < n; i++ {
		id := "m" + strconv.Itoa(i)
		k, _ := strconv.Atoi(processed[id])
		if k == 0 && !isDead[id] {
			lost++
		}
		if k > 1 {
			dups += k - 1
		}
	}
	t.Logf("%d messages, %d consumer processes killed: %d dead, %d lost, %d duplicate deliveries (%.2f per kill)",
		n, kills, len(dead), lost, dups, float64(dups)/float64(kills))
	if lost > 0 {
		t.Fatalf("%d messages lost", lost)
	}
	// A kill strands at most the 4 messages its goroutines hold: each is
	// delivered again once its lease expires.
	if dups > 4*kills {
		t.Fatalf("%d duplicates for %d kills: more than the 4 in-flight messages a kill can strand", dups, kills)
	}
}

func TestQueueProducerChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestQueueKilledConsumers")
	}
	c := childClient(t)
	q, _ := c.Queue("work", &QueueOptions{Visibility: 500 * time.Millisecond, MaxDeliveries: 50})
	n, _ := strconv.Atoi(os.Getenv("PATTERNS_TEST_N"))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				if _, _, err := q.Enqueue(context.Background(), []byte("job"), &EnqueueOptions{ID: "m" + strconv.Itoa(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestQueueConsumerChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestQueueKilledConsumers")
	}
	rdb := childRedis(t)
	prefix := os.Getenv("PATTERNS_TEST_PREFIX")
	c, _ := New(rdb, &Options{Prefix: prefix})
	q, _ := c.Queue("work", &QueueOptions{Visibility: 500 * time.Millisecond, MaxDeliveries: 50})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := q.Dequeue(ctx)
				if err != nil {
					fmt.Println("dequeue:", err)
					return
				}
				rdb.HIncrBy(ctx, prefix+":processed", m.ID, 1) // the work
				_ = m.Ack(ctx)
			}
		}()
	}
	wg.Wait() // runs until killed
}

// TestQueueMaxDeliveriesOff: with MaxDeliveries -1 a message is never dead:
// nacked more often than the default 5, it is delivered again.
func TestQueueMaxDeliveriesOff(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("forever", &QueueOptions{MaxDeliveries: -1, Backoff: func(int) time.Duration { return 0 }})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 8; i++ {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			m, err := q.Dequeue(dctx)
			cancel()
			if err != nil {
				t.Fatalf("delivery %d: %v", i, err)
			}
			if m.Deliveries != i {
				t.Fatalf("delivery %d: Deliveries = %d", i, m.Deliveries)
			}
			if i == 8 {
				_ = m.Ack(ctx)
				break
			}
			if err := m.Nack(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if st, _ := q.Stats(ctx); st.Dead != 0 {
			t.Fatalf("%d dead with MaxDeliveries -1", st.Dead)
		}
	})
}
