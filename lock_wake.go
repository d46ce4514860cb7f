package patterns

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// lockSignalTTL bounds the life of a lock's signal list: an element no
	// waiter took costs at most one early retry to the next waiter.
	lockSignalTTL = 5 * time.Second
	// lockWakeMark is the shortest life of a waiters marker, and
	// lockWakeMarkSlack what it gets on top of twice the last backoff of the
	// caller that set it (the next one is not known when it is set). A
	// marker that outlives its waiter costs the releases that find it an
	// LPUSH; one that dies before costs its waiter one backoff.
	lockWakeMark      = 10 * time.Second
	lockWakeMarkSlack = time.Second
	// lockWakeMinBlock is the shortest BLPOP a waiter sends; a shorter rest
	// of a backoff is slept.
	lockWakeMinBlock = 10 * time.Millisecond
)

// lockSignalTTLArg is lockSignalTTL in milliseconds, boxed once.
var lockSignalTTLArg any = lockSignalTTL.Milliseconds()

// signalWatch is one BLPOP on a signal list (a lock's, a semaphore's, an
// idempotency key's) that every waiter on it in this process shares: done closes when it returns, after woken (an
// element was taken) or err (the BLPOP failed) are set.
type signalWatch struct {
	done  chan struct{}
	woken bool
	err   error
}

type signalWatchKey struct {
	c      *Client
	signal string
}

// signalWatches holds the BLPOPs running, by client and signal list. An entry
// leaves when its BLPOP returns.
var signalWatches struct {
	mu sync.Mutex
	m  map[signalWatchKey]*signalWatch
}

// wakeBlock returns how long one BLPOP of a waiter may block for the
// option v (0: the default, -1: waking off, which returns 0).
func (c *Client) wakeBlock(v time.Duration) time.Duration {
	d := time.Second
	if v != 0 {
		if v < 0 {
			return 0
		}
		d = max(v, lockWakeMinBlock)
	}
	return c.blockCap(d)
}

// blockCap returns d, or less when the go-redis client's ReadTimeout would
// cut a BLPOP of d short: a raw BLPOP is read with the ReadTimeout.
func (c *Client) blockCap(d time.Duration) time.Duration {
	var rt time.Duration
	switch rdb := c.rdb.(type) {
	case *redis.Client:
		rt = rdb.Options().ReadTimeout
	case *redis.ClusterClient:
		rt = rdb.Options().ReadTimeout
	case *redis.Ring:
		rt = rdb.Options().ReadTimeout
	}
	if rt > 0 && rt/2 < d {
		d = max(rt/2, lockWakeMinBlock)
	}
	return d
}

// waitBackoff waits between two attempts of a waiting caller: for backoff,
// or less when signal names a signal list, block > 0 and a release wakes it
// (see awaitRelease). It returns the context's cause when ctx ends first.
// *timer is made on first use and reused by the next attempts.
func (c *Client) waitBackoff(ctx context.Context, timer **time.Timer, backoff time.Duration, signal string, block time.Duration) error {
	if *timer == nil {
		*timer = time.NewTimer(backoff)
	} else {
		(*timer).Reset(backoff)
	}
	if signal != "" && block > 0 {
		return c.awaitRelease(ctx, signal, backoff, block, *timer)
	}
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-(*timer).C:
		return nil
	}
}

// awaitRelease waits until timer fires (it was set to the caller's backoff
// d), a release of the lock whose signal list is signal wakes it, or ctx ends
// (its cause is returned). It blocks a connection for at most block at a
// time; after a failed BLPOP it only waits for the timer.
func (c *Client) awaitRelease(ctx context.Context, signal string, d, block time.Duration, timer *time.Timer) error {
	deadline := time.Now().Add(d)
	polling := false
	for {
		var done <-chan struct{}
		var w *signalWatch
		if rest := time.Until(deadline); !polling && rest >= lockWakeMinBlock {
			w = c.watchSignal(signal, min(rest, block))
			done = w.done
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return context.Cause(ctx)
		case <-timer.C:
			return nil
		case <-done:
			if w.woken {
				timer.Stop()
				return nil
			}
			// A timeout blocks again; an error (Redis fails, or refuses a
			// fractional BLPOP before 6.0) polls for the rest of d.
			polling = w.err != nil
		}
	}
}

// watchSignal joins the BLPOP running on signal for c, or starts one that
// blocks for at most d (see blockCap). Each waiter selects on the returned
// watch's done and on its own context, so one waiter leaving never ends the
// others' wait.
func (c *Client) watchSignal(signal string, d time.Duration) *signalWatch {
	k := signalWatchKey{c, signal}
	signalWatches.mu.Lock()
	defer signalWatches.mu.Unlock()
	if w := signalWatches.m[k]; w != nil {
		return w
	}
	w := &signalWatch{done: make(chan struct{})}
	if signalWatches.m == nil {
		signalWatches.m = make(map[signalWatchKey]*signalWatch)
	}
	signalWatches.m[k] = w
	go c.runSignalWatch(k, w, d)
	return w
}

func (c *Client) runSignalWatch(k signalWatchKey, w *signalWatch, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Second)
	defer cancel()
	// BLPOP with a fractional timeout (go-redis's BLPop rounds up to 1s).
	err := c.rdb.Do(ctx, "blpop", k.signal, strconv.FormatFloat(d.Seconds(), 'f', 3, 64)).Err()
	signalWatches.mu.Lock()
	delete(signalWatches.m, k)
	signalWatches.mu.Unlock()
	switch err {
	case nil:
		w.woken = true
	case redis.Nil:
	default:
		w.err = err
	}
	close(w.done)
}
