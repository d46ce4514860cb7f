package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleSessions() {
	ctx := context.Background()
	pc := exampleClient("sessions")
	sessions, err := pc.Sessions("web", &patterns.SessionOptions{IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 12 * time.Hour})
	if err != nil {
		panic(err)
	}
	id, _ := sessions.Create(ctx, "alice", map[string]string{"theme": "dark"})
	sessions.Set(ctx, id, map[string]string{"cart": "3"}) // field-level: other fields untouched

	// Privilege change: new ID, same data, the old ID stops at once.
	newID, _ := sessions.Rotate(ctx, id)
	_, _, err = sessions.Get(ctx, id)
	fmt.Println(errors.Is(err, patterns.ErrSessionNotFound))
	user, data, _ := sessions.Get(ctx, newID)
	fmt.Println(user, data["theme"], data["cart"])

	devices, _ := sessions.List(ctx, "alice")
	fmt.Println(len(devices), "device(s)")
	n, _ := sessions.DestroyAll(ctx, "alice") // "log out everywhere"
	fmt.Println(n, "destroyed")
	// Output:
	// true
	// alice dark 3
	// 1 device(s)
	// 1 destroyed
}
