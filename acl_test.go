package patterns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/aclrule"
)

// scriptSources maps each embedded script's name to its source.
func scriptSources() map[string]string {
	m := map[string]string{}
	for _, s := range Scripts() {
		m[s.Name] = s.Source
	}
	return m
}

// TestACLRuleCoversScripts: every embedded script is used by a pattern of
// the rule, and the rule of all patterns allows every command a script calls.
func TestACLRuleCoversScripts(t *testing.T) {
	rule, err := aclrule.Rule("u", "p", "x", nil, scriptSources())
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, a := range aclrule.Args(rule) {
		if c, ok := strings.CutPrefix(a, "+"); ok {
			allowed[c] = true
		}
	}
	for _, s := range Scripts() {
		used := false
		for _, p := range aclrule.Names() {
			used = used || patternUses(p, s.Name)
		}
		if !used {
			t.Errorf("script %s is in no pattern of the ACL rule", s.Name)
		}
		for _, c := range aclrule.ScriptCommands(s.Source) {
			if !allowed[c] {
				t.Errorf("script %s calls %s, not in the rule", s.Name, c)
			}
		}
	}
	if _, err := aclrule.Rule("u", "p", "x", []string{"nosuch"}, scriptSources()); err == nil {
		t.Error("unknown pattern accepted")
	}
}

// patternUses reports whether the rule of pattern p needs script name: the
// rule fails without it.
func patternUses(p, name string) bool {
	src := scriptSources()
	delete(src, name)
	_, err := aclrule.Rule("u", "p", "x", []string{p}, src)
	return err != nil
}

// aclUser creates, on every node of rdb, a user with exactly the rule of
// pats (every pattern when none) under prefix, removed when the test ends, and returns a
// client of rdb's kind logged in as that user.
func aclUser(t *testing.T, rdb redis.UniversalClient, prefix string, pats ...string) redis.UniversalClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	user := "acl-" + prefix
	rule, err := aclrule.Rule(user, "pw-"+prefix, prefix, pats, scriptSources())
	if err != nil {
		t.Fatal(err)
	}
	args := []any{"acl", "setuser"}
	for _, a := range aclrule.Args(rule) {
		args = append(args, a)
	}
	onEvery := func(ctx context.Context, fn func(ctx context.Context, c *redis.Client) error) error {
		return forEveryNode(ctx, rdb, fn)
	}
	if err := onEvery(ctx, func(ctx context.Context, c *redis.Client) error { return c.Do(ctx, args...).Err() }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = onEvery(ctx, func(ctx context.Context, c *redis.Client) error { return c.Do(ctx, "acl", "deluser", user).Err() })
	})
	var as redis.UniversalClient
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		o := *c.Options()
		o.Username, o.Password = user, "pw-"+prefix
		as = redis.NewClusterClient(&o)
	case *redis.Client:
		o := *c.Options()
		o.Username, o.Password = user, "pw-"+prefix
		as = redis.NewClient(&o)
	}
	t.Cleanup(func() { _ = as.Close() })
	return as
}

