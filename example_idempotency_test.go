package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleIdempotency_Do() {
	ctx := context.Background()
	pc := exampleClient("idempotency")
	payments, err := pc.Idempotency("payments", nil) // 30s lease, results kept 24h
	if err != nil {
		panic(err)
	}
	charge := func(ctx context.Context, lease patterns.IdempotencyLease) ([]byte, error) {
		fmt.Println("charging the card")
		return []byte("charge ch_1"), nil
	}
	for i := 0; i < 2; i++ {
		res, err := payments.Do(ctx, "pay-42", "amount=100", charge)
		fmt.Println(string(res.Value), "replay:", res.Replay, err)
	}
	// The same key for another request is refused.
	_, err = payments.Do(ctx, "pay-42", "amount=999", charge)
	fmt.Println(errors.Is(err, patterns.ErrIdempotencyMismatch))
	// Output:
	// charging the card
	// charge ch_1 replay: false <nil>
	// charge ch_1 replay: true <nil>
	// true
}

func ExampleIdempotency_Middleware() {
	pc := exampleClient("idempotency-http")
	orders, err := pc.Idempotency("orders", &patterns.IdempotencyOptions{Wait: true})
	if err != nil {
		panic(err)
	}
	create := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("creating the order")
		w.Header().Set("Location", "/orders/1")
		w.WriteHeader(http.StatusCreated)
	})
	h, err := orders.Middleware(&patterns.IdempotencyMiddlewareOptions{
		// Keys are per account: nobody replays another account's response.
		Scope: func(r *http.Request) (string, error) { return r.Header.Get("X-Account"), nil },
	}, create)
	if err != nil {
		panic(err)
	}
	for _, body := range []string{`{"sku":1}`, `{"sku":1}`, `{"sku":2}`} {
		r := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(body))
		r.Header.Set("Idempotency-Key", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`)
		r.Header.Set("X-Account", "acct-1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(strings.TrimSpace(fmt.Sprint(w.Code, " ", w.Header().Get("Location"), " ", w.Header().Get("Idempotent-Replayed"))))
	}
	// Output:
	// creating the order
	// 201 /orders/1
	// 201 /orders/1 true
	// 422
}

// A queue consumer that is effectively once: delivery is at least once, and
// Do keyed by the message id skips the effect of a redelivered message.
func ExampleIdempotency_queueConsumer() {
	ctx := context.Background()
	pc := exampleClient("idempotency-queue")
	q, _ := pc.Queue("emails", &patterns.QueueOptions{Visibility: 100 * time.Millisecond})
	sent, _ := pc.Idempotency("emails-sent", nil)
	q.Enqueue(ctx, []byte("welcome alice"), &patterns.EnqueueOptions{ID: "msg-1"})

	for delivery := 1; delivery <= 2; delivery++ {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := q.Dequeue(wctx)
		cancel()
		if err != nil {
			panic(err)
		}
		res, err := sent.Do(ctx, m.ID, "", func(ctx context.Context, l patterns.IdempotencyLease) ([]byte, error) {
			fmt.Println("sending", string(m.Body))
			return nil, nil
		})
		fmt.Println("delivery", m.Deliveries, "replay:", res.Replay, err)
		if delivery == 2 {
			m.Ack(ctx)
		}
		// The first time, the consumer "crashes" before its ack: the
		// message is delivered again after the visibility timeout.
	}
	// Output:
	// sending welcome alice
	// delivery 1 replay: false <nil>
	// delivery 2 replay: true <nil>
}
