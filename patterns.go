// Package patterns is a library of atomic Redis primitives: the recipes web
// back ends keep rewriting from blog posts (locks, rate limits, caches,
// sessions, leaderboards, unique counters, queues), each done right.
//
// # Guarantees
//
//   - Atomic, one round trip: every multi-step operation is one Lua script,
//     run with EVALSHA. A NOSCRIPT reply (after a restart, a failover or a
//     SCRIPT FLUSH) is healed by itself, in pipelines too.
//   - Server time: scripts read the clock with TIME on the Redis server; no
//     decision depends on the clocks of the clients.
//   - Cluster-safe: every key a script touches is passed in KEYS, and keys that
//     must meet share a hash tag that the library owns. User input is escaped
//     inside the tag, so it can neither move a key to another slot nor collide
//     with another id.
//   - Bounded memory: every key written has a TTL, except where a pattern is
//     long-lived by nature and its doc says so.
//   - Bad input is rejected before anything reaches Redis, with an error that
//     matches ErrInvalidArgument.
//
// # Quick start
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	pc, err := patterns.New(rdb, nil)
//	if err != nil { ... }
//	lock, err := pc.Obtain(ctx, "invoice:42", 10*time.Second, nil)
//	if errors.Is(err, patterns.ErrNotObtained) { ... } // somebody else holds it
//	defer lock.Release(ctx)
//
// # Keys
//
// Every key has the shape
//
//	prefix:pattern:{id}:suffix
//
// where prefix is Options.Prefix, pattern names the primitive ("lock",
// "rl", ...), id is the caller's key and suffix is chosen by the library.
// Inside the braces the bytes '%', '{', '}' and the control bytes are
// percent-encoded (so "a{b}" becomes "a%7Bb%7D"), which keeps the hash tag
// exactly the caller's id: all keys of one id live in one slot, and two ids
// never share a key. Ids are at most MaxIDLen bytes; an empty id is invalid.
//
// # Conventions
//
// Constructors: every pattern is made from a *Client with a name, the
// namespace of its keys, and a *XOptions: a method for plain types
// (pc.Board(name, opt), pc.Queue(name, opt), pc.Limiter(name, opt)), a
// function for generic ones (NewCache[T](pc, name, opt)), since Go methods
// cannot have type parameters. Constructors return a concrete type and
// ErrInvalidArgument for bad options. Calls that act at once instead of
// returning a pattern (Obtain, ObtainMulti, WithLock, Elect, Leader) take
// the key or election name directly.
//
// Options: a nil *XOptions means all defaults, and a zero field its default,
// which the field's doc states ("default: 30s"). A feature that is on by
// default is switched off with -1, never with 0.
//
// Names: an exported name says which pattern it belongs to (BoardEntry,
// QueueMessage, LimitResult, ErrCacheNotFound); the errors above and the lock's
// are shared by every pattern that reports the same condition.
//
// A *Client is safe for concurrent use.
package patterns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors shared by every pattern. Errors are wrapped with detail; test them
// with errors.Is.
var (
	// ErrInvalidArgument reports input that was rejected before anything was
	// sent to Redis: an empty or too long id, a non-positive TTL, an invalid
	// option. Nothing was written.
	ErrInvalidArgument = errors.New("patterns: invalid argument")

	// ErrUnexpectedReply reports a reply from Redis that a script cannot have
	// produced: a sign of a foreign value in one of the library's keys.
	ErrUnexpectedReply = errors.New("patterns: unexpected reply from Redis")
)

// MaxIDLen is the largest id, in bytes, that any pattern accepts.
const MaxIDLen = 512

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "patterns"

// maxPrefixLen bounds Options.Prefix.
const maxPrefixLen = 64

