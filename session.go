package patterns

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrSessionNotFound is returned for a session that does not exist: never
// issued, destroyed, rotated away, or expired (idle or absolute timeout).
var ErrSessionNotFound = errors.New("patterns: session not found")

var scriptSession = newScript("session")

// Session ID layout: 16 bytes of routing tag, then 24 random bytes, in
// unpadded base64url: 54 characters, 192 bits of secret.
const (
	sessionTagLen    = 16
	sessionSecretLen = 24
	sessionIDLen     = 54
)

// SessionOptions configure Sessions. A nil *SessionOptions means all
// defaults.
type SessionOptions struct {
	// IdleTimeout ends a session not used for that long; every use extends it.
	//
	// default: 30 minutes
	IdleTimeout time.Duration

	// AbsoluteTimeout ends a session that long after its creation, however
	// much it is used; Rotate keeps the deadline.
	//
	// default: 24 hours
	AbsoluteTimeout time.Duration

	// RotateGrace keeps the old ID of a rotated session working for that
	// long (for requests already in flight). At most one minute.
	//
	// default: 0 (the old ID stops at once)
	RotateGrace time.Duration

	// MaxBytes caps the data one Create or Set writes (names and values);
	// -1 removes the cap.
	//
	// default: 64 KiB
	MaxBytes int
}

// Sessions stores server-side sessions: data in a Redis hash per session,
// field-level updates, idle and absolute timeouts enforced inside the scripts
// on the server's clock.
//
// IDs are 54 characters of base64url: 192 random bits from crypto/rand and a
// 128-bit routing tag (the user's, the first half of a SHA-256 of the user
// id, or random for anonymous sessions). Keys hold only a SHA-256 of the ID,
// never the ID: prefix:sess:{TAG}:NAME:HASH, a hash with the remaining idle or
// absolute time as TTL, whichever is shorter. A user's index is
// prefix:sess:{TAG}:NAME:u, a sorted set pruned of expired sessions, with the
// latest absolute deadline as TTL. A user's sessions and index share the
// tag, so on a Redis Cluster every operation on them is one script on one
// slot (a user is one slot: fine for sessions).
//
// IDs the store did not issue find no session: a forged ID would have to
// guess 192 random bits. Malformed IDs are ErrInvalidArgument.
type Sessions struct {
	c    *Client
	name string // escaped
	opt  SessionOptions
}

// Sessions returns the session store named name (stores of different names
// share no session).
func (c *Client) Sessions(name string, opt *SessionOptions) (*Sessions, error) {
	if err := checkID("session store name", name); err != nil {
		return nil, err
	}
	s := &Sessions{c: c, name: escapePart(name)}
	if opt != nil {
		s.opt = *opt
	}
	o := &s.opt
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 30 * time.Minute
	}
	if o.AbsoluteTimeout == 0 {
		o.AbsoluteTimeout = 24 * time.Hour
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 64 << 10
	}
	if err := checkTTL("idle timeout", o.IdleTimeout); err != nil {
		return nil, err
	}
	if err := checkTTL("absolute timeout", o.AbsoluteTimeout); err != nil {
		return nil, err
	}
	if o.MaxBytes == -1 {
		o.MaxBytes = math.MaxInt
	}
	if o.RotateGrace < 0 || o.RotateGrace > time.Minute || o.MaxBytes < 0 {
		return nil, invalidf("RotateGrace %v (0 to 1m) or MaxBytes %d out of range", o.RotateGrace, o.MaxBytes)
	}
	return s, nil
}

// SessionInfo describes one live session of a user (one device).
type SessionInfo struct {
	// Key is the session's Redis key: it names the session without being
	// usable as its ID.
	Key string
	// Expires is the absolute deadline.
	Expires time.Time
}

func userTag(user string) []byte {
	sum := sha256.Sum256([]byte("user\x00" + user))
	return sum[:sessionTagLen]
}

// newSessionID returns a fresh ID with the given tag (random when nil).
func newSessionID(tag []byte) (string, error) {
	b := make([]byte, sessionTagLen+sessionSecretLen)
	if _, err := crand.Read(b); err != nil {
		return "", fmt.Errorf("patterns: crypto/rand: %w", err)
	}
	copy(b, tag)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// parseID checks an ID's form and returns its routing tag.
func parseID(id string) ([]byte, error) {
	if len(id) != sessionIDLen {
		return nil, invalidf("session ID of %d characters, want %d", len(id), sessionIDLen)
	}
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return nil, invalidf("session ID is not base64url")
	}
	return b[:sessionTagLen], nil
}

