package patterns

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Coalescing (Options.Coalesce) sends the script calls of concurrent callers
// to one server in shared pipelines, and the plain reads of the cache hit
// (GET, PTTL, HMGET of tags) with them.
//
// It is written here rather than built on go-redis's AutoPipeliner, which
// does not keep the package's guarantees: a queued command runs on the
// pipeliner's own context, not the caller's (a caller cannot stop waiting),
// its batches of ordinary commands are retried whole after a network error,
// its NOSCRIPT fallback is Script.Run's (not inside a batch), it is
// experimental, and it is one instance owned by the go-redis client whose
// flusher goroutines live until that client or pipeliner is closed, which a
// Client (that has no Close and does not own rdb) cannot do.
//
// The design needs no goroutine while a server is idle. A caller that finds
// no batch in flight to its server sends its call at once, on its own
// goroutine and context (exactly as without coalescing). Callers arriving
// while a batch is in flight queue up; when the batch ends, the queue is sent
// as the next batch by a goroutine that lives while the queue keeps filling
// and ends when it is empty. When spareAt callers wait while one batch is in
// flight, a second goroutine sends them at once, on a connection of its own:
// at most two batches are in flight to a server, so that it finds the next
// one waiting when it ends one. A queued caller whose context ends is taken out
// of the queue (never sent) or, once its batch is on the wire, stops waiting
// and gets its context's error; its call is sent once and never again.

// coalescing is the Scripter the patterns run scripts through when
// Options.Coalesce is set. It embeds rdb for every other command.
type coalescing struct {
	redis.UniversalClient
	cluster *redis.ClusterClient // nil unless rdb is one
	d       *dialect             // EVALSHA (nil) or FCALL: see dialect
	one     *coalescer           // the queue of a single server (or Ring)
	nodes   sync.Map             // *redis.Client (a cluster master) → *coalescer

	batches atomic.Int64 // pipelines of more than one call sent (for tests)
	calls   atomic.Int64 // calls sent in such pipelines
	reads   atomic.Int64 // plain-command calls sent in such pipelines
}

func newCoalescing(rdb redis.UniversalClient) *coalescing {
	co := &coalescing{UniversalClient: rdb}
	co.cluster, _ = rdb.(*redis.ClusterClient)
	co.one = &coalescer{co: co}
	return co
}

// coalescer is the queue of one server.
type coalescer struct {
	co      *coalescing
	mu      sync.Mutex
	flying  int      // batches in flight to this server: 0, 1 or 2
	pending []*pcall // calls waiting for the next batch
}

// spareAt is how many queued calls make a second batch go out while one is
// in flight: then the server finds the next batch waiting on its socket when
// it ends one, instead of idling for a round trip to the client.
const spareAt = 16

// pcall is one queued call: a script call (line) or plain commands (reads,
// such as the cache hit's GET), sent together in the batch.
type pcall struct {
	ctx   context.Context
	s     *script // nil: no NOSCRIPT fallback (a foreign script, onceScripter)
	line  []any   // the EVALSHA (or EVAL) command line; nil for plain commands
	cmd   *redis.Cmd
	plain []redis.Cmder // plain commands, when line is nil
	done  chan struct{} // closed when cmd (or plain) holds the reply
}

// queue returns the coalescer of the server that runs line.
func (co *coalescing) queue(ctx context.Context, line []any) *coalescer {
	key := ""
	if n, _ := line[2].(int); n > 0 {
		key, _ = line[3].(string)
	}
	return co.queueFor(ctx, key)
}

// queueFor returns the coalescer of the server that holds key ("": any).
func (co *coalescing) queueFor(ctx context.Context, key string) *coalescer {
	if co.cluster == nil || key == "" {
		return co.one
	}
	node, err := co.cluster.MasterForKey(ctx, key)
	if err != nil {
		return co.one // the cluster pipeline routes it and reports the error
	}
	if q, ok := co.nodes.Load(node); ok {
		return q.(*coalescer)
	}
	q, _ := co.nodes.LoadOrStore(node, &coalescer{co: co})
	return q.(*coalescer)
}

// run runs one script call (s may be nil) through the server's queue and
// returns its command, whose result is this caller's alone. A reply that
// proves the call did not run (retryNotRun) queues it again, on the queue of
// the server that now holds its first key.
func (co *coalescing) run(ctx context.Context, s *script, line []any) *redis.Cmd {
	for attempt := 1; ; attempt++ {
		p := &pcall{ctx: ctx, s: s, line: line}
		if !co.queue(ctx, line).wait(p) {
			// Sent or not, the call is never sent again; p.cmd belongs to
			// the batch.
			cmd := redis.NewCmd(ctx, line...)
			cmd.SetErr(ctx.Err())
			return cmd
		}
		if !retryNotRun(ctx, p.cmd.Err(), attempt) {
			return p.cmd
		}
	}
}

// do sends cmds, plain commands on key's server that are safe to run
// whenever the batch goes (reads), through the server's queue, and returns
// the first error among them. After an error the caller must not read cmds:
// when its context ended they may still belong to a batch on the wire.
func (co *coalescing) do(ctx context.Context, key string, cmds ...redis.Cmder) error {
	p := &pcall{ctx: ctx, plain: cmds}
	if !co.queueFor(ctx, key).wait(p) {
		return ctx.Err()
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

// read sends cmds, reads of key's server, in one round trip, through the
// coalescing queue when Options.Coalesce is set, and returns the first error
// among them (redis.Nil for a missing key). After any other error the caller
// must not read cmds (see coalescing.do).
func (c *Client) read(ctx context.Context, key string, cmds ...redis.Cmder) error {
	if co := c.coalescing(); co != nil {
		return co.do(ctx, key, cmds...)
	}
	if len(cmds) == 1 {
		return c.rdb.Process(ctx, cmds[0])
	}
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, cmd := range cmds {
			_ = p.Process(ctx, cmd)
		}
		return nil
	})
	return err
}

