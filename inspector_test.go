package patterns

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// within reports whether 0 < d <= max.
func within(d, max time.Duration) bool { return d > 0 && d <= max }

// TestInspectorRateLimits: for every algorithm, the state the Inspector
// decodes from a limit's key is what the limiter reports (Peek), after
// three events of ten, and for a key whose id needs escaping.
func TestInspectorRateLimits(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		in := c.Inspector()
		// A day: nothing refills nor rolls over while the test runs.
		lim := Limit{Rate: 10, Period: 24 * time.Hour, Burst: 10}
		const key = "user{42}:%x"
		for _, algo := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA} {
			l, err := c.Limiter("api:"+algo.String(), &LimiterOptions{Algorithm: algo})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.AllowN(ctx, key, 3, lim); err != nil {
				t.Fatal(err)
			}
		}
		infos, err := in.RateLimits(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[Algorithm]bool{}
		for _, li := range infos {
			seen[li.Algorithm] = true
			l, _ := c.Limiter(li.Limiter, &LimiterOptions{Algorithm: li.Algorithm})
			// A Peek of more than is left is denied, and reports the state
			// as it is.
			res, err := l.Peek(ctx, key, 8, lim)
			if err != nil {
				t.Fatal(err)
			}
			if li.Limiter != "api:"+li.Algorithm.String() || li.Limit != lim || li.Used != 3 || li.Remaining != 7 ||
				res.Allowed || li.Remaining != res.Remaining || !within(li.TTL, 48*time.Hour) {
				t.Errorf("%s: %+v; Peek %+v", li.Algorithm, li, res)
			}
			// The reset (a day for the windows, within the window for the
			// fixed one; 3 tenths of a day for the buckets): the limiter's,
			// give or take a second.
			if d := li.ResetAfter - res.ResetAfter; d < -time.Second || d > time.Second || li.ResetAfter <= 0 {
				t.Errorf("%s: reset after %v, the limiter says %v", li.Algorithm, li.ResetAfter, res.ResetAfter)
			}
			if !strings.Contains(li.RedisKey, "{user%7B42%7D:%25x}") {
				t.Errorf("%s: key %q, want the id escaped by the key builder", li.Algorithm, li.RedisKey)
			}
		}
		if len(infos) != 5 || len(seen) != 5 {
			t.Errorf("%d limits, algorithms %v; want the 5", len(infos), seen)
		}
		if infos, err := in.RateLimits(ctx, "nobody"); err != nil || len(infos) != 0 {
			t.Errorf("no state: %+v %v", infos, err)
		}
	})
}

