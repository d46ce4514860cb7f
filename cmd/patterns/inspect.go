package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
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
	Streams     []streamInfo      `json:"streams,omitempty"`
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

// inspect reads, through the library's Inspector, what each pattern keeps
// under o.prefix: the scan bounded by o.maxKeys and o.timeout, then at most
// o.show objects of each pattern (and o.show holders, waiters or entries of
// each). The views skip objects with nothing held: keys on their way out.
func inspect(ctx context.Context, rdb redis.UniversalClient, o *inspectOptions) (*inspectReport, error) {
	rep := &inspectReport{Prefix: o.prefix}
	// The scan stops at o.timeout; what follows reads a bounded number of keys.
	ctx, cancel := context.WithTimeout(ctx, o.timeout+time.Minute)
	defer cancel()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: o.prefix})
	if err != nil {
		return nil, err
	}
	in := pc.Inspector()
	sample := o.sample
	if sample <= 0 {
		sample = -1 // none
	}
	ks, err := in.Scan(ctx, &patterns.ScanOptions{MaxKeys: o.maxKeys, Timeout: o.timeout, Sample: sample})
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	rep.Scanned, rep.Truncated = ks.Scanned, ks.Truncated
	for _, p := range ks.Patterns {
		rep.Patterns = append(rep.Patterns, patternStats{Pattern: p.Pattern, Keys: p.Keys, Memory: p.Memory, Sampled: p.Sampled,
			NoTTL: p.NoTTL, NoTTLEx: p.NoTTLExamples, LongLived: p.LongLived})
	}
	for _, v := range []func() error{
		func() error { return inspectLocks(ctx, rep, in, ks, o) },
		func() error { return inspectQueues(ctx, rep, in, ks, o) },
		func() error { return inspectBoards(ctx, rep, in, ks, o) },
		func() error { return inspectSemaphores(ctx, rep, in, ks, o) },
		func() error { return inspectConcurrency(ctx, rep, in, ks, o) },
		func() error { return inspectRWLocks(ctx, rep, in, ks, o) },
		func() error { return inspectIdempotency(ctx, rep, in, ks, o) },
		func() error { return inspectCaches(ctx, rep, in, ks, o) },
		func() error { return inspectElections(ctx, rep, in, ks, o) },
		func() error { return inspectStreams(ctx, rep, in, ks, o) },
	} {
		if err := v(); err != nil {
			return nil, fmt.Errorf("inspect: %w", err)
		}
	}
	if o.limiter != "" {
		lims, err := in.RateLimits(ctx, o.limiter)
		if err != nil {
			return nil, fmt.Errorf("inspect: %w", err)
		}
		for _, l := range lims {
			rep.Limiter = append(rep.Limiter, limiterView(l))
		}
	}
	if o.user != "" {
		list, err := in.Sessions(ctx, o.sessions, o.user)
		if err != nil {
			return nil, fmt.Errorf("inspect: %w", err)
		}
		for _, si := range list {
			rep.Sessions = append(rep.Sessions, sessionInfo{Key: si.Key[strings.LastIndexByte(si.Key, ':')+1:], ExpiresAt: si.Expires.UTC()})
		}
	}
	return rep, nil
}

// maxObjectsRead bounds the objects a view reads to find the o.show it
// shows (idle ones are skipped).
const maxObjectsRead = 1000

// first returns the first maxObjectsRead of s.
func first[T any](s []T) []T { return s[:min(len(s), maxObjectsRead)] }

func inspectLocks(ctx context.Context, rep *inspectReport, in *patterns.Inspector, ks *patterns.Keyspace, o *inspectOptions) error {
	for _, key := range first(ks.Locks) {
		if len(rep.Locks) >= o.show {
			break
		}
		l, err := in.Lock(ctx, key)
		if err != nil {
			return err
		}
		if !l.Held {
			continue // released meanwhile
		}
		rep.Locks = append(rep.Locks, lockInfo{Key: l.Key, Owner: l.Token, TTLms: l.TTL.Milliseconds(), Fence: fenceString(l.Fence)})
	}
	return nil
}

