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
		idem, err := c.Idempotency("fault", &IdempotencyOptions{Lease: 5 * time.Second, Retention: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var n atomic.Int64
		return []faultOp{{name: "idempotency", run: func(ctx context.Context) error {
			// A key per run (a lease whose reply was lost blocks its key),
			// run and then replayed.
			key := "k" + strconv.FormatInt(n.Add(1), 10)
			fn := func(context.Context, IdempotencyLease) ([]byte, error) { return []byte("v"), nil }
			if _, err := idem.Do(ctx, key, "fp", fn); err != nil {
				return idemFaultErr(err)
			}
			res, err := idem.Do(ctx, key, "fp", fn)
			if err == nil && string(res.Value) != "v" {
				return fmt.Errorf("%w: replay %+v", ErrUnexpectedReply, res)
			}
			if err == nil && !res.Replay {
				// Run again: its record is gone, as after a restart.
				return fmt.Errorf("%w: idempotency record of %s", errStateLost, key)
			}
			return idemFaultErr(err)
		}}}
	})
	moreOnceOps = append(moreOnceOps, func(t *testing.T, c, dc *Client, direct *redis.Client) []onceOp {
		idem, err := c.Idempotency("once", &IdempotencyOptions{Lease: 5 * time.Second, Retention: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		counter := c.prefix + ":idem-effect"
		var n atomic.Int64
		// Each run: a new key whose fn counts in Redis, then the same key
		// again (a replay: fn must not run). A begin retried by go-redis
		// would find its own lease and fail, never run fn twice.
		return []onceOp{{name: "idempotency Do", run: func(ctx context.Context) error {
			key := "k" + strconv.FormatInt(n.Add(1), 10)
			fn := func(ctx context.Context, _ IdempotencyLease) ([]byte, error) {
				ctx = context.WithoutCancel(ctx)
				err := direct.Incr(ctx, counter).Err()
				direct.Expire(ctx, counter, time.Hour)
				return nil, err
			}
			if _, err := idem.Do(ctx, key, "", fn); err != nil {
				return err
			}
			_, err := idem.Do(ctx, key, "", fn)
			return err
		}, applied: func(ctx context.Context) int64 {
			v, _ := direct.Get(ctx, counter).Int64()
			return v
		}, perRun: 1}}
	})
}

// idemFaultErr files the idempotency errors that report a state a fault
// can cause (a restart lost the record under a running fn: the lease is
// lost) with the battery's sentinels, through ErrNotHeld.
func idemFaultErr(err error) error {
	if errors.Is(err, ErrIdempotencyLeaseLost) || errors.Is(err, ErrIdempotencyInProgress) {
		return fmt.Errorf("%w: %w", ErrNotHeld, err)
	}
	return err
}

func idemFn(calls *atomic.Int64, val string) func(context.Context, IdempotencyLease) ([]byte, error) {
	return func(context.Context, IdempotencyLease) ([]byte, error) {
		calls.Add(1)
		return []byte(val), nil
	}
}

func TestIdempotencyDo(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		idem, err := c.Idempotency("orders", &IdempotencyOptions{Lease: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int64
		res, err := idem.Do(ctx, "k1", "body-a", idemFn(&calls, "created 1"))
		if err != nil || res.Replay || string(res.Value) != "created 1" || res.Fence < 1 {
			t.Fatalf("first: %+v %v", res, err)
		}
		res2, err := idem.Do(ctx, "k1", "body-a", idemFn(&calls, "created 2"))
		if err != nil || !res2.Replay || string(res2.Value) != "created 1" || res2.Fence != 0 {
			t.Fatalf("replay: %+v %v", res2, err)
		}
		if _, err := idem.Do(ctx, "k1", "body-b", idemFn(&calls, "x")); !errors.Is(err, ErrIdempotencyMismatch) {
			t.Fatalf("other fingerprint: %v", err)
		}
		if calls.Load() != 1 {
			t.Fatalf("fn ran %d times", calls.Load())
		}
		// Another name, same key: another operation.
		other, _ := c.Idempotency("refunds", nil)
		if res, err := other.Do(ctx, "k1", "body-a", idemFn(&calls, "r")); err != nil || res.Replay {
			t.Fatalf("other name: %+v %v", res, err)
		}
		// Fences rise across keys' lives: a second run of one key.
		res3, _ := idem.Do(ctx, "k2", "", idemFn(&calls, "a"))
		idem2, _ := c.Idempotency("orders", &IdempotencyOptions{Retention: time.Millisecond})
		res4, _ := idem2.Do(ctx, "k3", "", idemFn(&calls, "a"))
		if !(res3.Fence >= 1 && res4.Fence >= 1) {
			t.Fatalf("fences %d %d", res3.Fence, res4.Fence)
		}
	})
}

func TestIdempotencyErrors(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		final := errors.New("card declined")
		idem, err := c.Idempotency("pay", &IdempotencyOptions{StoreError: func(err error) bool { return errors.Is(err, final) }})
		if err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int64
		transient := errors.New("timeout upstream")
		for i := 0; i < 2; i++ {
			_, err := idem.Do(ctx, "t", "", func(context.Context, IdempotencyLease) ([]byte, error) {
				calls.Add(1)
				return nil, transient
			})
			if !errors.Is(err, transient) {
				t.Fatalf("transient: %v", err)
			}
		}
		if calls.Load() != 2 {
			t.Fatalf("a transient error must release the key: fn ran %d times", calls.Load())
		}
		for i := 0; i < 2; i++ {
			res, err := idem.Do(ctx, "f", "", func(context.Context, IdempotencyLease) ([]byte, error) {
				calls.Add(1)
				return nil, final
			})
			if i == 0 && !errors.Is(err, final) || i == 1 && (!errors.Is(err, ErrIdempotencyStoredError) || !res.Replay || !strings.Contains(err.Error(), "card declined")) {
				t.Fatalf("final error, call %d: %+v %v", i, res, err)
			}
		}
		if calls.Load() != 3 {
			t.Fatalf("a final error is stored: fn ran %d times", calls.Load())
		}
		// A panic releases the key and reaches the caller.
		func() {
			defer func() {
				if p := recover(); p != "boom" {
					t.Fatalf("recovered %v", p)
				}
			}()
			_, _ = idem.Do(ctx, "p", "", func(context.Context, IdempotencyLease) ([]byte, error) { panic("boom") })
		}()
		if res, err := idem.Do(ctx, "p", "", idemFn(&calls, "ok")); err != nil || res.Replay {
			t.Fatalf("after panic: %+v %v", res, err)
		}
	})
}