// Options configure a Client. A nil *Options means all defaults.
type Options struct {
	// Prefix is the first segment of every key the client writes. It must not
	// contain '{', '}', white space or control bytes.
	//
	// default: "patterns"
	Prefix string

	// ReleaseTimeout bounds the calls that must reach Redis even when the
	// caller's context is already done (Lock.Release): they run on a context
	// of their own with this timeout.
	//
	// default: 2 seconds
	ReleaseTimeout time.Duration

	// Observer, when set, is told of every operation of every pattern:
	// for metrics and traces (see the patternsotel module).
	//
	// default: nil, none
	Observer Observer

	// Coalesce sends the script calls of concurrent callers (every pattern's),
	// and the cache hit's reads, to one server in shared pipelines: a caller that finds no call in
	// flight to its server is sent at once, and callers arriving while one is
	// in flight go together in the next pipeline (one per cluster master). It
	// saves round trips and server system calls, so turn it on when many
	// goroutines call the patterns at once and throughput or server CPU
	// matters (docs/throughput.md has figures). It gains nothing
	// for one caller at a time, and a coalesced caller may wait for the
	// pipeline in flight before its own is sent. Every guarantee holds: each
	// call is sent at most once, NOSCRIPT is healed inside the pipeline, a
	// caller whose context ends stops waiting, and errors are each caller's.
	//
	// default: false, each call on its own
	Coalesce bool

	// Functions runs every pattern's scripts as the functions of the
	// library Functions describes, with FCALL (FCALL_RO for the calls that
	// only read) instead of EVALSHA: the same replies, the library the
	// services in other languages call by name (docs/other-languages.md).
	// A server without the library (a restart without persistence, a new
	// node, FUNCTION FLUSH) gets it on first use, loaded on every primary,
	// and the call is sent again; every other guarantee of EVALSHA holds
	// (each call sent at most once, in pipelines and coalesced batches too).
	// Needs Redis 7 or Valkey 7.2 and later.
	//
	// default: false, EVALSHA
	Functions bool
}

// Client runs the patterns against one Redis deployment. Make it with New.
type Client struct {
	rdb            redis.UniversalClient
	prefix         string
	releaseTimeout time.Duration
	observer       Observer
	scr            redis.Scripter // what scripts run through: rdb, or a *coalescing
}

// New returns a Client on rdb, which may be a *redis.Client, a
// *redis.ClusterClient, a Sentinel failover client or a *redis.Ring. It
// returns an error matching ErrInvalidArgument when rdb is nil or an option
// is invalid.
func New(rdb redis.UniversalClient, opt *Options) (*Client, error) {
	if rdb == nil {
		return nil, invalidf("nil redis client")
	}
	c := &Client{rdb: rdb, prefix: opt.prefix(), releaseTimeout: opt.releaseTimeout()}
	c.scr = rdb
	if opt != nil {
		c.observer = opt.Observer
		if opt.Coalesce {
			c.scr = newCoalescing(rdb)
		}
	}
	c.scr = withDialect(c.scr, rdb, newDialect(rdb, opt != nil && opt.Functions))
	if err := validPrefix(c.prefix); err != nil {
		return nil, err
	}
	if c.releaseTimeout < 0 {
		return nil, invalidf("negative ReleaseTimeout %v", c.releaseTimeout)
	}
	return c, nil
}

// coalescing returns the coalescer scripts run through, or nil.
func (c *Client) coalescing() *coalescing {
	co, _ := c.scr.(*coalescing)
	return co
}

// Redis returns the client's go-redis client.
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// Prefix returns the key prefix in use.
func (c *Client) Prefix() string { return c.prefix }

func (o *Options) prefix() string {
	if o == nil || o.Prefix == "" {
		return DefaultPrefix
	}
	return o.Prefix
}

func (o *Options) releaseTimeout() time.Duration {
	if o == nil || o.ReleaseTimeout == 0 {
		return 2 * time.Second
	}
	return o.ReleaseTimeout
}

func validPrefix(p string) error {
	if len(p) > maxPrefixLen {
		return invalidf("prefix is %d bytes, over %d", len(p), maxPrefixLen)
	}
	for i := 0; i < len(p); i++ {
		if b := p[i]; b == '{' || b == '}' || b <= ' ' || b == 0x7f {
			return invalidf("prefix %q contains %q", p, b)
		}
	}
	return nil
}

