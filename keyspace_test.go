package patterns_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/internal/redisserver"
)

// The whole-suite keyspace audit: every server the test binary started is
// scanned just before it is removed (redisserver.SetBeforeClose), and the
// examples' server at the end of the run; a key without a TTL that is not a
// documented long-lived key fails the run. Per-test audits (newClient) cover
// the keys under each test's own prefix; this one covers everything else the
// tests wrote, whatever prefix or client they used.

// longLivedKey reports whether key is one the library documents as having no
// TTL: the all-time leaderboard, prefix:lb:{name}:s, :r and :h, and a
// scheduler's schedules, prefix:sched:{name}:s and :due.
var longLivedKey = regexp.MustCompile(`^[^{}]*:(lb:\{[^{}]*\}:[srh]|sched:\{[^{}]*\}:(s|due))$`).MatchString

// keyAudit collects the keys without a TTL found in the servers it scans,
// and the servers it could not scan.
type keyAudit struct {
	mu        sync.Mutex
	found     map[string]string // key -> where
	scanned   int               // servers scanned
	sentinels int               // Sentinels skipped: they hold no keys
	dead      int               // servers skipped: nothing listened any more
	unscanned map[string]error  // where -> why, for the other servers not scanned
}

func newKeyAudit() *keyAudit {
	return &keyAudit{found: map[string]string{}, unscanned: map[string]error{}}
}

// scanServer audits every key matching match ("*" for all) on the server at
// addr. A server that refuses the connection (it is dead already) or does not
// hold keys (a Sentinel) is skipped: it can hold nothing to audit for this
// run. Any other error (a stalled server that times out) is returned and
// recorded: the run's audit then fails.
func (a *keyAudit) scanServer(addr, match string, tlsConfig ...*tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{
		Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second,
		TLSConfig: firstOrNil(tlsConfig),
		// A cluster replica answers reads of its master's slots only after
		// READONLY; elsewhere Redis refuses the command, harmlessly. A
		// network error (no reply read) fails the connection.
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			var rerr redis.Error
			if err := cn.ReadOnly(ctx).Err(); err != nil && !errors.As(err, &rerr) {
				return err
			}
			return nil
		},
	})
	defer c.Close()
	err := a.scan(ctx, c, addr, match)
	if errors.Is(err, syscall.ECONNREFUSED) {
		a.mu.Lock()
		a.dead++
		a.mu.Unlock()
		return nil
	}
	return err
}

func (a *keyAudit) scan(ctx context.Context, c *redis.Client, where, match string) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			if strings.Contains(err.Error(), "unknown command") {
				a.mu.Lock()
				a.sentinels++
				a.mu.Unlock()
				return nil
			}
			return a.fail(where, err)
		}
		if len(keys) > 0 {
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.PTTL(ctx, k)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return a.fail(where, err)
			}
			for i, cmd := range cmds {
				if d, err := cmd.(*redis.DurationCmd).Result(); err == nil && d == -1 && !longLivedKey(keys[i]) {
					a.mu.Lock()
					a.found[keys[i]] = where
					a.mu.Unlock()
				}
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	a.mu.Lock()
	a.scanned++
	a.mu.Unlock()
	return nil
}

// fail records that the server at where could not be scanned, unless it
// refused the connection, and returns err.
func (a *keyAudit) fail(where string, err error) error {
	if !errors.Is(err, syscall.ECONNREFUSED) {
		a.mu.Lock()
		a.unscanned[where] = err
		a.mu.Unlock()
	}
	return err
}

// servers returns how many servers were scanned.
func (a *keyAudit) servers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.scanned
}

// counts returns one line on what was scanned and skipped, and one line per
// server that could not be scanned, sorted.
func (a *keyAudit) counts() (summary string, unscanned []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for where, err := range a.unscanned {
		unscanned = append(unscanned, fmt.Sprintf("server %s: %v", where, err))
	}
	sort.Strings(unscanned)
	summary = fmt.Sprintf("%d servers scanned, %d Sentinels and %d dead servers skipped, %d servers could not be scanned",
		a.scanned, a.sentinels, a.dead, len(a.unscanned))
	return summary, unscanned
}

// report returns one line per key without a TTL, sorted, or nil.
func (a *keyAudit) report() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var lines []string
	for k, where := range a.found {
		lines = append(lines, fmt.Sprintf("%q (server %s)", k, where))
	}
	sort.Strings(lines)
	return lines
}

