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
	fs.IntVar(&o.show, "n", 5, "locks, top entries and dead letters shown")
	fs.StringVar(&o.limiter, "limiter", "", "decode the rate-limit state of this id")
	fs.StringVar(&o.sessions, "sessions", "", "the Sessions name for -user")
	fs.StringVar(&o.user, "user", "", "list this user's sessions (hashes only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("inspect: set REDIS_URL")
	}
	if strings.ContainsAny(o.prefix, "*?[]\\") {
		return fmt.Errorf("inspect: -prefix %q has glob characters", o.prefix)
	}
	if o.user != "" && o.sessions == "" {
		return fmt.Errorf("inspect: -user needs -sessions NAME")
	}
	rdb, err := connectAny(url, *cluster, *sentinel)
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
		if len(owner) > 6 {
			owner = "..." + owner[len(owner)-6:]
		}
		rep.Locks = append(rep.Locks, lockInfo{Key: k.key, Owner: owner, TTLms: ttl.Milliseconds(), Fence: fence})
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
				qi.Ready, qi.InFlight, qi.Dead = st.Ready, st.InFlight, st.Dead
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
			case len(parts) >= 5 && parts[1] == "tb" && len(v) == 8:
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

// decodeTokenBucket reads a token bucket's key (see rl_token_bucket.lua): X,
// a little-endian double, and its PTTL p give d = p*rate - X units (1/rate
// ms) from full.
func decodeTokenBucket(state map[string]string, v string, pttl, rate, periodMs, burst int64) {
	x := math.Float64frombits(binary.LittleEndian.Uint64([]byte(v)))
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
		fmt.Fprintf(w, "\nqueue %s: %d ready, %d in flight, %d dead\n", q.Name, q.Ready, q.InFlight, q.Dead)
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
}
