package patterns

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Inspector reads the state the patterns keep in Redis, for operators and
// their tools (the patterns CLI's inspect and queue commands are built on
// it): which keys each pattern holds, and per pattern its state decoded
// from what the scripts store (who holds a lock and until when, what a rate
// limit has left, a semaphore's holders, a queue's depth...).
//
// It is the one reader of the storage format outside the scripts: keys are
// built by the same key builder the patterns use, and values are decoded
// here, next to the code that writes them. A change of format changes the
// scripts, the pattern and the Inspector, and nothing else.
//
// It only reads: it never writes a key, never runs KEYS (Scan uses SCAN),
// and every call is bounded (by ScanOptions, or by the n it is given).
// What it returns is a snapshot: the state may change while it reads, and
// an object that ended meanwhile reads as absent. Owner tokens are never
// returned whole (see LeaseInfo.Token), nor are stored values (a cache
// entry, an idempotent result): only their sizes.
//
// Make it with Client.Inspector. It is safe for concurrent use.
type Inspector struct{ c *Client }

// Inspector returns an Inspector on the client's deployment and prefix.
func (c *Client) Inspector() *Inspector { return &Inspector{c: c} }

// ScanOptions bound Inspector.Scan. A nil *ScanOptions means all defaults.
type ScanOptions struct {
	// MaxKeys stops the scan after this many keys.
	//
	// default: 100000
	MaxKeys int
	// Timeout stops the scan after this long.
	//
	// default: 10 seconds
	Timeout time.Duration
	// Sample is how many keys of each pattern have their MEMORY USAGE read;
	// PatternStats.Memory scales their sum to all the pattern's keys. -1
	// reads none.
	//
	// default: 20
	Sample int
}

func (o *ScanOptions) values() (maxKeys int, timeout time.Duration, sample int) {
	maxKeys, timeout, sample = 100000, 10*time.Second, 20
	if o != nil {
		if o.MaxKeys > 0 {
			maxKeys = o.MaxKeys
		}
		if o.Timeout > 0 {
			timeout = o.Timeout
		}
		if o.Sample > 0 {
			sample = o.Sample
		} else if o.Sample < 0 {
			sample = 0
		}
	}
	return
}

// PatternStats sums up one pattern's keys, as Scan found them.
type PatternStats struct {
	// Pattern is the word after the prefix: "lock", "rl", "q"..., or one of
	// yours (Client.Key).
	Pattern string
	// Keys counts the keys found.
	Keys int
	// Memory is MEMORY USAGE in bytes summed over the sampled keys, scaled
	// to Keys.
	Memory int64
	// Sampled counts the keys whose MEMORY USAGE was read.
	Sampled int
	// NoTTL counts the keys without a TTL; NoTTLExamples are up to three.
	NoTTL         int
	NoTTLExamples []string // up to three keys without a TTL
	// LongLived is set for the patterns whose keys have no TTL by design
	// (leaderboards).
	LongLived bool
}

// ConcurrencyKey is a key of a concurrency limiter that holds state.
type ConcurrencyKey struct {
	Limiter string // the limiter's name
	Key     string // the key limited
}

// IdempotencyKey is a key of an idempotency store that holds a record.
type IdempotencyKey struct {
	Store string // the Idempotency's name
	Key   string // the caller's idempotency key
}

// CacheKeys are the keys of one cache that Scan found: its entries and its
// load leases, by the caller's keys, sorted.
type CacheKeys struct {
	Name    string   // the cache's name
	Entries []string // keys with an entry
	Leases  []string // keys with a load lease held
}

// Keyspace is what Scan found under the client's prefix: counts per pattern,
// and the objects of each pattern, by the names and keys callers gave them
// (unescaped), each list sorted.
type Keyspace struct {
	// Scanned counts the keys found.
	Scanned int
	// Truncated says why the scan stopped before the end ("" when it did
	// not): what follows covers the keys found.
	Truncated string
	// Patterns are sorted by pattern.
	Patterns []PatternStats

	Locks       []string         // keys with a lock held (Obtain, ObtainMulti)
	RateLimits  []string         // keys with rate-limit state (see RateLimits)
	Semaphores  []string         // semaphore names
	Concurrency []ConcurrencyKey // concurrency limiters' keys
	RWLocks     []string         // read-write lock names
	Elections   []string         // elections with a leader
	Queues      []string         // queue names
	Boards      []string         // leaderboard names
	Caches      []CacheKeys      // caches with entries, leases or tag records
	Idempotency []IdempotencyKey // idempotency records
	Streams     []string         // stream topic names
}

// scanned is a key found by SCAN, parsed.
type scanned struct {
	key, pattern, id, rest string // rest: after the hash tag, without its ':'
	node                   redis.Cmdable
}

// ParseKey splits a key of the library's layout, prefix:pattern:{id}:rest,
// into its pattern, its id (unescaped: as the caller gave it) and what
// follows the hash tag (escaped, as stored). ok is false for a key of
// another layout or prefix.
func (in *Inspector) ParseKey(key string) (pattern, id, rest string, ok bool) {
	s, ok := strings.CutPrefix(key, in.c.prefix+":")
	if !ok {
		return "", "", "", false
	}
	pattern, s, ok = strings.Cut(s, ":")
	if !ok || !strings.HasPrefix(s, "{") {
		return "", "", "", false
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return "", "", "", false
	}
	rest = s[end+1:]
	if rest != "" && rest[0] != ':' {
		return "", "", "", false
	}
	return pattern, unescapeKeyPart(s[1:end]), strings.TrimPrefix(rest, ":"), true
}

