package patterns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrPersistPanicked is reported to CacheOptions.OnError (op "persist") when
// a write-behind persist function panics; the write is retried like a failed
// one.
var ErrPersistPanicked = errors.New("patterns: persist panicked")

// WriteBehind puts a cache in front of a slow store: Set writes the value to
// the cache and queues the write in one MULTI/EXEC transaction (one round
// trip; the cache and its queue share the hash tag {name}, so both are on
// one slot), and acknowledges once Redis holds both. Run hands queued writes
// to persist, with retries and backoff; a write is acked only after persist
// succeeded, so nothing acknowledged is lost when a process dies: the write
// is delivered again once its lease expires. Delivery to persist is at least
// once: make persist idempotent (e.g. an upsert).
//
// The queue is prefix:q:{name}:* (see Queue); the cache is the Cache named
// name.
type WriteBehind[T any] struct {
	cache *Cache[T]
	queue *Queue
}

// WriteBehindOptions configure a WriteBehind. A nil *WriteBehindOptions
// means all defaults.
type WriteBehindOptions struct {
	// Cache configures the cache; its OnError also receives the errors of
	// persist (op "persist").
	//
	// default: nil (the cache's defaults)
	Cache *CacheOptions

	// Queue configures the queue of pending writes (Visibility, Backoff,
	// MaxDeliveries: how persist is retried).
	//
	// default: nil (the queue's defaults)
	Queue *QueueOptions
}

// NewWriteBehind returns the write-behind cache named name.
func NewWriteBehind[T any](c *Client, name string, opt *WriteBehindOptions) (*WriteBehind[T], error) {
	var cacheOpt *CacheOptions
	var queueOpt *QueueOptions
	if opt != nil {
		cacheOpt, queueOpt = opt.Cache, opt.Queue
	}
	k, err := NewCache[T](c, name, cacheOpt)
	if err != nil {
		return nil, err
	}
	q, err := c.Queue(name, queueOpt)
	if err != nil {
		return nil, err
	}
	return &WriteBehind[T]{cache: k, queue: q}, nil
}

// Cache returns the cache, for reads.
func (w *WriteBehind[T]) Cache() *Cache[T] { return w.cache }

// Queue returns the queue of pending writes (for Stats and DeadLetters).
func (w *WriteBehind[T]) Queue() *Queue { return w.queue }

// Set writes value under key to the cache and queues it for persist,
// atomically. Like Cache.Set, it revokes the load lease of key: a load
// under way is not cached.
func (w *WriteBehind[T]) Set(ctx context.Context, key string, value T, opt *CacheSetOptions) (err error) {
	ctx, done := w.cache.c.observe(ctx, PatternWriteBehind, OpSet, w.cache.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkCacheKey(key); err != nil {
		return err
	}
	if err := w.cache.checkSet(opt); err != nil {
		return err
	}
	payload, err := w.cache.encode(value)
	if err != nil {
		return err
	}
	ttl := w.cache.opt.TTL
	var tags []string
	if opt != nil {
		if opt.TTL != 0 {
			ttl = opt.TTL
		}
		tags = opt.Tags
	}
	body := make([]byte, 0, len(key)+1+len(payload))
	body = append(append(append(body, key...), 0), payload...)
	if len(body) > MaxMessageBytes {
		return invalidf("write of %d bytes, over %d", len(body), MaxMessageBytes)
	}
	set := scriptCacheSet.args([]string{w.cache.entryKey(key), w.cache.leaseKey(key)},
		[]any{"", w.cache.fanout(), payload, ttl.Milliseconds(), strings.Join(tags, "\x1f"), 0, 0, ""})
	enq := scriptQueue.args(w.queue.keys, []any{"enqueue", w.queue.opt.Retention.Milliseconds(), "", body, 0})
	// EVAL, not EVALSHA: inside MULTI a NOSCRIPT would fail one command and
	// not the other.
	_, err = w.queue.c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		_ = p.Process(ctx, onceCmd{newEvalCmd(ctx, scriptCacheSet.evalArgs(set))})
		_ = p.Process(ctx, onceCmd{newEvalCmd(ctx, scriptQueue.evalArgs(enq))})
		return nil
	})
	w.cache.evictLocal(key)
	if err != nil {
		return fmt.Errorf("patterns: write-behind %q: set %q: %w", w.cache.name, key, err)
	}
	return nil
}

// Run persists queued writes until ctx is done, with workers goroutines
// (at least 1), and returns ctx's error. A write whose persist fails or
// panics is retried after the queue's backoff, and moves to the dead-letter
// list after MaxDeliveries; the error (ErrPersistPanicked for a panic) goes
// to CacheOptions.OnError with op "persist".
func (w *WriteBehind[T]) Run(ctx context.Context, workers int, persist func(ctx context.Context, key string, value T) error) (err error) {
	ctx, done := w.cache.c.observe(ctx, PatternWriteBehind, OpRun, w.cache.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if persist == nil {
		return invalidf("nil persist function")
	}
	errs := make(chan error, max(workers, 1))
	for i := 0; i < max(workers, 1); i++ {
		go func() { errs <- w.work(ctx, persist) }()
	}
	var first error
	for i := 0; i < max(workers, 1); i++ {
		if err := <-errs; first == nil {
			first = err
		}
	}
	return first
}

func (w *WriteBehind[T]) work(ctx context.Context, persist func(ctx context.Context, key string, value T) error) error {
	for {
		m, err := w.queue.Dequeue(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			select { // Redis unreachable: try again
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		i := bytes.IndexByte(m.Body, 0)
		if i < 0 {
			_ = m.Nack(ctx)
			continue
		}
		key := string(m.Body[:i])
		v, err := w.cache.decode(string(m.Body[i+1:]))
		if err == nil {
			err = w.persist(ctx, persist, key, v)
		}
		if err != nil {
			if w.cache.opt.OnError != nil && ctx.Err() == nil {
				w.cache.opt.OnError("persist", key, fmt.Errorf("patterns: write-behind %q: persist %q: %w", w.cache.name, key, err))
			}
			_ = m.Nack(ctx)
			continue
		}
		// Persisted: the ack must reach Redis even if ctx was cancelled
		// meanwhile, or the write would be persisted again.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.queue.c.releaseTimeout)
		_ = m.Ack(actx)
		cancel()
	}
}

// persist runs the user's persist function, observed, with its panic turned
// into an error wrapping ErrPersistPanicked.
func (w *WriteBehind[T]) persist(ctx context.Context, persist func(ctx context.Context, key string, value T) error, key string, v T) (err error) {
	ctx, done := w.cache.c.observe(ctx, PatternWriteBehind, OpPersist, w.cache.name)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPersistPanicked, r)
		}
		done.end(outcome(OutcomeOK, err), err)
	}()
	return persist(ctx, key, v)
}
