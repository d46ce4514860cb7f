package patterns

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Algorithm selects how a Limiter counts.
type Algorithm int

const (
	// FixedWindow counts events in windows of one period aligned to the
	// server clock. Cheapest; allows up to twice the rate across a window
	// boundary.
	FixedWindow Algorithm = iota + 1

	// SlidingWindowLog keeps one sorted-set member per admitted event of the
	// last period: exact (no window of the period ever holds more than the
	// rate), memory proportional to the rate.
	SlidingWindowLog

	// SlidingWindow weighs the previous fixed window by how much of it still
	// overlaps the last period: constant memory, an estimate that assumes
	// the previous window's events were spread evenly.
	SlidingWindow

	// TokenBucket holds up to Burst tokens, refilled continuously at Rate per
	// Period, in whole-number arithmetic (no drift).
	TokenBucket

	// GCRA is the generic cell rate algorithm as
	// github.com/go-redis/redis_rate/v10 decides it, in a script of the
	// library's own: one limit per call, RetryAfter rounded up, n above the
	// burst rejected (see Limiter.AllowN).
	GCRA
)

var algorithmNames = map[Algorithm]string{
	FixedWindow: "fixed-window", SlidingWindowLog: "sliding-log", SlidingWindow: "sliding-window",
	TokenBucket: "token-bucket", GCRA: "gcra",
}