// unescapeKeyPart undoes writeEscaped.
func unescapeKeyPart(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// primaries returns the servers to scan: every master of a cluster, every
// shard of a ring, or the one server.
func (in *Inspector) primaries(ctx context.Context) ([]redis.Cmdable, error) {
	var mu sync.Mutex
	var nodes []*redis.Client
	add := func(_ context.Context, n *redis.Client) error {
		mu.Lock() // ForEachMaster and ForEachShard run fn concurrently
		nodes = append(nodes, n)
		mu.Unlock()
		return nil
	}
	var err error
	switch r := in.c.rdb.(type) {
	case *redis.ClusterClient:
		err = r.ForEachMaster(ctx, add)
	case *redis.Ring:
		err = r.ForEachShard(ctx, add)
	default:
		return []redis.Cmdable{in.c.rdb}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("patterns: inspect: %w", err)
	}
	slices.SortFunc(nodes, func(a, b *redis.Client) int { return strings.Compare(a.Options().Addr, b.Options().Addr) })
	out := make([]redis.Cmdable, len(nodes))
	for i, n := range nodes {
		out[i] = n
	}
	return out, nil
}

// Scan walks the client's keys with SCAN on every primary, bounded by opt,
// and returns what each pattern holds: key counts, keys without a TTL,
// sampled memory, and the objects found (locks, queues, caches...) for the
// other methods to read.
func (in *Inspector) Scan(ctx context.Context, opt *ScanOptions) (*Keyspace, error) {
	maxKeys, timeout, sample := opt.values()
	nodes, err := in.primaries(ctx)
	if err != nil {
		return nil, err
	}
	ks := &Keyspace{}
	byPattern := map[string][]scanned{}
	deadline := time.Now().Add(timeout)
	match := globEscape(in.c.prefix) + ":*"
scan:
	for _, n := range nodes {
		var cursor uint64
		for {
			if time.Now().After(deadline) {
				ks.Truncated = fmt.Sprintf("stopped after %s (timeout)", timeout)
				break scan
			}
			keys, next, err := n.Scan(ctx, cursor, match, 1000).Result()
			if err != nil {
				return nil, fmt.Errorf("patterns: inspect: SCAN: %w", err)
			}
			for _, k := range keys {
				if ks.Scanned >= maxKeys {
					ks.Truncated = fmt.Sprintf("stopped after %d keys (max keys)", maxKeys)
					break scan
				}
				ks.Scanned++
				s := scanned{key: k, node: n}
				var ok bool
				if s.pattern, s.id, s.rest, ok = in.ParseKey(k); !ok {
					rest := strings.TrimPrefix(k, in.c.prefix+":")
					s.pattern, _, _ = strings.Cut(rest, ":")
				}
				byPattern[s.pattern] = append(byPattern[s.pattern], s)
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	pats := make([]string, 0, len(byPattern))
	for p := range byPattern {
		pats = append(pats, p)
	}
	slices.Sort(pats)
	for _, p := range pats {
		st, err := summarize(ctx, p, byPattern[p], sample)
		if err != nil {
			return nil, err
		}
		ks.Patterns = append(ks.Patterns, st)
	}
	ks.objects(byPattern)
	return ks, nil
}

// objects lists the objects of each pattern from its keys (see each
// pattern's key layout in its file).
func (ks *Keyspace) objects(by map[string][]scanned) {
	ids := func(pat string, keep func(s scanned) bool) []string {
		seen := map[string]bool{}
		var out []string
		for _, s := range by[pat] {
			if !seen[s.id] && keep(s) {
				seen[s.id] = true
				out = append(out, s.id)
			}
		}
		slices.Sort(out)
		return out
	}
	all := func(scanned) bool { return true }
	bare := func(s scanned) bool { return s.rest == "" }
	ks.Locks = ids("lock", bare)
	ks.RateLimits = ids("rl", all)
	ks.Semaphores = ids("sem", all)
	ks.RWLocks = ids("rw", all)
	ks.Elections = ids("elect", bare)
	ks.Queues = ids("q", all)
	ks.Boards = ids("lb", func(s scanned) bool { return s.rest == "s" })
	ks.Streams = ids("st", bare)
	for _, s := range by["conc"] {
		if s.rest != "" && !strings.Contains(s.rest, ":") {
			ks.Concurrency = append(ks.Concurrency, ConcurrencyKey{Limiter: unescapeKeyPart(s.rest), Key: s.id})
		}
	}
	slices.SortFunc(ks.Concurrency, func(a, b ConcurrencyKey) int {
		return cmp.Or(strings.Compare(a.Limiter, b.Limiter), strings.Compare(a.Key, b.Key))
	})
	for _, id := range ids("idem", bare) {
		if store, key, ok := splitIdemID(id); ok {
			ks.Idempotency = append(ks.Idempotency, IdempotencyKey{Store: store, Key: key})
		}
	}
	slices.SortFunc(ks.Idempotency, func(a, b IdempotencyKey) int {
		return cmp.Or(strings.Compare(a.Store, b.Store), strings.Compare(a.Key, b.Key))
	})
	caches := map[string]*CacheKeys{}
	for _, s := range by["cache"] {
		ck := caches[s.id]
		if ck == nil {
			ck = &CacheKeys{Name: s.id}
			caches[s.id] = ck
		}
		if k, ok := strings.CutPrefix(s.rest, "e:"); ok {
			ck.Entries = append(ck.Entries, unescapeKeyPart(k))
		} else if k, ok := strings.CutPrefix(s.rest, "l:"); ok {
			ck.Leases = append(ck.Leases, unescapeKeyPart(k))
		}
	}
	for _, ck := range caches {
		slices.Sort(ck.Entries)
		slices.Sort(ck.Leases)
		ks.Caches = append(ks.Caches, *ck)
	}
	slices.SortFunc(ks.Caches, func(a, b CacheKeys) int { return strings.Compare(a.Name, b.Name) })
}

// splitIdemID splits an idempotency id, LEN:NAME:KEY (Idempotency.keys).
func splitIdemID(id string) (store, key string, ok bool) {
	l, rest, ok := strings.Cut(id, ":")
	n, err := strconv.Atoi(l)
	if !ok || err != nil || n <= 0 || n >= len(rest) || rest[n] != ':' {
		return "", "", false
	}
	return rest[:n], rest[n+1:], true
}

// globEscape escapes the glob characters of SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[]\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// summarize counts a pattern's keys, their TTLs and (sampled) memory, in
// pipelines of 500 keys per server.
func summarize(ctx context.Context, pat string, keys []scanned, sample int) (PatternStats, error) {
	st := PatternStats{Pattern: pat, Keys: len(keys), LongLived: pat == "lb"}
	const batch = 500
	for i := 0; i < len(keys); i += batch {
		part := keys[i:min(i+batch, len(keys))]
		pipes := map[redis.Cmdable]redis.Pipeliner{}
		pipe := func(n redis.Cmdable) redis.Pipeliner {
			if p, ok := pipes[n]; ok {
				return p
			}
			p := n.Pipeline()
			pipes[n] = p
			return p
		}
		ttls := make([]*redis.DurationCmd, len(part))
		var mem []*redis.IntCmd
		for j, k := range part {
			ttls[j] = pipe(k.node).PTTL(ctx, k.key)
			if i+j < sample {
				mem = append(mem, pipe(k.node).MemoryUsage(ctx, k.key))
			}
		}
		for _, p := range pipes {
			_, _ = p.Exec(ctx) // errors are read per command below
		}
		for j, k := range part {
			if err := ttls[j].Err(); err != nil {
				return st, fmt.Errorf("patterns: inspect: PTTL %s: %w", k.key, err)
			}
			if ttls[j].Val() == -1 {
				st.NoTTL++
				if len(st.NoTTLExamples) < 3 {
					st.NoTTLExamples = append(st.NoTTLExamples, k.key)
				}
			}
		}
		for _, m := range mem {
			if m.Err() == nil { // a key that expired meanwhile is nil
				st.Memory += m.Val()
				st.Sampled++
			}
		}
	}
	if st.Sampled > 0 && st.Sampled < st.Keys {
		st.Memory = st.Memory * int64(st.Keys) / int64(st.Sampled)
	}
	return st, nil
}

// tokenTail is how the Inspector shows an owner token: its last six
// characters after "...", enough to tell holders apart, not enough to
// release or extend their hold.
func tokenTail(tok string) string {
	if len(tok) > 6 {
		return "..." + tok[len(tok)-6:]
	}
	return tok
}

// serverMs reads the clock of the server holding key, in ms: the clock
// the scripts compare leases with.
func (in *Inspector) serverMs(ctx context.Context, key string) (int64, error) {
	t, err := in.serverTime(ctx, key)
	return t.UnixMilli(), err
}

// serverTime reads the clock of the server holding key (TIME, in µs).
func (in *Inspector) serverTime(ctx context.Context, key string) (time.Time, error) {
	var n redis.Cmdable = in.c.rdb
	if cl, ok := in.c.rdb.(*redis.ClusterClient); ok {
		m, err := cl.MasterForKey(ctx, key)
		if err != nil {
			return time.Time{}, fmt.Errorf("patterns: inspect: %w", err)
		}
		n = m
	}
	t, err := n.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("patterns: inspect: TIME: %w", err)
	}
	return t, nil
}

// readAll runs a pipeline of reads and returns the first error other than
// redis.Nil.
func readAll(ctx context.Context, p redis.Pipeliner, what string) error {
	cmds, _ := p.Exec(ctx)
	for _, c := range cmds {
		if err := c.Err(); err != nil && err != redis.Nil {
			return fmt.Errorf("patterns: inspect %s: %w", what, err)
		}
	}
	return nil
}

// fence reads a fencing counter: 0 when none was issued.
func fence(c *redis.StringCmd) int64 {
	n, _ := c.Int64()
	return n
}

// ttlOf returns a PTTL reply as a duration, 0 when the key has no expiry
// or does not exist.
func ttlOf(c *redis.DurationCmd) time.Duration {
	if d := c.Val(); d > 0 {
		return d
	}
	return 0
}

// LockInfo is the state of a lock (Obtain, ObtainMulti).
type LockInfo struct {
	Key  string // the locked key, as given to Obtain
	Held bool   // the lock is held
	// Token is the holder's owner token, shortened (see tokenTail):
	// "...xxxxxx".
	Token string
	TTL   time.Duration // the lock's TTL left; 0 when not held
	// Fence is the last fencing token issued for the key, 0 for none.
	Fence int64
}

// Lock reads the lock on key: its holder, its TTL and its fencing counter.
func (in *Inspector) Lock(ctx context.Context, key string) (LockInfo, error) {
	if err := checkID("lock key", key); err != nil {
		return LockInfo{}, err
	}
	k := in.c.key("lock", key)
	p := in.c.rdb.Pipeline()
	owner, ttl, f := p.Get(ctx, k), p.PTTL(ctx, k), p.Get(ctx, k+":fence")
	if err := readAll(ctx, p, "lock"); err != nil {
		return LockInfo{}, err
	}
	li := LockInfo{Key: key, Fence: fence(f)}
	if owner.Err() == nil {
		li.Held, li.Token, li.TTL = true, tokenTail(owner.Val()), ttlOf(ttl)
	}
	return li, nil
}

// ElectionInfo is the state of an election (Elect).
type ElectionInfo struct {
	Name string // the election's name
	// Leader is the leader's identity, "" when there is none.
	Leader string
	Token  string        // the leader's token, shortened: "...xxxxxx"
	TTL    time.Duration // the leader's lease left
	Fence  int64         // the leader's fencing token, 0 for none
}

// Election reads the election name: its leader's identity, token, TTL and
// fencing token.
func (in *Inspector) Election(ctx context.Context, name string) (ElectionInfo, error) {
	if err := checkID("election name", name); err != nil {
		return ElectionInfo{}, err
	}
	k := in.c.key("elect", name)
	p := in.c.rdb.Pipeline()
	v, ttl, f := p.Get(ctx, k), p.PTTL(ctx, k), p.Get(ctx, k+":fence")
	if err := readAll(ctx, p, "election"); err != nil {
		return ElectionInfo{}, err
	}
	ei := ElectionInfo{Name: name}
	// The lock's value: the token (tokenLen bytes), then the identity.
	if s := v.Val(); len(s) > tokenLen {
		ei.Leader, ei.Token, ei.TTL, ei.Fence = s[tokenLen:], tokenTail(s[:tokenLen]), ttlOf(ttl), fence(f)
	}
	return ei, nil
}

// LeaseInfo is one lease of a sorted set of leases: a semaphore's holder or
// waiter, a read lock's reader.
type LeaseInfo struct {
	// Token is the owner's token, shortened: "...xxxxxx".
	Token string
	// Left is how long the lease (for a waiter: its place) lasts unless it
	// is renewed.
	Left time.Duration
}

func leaseInfos(z []redis.Z, now int64) []LeaseInfo {
	out := make([]LeaseInfo, 0, len(z))
	for _, h := range z {
		out = append(out, LeaseInfo{Token: tokenTail(fmt.Sprint(h.Member)), Left: time.Duration(int64(h.Score)-now) * time.Millisecond})
	}
	return out
}

// leases reads a sorted set of tokens scored by lease end (server ms): how
// many are live at now, and the first n of them.
func leases(ctx context.Context, p redis.Pipeliner, key string, now int64, n int) (*redis.IntCmd, *redis.ZSliceCmd) {
	live := "(" + strconv.FormatInt(now, 10)
	return p.ZCount(ctx, key, live, "+inf"),
		p.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: live, Max: "+inf", Count: int64(n)})
}

// SemaphoreInfo is the state of a semaphore.
type SemaphoreInfo struct {
	Name string // the semaphore's name
	// Permits is the number stored by SetPermits; 0 when none is stored
	// (each client then uses its SemaphoreOptions.Permits, which Redis does
	// not know).
	Permits int64
	// Held counts the live permits; Holders are up to n of them.
	Held    int64
	Holders []LeaseInfo // up to n live permits, with their leases
	// Waiting counts the waiters of a fair semaphore (up to 1000), in order
	// of arrival; Waiters are the first n.
	Waiting int
	Waiters []LeaseInfo // the first n waiters, in order of arrival
}

// Semaphore reads the semaphore name (Client.Semaphore): its permits, its
// holders and its waiters, showing up to n of each.
func (in *Inspector) Semaphore(ctx context.Context, name string, n int) (SemaphoreInfo, error) {
	if err := checkID("semaphore name", name); err != nil {
		return SemaphoreInfo{}, err
	}
	base := in.c.key("sem", name)
	return in.semaphore(ctx, name, base, n)
}

// semaphore reads a semaphore at base (sem_acquire.lua): base holds the
// holders' tokens scored by lease end, :permits the number SetPermits
// stored, :queue the fair mode's waiters by arrival and :qttl the same by
// when their place lapses.
func (in *Inspector) semaphore(ctx context.Context, name, base string, n int) (SemaphoreInfo, error) {
	n = max(n, 0)
	now, err := in.serverMs(ctx, base)
	if err != nil {
		return SemaphoreInfo{}, err
	}
	p := in.c.rdb.Pipeline()
	held, first := leases(ctx, p, base, now, n)
	permits := p.Get(ctx, base+":permits")
	queue := p.ZRange(ctx, base+":queue", 0, 999)
	places := p.ZRangeByScoreWithScores(ctx, base+":qttl", &redis.ZRangeBy{Min: "(" + strconv.FormatInt(now, 10), Max: "+inf", Count: 1000})
	if err := readAll(ctx, p, "semaphore"); err != nil {
		return SemaphoreInfo{}, err
	}
	si := SemaphoreInfo{Name: name, Held: held.Val(), Holders: leaseInfos(first.Val(), now)}
	si.Permits, _ = permits.Int64()
	lapse := map[string]int64{}
	for _, z := range places.Val() {
		lapse[fmt.Sprint(z.Member)] = int64(z.Score)
	}
	for _, tok := range queue.Val() {
		if end, ok := lapse[tok]; ok {
			si.Waiting++
			if len(si.Waiters) < n {
				si.Waiters = append(si.Waiters, LeaseInfo{Token: tokenTail(tok), Left: time.Duration(end-now) * time.Millisecond})
			}
		}
	}
	return si, nil
}

// ConcurrencyInfo is the state of one key of a concurrency limiter.
type ConcurrencyInfo struct {
	Limiter  string // the concurrency limiter's name
	Key      string // the key limited
	InFlight int64  // live permits
}

// Concurrency reads the requests in flight for key under the concurrency
// limiter named limiter (Client.Concurrency).
func (in *Inspector) Concurrency(ctx context.Context, limiter, key string) (ConcurrencyInfo, error) {
	if err := checkID("concurrency key", key); err != nil {
		return ConcurrencyInfo{}, err
	}
	zset := in.c.key("conc", key, escapePart(limiter))
	now, err := in.serverMs(ctx, zset)
	if err != nil {
		return ConcurrencyInfo{}, err
	}
	n, err := in.c.rdb.ZCount(ctx, zset, "("+strconv.FormatInt(now, 10), "+inf").Result()
	if err != nil {
		return ConcurrencyInfo{}, fmt.Errorf("patterns: inspect concurrency: %w", err)
	}
	return ConcurrencyInfo{Limiter: limiter, Key: key, InFlight: n}, nil
}

// RWLockInfo is the state of a read-write lock.
type RWLockInfo struct {
	Name string // the read-write lock's name
	// Readers counts the live read locks; ReaderLeases are up to n of them.
	Readers      int64
	ReaderLeases []LeaseInfo // up to n live readers, with their leases
	// Writer is the writer's token, shortened; "" when none holds it.
	Writer    string
	WriterTTL time.Duration // the writer's lease left
	// WriterWaiting is set while a refused writer's intent holds new
	// readers off; WaitingWriter is its token, shortened.
	WriterWaiting bool
	WaitingWriter string        // the waiting writer's token, shortened
	IntentTTL     time.Duration // the waiting writer's intent left
	Fence         int64         // the last fencing token issued, 0 for none
}

// RWLock reads the read-write lock name (Client.RWLock), showing up to n of
// its readers.
func (in *Inspector) RWLock(ctx context.Context, name string, n int) (RWLockInfo, error) {
	if err := checkID("rwlock name", name); err != nil {
		return RWLockInfo{}, err
	}
	// rw.lua: base:r the readers' tokens scored by lease end, :w the
	// writer's token, :intent a refused writer's token, :fence the counter.
	base := in.c.key("rw", name)
	now, err := in.serverMs(ctx, base)
	if err != nil {
		return RWLockInfo{}, err
	}
	p := in.c.rdb.Pipeline()
	readers, first := leases(ctx, p, base+":r", now, max(n, 0))
	writer, wttl := p.Get(ctx, base+":w"), p.PTTL(ctx, base+":w")
	intent, ittl := p.Get(ctx, base+":intent"), p.PTTL(ctx, base+":intent")
	f := p.Get(ctx, base+":fence")
	if err := readAll(ctx, p, "rwlock"); err != nil {
		return RWLockInfo{}, err
	}
	ri := RWLockInfo{Name: name, Readers: readers.Val(), ReaderLeases: leaseInfos(first.Val(), now), Fence: fence(f)}
	if writer.Err() == nil {
		ri.Writer, ri.WriterTTL = tokenTail(writer.Val()), ttlOf(wttl)
	}
	if intent.Err() == nil {
		ri.WriterWaiting, ri.WaitingWriter, ri.IntentTTL = true, tokenTail(intent.Val()), ttlOf(ittl)
	}
	return ri, nil
}

// IdempotencyState is the state of an idempotency record.
type IdempotencyState string

// The states of an idempotency record.
const (
	IdempotencyNone       IdempotencyState = ""                     // no record
	IdempotencyInProgress IdempotencyState = "in progress"          // a holder runs
	IdempotencyCompleted  IdempotencyState = "completed"            // a result is stored
	IdempotencyFailed     IdempotencyState = "completed with error" // a failure is stored
)

// IdempotencyInfo is the state of one idempotency key. The stored result is
// never read: only its size.
type IdempotencyInfo struct {
	Store string           // the Idempotency's name
	Key   string           // the caller's idempotency key
	State IdempotencyState // in progress, completed, or completed with error
	// TTL is the lease left while in progress, the retention left once
	// completed.
	TTL         time.Duration
	ResultBytes int64 // the stored result's size; never read
	// Fingerprint is the end of the request fingerprint's SHA-256 in hex,
	// "...xxxxxxxx"; "" when the fingerprint was "".
	Fingerprint string
	Holder      string // in progress: the holder's token, shortened
	Waiters     int64  // in progress: callers waiting for the result
	Fence       int64  // the last fencing token issued, 0 for none
}

// Idempotency reads key of the idempotency store named store
// (Client.Idempotency).
func (in *Inspector) Idempotency(ctx context.Context, store, key string) (IdempotencyInfo, error) {
	if err := checkID("idempotency key", key); err != nil {
		return IdempotencyInfo{}, err
	}
	// idem_begin.lua, idem_end.lua: a hash (st "run" or "done", own the
	// holder's token, fp the fingerprint's SHA-256, res the result, fail
	// "1" for a stored error, w the waiters), :fence the counter.
	rec := in.c.key("idem", strconv.Itoa(len(store))+":"+store+":"+key)
	p := in.c.rdb.Pipeline()
	f := p.HMGet(ctx, rec, "st", "own", "fp", "fail", "w")
	size := p.HStrLen(ctx, rec, "res")
	ttl := p.PTTL(ctx, rec)
	fc := p.Get(ctx, rec+":fence")
	if err := readAll(ctx, p, "idempotency"); err != nil {
		return IdempotencyInfo{}, err
	}
	v := f.Val()
	str := func(i int) string {
		if i < len(v) {
			s, _ := v[i].(string)
			return s
		}
		return ""
	}
	ii := IdempotencyInfo{Store: store, Key: key, Fence: fence(fc)}
	switch str(0) {
	case "run":
		ii.State, ii.Holder = IdempotencyInProgress, tokenTail(str(1))
		ii.Waiters, _ = strconv.ParseInt(str(4), 10, 64)
	case "done":
		ii.State, ii.ResultBytes = IdempotencyCompleted, size.Val()
		if str(3) == "1" {
			ii.State = IdempotencyFailed
		}
	default:
		return ii, nil
	}
	ii.TTL = ttlOf(ttl)
	if fp := str(2); fp != "" {
		h := fmt.Sprintf("%x", fp)
		ii.Fingerprint = "..." + h[max(0, len(h)-8):]
	}
	return ii, nil
}

// TagInvalidation is a cache tag's last invalidation.
type TagInvalidation struct {
	Tag string    // the tag
	At  time.Time // when it was last invalidated, on the server's clock
}

// CacheInfo is the state of a cache's tags.
type CacheInfo struct {
	Name string // the cache's name
	// TagRecords counts the tags with an invalidation on record; Latest are
	// the most recent invalidations, newest first.
	TagRecords int64
	Latest     []TagInvalidation // the most recent invalidations, newest first
}

// Cache reads the tag records of the cache name (NewCache), and its n
// latest invalidations.
func (in *Inspector) Cache(ctx context.Context, name string, n int) (CacheInfo, error) {
	if err := checkID("cache name", name); err != nil {
		return CacheInfo{}, err
	}
	p := in.c.rdb.Pipeline()
	count := p.HLen(ctx, in.c.key("cache", name, "tags"))
	var latest *redis.ZSliceCmd
	if n > 0 {
		latest = p.ZRevRangeWithScores(ctx, in.c.key("cache", name, "tagz"), 0, int64(n)-1)
	}
	if err := readAll(ctx, p, "cache"); err != nil {
		return CacheInfo{}, err
	}
	ci := CacheInfo{Name: name, TagRecords: count.Val()}
	if latest != nil {
		for _, z := range latest.Val() {
			ci.Latest = append(ci.Latest, TagInvalidation{Tag: fmt.Sprint(z.Member), At: time.UnixMicro(int64(z.Score)).UTC()})
		}
	}
	return ci, nil
}

// CacheEntryInfo is the state of one key of a cache: its entry, its load
// lease, or both. The cached value is never returned: only its size.
type CacheEntryInfo struct {
	Key   string        // the caller's cache key
	Entry bool          // an entry is stored
	TTL   time.Duration // the entry's TTL left
	// Bytes is the size of the stored value, header included;
	// PayloadBytes that of the encoded value and its format byte.
	Bytes        int64
	PayloadBytes int64     // the encoded value and its format byte
	Compressed   bool      // deflated (CacheOptions.CompressAbove)
	Tags         []string  // the entry's tags
	Negative     bool      // a cached "not found"
	WrittenAt    time.Time // when the entry was written, on the server's clock
	// Invalidated is set when one of its tags was invalidated after it was
	// written: the entry is no longer served.
	Invalidated bool
	// Lease is set while a load lease is held (a fill is in progress).
	Lease    bool
	LeaseTTL time.Duration // the load lease's TTL left
	// Unrecognized is set when the value is not in the entry format.
	Unrecognized bool
}

// cacheHeaderMax bounds the bytes read of an entry to find its header: the
// longest header (64 tags of MaxIDLen bytes) and some.
const cacheHeaderMax = 64*(MaxIDLen+1) + 128

// CacheEntry reads key of the cache name: its entry's header (TTL, size,
// tags, whether a tag invalidated it) and its load lease.
func (in *Inspector) CacheEntry(ctx context.Context, name, key string) (CacheEntryInfo, error) {
	if err := checkID("cache name", name); err != nil {
		return CacheEntryInfo{}, err
	}
	e, l := in.c.key("cache", name, "e", escapePart(key)), in.c.key("cache", name, "l", escapePart(key))
	p := in.c.rdb.Pipeline()
	head, size, ttl, lttl := p.GetRange(ctx, e, 0, cacheHeaderMax), p.StrLen(ctx, e), p.PTTL(ctx, e), p.PTTL(ctx, l)
	if err := readAll(ctx, p, "cache entry"); err != nil {
		return CacheEntryInfo{}, err
	}
	ce := CacheEntryInfo{Key: key}
	if d := lttl.Val(); d > 0 {
		ce.Lease, ce.LeaseTTL = true, d
	}
	if size.Val() == 0 {
		return ce, nil
	}
	h := head.Val()
	ce.Entry, ce.Bytes, ce.TTL = true, size.Val(), ttlOf(ttl)
	ent, written, tags, ok := parseEntry(h)
	if !ok {
		ce.Unrecognized = true
		return ce, nil
	}
	nl := strings.IndexByte(h, '\n')
	ce.PayloadBytes = ce.Bytes - int64(nl+1)
	ce.Compressed = len(ent.payload) > 0 && ent.payload[0] == 1 // cache.go: format byte 1 is deflated
	ce.Negative, ce.Tags, ce.WrittenAt = ent.negative, tags, time.UnixMicro(written).UTC()
	if len(tags) > 0 {
		vs, err := in.c.rdb.HMGet(ctx, in.c.key("cache", name, "tags"), tags...).Result()
		if err != nil {
			return CacheEntryInfo{}, fmt.Errorf("patterns: inspect cache entry: %w", err)
		}
		for _, v := range vs {
			if s, ok := v.(string); ok {
				if at, err := strconv.ParseInt(s, 10, 64); err == nil && at >= written {
					ce.Invalidated = true
				}
			}
		}
	}
	return ce, nil
}

// QueueInfo is the state of a queue.
type QueueInfo struct {
	Name string // the queue's name
	QueueStats
	// DeadLetters are the ids of up to n dead letters, oldest first.
	DeadLetters []string
}

// Queue reads the counts of the queue name (Client.Queue) and the ids of
// up to n of its dead letters.
func (in *Inspector) Queue(ctx context.Context, name string, n int) (QueueInfo, error) {
	q, err := in.c.Queue(name, nil)
	if err != nil {
		return QueueInfo{}, err
	}
	st, err := q.Stats(ctx)
	if err != nil {
		return QueueInfo{}, err
	}
	qi := QueueInfo{Name: name, QueueStats: st}
	if n > 0 && st.Dead > 0 {
		if qi.DeadLetters, err = q.DeadLetters(ctx, n); err != nil {
			return QueueInfo{}, err
		}
	}
	return qi, nil
}

// QueueMessages returns up to n (at most MaxQueueBatch) messages of the
// queue name in state, without leasing them: Queue.Peek.
func (in *Inspector) QueueMessages(ctx context.Context, name string, state QueueState, n int) ([]QueuePeek, error) {
	q, err := in.c.Queue(name, nil)
	if err != nil {
		return nil, err
	}
	return q.Peek(ctx, state, n)
}

// BoardInfo is the state of a leaderboard.
type BoardInfo struct {
	Name  string       // the leaderboard's name
	Count int64        // members
	Top   []BoardEntry // the n best, ranked ordinally
}

// Board reads the leaderboard name (Client.Board): its size and its n best.
func (in *Inspector) Board(ctx context.Context, name string, n int) (BoardInfo, error) {
	b, err := in.c.Board(name, nil)
	if err != nil {
		return BoardInfo{}, err
	}
	bi := BoardInfo{Name: name}
	if bi.Count, err = b.Count(ctx); err != nil {
		return BoardInfo{}, err
	}
	if n > 0 {
		if bi.Top, err = b.Top(ctx, n, RankOrdinal); err != nil {
			return BoardInfo{}, err
		}
	}
	return bi, nil
}

// Sessions returns the live sessions of user in the Sessions named name:
// Sessions.List, without dropping the expired ones from the index.
func (in *Inspector) Sessions(ctx context.Context, name, user string) ([]SessionInfo, error) {
	s, err := in.c.Sessions(name, nil)
	if err != nil {
		return nil, err
	}
	if err := checkID("user", user); err != nil {
		return nil, err
	}
	// session.lua: the index is a sorted set of session keys scored by
	// their deadline (server ms).
	ik := s.indexKey(userTag(user))
	now, err := in.serverMs(ctx, ik)
	if err != nil {
		return nil, err
	}
	zs, err := in.c.rdb.ZRangeByScoreWithScores(ctx, ik, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(now, 10), Max: "+inf", Count: 1000}).Result()
	if err != nil {
		return nil, fmt.Errorf("patterns: inspect sessions: %w", err)
	}
	out := make([]SessionInfo, 0, len(zs))
	for _, z := range zs {
		out = append(out, SessionInfo{Key: fmt.Sprint(z.Member), Expires: time.UnixMilli(int64(z.Score))})
	}
	return out, nil
}