func (s *Sessions) sessionKey(tag []byte, id string) string {
	sum := sha256.Sum256([]byte(id))
	return s.c.key("sess", hex.EncodeToString(tag), s.name, hex.EncodeToString(sum[:16]))
}

func (s *Sessions) indexKey(tag []byte) string {
	return s.c.key("sess", hex.EncodeToString(tag), s.name, "u")
}

// keys returns the session key and its user's index key (for anonymous
// sessions a key of the same slot that is never written).
func (s *Sessions) keys(id string) (sk, ik string, err error) {
	tag, err := parseID(id)
	if err != nil {
		return "", "", err
	}
	return s.sessionKey(tag, id), s.indexKey(tag), nil
}

func (s *Sessions) dataArgs(data map[string]string) ([]any, error) {
	if len(data) > 1024 {
		return nil, invalidf("%d fields in one call: at most 1024", len(data))
	}
	size := 0
	args := make([]any, 0, 2*len(data))
	for k, v := range data {
		if k == "" || len(k) > 256 {
			return nil, invalidf("field name %q: want 1 to 256 bytes", k)
		}
		size += len(k) + len(v)
		args = append(args, "d:"+k, v)
	}
	if size > s.opt.MaxBytes {
		return nil, invalidf("%d bytes of session data, over the cap of %d", size, s.opt.MaxBytes)
	}
	return args, nil
}

// Create starts a session for user ("" for an anonymous one) holding data,
// and returns its ID.
func (s *Sessions) Create(ctx context.Context, user string, data map[string]string) (id string, err error) {
	ctx, done := s.c.observe(ctx, PatternSessions, OpCreate, s.name)
	defer func() { done.end(outcome(OutcomeCreated, err), err) }()
	if len(user) > MaxIDLen {
		return "", invalidf("user is %d bytes, over %d", len(user), MaxIDLen)
	}
	args, err := s.dataArgs(data)
	if err != nil {
		return "", err
	}
	var tag []byte
	if user != "" {
		tag = userTag(user)
	}
	for attempt := 0; attempt < 3; attempt++ {
		id, err := newSessionID(tag)
		if err != nil {
			return "", err
		}
		sk, ik, _ := s.keys(id)
		ok, err := s.run(ctx, []string{sk, ik, sk}, append([]any{"create", s.opt.IdleTimeout.Milliseconds(), s.opt.AbsoluteTimeout.Milliseconds(), user}, args...)...)
		if err != nil {
			return "", err
		}
		if ok != nil {
			return id, nil
		}
		// 192 random bits collided with a live session: draw again.
	}
	return "", errors.New("patterns: session: could not draw a unique ID")
}

func (s *Sessions) run(ctx context.Context, keys []string, args ...any) (any, error) {
	v, err := scriptSession.run(ctx, s.c.scr, keys, args...).Result()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("patterns: session: %w", err)
	}
	return v, nil
}

// op runs op on the live session id, extending its idle timeout.
func (s *Sessions) op(ctx context.Context, id, op string, newKey string, extra ...any) (any, error) {
	sk, ik, err := s.keys(id)
	if err != nil {
		return nil, err
	}
	if newKey == "" {
		newKey = sk
	}
	v, err := s.run(ctx, []string{sk, ik, newKey}, append([]any{op, s.opt.RotateGrace.Milliseconds(), 0, ""}, extra...)...)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, ErrSessionNotFound
	}
	return v, nil
}

// Get returns the session's data, and its user, extending its idle timeout.
func (s *Sessions) Get(ctx context.Context, id string) (user string, data map[string]string, err error) {
	ctx, done := s.c.observe(ctx, PatternSessions, OpGet, s.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	v, err := s.op(ctx, id, "get", "")
	if err != nil {
		return "", nil, err
	}
	kv, _ := v.([]any)
	data = make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		val, _ := kv[i+1].(string)
		if k == "m:user" {
			user = val
		} else {
			data[strings.TrimPrefix(k, "d:")] = val
		}
	}
	return user, data, nil
}

