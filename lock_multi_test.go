package patterns

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func init() {
	moreFaultOps = append(moreFaultOps, func(t testing.TB, c *Client) []faultOp {
		var n atomic.Int64
		return []faultOp{
			{"lock-multi", func(ctx context.Context) error {
				// Keys per run: a grant whose reply was lost must not
				// block the next run until its TTL.
				run := strconv.FormatInt(n.Add(1), 10)
				m, err := c.ObtainMulti(ctx, []string{"fm-a-" + run, "fm-b-" + run, "fm-c-" + run}, 5*time.Second, nil)
				if err != nil {
					return err
				}
				if err := m.Refresh(ctx, 5*time.Second); err != nil {
					return err
				}
				return m.Release(ctx)
			}},
		}
	})
}

func init() {
	moreOnceOps = append(moreOnceOps, func(t *testing.T, c, dc *Client, direct *redis.Client) []onceOp {
		names := []string{"once-m1", "once-m2"}
		return []onceOp{{name: "lock multi (fencing counters)", setup: fenceAhead(t, direct, c.key("lock", names[0], "fence"), c.key("lock", names[1], "fence")), run: func(ctx context.Context) error {
			_, err := c.ObtainMulti(ctx, names, time.Minute, nil)
			// Free the locks for the next call, keeping their counters.
			direct.Del(context.Background(), c.key("lock", names[0]), c.key("lock", names[1]))
			return err
		}, applied: func(ctx context.Context) int64 {
			a, _ := direct.Get(ctx, c.key("lock", names[0], "fence")).Int64()
			b, _ := direct.Get(ctx, c.key("lock", names[1], "fence")).Int64()
			return a + b
		}, perRun: 2}}
	})
}

// sameSlotNames returns n lock names whose keys hash to one cluster slot.
func sameSlotNames(c *Client, n int) []string {
	want := clusterSlot(c.key("lock", "s0"))
	names := []string{"s0"}
	for i := 1; len(names) < n; i++ {
		name := "s" + strconv.Itoa(i)
		if clusterSlot(c.key("lock", name)) == want {
			names = append(names, name)
		}
	}
	return names
}

func TestObtainMulti(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		_, cluster := rdb.(*redis.ClusterClient)

		names := []string{"c", "a", "b", "a", "d", "e"}
		groups := c.lockGroups(names)
		if !cluster && len(groups) != 1 {
			t.Fatalf("%d groups on one server", len(groups))
		}
		if cluster && len(groups) < 2 {
			t.Fatalf("%d groups across slots", len(groups))
		}
		m, err := c.ObtainMulti(ctx, names, time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(len(m.Keys())); got != "5" {
			t.Fatalf("keys %q", m.Keys())
		}
		for _, k := range []string{"a", "b", "c", "d", "e"} {
			if _, err := c.Obtain(ctx, k, time.Second, nil); !errors.Is(err, ErrNotObtained) {
				t.Fatalf("Obtain(%s) beside the multi-lock: %v", k, err)
			}
		}
		// All or none: a set that overlaps in one key takes nothing.
		if _, err := c.ObtainMulti(ctx, []string{"x", "y", "e", "z"}, time.Second, nil); !errors.Is(err, ErrNotObtained) {
			t.Fatalf("overlapping set: %v", err)
		}
		for _, k := range []string{"x", "y", "z"} {
			if n := rdb.Exists(ctx, c.key("lock", k)).Val(); n != 0 {
				t.Fatalf("a refused ObtainMulti left %s held", k)
			}
		}
		if ttl, err := m.TTL(ctx); err != nil || ttl <= 0 || ttl > time.Second {
			t.Fatalf("TTL = %v, %v", ttl, err)
		}
		if err := m.Refresh(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if ttl, _ := m.TTL(ctx); ttl <= time.Second {
			t.Fatalf("TTL after Refresh(5s) = %v", ttl)
		}
		forged := &MultiLock{c: c, token: "forged", names: m.names, groups: m.groups}
		if err := forged.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("forged Release: %v", err)
		}
		if err := forged.Refresh(ctx, time.Second); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("forged Refresh: %v", err)
		}
		if err := m.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("second Release: %v", err)
		}
		if _, err := m.TTL(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("TTL after Release: %v", err)
		}
		// A lock lost in part: Release deletes the rest and says so.
		m, err = c.ObtainMulti(ctx, []string{"p", "q"}, time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		rdb.Del(ctx, c.key("lock", "q"))
		if err := m.Refresh(ctx, time.Second); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("Refresh with a lock lost: %v", err)
		}
		if err := m.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("Release with a lock lost: %v", err)
		}
		if n := rdb.Exists(ctx, c.key("lock", "p")).Val(); n != 0 {
			t.Fatal("Release left the held lock")
		}

		// Keys of one slot: one group, one call, on every topology.
		same := sameSlotNames(c, 3)
		if g := c.lockGroups(same); len(g) != 1 || len(g[0].keys) != 6 {
			t.Fatalf("same-slot groups: %+v", g)
		}
		m, err = c.ObtainMulti(ctx, same, time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = m.Release(ctx)

		// Rollback: the last group is held, the groups before it are not
		// left taken.
		groups = c.lockGroups([]string{"r1", "r2", "r3", "r4", "r5", "r6"})
		last := groups[len(groups)-1].names[0]
		l, err := c.Obtain(ctx, last, time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ObtainMulti(ctx, []string{"r1", "r2", "r3", "r4", "r5", "r6"}, time.Second, nil); !errors.Is(err, ErrNotObtained) {
			t.Fatalf("with %s held: %v", last, err)
		}
		for _, k := range []string{"r1", "r2", "r3", "r4", "r5", "r6"} {
			if k != last && rdb.Exists(ctx, c.key("lock", k)).Val() != 0 {
				t.Fatalf("%s left held after the rollback", k)
			}
		}
		// With retries it gets in once the lock goes.
		go func() { time.Sleep(50 * time.Millisecond); _ = l.Release(ctx) }()
		m, err = c.ObtainMulti(ctx, []string{"r1", "r2", "r3", "r4", "r5", "r6"}, time.Second, &LockOptions{RetryStrategy: LinearBackoff(10 * time.Millisecond)})
		if err != nil {
			t.Fatalf("with retries: %v", err)
		}
		_ = m.Release(ctx)

		var nilMulti *MultiLock
		if err := nilMulti.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatal(err)
		}
	})
}

