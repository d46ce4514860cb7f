package patterns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// reshardTally counts what the patterns' loops did while slots moved: calls
// per pattern, and the errors that reached callers by pattern and kind.
type reshardTally struct {
	mu      sync.Mutex
	ops     map[string]int
	errs    map[string]int // "pattern: kind" → count
	samples map[string]string
	// undocumented counts the errors that are neither a documented
	// sentinel nor a context's end.
	undocumented int
}

func newReshardTally() *reshardTally {
	return &reshardTally{ops: map[string]int{}, errs: map[string]int{}, samples: map[string]string{}}
}

// sentinels are the documented errors a call may return; the battery's
// loops handle the expected outcomes (ErrNotObtained from a lock held until
// the call's deadline...) before record sees them.
var reshardSentinels = []error{ErrNotObtained, ErrNotHeld, ErrNoPermit, ErrQueueLeaseLost,
	ErrSessionNotFound, ErrIdempotencyInProgress, ErrIdempotencyLeaseLost, ErrCacheNotFound}

// errKind names err for the tally: the cluster reply (MOVED, ASK, TRYAGAIN,
// CLUSTERDOWN), "ctx" for a context's error, "sentinel: ..." for a documented
// sentinel, else "other".
func errKind(err error) string {
	if k := notRunReply(err); k != "" {
		return k
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "ctx"
	}
	for _, s := range reshardSentinels {
		if errors.Is(err, s) {
			return "sentinel: " + s.Error()
		}
	}
	return "other"
}

// record counts one call of pattern and its error; it reports err == nil.
func (r *reshardTally) record(pattern string, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops[pattern]++
	if err == nil {
		return true
	}
	kind := errKind(err)
	if kind != "ctx" && !strings.HasPrefix(kind, "sentinel") {
		r.undocumented++
	}
	k := pattern + ": " + kind
	r.errs[k]++
	if _, ok := r.samples[k]; !ok {
		r.samples[k] = err.Error()
	}
	return false
}

// resharder moves the slots of the keys under prefix between the cluster's
// masters, one after the other and round and round, until stop closes.
type resharder struct {
	cl         *redisserver.Cluster
	rdb        *redis.ClusterClient
	prefix     string
	migrations atomic.Int64 // slots moved
	keys       atomic.Int64 // keys moved with MIGRATE
}

// slots returns the slots that hold keys under the prefix now.
func (r *resharder) slots(ctx context.Context) ([]int, error) {
	var mu sync.Mutex
	set := map[int]bool{}
	err := r.rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		iter := n.Scan(ctx, 0, r.prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			set[keySlot(iter.Val())] = true
			mu.Unlock()
		}
		return iter.Err()
	})
	out := make([]int, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Ints(out)
	return out, err
}

// run moves every slot of the test's keys to the next master, again and
// again, until stop closes (a move under way ends first), and returns the
// first error of a move.
func (r *resharder) run(ctx context.Context, stop <-chan struct{}) error {
	for !closed(stop) {
		slots, err := r.slots(ctx)
		if err != nil {
			return err
		}
		for _, slot := range slots {
			if closed(stop) {
				return nil
			}
			src, err := r.cl.SlotOwner(ctx, slot)
			if err != nil {
				return err
			}
			var dst *redisserver.Server
			for i, n := range r.cl.Nodes {
				if n == src {
					dst = r.cl.Nodes[(i+1)%len(r.cl.Nodes)]
				}
			}
			n, err := r.cl.MoveSlot(ctx, slot, src, dst, &redisserver.MoveOptions{Pause: time.Millisecond})
			r.keys.Add(int64(n))
			if err != nil {
				return err
			}
			r.migrations.Add(1)
		}
	}
	return nil
}