// TestInspectorPatterns: Scan finds each pattern's objects by the names the
// caller gave (escaped ids included), and each view decodes the state the
// pattern left: a lock, a semaphore, a concurrency limiter, a read-write
// lock, an election, a queue, a board, a cache, an idempotency store,
// sessions and a stream topic.
func TestInspectorPatterns(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := newClient(t, rdb, func(k string) bool { return strings.Contains(k, ":lb:") })
		in := c.Inspector()
		fatal := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}

		lock, err := c.Obtain(ctx, "inv{1}", time.Minute, nil)
		fatal("obtain", err)
		defer lock.Release(ctx)
		sem, err := c.Semaphore("pool:a", &SemaphoreOptions{Permits: 3, Lease: time.Minute})
		fatal("semaphore", err)
		var permits []string
		for range 2 {
			p, err := sem.TryAcquire(ctx)
			fatal("acquire", err)
			defer p.Release(ctx)
			permits = append(permits, tokenTail(p.Token()))
		}
		cl, err := c.ConcurrencyLimiter("api", &ConcurrencyLimiterOptions{Permits: 5})
		fatal("concurrency", err)
		cp, err := cl.Acquire(ctx, "user7")
		fatal("concurrency acquire", err)
		defer cp.Release(ctx)
		rw, err := c.RWLock("doc", nil)
		fatal("rwlock", err)
		rl, err := rw.RLock(ctx)
		fatal("rlock", err)
		defer rl.Release(ctx)

		q, err := c.Queue("jobs", &QueueOptions{MaxDeliveries: 1, Backoff: func(int) time.Duration { return time.Millisecond }})
		fatal("queue", err)
		for _, b := range []string{"a", "b", "c"} {
			_, _, err := q.Enqueue(ctx, []byte(b), nil)
			fatal("enqueue", err)
		}
		m, _, err := q.TryDequeue(ctx)
		fatal("dequeue", err)
		fatal("nack", m.Nack(ctx))
		b, err := c.Board("scores", nil)
		fatal("board", err)
		for i, who := range []string{"ann", "bob"} {
			_, err := b.Submit(ctx, who, float64(i))
			fatal("submit", err)
		}
		cache, err := NewCache[string](c, "products", nil)
		fatal("cache", err)
		fatal("cache set", cache.Set(ctx, "p:1", "shoe", &CacheSetOptions{TTL: time.Minute, Tags: []string{"sale"}}))
		fatal("invalidate", cache.InvalidateTags(ctx, "sale"))
		fatal("cache set", cache.Set(ctx, "p2", "hat", &CacheSetOptions{TTL: time.Minute, Tags: []string{"sale"}}))
		idem, err := c.Idempotency("pay", nil)
		fatal("idempotency", err)
		res, err := idem.Do(ctx, "order:1", "body", func(context.Context, IdempotencyLease) ([]byte, error) { return []byte("receipt"), nil })
		fatal("do", err)
		sess, err := c.Sessions("web", nil)
		fatal("sessions", err)
		_, err = sess.Create(ctx, "alice", map[string]string{"n": "1"})
		fatal("session", err)
		topic, err := NewStreamTopic[string](c, "events", nil)
		fatal("topic", err)
		_, err = topic.Group(ctx, "mailer", "w1", nil)
		fatal("group", err)
		for _, e := range []string{"x", "y"} {
			_, err := topic.Publish(ctx, e)
			fatal("publish", err)
		}

		ks, err := in.Scan(ctx, nil)
		fatal("scan", err)
		for what, got := range map[string][]string{
			"locks": ks.Locks, "semaphores": ks.Semaphores, "rwlocks": ks.RWLocks, "queues": ks.Queues,
			"boards": ks.Boards, "streams": ks.Streams,
		} {
			want := map[string]string{"locks": "inv{1}", "semaphores": "pool:a", "rwlocks": "doc", "queues": "jobs", "boards": "scores", "streams": "events"}[what]
			if !slices.Equal(got, []string{want}) {
				t.Errorf("scan %s: %q, want [%s]", what, got, want)
			}
		}
		if fmt.Sprint(ks.Concurrency) != "[{api user7}]" || fmt.Sprint(ks.Idempotency) != "[{pay order:1}]" ||
			len(ks.Caches) != 1 || ks.Caches[0].Name != "products" || fmt.Sprint(ks.Caches[0].Entries) != "[p2 p:1]" {
			t.Errorf("scan: concurrency %v, idempotency %v, caches %+v", ks.Concurrency, ks.Idempotency, ks.Caches)
		}
		pats := map[string]PatternStats{}
		for _, p := range ks.Patterns {
			pats[p.Pattern] = p
		}
		for _, p := range []string{"lock", "sem", "conc", "rw", "q", "lb", "cache", "idem", "sess", "st"} {
			if pats[p].Keys == 0 || pats[p].Memory == 0 || (pats[p].NoTTL > 0) != (p == "lb") {
				t.Errorf("pattern %s: %+v", p, pats[p])
			}
		}
		if ks.Truncated != "" || ks.Scanned == 0 {
			t.Errorf("scanned %d, truncated %q", ks.Scanned, ks.Truncated)
		}
		if small, err := in.Scan(ctx, &ScanOptions{MaxKeys: 2, Sample: -1}); err != nil || small.Scanned != 2 || small.Truncated == "" {
			t.Errorf("MaxKeys 2: %+v %v", small, err)
		}

		li, err := in.Lock(ctx, "inv{1}")
		fatal("lock", err)
		if !li.Held || li.Token != tokenTail(lock.Token()) || !within(li.TTL, time.Minute) || li.Fence != lock.Fence() {
			t.Errorf("lock: %+v; token %s, fence %d", li, lock.Token(), lock.Fence())
		}
		if li, err := in.Lock(ctx, "free"); err != nil || li.Held {
			t.Errorf("free lock: %+v %v", li, err)
		}
		si, err := in.Semaphore(ctx, "pool:a", 1)
		fatal("semaphore", err)
		if si.Held != 2 || len(si.Holders) != 1 || !slices.Contains(permits, si.Holders[0].Token) || !within(si.Holders[0].Left, time.Minute) || si.Permits != 0 {
			t.Errorf("semaphore: %+v, permits %v", si, permits)
		}
		ci, err := in.Concurrency(ctx, "api", "user7")
		fatal("concurrency", err)
		if ci.InFlight != 1 {
			t.Errorf("concurrency: %+v", ci)
		}
		ri, err := in.RWLock(ctx, "doc", 5)
		fatal("rwlock", err)
		if ri.Readers != 1 || len(ri.ReaderLeases) != 1 || ri.ReaderLeases[0].Token != tokenTail(rl.Token()) || ri.Writer != "" || ri.WriterWaiting || ri.Fence != rl.Fence() {
			t.Errorf("rwlock: %+v; reader %s fence %d", ri, rl.Token(), rl.Fence())
		}
		qi, err := in.Queue(ctx, "jobs", 5)
		fatal("queue", err)
		if qi.Ready != 2 || qi.InFlight != 0 || qi.Dead != 1 || !slices.Equal(qi.DeadLetters, []string{m.ID}) {
			t.Errorf("queue: %+v, dead %s", qi, m.ID)
		}
		msgs, err := in.QueueMessages(ctx, "jobs", QueueDead, 5)
		fatal("queue messages", err)
		if len(msgs) != 1 || msgs[0].ID != m.ID || string(msgs[0].Body) != string(m.Body) {
			t.Errorf("dead messages: %+v", msgs)
		}
		bi, err := in.Board(ctx, "scores", 1)
		fatal("board", err)
		if bi.Count != 2 || len(bi.Top) != 1 || bi.Top[0].Member != "bob" {
			t.Errorf("board: %+v", bi)
		}
		cinfo, err := in.Cache(ctx, "products", 5)
		fatal("cache", err)
		if cinfo.TagRecords != 1 || len(cinfo.Latest) != 1 || cinfo.Latest[0].Tag != "sale" {
			t.Errorf("cache: %+v", cinfo)
		}
		for key, invalidated := range map[string]bool{"p:1": true, "p2": false} {
			e, err := in.CacheEntry(ctx, "products", key)
			fatal("cache entry", err)
			// The format byte and a JSON string of 4 or 5 bytes, behind a header.
			if !e.Entry || e.Invalidated != invalidated || fmt.Sprint(e.Tags) != "[sale]" || e.PayloadBytes != int64(len(`"hat"`)+1) && e.PayloadBytes != int64(len(`"shoe"`)+1) ||
				e.Bytes <= e.PayloadBytes || !within(e.TTL, time.Minute) || e.Lease || e.Negative || e.Unrecognized {
				t.Errorf("cache entry %s: %+v, want invalidated %v", key, e, invalidated)
			}
		}
		ii, err := in.Idempotency(ctx, "pay", "order:1")
		fatal("idempotency", err)
		h := fmt.Sprintf("%x", sha256.Sum256([]byte("body")))
		if ii.State != IdempotencyCompleted || ii.ResultBytes != int64(len("receipt")) || ii.Fence != res.Fence || ii.Fingerprint != "..."+h[len(h)-8:] || ii.TTL <= 0 {
			t.Errorf("idempotency: %+v, fence %d", ii, res.Fence)
		}
		ss, err := in.Sessions(ctx, "web", "alice")
		fatal("sessions", err)
		if len(ss) != 1 || ss[0].Expires.Before(time.Now()) {
			t.Errorf("sessions: %+v", ss)
		}
		sti, err := in.Stream(ctx, "events")
		fatal("stream", err)
		if sti.Length != 2 || len(sti.Groups) != 1 || sti.Groups[0].Name != "mailer" || sti.Groups[0].Lag != 2 {
			t.Errorf("stream: %+v", sti)
		}
	})
}

