package patterns

import (
	"context"
	"errors"
	"fmt"
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

// onceInCI skips a test that starts its own redis-server processes whatever
// PATTERNS_REDIS_MODE says in the second CI run of the root package
// (PATTERNS_REDIS_MODE=process), which would only repeat it.
func onceInCI(t *testing.T) {
	t.Helper()
	if os.Getenv(redisserver.EnvMode) == "process" {
		t.Skip("starts its own redis-server processes whatever the mode: runs once, in the run without PATTERNS_REDIS_MODE=process")
	}
	if testing.Short() {
		t.Skip("-short")
	}
}

// failoverRig is a deployment the battery fails over: rdb follows the
// failover, onNode says whether a key lives on the node that fails over, and
// failover triggers it and returns once the deployment has a new master.
type failoverRig struct {
	rdb      redis.UniversalClient
	onNode   func(key string) bool
	failover func(ctx context.Context) error
}

// failoverFigures are what one failover did to the patterns.
type failoverFigures struct {
	locksGranted, locksLost, lockErrs         int
	waitGranted, waitLost, waitNotReplicated  int
	limitAdmitted, limitBefore, limitDuring   map[Algorithm]int
	limitErrs                                 map[Algorithm]int
	cacheServed, cacheMissing, cacheStale     int
	cacheSetErrs, cacheEntries, cacheRewrites int
	failoverTook                              time.Duration
}

// idsOn returns n ids whose keys (built by key(id)) live on the failing node.
func idsOn(rig *failoverRig, n int, key func(id string) string) []string {
	var ids []string
	for i := 0; len(ids) < n; i++ {
		id := strconv.Itoa(i)
		if rig.onNode == nil || rig.onNode(key(id)) {
			ids = append(ids, id)
		}
	}
	return ids
}

// retrySettled runs f until it returns an error that is not a connection or
// routing error of the failover still settling, for up to 10 seconds.
func retrySettled(f func() error) error {
	var err error
	for try := 0; try < 100; try++ {
		if err = f(); err == nil || errors.Is(err, ErrNotHeld) || errors.Is(err, ErrInvalidArgument) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// runFailoverBattery grants locks (default and WAIT mode), hammers one limit
// per algorithm and rewrites cache entries while rig fails over, then counts
// what the new master lost.
func runFailoverBattery(t *testing.T, rig *failoverRig) failoverFigures {
	ctx := context.Background()
	c := newClient(t, rig.rdb)
	var fig failoverFigures
	const limit = 1000
	lim := Limit{Rate: limit, Period: 24 * time.Hour, Burst: limit}
	algos := []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA}
	fig.limitAdmitted, fig.limitBefore, fig.limitDuring, fig.limitErrs = map[Algorithm]int{}, map[Algorithm]int{}, map[Algorithm]int{}, map[Algorithm]int{}

	// Names on the failing node.
	lockIDs := idsOn(rig, 10000, func(id string) string { return c.key("lock", "a"+id) })
	waitIDs := idsOn(rig, 10000, func(id string) string { return c.key("lock", "w"+id) })
	cacheName := idsOn(rig, 1, func(id string) string { return c.key("cache", "c"+id, "e", "x") })[0]
	rlKey := idsOn(rig, 1, func(id string) string { return c.key("rl", "r"+id, "x") })[0]
	cache, err := NewCache[int](c, "c"+cacheName, &CacheOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const entries = 300
	fig.cacheEntries = entries
	for i := 0; i < entries; i++ {
		if err := cache.Set(ctx, strconv.Itoa(i), 1, nil); err != nil {
			t.Fatal(err)
		}
	}

	var phase atomic.Int32 // 0 before the failover, 1 during, 2 after
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var granted, waitGranted []*Lock
	// notRepl counts ErrNotReplicated when opt asks for replicas (nil: no
	// replicas asked for, so that error counts as a failed call).
	obtainLoop := func(ids []string, prefix string, opt *LockOptions, out *[]*Lock, errs, notRepl *int) {
		defer wg.Done()
		for i := 0; i < len(ids) && !closed(stop); i++ {
			l, err := c.Obtain(ctx, prefix+ids[i], time.Hour, opt)
			mu.Lock()
			switch {
			case err == nil:
				*out = append(*out, l)
			case notRepl != nil && errors.Is(err, ErrNotReplicated):
				*notRepl++
			default:
				*errs++
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}
	wg.Add(2)
	go obtainLoop(lockIDs, "a", nil, &granted, &fig.lockErrs, nil)
	go obtainLoop(waitIDs, "w", &LockOptions{Replicas: 1, ReplicaTimeout: 500 * time.Millisecond}, &waitGranted, &fig.lockErrs, &fig.waitNotReplicated)

	for _, algo := range algos {
		l, err := c.Limiter("api", &LimiterOptions{Algorithm: algo})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "r" + rlKey
			denied := 0
			var after time.Time
			// Until the end, then until the limit denies 50 calls in a row
			// (at most 10 s more).
			for {
				if closed(stop) {
					if after.IsZero() {
						after = time.Now()
					}
					if denied >= 50 || time.Since(after) > 10*time.Second {
						return
					}
				}
				res, err := l.Allow(ctx, key, lim)
				mu.Lock()
				switch {
				case err != nil:
					fig.limitErrs[algo]++
				case res.Allowed:
					fig.limitAdmitted[algo]++
					switch phase.Load() {
					case 0:
						fig.limitBefore[algo]++
					case 1:
						fig.limitDuring[algo]++
					}
					denied = 0
				default:
					denied++
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}

	// Cache rewrites: entry i goes from 1 to 2, in order, across the failover.
	rewritten := make([]int, entries) // 0: not tried, 1: Set returned nil, -1: Set failed
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < entries && !closed(stop); i++ {
			if err := cache.Set(ctx, strconv.Itoa(i), 2, nil); err != nil {
				rewritten[i] = -1
			} else {
				rewritten[i] = 1
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	time.Sleep(300 * time.Millisecond)
	phase.Store(1)
	began := time.Now()
	ferr := rig.failover(ctx)
	fig.failoverTook = time.Since(began)
	phase.Store(2)
	time.Sleep(700 * time.Millisecond) // the patterns go on while the client switches
	close(stop)
	wg.Wait()
	if ferr != nil {
		t.Fatal(ferr)
	}

	lost := func(ls []*Lock) int {
		n := 0
		for _, l := range ls {
			err := retrySettled(func() error { _, err := l.TTL(ctx); return err })
			if err != nil {
				if !errors.Is(err, ErrNotHeld) {
					t.Errorf("lock %s: %v", l.Key(), err)
				}
				n++
			}
		}
		return n
	}
	fig.locksGranted, fig.locksLost = len(granted), lost(granted)
	fig.waitGranted, fig.waitLost = len(waitGranted), lost(waitGranted)

	for i := 0; i < entries; i++ {
		var v int
		var ok bool
		err := retrySettled(func() error {
			var err error
			v, ok, err = cache.Lookup(ctx, strconv.Itoa(i))
			return err
		})
		if err != nil {
			t.Fatalf("cache lookup: %v", err)
		}
		switch {
		case rewritten[i] == -1:
			fig.cacheSetErrs++
			if !ok {
				fig.cacheMissing++
			} else {
				fig.cacheServed++ // 1 or 2: the failed Set may or may not have applied
			}
		case !ok:
			fig.cacheMissing++
		case rewritten[i] == 1 && v != 2:
			fig.cacheStale++
		default:
			fig.cacheServed++
		}
		if rewritten[i] != 0 {
			fig.cacheRewrites++
		}
	}
	if fig.locksGranted == 0 || fig.waitGranted == 0 {
		t.Errorf("no lock granted around the failover (%d, %d): nothing measured", fig.locksGranted, fig.waitGranted)
	}
	for _, a := range algos {
		if fig.limitAdmitted[a] < limit {
			t.Errorf("%s admitted %d, under its limit of %d: the overshoot is not measured", a, fig.limitAdmitted[a], limit)
		}
	}
	return fig
}

func logFailoverFigures(t *testing.T, name string, f failoverFigures) {
	t.Logf("%s: the failover took %v", name, f.failoverTook.Round(10*time.Millisecond))
	t.Logf("%s: locks (default): %d granted around the failover, %d lost; %d failed calls", name, f.locksGranted, f.locksLost, f.lockErrs)
	t.Logf("%s: locks (Replicas: 1): %d granted, %d lost, %d ErrNotReplicated", name, f.waitGranted, f.waitLost, f.waitNotReplicated)
	for _, a := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA} {
		t.Logf("%s: limiter %s: limit 1000/day, admitted %d (overshoot %d; %d before the failover, %d during it), %d failed calls",
			name, a, f.limitAdmitted[a], f.limitAdmitted[a]-1000, f.limitBefore[a], f.limitDuring[a], f.limitErrs[a])
	}
	t.Logf("%s: cache: %d entries, %d rewritten across the failover (%d rewrites failed): %d served right, %d missing, %d stale",
		name, f.cacheEntries, f.cacheRewrites, f.cacheSetErrs, f.cacheServed, f.cacheMissing, f.cacheStale)
}

// TestFailoverSentinel measures what SENTINEL FAILOVER does to locks,
// limiters and caches on a primary with one replica, as configured by
// default; with PATTERNS_SOAK=1 also with min-replicas-to-write 1 on both
// data nodes (the old primary refuses writes once its replica has left it,
// and the new one until the old one replicates it).
func TestFailoverSentinel(t *testing.T) {
	t.Parallel()
	onceInCI(t)
	modes := []struct {
		name string
		args []string
		wait bool // for the old primary to replicate the new one
	}{{"default", nil, false}}
	if os.Getenv("PATTERNS_SOAK") != "" { // about 30 s more
		modes = append(modes, struct {
			name string
			args []string
			wait bool
		}{"min-replicas-to-write 1", []string{"--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"}, true})
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			set, err := redisserver.StartSentinelArgs(ctx, mode.args)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = set.Close() })
			rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: set.MasterName, SentinelAddrs: []string{set.Sentinel.Addr}})
			t.Cleanup(func() { _ = rdb.Close() })
			f := runFailoverBattery(t, &failoverRig{rdb: rdb, failover: func(ctx context.Context) error {
				if err := set.Failover(ctx); err != nil || !mode.wait {
					return err
				}
				// Writes are refused until the old primary replicates the
				// new one.
				return set.WaitReplica(ctx)
			}})
			logFailoverFigures(t, "SENTINEL FAILOVER ("+mode.name+")", f)
			if f.waitLost > 0 {
				t.Errorf("%d replica-acknowledged locks lost", f.waitLost)
			}
		})
	}
}

// startReplicatedCluster starts three masters with one replica each and a
// client that follows failovers.
func startReplicatedCluster(t *testing.T) (*redisserver.Cluster, *redis.ClusterClient) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := redisserver.StartClusterWithReplicas(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	return cl, rdb
}

// clientFollows waits until rdb routes slot's keys to master.
func clientFollows(ctx context.Context, rdb *redis.ClusterClient, key, master string) error {
	for try := 0; try < 100; try++ {
		rdb.ReloadState(ctx)
		if c, err := rdb.MasterForKey(ctx, key); err == nil && c.Options().Addr == master {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the client does not route %q to %s", key, master)
}

// TestFailoverCluster measures what CLUSTER FAILOVER on the replica of the
// master that holds the test's keys does to locks, limiters and caches:
// graceful (the replica catches up first), FORCE (it does not), and a
// TAKEOVER while the master hangs (SIGSTOP) with calls in flight.
func TestFailoverCluster(t *testing.T) {
	t.Parallel()
	onceInCI(t)
	for _, mode := range []string{"graceful", "FORCE", "hung-master TAKEOVER"} {
		t.Run(mode, func(t *testing.T) {
			cl, rdb := startReplicatedCluster(t)
			ctx := context.Background()
			const slot = 100 // served by the first master
			master, replica, err := cl.MasterOf(ctx, slot)
			if err != nil {
				t.Fatal(err)
			}
			probe := ""
			for i := 0; keySlot(probe) != slot; i++ {
				probe = "probe" + strconv.Itoa(i)
			}
			if got, err := rdb.ClusterKeySlot(ctx, probe).Result(); err != nil || got != slot {
				t.Fatalf("the cluster puts %q in slot %d (%v), keySlot says %d", probe, got, err, slot)
			}
			// The first master serves slots 0 to 5460.
			if m, _, err := cl.MasterOf(ctx, 16384/3-1); err != nil || m != master {
				t.Fatalf("slot 5460 not on the first master: %v", err)
			}
			if m, _, err := cl.MasterOf(ctx, 16384/3); err != nil || m == master {
				t.Fatalf("slot 5461 on the first master: %v", err)
			}
			rig := &failoverRig{
				rdb:    rdb,
				onNode: func(key string) bool { return keySlot(key) < 16384/3 },
			}
			rig.failover = func(ctx context.Context) error {
				var err error
				switch mode {
				case "graceful":
					err = cl.Failover(ctx, slot, "")
				case "FORCE":
					err = cl.Failover(ctx, slot, "FORCE")
				default:
					// The master hangs with the calls in flight; the replica
					// takes over; the master wakes up, answers those calls,
					// then learns it is a replica.
					if err := master.Signal(syscall.SIGSTOP); err != nil {
						return err
					}
					rc := redis.NewClient(&redis.Options{Addr: replica.Addr})
					err = rc.Do(ctx, "CLUSTER", "FAILOVER", "TAKEOVER").Err()
					rc.Close()
					time.Sleep(200 * time.Millisecond)
					_ = master.Signal(syscall.SIGCONT) // it comes back as a replica
					if err == nil {
						err = cl.WaitMaster(ctx, slot, replica.Addr)
					}
				}
				if err != nil {
					return err
				}
				return clientFollows(ctx, rdb, probe, replica.Addr)
			}
			f := runFailoverBattery(t, rig)
			logFailoverFigures(t, "CLUSTER FAILOVER "+mode, f)
			if f.waitLost > 0 {
				t.Errorf("%d replica-acknowledged locks lost", f.waitLost)
			}
			// A graceful failover waits for the replica to catch up and the
			// old master pauses its clients: nothing may be lost.
			if mode == "graceful" {
				over := 0
				for _, n := range f.limitAdmitted {
					over += n - 1000
				}
				if f.locksLost > 0 || over > 0 || f.cacheStale > 0 || f.cacheMissing > 0 {
					t.Errorf("graceful failover lost writes: %d locks, %d limiter admissions, %d stale and %d missing cache entries", f.locksLost, over, f.cacheStale, f.cacheMissing)
				}
			}
		})
	}
}

// fencedHolders takes, rounds times each, every fenced hold of c: locks
// (two keys), the write and read sides of a read-write lock, and an
// idempotency key (fn fails, so the key is released and the next Do runs
// again), releasing each at once, and returns the fencing tokens by holder.
func fencedHolders(ctx context.Context, t *testing.T, c *Client, rounds int) map[string][]int64 {
	t.Helper()
	rw, err := c.RWLock("fence-rw", &RWLockOptions{Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	idem, err := c.Idempotency("fence-idem", &IdempotencyOptions{Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	errAgain := errors.New("released on purpose")
	got := map[string][]int64{}
	take := map[string]func() (int64, error){
		"lock a": func() (int64, error) {
			l, err := c.Obtain(ctx, "fence-a", time.Minute, nil)
			if err != nil {
				return 0, err
			}
			return l.Fence(), l.Release(ctx)
		},
		"lock b": func() (int64, error) {
			l, err := c.Obtain(ctx, "fence-b", time.Minute, nil)
			if err != nil {
				return 0, err
			}
			return l.Fence(), l.Release(ctx)
		},
		"rwlock write": func() (int64, error) {
			l, err := rw.Lock(ctx)
			if err != nil {
				return 0, err
			}
			return l.Fence(), l.Release(ctx)
		},
		"rwlock read": func() (int64, error) {
			l, err := rw.RLock(ctx)
			if err != nil {
				return 0, err
			}
			return l.Fence(), l.Release(ctx)
		},
		"idempotency": func() (int64, error) {
			var fence int64
			_, err := idem.Do(ctx, "k", "", func(_ context.Context, lease IdempotencyLease) ([]byte, error) {
				fence = lease.Fence
				return nil, errAgain
			})
			if !errors.Is(err, errAgain) {
				return 0, err
			}
			return fence, nil
		},
	}
	for range rounds {
		for name, f := range take {
			var fence int64
			if err := retrySettled(func() error {
				var err error
				fence, err = f()
				return err
			}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got[name] = append(got[name], fence)
		}
	}
	return got
}

// checkFencesRise fails t unless every token after is greater than every
// token before, holder by holder, and logs by how much.
func checkFencesRise(t *testing.T, before, after map[string][]int64) {
	t.Helper()
	for name, bs := range before {
		maxBefore := slices.Max(bs)
		for i, a := range after[name] {
			if a <= maxBefore {
				t.Errorf("%s: token %d after the failover (the %d-th) is not above %d, the highest before", name, a, i+1, maxBefore)
			}
		}
		t.Logf("%s: %d tokens before, up to %d; %d after, from %d (+%d)", name, len(bs), maxBefore, len(after[name]), slices.Min(after[name]), slices.Min(after[name])-maxBefore)
	}
}

// TestFailoverFencing: fencing tokens keep rising across a failover, for
// every fenced hold (locks, read-write locks, idempotency leases), as
// lock_obtain.lua's header promises. With SENTINEL FAILOVER once the replica
// has every write, every token after is above every token before. When the
// failover loses the last writes of the asynchronous replication (the
// replica is promoted, then the old primary grants more holds that never
// reach it, as after a FORCE or TAKEOVER failover, or a Sentinel promotion,
// of a lagging replica), every token after is still above every token
// before, the lost grants' included: a grant's token is never below the
// server's clock in microseconds (the test's servers share one clock). It
// also checks that a lock asking for a replica's acknowledgement
// (LockOptions.Replicas) is told.
func TestFailoverFencing(t *testing.T) {
	t.Parallel()
	onceInCI(t)
	const rounds = 20
	t.Run("sentinel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rdb, set := testSentinel(t)
		c := newClient(t, rdb)
		before := fencedHolders(ctx, t, c, rounds)
		if err := rdb.Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
			t.Fatal(err)
		}
		if err := set.Failover(ctx); err != nil {
			t.Fatal(err)
		}
		checkFencesRise(t, before, fencedHolders(ctx, t, c, rounds))
	})
	t.Run("lost writes", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		primary, _ := testProcess(t)
		replica, _ := testProcess(t)
		host, port, _ := strings.Cut(primary.Options().Addr, ":")
		if err := replica.ReplicaOf(ctx, host, port).Err(); err != nil {
			t.Fatal(err)
		}
		c := newClient(t, primary)
		replicated := fencedHolders(ctx, t, c, rounds)
		if n, err := primary.Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT: %d replicas, %v", n, err)
		}
		// The replica is promoted with every write so far; the old primary
		// grants more, which the new one never gets.
		if err := replica.ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Obtain(ctx, "fence-a", time.Minute, &LockOptions{Replicas: 1}); !errors.Is(err, ErrNotReplicated) {
			t.Fatalf("Obtain with Replicas 1 and no replica: %v, want ErrNotReplicated", err)
		}
		lost := fencedHolders(ctx, t, c, rounds)
		// The clients fail over to the promoted replica, same prefix.
		nc, err := New(replica, &Options{Prefix: c.Prefix(), Coalesce: coalesceTests})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { auditKeys(t, replica, c.Prefix()) })
		after := fencedHolders(ctx, t, nc, rounds)
		before := map[string][]int64{}
		for name, fs := range replicated {
			before[name] = append(slices.Clone(fs), lost[name]...)
		}
		checkFencesRise(t, before, after)
	})
}