// TestACL runs a pass of every pattern as a user with exactly the rule
// `patterns acl` prints: scripts, the local cache layer (CLIENT TRACKING and
// the invalidation channel), Pub/Sub, blocking dequeues and WAIT all work;
// a key outside the prefix and a command outside the rule are NOPERM.
func TestACL(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		prefix := uniquePrefix(t)
		as := aclUser(t, rdb, prefix)
		c, err := New(as, &Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { auditKeys(t, rdb, prefix, allTimeBoard) })
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := c.Load(ctx); err != nil {
			t.Fatalf("load: %v", err)
		}
		for _, op := range faultOps(t, c) {
			for i := 0; i < 2; i++ {
				if err := op.run(ctx); err != nil {
					t.Errorf("%s: %v", op.name, err)
				}
			}
		}

		aclWokenWaiter(t, ctx, c)

		// Local cache layer: tracking and the invalidation channel.
		var mu sync.Mutex
		var errs []error
		onErr := func(op, key string, err error) {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s %s: %w", op, key, err))
			mu.Unlock()
		}
		localLayersInvalidate(t, c, CacheOptions{OnError: onErr})
		mu.Lock()
		for _, err := range errs {
			t.Errorf("local layer: %v", err)
		}
		mu.Unlock()

		// Pub/Sub.
		topic, err := NewTopic[string](c, "news", nil)
		if err != nil {
			t.Fatal(err)
		}
		sctx, scancel := context.WithCancel(ctx)
		ready, got := make(chan struct{}), make(chan string, 1)
		go func() {
			_ = topic.Subscribe(sctx, ready, func(s string) {
				select {
				case got <- s:
				default:
				}
			}, nil)
		}()
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			t.Fatal("subscribe: not confirmed")
		}
		if _, err := topic.Publish(ctx, "hi"); err != nil {
			t.Error("publish:", err)
		}
		select {
		case s := <-got:
			if s != "hi" {
				t.Errorf("got %q", s)
			}
		case <-time.After(10 * time.Second):
			t.Error("published event not received")
		}
		scancel()

		// Blocking dequeue (BLPOP on the signal list).
		q, err := c.Queue("acl-queue", &QueueOptions{Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(100 * time.Millisecond)
			_, _, _ = q.Enqueue(ctx, []byte("job"), nil)
		}()
		m, err := q.Dequeue(ctx)
		if err != nil {
			t.Fatal("dequeue:", err)
		}
		if err := m.Ack(ctx); err != nil {
			t.Error("ack:", err)
		}

		// A consumer group: the stream_read script (XAUTOCLAIM, XREADGROUP)
		// and a blocking read (XREADGROUP BLOCK).
		st, err := NewStreamTopic[string](c, "acl-stream", &StreamTopicOptions{Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		sg, err := st.Group(ctx, "workers", "w1", nil)
		if err != nil {
			t.Fatal("stream group:", err)
		}
		if _, err := st.Publish(ctx, "event"); err != nil {
			t.Fatal("stream publish:", err)
		}
		if msgs, err := sg.Read(ctx, 10, 0); err != nil || len(msgs) != 1 {
			t.Fatalf("stream group read: %d messages, %v", len(msgs), err)
		} else if _, err := sg.Ack(ctx, msgs[0].ID); err != nil {
			t.Error("stream ack:", err)
		}
		if _, err := sg.Read(ctx, 10, 20*time.Millisecond); err != nil {
			t.Error("blocking stream group read:", err)
		}
		// Dead letters: a nack to them, listed, redriven, read again
		// (claimed past MaxDeliveries by stream_read), counted, purged; a
		// read that removes idle consumers.
		dg, err := st.Group(ctx, "dead", "w1", &StreamGroupOptions{FromStart: true, MaxDeliveries: 1, ClaimTimeout: time.Millisecond, ConsumerIdle: time.Millisecond})
		if err != nil {
			t.Fatal("stream group:", err)
		}
		if msgs, err := dg.Read(ctx, 1, 0); err != nil || len(msgs) != 1 {
			t.Fatalf("stream group read: %d messages, %v", len(msgs), err)
		} else if dead, err := dg.Nack(ctx, msgs[0].ID, errors.New("poison")); err != nil || !dead {
			t.Errorf("stream nack: %v, %v", dead, err)
		}
		if d, err := dg.DeadLetters(ctx, 10); err != nil || len(d) != 1 {
			t.Errorf("stream dead letters: %d, %v", len(d), err)
		}
		if n, err := dg.Redrive(ctx); err != nil || n != 1 {
			t.Errorf("stream redrive: %d, %v", n, err)
		}
		if _, err := dg.Read(ctx, 10, 0); err != nil {
			t.Error("stream group read:", err)
		}
		time.Sleep(5 * time.Millisecond)
		if _, err := dg.Read(ctx, 10, 0); err != nil {
			t.Error("stream group read past MaxDeliveries:", err)
		}
		if s, err := dg.Stats(ctx); err != nil || s.Dead != 1 {
			t.Errorf("stream stats: %+v, %v", s, err)
		}
		if _, err := dg.PurgeDead(ctx); err != nil {
			t.Error("stream purge:", err)
		}
		if _, err := c.Inspector().Stream(ctx, "acl-stream"); err != nil {
			t.Error("inspect stream:", err)
		}

		// WAIT: a lock write acknowledged by replicas (ErrNotReplicated is
		// an answer; NOPERM is not).
		l, err := c.Obtain(ctx, "replicated", 5*time.Second, &LockOptions{Replicas: 1, ReplicaTimeout: 100 * time.Millisecond})
		if err != nil && !errors.Is(err, ErrNotReplicated) {
			t.Errorf("obtain with WAIT: %v", err)
		}
		if l != nil {
			_ = l.Release(ctx)
		}

		// Nothing the pass sent was refused, even where the library or
		// go-redis swallows the error.
		user := "acl-" + prefix
		err = forEveryNode(ctx, rdb, func(ctx context.Context, n *redis.Client) error {
			log, err := n.ACLLog(ctx, 1000).Result()
			if err != nil {
				return err
			}
			for _, e := range log {
				if e.Username == user && e.Object != "client|setinfo" {
					t.Errorf("%s: ACL LOG: %s %s refused (%s)", n.Options().Addr, e.Reason, e.Object, e.Context)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// Refused: a key outside the prefix, a command outside the rule, a
		// channel outside the prefix.
		outside := "other-" + prefix + ":{x}"
		for what, err := range map[string]error{
			"key outside":     as.Set(ctx, outside, "1", time.Minute).Err(),
			"key via script":  as.Eval(ctx, "return redis.call('GET', KEYS[1])", []string{outside}).Err(),
			"command outside": as.Do(ctx, "flushall").Err(),
			"keys":            as.Do(ctx, "keys", prefix+":*").Err(),
			"config":          as.ConfigGet(ctx, "maxmemory").Err(),
			"channel outside": as.Publish(ctx, "other-"+prefix, "x").Err(),
			"command in script": as.Eval(ctx, "return redis.call('APPEND', KEYS[1], 'x')",
				[]string{prefix + ":{x}"}).Err(),
		} {
			if !aclRefused(err) {
				t.Errorf("%s: err %v, want NOPERM", what, err)
			}
		}
	})
}

// forEveryNode runs fn on every node of a cluster client, replicas
// included, or on the one server of a standalone client.
func forEveryNode(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, c *redis.Client) error) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, fn)
	}
	return fn(ctx, rdb.(*redis.Client))
}