// StreamGroupInfo is a consumer group of a stream topic.
type StreamGroupInfo struct {
	Name      string // the group's name
	Consumers int64  // consumers known to the group
	Pending   int64  // delivered, not acknowledged
	// Lag is how many entries the group has yet to read (as
	// StreamGroup.Stats counts it).
	Lag int64
	// Dead counts the group's dead letters.
	Dead int64
}

// StreamInfo is the state of a stream topic.
type StreamInfo struct {
	Name   string            // the stream topic's name
	Length int64             // entries held
	TTL    time.Duration     // the stream's TTL left
	Groups []StreamGroupInfo // its consumer groups
}

// Stream reads the stream topic name (NewStreamTopic): its length and its
// consumer groups.
func (in *Inspector) Stream(ctx context.Context, name string) (StreamInfo, error) {
	if err := checkID("stream topic name", name); err != nil {
		return StreamInfo{}, err
	}
	k := in.c.key("st", name)
	p := in.c.rdb.Pipeline()
	n, ttl, groups := p.XLen(ctx, k), p.PTTL(ctx, k), p.XInfoGroups(ctx, k)
	if _, err := p.Exec(ctx); err != nil && n.Err() != nil {
		return StreamInfo{}, fmt.Errorf("patterns: inspect stream: %w", n.Err())
	}
	si := StreamInfo{Name: name, Length: n.Val(), TTL: ttlOf(ttl)}
	for _, g := range groups.Val() { // no stream: no groups
		gi := StreamGroupInfo{Name: g.Name, Consumers: g.Consumers, Pending: g.Pending, Lag: g.Lag}
		// The lag counted when the server has none, and the dead letters.
		st, ok, err := streamStats(ctx, in.c, k, streamDeadKey(in.c, name, g.Name), g.Name)
		if err != nil {
			return StreamInfo{}, fmt.Errorf("patterns: inspect stream: %w", err)
		}
		if ok {
			gi.Lag, gi.Dead = st.Lag, st.Dead
		}
		si.Groups = append(si.Groups, gi)
	}
	return si, nil
}