// wait sends p at once if nothing is in flight to the server, else queues it
// for the next batch and waits for its reply or the end of its context. It
// reports whether p holds its reply; false when the context ended first.
func (q *coalescer) wait(p *pcall) bool {
	q.mu.Lock()
	if q.flying == 0 {
		// Nothing in flight: send at once, on the caller's goroutine.
		q.flying = 1
		q.mu.Unlock()
		q.send([]*pcall{p})
		q.next()
		return true
	}
	p.done = make(chan struct{})
	q.pending = append(q.pending, p)
	if q.flying == 1 && len(q.pending) >= spareAt {
		q.flying = 2
		go q.drain()
	}
	q.mu.Unlock()
	select {
	case <-p.done:
		return true
	case <-p.ctx.Done():
	}
	q.mu.Lock()
	for i, x := range q.pending {
		if x == p { // not sent: leave the queue
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			break
		}
	}
	q.mu.Unlock()
	select {
	case <-p.done: // the reply came meanwhile
		return true
	default:
		return false
	}
}

// next ends a lone call's batch: it hands the queued calls to a goroutine
// that sends them as the next batch, or frees its place in flight.
func (q *coalescer) next() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		q.flying--
		return
	}
	go q.drain()
}

// drain sends the queue, batch after batch, until it is empty; then it
// frees its place in flight.
func (q *coalescer) drain() {
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.flying--
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		q.send(batch)
		for _, p := range batch {
			close(p.done)
		}
	}
}

// send runs batch in one pipeline (a cluster pipeline on a cluster, which
// follows MOVED and ASK) with EVALSHA, then the calls answered NOSCRIPT in a
// second one with EVAL. Calls whose context ended before the send are not
// sent and get their context's error. Every call is sent at most once.
func (q *coalescer) send(batch []*pcall) {
	live := batch
	for _, p := range batch {
		if p.ctx.Err() == nil {
			continue
		}
		// Some callers have left: send the others only.
		live = make([]*pcall, 0, len(batch))
		for _, p := range batch {
			if err := p.ctx.Err(); err != nil {
				p.fail(err)
			} else {
				live = append(live, p)
			}
		}
		break
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := batchContext(live)
	defer cancel()
	var pr processor = q.co.UniversalClient
	var pipe redis.Pipeliner
	if len(live) > 1 || len(live[0].plain) > 1 {
		if len(live) > 1 {
			q.co.batches.Add(1)
			q.co.calls.Add(int64(len(live)))
			for _, p := range live {
				if p.line == nil {
					q.co.reads.Add(1)
				}
			}
		}
		pipe = q.co.Pipeline()
		pr = pipe
	}
	for _, p := range live {
		if p.line == nil {
			for _, c := range p.plain {
				_ = pr.Process(ctx, c)
			}
			continue
		}
		p.cmd = newEvalCmd(ctx, q.co.d.line(p.s, p.line))
		_ = pr.Process(ctx, onceCmd{p.cmd})
	}
	if pipe != nil {
		_, _ = pipe.Exec(ctx)
	}
	var again []*pcall
	for _, p := range live {
		if p.line != nil && q.co.d.missing(p.s, p.cmd.Err()) {
			again = append(again, p)
		}
	}
	if len(again) > 0 {
		if err := q.co.d.restore(ctx, again[0].s); err != nil {
			for _, p := range again {
				p.cmd.SetErr(err)
			}
			return
		}
	}
	switch len(again) {
	case 0:
	case 1:
		p := again[0]
		p.cmd = newEvalCmd(ctx, q.co.d.resend(p.s, p.line))
		_ = process(ctx, q.co.UniversalClient, p.cmd)
	default:
		pipe = q.co.Pipeline()
		for _, p := range again {
			p.cmd = newEvalCmd(ctx, q.co.d.resend(p.s, p.line))
			_ = pipe.Process(ctx, onceCmd{p.cmd})
		}
		_, _ = pipe.Exec(ctx)
	}
}

// fail gives p err without sending it.
func (p *pcall) fail(err error) {
	if p.line == nil {
		for _, c := range p.plain {
			c.SetErr(err)
		}
		return
	}
	p.cmd = redis.NewCmd(p.ctx, p.line...)
	p.cmd.SetErr(err)
}

// batchContext returns the context a batch is sent on: a lone call's own;
// for several, one that no caller can cancel (a caller leaving must not fail
// the others), carrying the first caller's values and the latest of their
// deadlines (none if one of them has none: go-redis's timeouts bound it).
func batchContext(batch []*pcall) (context.Context, context.CancelFunc) {
	if len(batch) == 1 {
		return batch[0].ctx, func() {}
	}
	var last time.Time
	for _, p := range batch {
		dl, ok := p.ctx.Deadline()
		if !ok {
			return context.WithoutCancel(batch[0].ctx), func() {}
		}
		if dl.After(last) {
			last = dl
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), last)
}
