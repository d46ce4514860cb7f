package patterns

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// usedMemory returns INFO memory's used_memory.
func usedMemory(ctx context.Context, rdb *redis.Client) int64 {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// TestMemoryShortTTLKeys writes distinct limiter, session and cache keys
// with short TTLs through the library's own calls (limiters in pipelined
// batches of 100, sessions and cache entries from 8 goroutines), then checks
// that three TTLs after the last write DBSIZE is at most 1% of its peak:
// nothing the patterns write outlives its TTL, and Redis reclaims it.
// 100,000 writes with a 2 s TTL by default; with PATTERNS_SOAK=1, 1,000,000
// writes with a 30 s TTL, longer than the writes take, so that the peak
// holds every key.
func TestMemoryShortTTLKeys(t *testing.T) {
	t.Parallel()
	onceInCI(t)
	n, ttl := 100_000, 2*time.Second
	if os.Getenv("PATTERNS_SOAK") != "" {
		// A TTL longer than the writes take: the peak holds every key.
		n, ttl = 1_000_000, 30*time.Second
	}
	rdb, _ := testProcess(t)
	c := newClient(t, rdb)
	ctx := context.Background()
	lim, err := c.Limiter("api", &LimiterOptions{Algorithm: FixedWindow})
	if err != nil {
		t.Fatal(err)
	}
	rate := Limit{Rate: 10, Period: ttl} // its key lives until the end of its window
	sess, err := c.Sessions("web", &SessionOptions{IdleTimeout: ttl, AbsoluteTimeout: ttl})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := NewCache[int](c, "mem", &CacheOptions{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}

	// Peak DBSIZE and used_memory, sampled every 50 ms while writing and once
	// after the last write.
	var peakKeys, peakMem atomic.Int64
	sample := func() {
		if k, err := rdb.DBSize(ctx).Result(); err == nil && k > peakKeys.Load() {
			peakKeys.Store(k)
		}
		if m := usedMemory(ctx, rdb); m > peakMem.Load() {
			peakMem.Store(m)
		}
	}
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				sample()
			}
		}
	}()

	// Work is handed out in blocks of 100: one limiter batch, or 100
	// sessions, or 100 cache entries; users of sessions are distinct.
	start := time.Now()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := next.Add(1) - 1
				first := b * 100
				if first >= int64(n) {
					return
				}
				switch b % 3 {
				case 0:
					reqs := make([]LimitRequest, 100)
					for i := range reqs {
						reqs[i] = LimitRequest{Key: "k" + strconv.FormatInt(first+int64(i), 10), N: 1, Limits: []Limit{rate}}
					}
					if _, err := lim.AllowBatch(ctx, reqs); err != nil {
						failed.Add(100)
						continue
					}
				case 1:
					for i := first; i < first+100; i++ {
						if _, err := sess.Create(ctx, "u"+strconv.FormatInt(i, 10), map[string]string{"a": "b"}); err != nil {
							failed.Add(1)
						}
					}
				case 2:
					for i := first; i < first+100; i++ {
						if err := cache.Set(ctx, strconv.FormatInt(i, 10), int(i), nil); err != nil {
							failed.Add(1)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(stop)
	<-sampled
	sample() // once the sampler is done: no concurrent sample can lose this peak
	if failed.Load() > 0 {
		t.Fatalf("%d writes failed", failed.Load())
	}

	time.Sleep(3 * ttl)
	after, err := rdb.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	memAfter := usedMemory(ctx, rdb)
	t.Logf("memory: %d limiter/session/cache writes in %v (TTL <= %v); peak DBSIZE %d, used_memory peak %d bytes; three TTLs after the last write: DBSIZE %d (%.2f%% of the peak), used_memory %d bytes",
		n, took.Round(time.Millisecond), ttl, peakKeys.Load(), peakMem.Load(), after, 100*float64(after)/float64(max(peakKeys.Load(), 1)), memAfter)
	if peakKeys.Load() == 0 {
		t.Fatal("no key seen at the peak")
	}
	if after*100 > peakKeys.Load() {
		t.Errorf("DBSIZE %d three TTLs after the last write, over 1%% of the peak %d", after, peakKeys.Load())
	}
}
