package patterns

import (
	"context"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Fuzz targets for every public function family that turns caller input into
// keys: each checks that nothing panics, that bad input is rejected with
// ErrInvalidArgument, and that every key built holds the caller's id (escaped)
// as its hash tag, so that it lands in the id's slot, and stays under
// maxKeyBytes. They need no Redis (the key building and validation run before
// any call), except FuzzPatternsOnCluster, which runs every pattern on a real
// cluster. Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzCacheKeys$' -fuzztime 15s .

// maxKeyBytes caps any key the library builds: the longest prefix, a
// pattern word, an id and one caller-supplied suffix escaped at three bytes
// per byte, and the library's own suffix words.
const maxKeyBytes = maxPrefixLen + 2*3*MaxIDLen + 128

// fuzzClient is a Client for key building only: no Redis is ever reached.
func fuzzClient() *Client { return &Client{prefix: DefaultPrefix, releaseTimeout: time.Second} }

// checkKey fails t unless key starts with prefix:pattern:{ followed by its
// hash tag, that tag is the escaped id (so the key is in the id's slot) and
// decodes back to the id, and key is at most maxKeyBytes long.
func checkKey(t *testing.T, key, pattern, id string) {
	t.Helper()
	head := DefaultPrefix + ":" + pattern + ":{"
	if !strings.HasPrefix(key, head) {
		t.Fatalf("key %q does not start with %q", key, head)
	}
	tag := hashTag(key)
	if !strings.HasPrefix(key, head+tag+"}") {
		t.Fatalf("key %q: its hash tag %q is not right after %q", key, tag, head)
	}
	if want := escapeID(id); tag != want {
		t.Fatalf("key %q: hash tag %q, want the escaped id %q", key, tag, want)
	}
	if got := unescape(t, tag); got != id {
		t.Fatalf("key %q: hash tag decodes to %q, want the id %q", key, got, id)
	}
	if len(key) > maxKeyBytes {
		t.Fatalf("key of %d bytes, over the cap of %d", len(key), maxKeyBytes)
	}
}

// escapeID is the id as the hash tag holds it. An id that escapes to nothing
// cannot exist (checkID refuses the empty id).
func escapeID(id string) string {
	var b strings.Builder
	writeEscaped(&b, id, false)
	return b.String()
}

// wantInvalid fails t unless err matches ErrInvalidArgument.
func wantInvalid(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("%s: err = %v, want ErrInvalidArgument", what, err)
	}
}

func validID(id string) bool { return id != "" && len(id) <= MaxIDLen }

var fuzzIDs = []string{"x", "{x}", "}{", "%7B", "a:b", "\x00", "{}", "ü{", "", strings.Repeat("z", MaxIDLen+1), strings.Repeat("{", MaxIDLen)}

// FuzzClientKey: Client.Key for any pattern, id and suffix.
func FuzzClientKey(f *testing.F) {
	for _, id := range fuzzIDs {
		f.Add("mine", id, "part:{y}")
	}
	f.Add("", "x", "")
	f.Add("a{b", "x", "")
	f.Add("a:b", "x", "")
	f.Add(strings.Repeat("p", 33), "x", "")
	c := fuzzClient()
	f.Fuzz(func(t *testing.T, pattern, id, suffix string) {
		k, err := c.Key(pattern, id, suffix)
		valid := validID(id) && pattern != "" && len(pattern) <= 32 && !strings.ContainsAny(pattern, "{}: \t\r\n")
		if !valid {
			wantInvalid(t, "Key", err)
			return
		}
		if err != nil {
			t.Fatalf("Key(%q, %q, %q): %v", pattern, id, suffix, err)
		}
		checkKey(t, k, pattern, id)
		if got := unescape(t, k[strings.LastIndexByte(k, ':')+1:]); got != suffix {
			t.Fatalf("suffix decodes to %q, want %q", got, suffix)
		}
	})
}

