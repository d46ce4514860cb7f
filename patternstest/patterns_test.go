package patternstest_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/patternstest"
)

// TestPatterns runs every pattern once, through the public API, on the
// server patternstest provides (a container of PATTERNS_REDIS_IMAGE when set:
// the library's pass on dockerized Redis or Valkey) and on a cluster.
func TestPatterns(t *testing.T) {
	t.Run("server", func(t *testing.T) {
		rdb, kind := patternstest.Server(t)
		info, err := rdb.Info(context.Background(), "server").Result()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("server provided by %s: %s", kind, serverVersion(info))
		passEveryPattern(t, rdb)
	})
	t.Run("cluster", func(t *testing.T) { passEveryPattern(t, patternstest.Cluster(t)) })
}

// serverVersion returns "Valkey x.y.z" or "Redis x.y.z" from INFO server.
func serverVersion(info string) string {
	name, version := "Redis", ""
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "valkey_version:"); ok {
			return "Valkey " + v
		}
		if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
			version = v
		}
	}
	return name + " " + version
}

func passEveryPattern(t *testing.T, rdb redis.UniversalClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "pass" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if err != nil {
		t.Fatal(err)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("load", pc.Load(ctx))

	lock, err := pc.Obtain(ctx, "job", 5*time.Second, nil)
	must("lock", err)
	must("lock refresh", lock.Refresh(ctx, 5*time.Second))
	must("lock release", lock.Release(ctx))

	for _, algo := range []patterns.Algorithm{patterns.FixedWindow, patterns.SlidingWindowLog, patterns.SlidingWindow, patterns.TokenBucket, patterns.GCRA} {
		l, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: algo})
		must("limiter", err)
		for i := 0; i < 3; i++ {
			res, err := l.Allow(ctx, "user", patterns.PerMinute(2))
			must(algo.String(), err)
			if res.Allowed != (i < 2) {
				t.Fatalf("%s: call %d allowed = %v", algo, i, res.Allowed)
			}
		}
		must(algo.String()+" reset", l.Reset(ctx, "user", patterns.PerMinute(2)))
	}

	cache, err := patterns.NewCache[string](pc, "pages", nil)
	must("cache", err)
	loads := 0
	for i := 0; i < 2; i++ {
		v, err := cache.Get(ctx, "home", func(ctx context.Context) (string, error) { loads++; return "<html>", nil }, nil)
		must("cache get", err)
		if v != "<html>" {
			t.Fatalf("cache get = %q", v)
		}
	}
	if loads != 1 {
		t.Fatalf("loaded %d times, want 1", loads)
	}
	must("cache delete", cache.Delete(ctx, "home"))

	sessions, err := pc.Sessions("web", nil)
	must("sessions", err)
	id, err := sessions.Create(ctx, "ann", map[string]string{"cart": "3"})
	must("session create", err)
	user, data, err := sessions.Get(ctx, id)
	must("session get", err)
	if user != "ann" || data["cart"] != "3" {
		t.Fatalf("session = %q %v", user, data)
	}
	must("session destroy", sessions.Destroy(ctx, id))

	board, err := pc.Board("weekly", &patterns.BoardOptions{Policy: patterns.ScoreIncrement, Daily: time.Hour})
	must("board", err)
	_, err = board.Submit(ctx, "ann", 3)
	must("board submit", err)
	top, err := board.Top(ctx, 1, patterns.RankOrdinal)
	must("board top", err)
	if len(top) != 1 || top[0].Member != "ann" {
		t.Fatalf("top = %+v", top)
	}
	must("board reset", board.Reset(ctx)) // the all-time board has no TTL

	uniques, err := pc.Uniques("visitors", nil)
	must("uniques", err)
	_, err = uniques.Add(ctx, "a", "b", "a")
	must("uniques add", err)
	activity, err := pc.Activity("logins", nil)
	must("activity", err)
	_, err = activity.Mark(ctx, 42)
	must("activity mark", err)

	queue, err := pc.Queue("mail", nil)
	must("queue", err)
	_, _, err = queue.Enqueue(ctx, []byte("hello"), nil)
	must("enqueue", err)
	m, err := queue.Dequeue(ctx)
	must("dequeue", err)
	must("ack", m.Ack(ctx))

	topic, err := patterns.NewTopic[string](pc, "news", nil)
	must("topic", err)
	_, err = topic.Publish(ctx, "hi")
	must("publish", err)

	if os.Getenv("PATTERNS_REDIS_IMAGE") == "" {
		t.Log("PATTERNS_REDIS_IMAGE is not set: the standalone pass ran on a process, not a container")
	}
}
