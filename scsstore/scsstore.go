// Package scsstore is a session store for github.com/alexedwards/scs/v2 on
// the patterns library: it implements scs.Store and scs.CtxStore. It is a
// package of its own so that scs stays out of the builds of those who do not
// use it.
//
// Keys hold a SHA-256 of the session token, never the token:
// prefix:scs:{HASH}, a string with the session's expiry as TTL. scs hands the
// store an absolute expiry computed on the application's clock; the store
// turns it into a TTL from the application's now, so a skew between the
// application's and Redis's clocks does not shift it.
package scsstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// Store keeps scs sessions in Redis. Make it with New.
type Store struct {
	c *patterns.Client
}

// New returns a Store on c.
func New(c *patterns.Client) *Store { return &Store{c: c} }

func (s *Store) key(token string) (string, error) {
	if token == "" {
		return "", fmt.Errorf("%w: empty session token", patterns.ErrInvalidArgument)
	}
	sum := sha256.Sum256([]byte(token))
	return s.c.Key("scs", hex.EncodeToString(sum[:]))
}

// FindCtx returns the data of the session token, and found false when it
// does not exist or has expired.
func (s *Store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	k, err := s.key(token)
	if err != nil {
		return nil, false, err
	}
	b, err := s.c.Redis().Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("patterns: scs find: %w", err)
	}
	return b, true, nil
}

// CommitCtx stores b for token until expiry (replacing what was there); an
// expiry already past deletes the session.
func (s *Store) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	k, err := s.key(token)
	if err != nil {
		return err
	}
	ttl := time.Until(expiry)
	if ttl < time.Millisecond {
		return s.DeleteCtx(ctx, token)
	}
	if err := s.c.Redis().Set(ctx, k, b, ttl).Err(); err != nil {
		return fmt.Errorf("patterns: scs commit: %w", err)
	}
	return nil
}

// DeleteCtx removes the session token (no error when it does not exist).
func (s *Store) DeleteCtx(ctx context.Context, token string) error {
	k, err := s.key(token)
	if err != nil {
		return err
	}
	if err := s.c.Redis().Del(ctx, k).Err(); err != nil {
		return fmt.Errorf("patterns: scs delete: %w", err)
	}
	return nil
}

// Find is FindCtx with a background context (scs.Store).
func (s *Store) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// Commit is CommitCtx with a background context (scs.Store).
func (s *Store) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// Delete is DeleteCtx with a background context (scs.Store).
func (s *Store) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}
