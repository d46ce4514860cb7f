package patterns

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Idempotency errors.
var (
	// ErrIdempotencyInProgress is returned by Do when another caller holds
	// the key's lease (its operation is running) and the Idempotency does
	// not wait, or the caller's context ended while it waited.
	ErrIdempotencyInProgress = errors.New("patterns: idempotent operation in progress")

	// ErrIdempotencyMismatch is returned by Do when the key was used before
	// with another fingerprint (another request). fn was not run.
	ErrIdempotencyMismatch = errors.New("patterns: idempotency key reused with another fingerprint")

	// ErrIdempotencyLeaseLost is returned by Do, together with fn's value,
	// when fn outlasted the lease: fn ran, but its result was not stored, and
	// another caller may have run it too.
	ErrIdempotencyLeaseLost = errors.New("patterns: idempotency lease lost")

	// ErrIdempotencyStoredError is matched by the error Do replays when
	// IdempotencyOptions.StoreError kept fn's error: the error's text is
	// fn's original error's.
	ErrIdempotencyStoredError = errors.New("patterns: stored error")
)

var scriptIdemBegin = newScript("idem_begin")
var scriptIdemEnd = newScript("idem_end")

const (
	defaultIdemLease     = 30 * time.Second
	defaultIdemRetention = 24 * time.Hour
	// idemSignalTTL bounds the life of a key's signal list.
	idemSignalTTL = 10 * time.Second
	// idemPollCap is the longest a waiter blocks before it looks again: the
	// fallback when a wake-up is lost, and the longest a waiter holds a pool
	// connection at a time.
	idemPollCap = 500 * time.Millisecond
)

// IdempotencyOptions configure an Idempotency. A nil *IdempotencyOptions
// means all defaults.
type IdempotencyOptions struct {
	// Lease is how long the first caller of a key holds it while fn runs.
	// A holder that dies loses the key when the lease ends, and the next
	// caller runs fn again. It must exceed the longest fn.
	//
	// default: 30 seconds
	Lease time.Duration

	// Retention is how long a result is kept and replayed.
	//
	// default: 24 hours
	Retention time.Duration

	// Wait makes a caller that finds the key's operation running wait for
	// its result (bounded by its context) instead of returning
	// ErrIdempotencyInProgress at once. The waiters of a key in one process
	// share one BLPOP on the key's signal list, woken when the result lands,
	// for at most 500ms at a time: it holds one connection of the go-redis
	// pool while it blocks.
	//
	// default: false
	Wait bool

	// StoreError reports whether an error of fn is final: final errors are
	// stored and replayed (matching ErrIdempotencyStoredError) like results.
	// Other errors release the lease, so that a retry runs fn again.
	//
	// default: nil (no error is stored)
	StoreError func(err error) bool

	// Codec encodes the values of IdempotencyDo.
	//
	// default: JSON
	Codec Codec
}

func (o *IdempotencyOptions) lease() time.Duration {
	if o == nil || o.Lease == 0 {
		return defaultIdemLease
	}
	return o.Lease
}

func (o *IdempotencyOptions) retention() time.Duration {
	if o == nil || o.Retention == 0 {
		return defaultIdemRetention
	}
	return o.Retention
}

func (o *IdempotencyOptions) wait() bool { return o != nil && o.Wait }

func (o *IdempotencyOptions) storeError() func(error) bool {
	if o == nil {
		return nil
	}
	return o.StoreError
}

func (o *IdempotencyOptions) codec() Codec {
	if o == nil || o.Codec == nil {
		return JSON
	}
	return o.Codec
}

// Idempotency runs an operation once per key and replays its result to every
// later caller with the same key: the server side of idempotency keys.
//
// Keys: prefix:idem:{id} (a hash: state, fingerprint, result), :fence (the
// fencing counter) and :signal (wakes waiters), where id is the
// Idempotency's name and the caller's key. All have TTLs: the record the
// lease while running and the retention once done, the counter 7 days after
// its last lease, the signal list 10 seconds.
type Idempotency struct {
	c         *Client
	name      string
	lease     time.Duration
	retention time.Duration
	wait      bool
	storeErr  func(error) bool
	codec     Codec
	leaseArg  any
	retainArg any
}

// Idempotency returns the idempotency store named name. It returns
// ErrInvalidArgument for an empty or too long name or a negative duration.
func (c *Client) Idempotency(name string, opt *IdempotencyOptions) (*Idempotency, error) {
	if err := checkID("idempotency name", name); err != nil {
		return nil, err
	}
	i := &Idempotency{c: c, name: name, lease: opt.lease(), retention: opt.retention(),
		wait: opt.wait(), storeErr: opt.storeError(), codec: opt.codec()}
	if err := checkTTL("idempotency lease", i.lease); err != nil {
		return nil, err
	}
	if err := checkTTL("idempotency retention", i.retention); err != nil {
		return nil, err
	}
	i.leaseArg = i.lease.Milliseconds()
	i.retainArg = i.retention.Milliseconds()
	return i, nil
}