// TestInspectorElection: the leader's identity, token and fence, as Elect
// holds them.
func TestInspectorElection(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leading := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.Elect(ctx, "cron", "worker-1", 30*time.Second, func(ctx context.Context) error {
			close(leading)
			<-ctx.Done()
			return nil
		})
	}()
	select {
	case <-leading:
	case err := <-done:
		t.Fatalf("elect: %v", err)
	}
	ei, err := c.Inspector().Election(ctx, "cron")
	cancel()
	<-done
	if err != nil || ei.Leader != "worker-1" || !strings.HasPrefix(ei.Token, "...") || len(ei.Token) != 9 || !within(ei.TTL, 30*time.Second) || ei.Fence <= 0 {
		t.Errorf("election: %+v %v", ei, err)
	}
}

// TestInspectorDecoders: keys and ids the Inspector parses, at their edges.
func TestInspectorDecoders(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{}) // never dialled; closed for the leak check
	defer rdb.Close()
	c, err := New(rdb, &Options{Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	in := c.Inspector()
	for _, id := range []string{"a", "a{b}", "%7B", "x:y", "\x00\n", "100%"} {
		k := c.key("lock", id, "fence")
		if pat, got, rest, ok := in.ParseKey(k); !ok || pat != "lock" || got != id || rest != "fence" {
			t.Errorf("ParseKey(%q) = %q %q %q %v, want id %q", k, pat, got, rest, ok, id)
		}
	}
	for _, k := range []string{"q:lock:{a}", "p:lock:a", "p:lock:{a", "p:lock:{a}x", "p"} {
		if _, _, _, ok := in.ParseKey(k); ok {
			t.Errorf("ParseKey(%q): ok, want not of the layout", k)
		}
	}
	for id, want := range map[string]string{
		"3:pay:order-1": "pay|order-1",
		"3:a:b:k":       "a:b|k", // the length tells the name from the key
		"3:pay:a:b":     "pay|a:b",
		"0::k":          "!",
		"x:pay:k":       "!",
		"10:pay:k":      "!",
		"2:pay:k":       "!",
	} {
		store, key, ok := splitIdemID(id)
		got := store + "|" + key
		if !ok {
			got = "!"
		}
		if got != want {
			t.Errorf("splitIdemID(%q) = %q, want %q", id, got, want)
		}
	}
}

// TestInspectorReadsOnly: the Inspector's calls change nothing on the
// server (its count of changes since the last save stays put), on a server
// of the test's own where nothing expires meanwhile.
func TestInspectorReadsOnly(t *testing.T) {
	rdb := ownRedis(t)
	c := newClient(t, rdb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := c.Inspector()
	fatal := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Obtain(ctx, "l", time.Hour, nil)
	fatal(err)
	for _, algo := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA} {
		l, err := c.Limiter(algo.String(), &LimiterOptions{Algorithm: algo})
		fatal(err)
		_, err = l.Allow(ctx, "k", PerHour(5))
		fatal(err)
	}
	sem, err := c.Semaphore("s", &SemaphoreOptions{Permits: 2, Lease: time.Hour, Fair: true})
	fatal(err)
	_, err = sem.TryAcquire(ctx)
	fatal(err)
	q, err := c.Queue("q", nil)
	fatal(err)
	_, _, err = q.Enqueue(ctx, []byte("m"), nil)
	fatal(err)
	sess, err := c.Sessions("web", nil)
	fatal(err)
	_, err = sess.Create(ctx, "u", nil)
	fatal(err)
	cache, err := NewCache[int](c, "c", nil)
	fatal(err)
	fatal(cache.Set(ctx, "k", 1, &CacheSetOptions{TTL: time.Hour, Tags: []string{"t"}}))

	changes := func() string {
		t.Helper()
		info, err := rdb.Info(ctx, "persistence").Result()
		fatal(err)
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "rdb_changes_since_last_save:"); ok {
				return v
			}
		}
		t.Fatal("no rdb_changes_since_last_save in INFO")
		return ""
	}
	before := changes()
	ks, err := in.Scan(ctx, nil)
	fatal(err)
	if len(ks.Locks) != 1 || len(ks.Semaphores) != 1 || len(ks.Queues) != 1 || len(ks.Caches) != 1 || len(ks.RateLimits) != 1 {
		t.Errorf("scan: %+v", ks)
	}
	for _, read := range []func() error{
		func() error { _, err := in.Lock(ctx, "l"); return err },
		func() error {
			ls, err := in.RateLimits(ctx, "k")
			if err == nil && len(ls) != 5 {
				err = fmt.Errorf("%d limits, want 5", len(ls))
			}
			return err
		},
		func() error { _, err := in.Semaphore(ctx, "s", 5); return err },
		func() error { _, err := in.Queue(ctx, "q", 5); return err },
		func() error { _, err := in.QueueMessages(ctx, "q", QueueReady, 5); return err },
		func() error { _, err := in.Sessions(ctx, "web", "u"); return err },
		func() error { _, err := in.Cache(ctx, "c", 5); return err },
		func() error { _, err := in.CacheEntry(ctx, "c", "k"); return err },
		func() error { _, err := in.RWLock(ctx, "none", 5); return err },
		func() error { _, err := in.Idempotency(ctx, "none", "k"); return err },
		func() error { _, err := in.Election(ctx, "none"); return err },
		func() error { _, err := in.Stream(ctx, "none"); return err },
		func() error { _, err := in.Board(ctx, "none", 5); return err },
		func() error { _, err := in.Concurrency(ctx, "none", "k"); return err },
	} {
		fatal(read())
	}
	if after := changes(); after != before {
		t.Errorf("changes since the last save: %s before the Inspector's reads, %s after", before, after)
	}
}