// Fields returns the values of names ("" for a field not set), extending
// the idle timeout.
func (s *Sessions) Fields(ctx context.Context, id string, names ...string) (values []string, err error) {
	ctx, done := s.c.observe(ctx, PatternSessions, OpFields, s.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if len(names) == 0 {
		return nil, invalidf("no field")
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = "d:" + n
	}
	v, err := s.op(ctx, id, "fields", "", args...)
	if err != nil {
		return nil, err
	}
	vals, _ := v.([]any)
	out := make([]string, len(names))
	for i := range out {
		if i < len(vals) {
			out[i], _ = vals[i].(string)
		}
	}
	return out, nil
}

// Set writes the given fields (others are left as they are: concurrent
// updates of different fields never lose each other).
func (s *Sessions) Set(ctx context.Context, id string, fields map[string]string) (err error) {
	ctx, done := s.c.observe(ctx, PatternSessions, OpSet, s.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if _, err := parseID(id); err != nil {
		return err
	}
	args, err := s.dataArgs(fields)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return invalidf("no field")
	}
	_, err = s.op(ctx, id, "set", "", args...)
	return err
}

// Unset deletes the given fields.
func (s *Sessions) Unset(ctx context.Context, id string, names ...string) (err error) {
	ctx, done := s.c.observe(ctx, PatternSessions, OpUnset, s.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if len(names) == 0 {
		return invalidf("no field")
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = "d:" + n
	}
	_, err = s.op(ctx, id, "unset", "", args...)
	return err
}

// Destroy ends the session.
func (s *Sessions) Destroy(ctx context.Context, id string) (err error) {
	ctx, done := s.c.observe(ctx, PatternSessions, OpDestroy, s.name)
	defer func() { done.end(outcome(OutcomeDestroyed, err), err) }()
	_, err = s.op(ctx, id, "destroy", "")
	return err
}

// Rotate gives the session a new ID (call it on every privilege change,
// such as a login) and returns it. Data and both deadlines move to the new
// ID in one script; the old ID stops working at once, or after
// SessionOptions.RotateGrace.
func (s *Sessions) Rotate(ctx context.Context, id string) (newID string, err error) {
	ctx, done := s.c.observe(ctx, PatternSessions, OpRotate, s.name)
	defer func() { done.end(outcome(OutcomeRotated, err), err) }()
	tag, err := parseID(id)
	if err != nil {
		return "", err
	}
	newID, err = newSessionID(tag)
	if err != nil {
		return "", err
	}
	if _, err := s.op(ctx, id, "rotate", s.sessionKey(tag, newID)); err != nil {
		return "", err
	}
	return newID, nil
}

// List returns the live sessions of user (one per device), dropping the
// expired ones from the index.
func (s *Sessions) List(ctx context.Context, user string) (infos []SessionInfo, err error) {
	ctx, done := s.c.observe(ctx, PatternSessions, OpList, s.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	return s.list(ctx, user)
}

func (s *Sessions) list(ctx context.Context, user string) ([]SessionInfo, error) {
	if err := checkID("user", user); err != nil {
		return nil, err
	}
	ik := s.indexKey(userTag(user))
	v, err := s.run(ctx, []string{ik, ik}, "list", 0, 0, "")
	if err != nil {
		return nil, err
	}
	kv, _ := v.([]any)
	out := make([]SessionInfo, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		ms, _ := kv[i+1].(string)
		var at int64
		fmt.Sscan(ms, &at)
		out = append(out, SessionInfo{Key: k, Expires: time.UnixMilli(at)})
	}
	return out, nil
}

// DestroyAll ends every session of user and returns how many there were.
func (s *Sessions) DestroyAll(ctx context.Context, user string) (n int, err error) {
	ctx, done := s.c.observe(ctx, PatternSessions, OpDestroyAll, s.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	total := 0
	for round := 0; round < 5; round++ {
		live, err := s.list(ctx, user)
		if err != nil || len(live) == 0 {
			return total, err
		}
		ik := s.indexKey(userTag(user))
		keys := []string{ik, ik}
		for _, l := range live {
			keys = append(keys, l.Key)
		}
		v, err := s.run(ctx, keys, "destroyall", 0, 0, "")
		if err != nil {
			return total, err
		}
		n, _ := v.(int64)
		total += int(n)
	}
	return total, nil
}