// IdempotencyLease is what fn learns about the lease it runs under.
type IdempotencyLease struct {
	// Key is the caller's key.
	Key string
	// Fence is a fencing token greater than every one issued before for the
	// key: when a holder outlives its lease and another caller runs fn too,
	// the later run has the greater token. Pass it to the effect (a
	// conditional write that refuses a token lower than one it has seen) to
	// make the effect itself exactly once. It is never below the server's
	// clock in microseconds at the grant, and keeps rising across a failover
	// while the servers' clocks agree to within the failover's duration (see
	// Client.Obtain).
	Fence int64
	// Deadline is when the lease ends, by this process's clock (an
	// estimate: the lease is kept on the server's clock).
	Deadline time.Time
}

// IdempotencyResult is what Do returns.
type IdempotencyResult struct {
	// Value is fn's value, or the stored one on a replay.
	Value []byte
	// Replay reports that fn was not run: Value is the stored result.
	Replay bool
	// Fence is the lease's fencing token when fn ran, 0 on a replay.
	Fence int64
}

// idemKeys are the keys of one id.
type idemKeys struct{ rec, fence, signal string }

// keys validates key and returns its keys.
func (i *Idempotency) keys(key string) (idemKeys, error) {
	if err := checkID("idempotency key", key); err != nil {
		return idemKeys{}, err
	}
	// The name and the key meet in one id, the name length-prefixed so that
	// no two (name, key) pairs share an id.
	id := strconv.Itoa(len(i.name)) + ":" + i.name + ":" + key
	return idemKeys{rec: i.c.key("idem", id), fence: i.c.key("idem", id, "fence"), signal: i.c.key("idem", id, "signal")}, nil
}

// fingerprintHash folds a fingerprint of any length into 32 bytes.
func fingerprintHash(fp string) string {
	if fp == "" {
		return ""
	}
	h := sha256.Sum256([]byte(fp))
	return string(h[:])
}

// Do runs fn once for key and stores its value for the retention; a later
// call with the same key and fingerprint returns the stored value without
// running fn, with Replay set. fingerprint identifies the request (for
// instance a hash of its body): the same key with another fingerprint returns
// ErrIdempotencyMismatch. While another caller runs fn, Do returns
// ErrIdempotencyInProgress, or waits for the result with
// IdempotencyOptions.Wait. An error of fn is returned as is and releases the
// key (unless StoreError keeps it); a panic of fn releases the key and is
// raised again. fn runs on ctx.
//
// The effect is exactly once while holders finish within the lease; a holder
// that dies or outlasts it lets the next caller run fn again (at least
// once): use IdempotencyLease.Fence to guard the effect.
//
// Do costs one round trip for a replay, two when fn runs.
func (i *Idempotency) Do(ctx context.Context, key, fingerprint string, fn func(ctx context.Context, lease IdempotencyLease) ([]byte, error)) (result IdempotencyResult, err error) {
	ctx, done := i.c.observe(ctx, PatternIdempotency, OpDo, i.name)
	defer func() { done.end(idemOutcome(result, err), err) }()
	if fn == nil {
		return IdempotencyResult{}, invalidf("nil idempotency func")
	}
	k, err := i.keys(key)
	if err != nil {
		return IdempotencyResult{}, err
	}
	token, err := newToken()
	if err != nil {
		return IdempotencyResult{}, err
	}
	fp := fingerprintHash(fingerprint)
	waitFlag := "0"
	if i.wait {
		waitFlag = "1"
	}
	keys := []string{k.rec, k.fence, k.signal}
	var res IdempotencyResult
	for attempt := 1; ; attempt++ {
		start := time.Now()
		v, err := scriptIdemBegin.run(ctx, i.c.scr, keys, token, fp, i.leaseArg, fenceTTLArg, waitFlag).Slice()
		if err != nil {
			return res, i.wrapErr(ctx, key, err)
		}
		state, _ := v[0].(string)
		switch {
		case state == "run" && len(v) == 2:
			fence, _ := v[1].(int64)
			return i.runOwned(ctx, key, k, token, fence, start, fn)
		case state == "done" && len(v) == 3:
			val, _ := v[1].(string)
			if fail, _ := v[2].(string); fail == "1" {
				return IdempotencyResult{Replay: true}, fmt.Errorf("%w: %s", ErrIdempotencyStoredError, val)
			}
			return IdempotencyResult{Value: []byte(val), Replay: true}, nil
		case state == "mismatch":
			return res, fmt.Errorf("%w: key %q", ErrIdempotencyMismatch, key)
		case state == "busy" && len(v) == 2:
			if !i.wait {
				return res, fmt.Errorf("%w: key %q", ErrIdempotencyInProgress, key)
			}
			pttl, _ := v[1].(int64)
			if err := i.waitSignal(ctx, k.signal, time.Duration(pttl)*time.Millisecond); err != nil {
				return res, fmt.Errorf("%w: key %q: waited %d times: %w", ErrIdempotencyInProgress, key, attempt, err)
			}
		default:
			return res, fmt.Errorf("%w: idem_begin: %v", ErrUnexpectedReply, v)
		}
	}
}