func TestIdempotencyInvalid(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		for _, opt := range []*IdempotencyOptions{{Lease: -time.Second}, {Retention: -1}, {Lease: time.Microsecond}} {
			if _, err := c.Idempotency("x", opt); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("%+v: %v", opt, err)
			}
		}
		for _, name := range []string{"", strings.Repeat("n", MaxIDLen+1)} {
			if _, err := c.Idempotency(name, nil); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("name of %d bytes: %v", len(name), err)
			}
		}
		idem, _ := c.Idempotency("x", nil)
		var calls atomic.Int64
		for _, key := range []string{"", strings.Repeat("k", MaxIDLen+1)} {
			if _, err := idem.Do(ctx, key, "", idemFn(&calls, "v")); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("key of %d bytes: %v", len(key), err)
			}
		}
		if _, err := idem.Do(ctx, "k", "", nil); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("nil fn: %v", err)
		}
		if calls.Load() != 0 {
			t.Errorf("fn ran on bad input")
		}
		if n := countKeys(t, rdb, c.prefix); n != 0 {
			t.Errorf("bad input wrote %d keys", n)
		}
	})
}

func TestIdempotencyInProgressAndWait(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		nowait, _ := c.Idempotency("w", nil)
		wait, _ := c.Idempotency("w", &IdempotencyOptions{Wait: true})
		release := holdIdempotency(t, ctx, nowait, "k", []byte("done"), nil)
		var calls atomic.Int64
		if _, err := nowait.Do(ctx, "k", "", idemFn(&calls, "x")); !errors.Is(err, ErrIdempotencyInProgress) {
			t.Fatalf("while running: %v", err)
		}
		// A waiter whose context ends leaves with it.
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := wait.Do(cctx, "k", "", idemFn(&calls, "x"))
		cancel()
		if !errors.Is(err, ErrIdempotencyInProgress) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiter past its deadline: %v", err)
		}
		// Waiters get the result once it lands.
		const waiters = 8
		var wg sync.WaitGroup
		errs := make(chan error, waiters)
		for i := 0; i < waiters; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				res, err := wait.Do(wctx, "k", "", idemFn(&calls, "x"))
				if err == nil && (!res.Replay || string(res.Value) != "done") {
					err = fmt.Errorf("waiter got %+v", res)
				}
				errs <- err
			}()
		}
		time.Sleep(100 * time.Millisecond) // let some block (not required)
		if err := release(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if calls.Load() != 0 {
			t.Errorf("fn ran %d times while the holder ran", calls.Load())
		}
	})
}