// fenceString prints a fencing token, "" for none.
func fenceString(f int64) string {
	if f == 0 {
		return ""
	}
	return strconv.FormatInt(f, 10)
}

func inspectQueues(ctx context.Context, rep *inspectReport, in *patterns.Inspector, ks *patterns.Keyspace, o *inspectOptions) error {
	for _, name := range ks.Queues {
		qi := queueInfo{Name: name}
		st, err := in.Queue(ctx, name, o.show)
		if err != nil {
			qi.Err = err.Error()
		} else {
			qi.Ready, qi.InFlight, qi.Dead, qi.Paused, qi.DeadLetters = st.Ready, st.InFlight, st.Dead, st.Paused, st.DeadLetters
			if st.OldestReady > 0 {
				qi.OldestReady = st.OldestReady.Round(time.Millisecond).String()
			}
		}
		rep.Queues = append(rep.Queues, qi)
	}
	return nil
}

func inspectBoards(ctx context.Context, rep *inspectReport, in *patterns.Inspector, ks *patterns.Keyspace, o *inspectOptions) error {
	for _, name := range ks.Boards {
		b, err := in.Board(ctx, name, o.show)
		if err != nil {
			return err
		}
		rep.Boards = append(rep.Boards, boardInfo{Name: name, Count: b.Count, Top: b.Top})
	}
	return nil
}

var algoNames = map[patterns.Algorithm]string{
	patterns.FixedWindow: "FixedWindow", patterns.SlidingWindowLog: "SlidingWindowLog", patterns.SlidingWindow: "SlidingWindow",
	patterns.TokenBucket: "TokenBucket", patterns.GCRA: "GCRA",
}

// limiterView prints one limit's state.
func limiterView(l patterns.LimiterInfo) limiterKey {
	lk := limiterKey{Key: l.RedisKey, Limiter: l.Limiter, Algorithm: algoNames[l.Algorithm], Type: "string",
		TTLms: l.TTL.Milliseconds(), State: map[string]string{}}
	lk.Limit = fmt.Sprintf("%d per %v", l.Limit.Rate, l.Limit.Period)
	if l.Limit.Calendar != 0 {
		lk.Limit = fmt.Sprintf("%d per calendar %v", l.Limit.Rate, l.Limit.Calendar)
	}
	switch l.Algorithm {
	case patterns.SlidingWindowLog:
		lk.Type = "zset"
	case patterns.TokenBucket, patterns.GCRA:
		lk.Limit += fmt.Sprintf(", burst %d", l.Limit.Burst)
	}
	reset := l.ResetAfter.String()
	switch l.Algorithm {
	case patterns.TokenBucket, patterns.GCRA:
		lk.State["tokens"] = fmt.Sprintf("%d of %d", l.Remaining, l.Limit.Burst)
		lk.State["full_in"] = reset
	default:
		lk.State["count"] = strconv.Itoa(l.Used)
		lk.State["remaining"] = strconv.Itoa(l.Remaining)
		lk.State["reset_in"] = reset
	}
	return lk
}

func leaseViews(ls []patterns.LeaseInfo) []holderInfo {
	var out []holderInfo
	for _, l := range ls {
		out = append(out, holderInfo{Token: l.Token, LeaseMs: l.Left.Milliseconds()})
	}
	return out
}

func inspectSemaphores(ctx context.Context, rep *inspectReport, in *patterns.Inspector, ks *patterns.Keyspace, o *inspectOptions) error {
	for _, name := range first(ks.Semaphores) {
		if len(rep.Semaphores) >= o.show {
			break
		}
		s, err := in.Semaphore(ctx, name, o.show)
		if err != nil {
			return err
		}
		if s.Held == 0 && s.Waiting == 0 && s.Permits == 0 {
			continue // nothing held: only keys on their way out
		}
		si := semaphoreInfo{Name: name, Permits: s.Permits, Held: s.Held, Holders: leaseViews(s.Holders), Waiting: s.Waiting}
		for _, w := range s.Waiters {
			si.Waiters = append(si.Waiters, waiterInfo{Token: w.Token, PlaceMs: w.Left.Milliseconds()})
		}
		rep.Semaphores = append(rep.Semaphores, si)
	}
	return nil
}