// invalidf returns an error wrapping ErrInvalidArgument.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// checkID validates a caller's id; what names it in the error ("key", "user").
func checkID(what, id string) error {
	if id == "" {
		return invalidf("empty %s", what)
	}
	if len(id) > MaxIDLen {
		return invalidf("%s is %d bytes, over the cap of %d", what, len(id), MaxIDLen)
	}
	return nil
}

// ctxEnded returns ctx's error when err came from ctx's end: ctx is done, or
// err is a network timeout at or past ctx's deadline (go-redis sets the
// socket deadline from the context, so the read may time out a moment before
// the context reports it). Otherwise nil.
func ctxEnded(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var nerr net.Error
	if dl, ok := ctx.Deadline(); ok && errors.As(err, &nerr) && nerr.Timeout() && !time.Now().Add(time.Millisecond).Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// checkTTL validates a positive TTL that Redis can hold in milliseconds.
func checkTTL(what string, d time.Duration) error {
	if d < time.Millisecond {
		return invalidf("%s %v: want at least 1ms", what, d)
	}
	return nil
}

// key returns prefix:pattern:{id} followed by ":"+suffix for each suffix.
// The id is escaped (see the package doc) and must have passed checkID;
// suffixes are chosen by the library, or escaped with escapePart when they
// hold caller input.
func (c *Client) key(pattern, id string, suffixes ...string) string {
	n := len(c.prefix) + len(pattern) + len(id) + 4
	for _, s := range suffixes {
		n += len(s) + 1
	}
	var b strings.Builder
	b.Grow(n + escapedExtra(id, false))
	b.WriteString(c.prefix)
	b.WriteByte(':')
	b.WriteString(pattern)
	b.WriteString(":{")
	writeEscaped(&b, id, false)
	b.WriteByte('}')
	for _, s := range suffixes {
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String()
}

// escapePart escapes caller input placed after the hash tag, where ':' is a
// separator and is escaped too.
func escapePart(s string) string {
	if escapedExtra(s, true) == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + escapedExtra(s, true))
	writeEscaped(&b, s, true)
	return b.String()
}

func needsEscape(b byte, colon bool) bool {
	return b == '%' || b == '{' || b == '}' || b < ' ' || b == 0x7f || (colon && b == ':')
}

// escapedExtra returns how many bytes escaping adds to s.
func escapedExtra(s string, colon bool) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i], colon) {
			n += 2
		}
	}
	return n
}

const hexDigits = "0123456789ABCDEF"

func writeEscaped(b *strings.Builder, s string, colon bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c, colon) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
}

// reservedPatterns are the pattern words of the library's own keys.
var reservedPatterns = []string{"bm", "cache", "elect", "hll", "idem", "lb", "lock", "ps", "q", "rl", "rw", "sem", "conc", "sess", "st"}

// Key returns a key in the library's layout, prefix:pattern:{id}:suffix...,
// with id escaped inside the hash tag and each suffix escaped too: the key
// builder the patterns use, for subpackages and for your own scripts that
// must meet the library's keys in one slot. pattern must be a short word
// of your own: the library's (bm, cache, elect, hll, idem, lb, lock, ps, q,
// rl, rw, sem, conc, sess, st) are ErrInvalidArgument; scs is scsstore's.
func (c *Client) Key(pattern, id string, suffixes ...string) (string, error) {
	if err := checkID("key id", id); err != nil {
		return "", err
	}
	if pattern == "" || len(pattern) > 32 || strings.ContainsAny(pattern, "{}: \t\r\n") {
		return "", invalidf("key pattern %q: want a short word without braces, colons or spaces", pattern)
	}
	if slices.Contains(reservedPatterns, pattern) {
		return "", invalidf("key pattern %q is the library's", pattern)
	}
	esc := make([]string, len(suffixes))
	for i, s := range suffixes {
		esc[i] = escapePart(s)
	}
	return c.key(pattern, id, esc...), nil
}