// FuzzQueryKey: QueryKey for any query and parameters, against what its doc
// promises: equal input gives an equal key, any difference another key.
// Parameters are refused (ErrInvalidArgument) exactly when JSON cannot encode
// them: here, a NaN or infinite float. Swapping two distinct strings is
// checked only when both are valid UTF-8: JSON encodes every invalid byte as
// the escape \ufffd, so that "\xff" and "\xfe" give one key.
func FuzzQueryKey(f *testing.F) {
	f.Add("SELECT * FROM t WHERE id = ?", "42", int64(42), 1.5)
	f.Add("", "\xff", int64(-1), 0.0)
	f.Add("q", "q", int64(math.MaxInt64), math.Inf(1))
	f.Add("a", "b", int64(0), math.NaN())
	f.Add("\u2028<>&", "\"}", int64(math.MinInt64), -0.5)
	f.Fuzz(func(t *testing.T, query, s string, n int64, x float64) {
		key := func(q string, params ...any) string {
			t.Helper()
			k, err := QueryKey(q, params...)
			if err != nil {
				t.Fatalf("QueryKey(%q, %#v): %v", q, params, err)
			}
			if _, err := hex.DecodeString(strings.TrimPrefix(k, "q:")); err != nil || len(k) != len("q:")+64 || strings.ToLower(k) != k {
				t.Fatalf("key %q: want q: and 64 lowercase hex digits", k)
			}
			// A query key is a cache key: it must be one the cache accepts.
			if checkCacheKey(k) != nil {
				t.Fatalf("cache refuses query key %q", k)
			}
			return k
		}
		_, err1 := QueryKey(query, s, n, x)
		_, err2 := QueryKey(query, map[string]any{"s": s, "n": n, "x": x})
		if math.IsNaN(x) || math.IsInf(x, 0) {
			wantInvalid(t, "QueryKey with a NaN or infinite parameter", err1)
			wantInvalid(t, "QueryKey with a NaN or infinite map value", err2)
			x = 0 // the properties below need an x that encodes
		}
		// Stable, whatever order a map's keys come out in.
		k1, k2 := key(query, s, n, x), key(query, map[string]any{"s": s, "n": n, "x": x})
		if key(query, s, n, x) != k1 || key(query, map[string]any{"x": x, "n": n, "s": s}) != k2 {
			t.Fatal("QueryKey is not stable")
		}
		// Any difference gives another key.
		distinct := map[string]string{
			"positional":    k1,
			"map":           k2,
			"no params":     key(query),
			"without x":     key(query, s, n),
			"query + space": key(query+" ", s, n, x),
			"s + x":         key(query, s+"x", n, x),
			"n + 1":         key(query, s, n+1, x),
			"x + 1":         key(query, s, n, x+1),
			"n as a string": key(query, s, strconv.FormatInt(n, 10), x),
			"nested":        key(query, []any{s, n, x}),
		}
		if x+1 == x { // too large for +1 to change it
			delete(distinct, "x + 1")
		}
		if query != s && utf8.ValidString(query) && utf8.ValidString(s) {
			distinct["query and s swapped"] = key(s, query, n, x)
		}
		seen := map[string]string{}
		for what, k := range distinct {
			if prev, dup := seen[k]; dup {
				t.Fatalf("query %q, params %q, %d, %v: %s and %s give one key %s", query, s, n, x, prev, what, k)
			}
			seen[k] = what
		}
	})
}