// StreamDeadInfo is a dead letter of a stream topic's group.
type StreamDeadInfo struct {
	ID         string // the dead letter's id in the dead-letter stream
	EntryID    string // the entry's id in the topic
	Deliveries int    // how many times it was delivered
	LastError  string // the last error given to Nack, "" when none
	Size       int    // the size of the entry's encoded value, in bytes
}

// StreamDeadLetters reads up to n dead letters, oldest first, of the group
// of the stream topic name (StreamGroup.DeadLetters): their ids, delivery
// counts, last errors and sizes, not their values.
func (in *Inspector) StreamDeadLetters(ctx context.Context, name, group string, n int) ([]StreamDeadInfo, error) {
	if err := checkID("stream topic name", name); err != nil {
		return nil, err
	}
	if err := checkID("stream group name", group); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, invalidf("count %d: want at least 1", n)
	}
	ms, err := in.c.rdb.XRangeN(ctx, streamDeadKey(in.c, name, group), "-", "+", int64(n)).Result()
	if err != nil {
		return nil, fmt.Errorf("patterns: inspect stream dead letters: %w", err)
	}
	out := make([]StreamDeadInfo, 0, len(ms))
	for _, m := range ms {
		d := StreamDeadInfo{ID: m.ID}
		d.EntryID, _ = m.Values["id"].(string)
		d.LastError, _ = m.Values["err"].(string)
		cnt, _ := m.Values["n"].(string)
		d.Deliveries, _ = strconv.Atoi(cnt)
		v, _ := m.Values["d"].(string)
		d.Size = len(v)
		out = append(out, d)
	}
	return out, nil
}

