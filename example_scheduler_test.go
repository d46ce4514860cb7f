package patterns_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleScheduler() {
	ctx := context.Background()
	pc := exampleClient("scheduler")
	s, err := pc.Scheduler("reports", nil) // enqueues to the queue "reports"
	if err != nil {
		panic(err)
	}
	// Any process may set the schedules; setting one as it is changes nothing,
	// so every instance may set its schedules when it starts.
	s.Set(ctx, "nightly", patterns.Schedule{Spec: "30 2 * * *", TimeZone: "Europe/Paris", Body: []byte("nightly report")})
	s.Set(ctx, "heartbeat", patterns.Schedule{Every: 50 * time.Millisecond, Body: []byte("ping")})

	// Run as many instances as you like: each tick is enqueued once.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	for range 3 {
		go func() { done <- s.Run(runCtx) }()
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	m, err := s.Queue().Dequeue(wctx)
	cancel()
	if err != nil {
		panic(err)
	}
	id, tick, _ := patterns.ScheduleTick(m.ID)
	fmt.Println(id, string(m.Body), "on a tick:", tick.UnixMilli()%50 == 0)
	m.Ack(ctx)
	stop()
	for range 3 {
		<-done
	}

	list, _ := s.List(ctx)
	paris, _ := time.LoadLocation("Europe/Paris")
	fmt.Println(list[1].ID, "next at", list[1].Next.In(paris).Format("15:04"), "Paris time")
	s.Remove(ctx, "heartbeat")
	s.Remove(ctx, "nightly")
	// Output:
	// heartbeat ping on a tick: true
	// nightly next at 02:30 Paris time
}