// String returns the algorithm's name, e.g. "token-bucket".
func (a Algorithm) String() string {
	if s, ok := algorithmNames[a]; ok {
		return s
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

var (
	scriptRLFixedWindow      = newScript("rl_fixed_window")
	scriptRLSlidingLog       = newScript("rl_sliding_log")
	scriptRLSlidingWindow    = newScript("rl_sliding_window")
	scriptRLTokenBucket      = newScript("rl_token_bucket")
	scriptRLTokenBucketBatch = newScript("rl_token_bucket_batch")
	scriptRLGCRA             = newScript("rl_gcra")
)

// maxScaled bounds Burst*Period(ms) for the token bucket (twice it plus the
// rate, in fact), and Rate*Period(ms) for the others, so that the scripts'
// arithmetic stays exact in Lua's doubles.
const maxScaled = 1 << 53

// Limit is a rate: Rate events per Period, with bursts of up to Burst.
type Limit struct {
	// Rate is how many events a Period admits (>= 1).
	Rate int
	// Period is the length of the window, at least a millisecond and a whole
	// number of milliseconds.
	Period time.Duration
	// Burst is the token bucket's capacity and GCRA's burst; the window
	// algorithms ignore it.
	//
	// default: Rate
	Burst int
	// Calendar makes the limit a calendar quota (FixedWindow only): Rate
	// events per day or month of Location, reset at its midnight or on the
	// first of its month, on the server's clock. Period must then be 0.
	// See PerCalendarMonth.
	//
	// default: 0 (windows of Period)
	Calendar Calendar
	// Location is the time zone of a calendar quota's boundaries. A quota
	// whose Location changes keeps its count until the period under way
	// ends (at the old zone's boundary); the next one follows the new zone.
	//
	// default: nil (UTC)
	Location *time.Location
}

// PerSecond returns a limit of rate events per second, burst rate.
func PerSecond(rate int) Limit { return Limit{Rate: rate, Period: time.Second, Burst: rate} }

// PerMinute returns a limit of rate events per minute, burst rate.
func PerMinute(rate int) Limit { return Limit{Rate: rate, Period: time.Minute, Burst: rate} }

// PerHour returns a limit of rate events per hour, burst rate.
func PerHour(rate int) Limit { return Limit{Rate: rate, Period: time.Hour, Burst: rate} }

// PerDay returns a limit of rate events per 24 hours, burst rate.
func PerDay(rate int) Limit { return Limit{Rate: rate, Period: 24 * time.Hour, Burst: rate} }

// String returns e.g. "10/1s (burst 10)", or for a calendar quota
// "10000/month (Europe/Paris)".
func (l Limit) String() string {
	if l.Calendar != 0 {
		return fmt.Sprintf("%d/%v (%v)", l.Rate, l.Calendar, l.location())
	}
	return fmt.Sprintf("%d/%v (burst %d)", l.Rate, l.Period, l.burst())
}

func (l Limit) burst() int {
	if l.Burst <= 0 {
		return l.Rate
	}
	return l.Burst
}

// capacity is the most a single request may ask for under the algorithm.
func (l Limit) capacity(a Algorithm) int {
	if a == TokenBucket || a == GCRA {
		return l.burst()
	}
	return l.Rate
}

func (l Limit) validate(a Algorithm) error {
	if l.Calendar != 0 {
		return l.validateCalendar(a)
	}
	if l.Rate < 1 {
		return invalidf("limit rate %d: want at least 1", l.Rate)
	}
	if l.Period < time.Millisecond || l.Period%time.Millisecond != 0 {
		return invalidf("limit period %v: want a whole number of milliseconds, at least 1ms", l.Period)
	}
	if l.Burst < 0 {
		return invalidf("limit burst %d: want 0 (the rate) or more", l.Burst)
	}
	ms := l.Period.Milliseconds()
	if n := l.capacity(a); ms > maxScaled/int64(n) || ms > maxScaled/int64(l.Rate) {
		return invalidf("limit %v: rate or burst times the period in ms is over 2^53", l)
	}
	// The token bucket's script also holds twice the capacity plus the rate.
	if a == TokenBucket && int64(l.burst())*ms > (maxScaled-int64(l.Rate))/2 {
		return invalidf("limit %v: twice the burst times the period in ms, plus the rate, is over 2^53", l)
	}
	return nil
}

// LimitResult is a Limiter's decision.
type LimitResult struct {
	// Allowed reports whether the request was admitted (for Peek: whether it
	// would be).
	Allowed bool
	// Remaining is how many more events the most restrictive limit admits
	// now, after this request (for Peek: after it, were it admitted). A
	// denied request consumed nothing: Remaining is what is left, with every
	// algorithm.
	Remaining int
	// Limit is the most restrictive of the limits checked: the one with the
	// least remaining.
	Limit Limit
	// RetryAfter is, when the request was denied, how long until it would be
	// admitted if nothing else consumes meanwhile; rounded up to the
	// millisecond, never down. Zero when it was admitted.
	RetryAfter time.Duration
	// ResetAfter is how long until every limit is back to its full capacity
	// (if nothing else consumes meanwhile).
	ResetAfter time.Duration
	// Local reports a decision this process made without Redis: by the
	// fallback while Redis could not be reached (LimiterOptions.
	// FallbackInstances; Remaining and the times are then this process's
	// share's), or a denial repeated until the RetryAfter Redis gave
	// (LimiterOptions.DenyLocally).
	Local bool
}

// Limiter makes rate-limit decisions with one algorithm. Each decision is one
// script and one round trip, on the server's clock. Keys: every limit of an
// id has a key of its own, named by its period, prefix:rl:{id}:NAME:ALGO:PERIODms,
// all in the id's slot, each with a TTL of at most two periods (the token
// bucket: at least the time until the bucket is full, at most that plus one
// window of Burst/Rate periods; GCRA: the time until no cell is in use).
// Limits of one period in one call are told apart by their order: the
// second has a key of its own, prefix:rl:{id}:NAME:ALGO:PERIODms:2, and so on.
//
// Decisions are not idempotent: like every script call of the library they
// are sent at most once (see the package doc), so a lost reply is an error,
// never a second consumption.
//
// A limit whose rate or burst changes keeps what was used, with every
// algorithm: its key is named by its period alone, and the first call under
// the new limit carries the state over in the same script. The window
// algorithms keep their count: lowering an id from 1000 to 100 an hour
// after 900 were used admits nothing more until they leave the window;
// raising 100 to 1000 after 90 admits 910. The token bucket and GCRA keep
// the tokens (cells) in use, not the fraction: the same number of tokens is
// missing from the new bucket and refills at the new rate. A customer moved
// from 60 to 6000 a minute with 59 used has 5941 left (a fraction would
// leave 99); moved from 6000 down to 60 with 3000 used, the bucket stays
// empty until the 2940 over its capacity have refilled at 60 a minute (a
// fraction would give 30 at once). Tokens are never created by a change, so
// limits that alternate on one key (two plans, a rolling deploy) cannot
// mint a budget, where a fraction or a cap at the new capacity would. A
// limit of another period is another limit, with a key of its own.
type Limiter struct {
	c    *Client
	name string // escaped
	algo Algorithm

	mu     sync.RWMutex
	limits map[Limit]*limitArgs // validated limits, their key suffix and boxed ARGV

	calSkew atomic.Int64  // server clock - local clock, ms, as a stale calendar reply told
	local   *limiterLocal // the in-process layer (ratelimit_local.go); nil when off
}

// limitArgs is what a validated Limit contributes to a call, built once.
type limitArgs struct {
	suffix string // NAME:ALGO:PERIODms
	argv   [2]any // the window scripts' ARGV: rate, period in ms
	// tb is the token bucket's packed argument for n = 1 (see tbRecord).
	tb any
}

// maxCachedLimits bounds Limiter.limits: limits are usually a few constants.
const maxCachedLimits = 1024

// LimiterOptions configure a Limiter. A nil *LimiterOptions means all
// defaults.
type LimiterOptions struct {
	// Algorithm decides how events are counted; see Algorithm.
	//
	// default: TokenBucket
	Algorithm Algorithm

	// FallbackInstances turns on the local fallback: while Redis cannot be
	// reached (a network error, a timeout that is not the caller's
	// context's, a server that refuses to serve: never invalid input or an
	// ended context), AllowN decides in this process, admitting each key at
	// Rate/FallbackInstances per Period with a burst of
	// capacity/FallbackInstances (at least 1), starting from what Redis last
	// reported for the key. Set it to the number of processes that share the
	// limits. Once Redis answers, each key's next decision first consumes in
	// Redis what the key's local share still holds of the events admitted
	// locally, so the processes find no fresh budget on top of what they
	// admitted. See docs/rate-limits.md, "During an outage".
	//
	// default: 0 (no fallback: AllowN returns Redis's error)
	FallbackInstances int

	// FallbackProbeInterval is, during an outage, how often one call tries
	// Redis again (the others decide locally without a round trip): the
	// longest the fallback outlasts the outage.
	//
	// default: 100ms
	FallbackProbeInterval time.Duration

	// DenyLocally turns on the local deny: once Redis denies a key with a
	// RetryAfter d, AllowN denies the same key (for as many events or
	// more) in this process, without a round trip, until d has passed;
	// then one call at a time asks Redis (all do once the key has been
	// quiet until Redis said it would be full again). Redis's own answers
	// in that time could differ only if the key's budget came back sooner
	// than d says (a Reset, a changed limit), or by the one round trip
	// another call spends at Redis. See docs/rate-limits.md, "Floods".
	//
	// default: false (every decision is a round trip)
	DenyLocally bool

	// LocalKeys bounds the keys the fallback and the local deny hold in
	// memory (the least recently used beyond it are forgotten: a key
	// forgotten during an outage is handed back without what it admitted).
	//
	// default: 10,000
	LocalKeys int
}

func (o *LimiterOptions) algorithm() Algorithm {
	if o == nil || o.Algorithm == 0 {
		return TokenBucket
	}
	return o.Algorithm
}

// Limiter returns the rate limiter named name. Limiters of different names
// count separately, even for the same key and limit.
func (c *Client) Limiter(name string, opt *LimiterOptions) (*Limiter, error) {
	if err := checkID("limiter name", name); err != nil {
		return nil, err
	}
	if len(name) > maxLimiterName {
		return nil, invalidf("limiter name of %d bytes, over %d", len(name), maxLimiterName)
	}
	algo := opt.algorithm()
	if _, ok := algorithmNames[algo]; !ok {
		return nil, invalidf("unknown algorithm %d", int(algo))
	}
	local, err := newLimiterLocal(opt)
	if err != nil {
		return nil, err
	}
	l := &Limiter{c: c, name: escapePart(name), algo: algo, limits: map[Limit]*limitArgs{}, local: local}
	return l, nil
}

// maxLimiterName bounds a limiter's name, which every one of its keys holds.
const maxLimiterName = 64

// Algorithm returns the limiter's algorithm.
func (l *Limiter) Algorithm() Algorithm { return l.algo }

// Allow is AllowN with n = 1.
func (l *Limiter) Allow(ctx context.Context, key string, limits ...Limit) (LimitResult, error) {
	return l.AllowN(ctx, key, 1, limits...)
}

// AllowN admits n events for key if every limit has room for all of them,
// and consumes nothing otherwise (all or nothing). Several limits (say
// PerSecond(10) and PerDay(1000)) are checked and consumed atomically.
//
// It returns ErrInvalidArgument, and writes nothing, for an empty or too long
// key, no limit, an invalid limit, n < 1, or n above what a limit can ever
// admit at once (its rate, or its burst for TokenBucket and GCRA): such a
// request would otherwise be denied forever. GCRA takes exactly one limit.
func (l *Limiter) AllowN(ctx context.Context, key string, n int, limits ...Limit) (LimitResult, error) {
	if l.local != nil {
		return l.allowLocal(ctx, key, n, limits)
	}
	if l.c.observer != nil {
		return l.observedDecide(ctx, OpAllow, key, n, true, limits)
	}
	return l.decide(ctx, key, n, true, limits)
}

// Peek reports whether n events would be admitted now, consuming nothing
// and writing nothing.
func (l *Limiter) Peek(ctx context.Context, key string, n int, limits ...Limit) (LimitResult, error) {
	if l.c.observer != nil {
		return l.observedDecide(ctx, OpPeek, key, n, false, limits)
	}
	return l.decide(ctx, key, n, false, limits)
}

// Reset forgets what key consumed under limits, in one round trip.
func (l *Limiter) Reset(ctx context.Context, key string, limits ...Limit) (err error) {
	ctx, done := l.observe(ctx, OpReset)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	keys, err := l.keys(key, limits)
	if err != nil {
		return err
	}
	if err := l.c.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("patterns: rate limit reset %q: %w", key, err)
	}
	return nil
}

func (l *Limiter) script() *script {
	switch l.algo {
	case FixedWindow:
		return scriptRLFixedWindow
	case SlidingWindowLog:
		return scriptRLSlidingLog
	case SlidingWindow:
		return scriptRLSlidingWindow
	default:
		return scriptRLTokenBucket
	}
}

// limitArgs validates lim and returns its suffix and ARGV, from the cache
// when it has been seen before.
func (l *Limiter) limitArgs(lim Limit) (*limitArgs, error) {
	l.mu.RLock()
	la := l.limits[lim]
	l.mu.RUnlock()
	if la != nil {
		return la, nil
	}
	if err := lim.validate(l.algo); err != nil {
		return nil, err
	}
	var buf [128]byte
	b := append(append(buf[:0], l.name...), ':')
	b = append(b, algoSuffix[l.algo]...)
	if lim.Calendar != 0 {
		b = append(append(b, ':'), lim.Calendar.String()...)
	} else {
		b = strconv.AppendInt(append(b, ':'), lim.Period.Milliseconds(), 10)
	}
	la = &limitArgs{suffix: string(b), argv: [2]any{lim.Rate, lim.Period.Milliseconds()}}
	if l.algo == TokenBucket {
		la.tb = string(tbRecord(nil, lim, 1))
	}
	l.mu.Lock()
	if len(l.limits) < maxCachedLimits {
		l.limits[lim] = la
	}
	l.mu.Unlock()
	return la, nil
}

// check validates key and limits.
func (l *Limiter) check(key string, limits []Limit) error {
	if err := checkID("rate limit key", key); err != nil {
		return err
	}
	if len(limits) == 0 {
		return invalidf("no limit")
	}
	if l.algo == GCRA && len(limits) > 1 {
		return invalidf("GCRA checks one limit per call, got %d", len(limits))
	}
	return nil
}

// limitKey returns the key of limits[i], whose suffix is la's, for id: the
// limit's period names it, and the k-th limit (k >= 2) of one period in a
// call has ":k" after it.
func (l *Limiter) limitKey(id string, la *limitArgs, limits []Limit, i int) string {
	k := l.c.key("rl", id, la.suffix)
	same := 1
	for _, prev := range limits[:i] {
		if prev.Period == limits[i].Period && prev.Calendar == limits[i].Calendar {
			same++
		}
	}
	if same > 1 {
		k += ":" + strconv.Itoa(same)
	}
	return k
}

// keys validates key and limits and returns one key per limit.
func (l *Limiter) keys(key string, limits []Limit) ([]string, error) {
	if err := l.check(key, limits); err != nil {
		return nil, err
	}
	keys := make([]string, len(limits))
	for i, lim := range limits {
		la, err := l.limitArgs(lim)
		if err != nil {
			return nil, err
		}
		keys[i] = l.limitKey(key, la, limits, i)
	}
	return keys, nil
}

var algoSuffix = map[Algorithm]string{
	FixedWindow: "fw", SlidingWindowLog: "sl", SlidingWindow: "sw", TokenBucket: "tb", GCRA: "gcra",
}

// prepare validates a decision and returns its script call, building the
// EVALSHA command line in one go:
// evalsha SHA N key1..keyN n mode rate1 period1 ... rateN periodN,
// or for the token bucket (see rl_token_bucket.lua)
// evalsha SHA N key1..keyN record1..recordN [peek].
func (l *Limiter) prepare(key string, n int, consume bool, limits []Limit) (call, error) {
	if err := l.check(key, limits); err != nil {
		return call{}, err
	}
	if n < 1 {
		return call{}, invalidf("n = %d: want at least 1", n)
	}
	s := l.script()
	tb := l.algo == TokenBucket
	line := make([]any, 3+len(limits), 6+3*len(limits))
	line[0], line[1], line[2] = "evalsha", s.sha, len(limits)
	if !tb {
		mode := 0
		if consume {
			mode = 1
		}
		line = append(line, n, mode)
	}
	var records []byte
	for i, lim := range limits {
		la, err := l.limitArgs(lim)
		if err != nil {
			return call{}, err
		}
		if c := lim.capacity(l.algo); n > c {
			return call{}, invalidf("n = %d is more than limit %v can ever admit at once (%d)", n, lim, c)
		}
		line[3+i] = l.limitKey(key, la, limits, i)
		switch {
		case lim.Calendar != 0:
			line = append(line, lim.Rate, calendarBounds(lim, l.calendarClock()))
		case !tb:
			line = append(line, la.argv[:]...)
		case n == 1 && len(limits) == 1:
			line = append(line, la.tb)
		default:
			records = tbRecord(records, lim, n)
		}
	}
	if records != nil {
		line = append(line, string(records))
	}
	if tb && !consume {
		line = append(line, "peek")
	}
	return call{script: s, line: line}, nil
}

// tbRecord appends the token bucket's argument for lim and a request of n:
// the cost n * period in ms, the rate, and the capacity burst * period in ms,
// as three little-endian float64 (exact: validate keeps them below 2^53).
func tbRecord(b []byte, lim Limit, n int) []byte {
	ms := lim.Period.Milliseconds()
	for _, v := range [3]int64{int64(n) * ms, int64(lim.Rate), int64(lim.burst()) * ms} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(v)))
	}
	return b
}