// TestFaultReshard runs every pattern's loop while the slots of their keys
// move between three masters, key by key with MIGRATE as redis-cli --cluster
// reshard moves them, and checks that no lock overlaps, no limiter admits
// over its limit, no queue message is lost or acked twice, no idempotent
// operation runs twice, no session or stream entry is lost, and that the
// errors reaching callers are documented ones, within a bound. A few seconds
// (-short: three); PATTERNS_SOAK=1: a minute.
func TestFaultReshard(t *testing.T) {
	onceInMode(t)
	run := 5 * time.Second
	switch {
	case os.Getenv("PATTERNS_SOAK") == "1":
		run = time.Minute
	case testing.Short():
		run = 3 * time.Second
	}
	cl, rdb := reshardCluster(t)
	c := newClient(t, rdb)
	tally := newReshardTally()
	// callCtx bounds each call: long enough for a loaded machine and for the
	// retries of a call that meets a move (about five seconds at most).
	callCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 15*time.Second)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loop := func(n int, body func(worker, i int)) {
		for w := 0; w < n; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !closed(stop); i++ {
					body(w, i)
				}
			}()
		}
	}

	// Limiters: one key per algorithm, a limit of a day, so that none
	// refills during the test; admitted must never pass the limit.
	const limit = 150
	lim := Limit{Rate: limit, Period: 24 * time.Hour, Burst: limit}
	algos := []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA}
	admitted := make([]atomic.Int64, len(algos))
	for ai, algo := range algos {
		l, err := c.Limiter("rl"+strconv.Itoa(ai), &LimiterOptions{Algorithm: algo})
		if err != nil {
			t.Fatal(err)
		}
		loop(2, func(_, _ int) {
			ctx, cancel := callCtx()
			defer cancel()
			res, err := l.Allow(ctx, "k", lim)
			if tally.record("limiter "+algo.String(), err) && res.Allowed {
				admitted[ai].Add(1)
			}
		})
	}

	// A calendar quota, and a token bucket whose limit alternates between
	// two rates (a changed limit keeps its tokens): neither passes the
	// larger.
	var quotaAdmitted, flipAdmitted atomic.Int64
	quota, err := c.Limiter("rl-quota", &LimiterOptions{Algorithm: FixedWindow})
	if err != nil {
		t.Fatal(err)
	}
	flip, err := c.Limiter("rl-flip", nil)
	if err != nil {
		t.Fatal(err)
	}
	loop(1, func(_, i int) {
		ctx, cancel := callCtx()
		defer cancel()
		res, err := quota.Allow(ctx, "k", PerCalendarMonth(limit, time.UTC))
		if tally.record("limiter calendar", err) && res.Allowed {
			quotaAdmitted.Add(1)
		}
		l := lim
		if i%2 == 1 {
			l = Limit{Rate: limit / 2, Period: lim.Period}
		}
		res, err = flip.Allow(ctx, "k", l)
		if tally.record("limiter changing", err) && res.Allowed {
			flipAdmitted.Add(1)
		}
	})

	// Locks, single and multi: a critical section counts who is inside it;
	// a second holder is an overlap. Single locks also check their fencing
	// tokens grow.
	var inLock, inMulti, overlaps atomic.Int64
	var fenceMu sync.Mutex
	var lastFence int64
	retry := &LockOptions{RetryStrategy: LinearBackoff(2 * time.Millisecond)}
	loop(3, func(_, _ int) {
		ctx, cancel := callCtx()
		defer cancel()
		l, err := c.Obtain(ctx, "lk", 10*time.Second, retry)
		if errors.Is(err, ErrNotObtained) {
			return // held until the deadline: a wait, not an error
		}
		if !tally.record("lock", err) {
			return
		}
		if inLock.Add(1) != 1 {
			overlaps.Add(1)
		}
		fenceMu.Lock()
		if l.Fence() <= lastFence {
			overlaps.Add(1)
		}
		lastFence = l.Fence()
		fenceMu.Unlock()
		time.Sleep(200 * time.Microsecond)
		inLock.Add(-1)
		tally.record("lock", l.Release(ctx))
	})
	loop(3, func(_, _ int) {
		ctx, cancel := callCtx()
		defer cancel()
		m, err := c.ObtainMulti(ctx, []string{"ma", "mb", "mc"}, 10*time.Second, retry)
		if errors.Is(err, ErrNotObtained) {
			return
		}
		if !tally.record("multilock", err) {
			return
		}
		if inMulti.Add(1) != 1 {
			overlaps.Add(1)
		}
		time.Sleep(200 * time.Microsecond)
		inMulti.Add(-1)
		tally.record("multilock", m.Release(ctx))
	})

	// Semaphore: never more holders than permits.
	const permits = 2
	sem, err := c.Semaphore("sem", &SemaphoreOptions{Permits: permits, Lease: 10 * time.Second, RetryStrategy: LinearBackoff(2 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	var inSem, semOver atomic.Int64
	loop(4, func(_, _ int) {
		ctx, cancel := callCtx()
		defer cancel()
		p, err := sem.Acquire(ctx)
		if errors.Is(err, ErrNoPermit) {
			return
		}
		if !tally.record("semaphore", err) {
			return
		}
		if inSem.Add(1) > permits {
			semOver.Add(1)
		}
		time.Sleep(200 * time.Microsecond)
		inSem.Add(-1)
		tally.record("semaphore", p.Release(ctx))
	})

	// Cache with tags: writes, reads, tag invalidations.
	cache, err := NewCache[int](c, "cache", &CacheOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	loop(2, func(w, i int) {
		ctx, cancel := callCtx()
		defer cancel()
		key := "e" + strconv.Itoa(i%20)
		switch i % 10 {
		case 9:
			tally.record("cache", cache.InvalidateTags(ctx, "t"+strconv.Itoa(i%3)))
		case 0, 1, 2, 3:
			tally.record("cache", cache.Set(ctx, key, i, &CacheSetOptions{Tags: []string{"t" + strconv.Itoa(i%3)}}))
		default:
			_, _, err := cache.Lookup(ctx, key)
			tally.record("cache", err)
		}
	})

	// Queue: every enqueued id must be acked exactly once, its result and
	// its reservation kept (checked after the run).
	q, err := c.Queue("q", &QueueOptions{Visibility: time.Minute, ResultRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var qmu sync.Mutex
	enqueued := map[string]bool{} // id → true: Enqueue returned it
	acked := map[string]int{}
	loop(1, func(_, i int) {
		ctx, cancel := callCtx()
		defer cancel()
		// A third without a group, the others in two groups (fair queues).
		id, _, err := q.Enqueue(ctx, []byte(strconv.Itoa(i)), &EnqueueOptions{UniqueFor: time.Hour, Group: []string{"", "g1", "g2"}[i%3]})
		if tally.record("queue", err) {
			qmu.Lock()
			enqueued[id] = true
			qmu.Unlock()
		}
	})
	consume := func(ctx context.Context) (bool, error) {
		m, _, err := q.TryDequeue(ctx)
		if err != nil || m == nil {
			return false, err
		}
		err = m.Complete(ctx, m.Body)
		if err == nil {
			qmu.Lock()
			acked[m.ID]++
			qmu.Unlock()
		}
		return true, err
	}
	loop(2, func(_, _ int) {
		ctx, cancel := callCtx()
		defer cancel()
		got, err := consume(ctx)
		tally.record("queue", err)
		if !got && err == nil {
			time.Sleep(time.Millisecond)
		}
	})

	// Sessions: create, read, write, rotate, destroy.
	sess, err := c.Sessions("sess", nil)
	if err != nil {
		t.Fatal(err)
	}
	var sessLost atomic.Int64
	loop(2, func(w, i int) {
		ctx, cancel := callCtx()
		defer cancel()
		id, err := sess.Create(ctx, "u"+strconv.Itoa(w), map[string]string{"n": strconv.Itoa(i)})
		if !tally.record("session", err) {
			return
		}
		_, data, err := sess.Get(ctx, id)
		if errors.Is(err, ErrSessionNotFound) || (err == nil && data["n"] != strconv.Itoa(i)) {
			sessLost.Add(1)
		} else if !tally.record("session", err) {
			return
		}
		if !tally.record("session", sess.Set(ctx, id, map[string]string{"m": "1"})) {
			return
		}
		nid, err := sess.Rotate(ctx, id)
		if !tally.record("session", err) {
			return
		}
		tally.record("session", sess.Destroy(ctx, nid))
	})

	// Idempotency: each operation runs once; its repeat is a replay.
	idem, err := c.Idempotency("idem", nil)
	if err != nil {
		t.Fatal(err)
	}
	var idemTwice, idemNotReplayed atomic.Int64
	loop(2, func(w, i int) {
		ctx, cancel := callCtx()
		defer cancel()
		key := fmt.Sprintf("op%d-%d", w, i)
		var runs atomic.Int64
		fn := func(context.Context, IdempotencyLease) ([]byte, error) {
			runs.Add(1)
			return []byte(key), nil
		}
		if _, err := idem.Do(ctx, key, "fp", fn); !tally.record("idempotency", err) {
			return
		}
		res, err := idem.Do(ctx, key, "fp", fn)
		if !tally.record("idempotency", err) {
			return
		}
		if runs.Load() != 1 {
			idemTwice.Add(1)
		}
		if !res.Replay || string(res.Value) != key {
			idemNotReplayed.Add(1)
		}
	})

	// Stream topic: every published event is read back once.
	topic, err := NewStreamTopic[int](c, "st", nil)
	if err != nil {
		t.Fatal(err)
	}
	var smu sync.Mutex
	published := map[string]bool{}
	read := map[string]int{}
	lastRead := ""
	loop(1, func(_, i int) {
		ctx, cancel := callCtx()
		defer cancel()
		id, err := topic.Publish(ctx, i)
		if tally.record("stream", err) {
			smu.Lock()
			published[id] = true
			smu.Unlock()
		}
	})
	readOnce := func(ctx context.Context) (int, error) {
		msgs, err := topic.Read(ctx, lastRead, 100, 0)
		for _, m := range msgs {
			read[m.ID]++
			lastRead = m.ID
		}
		return len(msgs), err
	}
	loop(1, func(_, _ int) {
		ctx, cancel := callCtx()
		defer cancel()
		smu.Lock()
		n, err := readOnce(ctx)
		smu.Unlock()
		tally.record("stream", err)
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	})

	// Stream group that gives up at once (MaxDeliveries 1): every entry it
	// reads is nacked to its dead letters, each once (a read or nack whose
	// reply was lost: the entry is claimed after the ClaimTimeout and dead
	// then).
	dg, err := topic.Group(context.Background(), "dl", "w", &StreamGroupOptions{FromStart: true, MaxDeliveries: 1, ClaimTimeout: time.Second, DeadMaxLen: -1})
	if err != nil {
		t.Fatal(err)
	}
	deadOnce := func(ctx context.Context) (int, error) {
		msgs, err := dg.Read(ctx, 100, 0)
		if !tally.record("stream dead letters", err) {
			return 0, err
		}
		for _, m := range msgs {
			_, err := dg.Nack(ctx, m.ID, errors.New("poison"))
			tally.record("stream dead letters", err)
		}
		return len(msgs), nil
	}
	loop(1, func(_, _ int) {
		ctx, cancel := callCtx()
		defer cancel()
		if n, _ := deadOnce(ctx); n == 0 {
			time.Sleep(time.Millisecond)
		}
	})

	// Scheduler: two instances on a schedule of 200 ms; every tick must be
	// enqueued once (checked by checkSchedulerReshard).
	checkScheduler := startSchedulerReshard(t, c, tally)

	// Reshard while the loops run, for the run time and at least two
	// rounds over the slots.
	rs := &resharder{cl: cl, rdb: rdb, prefix: c.prefix}
	moveStop := make(chan struct{})
	moveErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), run+2*time.Minute)
		defer cancel()
		moveErr <- rs.run(ctx, moveStop)
	}()
	deadline := time.Now().Add(run)
	for time.Now().Before(deadline) || rs.migrations.Load() < 20 {
		select {
		case err := <-moveErr:
			close(stop)
			wg.Wait()
			t.Fatalf("resharding stopped: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(deadline) > time.Minute {
			break
		}
	}
	close(moveStop)
	if err := <-moveErr; err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("resharding: %v", err)
	}
	close(stop)
	wg.Wait()
	checkScheduler()

	// Drain the queue and the stream, with a deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		got, err := consume(ctx)
		tally.record("queue", err)
		if !got && err == nil || ctx.Err() != nil {
			break
		}
	}
	for {
		n, err := readOnce(ctx)
		tally.record("stream", err)
		if n == 0 && err == nil || ctx.Err() != nil {
			break
		}
	}
	// The dead-letter group: until every entry is dead (some may wait for
	// the ClaimTimeout).
	var deadLetters []StreamDeadLetter[int]
	for ctx.Err() == nil {
		n, err := deadOnce(ctx)
		if err == nil && n == 0 {
			if st, err := dg.Stats(ctx); err == nil && st.Pending == 0 && st.Lag == 0 {
				deadLetters, err = dg.DeadLetters(ctx, 1_000_000)
				tally.record("stream dead letters", err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	deadSeen := map[string]int{}
	for _, d := range deadLetters {
		deadSeen[d.EntryID]++
	}
	var lost, dup, streamLost, streamDup, resultsLost, unreserved int
	checked := 0
	for id := range acked {
		if checked == 200 || ctx.Err() != nil {
			break
		}
		checked++
		r, err := q.Result(ctx, id)
		if err != nil || r.State != QueueJobCompleted || len(r.Result) == 0 {
			resultsLost++
			t.Logf("Result(%s) = %+v %v", id, r, err)
		}
		if _, queued, err := q.Enqueue(ctx, []byte("again"), &EnqueueOptions{ID: id}); queued || err != nil {
			unreserved++
			t.Logf("Enqueue(%s) again = %v %v", id, queued, err)
		}
	}
	for id := range enqueued {
		if acked[id] == 0 {
			lost++
		}
	}
	for _, n := range acked {
		if n > 1 {
			dup++
		}
	}
	for id := range published {
		if read[id] == 0 {
			streamLost++
		}
	}
	for _, n := range read {
		if n > 1 {
			streamDup++
		}
	}
	var deadLost, deadDup int
	for id := range published {
		if deadSeen[id] == 0 {
			deadLost++
		}
	}
	for _, n := range deadSeen {
		if n > 1 {
			deadDup++
		}
	}

	// The figures.
	t.Logf("resharding: %d slot migrations, %d keys moved with MIGRATE, over %v", rs.migrations.Load(), rs.keys.Load(), run)
	var names []string
	total := 0
	for p, n := range tally.ops {
		names = append(names, fmt.Sprintf("%s %d", p, n))
		total += n
	}
	sort.Strings(names)
	t.Logf("calls: %d in all; %s", total, strings.Join(names, ", "))
	var kinds []string
	errTotal, undocumented := 0, tally.undocumented
	for k, n := range tally.errs {
		kinds = append(kinds, fmt.Sprintf("%s: %d (e.g. %s)", k, n, tally.samples[k]))
		errTotal += n
	}
	sort.Strings(kinds)
	t.Logf("errors reaching callers: %d", errTotal)
	for _, k := range kinds {
		t.Logf("  %s", k)
	}
	for ai, algo := range algos {
		t.Logf("limiter %s: admitted %d of a limit of %d", algo, admitted[ai].Load(), limit)
		if admitted[ai].Load() > limit {
			t.Errorf("limiter %s admitted %d, over its limit of %d", algo, admitted[ai].Load(), limit)
		}
	}
	t.Logf("queue records: %d checked, %d results lost, %d reservations lost", checked, resultsLost, unreserved)
	t.Logf("calendar quota: admitted %d of %d; changing limit: admitted %d of %d", quotaAdmitted.Load(), limit, flipAdmitted.Load(), limit)
	if quotaAdmitted.Load() > limit || flipAdmitted.Load() > limit {
		t.Errorf("calendar quota admitted %d, changing limit %d, over %d", quotaAdmitted.Load(), flipAdmitted.Load(), limit)
	}
	t.Logf("overlapping locks %d, semaphore over-admission %d, queue: %d enqueued, %d lost, %d acked twice; stream: %d published, %d lost, %d read twice; idempotency: %d ran twice, %d not replayed; sessions lost %d",
		overlaps.Load(), semOver.Load(), len(enqueued), lost, dup, len(published), streamLost, streamDup, idemTwice.Load(), idemNotReplayed.Load(), sessLost.Load())
	t.Logf("stream dead letters: %d entries dead, %d published not dead, %d dead twice", len(deadLetters), deadLost, deadDup)
	if deadLost != 0 || deadDup != 0 {
		t.Error("a stream entry was lost or dead twice while slots moved")
	}
	if overlaps.Load() != 0 || semOver.Load() != 0 || lost != 0 || dup != 0 || streamLost != 0 || streamDup != 0 || resultsLost != 0 || unreserved != 0 ||
		idemTwice.Load() != 0 || idemNotReplayed.Load() != 0 || sessLost.Load() != 0 {
		t.Error("a guarantee broke while slots moved (figures above)")
	}
	// Errors: every one a documented sentinel or a context's end, and at
	// most one call in 200 (a call's retries end with its context only on
	// a machine too loaded to finish a slot move in seconds).
	if undocumented > 0 {
		t.Errorf("%d errors reached callers that are neither a documented sentinel nor a context's end", undocumented)
	}
	if bound := max(3, total/200); errTotal > bound {
		t.Errorf("%d errors reached callers, over the bound of %d", errTotal, bound)
	}
	if rs.migrations.Load() == 0 || total == 0 {
		t.Error("nothing measured")
	}
}