// FuzzCacheKeys: NewCache's name, the entry and lease keys of any cache key,
// and Set's tags.
func FuzzCacheKeys(f *testing.F) {
	for _, id := range fuzzIDs {
		f.Add(id, "user:{7}", "tag")
		f.Add("users", id, "")
	}
	f.Add("users", "k", "a\nb")
	f.Add("users", "k", "a\x1fb")
	c := fuzzClient()
	f.Fuzz(func(t *testing.T, name, key, tag string) {
		k, err := NewCache[string](c, name, nil)
		if !validID(name) {
			wantInvalid(t, "NewCache", err)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		err = checkCacheKey(key)
		if !validID(key) {
			wantInvalid(t, "cache key", err)
			wantInvalid(t, "Set", k.Set(context.Background(), key, "v", nil))
			_, _, err = k.Lookup(context.Background(), key)
			wantInvalid(t, "Lookup", err)
			wantInvalid(t, "Delete", k.Delete(context.Background(), key))
			return
		}
		for _, rk := range []string{k.entryKey(key), k.leaseKey(key)} {
			checkKey(t, rk, "cache", name)
			if got := unescape(t, rk[strings.LastIndexByte(rk, ':')+1:]); got != key {
				t.Fatalf("%q: the cache key decodes to %q, want %q", rk, got, key)
			}
		}
		for _, tk := range k.tags {
			checkKey(t, tk, "cache", name)
		}
		err = k.checkSet(&CacheSetOptions{Tags: []string{tag}})
		if tag == "" || len(tag) > MaxIDLen || strings.ContainsAny(tag, "\n\x1f") {
			wantInvalid(t, "tag", err)
			wantInvalid(t, "Set with a bad tag", k.Set(context.Background(), key, "v", &CacheSetOptions{Tags: []string{tag}}))
		} else if err != nil {
			t.Fatalf("tag %q: %v", tag, err)
		}
	})
}

// FuzzLimiterKeys: a rate limit's key and limit, for every algorithm.
func FuzzLimiterKeys(f *testing.F) {
	for _, id := range fuzzIDs {
		f.Add(uint8(FixedWindow), id, 10, int64(time.Second), 0, 1)
	}
	f.Add(uint8(TokenBucket), "k", 10, int64(time.Minute), 20, 5)
	f.Add(uint8(GCRA), "k", 1<<30, int64(1)<<62, -1, 0)
	f.Add(uint8(SlidingWindowLog), "k", 0, int64(-5), 0, -1)
	f.Add(uint8(0), "k", 1, int64(time.Millisecond), 1, 1)
	f.Add(uint8(99), "k", 1, int64(time.Millisecond), 1, 1)
	c := fuzzClient()
	f.Fuzz(func(t *testing.T, algo uint8, key string, rate int, periodNs int64, burst, n int) {
		l, err := c.Limiter("api", &LimiterOptions{Algorithm: Algorithm(algo)})
		if _, known := algorithmNames[Algorithm(algo)]; !known && algo != 0 { // 0: the default
			wantInvalid(t, "Limiter", err)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		lim := Limit{Rate: rate, Period: time.Duration(periodNs), Burst: burst}
		keys, err := l.keys(key, []Limit{lim})
		if !validID(key) {
			wantInvalid(t, "limiter key", err)
		}
		if err != nil {
			wantInvalid(t, "limiter keys", err)
			// Allow must refuse it before reaching Redis.
			_, aerr := l.AllowN(context.Background(), key, max(n, 1), lim)
			wantInvalid(t, "AllowN", aerr)
			return
		}
		for _, k := range keys {
			checkKey(t, k, "rl", key)
		}
		if _, err := l.prepare(key, n, true, []Limit{lim}); err != nil {
			wantInvalid(t, "prepare", err)
		} else if n < 1 {
			t.Fatalf("n = %d accepted", n)
		}
	})
}

// FuzzSessionIDs: session ids as received from a cookie, users and data.
func FuzzSessionIDs(f *testing.F) {
	f.Add("", "alice", "field", "value")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "", "")
	f.Add("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "{bob}", "f", "")
	f.Add(strings.Repeat("A", sessionIDLen), strings.Repeat("u", MaxIDLen+1), strings.Repeat("f", 257), "v")
	c := fuzzClient()
	s, err := c.Sessions("web", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, user, field, value string) {
		ctx := context.Background()
		// Any id from a client: either refused or routed by its own tag.
		sk, ik, err := s.keys(id)
		if err != nil {
			wantInvalid(t, "session id", err)
			_, _, gerr := s.Get(ctx, id)
			wantInvalid(t, "Get", gerr)
			wantInvalid(t, "Destroy", s.Destroy(ctx, id))
		} else {
			tag, _ := parseID(id)
			checkKey(t, sk, "sess", hex.EncodeToString(tag))
			checkKey(t, ik, "sess", hex.EncodeToString(tag))
		}
		// A new session of user: its id parses back to the user's tag, so all
		// of a user's sessions share the slot of the user's index.
		nid, err := newSessionID(userTag(user))
		if err != nil {
			t.Fatal(err)
		}
		tag, err := parseID(nid)
		if err != nil || hex.EncodeToString(tag) != hex.EncodeToString(userTag(user)) {
			t.Fatalf("id %q of user %q: tag %x, %v", nid, user, tag, err)
		}
		sk, ik, _ = s.keys(nid)
		checkKey(t, sk, "sess", hex.EncodeToString(tag))
		checkKey(t, ik, "sess", hex.EncodeToString(tag))
		data := map[string]string{field: value}
		_, derr := s.dataArgs(data)
		badData := field == "" || len(field) > 256
		if badData {
			wantInvalid(t, "session field", derr)
		} else if derr != nil {
			t.Fatalf("field %q: %v", field, derr)
		}
		if len(user) > MaxIDLen || badData {
			_, cerr := s.Create(ctx, user, data)
			wantInvalid(t, "Create", cerr)
		}
	})
}

// FuzzBoardKeys: leaderboard names, windows and members.
func FuzzBoardKeys(f *testing.F) {
	for _, id := range fuzzIDs {
		f.Add(id, "member", int64(0))
	}
	f.Add("b", "", int64(1<<40))
	f.Add("b", strings.Repeat("m", MaxMemberLen+1), int64(-1<<40))
	c := fuzzClient()
	f.Fuzz(func(t *testing.T, name, member string, unix int64) {
		b, err := c.Board(name, &BoardOptions{Daily: time.Hour, Weekly: time.Hour, Monthly: time.Hour})
		if !validID(name) {
			wantInvalid(t, "Board", err)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		day := time.Unix(unix%(1<<36), 0).UTC()
		for _, v := range []*Board{b, b.Day(day), b.Week(day), b.Month(day)} {
			for _, k := range v.unitKeys(v.view) {
				checkKey(t, k, "lb", name)
			}
		}
		err = checkMember(member)
		if member == "" || len(member) > MaxMemberLen {
			wantInvalid(t, "member", err)
			_, serr := b.Submit(context.Background(), member, 1)
			wantInvalid(t, "Submit", serr)
		} else if err != nil {
			t.Fatalf("member %q: %v", member, err)
		}
	})
}

// FuzzCounterKeys: Uniques, Activity, Queue and Topic names, activity ids
// and queue message ids.
func FuzzCounterKeys(f *testing.F) {
	for _, id := range fuzzIDs {
		f.Add(id, int64(7), "msg-1")
	}
	f.Add("n", int64(-1), strings.Repeat("m", MaxIDLen+1))
	f.Add("n", int64(MaxActivityID+1), "")
	c := fuzzClient()
	f.Fuzz(func(t *testing.T, name string, id int64, msgID string) {
		ctx := context.Background()
		u, uerr := c.Uniques(name, &UniquesOptions{Bucket: HourBuckets})
		a, aerr := c.Activity(name, nil)
		q, qerr := c.Queue(name, nil)
		_, terr := NewTopic[string](c, name, nil)
		if !validID(name) {
			for what, err := range map[string]error{"Uniques": uerr, "Activity": aerr, "Queue": qerr, "NewTopic": terr} {
				wantInvalid(t, what, err)
			}
			return
		}
		for _, err := range []error{uerr, aerr, qerr, terr} {
			if err != nil {
				t.Fatalf("name %q: %v", name, err)
			}
		}
		checkKey(t, u.key(id), "hll", name)
		checkKey(t, a.key(id), "bm", name)
		for _, k := range q.keys {
			checkKey(t, k, "q", name)
		}
		err := checkActivityID(id)
		if id < 0 || id > MaxActivityID {
			wantInvalid(t, "activity id", err)
			_, merr := a.Mark(ctx, id)
			wantInvalid(t, "Mark", merr)
		} else if err != nil {
			t.Fatalf("activity id %d: %v", id, err)
		}
		if len(msgID) > MaxIDLen {
			_, _, eerr := q.Enqueue(ctx, nil, &EnqueueOptions{ID: msgID})
			wantInvalid(t, "Enqueue", eerr)
			_, eerr = q.EnqueueMany(ctx, []QueueItem{{EnqueueOptions: EnqueueOptions{ID: msgID}}})
			wantInvalid(t, "EnqueueMany", eerr)
			_, eerr = q.Redrive(ctx, msgID)
			wantInvalid(t, "Redrive", eerr)
			_, eerr = q.PurgeDead(ctx, msgID)
			wantInvalid(t, "PurgeDead", eerr)
		}
	})
}

// FuzzPatternsOnCluster runs every pattern with one id on a real Redis
// Cluster of three masters: every call must succeed (a key in another slot
// would make the cluster refuse the script with CROSSSLOT), and every key
// written must sit in the slot of the escaped id (sessions: of the user's
// tag) and have a TTL, the all-time board excepted. Plain go test runs the
// seeds; -fuzz runs it on fuzzed ids and members.
func FuzzPatternsOnCluster(f *testing.F) {
	for _, id := range fuzzIDs {
		if validID(id) { // the others are refused before Redis
			f.Add(id, "m:{1}")
		}
	}
	rdb := testCluster(f)
	c := newClient(f, rdb, allTimeBoard)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, id, member string) {
		if !validID(id) || !validID(member) {
			return // refused before Redis: the other targets check that
		}
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s (id %q, member %q): %v", what, id, member, err)
			}
		}
		l, err := c.Obtain(ctx, id, time.Minute, nil)
		must("Obtain", err)
		must("Refresh", l.Refresh(ctx, time.Minute))
		for algo := range algorithmNames {
			lim, err := c.Limiter("api", &LimiterOptions{Algorithm: algo})
			must("Limiter", err)
			_, err = lim.Allow(ctx, id, PerMinute(5))
			must("Allow "+algo.String(), err)
		}
		cache, err := NewCache[string](c, id, nil)
		must("NewCache", err)
		must("cache Set", cache.Set(ctx, member, "v", &CacheSetOptions{Tags: []string{member}}))
		_, err = cache.Get(ctx, member+"2", func(context.Context) (string, error) { return "w", nil }, nil)
		must("cache Get", err)
		must("InvalidateTags", cache.InvalidateTags(ctx, member))
		cache.Wait()
		sess, err := c.Sessions("web", nil)
		must("Sessions", err)
		sid, err := sess.Create(ctx, id, map[string]string{member: "x"})
		must("session Create", err)
		_, _, err = sess.Get(ctx, sid)
		must("session Get", err)
		b, err := c.Board(id, &BoardOptions{Daily: time.Hour, Weekly: time.Hour, Monthly: time.Hour})
		must("Board", err)
		_, err = b.Submit(ctx, member, 1)
		must("Submit", err)
		_, err = b.Rollup(ctx, time.Now(), 2)
		must("Rollup", err)
		u, err := c.Uniques(id, nil)
		must("Uniques", err)
		_, err = u.Add(ctx, member)
		must("Uniques Add", err)
		_, err = u.Merge(ctx, member, time.Now(), 2, time.Minute)
		must("Uniques Merge", err)
		a, err := c.Activity(id, nil)
		must("Activity", err)
		_, err = a.Mark(ctx, 7)
		must("Mark", err)
		_, err = a.ActiveOnAll(ctx, time.Now(), time.Now().AddDate(0, 0, -1))
		must("ActiveOnAll", err)
		q, err := c.Queue(id, nil)
		must("Queue", err)
		_, _, err = q.Enqueue(ctx, []byte("body"), &EnqueueOptions{ID: member})
		must("Enqueue", err)
		m, _, err := q.TryDequeue(ctx)
		must("TryDequeue", err)
		if m == nil {
			t.Fatal("no message dequeued")
		}
		must("Ack", m.Ack(ctx))
		_, err = q.Pause(ctx)
		must("Pause", err)
		_, err = q.EnqueueMany(ctx, []QueueItem{{Body: []byte("b"), EnqueueOptions: EnqueueOptions{ID: member, Priority: QueuePriorityHigh}}})
		must("EnqueueMany", err)
		_, err = q.Resume(ctx)
		must("Resume", err)
		ms, _, err := q.tryDequeue(ctx, 2)
		must("DequeueMany", err)
		_, err = q.AckMany(ctx, ms)
		must("AckMany", err)
		_, err = q.Redrive(ctx, member)
		must("Redrive", err)
		_, err = q.PurgeDead(ctx, member)
		must("PurgeDead", err)
		_, err = q.Peek(ctx, QueueReady, 5)
		must("Peek", err)
		topic, err := NewTopic[string](c, id, nil)
		must("NewTopic", err)
		_, err = topic.Publish(ctx, member)
		must("Publish", err)

		idSlot, err := rdb.ClusterKeySlot(ctx, escapeID(id)).Result()
		must("CLUSTER KEYSLOT", err)
		sessSlot, err := rdb.ClusterKeySlot(ctx, hex.EncodeToString(userTag(id))).Result()
		must("CLUSTER KEYSLOT", err)
		seen := 0
		var mu sync.Mutex
		err = rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			iter := node.Scan(ctx, 0, "*"+c.prefix+":*", 1000).Iterator()
			for iter.Next(ctx) {
				k := iter.Val()
				want := idSlot
				if strings.Contains(k, c.prefix+":sess:") {
					want = sessSlot
				}
				slot, err := node.ClusterKeySlot(ctx, k).Result()
				if err != nil {
					return err
				}
				if slot != want {
					t.Errorf("key %q in slot %d, the id's is %d", k, slot, want)
				}
				ttl, err := node.PTTL(ctx, k).Result()
				if err != nil {
					return err
				}
				if ttl == -1 && !allTimeBoard(k) {
					t.Errorf("key %q has no TTL", k)
				}
				node.Unlink(ctx, k)
				mu.Lock()
				seen++
				mu.Unlock()
			}
			return iter.Err()
		})
		must("scan", err)
		if seen < 10 {
			t.Fatalf("only %d keys written", seen)
		}
	})
}