func (l *Limiter) decide(ctx context.Context, key string, n int, consume bool, limits []Limit) (LimitResult, error) {
	if l.algo == GCRA {
		return l.decideGCRA(ctx, key, n, consume, limits)
	}
	cl, err := l.prepare(key, n, consume, limits)
	if err != nil {
		return LimitResult{}, err
	}
	res, err := l.parse(cl.script.runArgs(ctx, l.c.scr, cl.line), limits, n)
	if l.calendarRetry(err) {
		// Calendar boundaries around the server's clock this time.
		if cl, err = l.prepare(key, n, consume, limits); err != nil {
			return LimitResult{}, err
		}
		res, err = l.parse(cl.script.runArgs(ctx, l.c.scr, cl.line), limits, n)
	}
	if err != nil {
		return LimitResult{}, fmt.Errorf("patterns: rate limit %q: %w", key, err)
	}
	return res, nil
}

// parse reads the reply of the limiter's script for a request of n.
func (l *Limiter) parse(cmd *redis.Cmd, limits []Limit, n int) (LimitResult, error) {
	switch l.algo {
	case TokenBucket:
		return parseTokenBucket(cmd, limits, n)
	case FixedWindow:
		return parseFixedWindow(cmd, limits, n)
	case SlidingWindowLog:
		return parseSlidingLog(cmd, limits)
	}
	return parseResult(cmd, limits)
}