func (i *Idempotency) wrapErr(ctx context.Context, key string, err error) error {
	if cerr := ctxEnded(ctx, err); cerr != nil {
		return fmt.Errorf("patterns: idempotency key %q: %w", key, cerr)
	}
	return fmt.Errorf("patterns: idempotency key %q: %w", key, err)
}

// waitSignal waits until the key's signal list gets an element (the result
// landed or the key was released), or for at most the lease's remaining
// pttl and idemPollCap, and returns early with the end of ctx. The waiters of
// one key in this process share one BLPOP (Client.watchSignal): one pool
// connection per key waited for, however many wait. After a failed BLPOP a
// waiter pauses for as long, so that waiters do not spin while Redis fails.
func (i *Idempotency) waitSignal(ctx context.Context, signal string, pttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	d := i.c.blockCap(min(max(pttl, 10*time.Millisecond), idemPollCap))
	w := i.c.watchSignal(signal, d)
	select {
	case <-w.done:
		if w.err == nil {
			return nil
		}
		pause := time.NewTimer(d)
		defer pause.Stop()
		select {
		case <-pause.C:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// runOwned runs fn under the lease taken with token and ends the lease.
func (i *Idempotency) runOwned(ctx context.Context, key string, k idemKeys, token string, fence int64, start time.Time,
	fn func(context.Context, IdempotencyLease) ([]byte, error)) (res IdempotencyResult, err error) {
	lease := IdempotencyLease{Key: key, Fence: fence, Deadline: start.Add(i.lease)}
	ended := false
	defer func() {
		if ended {
			return
		}
		// fn panicked (or called runtime.Goexit): release the key, then let
		// the panic go on.
		p := recover()
		_ = i.end(ctx, k, token, "release", nil, "0")
		if p != nil {
			panic(p)
		}
	}()
	val, ferr := fn(ctx, lease)
	ended = true
	res = IdempotencyResult{Value: val, Fence: fence}
	var endErr error
	switch {
	case ferr == nil:
		endErr = i.end(ctx, k, token, "store", val, "0")
	case i.storeErr != nil && i.storeErr(ferr):
		endErr = i.end(ctx, k, token, "store", []byte(ferr.Error()), "1")
	default:
		endErr = i.end(ctx, k, token, "release", nil, "0")
	}
	if ferr != nil {
		return res, ferr
	}
	if endErr != nil {
		return res, fmt.Errorf("patterns: idempotency key %q: result not stored: %w", key, endErr)
	}
	return res, nil
}

// end runs idem_end on a context of its own (the caller's may have ended
// while fn ran: the result must be stored all the same), up to three times
// while the network fails.
func (i *Idempotency) end(ctx context.Context, k idemKeys, token, op string, val []byte, fail string) error {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.c.releaseTimeout)
	defer cancel()
	args := []any{token, op, idemSignalTTL.Milliseconds()}
	if op == "store" {
		args = append(args, val, fail, i.retainArg)
	}
	var n int64
	var err error
	for attempt := 1; ; attempt++ {
		// Sent at most once per attempt; repeated after a network error,
		// which is safe: a repeated "store" by the holder returns 1, a
		// repeated "release" finds nothing to release.
		n, err = scriptIdemEnd.run(ectx, i.c.scr, []string{k.rec, k.signal}, args...).Int64()
		var rerr redis.Error
		if err == nil || attempt == 3 || ectx.Err() != nil || errors.As(err, &rerr) {
			break
		}
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrIdempotencyLeaseLost
	}
	return nil
}

// IdempotencyDo is Do for a typed value, encoded with the Idempotency's
// codec. On a replay fn is not run and the stored value is decoded.
func IdempotencyDo[T any](ctx context.Context, i *Idempotency, key, fingerprint string, fn func(ctx context.Context, lease IdempotencyLease) (T, error)) (T, IdempotencyResult, error) {
	var zero T
	if fn == nil {
		return zero, IdempotencyResult{}, i.c.observeFailed(ctx, PatternIdempotency, OpDo, i.name, invalidf("nil idempotency func"))
	}
	var out T
	ran := false
	res, err := i.Do(ctx, key, fingerprint, func(ctx context.Context, l IdempotencyLease) ([]byte, error) {
		v, err := fn(ctx, l)
		if err != nil {
			return nil, err
		}
		out, ran = v, true
		return i.codec.Marshal(v)
	})
	if ran {
		return out, res, err
	}
	if err != nil {
		return zero, res, err
	}
	if uerr := i.codec.Unmarshal(res.Value, &out); uerr != nil {
		return zero, res, fmt.Errorf("patterns: idempotency key %q: decode: %w", key, uerr)
	}
	return out, res, nil
}