// LimiterInfo is the state of one limit of a rate limiter for one key.
type LimiterInfo struct {
	// RedisKey is the limit's key.
	RedisKey  string
	Limiter   string        // the limiter's name
	Algorithm Algorithm     // the limiter's algorithm
	Limit     Limit         // the limit (rate, period, burst) the key was last written under; a calendar quota's Location is not stored (nil)
	TTL       time.Duration // the key's TTL left
	// Used is what the limit counts now: events in the window (FixedWindow,
	// SlidingWindowLog), the estimate over the last period (SlidingWindow),
	// tokens taken (TokenBucket), cells (GCRA).
	Used int
	// Remaining is how many more events the limit admits now.
	Remaining int
	// ResetAfter is how long until the limit is back to full capacity, if
	// nothing consumes meanwhile.
	ResetAfter time.Duration
}

// RateLimits reads every rate limit that holds state for key, under every
// limiter name and algorithm: at most 1000 keys, found with SCAN on the
// server of the key's hash tag.
func (in *Inspector) RateLimits(ctx context.Context, key string) ([]LimiterInfo, error) {
	if err := checkID("rate limit key", key); err != nil {
		return nil, err
	}
	tagged := in.c.key("rl", key) + ":"
	var found []string
	scan := func(n redis.Cmdable, pre string) error {
		iter := n.Scan(ctx, 0, globEscape(pre)+"*", 1000).Iterator()
		for len(found) < 1000 && iter.Next(ctx) {
			found = append(found, iter.Val())
		}
		return iter.Err()
	}
	var err error
	if cl, ok := in.c.rdb.(*redis.ClusterClient); ok {
		var m *redis.Client
		if m, err = cl.MasterForKey(ctx, tagged); err == nil {
			err = scan(m, tagged)
		}
	} else {
		nodes, perr := in.primaries(ctx)
		err = perr
		for _, n := range nodes {
			if err == nil {
				err = scan(n, tagged)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("patterns: inspect rate limits: %w", err)
	}
	slices.Sort(found)
	out := make([]LimiterInfo, 0, len(found))
	for _, k := range found {
		li, ok, err := in.rateLimit(ctx, k)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, li)
		}
	}
	return out, nil
}