func TestObtainMultiInvalid(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		for _, tc := range []struct {
			keys []string
			ttl  time.Duration
		}{
			{nil, time.Second}, {[]string{}, time.Second}, {[]string{"a", ""}, time.Second},
			{[]string{"a", string(make([]byte, MaxIDLen+1))}, time.Second},
			{[]string{"a"}, 0}, {[]string{"a"}, -time.Second}, {[]string{"a"}, time.Microsecond},
		} {
			if _, err := c.ObtainMulti(ctx, tc.keys, tc.ttl, nil); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("ObtainMulti(%d keys, %v): %v, want ErrInvalidArgument", len(tc.keys), tc.ttl, err)
			}
		}
		if _, err := c.ObtainMulti(ctx, []string{"a"}, time.Second, &LockOptions{Replicas: -1}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("negative Replicas: %v", err)
		}
		if err := (&MultiLock{c: c, token: "t", groups: c.lockGroups([]string{"a"})}).Refresh(ctx, 0); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Refresh(0): %v", err)
		}
		if n := countKeys(t, rdb, c.prefix); n != 0 {
			t.Fatalf("bad input wrote %d keys", n)
		}
	})
}

// multiEnter counts a holder of the locks ARGV in the hash KEYS[1] and
// returns the most holders any of them has now; multiLeave undoes it.
var (
	multiEnter = redis.NewScript(`
local most = 0
for _, k in ipairs(ARGV) do most = math.max(most, redis.call('HINCRBY', KEYS[1], k, 1)) end
redis.call('PEXPIRE', KEYS[1], 60000)
return most`)
	multiLeave = redis.NewScript(`for _, k in ipairs(ARGV) do redis.call('HINCRBY', KEYS[1], k, -1) end`)
)

// TestObtainMultiContention: callers with overlapping key sets (and a single
// Obtain on the shared key) never hold at the same time; occupancy is counted
// in Redis, per key.
func TestObtainMultiContention(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		ctx := context.Background()
		c := newClient(t, rdb)
		counter := c.prefix + ":inside"
		sets := [][]string{{"k1", "k2", "k3"}, {"k3", "k4", "k5"}, {"k5", "k6", "k1"}, {"k3"}}
		opt := &LockOptions{RetryStrategy: ExponentialBackoff(time.Millisecond, 10*time.Millisecond)}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var grants, overlaps atomic.Int64
		for _, set := range sets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !closed(stop) {
					tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					m, err := c.ObtainMulti(tctx, set, 5*time.Second, opt)
					cancel()
					if err != nil {
						if !errors.Is(err, ErrNotObtained) {
							t.Error(err)
							return
						}
						continue
					}
					args := make([]any, len(set))
					for i, k := range set {
						args[i] = k
					}
					n, err := multiEnter.Run(ctx, rdb, []string{counter}, args...).Int64()
					if err != nil {
						t.Error(err)
						return
					}
					if n > 1 {
						overlaps.Add(1)
					}
					time.Sleep(time.Millisecond)
					multiLeave.Run(ctx, rdb, []string{counter}, args...)
					if err := m.Release(ctx); err != nil {
						t.Errorf("release %q: %v", set, err)
					}
					grants.Add(1)
				}
			}()
		}
		time.Sleep(1500 * time.Millisecond)
		close(stop)
		wg.Wait()
		t.Logf("%d grants, %d overlaps", grants.Load(), overlaps.Load())
		if overlaps.Load() != 0 || grants.Load() < int64(len(sets)) {
			t.Fatalf("%d overlaps in %d grants", overlaps.Load(), grants.Load())
		}
	})
}
