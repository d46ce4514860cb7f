package bench

import (
	"context"
	"testing"
	"time"

	"github.com/redispatterns/patterns"
)

// BenchmarkQueueBatch moves 100 messages per op through a queue (enqueue,
// dequeue, ack) in two ways, alternated in one loop so that the machine's
// noise falls on both alike: EnqueueMany + DequeueMany + AckMany (three
// script calls), and a loop of 100 Enqueue, TryDequeue and Ack (300). It
// reports each one's mean time per 100 messages and the ratio of the loop to
// the batch.
func BenchmarkQueueBatch(b *testing.B) {
	ctx := context.Background()
	_, pc := benchRedis(b)
	q, err := pc.Queue("bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	const n = 100
	items := make([]patterns.QueueItem, n)
	for i := range items {
		items[i].Body = []byte("a message body of some forty bytes......")
	}
	var batch, loop time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := q.EnqueueMany(ctx, items); err != nil {
			b.Fatal(err)
		}
		ms, err := q.DequeueMany(ctx, n)
		if err != nil || len(ms) != n {
			b.Fatal(len(ms), err)
		}
		if acked, err := q.AckMany(ctx, ms); err != nil || acked != n {
			b.Fatal(acked, err)
		}
		t1 := time.Now()
		for j := range items {
			if _, _, err := q.Enqueue(ctx, items[j].Body, nil); err != nil {
				b.Fatal(err)
			}
		}
		for range n {
			m, _, err := q.TryDequeue(ctx)
			if err != nil || m == nil {
				b.Fatal(m, err)
			}
			if err := m.Ack(ctx); err != nil {
				b.Fatal(err)
			}
		}
		batch += t1.Sub(t0)
		loop += time.Since(t1)
	}
	b.ReportMetric(float64(batch.Microseconds())/float64(b.N), "batch-us/100msg")
	b.ReportMetric(float64(loop.Microseconds())/float64(b.N), "loop-us/100msg")
	b.ReportMetric(float64(loop)/float64(batch), "loop/batch")
}
