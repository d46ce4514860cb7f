package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// fillPatterns writes a lock, limiter state, a queue with a dead letter, a
// board, two sessions and one stray key without a TTL under prefix "insp".
func fillPatterns(t *testing.T, rdb redis.UniversalClient) (q *patterns.Queue) {
	t.Helper()
	ctx := context.Background()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "insp"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Obtain(ctx, "orders", time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	for _, algo := range []patterns.Algorithm{patterns.TokenBucket, patterns.FixedWindow} {
		l, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: algo})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := l.Allow(ctx, "user42", patterns.PerMinute(10)); err != nil {
				t.Fatal(err)
			}
		}
	}
	q, err = pc.Queue("jobs", &patterns.QueueOptions{MaxDeliveries: 1, Backoff: func(int) time.Duration { return time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"a", "b", "c"} {
		if _, _, err := q.Enqueue(ctx, []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	m, _, err := q.TryDequeue(ctx)
	if err != nil || m == nil {
		t.Fatalf("dequeue: %v %v", m, err)
	}
	_ = m.Nack(ctx)
	sch, err := pc.Scheduler("jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Set(ctx, "nightly", patterns.Schedule{Spec: "@daily"}); err != nil {
		t.Fatal(err)
	}
	b, err := pc.Board("scores", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, who := range []string{"ann", "bob", "cid"} {
		if _, err := b.Submit(ctx, who, float64(10*(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	s, err := pc.Sessions("web", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.Create(ctx, "alice", map[string]string{"n": "1"}); err != nil {
			t.Fatal(err)
		}
	}
	stray, _ := pc.Key("mine", "x")
	if err := rdb.Set(ctx, stray, "forever", 0).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Del(context.Background(), stray) })
	return q
}

// newerState is what fillNewer made, to compare inspect's views with.
type newerState struct {
	poolTokens    []string // the fair semaphore's holders
	plainToken    string
	readers       []string
	readerFence   int64 // the last reader's fencing token
	writer        string
	writerFence   int64
	order1Fence   int64
	order2Fence   int64
	invalidatedAt [2]time.Time // bounds of the tag invalidation, by this clock
}

// fillNewer makes, under prefix "insp", with the library's API: a fair
// semaphore with stored permits, two holders and a waiter, and a plain one;
// a concurrency limiter with three requests in flight over two keys; a
// read-write lock with two readers and a waiting writer, and one held by a
// writer; idempotency keys completed, in progress and completed with an
// error; a cache with tagged, invalidated and untagged entries and a load
// in progress; an election with a leader. The waiting and running callers
// run until the test ends.
func fillNewer(t *testing.T, rdb redis.UniversalClient) *newerState {
	t.Helper()
	ctx := context.Background()
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var closers []func() // after the callers in the background ended
	t.Cleanup(func() {
		stop()
		wg.Wait()
		for _, c := range closers {
			c()
		}
	})
	goBG := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	fatal := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "insp"})
	fatal("client", err)
	st := &newerState{}

	pool, err := pc.Semaphore("pool", &patterns.SemaphoreOptions{Permits: 3, Fair: true, Lease: time.Minute})
	fatal("semaphore", err)
	fatal("set permits", pool.SetPermits(ctx, 2))
	for i := 0; i < 2; i++ {
		p, err := pool.TryAcquire(ctx)
		fatal("try acquire", err)
		st.poolTokens = append(st.poolTokens, p.Token())
	}
	goBG(func() {
		if p, err := pool.Acquire(bg); err == nil {
			t.Errorf("the waiter got a permit %s", p.Token())
		}
	})
	plain, err := pc.Semaphore("plain", &patterns.SemaphoreOptions{Permits: 5, Lease: time.Minute})
	fatal("semaphore", err)
	p, err := plain.TryAcquire(ctx)
	fatal("try acquire", err)
	st.plainToken = p.Token()
	// A holder whose lease ended stays in the set until the next attempt:
	// it is not shown.
	short, err := pc.Semaphore("plain", &patterns.SemaphoreOptions{Permits: 5, Lease: 20 * time.Millisecond})
	fatal("semaphore", err)
	_, err = short.TryAcquire(ctx)
	fatal("try acquire", err)
	time.Sleep(50 * time.Millisecond)

	cl, err := pc.ConcurrencyLimiter("api", &patterns.ConcurrencyLimiterOptions{Permits: 4, Lease: time.Minute})
	fatal("concurrency limiter", err)
	for _, key := range []string{"user42", "user7", "user42"} {
		_, err := cl.Acquire(ctx, key)
		fatal("concurrency acquire", err)
	}

	doc, err := pc.RWLock("doc", &patterns.RWLockOptions{Lease: time.Minute})
	fatal("rwlock", err)
	for i := 0; i < 2; i++ {
		r, err := doc.RLock(ctx)
		fatal("rlock", err)
		st.readers, st.readerFence = append(st.readers, r.Token()), r.Fence()
	}
	// A writer that retries every 5s keeps its intent (2*5s+100ms) alive.
	docW, err := pc.RWLock("doc", &patterns.RWLockOptions{Lease: time.Minute, RetryStrategy: patterns.LinearBackoff(5 * time.Second)})
	fatal("rwlock", err)
	goBG(func() {
		if l, err := docW.Lock(bg); err == nil {
			t.Errorf("the waiting writer got the lock %s", l.Token())
		}
	})
	doc2, err := pc.RWLock("doc2", &patterns.RWLockOptions{Lease: time.Minute})
	fatal("rwlock", err)
	wl, err := doc2.Lock(ctx)
	fatal("lock", err)
	st.writer, st.writerFence = wl.Token(), wl.Fence()

	pay, err := pc.Idempotency("pay", &patterns.IdempotencyOptions{Lease: time.Minute, Retention: time.Hour,
		StoreError: func(err error) bool { return err.Error() == "declined" }})
	fatal("idempotency", err)
	res, err := pay.Do(ctx, "order-1", "body-1", func(context.Context, patterns.IdempotencyLease) ([]byte, error) {
		return []byte("receipt-123"), nil
	})
	fatal("do order-1", err)
	st.order1Fence = res.Fence
	if _, err := pay.Do(ctx, "order-3", "body-3", func(context.Context, patterns.IdempotencyLease) ([]byte, error) {
		return nil, errors.New("declined")
	}); err == nil || err.Error() != "declined" {
		t.Fatalf("do order-3: %v", err)
	}
	running := make(chan int64)
	goBG(func() {
		_, _ = pay.Do(bg, "order:2", "", func(ctx context.Context, l patterns.IdempotencyLease) ([]byte, error) {
			running <- l.Fence
			<-ctx.Done()
			return nil, ctx.Err()
		})
	})
	st.order2Fence = <-running

	products, err := patterns.NewCache[string](pc, "products", &patterns.CacheOptions{TTL: 10 * time.Minute, LeaseTTL: time.Minute})
	fatal("cache", err)
	closers = append(closers, products.Close)
	fatal("set p1", products.Set(ctx, "p1", "shoe", &patterns.CacheSetOptions{Tags: []string{"sale", "shoes"}}))
	st.invalidatedAt[0] = time.Now()
	fatal("invalidate", products.InvalidateTags(ctx, "sale"))
	st.invalidatedAt[1] = time.Now()
	fatal("set p2", products.Set(ctx, "p2", "boot", &patterns.CacheSetOptions{Tags: []string{"sale"}}))
	fatal("set p3", products.Set(ctx, "p3", "sock", nil))
	deflating, err := patterns.NewCache[string](pc, "products", &patterns.CacheOptions{TTL: 10 * time.Minute, CompressAbove: 100})
	fatal("cache", err)
	fatal("set p5", deflating.Set(ctx, "p5", strings.Repeat("sock", 100), nil))
	loading := make(chan struct{})
	goBG(func() {
		_, _ = products.Get(bg, "p:4", func(ctx context.Context) (string, error) {
			close(loading)
			<-ctx.Done()
			return "", ctx.Err()
		}, nil)
	})
	<-loading

	leading := make(chan struct{})
	goBG(func() {
		_ = pc.Elect(bg, "cron", "worker-1", 30*time.Second, func(ctx context.Context) error {
			close(leading)
			<-ctx.Done()
			return nil
		})
	})
	<-leading

	// The waiter and the waiting writer are queued by their first attempt.
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep, err := inspect(ctx, rdb, &inspectOptions{prefix: "insp", maxKeys: 100000, timeout: 10 * time.Second, show: 5})
		fatal("inspect", err)
		var waiting int
		var writer bool
		for _, s := range rep.Semaphores {
			if s.Name == "pool" {
				waiting = s.Waiting
			}
		}
		for _, l := range rep.RWLocks {
			if l.Name == "doc" {
				writer = l.WriterWaiting
			}
		}
		if waiting == 1 && writer {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no waiter in the semaphore (%d) or no waiting writer (%v) after 20s", waiting, writer)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return st
}

func suffixOf(tok string) string { return "..." + tok[len(tok)-6:] }

// between reports whether 0 < ms <= max, and a second more: the view reads
// the server's clock a moment before the leases, which a waiter that asks
// again meanwhile extends (its place ends up to max after its attempt).
func between(ms int64, max time.Duration) bool {
	return ms > 0 && ms <= (max+time.Second).Milliseconds()
}

// checkNewer compares inspect's views of the newer patterns with st.
func checkNewer(t *testing.T, rep *inspectReport, st *newerState) {
	t.Helper()
	sems := map[string]semaphoreInfo{}
	for _, s := range rep.Semaphores {
		sems[s.Name] = s
	}
	pool := sems["pool"]
	if pool.Permits != 2 || pool.Held != 2 || pool.Waiting != 1 || len(pool.Holders) != 2 || len(pool.Waiters) != 1 ||
		!between(pool.Waiters[0].PlaceMs, time.Minute) || !strings.HasPrefix(pool.Waiters[0].Token, "...") {
		t.Errorf("semaphore pool: %+v", pool)
	}
	want := map[string]bool{suffixOf(st.poolTokens[0]): true, suffixOf(st.poolTokens[1]): true}
	for _, h := range pool.Holders {
		if !want[h.Token] || !between(h.LeaseMs, time.Minute) {
			t.Errorf("semaphore pool holder %+v, want one of %v with a lease up to 1m", h, want)
		}
		delete(want, h.Token)
	}
	if want[pool.Waiters[0].Token] {
		t.Errorf("the waiter %s is a holder", pool.Waiters[0].Token)
	}
	plain := sems["plain"]
	if plain.Permits != 0 || plain.Held != 1 || plain.Waiting != 0 || len(plain.Holders) != 1 || plain.Holders[0].Token != suffixOf(st.plainToken) {
		t.Errorf("semaphore plain: %+v", plain)
	}
	if len(rep.Semaphores) != 2 {
		t.Errorf("semaphores: %+v", rep.Semaphores)
	}

	if len(rep.Concurrency) != 1 || fmt.Sprint(rep.Concurrency[0]) != "{api 2 3 [{user42 2} {user7 1}]}" {
		t.Errorf("concurrency: %+v", rep.Concurrency)
	}

	rws := map[string]rwLockInfo{}
	for _, l := range rep.RWLocks {
		rws[l.Name] = l
	}
	doc := rws["doc"]
	if doc.Readers != 2 || len(doc.ReaderLeases) != 2 || doc.Writer != "" || !doc.WriterWaiting ||
		!between(doc.IntentTTLms, 11*time.Second) || doc.Fence != strconv.FormatInt(st.readerFence, 10) {
		t.Errorf("rwlock doc: %+v (readers' fence %d)", doc, st.readerFence)
	}
	want = map[string]bool{suffixOf(st.readers[0]): true, suffixOf(st.readers[1]): true}
	for _, r := range doc.ReaderLeases {
		if !want[r.Token] || !between(r.LeaseMs, time.Minute) {
			t.Errorf("rwlock doc reader %+v, want one of %v", r, want)
		}
		delete(want, r.Token)
	}
	doc2 := rws["doc2"]
	if doc2.Readers != 0 || doc2.Writer != suffixOf(st.writer) || !between(doc2.WriterTTLms, time.Minute) ||
		doc2.WriterWaiting || doc2.Fence != strconv.FormatInt(st.writerFence, 10) {
		t.Errorf("rwlock doc2: %+v (writer %s, fence %d)", doc2, st.writer, st.writerFence)
	}

	if len(rep.Idempotency) != 1 || rep.Idempotency[0].Store != "pay" || rep.Idempotency[0].Keys != 3 {
		t.Fatalf("idempotency: %+v", rep.Idempotency)
	}
	keys := map[string]idemInfo{}
	for _, k := range rep.Idempotency[0].Shown {
		keys[k.Key] = k
	}
	h := fmt.Sprintf("%x", sha256.Sum256([]byte("body-1")))
	if k := keys["order-1"]; k.State != "completed" || k.ResultBytes != int64(len("receipt-123")) || !between(k.TTLms, time.Hour) ||
		k.Fingerprint != "..."+h[len(h)-8:] || k.Fence != strconv.FormatInt(st.order1Fence, 10) || k.Holder != "" {
		t.Errorf("idempotency order-1: %+v (fence %d, fingerprint %s)", k, st.order1Fence, h)
	}
	if k := keys["order:2"]; k.State != "in progress" || k.ResultBytes != 0 || !between(k.TTLms, time.Minute) ||
		k.Fingerprint != "" || k.Fence != strconv.FormatInt(st.order2Fence, 10) || !strings.HasPrefix(k.Holder, "...") {
		t.Errorf("idempotency order:2: %+v (fence %d)", k, st.order2Fence)
	}
	if k := keys["order-3"]; k.State != "completed with error" || k.ResultBytes != int64(len("declined")) || !between(k.TTLms, time.Hour) {
		t.Errorf("idempotency order-3: %+v", k)
	}

	if len(rep.Caches) != 1 {
		t.Fatalf("caches: %+v", rep.Caches)
	}
	c := rep.Caches[0]
	if c.Name != "products" || c.Entries != 4 || c.Leases != 1 || c.TagRecords != 1 || len(c.Latest) != 1 || c.Latest[0].Tag != "sale" ||
		c.Latest[0].InvalidatedAt.Before(st.invalidatedAt[0].Add(-time.Minute)) || c.Latest[0].InvalidatedAt.After(st.invalidatedAt[1].Add(time.Minute)) {
		t.Errorf("cache: %+v (invalidated between %v)", c, st.invalidatedAt)
	}
	entries := map[string]cacheEntryInfo{}
	for _, e := range c.Shown {
		entries[e.Key] = e
	}
	for key, want := range map[string]struct {
		tags        string
		invalidated bool
	}{"p1": {"[sale shoes]", true}, "p2": {"[sale]", false}, "p3": {"[]", false}} {
		e := entries[key]
		// A format byte and a JSON string of 4 letters, behind a header.
		if !e.Entry || e.PayloadBytes != 7 || e.Compressed || e.Bytes <= e.PayloadBytes || !between(e.TTLms, 11*time.Minute) ||
			fmt.Sprint(e.Tags) != want.tags || e.Invalidated != want.invalidated || e.Lease || e.Negative ||
			e.WrittenAt.Before(st.invalidatedAt[0].Add(-time.Minute)) || e.WrittenAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("cache entry %s: %+v, want tags %s, invalidated %v", key, e, want.tags, want.invalidated)
		}
	}
	if e := entries["p5"]; !e.Entry || !e.Compressed || e.PayloadBytes >= 402 || e.Bytes <= e.PayloadBytes || e.Invalidated || len(e.Tags) != 0 {
		t.Errorf("cache entry p5 (deflated): %+v", e)
	}
	if e := entries["p:4"]; e.Entry || !e.Lease || !between(e.LeaseTTLms, time.Minute) || e.Bytes != 0 {
		t.Errorf("cache entry p:4 (loading): %+v", e)
	}
	if !entries["p1"].WrittenAt.Before(c.Latest[0].InvalidatedAt) || entries["p2"].WrittenAt.Before(c.Latest[0].InvalidatedAt) {
		t.Errorf("written %v and %v, tag invalidated at %v", entries["p1"].WrittenAt, entries["p2"].WrittenAt, c.Latest[0].InvalidatedAt)
	}

	if len(rep.Elections) != 1 {
		t.Fatalf("elections: %+v", rep.Elections)
	}
	e := rep.Elections[0]
	if e.Name != "cron" || e.Leader != "worker-1" || !strings.HasPrefix(e.Token, "...") || len(e.Token) != 9 ||
		!between(e.TTLms, 30*time.Second) || e.Fence == "" || e.Fence == "0" {
		t.Errorf("election: %+v", e)
	}
}

func checkInspect(t *testing.T, url string, q *patterns.Queue, ns *newerState, extra ...string) {
	t.Helper()
	var out bytes.Buffer
	args := append([]string{"-json", "-prefix", "insp", "-limiter", "user42", "-sessions", "web", "-user", "alice"}, extra...)
	if err := inspectMain(context.Background(), url, args, &out); err != nil {
		t.Fatalf("inspect: %v", err)
	}
	var rep inspectReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	pats := map[string]patternStats{}
	for _, p := range rep.Patterns {
		pats[p.Pattern] = p
	}
	for _, p := range []string{"lock", "rl", "q", "lb", "sess", "mine"} {
		if pats[p].Keys == 0 || pats[p].Memory == 0 {
			t.Errorf("pattern %s: %+v", p, pats[p])
		}
	}
	if pats["mine"].NoTTL != 1 || pats["lock"].NoTTL != 0 || pats["rl"].NoTTL != 0 || pats["q"].NoTTL != 0 || pats["sess"].NoTTL != 0 {
		t.Errorf("keys without TTL: %+v", rep.Patterns)
	}
	if !pats["lb"].LongLived {
		t.Error("boards are not marked long-lived")
	}
	if len(rep.Locks) != 1 || !strings.HasPrefix(rep.Locks[0].Owner, "...") || rep.Locks[0].TTLms <= 0 || rep.Locks[0].Fence == "" {
		t.Errorf("locks: %+v", rep.Locks)
	}
	algos := map[string]bool{}
	for _, l := range rep.Limiter {
		algos[l.Algorithm] = true
		if l.Limiter != "api" || l.TTLms <= 0 || len(l.State) == 0 {
			t.Errorf("limiter key: %+v", l)
		}
	}
	for _, l := range rep.Limiter {
		// Three of ten taken, in the last second or so.
		if l.Algorithm == "TokenBucket" && l.State["tokens"] != "7 of 10" && l.State["tokens"] != "8 of 10" {
			t.Errorf("token bucket state: %v", l.State)
		}
		if l.Algorithm == "FixedWindow" && (l.State["count"] != "3" || l.State["remaining"] != "7") {
			t.Errorf("fixed window state: %v", l.State)
		}
	}
	if !algos["TokenBucket"] || !algos["FixedWindow"] {
		t.Errorf("limiter algorithms: %v", algos)
	}
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Queues) != 1 || rep.Queues[0].Name != "jobs" || rep.Queues[0].Ready != st.Ready || rep.Queues[0].Dead != st.Dead ||
		rep.Queues[0].Ready+rep.Queues[0].InFlight+rep.Queues[0].Dead != 3 || len(rep.Queues[0].DeadLetters) != int(st.Dead) {
		t.Errorf("queues: %+v, stats %+v", rep.Queues, st)
	}
	if len(rep.Schedulers) != 1 || rep.Schedulers[0].Name != "jobs" || rep.Schedulers[0].Count != 1 ||
		rep.Schedulers[0].Schedules[0].ID != "nightly" || !strings.HasSuffix(rep.Schedulers[0].Schedules[0].Next, "T00:00:00Z") {
		t.Errorf("schedulers: %+v", rep.Schedulers)
	}
	if len(rep.Boards) != 1 || rep.Boards[0].Count != 3 || len(rep.Boards[0].Top) != 3 || rep.Boards[0].Top[0].Member != "cid" {
		t.Errorf("boards: %+v", rep.Boards)
	}
	if len(rep.Sessions) != 2 || len(rep.Sessions[0].Key) != 32 || time.Until(rep.Sessions[0].ExpiresAt) <= 0 {
		t.Errorf("sessions: %+v", rep.Sessions)
	}
	checkNewer(t, &rep, ns)
	// Stored results are never in the output, nor whole owner tokens.
	for _, secret := range []string{"receipt-123", "declined", ns.writer, ns.poolTokens[0], ns.readers[0]} {
		if bytes.Contains(out.Bytes(), []byte(secret)) {
			t.Errorf("the JSON output shows %q", secret)
		}
	}

	// Bounded: -max 2 stops the scan.
	out.Reset()
	if err := inspectMain(context.Background(), url, append([]string{"-json", "-prefix", "insp", "-max", "2"}, extra...), &out); err != nil {
		t.Fatal(err)
	}
	rep = inspectReport{}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Scanned != 2 || rep.Truncated == "" {
		t.Errorf("-max 2: scanned %d, truncated %q, %v", rep.Scanned, rep.Truncated, err)
	}

	// Bounded: -n 1 shows one of each, and counts them all.
	out.Reset()
	if err := inspectMain(context.Background(), url, append([]string{"-json", "-prefix", "insp", "-n", "1"}, extra...), &out); err != nil {
		t.Fatal(err)
	}
	rep = inspectReport{}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Semaphores) != 1 || rep.Semaphores[0].Name != "plain" || len(rep.RWLocks) != 1 || rep.RWLocks[0].Name != "doc" ||
		rep.RWLocks[0].Readers != 2 || len(rep.RWLocks[0].ReaderLeases) != 1 ||
		len(rep.Concurrency) != 1 || rep.Concurrency[0].InFlight != 3 || fmt.Sprint(rep.Concurrency[0].Top) != "[{user42 2}]" ||
		len(rep.Idempotency) != 1 || rep.Idempotency[0].Keys != 3 || len(rep.Idempotency[0].Shown) != 1 ||
		len(rep.Caches) != 1 || rep.Caches[0].Entries != 4 || len(rep.Caches[0].Shown) != 1 || rep.Caches[0].Shown[0].Key != "p1" {
		t.Errorf("-n 1: %s", out.String())
	}
	if err := inspectMain(context.Background(), url, append([]string{"-prefix", "insp", "-n", "0"}, extra...), &out); err == nil {
		t.Error("-n 0: want an error")
	}

	// Text output.
	out.Reset()
	if err := inspectMain(context.Background(), url, append([]string{"-prefix", "insp", "-limiter", "user42", "-sessions", "web", "-user", "alice"}, extra...), &out); err != nil {
		t.Fatal(err)
	}
	h := fmt.Sprintf("%x", sha256.Sum256([]byte("body-1")))
	for _, want := range []string{"locks held:", "limiter api (TokenBucket", "queue jobs:", "board scores: 3 members", "sessions:", "should be none: insp:mine:{x}",
		"semaphore plain: 1 held, permits from the clients' options (none stored), 0 waiting\n  held by " + suffixOf(ns.plainToken) + "  lease ",
		"semaphore pool: 2 held, 2 permits (stored by SetPermits), 1 waiting\n",
		"  waiting #1 ...",
		"concurrency api: 3 in flight over 2 keys\n  user42  2 in flight\n  user7  1 in flight\n",
		"rwlock doc: 2 readers, no writer, a writer waits (...",
		fmt.Sprintf("fence %d\n  reader ...", ns.readerFence),
		fmt.Sprintf("rwlock doc2: 0 readers, writer %s ttl ", suffixOf(ns.writer)),
		"idempotency pay: 3 keys\n",
		"  order-1  completed, result 11b, retention ",
		fmt.Sprintf("fingerprint ...%s  fence %d\n", h[len(h)-8:], ns.order1Fence),
		"  order-3  completed with error, result 8b, retention ",
		"  order:2  in progress, holder ...",
		fmt.Sprintf("0 waiting  fingerprint none  fence %d\n", ns.order2Fence),
		"cache products: 4 entries, 1 load lease, 1 tag invalidated\n  tag sale  invalidated 20",
		"  entry p:4  no entry, load lease held (ttl ",
		"  entry p1  ttl ", "(payload 7b), tags sale,shoes, invalidated by a tag\n",
		"(payload 7b), tags sale\n", "(payload 7b)\n  entry p5  ttl ", "b), deflated\n",
		"election cron: leader worker-1 (token ...",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q", want)
		}
	}
	for _, secret := range []string{"receipt-123", "declined", ns.writer, ns.poolTokens[0], ns.readers[0]} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the text output shows %q", secret)
		}
	}
	t.Log("\n" + out.String())

	// A paused queue says so, with the age of its oldest ready message.
	if _, err := q.Pause(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = q.Resume(context.Background()) }()
	time.Sleep(5 * time.Millisecond)
	out.Reset()
	if err := inspectMain(context.Background(), url, append([]string{"-json", "-prefix", "insp"}, extra...), &out); err != nil {
		t.Fatal(err)
	}
	var paused inspectReport
	if err := json.Unmarshal(out.Bytes(), &paused); err != nil {
		t.Fatal(err)
	}
	if len(paused.Queues) != 1 || !paused.Queues[0].Paused {
		t.Errorf("paused queue: %+v", paused.Queues)
	} else if qi := paused.Queues[0]; qi.Ready > 0 {
		if d, err := time.ParseDuration(qi.OldestReady); err != nil || d < 5*time.Millisecond {
			t.Errorf("oldest ready of %d ready: %q (%v)", qi.Ready, qi.OldestReady, err)
		}
	}
}

func TestInspectStandalone(t *testing.T) {
	t.Parallel()
	srv, rdb := startProc(t)
	q := fillPatterns(t, rdb)
	st := fillNewer(t, rdb)
	checkInspect(t, "redis://"+srv.Addr, q, st)
	// SCAN, never KEYS.
	stats, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stats, "cmdstat_keys:") || !strings.Contains(stats, "cmdstat_scan:") {
		t.Errorf("inspect must use SCAN and not KEYS:\n%s", stats)
	}
}

func TestInspectCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := startCluster(t)
	crdb, err := cl.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crdb.Close() })
	q := fillPatterns(t, crdb)
	st := fillNewer(t, crdb)
	checkInspect(t, "redis://"+strings.Join(cl.Addrs(), ","), q, st, "-cluster")
}
