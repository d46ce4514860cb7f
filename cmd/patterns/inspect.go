package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// inspectOptions are the flags of `patterns inspect`.
type inspectOptions struct {
	prefix   string
	maxKeys  int
	timeout  time.Duration
	sample   int
	show     int
	limiter  string
	sessions string
	user     string
}

// patternStats is the summary of one pattern's keys.
type patternStats struct {
	Pattern string `json:"pattern"`
	Keys    int    `json:"keys"`
	// Memory is MEMORY USAGE summed over the sampled keys, scaled to Keys.
	Memory  int64    `json:"memory_bytes"`
	Sampled int      `json:"memory_sampled"`
	NoTTL   int      `json:"keys_without_ttl"`
	NoTTLEx []string `json:"keys_without_ttl_examples,omitempty"`
	// LongLived is set when keys without TTL are expected (leaderboards).
	LongLived bool `json:"long_lived,omitempty"`
}

type lockInfo struct {
	Key   string `json:"key"`
	Owner string `json:"owner_token_suffix"`
	TTLms int64  `json:"ttl_ms"`
	Fence string `json:"fencing_token,omitempty"`
}

type limiterKey struct {
	Key       string            `json:"key"`
	Limiter   string            `json:"limiter"`
	Algorithm string            `json:"algorithm"`
	Limit     string            `json:"limit"`
	Type      string            `json:"type"`
	TTLms     int64             `json:"ttl_ms"`
	State     map[string]string `json:"state"`
}

type queueInfo struct {
	Name        string   `json:"name"`
	Ready       int64    `json:"ready"`
	InFlight    int64    `json:"in_flight"`
	Dead        int64    `json:"dead"`
	OldestReady string   `json:"oldest_ready,omitempty"` // how long the oldest due message has waited
	Paused      bool     `json:"paused,omitempty"`
	DeadLetters []string `json:"first_dead_letters,omitempty"`
	Err         string   `json:"error,omitempty"`
}

type boardInfo struct {
	Name  string                `json:"name"`
	Count int64                 `json:"count"`
	Top   []patterns.BoardEntry `json:"top"`
}

type sessionInfo struct {
	Key       string    `json:"key_hash"`
	ExpiresAt time.Time `json:"expires_at"`
}

// inspectReport is the output of `patterns inspect -json`.
type inspectReport struct {
	Prefix    string         `json:"prefix"`
	Scanned   int            `json:"scanned"`
	Truncated string         `json:"truncated,omitempty"`
	Patterns  []patternStats `json:"patterns"`
	Locks     []lockInfo     `json:"locks,omitempty"`
	Limiter   []limiterKey   `json:"limiter,omitempty"`
	Queues    []queueInfo    `json:"queues,omitempty"`
	Boards    []boardInfo    `json:"boards,omitempty"`
	Sessions  []sessionInfo  `json:"sessions,omitempty"`

	Semaphores  []semaphoreInfo   `json:"semaphores,omitempty"`
	Concurrency []concurrencyInfo `json:"concurrency,omitempty"`
	RWLocks     []rwLockInfo      `json:"rwlocks,omitempty"`
	Idempotency []idemStoreInfo   `json:"idempotency,omitempty"`
	Caches      []cacheInfo       `json:"caches,omitempty"`
	Elections   []electionInfo    `json:"elections,omitempty"`
}

func cmdInspect(ctx context.Context, args []string, w io.Writer) error {
	return inspectMain(ctx, os.Getenv("REDIS_URL"), args, w)
}

// inspectMain is `patterns inspect` with REDIS_URL=url.
func inspectMain(ctx context.Context, url string, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	cluster := fs.Bool("cluster", false, "REDIS_URL names a Redis Cluster")
	sentinel := fs.String("sentinel", "", "REDIS_URL names Sentinels watching this master name")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var o inspectOptions
	fs.StringVar(&o.prefix, "prefix", patterns.DefaultPrefix, "the client's Options.Prefix")
	fs.IntVar(&o.maxKeys, "max", 100000, "stop scanning after this many keys")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "stop scanning after this long")
	fs.IntVar(&o.sample, "sample", 20, "keys per pattern whose MEMORY USAGE is read")
	fs.IntVar(&o.show, "n", 5, "items shown per view: locks, top entries, dead letters, holders, entries...")
	fs.StringVar(&o.limiter, "limiter", "", "decode the rate-limit state of this id")
	fs.StringVar(&o.sessions, "sessions", "", "the Sessions name for -user")
	fs.StringVar(&o.user, "user", "", "list this user's sessions (hashes only)")
	tf := addTLSFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("inspect: set REDIS_URL")
	}
	if strings.ContainsAny(o.prefix, "*?[]\\") {
		return fmt.Errorf("inspect: -prefix %q has glob characters", o.prefix)
	}
	if o.show < 1 {
		return fmt.Errorf("inspect: -n %d: want 1 or more", o.show)
	}
	if o.user != "" && o.sessions == "" {
		return fmt.Errorf("inspect: -user needs -sessions NAME")
	}
	rdb, err := connectTLS(url, *cluster, *sentinel, tf)
	if err != nil {
		return err
	}
	defer rdb.Close()
	rep, err := inspect(ctx, rdb, &o)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printInspect(w, rep)
	return nil
}

// scannedKey is a key found by SCAN, with the node that holds it.
type scannedKey struct {
	key  string
	node *redis.Client
}

// inspect scans every primary for prefix's keys, bounded by o.maxKeys and
// o.timeout, and reads what each pattern keeps.
func inspect(ctx context.Context, rdb redis.UniversalClient, o *inspectOptions) (*inspectReport, error) {
	rep := &inspectReport{Prefix: o.prefix}
	// The scan stops at o.timeout; what follows reads a bounded number of keys.
	ctx, cancel := context.WithTimeout(ctx, o.timeout+time.Minute)
	defer cancel()
	nodes, err := primaries(ctx, rdb)
	if err != nil {
		return nil, err
	}
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: o.prefix})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(o.timeout)
	byPattern := map[string][]scannedKey{}
	match := o.prefix + ":*"