// parseSlidingLog reads rl_sliding_log's reply: for one limit, a request
// admitted and consumed is an integer, what is left (the limit is full again
// one period later: its newest event is now); anything else is the table
// parseResult reads.
func parseSlidingLog(cmd *redis.Cmd, limits []Limit) (LimitResult, error) {
	v, err := cmd.Result()
	if err != nil {
		return LimitResult{}, err
	}
	left, ok := v.(int64)
	if !ok {
		return parseResult(cmd, limits)
	}
	if len(limits) != 1 || left < 0 || left >= int64(limits[0].Rate) {
		return LimitResult{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	return LimitResult{Allowed: true, Remaining: int(left), ResetAfter: limits[0].Period, Limit: limits[0]}, nil
}

// limitOutcome is one limit's part of a decision.
type limitOutcome struct {
	allowed      bool
	remaining    int
	retry, reset int64 // ms
}

// foldLimits makes the LimitResult of a decision over limits from each limit's
// outcome: every limit must agree on allowed (the scripts decide for all at
// once); Remaining and Limit are the most restrictive limit's, RetryAfter
// and ResetAfter the longest. It reports false when outcome does, or when
// the limits disagree: a reply the library cannot read.
func foldLimits(limits []Limit, outcome func(i int, lim Limit) (limitOutcome, bool)) (LimitResult, bool) {
	var res LimitResult
	var retry, reset int64
	for i, lim := range limits {
		o, ok := outcome(i, lim)
		if !ok || (i > 0 && o.allowed != res.Allowed) {
			return LimitResult{}, false
		}
		res.Allowed = o.allowed
		if i == 0 || o.remaining < res.Remaining {
			res.Remaining, res.Limit = o.remaining, lim
		}
		retry, reset = max(retry, o.retry), max(reset, o.reset)
	}
	res.RetryAfter = time.Duration(retry) * time.Millisecond
	res.ResetAfter = time.Duration(reset) * time.Millisecond
	return res, true
}

// parseFixedWindow reads rl_fixed_window's reply: per limit, the count after
// the request (> 0) if it was admitted, or -(count + 1) as it is if it was
// denied, and the ms left in the window.
func parseFixedWindow(cmd *redis.Cmd, limits []Limit, n int) (LimitResult, error) {
	v, err := cmd.Slice()
	if err != nil {
		return LimitResult{}, err
	}
	if now, ok := v[0].(int64); ok && len(v) == 1 {
		return LimitResult{}, errCalendarStale{now}
	}
	if len(v) != 2*len(limits) {
		return LimitResult{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	res, ok := foldLimits(limits, func(i int, lim Limit) (limitOutcome, bool) {
		count, ok1 := v[2*i].(int64)
		left, ok2 := v[2*i+1].(int64)
		if !ok1 || !ok2 || count == 0 || left < 1 {
			return limitOutcome{}, false
		}
		o := limitOutcome{allowed: count > 0, reset: left}
		if count < 0 {
			count = -count - 1
			if count+int64(n) > int64(lim.Rate) {
				o.retry = left
			}
		}
		o.remaining = int(max(int64(lim.Rate)-count, 0))
		return o, true
	})
	if !ok {
		return LimitResult{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	return res, nil
}

// parseTokenBucket reads rl_token_bucket's reply: per limit, the distance
// from full in 1/rate ms after the request (> 0) if it was admitted, or
// minus the distance as it is (< 0) if it was denied; one integer for one
// limit, a table otherwise. The arithmetic is whole-number, in int64.
func parseTokenBucket(cmd *redis.Cmd, limits []Limit, n int) (LimitResult, error) {
	v, err := cmd.Result()
	if err != nil {
		return LimitResult{}, err
	}
	vals, ok := v.([]any)
	if !ok {
		vals = []any{v}
	}
	if len(vals) != len(limits) {
		return LimitResult{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	res, ok := foldLimits(limits, func(i int, lim Limit) (limitOutcome, bool) {
		d, ok := vals[i].(int64)
		if !ok || d == 0 {
			return limitOutcome{}, false
		}
		ms, rate := lim.Period.Milliseconds(), int64(lim.Rate)
		capacity := int64(lim.burst()) * ms
		o := limitOutcome{allowed: d > 0}
		if d < 0 {
			d = -d
			o.retry = ceilDiv(d+int64(n)*ms-capacity, rate)
		}
		o.remaining = int(max(capacity-d, 0) / ms)
		o.reset = ceilDiv(d, rate)
		return o, true
	})
	if !ok {
		return LimitResult{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	return res, nil
}

// ceilDiv is a / b rounded up, for a >= 0 and b > 0.
func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// parseResult reads a script's {allowed, remaining, retry_ms, reset_ms,
// index of the binding limit (1-based)}.
func parseResult(cmd *redis.Cmd, limits []Limit) (LimitResult, error) {
	v, err := cmd.Slice()
	if err != nil {
		return LimitResult{}, err
	}
	if len(v) != 5 {
		return LimitResult{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	var x [5]int64
	for i := range x {
		n, ok := v[i].(int64)
		if !ok {
			return LimitResult{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
		}
		x[i] = n
	}
	if x[4] < 1 || int(x[4]) > len(limits) {
		return LimitResult{}, fmt.Errorf("%w: limit index %d", ErrUnexpectedReply, x[4])
	}
	return LimitResult{
		Allowed:    x[0] == 1,
		Remaining:  int(x[1]),
		RetryAfter: time.Duration(x[2]) * time.Millisecond,
		ResetAfter: time.Duration(x[3]) * time.Millisecond,
		Limit:      limits[x[4]-1],
	}, nil
}

// decideGCRA runs rl_gcra, GCRA as redis_rate decides it, with what the
// library corrects in redis_rate's: n above the burst is rejected (redis_rate
// would deny such a request forever, reporting a RetryAfter that never comes
// true), RetryAfter is rounded up to the millisecond (redis_rate truncates a
// float of seconds, so waiting exactly RetryAfter can still be denied), 0
// and not -1 when admitted, and Remaining is computed from the cells in use
// (redis_rate truncates a float: one cell left can read as none; and a
// denied request reads as none left, where the other algorithms report what
// is left).
func (l *Limiter) decideGCRA(ctx context.Context, key string, n int, consume bool, limits []Limit) (LimitResult, error) {
	keys, err := l.keys(key, limits)
	if err != nil {
		return LimitResult{}, err
	}
	lim := limits[0]
	if n < 1 {
		return LimitResult{}, invalidf("n = %d: want at least 1", n)
	}
	if n > lim.burst() {
		return LimitResult{}, invalidf("n = %d is more than limit %v can ever admit at once (%d)", n, lim, lim.burst())
	}
	cost := n
	if !consume {
		cost = 0
	}
	r, err := l.runGCRA(ctx, keys[0], lim, cost, "n")
	if err != nil {
		return LimitResult{}, fmt.Errorf("patterns: rate limit %q: %w", key, err)
	}
	res := r.result(lim)
	if consume {
		res.Allowed = r.allowed == n
	} else if res.Allowed = res.Remaining >= n; res.Allowed {
		res.Remaining -= n // as the other algorithms: what is left after it
	}
	if !res.Allowed {
		res.RetryAfter = ceilMs(r.retryAfter)
		if !consume {
			// Time until n more cells fit: one emission interval per missing one.
			interval := lim.Period / time.Duration(lim.Rate)
			res.RetryAfter = ceilMs(time.Duration(n-res.Remaining) * interval)
		}
	}
	return res, nil
}

// gcraReply is rl_gcra's reply.
type gcraReply struct {
	allowed                int
	resetAfter, retryAfter time.Duration
}

// result is the LimitResult of r but for Allowed and RetryAfter: Remaining
// from the cells in use (the time they take to drain, in emission
// intervals), ResetAfter rounded up.
func (r gcraReply) result(lim Limit) LimitResult {
	interval := lim.Period / time.Duration(lim.Rate)
	used := int(math.Ceil(float64(r.resetAfter)/float64(interval) - 1e-3))
	return LimitResult{Limit: lim, Remaining: max(lim.burst()-used, 0), ResetAfter: ceilMs(r.resetAfter)}
}

// runGCRA runs rl_gcra for n cells of lim at k, in mode "n" or "most".
func (l *Limiter) runGCRA(ctx context.Context, k string, lim Limit, n int, mode string) (gcraReply, error) {
	line := []any{"evalsha", scriptRLGCRA.sha, 1, k, lim.Rate, lim.burst(), lim.Period.Milliseconds(), n, mode}
	v, err := scriptRLGCRA.runArgs(ctx, l.c.scr, line).Slice()
	if err != nil {
		return gcraReply{}, err
	}
	var r gcraReply
	ms := func(x any) (time.Duration, bool) {
		s, ok := x.(string)
		f, err := strconv.ParseFloat(s, 64)
		if !ok || err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return time.Duration(f * float64(time.Millisecond)), true
	}
	allowed, ok1 := v[0].(int64)
	var ok2, ok3 bool
	if len(v) == 3 {
		r.resetAfter, ok2 = ms(v[1])
		r.retryAfter, ok3 = ms(v[2])
	}
	if !ok1 || !ok2 || !ok3 || allowed < 0 || allowed > int64(n) {
		return gcraReply{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	r.allowed = int(allowed)
	return r, nil
}

// ceilMs rounds d, a reading of rl_gcra's float arithmetic, to the
// microsecond (the resolution of the server's TIME; the float error is a few
// hundred ns at most), then up to a whole millisecond when a fraction of one
// is left: an exact 60s stays 60s.
func ceilMs(d time.Duration) time.Duration {
	us := (d + time.Microsecond/2) / time.Microsecond
	if us <= 0 {
		return 0
	}
	return time.Duration((us+999)/1000) * time.Millisecond
}

// LimitRequest is one decision of a batch.
type LimitRequest struct {
	// Key is the id limited, as for AllowN.
	Key string
	// N is the cost, as AllowN's n; 0 means 1, a negative N is
	// ErrInvalidArgument.
	//
	// default: 1
	N int
	// Limits are checked together, as for AllowN.
	Limits []Limit
}

// AllowBatch makes one decision per request, all in one pipelined round trip
// (each decision is atomic on its own; the batch as a whole is not). Invalid
// requests fail the whole batch with ErrInvalidArgument before anything is
// sent. A request without N costs 1; reqs is never written. GCRA is not
// supported in batches.
func (l *Limiter) AllowBatch(ctx context.Context, reqs []LimitRequest) (res []LimitResult, err error) {
	ctx, done := l.observe(ctx, OpBatch)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if l.algo == GCRA {
		return nil, invalidf("GCRA decisions cannot be batched")
	}
	reqs = defaultCosts(reqs)
	calls := make([]call, len(reqs))
	for i, r := range reqs {
		cl, err := l.prepare(r.Key, r.N, true, r.Limits)
		if err != nil {
			return nil, fmt.Errorf("%w (batch request %d)", err, i)
		}
		calls[i] = cl
	}
	cmds := make([]*redis.Cmd, len(reqs))
	if l.algo == TokenBucket {
		err = l.tokenBucketBatch(ctx, reqs, calls, cmds)
	} else {
		err = l.c.runBatch(ctx, calls)
		for i := range calls {
			cmds[i] = calls[i].cmd
		}
	}
	out := make([]LimitResult, len(reqs))
	for i, cmd := range cmds {
		res, rerr := l.parse(cmd, reqs[i].Limits, reqs[i].N)
		if l.calendarRetry(rerr) {
			// Calendar boundaries around the server's clock, alone.
			res, rerr = l.decide(ctx, reqs[i].Key, reqs[i].N, true, reqs[i].Limits)
		}
		if rerr != nil {
			if err == nil {
				err = rerr
			}
			return nil, fmt.Errorf("patterns: rate limit batch: %w", err)
		}
		out[i] = res
	}
	return out, nil
}

// defaultCosts returns reqs with every N of 0 made 1 (the default), in a
// copy when there is one: the caller's slice is never written.
func defaultCosts(reqs []LimitRequest) []LimitRequest {
	for i := range reqs {
		if reqs[i].N == 0 {
			reqs = slices.Clone(reqs)
			for j := i; j < len(reqs); j++ {
				if reqs[j].N == 0 {
					reqs[j].N = 1
				}
			}
			break
		}
	}
	return reqs
}

// tbBatchMax caps the requests one rl_token_bucket_batch call decides, so
// that one call holds the server for a bounded time.
const tbBatchMax = 100

// tokenBucketBatch decides a token-bucket batch with rl_token_bucket_batch:
// one script call per group of requests whose keys can meet in a script
// (one slot on a cluster, any on a single server; on a Ring, one request per
// group), at most tbBatchMax each, all groups in one pipeline. It sets
// cmds[i] to a command holding request i's reply as rl_token_bucket gives
// it, or the group's error; calls are the requests' prepared calls (their
// keys).
func (l *Limiter) tokenBucketBatch(ctx context.Context, reqs []LimitRequest, calls []call, cmds []*redis.Cmd) error {
	// A request of more than 255 limits (the batch script's layout holds a
	// count per byte) goes alone, as its own prepared call.
	type group struct {
		reqs   []int
		single bool
	}
	var groups []*group
	bySlot := map[int]*group{}
	_, cluster := l.c.rdb.(*redis.ClusterClient)
	_, ring := l.c.rdb.(*redis.Ring)
	for i := range reqs {
		slot := 0
		if cluster {
			slot = clusterSlot(calls[i].line[3].(string))
		}
		if len(reqs[i].Limits) > 255 {
			groups = append(groups, &group{reqs: []int{i}, single: true})
			delete(bySlot, slot) // later requests of its slot are decided after it
			continue
		}
		g := bySlot[slot]
		if g == nil || ring || len(g.reqs) == tbBatchMax {
			g = &group{}
			groups = append(groups, g)
			bySlot[slot] = g
		}
		g.reqs = append(g.reqs, i)
	}
	batch := make([]call, len(groups))
	for gi, g := range groups {
		if g.single {
			batch[gi] = calls[g.reqs[0]]
			continue
		}
		var keys []string
		var records, layout []byte
		for _, i := range g.reqs {
			lims := reqs[i].Limits
			for j, lim := range lims {
				keys = append(keys, calls[i].line[3+j].(string))
				records = tbRecord(records, lim, reqs[i].N)
			}
			layout = append(layout, byte(len(lims)))
		}
		batch[gi] = scriptRLTokenBucketBatch.call(keys, string(records), string(layout))
	}
	err := l.c.runBatch(ctx, batch)
	for gi, g := range groups {
		if g.single {
			cmds[g.reqs[0]] = batch[gi].cmd
			continue
		}
		v, gerr := batch[gi].cmd.Slice()
		base := 0
		for _, i := range g.reqs {
			m := len(reqs[i].Limits)
			cmd := redis.NewCmd(ctx)
			switch {
			case gerr != nil:
				cmd.SetErr(gerr)
			case base+m > len(v):
				cmd.SetErr(fmt.Errorf("%w: %d replies for more keys", ErrUnexpectedReply, len(v)))
			case m == 1:
				cmd.SetVal(v[base])
			default:
				cmd.SetVal(v[base : base+m])
			}
			cmds[i] = cmd
			base += m
		}
	}
	return err
}