func TestIdempotencyLeaseExpiry(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		idem, _ := c.Idempotency("lease", &IdempotencyOptions{Lease: 300 * time.Millisecond})
		// The second caller's lease is long: only the first must run out.
		idemLong, _ := c.Idempotency("lease", &IdempotencyOptions{Lease: time.Minute})
		var first IdempotencyLease
		var second IdempotencyResult
		res, err := idem.Do(ctx, "k", "", func(ctx context.Context, l IdempotencyLease) ([]byte, error) {
			first = l
			// Outlast the lease; meanwhile another caller takes over.
			deadline := time.Now().Add(10 * time.Second)
			for {
				var err error
				second, err = idemLong.Do(ctx, "k", "", func(context.Context, IdempotencyLease) ([]byte, error) { return []byte("second"), nil })
				if err == nil {
					break
				}
				if !errors.Is(err, ErrIdempotencyInProgress) || time.Now().After(deadline) {
					return nil, err
				}
				time.Sleep(50 * time.Millisecond)
			}
			return []byte("first"), nil
		})
		if !errors.Is(err, ErrIdempotencyLeaseLost) || string(res.Value) != "first" {
			t.Fatalf("holder past its lease: %+v %v", res, err)
		}
		if second.Replay || second.Fence <= first.Fence {
			t.Fatalf("second run %+v, first fence %d", second, first.Fence)
		}
		got, err := idem.Do(ctx, "k", "", nil2(t))
		if err != nil || string(got.Value) != "second" {
			t.Fatalf("stored: %+v %v", got, err)
		}
	})
}

// nil2 is an fn that must not run.
func nil2(t *testing.T) func(context.Context, IdempotencyLease) ([]byte, error) {
	return func(context.Context, IdempotencyLease) ([]byte, error) {
		t.Error("fn ran on a replay")
		return nil, nil
	}
}

func TestIdempotencyTyped(t *testing.T) {
	c := newClient(t, testRedis(t))
	ctx := context.Background()
	idem, _ := c.Idempotency("typed", &IdempotencyOptions{Codec: Msgpack})
	type receipt struct {
		ID    int
		Total string
	}
	for i := 0; i < 2; i++ {
		v, res, err := IdempotencyDo(ctx, idem, "k", "", func(context.Context, IdempotencyLease) (receipt, error) {
			return receipt{ID: 7 + i, Total: "9.99"}, nil
		})
		if err != nil || v != (receipt{7, "9.99"}) || res.Replay != (i == 1) {
			t.Fatalf("call %d: %+v %+v %v", i, v, res, err)
		}
	}
}

// TestIdempotencyQueueConsumer: at-least-once delivery plus Do keyed by the
// message id is effectively once: a consumer that dies after the effect but
// before the ack has its message delivered again, and the replay skips the
// effect.
func TestIdempotencyQueueConsumer(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		q, err := c.Queue("jobs", &QueueOptions{Visibility: 200 * time.Millisecond, Retention: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		idem, _ := c.Idempotency("jobs", &IdempotencyOptions{Lease: 5 * time.Second, Retention: time.Minute})
		const n = 20
		for i := 0; i < n; i++ {
			if _, _, err := q.Enqueue(ctx, []byte(strconv.Itoa(i)), &EnqueueOptions{ID: "m" + strconv.Itoa(i)}); err != nil {
				t.Fatal(err)
			}
		}
		effects := c.prefix + ":effects"
		t.Cleanup(func() { rdb.Del(context.Background(), effects) })
		var deliveries atomic.Int64
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for acked := 0; acked < n; {
			m, err := q.Dequeue(dctx)
			if err != nil {
				t.Fatal(err)
			}
			deliveries.Add(1)
			_, err = idem.Do(ctx, m.ID, "", func(ctx context.Context, _ IdempotencyLease) ([]byte, error) {
				return nil, rdb.SAdd(ctx, effects, m.ID+"@"+strconv.Itoa(m.Deliveries)).Err()
			})
			if err != nil {
				t.Fatal(err)
			}
			// Every third message's consumer "crashes" before its ack on
			// the first delivery: the message comes back.
			if m.Deliveries == 1 && m.ID[len(m.ID)-1]%3 == 0 {
				continue
			}
			if err := m.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			acked++
		}
		got, _ := rdb.SCard(ctx, effects).Result()
		if got != n || deliveries.Load() <= n {
			t.Fatalf("%d effects for %d messages in %d deliveries", got, n, deliveries.Load())
		}
		rdb.Expire(ctx, effects, time.Minute)
	})
}

