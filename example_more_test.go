package patterns_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleNewTopic() {
	ctx := context.Background()
	pc := exampleClient("topic")
	type Price struct {
		SKU   string
		Cents int
	}
	prices, err := patterns.NewTopic[Price](pc, "prices", nil)
	if err != nil {
		panic(err)
	}

	sctx, stop := context.WithCancel(ctx)
	ready := make(chan struct{})
	got := make(chan Price)
	done := make(chan error)
	go func() {
		done <- prices.Subscribe(sctx, ready, func(p Price) { got <- p }, nil)
	}()
	<-ready // subscribed: what is published from now on is received

	n, _ := prices.Publish(ctx, Price{SKU: "tea", Cents: 350})
	fmt.Println("subscribers:", n)
	fmt.Printf("%+v\n", <-got)
	stop()
	<-done
	// Output:
	// subscribers: 1
	// {SKU:tea Cents:350}
}

func ExampleClient_Activity() {
	ctx := context.Background()
	pc := exampleClient("activity")
	active, err := pc.Activity("logins", nil)
	if err != nil {
		panic(err)
	}
	for _, user := range []int64{7, 42, 7} {
		first, _ := active.Mark(ctx, user) // today, by the server's clock
		fmt.Println(user, "first today:", first)
	}
	today := time.Now().UTC()
	n, _ := active.Count(ctx, today)
	fmt.Println("active today:", n)
	// Output:
	// 7 first today: true
	// 42 first today: true
	// 7 first today: false
	// active today: 2
}

func ExampleNewWriteBehind() {
	ctx := context.Background()
	pc := exampleClient("writebehind")
	profiles, err := patterns.NewWriteBehind[string](pc, "profiles", nil)
	if err != nil {
		panic(err)
	}
	// Set returns once Redis holds the value and the queued write.
	_ = profiles.Set(ctx, "user:1", "Ada", nil)
	_ = profiles.Set(ctx, "user:2", "Grace", nil)
	v, _, _ := profiles.Cache().Lookup(ctx, "user:1")
	fmt.Println("read at once:", v)

	// Workers hand the writes to the slow store.
	var mu sync.Mutex
	var store []string
	rctx, stop := context.WithCancel(ctx)
	_ = profiles.Run(rctx, 2, func(ctx context.Context, key, value string) error {
		mu.Lock()
		defer mu.Unlock()
		store = append(store, key+"="+value) // an upsert: delivery is at least once
		if len(store) == 2 {
			stop()
		}
		return nil
	})
	sort.Strings(store)
	fmt.Println("persisted:", store)
	// Output:
	// read at once: Ada
	// persisted: [user:1=Ada user:2=Grace]
}

func ExampleSessions_Middleware() {
	pc := exampleClient("sessmw")
	sessions, err := pc.Sessions("web", nil)
	if err != nil {
		panic(err)
	}
	h, err := sessions.Middleware(&patterns.SessionMiddlewareOptions{Insecure: true}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reads see the session as the request found it; writes are
		// committed before the response is written.
		s := patterns.SessionFrom(r.Context())
		switch r.URL.Path {
		case "/login":
			s.Login("alice") // a new session ID: logins rotate it
			s.Set("theme", "dark")
			fmt.Fprint(w, "welcome")
		case "/logout":
			s.Destroy()
			fmt.Fprint(w, "bye")
		default:
			fmt.Fprintf(w, "user=%q theme=%q", s.User(), s.Get("theme"))
		}
	}))
	if err != nil {
		panic(err)
	}
	do := func(path string, cookies []*http.Cookie) []*http.Cookie {
		req := httptest.NewRequest("GET", path, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(path, rec.Body.String())
		return rec.Result().Cookies()
	}
	cookies := do("/login", nil)
	do("/profile", cookies)
	do("/logout", cookies)
	do("/profile", cookies) // the old cookie names no session any more
	// Output:
	// /login welcome
	// /profile user="alice" theme="dark"
	// /logout bye
	// /profile user="" theme=""
}
