package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redispatterns/patterns"
)

// BenchmarkQueueGroups is the fair-queue scenario: one group ("big") of
// 10,000 messages, then nine groups of 10 enqueued after it, drained by 8
// consumers (Dequeue and Ack loops, doing no work). Each op runs it twice,
// alternated so that the machine's noise falls on both alike: with groups,
// and as a plain queue (the same messages without a group). It reports, for
// each, the messages per second and the completion (1 = first acked) at
// which the last small group's last message was acked, and the ratio of the
// two throughputs.
//
//	cd bench && go test -run '^$' -bench BenchmarkQueueGroups -benchtime 3x
func BenchmarkQueueGroups(b *testing.B) {
	const big, small, smalls, consumers = 10000, 10, 9, 8
	_, pc := benchRedis(b)
	var grouped, plain time.Duration
	var groupedLast, plainLast int64
	for i := 0; i < b.N; i++ {
		for _, withGroups := range []bool{true, false} {
			q, err := pc.Queue(fmt.Sprintf("fair-%d-%t", i, withGroups), nil)
			if err != nil {
				b.Fatal(err)
			}
			d, last, done := fairRun(b, q, withGroups, big, small, smalls, consumers)
			if withGroups {
				grouped += d
				groupedLast = max(groupedLast, last)
				b.Logf("groups: each small group's last message acked at completion %v", done)
			} else {
				plain += d
				plainLast = max(plainLast, last)
			}
		}
	}
	n := float64(b.N * (big + small*smalls))
	b.ReportMetric(n/grouped.Seconds(), "groups-msg/s")
	b.ReportMetric(n/plain.Seconds(), "plain-msg/s")
	b.ReportMetric(plain.Seconds()/grouped.Seconds(), "groups/plain")
	b.ReportMetric(float64(groupedLast), "groups-small-done-at")
	b.ReportMetric(float64(plainLast), "plain-small-done-at")
}

// fairRun enqueues the scenario into q and drains it with consumers
// goroutines; it returns the time the drain took, the latest completion at
// which a small group finished, and every small group's.
func fairRun(b *testing.B, q *patterns.Queue, withGroups bool, big, small, smalls, consumers int) (time.Duration, int64, []int64) {
	ctx := context.Background()
	items := make([]patterns.QueueItem, 0, patterns.MaxQueueBatch)
	flush := func() {
		if _, err := q.EnqueueMany(ctx, items); err != nil {
			b.Fatal(err)
		}
		items = items[:0]
	}
	add := func(g string) {
		it := patterns.QueueItem{Body: []byte(g)}
		if withGroups {
			it.Group = g
		}
		items = append(items, it)
		if len(items) == cap(items) {
			flush()
		}
	}
	for range big {
		add("big")
	}
	flush()
	for s := range smalls {
		for range small {
			add(fmt.Sprintf("small%d", s))
		}
		flush()
	}
	total := int64(big + small*smalls)
	var completed atomic.Int64
	var mu sync.Mutex
	last := map[string]int64{}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, consumers)
	start := time.Now()
	for range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := q.Dequeue(runCtx)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						errc <- err
					}
					return
				}
				if err := m.Ack(ctx); err != nil {
					errc <- err
					return
				}
				at := completed.Add(1)
				if g := string(m.Body); strings.HasPrefix(g, "small") {
					mu.Lock()
					last[g] = max(last[g], at)
					mu.Unlock()
				}
				if at == total {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errc)
	for err := range errc {
		b.Fatal(err)
	}
	var done []int64
	var worst int64
	for _, at := range last {
		done = append(done, at)
		worst = max(worst, at)
	}
	sort.Slice(done, func(i, j int) bool { return done[i] < done[j] })
	if len(done) != smalls {
		b.Fatalf("%d small groups finished, want %d", len(done), smalls)
	}
	return d, worst, done
}

// BenchmarkQueuePlainPath moves messages without a group through a queue,
// one Enqueue, TryDequeue and Ack each, and reports what the server spent:
// the microseconds per script call (INFO commandstats) and the Redis
// commands the scripts ran per message (every command but EVALSHA, a count
// that does not depend on the machine's load). Run it on two versions of
// the library to compare their plain paths:
//
//	cd bench && go test -run '^$' -bench BenchmarkQueuePlainPath -benchtime 5000x
func BenchmarkQueuePlainPath(b *testing.B) {
	ctx := context.Background()
	rdb, pc := benchRedis(b)
	q, err := pc.Queue("plain", nil)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("a message body of some forty bytes......")
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := q.Enqueue(ctx, body, nil); err != nil {
			b.Fatal(err)
		}
		m, _, err := q.TryDequeue(ctx)
		if err != nil || m == nil {
			b.Fatal(m, err)
		}
		if err := m.Ack(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var cmds int64
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		name, stats, _ := strings.Cut(rest, ":")
		if !ok || name == "evalsha" || name == "eval" || name == "config|resetstat" || name == "info" {
			continue
		}
		var calls int64
		if _, err := fmt.Sscanf(stats, "calls=%d", &calls); err != nil {
			b.Fatalf("INFO commandstats: %q: %v", line, err)
		}
		cmds += calls
	}
	b.ReportMetric(serverUsecPerCall(b, rdb, "evalsha"), "srv-us/call")
	b.ReportMetric(float64(cmds)/float64(b.N), "cmds/msg")
}