// FuzzIdempotencyKeys: for any name and key, all keys of an operation share
// one hash tag, and two different (name, key) pairs never share a record;
// a key the middleware accepts is printable ASCII within the cap.
func FuzzIdempotencyKeys(f *testing.F) {
	for _, s := range []string{"a", "1:a", "{x}", "a:b", "\x00", "é", `"q"`, `"a\"b"`} {
		f.Add(s, s+"x", "y")
	}
	c := &Client{prefix: DefaultPrefix}
	f.Fuzz(func(t *testing.T, name, key, other string) {
		if k, ok := parseIdempotencyKey([]string{key}); ok {
			if k == "" || len(k) > MaxIdempotencyKeyLen {
				t.Fatalf("accepted %q as %q", key, k)
			}
			for i := 0; i < len(k); i++ {
				if k[i] < 0x20 || k[i] > 0x7e {
					t.Fatalf("accepted %q with byte %#x", key, k[i])
				}
			}
		}
		a, err := (&Idempotency{c: c, name: name}).keys(key)
		if checkID("n", name) != nil || checkID("k", key) != nil {
			if err == nil && checkID("k", key) != nil {
				t.Fatalf("key %q accepted", key)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		tag := hashTag(a.rec)
		if hashTag(a.fence) != tag || hashTag(a.signal) != tag || !strings.HasSuffix(a.rec, "{"+tag+"}") {
			t.Fatalf("keys %+v do not share one tag", a)
		}
		if checkID("k", other) != nil {
			return
		}
		// The same bytes split differently between name and key.
		for _, pair := range [][2]string{{name + key[:0], other}, {name + ":" + key, other}, {other, key}} {
			if checkID("n", pair[0]) != nil || (pair[0] == name && pair[1] == key) {
				continue
			}
			b, err := (&Idempotency{c: c, name: pair[0]}).keys(pair[1])
			if err == nil && b.rec == a.rec {
				t.Fatalf("(%q,%q) and (%q,%q) share %q", name, key, pair[0], pair[1], a.rec)
			}
		}
	})
}

// TestIdempotencyWaitAfterRelease: when the holder fails (the key is
// released), one waiter takes the key over and runs fn, and the others get
// its result.
func TestIdempotencyWaitAfterRelease(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		wait, _ := c.Idempotency("r", &IdempotencyOptions{Wait: true})
		release := holdIdempotency(t, ctx, wait, "k", nil, errors.New("transient"))
		var calls atomic.Int64
		const waiters = 6
		results := make(chan IdempotencyResult, waiters)
		var wg sync.WaitGroup
		for i := 0; i < waiters; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				res, err := wait.Do(wctx, "k", "", idemFn(&calls, "second"))
				if err != nil {
					t.Error(err)
				}
				results <- res
			}()
		}
		time.Sleep(100 * time.Millisecond)
		if err := release(); err == nil {
			t.Fatal("holder's error lost")
		}
		wg.Wait()
		close(results)
		replays := 0
		for res := range results {
			if string(res.Value) != "second" {
				t.Errorf("waiter got %+v", res)
			}
			if res.Replay {
				replays++
			}
		}
		if calls.Load() != 1 || replays != waiters-1 {
			t.Errorf("fn ran %d times, %d replays of %d waiters", calls.Load(), replays, waiters)
		}
	})
}

// TestIdempotencyCallerGone: a caller whose context ends while fn runs
// still stores fn's result (fn's effect happened).
func TestIdempotencyCallerGone(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		idem, _ := c.Idempotency("gone", nil)
		ctx, cancel := context.WithCancel(context.Background())
		_, err := idem.Do(ctx, "k", "", func(ctx context.Context, _ IdempotencyLease) ([]byte, error) {
			cancel()
			return []byte("made"), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := idem.Do(context.Background(), "k", "", nil2(t))
		if err != nil || !res.Replay || string(res.Value) != "made" {
			t.Fatalf("replay: %+v %v", res, err)
		}
		// A typed replay of a stored value.
		v, res, err := IdempotencyDo(context.Background(), idem, "k", "", func(context.Context, IdempotencyLease) (string, error) {
			t.Error("fn ran on a replay")
			return "", nil
		})
		if err == nil || res.Replay != true || v != "" {
			// "made" is not JSON: the decode error is reported.
			t.Fatalf("typed replay of non-JSON: %q %+v %v", v, res, err)
		}
	})
}