func inspectConcurrency(ctx context.Context, rep *inspectReport, in *patterns.Inspector, ks *patterns.Keyspace, o *inspectOptions) error {
	by := map[string]*concurrencyInfo{}
	var names []string
	for _, k := range first(ks.Concurrency) {
		c, err := in.Concurrency(ctx, k.Limiter, k.Key)
		if err != nil {
			return err
		}
		ci := by[k.Limiter]
		if ci == nil {
			ci = &concurrencyInfo{Limiter: k.Limiter}
			by[k.Limiter] = ci
			names = append(names, k.Limiter)
		}
		ci.Keys++
		ci.InFlight += c.InFlight
		ci.Top = append(ci.Top, concurrencyKey{Key: k.Key, InFlight: c.InFlight})
	}
	for _, name := range names { // sorted: ks.Concurrency is
		ci := by[name]
		sort.SliceStable(ci.Top, func(i, j int) bool { return ci.Top[i].InFlight > ci.Top[j].InFlight })
		ci.Top = ci.Top[:min(len(ci.Top), o.show)]
		rep.Concurrency = append(rep.Concurrency, *ci)
	}
	return nil
}

func inspectRWLocks(ctx context.Context, rep *inspectReport, in *patterns.Inspector, ks *patterns.Keyspace, o *inspectOptions) error {
	for _, name := range first(ks.RWLocks) {
		if len(rep.RWLocks) >= o.show {
			break
		}
		l, err := in.RWLock(ctx, name, o.show)
		if err != nil {
			return err
		}
		if l.Readers == 0 && l.Writer == "" && !l.WriterWaiting {
			continue // released: only the fencing counter is left
		}
		rep.RWLocks = append(rep.RWLocks, rwLockInfo{Name: name, Readers: l.Readers, ReaderLeases: leaseViews(l.ReaderLeases),
			Writer: l.Writer, WriterTTLms: l.WriterTTL.Milliseconds(), WriterWaiting: l.WriterWaiting,
			WaitingWriter: l.WaitingWriter, IntentTTLms: l.IntentTTL.Milliseconds(), Fence: fenceString(l.Fence)})
	}
	return nil
}

func inspectIdempotency(ctx context.Context, rep *inspectReport, in *patterns.Inspector, ks *patterns.Keyspace, o *inspectOptions) error {
	var cur *idemStoreInfo
	for _, k := range ks.Idempotency { // sorted by store
		if cur == nil || cur.Store != k.Store {
			rep.Idempotency = append(rep.Idempotency, idemStoreInfo{Store: k.Store})
			cur = &rep.Idempotency[len(rep.Idempotency)-1]
		}
		cur.Keys++
		if len(cur.Shown) >= o.show {
			continue
		}
		r, err := in.Idempotency(ctx, k.Store, k.Key)
		if err != nil {
			return err
		}
		if r.State == patterns.IdempotencyNone {
			cur.Keys--
			continue // gone meanwhile
		}
		cur.Shown = append(cur.Shown, idemInfo{Key: r.Key, State: string(r.State), TTLms: r.TTL.Milliseconds(), ResultBytes: r.ResultBytes,
			Fingerprint: r.Fingerprint, Holder: r.Holder, Waiters: r.Waiters, Fence: fenceString(r.Fence)})
	}
	return nil
}