// rateLimit decodes one limit's key, prefix:rl:{id}:NAME:ALGO:PERIODms[:K]
// or, for a calendar quota, prefix:rl:{id}:NAME:fw:day|month[:K]
// (Limiter.limitKey), from what its algorithm's script stores, the limit's
// rate (and burst) included.
func (in *Inspector) rateLimit(ctx context.Context, k string) (LimiterInfo, bool, error) {
	_, _, rest, ok := in.ParseKey(k)
	parts := strings.Split(rest, ":")
	if !ok || len(parts) < 3 || len(parts) > 4 {
		return LimiterInfo{}, false, nil
	}
	li := LimiterInfo{RedisKey: k, Limiter: unescapeKeyPart(parts[0])}
	for a, s := range algoSuffix {
		if s == parts[1] {
			li.Algorithm = a
		}
	}
	periodMs, err := strconv.ParseInt(parts[2], 10, 64)
	for u, name := range calendarNames {
		if parts[2] == name && li.Algorithm == FixedWindow {
			// A calendar quota (its Location is not stored): the key
			// expires at the end of the period under way.
			li.Limit.Calendar, periodMs, err = u, 1, nil
		}
	}
	if li.Algorithm == 0 || err != nil || periodMs < 1 {
		return LimiterInfo{}, false, nil
	}
	if li.Limit.Calendar == 0 {
		li.Limit.Period = time.Duration(periodMs) * time.Millisecond
	}
	clock, err := in.serverTime(ctx, k)
	if err != nil {
		return LimiterInfo{}, false, err
	}
	now := clock.UnixMilli()
	p := in.c.rdb.Pipeline()
	pttl := p.PTTL(ctx, k)
	var get *redis.StringCmd
	var count *redis.IntCmd
	var newest *redis.ZSliceCmd
	if li.Algorithm == SlidingWindowLog {
		// rl_sliding_log.lua: one member per event, scored in server µs.
		count = p.ZCount(ctx, k, "("+strconv.FormatInt((now-periodMs)*1000, 10), "+inf")
		newest = p.ZRangeWithScores(ctx, k, -1, -1)
	} else {
		get = p.Get(ctx, k)
	}
	if _, err := p.Exec(ctx); err != nil && err != redis.Nil && !strings.HasPrefix(err.Error(), "WRONGTYPE") {
		return LimiterInfo{}, false, fmt.Errorf("patterns: inspect rate limit: %w", err)
	}
	ttl := pttl.Val()
	if ttl <= 0 {
		return LimiterInfo{}, false, nil // expired meanwhile
	}
	li.TTL = ttl
	ms := ttl.Milliseconds()
	var v []byte
	if get != nil {
		v = []byte(get.Val())
	}
	f := func(i int) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(v[8*i:])) }
	rate := func(r float64) bool { // sets the limit's rate and burst
		if r < 1 || r > maxScaled || r != math.Trunc(r) {
			return false
		}
		li.Limit.Rate, li.Limit.Burst = int(r), int(r)
		return true
	}
	switch li.Algorithm {
	case FixedWindow:
		// rl_fixed_window.lua: the window's count and the rate; expires
		// when the window ends.
		if len(v) != 16 || !rate(f(1)) {
			return LimiterInfo{}, false, nil
		}
		li.Used = int(f(0))
		if li.Used > 0 {
			li.ResetAfter = ttl
		}
	case SlidingWindowLog:
		// The newest member ends with the rate it was admitted under.
		z := newest.Val()
		if len(z) != 1 {
			return LimiterInfo{}, false, nil
		}
		m, _ := z[0].Member.(string)
		r, err := strconv.ParseFloat(m[strings.LastIndexByte(m, ':')+1:], 64)
		if err != nil || !rate(r) {
			return LimiterInfo{}, false, nil
		}
		li.Used = int(count.Val())
		if li.Used > 0 {
			li.ResetAfter = ceilMsOf(z[0].Score/1000 + float64(periodMs) - float64(now))
		}
	case SlidingWindow:
		// rl_sliding_window.lua: c, p and the rate, three doubles; the key
		// expires when the window after c's ends.
		if len(v) != 24 || !rate(f(2)) {
			return LimiterInfo{}, false, nil
		}
		c, prev := f(0), f(1)
		elapsed := 2*periodMs - ms
		if ms <= periodMs { // the next window: c is the previous one's
			c, prev, elapsed = 0, c, periodMs-ms
		}
		li.Used = int(math.Ceil(prev*float64(periodMs-elapsed)/float64(periodMs)) + c)
		switch {
		case c > 0:
			li.ResetAfter = time.Duration(2*periodMs-elapsed) * time.Millisecond
		case prev > 0:
			li.ResetAfter = time.Duration(periodMs-elapsed) * time.Millisecond
		}
	case TokenBucket:
		// rl_token_bucket.lua: E, the key's expiry (server ms), X, the rate
		// R and the capacity C, four doubles; the bucket is d = (E - now) *
		// R - X units (1/R ms) from full, a token being period units. The
		// key's PTTL is E - now.
		if len(v) != 32 || !rate(f(2)) {
			return LimiterInfo{}, false, nil
		}
		li.Limit.Burst = int(f(3)) / int(periodMs)
		d := math.Max(0, float64(ms)*f(2)-f(1))
		li.Used = int(math.Ceil(d / float64(periodMs)))
		li.Remaining = max(0, int(math.Floor((f(3)-d)/float64(periodMs))))
		li.ResetAfter = time.Duration(math.Ceil(d/f(2))) * time.Millisecond
		return li, true, nil
	case GCRA:
		// rl_gcra.lua: the theoretical arrival time (server ms, to the µs),
		// the rate and the burst; a cell is period/rate ms.
		if len(v) != 24 || !rate(f(1)) || f(2) < 1 {
			return LimiterInfo{}, false, nil
		}
		li.Limit.Burst = int(f(2))
		diff := math.Max(0, f(0)-float64(clock.UnixMicro())/1000)
		cell := float64(periodMs) / f(1)
		li.Used = int(math.Ceil(diff/cell - 1e-9))
		li.Remaining = max(0, int(math.Floor((f(2)*cell-diff)/cell+1e-9)))
		li.ResetAfter = ceilMs(time.Duration(diff * float64(time.Millisecond)))
		return li, true, nil
	}
	li.Remaining = max(0, li.Limit.capacity(li.Algorithm)-li.Used)
	return li, true, nil
}

// ceilMsOf rounds ms up to a whole millisecond, never below 0.
func ceilMsOf(ms float64) time.Duration {
	if ms <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(ms)) * time.Millisecond
}