// TestACLPerPattern: the rule of `patterns acl -patterns lock,ratelimit`
// serves locks and every rate-limit algorithm, and refuses a session.
func TestACLPerPattern(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	prefix := uniquePrefix(t)
	as := aclUser(t, rdb, prefix, "lock", "ratelimit")
	c, err := New(as, &Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auditKeys(t, rdb, prefix, allTimeBoard) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ran := 0
	for _, op := range faultOps(t, c) {
		if op.name != "lock" && !strings.HasPrefix(op.name, "rl-") {
			continue
		}
		ran++
		if err := op.run(ctx); err != nil {
			t.Errorf("%s: %v", op.name, err)
		}
	}
	if ran < 6 {
		t.Fatalf("ran %d lock and rate-limit operations", ran)
	}
	aclWokenWaiter(t, ctx, c)
	user := "acl-" + prefix
	log, err := rdb.ACLLog(ctx, 1000).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log {
		if e.Username == user && e.Object != "client|setinfo" {
			t.Errorf("ACL LOG: %s %s refused (%s)", e.Reason, e.Object, e.Context)
		}
	}
	sess, err := c.Sessions("web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Create(ctx, "ann", nil); !aclRefused(err) {
		t.Errorf("session under a lock+ratelimit rule: err %v, want refused", err)
	}
}

// aclWokenWaiter has a waiter woken on release (BLPOP on the lock's signal
// list) as the ACL user of c.
func aclWokenWaiter(t *testing.T, ctx context.Context, c *Client) {
	t.Helper()
	held, err := c.Obtain(ctx, "acl-wake", 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	woken := make(chan error, 1)
	go func() {
		l, err := c.Obtain(ctx, "acl-wake", 10*time.Second, &LockOptions{RetryStrategy: LinearBackoff(2 * time.Second)})
		if err == nil {
			err = l.Release(ctx)
		}
		woken <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-woken; err != nil {
		t.Errorf("woken waiter: %v", err)
	}
}

// aclRefused reports whether err is an ACL refusal. Servers word a refusal
// inside a script differently: NOPERM (Redis 7.2+), "ERR The user executing
// the script can't run this command" (Redis 7.0), "ERR ACL failure in
// script: ... has no permissions" (Valkey 8).
//
// The ACL LOG checks leave out CLIENT SETINFO: go-redis sends it on connect
// and ignores its refusal; Redis 7.0 does not know the command, so the rule
// cannot name it (the README says to add it on Redis 7.2+ and Valkey).
func aclRefused(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "NOPERM") || strings.Contains(m, "can't run this command") || strings.Contains(m, "has no permissions")
}