// TestIdempotencyKeyTTLs: the TTLs the doc gives: the record has the lease
// while fn runs and the retention once stored, the fencing counter 7 days,
// and the signal list, pushed once per waiter counted, 10 seconds.
func TestIdempotencyKeyTTLs(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		idem, err := c.Idempotency("ttl", &IdempotencyOptions{Lease: 20 * time.Second, Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		k, _ := idem.keys("k")
		within := func(what, key string, lo, hi time.Duration) {
			t.Helper()
			d, err := rdb.PTTL(ctx, key).Result()
			if err != nil || d <= lo || d > hi {
				t.Errorf("%s %s: PTTL %v (%v), want in (%v, %v]", what, key, d, err, lo, hi)
			}
		}
		_, err = idem.Do(ctx, "k", "", func(context.Context, IdempotencyLease) ([]byte, error) {
			within("running record", k.rec, 10*time.Second, 20*time.Second)
			within("fencing counter", k.fence, fenceTTL-time.Hour, fenceTTL)
			// Two callers that will wait, counted by idem_begin.
			for j := 0; j < 2; j++ {
				v, err := scriptIdemBegin.run(ctx, c.scr, []string{k.rec, k.fence, k.signal}, "waiter", "", idem.leaseArg, fenceTTLArg, "1").Slice()
				if err != nil || len(v) != 2 || v[0] != "busy" {
					t.Errorf("waiter's begin: %v %v", v, err)
				}
			}
			return []byte("v"), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		within("stored record", k.rec, 50*time.Minute, time.Hour)
		within("fencing counter", k.fence, fenceTTL-time.Hour, fenceTTL)
		if n, err := rdb.LLen(ctx, k.signal).Result(); n != 2 || err != nil {
			t.Errorf("signal list: %d elements (%v), want one per waiter: 2", n, err)
		}
		within("signal list", k.signal, 0, idemSignalTTL)
	})
}

// blpopHook counts the BLPOPs that returned an element.
type blpopHook struct{ popped atomic.Int64 }

func (h *blpopHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *blpopHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil && cmd.Name() == "blpop" {
			h.popped.Add(1)
		}
		return err
	}
}
func (h *blpopHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestIdempotencyWaitWoken: a waiting caller is woken by the end of the
// holder's run (its BLPOP returns the element idem_end pushed), not by its
// 500 ms fallback. A waiter whose BLPOP ran out just before the push finds
// the result unwoken (rare): of three rounds one must be woken, while a lost
// wake-up fails them all.
func TestIdempotencyWaitWoken(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		hook := &blpopHook{}
		rdb.AddHook(hook)
		c := newClient(t, rdb)
		ctx := context.Background()
		wait, _ := c.Idempotency("woken", &IdempotencyOptions{Wait: true})
		for round := 0; round < 3 && hook.popped.Load() == 0; round++ {
			key := "k" + strconv.Itoa(round)
			k, _ := wait.keys(key)
			release := holdIdempotency(t, ctx, wait, key, []byte("done"), nil)
			waiter := make(chan error, 1)
			go func() {
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				res, err := wait.Do(wctx, key, "", nil2(t))
				if err == nil && (!res.Replay || string(res.Value) != "done") {
					err = fmt.Errorf("waiter got %+v", res)
				}
				waiter <- err
			}()
			// The waiter is counted in the record; let it reach its BLPOP.
			deadline := time.Now().Add(10 * time.Second)
			for rdb.HGet(ctx, k.rec, "w").Val() == "" {
				if time.Now().After(deadline) {
					t.Fatal("the waiter was not counted")
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			if err := release(); err != nil {
				t.Fatal(err)
			}
			if err := <-waiter; err != nil {
				t.Fatal(err)
			}
			t.Logf("round %d: %d BLPOPs woken", round, hook.popped.Load())
		}
		if hook.popped.Load() == 0 {
			t.Fatal("no waiter was woken by the signal list in 3 rounds: they only polled")
		}
	})
}

// holdIdempotency runs idem.Do(ctx, key) with an fn that returns (val, err)
// once release is called, and returns when fn has started; release returns
// Do's error.
func holdIdempotency(t *testing.T, ctx context.Context, idem *Idempotency, key string, val []byte, err error) (release func() error) {
	t.Helper()
	started, done := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		_, herr := idem.Do(ctx, key, "", func(context.Context, IdempotencyLease) ([]byte, error) {
			close(started)
			<-done
			return val, err
		})
		holder <- herr
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("holder did not start")
	}
	return func() error { close(done); return <-holder }
}
