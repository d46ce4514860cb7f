package patterns

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

type priceChange struct {
	SKU   string
	Price int
}

func TestTopic(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		topic, err := NewTopic[priceChange](c, "prices", nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var got []priceChange
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- topic.Subscribe(ctx, ready, func(p priceChange) { mu.Lock(); got = append(got, p); mu.Unlock() }, nil)
		}()
		<-ready
		for i := 0; i < 3; i++ {
			if _, err := topic.Publish(context.Background(), priceChange{"lamp", 4200 + i}); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n == 3 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
		if len(got) != 3 || got[2].Price != 4202 {
			t.Fatalf("received %+v", got)
		}
	})
}

// TestTopicReconnect: the subscriber's server restarts; go-redis subscribes
// again and later events arrive.
func TestTopicReconnect(t *testing.T) {
	rdb, proc := testProcess(t)
	c := newClient(t, rdb)
	topic, _ := NewTopic[int](c, "ticks", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan int, 100)
	ready := make(chan struct{})
	go topic.Subscribe(ctx, ready, func(v int) { got <- v }, nil)
	<-ready
	proc.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		topic.Publish(context.Background(), 7)
		select {
		case v := <-got:
			if v == 7 {
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("no event after the server restarted")
}
