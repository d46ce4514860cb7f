package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// Verdicts of a doctor check.
const (
	verdictOK   = "OK"
	verdictWarn = "WARN"
	verdictFail = "FAIL"
)

// checkResult is one line of `patterns doctor`.
type checkResult struct {
	Check  string `json:"check"`
	Node   string `json:"node,omitempty"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// doctorReport is the output of `patterns doctor -json`.
type doctorReport struct {
	Checks []checkResult `json:"checks"`
	OK     int           `json:"ok"`
	Warn   int           `json:"warn"`
	Fail   int           `json:"fail"`
}

func (r *doctorReport) add(check, node, status, format string, args ...any) {
	r.Checks = append(r.Checks, checkResult{Check: check, Node: node, Status: status, Detail: fmt.Sprintf(format, args...)})
}

// errDoctorFail is returned by doctor when a check failed, for a non-zero exit status.
var errDoctorFail = errors.New("doctor: a check failed")

func cmdDoctor(ctx context.Context, args []string, w io.Writer) error {
	return doctorMain(ctx, os.Getenv("REDIS_URL"), args, w)
}

// doctorMain is `patterns doctor` with REDIS_URL=url.
func doctorMain(ctx context.Context, url string, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	cluster := fs.Bool("cluster", false, "REDIS_URL names a Redis Cluster")
	sentinel := fs.String("sentinel", "", "REDIS_URL names Sentinels watching this master name")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pings := fs.Int("pings", 5, "PINGs sent per primary to measure latency")
	prefix := fs.String("prefix", "patterns", "Options.Prefix of the application's Client, for the acl check")
	pats := fs.String("patterns", "", "comma-separated patterns the application uses, for the acl check (default: all)")
	aclUser := fs.String("acl-user", "", "ACL user to check (default: the connected user, ACL WHOAMI)")
	tf := addTLSFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("doctor: set REDIS_URL")
	}
	want, err := newACLWant(*aclUser, *prefix, splitList(*pats))
	if err != nil {
		return fmt.Errorf("doctor: %w", err)
	}
	rdb, err := connectTLS(url, *cluster, *sentinel, tf)
	if err != nil {
		return err
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rep := doctor(ctx, rdb, *pings, want)
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printDoctor(w, rep)
	}
	if rep.Fail > 0 {
		return fmt.Errorf("%w (%d FAIL, %d WARN)", errDoctorFail, rep.Fail, rep.Warn)
	}
	return nil
}

// connectTLS is connect plus Sentinel (with master set, url's hosts are
// Sentinels) and the TLS flags tf (nil: none).
func connectTLS(url string, cluster bool, master string, tf *tlsFlags) (redis.UniversalClient, error) {
	if cluster || master != "" {
		url = commaHosts(url)
	}
	if master == "" {
		return connectWith(url, cluster, tf)
	}
	opt, err := redis.ParseClusterURL(url)
	if err != nil {
		return nil, err
	}
	if opt.TLSConfig, err = tf.apply(url, opt.TLSConfig); err != nil {
		return nil, err
	}
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:       master,
		SentinelAddrs:    opt.Addrs,
		Username:         opt.Username,
		Password:         opt.Password,
		SentinelUsername: opt.Username,
		SentinelPassword: opt.Password,
		TLSConfig:        opt.TLSConfig,
	}), nil
}

// commaHosts rewrites redis://h1:p1,h2:p2/0 into the form go-redis parses,
// redis://h1:p1/0?addr=h2:p2.
func commaHosts(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	hostEnd := strings.IndexAny(rest, "/?")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	hosts, tail := rest[:hostEnd], rest[hostEnd:]
	auth := ""
	if i := strings.LastIndex(hosts, "@"); i >= 0 {
		auth, hosts = hosts[:i+1], hosts[i+1:]
	}
	list := strings.Split(hosts, ",")
	if len(list) == 1 {
		return url
	}
	sep := "?"
	if strings.Contains(tail, "?") {
		sep = "&"
	}
	for _, h := range list[1:] {
		tail += sep + "addr=" + h
		sep = "&"
	}
	return scheme + "://" + auth + list[0] + tail
}

func printDoctor(w io.Writer, rep *doctorReport) {
	for _, c := range rep.Checks {
		node := ""
		if c.Node != "" {
			node = " [" + c.Node + "]"
		}
		fmt.Fprintf(w, "%-4s  %-11s %s%s\n", c.Status, c.Check, c.Detail, node)
	}
	fmt.Fprintf(w, "\n%d OK, %d WARN, %d FAIL\n", rep.OK, rep.Warn, rep.Fail)
}

// primaries returns a client per primary: each master of a cluster, or the
// one server.
func primaries(ctx context.Context, rdb redis.UniversalClient) ([]*redis.Client, error) {
	switch r := rdb.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex
		var out []*redis.Client
		err := r.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu.Lock()
			out = append(out, n)
			mu.Unlock()
			return nil
		})
		sort.Slice(out, func(i, j int) bool { return out[i].Options().Addr < out[j].Options().Addr })
		return out, err
	case *redis.Client:
		return []*redis.Client{r}, nil
	default:
		return nil, fmt.Errorf("doctor: unsupported client %T", rdb)
	}
}

// doctor runs every check on every primary.
func doctor(ctx context.Context, rdb redis.UniversalClient, pings int, want *aclWant) *doctorReport {
	rep := &doctorReport{}
	nodes, err := primaries(ctx, rdb)
	if err != nil || len(nodes) == 0 {
		rep.add("connect", "", verdictFail, "cannot reach the primaries: %v; check REDIS_URL, -cluster or -sentinel%s", err, tlsHint(err))
		rep.count()
		return rep
	}
	_, isCluster := rdb.(*redis.ClusterClient)
	label := func(n *redis.Client) string {
		if len(nodes) == 1 && !isCluster {
			return ""
		}
		return n.Options().Addr
	}
	for _, n := range nodes {
		node := label(n)
		info, err := infoMap(ctx, n, "server", "replication", "memory")
		if err != nil {
			rep.add("connect", node, verdictFail, "INFO: %v%s", err, tlsHint(err))
			continue
		}
		checkServer(rep, node, info)
		cfg := configMap(ctx, n, "maxmemory", "maxmemory-policy", "appendonly", "appendfsync", "save", "min-replicas-to-write")
		checkMemory(rep, node, info, cfg)
		checkPersistence(rep, node, cfg)
		checkReplicas(rep, node, info, cfg)
		checkTracking(ctx, rep, node, n)
		checkACL(ctx, rep, node, n, want)
		checkScripts(ctx, rep, node, n)
		checkFunctions(ctx, rep, node, n)
		checkLatency(ctx, rep, node, n, pings)
		checkSlowlog(ctx, rep, node, n)
	}
	if isCluster {
		checkCluster(ctx, rep, nodes)
	}
	rep.count()
	return rep
}

// tlsHint points at the TLS flags when err is a TLS error.
func tlsHint(err error) string {
	if err == nil {
		return ""
	}
	switch m := err.Error(); {
	case strings.Contains(m, "certificate required"):
		return "; the server wants a client certificate: -tls-cert and -tls-key"
	case strings.Contains(m, "x509:"):
		return "; the server's certificate is not trusted: -tls-ca names its CA"
	case strings.Contains(m, "tls:"):
		return "; check the rediss:// URL and -tls-ca, -tls-cert, -tls-key"
	}
	return ""
}

func (r *doctorReport) count() {
	r.OK, r.Warn, r.Fail = 0, 0, 0
	for _, c := range r.Checks {
		switch c.Status {
		case verdictOK:
			r.OK++
		case verdictWarn:
			r.Warn++
		default:
			r.Fail++
		}
	}
}

func infoMap(ctx context.Context, n *redis.Client, sections ...string) (map[string]string, error) {
	return infoLines(n.Info(ctx, sections...).Result())
}

// configMap reads the parameters with CONFIG GET; a parameter that cannot be
// read (ACL, managed service) is absent.
func configMap(ctx context.Context, n *redis.Client, params ...string) map[string]string {
	m := map[string]string{}
	for _, p := range params {
		if v, err := n.ConfigGet(ctx, p).Result(); err == nil {
			if s, ok := v[p]; ok {
				m[p] = s
			}
		}
	}
	return m
}

// parseVersion turns "7.2.4" into 7, 2.
func parseVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	major, _ = strconv.Atoi(parts[0])
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}

func checkServer(rep *doctorReport, node string, info map[string]string) {
	name, version := "Redis", info["redis_version"]
	if v, ok := info["valkey_version"]; ok {
		name, version = "Valkey", v
	} else if info["server_name"] == "valkey" {
		name = "Valkey"
	}
	major, _ := parseVersion(version)
	what := fmt.Sprintf("%s %s (%s mode)", name, version, orDefault(info["redis_mode"], "standalone"))
	switch {
	case name == "Valkey" || major >= 7:
		rep.add("server", node, verdictOK, "%s: has PEXPIRETIME (7.0), CLIENT TRACKING (6.0) and everything else the patterns use", what)
	case major == 6:
		rep.add("server", node, verdictFail, "%s: the rate limiters' scripts call PEXPIRETIME, which needs 7.0; upgrade", what)
	default:
		rep.add("server", node, verdictFail, "%s: the patterns need 7.0 (PEXPIRETIME) and 6.0 (CLIENT TRACKING, ACL); upgrade", what)
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func checkMemory(rep *doctorReport, node string, info, cfg map[string]string) {
	policy, ok := cfg["maxmemory-policy"]
	if !ok {
		rep.add("memory", node, verdictWarn, "cannot read maxmemory-policy (CONFIG GET refused); make sure it is noeviction")
		return
	}
	max, _ := strconv.ParseInt(cfg["maxmemory"], 10, 64)
	used, _ := strconv.ParseInt(info["used_memory"], 10, 64)
	limit := "no maxmemory"
	if max > 0 {
		limit = fmt.Sprintf("maxmemory %s, %.0f%% used", humanBytes(max), 100*float64(used)/float64(max))
	}
	switch {
	case policy == "noeviction" && max > 0 && used*10 > max*9:
		rep.add("memory", node, verdictWarn, "%s, %s: writes will soon fail with OOM; raise maxmemory", policy, limit)
	case policy == "noeviction":
		rep.add("memory", node, verdictOK, "%s, %s: no key is evicted", policy, limit)
	case max > 0:
		rep.add("memory", node, verdictFail, "%s, %s: eviction can remove held locks, limiter state and queued messages (they all have a TTL); set maxmemory-policy noeviction, or keep caches on a server of their own", policy, limit)
	default:
		rep.add("memory", node, verdictWarn, "%s, %s: nothing is evicted until maxmemory is set, then held locks and limiter state can be; prefer noeviction", policy, limit)
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fgb", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fmb", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fkb", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%db", n)
}

func checkPersistence(rep *doctorReport, node string, cfg map[string]string) {
	aof, ok := cfg["appendonly"]
	if !ok {
		rep.add("persistence", node, verdictWarn, "cannot read appendonly/save (CONFIG GET refused); queues and write-behind need persistence to survive a restart")
		return
	}
	save := strings.TrimSpace(cfg["save"])
	switch {
	case aof == "yes":
		rep.add("persistence", node, verdictOK, "appendonly yes (appendfsync %s): queues and write-behind survive a restart", cfg["appendfsync"])
	case save != "":
		rep.add("persistence", node, verdictWarn, "RDB snapshots only (save %q): a crash loses the queue messages and write-behind entries written since the last snapshot; set appendonly yes", save)
	default:
		rep.add("persistence", node, verdictWarn, "no persistence (appendonly no, save \"\"): a restart empties queues, write-behind buffers, locks and sessions; set appendonly yes if they matter")
	}
}

func checkReplicas(rep *doctorReport, node string, info, cfg map[string]string) {
	n, _ := strconv.Atoi(info["connected_slaves"])
	minw := cfg["min-replicas-to-write"]
	if info["role"] != "master" {
		rep.add("replicas", node, verdictWarn, "role %s: point REDIS_URL at the primary", info["role"])
		return
	}
	if n == 0 {
		rep.add("replicas", node, verdictWarn, "no replica: LockOptions.Replicas > 0 fails every Obtain with ErrNotReplicated, and losing this server loses every lock and queue; add a replica")
		return
	}
	if minw == "" || minw == "0" {
		rep.add("replicas", node, verdictOK, "%d replica(s), min-replicas-to-write 0: use LockOptions.Replicas (at most %d) so that a failover does not lose a held lock", n, n)
		return
	}
	rep.add("replicas", node, verdictOK, "%d replica(s), min-replicas-to-write %s", n, minw)
}

func checkTracking(ctx context.Context, rep *doctorReport, node string, n *redis.Client) {
	conn := n.Conn()
	defer conn.Close()
	err := conn.Do(ctx, "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "patterns-doctor:").Err()
	if err == nil {
		_ = conn.Do(ctx, "CLIENT", "TRACKING", "OFF").Err()
		rep.add("tracking", node, verdictOK, "CLIENT TRACKING allowed: the cache's local layer (CacheLocalOptions) can be used")
		return
	}
	rep.add("tracking", node, verdictWarn, "CLIENT TRACKING refused (%v): the cache's local layer (CacheLocalOptions) will not start; grant +client|tracking to this user", err)
}

func checkScripts(ctx context.Context, rep *doctorReport, node string, n *redis.Client) {
	all := patterns.Scripts()
	shas := make([]string, len(all))
	for i, s := range all {
		shas[i] = s.SHA1
	}
	ok, err := n.ScriptExists(ctx, shas...).Result()
	if err != nil {
		rep.add("scripts", node, verdictFail, "SCRIPT EXISTS refused (%v): the patterns run Lua scripts; grant +@scripting", err)
		return
	}
	var missing []string
	for i, b := range ok {
		if !b {
			missing = append(missing, all[i].Name)
		}
	}
	if len(missing) == 0 {
		rep.add("scripts", node, verdictOK, "all %d scripts loaded", len(all))
		return
	}
	ex := missing[0]
	if len(missing) > 1 {
		ex += ", ..."
	}
	rep.add("scripts", node, verdictWarn, "%d of %d scripts not loaded (%s): each is loaded on first use; run `patterns load` after deploys and restarts", len(missing), len(all), ex)
}

func checkLatency(ctx context.Context, rep *doctorReport, node string, n *redis.Client, pings int) {
	if pings < 1 {
		pings = 1
	}
	d := make([]time.Duration, 0, pings)
	for i := 0; i < pings; i++ {
		start := time.Now()
		if err := n.Ping(ctx).Err(); err != nil {
			rep.add("latency", node, verdictFail, "PING: %v", err)
			return
		}
		d = append(d, time.Since(start))
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	med, max := d[len(d)/2], d[len(d)-1]
	status, why := verdictOK, "fine for locks and limiters"
	if med > 20*time.Millisecond {
		status, why = verdictWarn, "every Allow and Obtain pays it; lock leases and limiter windows should be well above it"
	}
	rep.add("latency", node, status, "%d PINGs: median %s, max %s: %s", pings, med.Round(time.Microsecond), max.Round(time.Microsecond), why)
}

func checkSlowlog(ctx context.Context, rep *doctorReport, node string, n *redis.Client) {
	logs, err := n.SlowLogGet(ctx, 128).Result()
	if err != nil {
		rep.add("slowlog", node, verdictWarn, "SLOWLOG GET refused (%v)", err)
		return
	}
	byHash := map[string]string{}
	for _, s := range patterns.Scripts() {
		byHash[s.SHA1] = s.Name
	}
	count := map[string]int{}
	worst := map[string]time.Duration{}
	for _, l := range logs {
		if len(l.Args) < 2 {
			continue
		}
		cmd := strings.ToUpper(l.Args[0])
		var name string
		switch cmd {
		case "EVALSHA", "EVALSHA_RO":
			name = byHash[strings.ToLower(l.Args[1])]
		case "EVAL", "EVAL_RO":
			// The slow log truncates long arguments: "...(N more bytes)".
			body, _, _ := strings.Cut(l.Args[1], "... (")
			for _, s := range patterns.Scripts() {
				if len(body) > 16 && strings.HasPrefix(s.Source, body) {
					name = s.Name
					break
				}
			}
		}
		if name == "" {
			continue
		}
		count[name]++
		worst[name] = max(worst[name], l.Duration)
	}
	if len(count) == 0 {
		rep.add("slowlog", node, verdictOK, "none of the %d slow log entries is a script of the library", len(logs))
		return
	}
	names := make([]string, 0, len(count))
	for k := range count {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return worst[names[i]] > worst[names[j]] })
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s x%d (max %s)", k, count[k], worst[k]))
	}
	rep.add("slowlog", node, verdictWarn, "library scripts in the slow log: %s; look for big leaderboards, long queue batches or huge multi-locks", strings.Join(parts, ", "))
}

func checkCluster(ctx context.Context, rep *doctorReport, nodes []*redis.Client) {
	for _, n := range nodes {
		m, err := infoLines(n.ClusterInfo(ctx).Result())
		if err != nil {
			rep.add("cluster", n.Options().Addr, verdictFail, "CLUSTER INFO: %v", err)
			continue
		}
		if m["cluster_state"] != "ok" || m["cluster_slots_ok"] != "16384" {
			rep.add("cluster", n.Options().Addr, verdictFail, "cluster_state %s, %s of 16384 slots ok (%s assigned, %s pfail, %s fail): keys in uncovered slots cannot be used; assign every slot to a primary",
				m["cluster_state"], m["cluster_slots_ok"], m["cluster_slots_assigned"], m["cluster_slots_pfail"], m["cluster_slots_fail"])
			continue
		}
		rep.add("cluster", n.Options().Addr, verdictOK, "cluster_state ok, all 16384 slots covered by %s primaries", m["cluster_size"])
	}
}

// infoLines parses the key:value lines of INFO or CLUSTER INFO.
func infoLines(s string, err error) (map[string]string, error) {
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}
