package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleQueueMessage_Complete() {
	ctx := context.Background()
	pc := exampleClient("queue")
	// A name per run: the example's records outlive it.
	name := fmt.Sprint("thumbnails-", time.Now().UnixNano())
	jobs, err := pc.Queue(name, &patterns.QueueOptions{ResultRetention: time.Hour})
	if err != nil {
		panic(err)
	}
	// UniqueFor: the id stays taken for a day after the job completed.
	opt := &patterns.EnqueueOptions{ID: "photo-7", UniqueFor: 24 * time.Hour}
	jobs.Enqueue(ctx, []byte("photo 7"), opt)
	m, _, _ := jobs.TryDequeue(ctx)
	m.Complete(ctx, []byte("thumb-7.jpg")) // acks and keeps the result

	r, _ := jobs.Result(ctx, "photo-7")
	fmt.Println(r.State, string(r.Result), "after", r.Deliveries, "delivery")
	_, queued, _ := jobs.Enqueue(ctx, []byte("photo 7"), opt)
	fmt.Println("queued again:", queued)
	_, err = jobs.Result(ctx, "photo-8")
	fmt.Println(errors.Is(err, patterns.ErrQueueNotFound))
	// Output:
	// completed thumb-7.jpg after 1 delivery
	// queued again: false
	// true
}

func ExampleQueue_Cancel() {
	ctx := context.Background()
	pc := exampleClient("queue")
	name := fmt.Sprint("exports-", time.Now().UnixNano())
	exports, err := pc.Queue(name, &patterns.QueueOptions{ResultRetention: time.Hour})
	if err != nil {
		panic(err)
	}
	exports.Enqueue(ctx, []byte("export A"), &patterns.EnqueueOptions{ID: "a"})
	exports.Enqueue(ctx, []byte("export B"), &patterns.EnqueueOptions{ID: "b", Delay: time.Hour})
	m, _, _ := exports.TryDequeue(ctx) // a, now in flight

	ok, _ := exports.Cancel(ctx, "b") // delayed: removed at once
	fmt.Println("canceled b:", ok)
	ok, _ = exports.Cancel(ctx, "a") // in flight: marked
	fmt.Println("canceled a:", ok)
	err = m.Extend(ctx, time.Minute) // the handler's next heartbeat learns it
	fmt.Println(errors.Is(err, patterns.ErrQueueCanceled))
	r, _ := exports.Result(ctx, "a")
	fmt.Println(r.State)
	// Output:
	// canceled b: true
	// canceled a: true
	// true
	// canceled
}
