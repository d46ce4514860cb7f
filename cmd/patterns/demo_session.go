package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/redispatterns/patterns"
)

func init() { demos = append(demos, demo{"session", demoSession}) }

func demoSession(ctx context.Context, pc *patterns.Client, w io.Writer) error {
	s, err := pc.Sessions("web", &patterns.SessionOptions{IdleTimeout: 500 * time.Millisecond, AbsoluteTimeout: time.Hour})
	if err != nil {
		return err
	}
	id, err := s.Create(ctx, "grace", map[string]string{"theme": "dark"})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "created session …%s (the keyspace holds only its SHA-256)\n", id[len(id)-10:])
	newID, err := s.Rotate(ctx, id)
	if err != nil {
		return err
	}
	_, _, err = s.Get(ctx, id)
	fmt.Fprintf(w, "rotated to …%s; the old ID now gets: %v\n", newID[len(newID)-10:], err)
	if _, err := s.Create(ctx, "grace", nil); err != nil {
		return err
	}
	devices, _ := s.List(ctx, "grace")
	fmt.Fprintf(w, "grace has %d sessions (devices)\n", len(devices))
	n, err := s.DestroyAll(ctx, "grace")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "destroy all of grace's sessions: %d destroyed\n", n)
	anon, err := s.Create(ctx, "", map[string]string{"lang": "pt"})
	if err != nil {
		return err
	}
	time.Sleep(700 * time.Millisecond)
	_, _, err = s.Get(ctx, anon)
	fmt.Fprintf(w, "an anonymous session unused for 700ms (idle timeout 500ms): ErrSessionNotFound=%t\n", errors.Is(err, patterns.ErrSessionNotFound))
	return nil
}
