package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/redispatterns/patterns"
)

func ExampleQueue_Work() {
	ctx, stop := context.WithCancel(context.Background())
	pc := exampleClient("work")
	emails, err := pc.Queue("emails", nil)
	if err != nil {
		panic(err)
	}
	emails.Enqueue(ctx, []byte("welcome alice"), &patterns.EnqueueOptions{ID: "mail-1"})
	emails.Enqueue(ctx, []byte("bad address"), &patterns.EnqueueOptions{ID: "mail-2"})
	var handled atomic.Int32
	err = emails.Work(ctx, func(ctx context.Context, m *patterns.QueueMessage) ([]byte, error) {
		defer func() {
			if handled.Add(1) == 2 {
				stop() // shut down: Work stops taking messages and waits for the running ones
			}
		}()
		if string(m.Body) == "bad address" {
			return nil, patterns.QueuePermanent(errors.New("no such mailbox")) // dead at once
		}
		return nil, nil // acked; any other error: retried with backoff
	}, &patterns.QueueWorkOptions{Concurrency: 4})
	fmt.Println("work:", errors.Is(err, context.Canceled))
	dead, _ := emails.DeadLetters(context.Background(), 10)
	fmt.Println("dead:", dead)
	// Output:
	// work: true
	// dead: [mail-2]
}

func ExampleJobQueue() {
	ctx, stop := context.WithCancel(context.Background())
	pc := exampleClient("jobqueue")
	type Resize struct {
		Image string
		Width int
	}
	resizes, err := patterns.NewJobQueue[Resize](pc, "resize", nil) // JSON
	if err != nil {
		panic(err)
	}
	resizes.Enqueue(ctx, Resize{Image: "cat.png", Width: 200}, nil)
	_ = resizes.Work(ctx, func(ctx context.Context, r Resize, m *patterns.QueueMessage) error {
		fmt.Println("resize", r.Image, "to", r.Width, "delivery", m.Deliveries)
		stop()
		return nil
	}, nil)
	// Output:
	// resize cat.png to 200 delivery 1
}