// suiteAudit is the audit of the whole run, installed by TestMain.
var suiteAudit = newKeyAudit()

// installSuiteAudit makes every server the run starts be audited before it
// goes.
func installSuiteAudit() {
	redisserver.SetBeforeClose(func(s *redisserver.Server) {
		_ = suiteAudit.scanServer(s.Addr, "*", s.TLS()) // recorded in suiteAudit
	})
}

// finishSuiteAudit prints what the run left without a TTL and the servers it
// could not scan, and reports whether the audit passed: every key with a TTL
// or documented long-lived, every live server scanned.
func finishSuiteAudit() bool {
	redisserver.SetBeforeClose(nil)
	lines := suiteAudit.report()
	summary, unscanned := suiteAudit.counts()
	if len(lines) == 0 && len(unscanned) == 0 {
		fmt.Printf("keyspace audit: %s; every key has a TTL or is a documented long-lived key\n", summary)
		return true
	}
	fmt.Printf("keyspace audit: %s; %d keys without a TTL (not documented long-lived):\n", summary, len(lines))
	for _, l := range lines {
		fmt.Println("  " + l)
	}
	for _, l := range unscanned {
		fmt.Println("  not scanned: " + l)
	}
	return false
}

// TestKeyAudit proves the audit catches a key without a TTL, and lets keys
// with a TTL and the documented long-lived ones pass.
func TestKeyAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, err := redisserver.StartProcess(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := pc.Board("all-time", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Submit(ctx, "ann", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Obtain(ctx, "held", time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	rdb.Set(ctx, "audit:lock:{forever}", "x", 0)
	rdb.Set(ctx, "audit:lb:{b}:s:x", "x", 0)                       // not one of the board's own keys
	defer rdb.Del(ctx, "audit:lock:{forever}", "audit:lb:{b}:s:x") // before the close audits the server
	a := newKeyAudit()
	if err := a.scanServer(srv.Addr, "*"); err != nil {
		t.Fatal(err)
	}
	got := a.report()
	want := []string{fmt.Sprintf("%q (server %s)", "audit:lb:{b}:s:x", srv.Addr), fmt.Sprintf("%q (server %s)", "audit:lock:{forever}", srv.Addr)}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit found:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The all-time board's keys are long-lived; a lock's are not.
	for key, want := range map[string]bool{"p:lb:{x}:s": true, "p:lb:{x}:r": true, "p:lb:{x}:h": true, "p:lb:{x}:day:20260101:s": false, "p:lock:{x}": false, "p:lb:{x}:q": false} {
		if longLivedKey(key) != want {
			t.Errorf("longLivedKey(%q) = %v", key, !want)
		}
	}
	// Through the hook: a server closed with the key still in it is reported.
	srv2, err := redisserver.StartProcess(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	c2 := redis.NewClient(&redis.Options{Addr: srv2.Addr})
	defer c2.Close()
	c2.Set(ctx, "left-behind", "x", 0)
	before := len(suiteAudit.report())
	hooked := suiteAudit.servers()
	_ = srv2.Close()
	if suiteAudit.servers() == hooked {
		t.Fatal("closing a server did not run the suite audit")
	}
	if len(suiteAudit.report()) != before+1 {
		t.Fatalf("the suite audit did not record the key left behind: %v", suiteAudit.report())
	}
	// That key was planted by this test: take it out of the run's report.
	suiteAudit.mu.Lock()
	delete(suiteAudit.found, "left-behind")
	suiteAudit.mu.Unlock()

	// A server that does not answer cannot be audited: it is recorded, and
	// fails the run's audit. One that refuses the connection is dead: it
	// holds nothing, and is only counted.
	stalled, err := redisserver.StartProcess(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if err := stalled.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	a = newKeyAudit()
	err = a.scanServer(stalled.Addr, "*")
	if cerr := stalled.Signal(syscall.SIGCONT); cerr != nil {
		t.Fatal(cerr)
	}
	if err == nil {
		t.Fatal("a stopped server was scanned")
	}
	port, err := redisserver.FreePort(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.scanServer(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "*"); err != nil {
		t.Fatalf("a port nobody listens on: %v, want it skipped as dead", err)
	}
	summary, unscanned := a.counts()
	if len(unscanned) != 1 || !strings.Contains(unscanned[0], stalled.Addr) || a.dead != 1 || a.servers() != 0 {
		t.Fatalf("audit of a stopped and a dead server: %s: %v", summary, unscanned)
	}
}
