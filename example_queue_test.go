package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleQueue() {
	ctx := context.Background()
	pc := exampleClient("queue")
	emails, err := pc.Queue("emails", nil) // 30s visibility, 5 deliveries, then dead letters
	if err != nil {
		panic(err)
	}
	// The id deduplicates: the second enqueue is a no-op while the first is pending.
	emails.Enqueue(ctx, []byte("welcome alice"), nil)
	_, queued, _ := emails.Enqueue(ctx, []byte("receipt 1"), nil)
	fmt.Println("queued:", queued)

	for i := 0; i < 2; i++ {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := emails.Dequeue(wctx) // blocks without polling until a message is due
		cancel()
		if err != nil {
			panic(err)
		}
		fmt.Println(string(m.Body), "delivery", m.Deliveries)
		m.Ack(ctx) // not acked within the visibility timeout: delivered again
	}
	// Output:
	// queued: true
	// welcome alice delivery 1
	// receipt 1 delivery 1
}

func ExampleQueue_Redrive() {
	ctx := context.Background()
	pc := exampleClient("queue")
	// A name per run: the example leaves dead letters behind.
	name := fmt.Sprint("reports-", time.Now().UnixNano())
	reports, err := pc.Queue(name, &patterns.QueueOptions{MaxDeliveries: 1})
	if err != nil {
		panic(err)
	}
	reports.Enqueue(ctx, []byte("Q3 report"), &patterns.EnqueueOptions{ID: "q3"})
	m, _, _ := reports.TryDequeue(ctx)
	m.Nack(ctx) // the first failure is the last (MaxDeliveries 1): a dead letter
	dead, _ := reports.Peek(ctx, patterns.QueueDead, 10)
	fmt.Println("dead:", dead[0].ID, "after", dead[0].Deliveries, "delivery")

	n, _ := reports.Redrive(ctx) // all dead letters, back to the consumers
	m, _, _ = reports.TryDequeue(ctx)
	fmt.Println("redrove", n, "then got", m.ID, "delivery", m.Deliveries)
	m.Ack(ctx)
	// Output:
	// dead: q3 after 1 delivery
	// redrove 1 then got q3 delivery 1
}

func ExampleQueue_EnqueueMany() {
	ctx := context.Background()
	pc := exampleClient("queue")
	jobs, err := pc.Queue(fmt.Sprint("jobs-", time.Now().UnixNano()), &patterns.QueueOptions{MaxLen: 3})
	if err != nil {
		panic(err)
	}
	// One script call, all or nothing.
	jobs.EnqueueMany(ctx, []patterns.QueueItem{
		{Body: []byte("thumbnail"), EnqueueOptions: patterns.EnqueueOptions{Priority: patterns.QueuePriorityLow}},
		{Body: []byte("password reset"), EnqueueOptions: patterns.EnqueueOptions{Priority: patterns.QueuePriorityHigh}},
		{Body: []byte("newsletter")},
	})
	_, _, err = jobs.Enqueue(ctx, []byte("one more"), nil)
	fmt.Println(errors.Is(err, patterns.ErrQueueFull))

	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ms, _ := jobs.DequeueMany(wctx, 10) // highest priority first
	for _, m := range ms {
		fmt.Println(string(m.Body))
	}
	n, _ := jobs.AckMany(ctx, ms)
	fmt.Println("acked", n)
	// Output:
	// true
	// password reset
	// newsletter
	// thumbnail
	// acked 3
}