scan:
	for _, n := range nodes {
		var cursor uint64
		for {
			if time.Now().After(deadline) {
				rep.Truncated = fmt.Sprintf("stopped after %s (-timeout)", o.timeout)
				break scan
			}
			keys, next, err := n.Scan(ctx, cursor, match, 1000).Result()
			if err != nil {
				return nil, fmt.Errorf("inspect: SCAN on %s: %w", n.Options().Addr, err)
			}
			for _, k := range keys {
				if rep.Scanned >= o.maxKeys {
					rep.Truncated = fmt.Sprintf("stopped after %d keys (-max)", o.maxKeys)
					break scan
				}
				rep.Scanned++
				rest := strings.TrimPrefix(k, o.prefix+":")
				pat, _, _ := strings.Cut(rest, ":")
				byPattern[pat] = append(byPattern[pat], scannedKey{k, n})
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	names := make([]string, 0, len(byPattern))
	for p := range byPattern {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		st, err := summarize(ctx, p, byPattern[p], o)
		if err != nil {
			return nil, err
		}
		rep.Patterns = append(rep.Patterns, st)
	}
	if err := inspectLocks(ctx, rep, byPattern["lock"], o); err != nil {
		return nil, err
	}
	if err := inspectQueues(ctx, rep, pc, byPattern["q"], o); err != nil {
		return nil, err
	}
	if err := inspectBoards(ctx, rep, pc, byPattern["lb"], o); err != nil {
		return nil, err
	}
	for _, v := range []func() error{
		func() error { return inspectSemaphores(ctx, rep, byPattern["sem"], o) },
		func() error { return inspectConcurrency(ctx, rep, byPattern["conc"], o) },
		func() error { return inspectRWLocks(ctx, rep, byPattern["rw"], o) },
		func() error { return inspectIdempotency(ctx, rep, byPattern["idem"], o) },
		func() error { return inspectCaches(ctx, rep, byPattern["cache"], o) },
		func() error { return inspectElections(ctx, rep, byPattern["elect"], o) },
	} {
		if err := v(); err != nil {
			return nil, err
		}
	}
	if o.limiter != "" {
		if err := inspectLimiter(ctx, rep, rdb, nodes, o); err != nil {
			return nil, err
		}
	}
	if o.user != "" {
		s, err := pc.Sessions(o.sessions, nil)
		if err != nil {
			return nil, err
		}
		list, err := s.List(ctx, o.user)
		if err != nil {
			return nil, err
		}
		for _, si := range list {
			rep.Sessions = append(rep.Sessions, sessionInfo{Key: lastPart(si.Key), ExpiresAt: si.Expires.UTC()})
		}
	}
	return rep, nil
}

// summarize counts a pattern's keys, their TTLs and (sampled) memory.
func summarize(ctx context.Context, pat string, keys []scannedKey, o *inspectOptions) (patternStats, error) {
	st := patternStats{Pattern: pat, Keys: len(keys), LongLived: pat == "lb"}
	const batch = 500
	for i := 0; i < len(keys); i += batch {
		part := keys[i:min(i+batch, len(keys))]
		// One pipeline per node (a cluster's keys are on several).
		pipes := map[*redis.Client]redis.Pipeliner{}
		pipe := func(n *redis.Client) redis.Pipeliner {
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
			if i+j < o.sample {
				mem = append(mem, pipe(k.node).MemoryUsage(ctx, k.key))
			}
		}
		for _, p := range pipes {
			_, _ = p.Exec(ctx) // errors are read per command below
		}
		for j, k := range part {
			if err := ttls[j].Err(); err != nil {
				return st, fmt.Errorf("inspect: PTTL %s: %w", k.key, err)
			}
			if ttls[j].Val() == -1 {
				st.NoTTL++
				if len(st.NoTTLEx) < 3 {
					st.NoTTLEx = append(st.NoTTLEx, k.key)
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

// idOf returns the unescaped id between the braces of a key, and what
// follows the closing brace (without its colon).
func idOf(key string) (id, rest string) {
	open := strings.IndexByte(key, '{')
	end := strings.IndexByte(key, '}')
	if open < 0 || end < open {
		return "", ""
	}
	return unescape(key[open+1 : end]), strings.TrimPrefix(key[end+1:], ":")
}

func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+3], "%02x", &c); err == nil {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func lastPart(key string) string {
	return key[strings.LastIndexByte(key, ':')+1:]
}

func inspectLocks(ctx context.Context, rep *inspectReport, keys []scannedKey, o *inspectOptions) error {
	sort.Slice(keys, func(i, j int) bool { return keys[i].key < keys[j].key })
	for _, k := range keys {
		if _, rest := idOf(k.key); rest != "" {
			continue // a fencing counter
		}
		if len(rep.Locks) >= o.show {
			break
		}
		owner, err := k.node.Get(ctx, k.key).Result()
		if err == redis.Nil {
			continue // released meanwhile
		}
		if err != nil {
			return fmt.Errorf("inspect: GET %s: %w", k.key, err)
		}
		ttl := k.node.PTTL(ctx, k.key).Val()
		fence, _ := k.node.Get(ctx, k.key+":fence").Result()
		rep.Locks = append(rep.Locks, lockInfo{Key: k.key, Owner: tokenSuffix(owner), TTLms: ttl.Milliseconds(), Fence: fence})
	}
	return nil
}

func names(keys []scannedKey, suffix string) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		id, rest := idOf(k.key)
		if rest == suffix && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func inspectQueues(ctx context.Context, rep *inspectReport, pc *patterns.Client, keys []scannedKey, o *inspectOptions) error {
	found := map[string]bool{}
	var qs []string
	for _, k := range keys {
		if id, _ := idOf(k.key); !found[id] {
			found[id] = true
			qs = append(qs, id)
		}
	}
	sort.Strings(qs)
	for _, name := range qs {
		qi := queueInfo{Name: name}
		q, err := pc.Queue(name, nil)
		if err == nil {
			var st patterns.QueueStats
			if st, err = q.Stats(ctx); err == nil {
				qi.Ready, qi.InFlight, qi.Dead, qi.Paused = st.Ready, st.InFlight, st.Dead, st.Paused
				if st.OldestReady > 0 {
					qi.OldestReady = st.OldestReady.Round(time.Millisecond).String()
				}
				qi.DeadLetters, err = q.DeadLetters(ctx, o.show)
			}
		}
		if err != nil {
			qi.Err = err.Error()
		}
		rep.Queues = append(rep.Queues, qi)
	}
	return nil
}

func inspectBoards(ctx context.Context, rep *inspectReport, pc *patterns.Client, keys []scannedKey, o *inspectOptions) error {
	for _, name := range names(keys, "s") {
		b, err := pc.Board(name, nil)
		if err != nil {
			return err
		}
		bi := boardInfo{Name: name}
		if bi.Count, err = b.Count(ctx); err != nil {
			return fmt.Errorf("inspect: board %s: %w", name, err)
		}
		if bi.Top, err = b.Top(ctx, o.show, patterns.RankOrdinal); err != nil {
			return fmt.Errorf("inspect: board %s: %w", name, err)
		}
		rep.Boards = append(rep.Boards, bi)
	}
	return nil
}

// globEscape escapes the glob characters of SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

var algoNames = map[string]string{
	"fw": "FixedWindow", "sl": "SlidingWindowLog", "sw": "SlidingWindow", "tb": "TokenBucket", "gcra": "GCRA",
}

// inspectLimiter reads every rate-limit key of one id, on the node of its
// hash tag.
func inspectLimiter(ctx context.Context, rep *inspectReport, rdb redis.UniversalClient, nodes []*redis.Client, o *inspectOptions) error {
	var b strings.Builder
	for i := 0; i < len(o.limiter); i++ {
		c := o.limiter[i]
		if c == '%' || c == '{' || c == '}' || c < ' ' || c == 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	tagged := o.prefix + ":rl:{" + b.String() + "}:"
	var found []string
	for _, pre := range []string{tagged, "rate:" + tagged} {
		for _, n := range nodes {
			iter := n.Scan(ctx, 0, globEscape(pre)+"*", 1000).Iterator()
			for iter.Next(ctx) && len(found) < 1000 {
				found = append(found, iter.Val())
			}
			if err := iter.Err(); err != nil {
				return err
			}
		}
	}
	sort.Strings(found)
	for _, k := range found {
		_, rest := idOf(k)
		parts := strings.Split(rest, ":") // NAME:ALGO:RATE:PERIODms[:BURST]
		lk := limiterKey{Key: k, State: map[string]string{}}
		if len(parts) >= 4 {
			lk.Limiter, lk.Algorithm = unescape(parts[0]), algoNames[parts[1]]
			lk.Limit = parts[2] + " per " + (time.Duration(atoi64(parts[3])) * time.Millisecond).String()
			if len(parts) >= 5 {
				lk.Limit += ", burst " + parts[4]
			}
		}
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			return err
		}
		lk.Type = typ
		lk.TTLms = rdb.PTTL(ctx, k).Val().Milliseconds()
		switch typ {
		case "string":
			v := rdb.Get(ctx, k).Val()
			switch {
			case len(parts) >= 5 && parts[1] == "tb" && (len(v) == 16 || len(v) == 8):
				decodeTokenBucket(lk.State, v, lk.TTLms, atoi64(parts[2]), atoi64(parts[3]), atoi64(parts[4]))
			case len(parts) >= 4 && parts[1] == "fw":
				lk.State["count"] = v
				lk.State["remaining"] = fmt.Sprint(max(0, atoi64(parts[2])-atoi64(v)))
			default:
				lk.State["value"] = fmt.Sprintf("%q", v)
			}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				lk.State[f] = v
			}
		case "zset":
			lk.State["entries"] = fmt.Sprint(rdb.ZCard(ctx, k).Val())
			if first := rdb.ZRangeWithScores(ctx, k, 0, 0).Val(); len(first) == 1 {
				lk.State["oldest"] = fmt.Sprintf("%.0f", first[0].Score)
			}
		}
		rep.Limiter = append(rep.Limiter, lk)
	}
	return nil
}

// decodeTokenBucket reads a token bucket's key (see rl_token_bucket.lua): E,
// its expiry in ms, and X, two little-endian doubles (or X alone, the 8-byte
// form of earlier versions); E is the key's expiry, so with its PTTL p the
// bucket is d = p*rate - X units (1/rate ms) from full.
func decodeTokenBucket(state map[string]string, v string, pttl, rate, periodMs, burst int64) {
	x := math.Float64frombits(binary.LittleEndian.Uint64([]byte(v[len(v)-8:])))
	d := math.Max(0, float64(pttl)*float64(rate)-x)
	capacity := float64(burst * periodMs)
	state["tokens"] = fmt.Sprintf("%.0f of %d", math.Floor((capacity-d)/float64(periodMs)), burst)
	state["full_in"] = (time.Duration(math.Ceil(d/float64(rate))) * time.Millisecond).String()
}

func atoi64(s string) int64 {
	var n int64
	fmt.Sscan(s, &n)
	return n
}

func printInspect(w io.Writer, rep *inspectReport) {
	fmt.Fprintf(w, "prefix %q: %d keys scanned", rep.Prefix, rep.Scanned)
	if rep.Truncated != "" {
		fmt.Fprintf(w, " (%s)", rep.Truncated)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "\n%-8s %8s %12s %8s\n", "PATTERN", "KEYS", "MEMORY", "NO TTL")
	for _, p := range rep.Patterns {
		note := ""
		switch {
		case p.NoTTL > 0 && p.LongLived:
			note = "  (long-lived by design)"
		case p.NoTTL > 0:
			note = "  should be none: " + strings.Join(p.NoTTLEx, ", ")
		}
		mem := humanBytes(p.Memory)
		if p.Sampled < p.Keys {
			mem = "~" + mem
		}
		fmt.Fprintf(w, "%-8s %8d %12s %8d%s\n", p.Pattern, p.Keys, mem, p.NoTTL, note)
	}
	if len(rep.Locks) > 0 {
		fmt.Fprintln(w, "\nlocks held:")
		for _, l := range rep.Locks {
			fmt.Fprintf(w, "  %s  owner %s  ttl %s  fence %s\n", l.Key, l.Owner, time.Duration(l.TTLms)*time.Millisecond, l.Fence)
		}
	}
	for _, l := range rep.Limiter {
		fmt.Fprintf(w, "\nlimiter %s (%s, %s): %s ttl %s\n", l.Limiter, l.Algorithm, l.Limit, l.Type, time.Duration(l.TTLms)*time.Millisecond)
		fields := make([]string, 0, len(l.State))
		for f := range l.State {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		for _, f := range fields {
			fmt.Fprintf(w, "  %s = %s\n", f, l.State[f])
		}
	}
	for _, q := range rep.Queues {
		if q.Err != "" {
			fmt.Fprintf(w, "\nqueue %s: %s\n", q.Name, q.Err)
			continue
		}
		fmt.Fprintf(w, "\nqueue %s: %d ready, %d in flight, %d dead", q.Name, q.Ready, q.InFlight, q.Dead)
		if q.OldestReady != "" {
			fmt.Fprintf(w, ", oldest ready waiting %s", q.OldestReady)
		}
		if q.Paused {
			fmt.Fprint(w, ", paused")
		}
		fmt.Fprintln(w)
		for _, d := range q.DeadLetters {
			fmt.Fprintf(w, "  dead: %s\n", d)
		}
	}
	for _, b := range rep.Boards {
		fmt.Fprintf(w, "\nboard %s: %d members\n", b.Name, b.Count)
		for _, e := range b.Top {
			fmt.Fprintf(w, "  #%d %s %g\n", e.Rank, e.Member, e.Score)
		}
	}
	if len(rep.Sessions) > 0 {
		fmt.Fprintln(w, "\nsessions:")
		for _, s := range rep.Sessions {
			fmt.Fprintf(w, "  %s  expires %s\n", s.Key, s.ExpiresAt.Format(time.RFC3339))
		}
	}
	printDetails(w, rep)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// msString prints milliseconds as a duration.
func msString(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

// printDetails prints the views of the newer patterns.
func printDetails(w io.Writer, rep *inspectReport) {
	for _, s := range rep.Semaphores {
		permits := "permits from the clients' options (none stored)"
		if s.Permits > 0 {
			permits = fmt.Sprintf("%d permits (stored by SetPermits)", s.Permits)
		}
		fmt.Fprintf(w, "\nsemaphore %s: %d held, %s, %d waiting\n", s.Name, s.Held, permits, s.Waiting)
		for _, h := range s.Holders {
			fmt.Fprintf(w, "  held by %s  lease %s\n", h.Token, msString(h.LeaseMs))
		}
		for i, wt := range s.Waiters {
			fmt.Fprintf(w, "  waiting #%d %s  place kept %s\n", i+1, wt.Token, msString(wt.PlaceMs))
		}
	}
	for _, c := range rep.Concurrency {
		fmt.Fprintf(w, "\nconcurrency %s: %d in flight over %d keys\n", c.Limiter, c.InFlight, c.Keys)
		for _, k := range c.Top {
			fmt.Fprintf(w, "  %s  %d in flight\n", k.Key, k.InFlight)
		}
	}
	for _, l := range rep.RWLocks {
		writer := "no writer"
		if l.Writer != "" {
			writer = fmt.Sprintf("writer %s ttl %s", l.Writer, msString(l.WriterTTLms))
		}
		waiting := ""
		if l.WriterWaiting {
			waiting = fmt.Sprintf(", a writer waits (%s, intent ttl %s)", l.WaitingWriter, msString(l.IntentTTLms))
		}
		fmt.Fprintf(w, "\nrwlock %s: %d readers, %s%s  fence %s\n", l.Name, l.Readers, writer, waiting, l.Fence)
		for _, r := range l.ReaderLeases {
			fmt.Fprintf(w, "  reader %s  lease %s\n", r.Token, msString(r.LeaseMs))
		}
	}
	for _, s := range rep.Idempotency {
		fmt.Fprintf(w, "\nidempotency %s: %s\n", s.Store, plural(int64(s.Keys), "key", "keys"))
		for _, k := range s.Shown {
			fp := k.Fingerprint
			if fp == "" {
				fp = "none"
			}
			switch k.State {
			case "in progress":
				fmt.Fprintf(w, "  %s  in progress, holder %s, lease %s, %d waiting  fingerprint %s  fence %s\n",
					k.Key, k.Holder, msString(k.TTLms), k.Waiters, fp, k.Fence)
			default:
				fmt.Fprintf(w, "  %s  %s, result %s, retention %s  fingerprint %s  fence %s\n",
					k.Key, k.State, humanBytes(k.ResultBytes), msString(k.TTLms), fp, k.Fence)
			}
		}
	}
	for _, c := range rep.Caches {
		fmt.Fprintf(w, "\ncache %s: %s, %s, %s\n", c.Name, plural(int64(c.Entries), "entry", "entries"),
			plural(int64(c.Leases), "load lease", "load leases"), plural(c.TagRecords, "tag invalidated", "tags invalidated"))
		for _, t := range c.Latest {
			fmt.Fprintf(w, "  tag %s  invalidated %s\n", t.Tag, t.InvalidatedAt.Format(time.RFC3339Nano))
		}
		for _, e := range c.Shown {
			var b strings.Builder
			switch {
			case !e.Entry:
				b.WriteString("no entry")
			case e.Unrecognized:
				fmt.Fprintf(&b, "ttl %s, %s, not a cache entry", msString(e.TTLms), humanBytes(e.Bytes))
			default:
				fmt.Fprintf(&b, "ttl %s, %s (payload %s)", msString(e.TTLms), humanBytes(e.Bytes), humanBytes(e.PayloadBytes))
				if e.Compressed {
					b.WriteString(", deflated")
				}
				if len(e.Tags) > 0 {
					fmt.Fprintf(&b, ", tags %s", strings.Join(e.Tags, ","))
				}
				if e.Negative {
					b.WriteString(", not found (negative)")
				}
				if e.Invalidated {
					b.WriteString(", invalidated by a tag")
				}
			}
			if e.Lease {
				fmt.Fprintf(&b, ", load lease held (ttl %s)", msString(e.LeaseTTLms))
			}
			fmt.Fprintf(w, "  entry %s  %s\n", e.Key, b.String())
		}
	}
	for _, e := range rep.Elections {
		fmt.Fprintf(w, "\nelection %s: leader %s (token %s)  ttl %s  fence %s\n", e.Name, e.Leader, e.Token, msString(e.TTLms), e.Fence)
	}
}

// The detail views of the newer patterns. Each reads at most o.show objects
// (and o.show holders, waiters or entries of each) with a few round trips
// per object, on the node that SCAN found the keys on; lease ends are
// compared with that node's clock (TIME), as the scripts do.

// tokenSuffix is the last characters of an owner token: enough to tell
// holders apart, not enough to release or refresh their hold.
func tokenSuffix(tok string) string {
	if len(tok) > 6 {
		return "..." + tok[len(tok)-6:]
	}
	return tok
}

// holderInfo is one lease: a semaphore's permit or a read lock's reader.
type holderInfo struct {
	Token   string `json:"token_suffix"`
	LeaseMs int64  `json:"lease_ms"` // left
}

// waiterInfo is a waiter of a fair semaphore, in order of arrival.
type waiterInfo struct {
	Token   string `json:"token_suffix"`
	PlaceMs int64  `json:"place_ms"` // how long its place lasts unless it asks again
}

type semaphoreInfo struct {
	Name string `json:"name"`
	// Permits is the number stored by SetPermits; 0 when none is stored
	// (each client then uses its SemaphoreOptions.Permits, which Redis
	// does not know).
	Permits int64        `json:"permits_stored,omitempty"`
	Held    int64        `json:"held"`
	Holders []holderInfo `json:"holders,omitempty"`
	// Waiting counts the waiters of a fair (FIFO) semaphore, up to 1000.
	Waiting int          `json:"waiting"`
	Waiters []waiterInfo `json:"waiters,omitempty"`
}

type concurrencyKey struct {
	Key      string `json:"key"`
	InFlight int64  `json:"in_flight"`
}

type concurrencyInfo struct {
	Limiter  string           `json:"limiter"`
	Keys     int              `json:"keys"`      // keys with state, up to 1000 read
	InFlight int64            `json:"in_flight"` // over those keys
	Top      []concurrencyKey `json:"top"`       // most in flight first
}

type rwLockInfo struct {
	Name         string       `json:"name"`
	Readers      int64        `json:"readers"`
	ReaderLeases []holderInfo `json:"reader_leases,omitempty"`
	Writer       string       `json:"writer_token_suffix,omitempty"`
	WriterTTLms  int64        `json:"writer_ttl_ms,omitempty"`
	// WriterWaiting is set while a refused writer's intent holds new
	// readers off.
	WriterWaiting bool   `json:"writer_waiting"`
	WaitingWriter string `json:"waiting_writer_token_suffix,omitempty"`
	IntentTTLms   int64  `json:"intent_ttl_ms,omitempty"`
	Fence         string `json:"fencing_token,omitempty"`
}

// idemInfo is one idempotency key. The stored result is never read: only
// its size.
type idemInfo struct {
	Key   string `json:"key"`
	State string `json:"state"` // in progress, completed, completed with error
	// TTLms is the lease left while in progress, the retention left once
	// completed.
	TTLms       int64  `json:"ttl_ms"`
	ResultBytes int64  `json:"result_bytes"`
	Fingerprint string `json:"fingerprint_sha256_suffix,omitempty"` // hex; "" when the fingerprint was ""
	Holder      string `json:"holder_token_suffix,omitempty"`
	Waiters     int64  `json:"waiters,omitempty"`
	Fence       string `json:"fencing_token,omitempty"`
}

type idemStoreInfo struct {
	Store string     `json:"store"`
	Keys  int        `json:"keys"`
	Shown []idemInfo `json:"shown"`
}

type tagVersion struct {
	Tag           string    `json:"tag"`
	InvalidatedAt time.Time `json:"invalidated_at"`
}

type cacheEntryInfo struct {
	Key          string    `json:"key"`
	Entry        bool      `json:"entry"` // false: only a load lease
	TTLms        int64     `json:"ttl_ms,omitempty"`
	Bytes        int64     `json:"bytes,omitempty"`         // the Redis value, header included
	PayloadBytes int64     `json:"payload_bytes,omitempty"` // the format byte and the encoded value
	Compressed   bool      `json:"compressed,omitempty"`
	Tags         []string  `json:"tags,omitempty"`
	Negative     bool      `json:"negative,omitempty"` // a cached "not found"
	WrittenAt    time.Time `json:"written_at,omitzero"`
	// Invalidated is set when one of its tags was invalidated after it was
	// written: the entry is no longer served.
	Invalidated  bool  `json:"invalidated,omitempty"`
	Lease        bool  `json:"load_lease"`
	LeaseTTLms   int64 `json:"load_lease_ttl_ms,omitempty"`
	Unrecognized bool  `json:"unrecognized,omitempty"` // not the entry format of cache_set
}

type cacheInfo struct {
	Name    string `json:"name"`
	Entries int    `json:"entries"`
	Leases  int    `json:"load_leases"`
	// TagRecords counts the tags with an invalidation on record; Latest
	// are the most recent invalidations.
	TagRecords int64            `json:"tag_records"`
	Latest     []tagVersion     `json:"latest_invalidations,omitempty"`
	Shown      []cacheEntryInfo `json:"shown"`
}

type electionInfo struct {
	Name   string `json:"name"`
	Leader string `json:"leader"`
	Token  string `json:"token_suffix"`
	Fence  string `json:"fencing_token,omitempty"`
	TTLms  int64  `json:"ttl_ms"`
}

// keyGroup is the keys of one id of a pattern: base is the key up to the
// hash tag's closing brace, keys maps what follows it ("" for base itself)
// to the key.
type keyGroup struct {
	id   string
	base string
	node *redis.Client
	keys map[string]string
}

func groupByID(keys []scannedKey) []*keyGroup {
	by := map[string]*keyGroup{}
	var out []*keyGroup
	for _, k := range keys {
		end := strings.IndexByte(k.key, '}')
		if end < 0 {
			continue
		}
		base := k.key[:end+1]
		g := by[base]
		if g == nil {
			id, _ := idOf(k.key)
			g = &keyGroup{id: id, base: base, node: k.node, keys: map[string]string{}}
			by[base] = g
			out = append(out, g)
		}
		_, rest := idOf(k.key)
		g.keys[rest] = k.key
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// maxGroupsRead bounds the ids a view reads to find the o.show it shows
// (idle ones are skipped).
const maxGroupsRead = 1000

// firstGroups is groupByID's first maxGroupsRead groups.
func firstGroups(keys []scannedKey) []*keyGroup {
	g := groupByID(keys)
	return g[:min(len(g), maxGroupsRead)]
}

// serverMs reads a node's clock in milliseconds.
func serverMs(ctx context.Context, n *redis.Client) (int64, error) {
	t, err := n.Time(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("inspect: TIME on %s: %w", n.Options().Addr, err)
	}
	return t.UnixMilli(), nil
}

// leases reads a sorted set of tokens scored by lease end (ms): how many
// are live at now, and the first show of them.
func leases(ctx context.Context, p redis.Pipeliner, key string, now int64, show int) (*redis.IntCmd, *redis.ZSliceCmd) {
	live := fmt.Sprintf("(%d", now)
	return p.ZCount(ctx, key, live, "+inf"),
		p.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: live, Max: "+inf", Count: int64(show)})
}

func holders(z []redis.Z, now int64) []holderInfo {
	var out []holderInfo
	for _, h := range z {
		out = append(out, holderInfo{Token: tokenSuffix(fmt.Sprint(h.Member)), LeaseMs: int64(h.Score) - now})
	}
	return out
}

// pipeErr returns the first error of cmds other than redis.Nil.
func pipeErr(what string, cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && err != redis.Nil {
			return fmt.Errorf("inspect: %s: %w", what, err)
		}
	}
	return nil
}

// inspectSemaphores reads semaphores (semaphore.go, sem_acquire.lua):
// prefix:sem:{name} holds the holders' tokens scored by lease end,
// :permits the number stored by SetPermits, :queue the fair mode's waiters
// scored by arrival and :qttl the same scored by when their place lapses.
func inspectSemaphores(ctx context.Context, rep *inspectReport, keys []scannedKey, o *inspectOptions) error {
	for _, g := range firstGroups(keys) {
		if len(rep.Semaphores) >= o.show {
			break
		}
		now, err := serverMs(ctx, g.node)
		if err != nil {
			return err
		}
		p := g.node.Pipeline()
		held, first := leases(ctx, p, g.base, now, o.show)
		permits := p.Get(ctx, g.base+":permits")
		queue := p.ZRange(ctx, g.base+":queue", 0, 999)
		places := p.ZRangeByScoreWithScores(ctx, g.base+":qttl", &redis.ZRangeBy{Min: fmt.Sprintf("(%d", now), Max: "+inf", Count: 1000})
		cmds, _ := p.Exec(ctx)
		if err := pipeErr("semaphore "+g.id, cmds); err != nil {
			return err
		}
		si := semaphoreInfo{Name: g.id, Held: held.Val(), Holders: holders(first.Val(), now)}
		if v, err := permits.Int64(); err == nil {
			si.Permits = v
		}
		lapse := map[string]int64{}
		for _, z := range places.Val() {
			lapse[fmt.Sprint(z.Member)] = int64(z.Score)
		}
		for _, tok := range queue.Val() {
			if end, ok := lapse[tok]; ok {
				si.Waiting++
				if len(si.Waiters) < o.show {
					si.Waiters = append(si.Waiters, waiterInfo{Token: tokenSuffix(tok), PlaceMs: end - now})
				}
			}
		}
		if si.Held == 0 && si.Waiting == 0 && si.Permits == 0 {
			continue // nothing held: only keys on their way out
		}
		rep.Semaphores = append(rep.Semaphores, si)
	}
	return nil
}

// inspectConcurrency reads concurrency limiters (concurrency.go): one
// semaphore per key, prefix:conc:{key}:NAME, NAME escaped.
func inspectConcurrency(ctx context.Context, rep *inspectReport, keys []scannedKey, o *inspectOptions) error {
	type sem struct {
		limiter, key, zset string // zset: the holders' sorted set
		node               *redis.Client
		n                  *redis.IntCmd
	}
	var sems []*sem
	for _, g := range groupByID(keys) {
		for rest, k := range g.keys {
			if rest != "" && !strings.Contains(rest, ":") && len(sems) < 1000 {
				sems = append(sems, &sem{limiter: unescape(rest), key: g.id, zset: k, node: g.node})
			}
		}
	}
	// One TIME and one pipeline per node.
	pipes := map[*redis.Client]redis.Pipeliner{}
	for _, s := range sems {
		if pipes[s.node] == nil {
			pipes[s.node] = s.node.Pipeline()
		}
	}
	for n, p := range pipes {
		now, err := serverMs(ctx, n)
		if err != nil {
			return err
		}
		for _, s := range sems {
			if s.node == n {
				s.n = p.ZCount(ctx, s.zset, fmt.Sprintf("(%d", now), "+inf")
			}
		}
		cmds, _ := p.Exec(ctx)
		if err := pipeErr("concurrency", cmds); err != nil {
			return err
		}
	}
	by := map[string]*concurrencyInfo{}
	var names []string
	for _, s := range sems {
		ci := by[s.limiter]
		if ci == nil {
			ci = &concurrencyInfo{Limiter: s.limiter}
			by[s.limiter] = ci
			names = append(names, s.limiter)
		}
		ci.Keys++
		ci.InFlight += s.n.Val()
		ci.Top = append(ci.Top, concurrencyKey{Key: s.key, InFlight: s.n.Val()})
	}
	sort.Strings(names)
	for _, name := range names {
		ci := by[name]
		sort.Slice(ci.Top, func(i, j int) bool {
			a, b := ci.Top[i], ci.Top[j]
			return a.InFlight > b.InFlight || a.InFlight == b.InFlight && a.Key < b.Key
		})
		ci.Top = ci.Top[:min(len(ci.Top), o.show)]
		rep.Concurrency = append(rep.Concurrency, *ci)
	}
	return nil
}

// inspectRWLocks reads read-write locks (rwlock.go, rw.lua):
// prefix:rw:{name}:r the readers' tokens scored by lease end, :w the
// writer's token, :intent a refused writer's token, :fence the counter.
func inspectRWLocks(ctx context.Context, rep *inspectReport, keys []scannedKey, o *inspectOptions) error {
	for _, g := range firstGroups(keys) {
		if len(rep.RWLocks) >= o.show {
			break
		}
		now, err := serverMs(ctx, g.node)
		if err != nil {
			return err
		}
		p := g.node.Pipeline()
		readers, first := leases(ctx, p, g.base+":r", now, o.show)
		writer, wttl := p.Get(ctx, g.base+":w"), p.PTTL(ctx, g.base+":w")
		intent, ittl := p.Get(ctx, g.base+":intent"), p.PTTL(ctx, g.base+":intent")
		fence := p.Get(ctx, g.base+":fence")
		cmds, _ := p.Exec(ctx)
		if err := pipeErr("rwlock "+g.id, cmds); err != nil {
			return err
		}
		ri := rwLockInfo{Name: g.id, Readers: readers.Val(), ReaderLeases: holders(first.Val(), now), Fence: fence.Val()}
		if writer.Err() == nil {
			ri.Writer, ri.WriterTTLms = tokenSuffix(writer.Val()), wttl.Val().Milliseconds()
		}
		if intent.Err() == nil {
			ri.WriterWaiting, ri.WaitingWriter, ri.IntentTTLms = true, tokenSuffix(intent.Val()), ittl.Val().Milliseconds()
		}
		if ri.Readers == 0 && ri.Writer == "" && !ri.WriterWaiting {
			continue // released: only the fencing counter is left
		}
		rep.RWLocks = append(rep.RWLocks, ri)
	}
	return nil
}

// inspectIdempotency reads idempotency keys (idempotency.go, idem_begin.lua,
// idem_end.lua): prefix:idem:{LEN:NAME:KEY} is a hash (st "run" or "done",
// own the holder's token, fp the fingerprint's SHA-256, res the result,
// fail "1" for a stored error, w the waiters), :fence the counter.
func inspectIdempotency(ctx context.Context, rep *inspectReport, keys []scannedKey, o *inspectOptions) error {
	by := map[string]*idemStoreInfo{}
	var stores []string
	for _, g := range groupByID(keys) {
		rec, ok := g.keys[""]
		if !ok {
			continue // only the fencing counter
		}
		store, key, ok := splitIdemID(g.id)
		if !ok {
			continue
		}
		si := by[store]
		if si == nil {
			si = &idemStoreInfo{Store: store}
			by[store] = si
			stores = append(stores, store)
		}
		si.Keys++
		if len(si.Shown) >= o.show {
			continue
		}
		p := g.node.Pipeline()
		f := p.HMGet(ctx, rec, "st", "own", "fp", "fail", "w")
		size := p.HStrLen(ctx, rec, "res")
		ttl := p.PTTL(ctx, rec)
		fence := p.Get(ctx, g.base+":fence")
		cmds, _ := p.Exec(ctx)
		if err := pipeErr("idempotency "+g.id, cmds); err != nil {
			return err
		}
		v := f.Val()
		st, _ := v[0].(string)
		ii := idemInfo{Key: key, TTLms: ttl.Val().Milliseconds(), Fence: fence.Val()}
		switch st {
		case "run":
			ii.State = "in progress"
			own, _ := v[1].(string)
			ii.Holder = tokenSuffix(own)
			w, _ := v[4].(string)
			ii.Waiters = atoi64(w)
		case "done":
			ii.State, ii.ResultBytes = "completed", size.Val()
			if fail, _ := v[3].(string); fail == "1" {
				ii.State = "completed with error"
			}
		default:
			si.Keys--
			continue // gone meanwhile
		}
		if fp, _ := v[2].(string); fp != "" {
			h := fmt.Sprintf("%x", fp)
			ii.Fingerprint = "..." + h[max(0, len(h)-8):]
		}
		si.Shown = append(si.Shown, ii)
	}
	sort.Strings(stores)
	for _, s := range stores {
		rep.Idempotency = append(rep.Idempotency, *by[s])
	}
	return nil
}

// splitIdemID splits an idempotency id, LEN:NAME:KEY (idempotency.go keys).
func splitIdemID(id string) (store, key string, ok bool) {
	l, rest, ok := strings.Cut(id, ":")
	n := int(atoi64(l))
	if !ok || n <= 0 || n >= len(rest) || rest[n] != ':' {
		return "", "", false
	}
	return rest[:n], rest[n+1:], true
}

// cacheHeaderMax bounds the bytes read of an entry to find its header: the
// longest header (64 tags of patterns.MaxIDLen bytes) and some.
const cacheHeaderMax = 64*(patterns.MaxIDLen+1) + 128

// inspectCaches reads caches (cache.go, cache_get.lua, cache_set.lua,
// cache_invalidate.lua): prefix:cache:{name}:e:KEY an entry
// "1|WRITTEN|DELTA|NEG|TAGS\n" + payload (WRITTEN in server µs, TAGS
// joined by \x1f; the payload's first byte 1 when deflated), :l:KEY the load lease, :tags a hash tag ->
// invalidated-at (µs), :tagz the same as a sorted set. An entry with a tag
// invalidated at or after WRITTEN is no longer served.
func inspectCaches(ctx context.Context, rep *inspectReport, keys []scannedKey, o *inspectOptions) error {
	for _, g := range groupByID(keys) {
		if len(rep.Caches) >= o.show {
			break
		}
		ci := cacheInfo{Name: g.id}
		names := map[string]bool{}
		for rest := range g.keys {
			switch {
			case strings.HasPrefix(rest, "e:"):
				ci.Entries++
				names[rest[2:]] = true
			case strings.HasPrefix(rest, "l:"):
				ci.Leases++
				names[rest[2:]] = true
			}
		}
		shown := make([]string, 0, len(names))
		for k := range names {
			shown = append(shown, k)
		}
		sort.Strings(shown)
		shown = shown[:min(len(shown), o.show)]

		p := g.node.Pipeline()
		tags := g.base + ":tags"
		nTags := p.HLen(ctx, tags)
		latest := p.ZRevRangeWithScores(ctx, g.base+":tagz", 0, int64(o.show)-1)
		type reads struct {
			head      *redis.StringCmd
			size      *redis.IntCmd
			ttl, lttl *redis.DurationCmd
		}
		rs := make([]reads, len(shown))
		for i, k := range shown {
			e, l := g.base+":e:"+k, g.base+":l:"+k
			rs[i] = reads{head: p.GetRange(ctx, e, 0, cacheHeaderMax), size: p.StrLen(ctx, e), ttl: p.PTTL(ctx, e), lttl: p.PTTL(ctx, l)}
		}
		cmds, _ := p.Exec(ctx)
		if err := pipeErr("cache "+g.id, cmds); err != nil {
			return err
		}
		ci.TagRecords = nTags.Val()
		for _, z := range latest.Val() {
			ci.Latest = append(ci.Latest, tagVersion{Tag: fmt.Sprint(z.Member), InvalidatedAt: time.UnixMicro(int64(z.Score)).UTC()})
		}
		// The versions of the shown entries' tags, in one more round trip.
		type tagged struct {
			i       int // in ci.Shown
			written int64
			v       *redis.SliceCmd
		}
		var check []tagged
		p = g.node.Pipeline()
		for i, k := range shown {
			ce := cacheEntryInfo{Key: unescape(k)}
			if d := rs[i].lttl.Val(); d > 0 {
				ce.Lease, ce.LeaseTTLms = true, d.Milliseconds()
			}
			var written int64
			if size := rs[i].size.Val(); size > 0 {
				head := rs[i].head.Val()
				ce.Entry, ce.Bytes, ce.TTLms = true, size, rs[i].ttl.Val().Milliseconds()
				var ok bool
				if written, ce.Negative, ce.Tags, ok = parseCacheHeader(head); ok {
					nl := strings.IndexByte(head, '\n')
					ce.PayloadBytes = size - int64(nl+1)
					// The payload's first byte: 0 plain, 1 deflated (cache.go encode).
					ce.Compressed = len(head) > nl+1 && head[nl+1] == 1
					ce.WrittenAt = time.UnixMicro(written).UTC()
				} else {
					ce.Unrecognized = true
				}
			}
			if !ce.Entry && !ce.Lease {
				continue // expired meanwhile
			}
			if len(ce.Tags) > 0 {
				check = append(check, tagged{i: len(ci.Shown), written: written, v: p.HMGet(ctx, tags, ce.Tags...)})
			}
			ci.Shown = append(ci.Shown, ce)
		}
		if len(check) > 0 {
			cmds, _ := p.Exec(ctx)
			if err := pipeErr("cache "+g.id+" tags", cmds); err != nil {
				return err
			}
			for _, c := range check {
				for _, v := range c.v.Val() {
					if s, ok := v.(string); ok && atoi64(s) >= c.written {
						ci.Shown[c.i].Invalidated = true
					}
				}
			}
		}
		rep.Caches = append(rep.Caches, ci)
	}
	return nil
}

// parseCacheHeader reads an entry's header, "1|WRITTEN|DELTA|NEG|TAGS\n"
// (cache.go parseEntry).
func parseCacheHeader(v string) (written int64, negative bool, tags []string, ok bool) {
	nl := strings.IndexByte(v, '\n')
	if nl < 0 || !strings.HasPrefix(v, "1|") {
		return 0, false, nil, false
	}
	f := strings.SplitN(v[2:nl], "|", 4)
	if len(f) != 4 {
		return 0, false, nil, false
	}
	w, err1 := strconv.ParseInt(f[0], 10, 64)
	_, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false, nil, false
	}
	if f[3] != "" {
		tags = strings.Split(f[3], "\x1f")
	}
	return w, f[2] == "1", tags, true
}

// inspectElections reads elections (elect.go): prefix:elect:{name} is a
// lock whose value is the leader's token (22 bytes) followed by its
// identity, :fence its fencing counter.
func inspectElections(ctx context.Context, rep *inspectReport, keys []scannedKey, o *inspectOptions) error {
	const tokenLen = 22 // elect.go
	for _, g := range groupByID(keys) {
		if len(rep.Elections) >= o.show {
			break
		}
		if _, ok := g.keys[""]; !ok {
			continue // no leader: only the counter or wake keys
		}
		p := g.node.Pipeline()
		v, ttl, fence := p.Get(ctx, g.base), p.PTTL(ctx, g.base), p.Get(ctx, g.base+":fence")
		cmds, _ := p.Exec(ctx)
		if err := pipeErr("election "+g.id, cmds); err != nil {
			return err
		}
		if v.Err() == redis.Nil || len(v.Val()) <= tokenLen {
			continue // resigned meanwhile
		}
		rep.Elections = append(rep.Elections, electionInfo{Name: g.id, Leader: v.Val()[tokenLen:],
			Token: tokenSuffix(v.Val()[:tokenLen]), Fence: fence.Val(), TTLms: ttl.Val().Milliseconds()})
	}
	return nil
}