func inspectCaches(ctx context.Context, rep *inspectReport, in *patterns.Inspector, ks *patterns.Keyspace, o *inspectOptions) error {
	for _, ck := range ks.Caches {
		if len(rep.Caches) >= o.show {
			break
		}
		c, err := in.Cache(ctx, ck.Name, o.show)
		if err != nil {
			return err
		}
		ci := cacheInfo{Name: ck.Name, Entries: len(ck.Entries), Leases: len(ck.Leases), TagRecords: c.TagRecords}
		for _, t := range c.Latest {
			ci.Latest = append(ci.Latest, tagVersion{Tag: t.Tag, InvalidatedAt: t.At})
		}
		keys := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(ck.Entries), ck.Leases...))))
		for _, key := range keys[:min(len(keys), o.show)] {
			e, err := in.CacheEntry(ctx, ck.Name, key)
			if err != nil {
				return err
			}
			if !e.Entry && !e.Lease {
				continue // expired meanwhile
			}
			ci.Shown = append(ci.Shown, cacheEntryInfo{Key: key, Entry: e.Entry, TTLms: e.TTL.Milliseconds(), Bytes: e.Bytes,
				PayloadBytes: e.PayloadBytes, Compressed: e.Compressed, Tags: e.Tags, Negative: e.Negative, WrittenAt: e.WrittenAt,
				Invalidated: e.Invalidated, Lease: e.Lease, LeaseTTLms: e.LeaseTTL.Milliseconds(), Unrecognized: e.Unrecognized})
		}
		rep.Caches = append(rep.Caches, ci)
	}
	return nil
}

func inspectElections(ctx context.Context, rep *inspectReport, in *patterns.Inspector, ks *patterns.Keyspace, o *inspectOptions) error {
	for _, name := range first(ks.Elections) {
		if len(rep.Elections) >= o.show {
			break
		}
		e, err := in.Election(ctx, name)
		if err != nil {
			return err
		}
		if e.Leader == "" {
			continue // resigned meanwhile
		}
		rep.Elections = append(rep.Elections, electionInfo{Name: name, Leader: e.Leader, Token: e.Token, Fence: fenceString(e.Fence), TTLms: e.TTL.Milliseconds()})
	}
	return nil
}

func inspectStreams(ctx context.Context, rep *inspectReport, in *patterns.Inspector, ks *patterns.Keyspace, o *inspectOptions) error {
	for _, name := range ks.Streams[:min(len(ks.Streams), o.show)] {
		s, err := in.Stream(ctx, name)
		if err != nil {
			return err
		}
		si := streamInfo{Name: name, Length: s.Length, TTLms: s.TTL.Milliseconds()}
		for _, g := range s.Groups {
			gi := streamGroupInfo{Name: g.Name, Consumers: g.Consumers, Pending: g.Pending, Lag: g.Lag, Dead: g.Dead}
			if g.Dead > 0 {
				dead, err := in.StreamDeadLetters(ctx, name, g.Name, o.show)
				if err != nil {
					return err
				}
				for _, d := range dead {
					gi.DeadLetters = append(gi.DeadLetters, streamDeadInfo(d))
				}
			}
			si.Groups = append(si.Groups, gi)
		}
		rep.Streams = append(rep.Streams, si)
	}
	return nil
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
	for _, s := range rep.Streams {
		fmt.Fprintf(w, "\nstream %s: %s, ttl %s\n", s.Name, plural(s.Length, "entry", "entries"), msString(s.TTLms))
		for _, g := range s.Groups {
			fmt.Fprintf(w, "  group %s: %d consumers, %d pending, lag %d, %d dead\n", g.Name, g.Consumers, g.Pending, g.Lag, g.Dead)
			for _, d := range g.DeadLetters {
				fmt.Fprintf(w, "    dead %s  entry %s  %s  %db  last error %q\n", d.ID, d.EntryID, plural(int64(d.Deliveries), "delivery", "deliveries"), d.Size, d.LastError)
			}
		}
	}
}

// The report's views: what patterns.Inspector returns, in the JSON form
// of `patterns inspect -json` (durations in ms, tokens shortened).

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

type streamGroupInfo struct {
	Name        string           `json:"name"`
	Consumers   int64            `json:"consumers"`
	Pending     int64            `json:"pending"`
	Lag         int64            `json:"lag"`
	Dead        int64            `json:"dead"`
	DeadLetters []streamDeadInfo `json:"dead_letters,omitempty"`
}

type streamDeadInfo struct {
	ID         string `json:"id"`
	EntryID    string `json:"entry_id"`
	Deliveries int    `json:"deliveries"`
	LastError  string `json:"last_error"`
	Size       int    `json:"size"`
}

type streamInfo struct {
	Name   string            `json:"name"`
	Length int64             `json:"length"`
	TTLms  int64             `json:"ttl_ms"`
	Groups []streamGroupInfo `json:"groups,omitempty"`
}
