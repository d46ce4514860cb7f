package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/internal/redisserver"
)

// runDoctor runs `patterns doctor -json` with REDIS_URL=url and returns the
// report and the command's error.
func runDoctor(t *testing.T, url string, args ...string) (*doctorReport, error) {
	t.Helper()
	var out bytes.Buffer
	err := doctorMain(context.Background(), url, append([]string{"-json", "-pings", "3"}, args...), &out)
	rep := &doctorReport{}
	if jerr := json.Unmarshal(out.Bytes(), rep); jerr != nil {
		t.Fatalf("doctor output is not JSON: %v (command: %v)\n%s", jerr, err, out.String())
	}
	return rep, err
}

// verdicts maps "check" or "check@node" to the statuses seen.
func verdicts(rep *doctorReport) map[string]string {
	m := map[string]string{}
	for _, c := range rep.Checks {
		if prev, ok := m[c.Check]; ok && prev != c.Status {
			// Several nodes: the worst wins.
			if prev == verdictFail || (prev == verdictWarn && c.Status == verdictOK) {
				continue
			}
		}
		m[c.Check] = c.Status
	}
	return m
}

func expectVerdicts(t *testing.T, rep *doctorReport, want map[string]string) {
	t.Helper()
	got := verdicts(rep)
	for check, v := range want {
		if got[check] != v {
			t.Errorf("%s: got %q, want %q", check, got[check], v)
		}
	}
	if t.Failed() {
		for _, c := range rep.Checks {
			t.Logf("%-4s %-11s %s %s", c.Status, c.Check, c.Node, c.Detail)
		}
	}
}

// startCluster starts a cluster of 3 masters, closed when the test ends.
func startCluster(t *testing.T) *redisserver.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := redisserver.StartCluster(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func startProc(t *testing.T, args ...string) (*redisserver.Server, *redis.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := redisserver.StartProcess(ctx, &redisserver.ProcessConfig{Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	rdb, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return srv, rdb
}

// TestDoctorStandalone runs doctor against a server configured wrongly on
// purpose (allkeys-lru, a user that may not use CLIENT TRACKING, no replica,
// no persistence, no scripts loaded), then against the same server put right.
func TestDoctorStandalone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, rdb := startProc(t, "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru")
	if err := rdb.Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-client|tracking").Err(); err != nil {
		t.Fatal(err)
	}
	rep, err := runDoctor(t, "redis://app:pw@"+srv.Addr)
	if !errors.Is(err, errDoctorFail) {
		t.Errorf("want errDoctorFail (non-zero exit), got %v", err)
	}
	expectVerdicts(t, rep, map[string]string{
		"server":      verdictOK,
		"memory":      verdictFail,
		"persistence": verdictWarn,
		"replicas":    verdictWarn,
		"tracking":    verdictWarn,
		"acl":         verdictFail,
		"scripts":     verdictWarn,
		"latency":     verdictOK,
		"slowlog":     verdictOK,
	})
	if rep.Fail != 2 {
		t.Errorf("%d FAIL, want 2 (memory, acl)", rep.Fail)
	}

	// Put it right: noeviction, AOF, scripts loaded, the default user.
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "doctor"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// Every command is slow now: the library's scripts show up in the slow log.
	if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		t.Fatal(err)
	}
	lock, err := pc.Obtain(ctx, "doctor-lock", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = lock.Release(ctx)
	rep, err = runDoctor(t, "redis://"+srv.Addr)
	if err != nil {
		t.Errorf("doctor: %v", err)
	}
	expectVerdicts(t, rep, map[string]string{
		"memory":      verdictOK,
		"persistence": verdictOK,
		"replicas":    verdictWarn,
		"tracking":    verdictOK,
		"acl":         verdictOK,
		"scripts":     verdictOK,
		"slowlog":     verdictWarn,
	})
	for _, c := range rep.Checks {
		if c.Check == "slowlog" && !strings.Contains(c.Detail, "lock_obtain") {
			t.Errorf("slowlog does not name the lock's script: %s", c.Detail)
		}
	}

	// The text output has one line per check and the summary.
	var out bytes.Buffer
	if err := doctorMain(ctx, "redis://"+srv.Addr, nil, &out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if !strings.Contains(out.String(), "OK    memory      noeviction") || !strings.Contains(out.String(), " FAIL\n") {
		t.Errorf("text output:\n%s", out.String())
	}
}

// TestDoctorReplica: a primary with a replica passes the replicas check.
func TestDoctorReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, _ := startProc(t)
	host, port, _ := net.SplitHostPort(srv.Addr)
	_, replica := startProc(t, "--replicaof", host, port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := replica.Info(ctx, "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica did not sync")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep, err := runDoctor(t, "redis://"+srv.Addr)
	if err != nil {
		t.Errorf("doctor: %v", err)
	}
	expectVerdicts(t, rep, map[string]string{"replicas": verdictOK, "memory": verdictOK})
}

// TestDoctorCluster: one master with allkeys-lru fails the memory check on
// that node; scripts are loaded on every master; a slot taken away fails
// the cluster check.
func TestDoctorCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := startCluster(t)
	url := "redis://" + strings.Join(cl.Addrs(), ",")
	// A user that may not use CLIENT TRACKING, on every node.
	for _, n := range cl.Nodes {
		c, err := n.Client()
		if err != nil {
			t.Fatal(err)
		}
		err = c.Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-client|tracking").Err()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	appURL := "redis://app:pw@" + strings.Join(cl.Addrs(), ",")
	bad, err := cl.Nodes[1].Client()
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.ConfigSet(ctx, "maxmemory", "256mb").Err(); err != nil {
		t.Fatal(err)
	}
	if err := bad.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	rep, err := runDoctor(t, appURL, "-cluster")
	if !errors.Is(err, errDoctorFail) {
		t.Errorf("want errDoctorFail, got %v", err)
	}
	expectVerdicts(t, rep, map[string]string{
		"cluster": verdictOK, "memory": verdictFail, "scripts": verdictWarn, "tracking": verdictWarn,
		"server": verdictOK, "replicas": verdictWarn, "acl": verdictFail,
	})
	fails, aclFails := 0, 0
	for _, c := range rep.Checks {
		switch {
		case c.Status != verdictFail:
		case c.Check == "acl" && strings.Contains(c.Detail, "lacks commands client|tracking:"):
			aclFails++
		case c.Check == "memory" && c.Node == cl.Nodes[1].Addr:
			fails++
		default:
			t.Errorf("unexpected FAIL: %+v", c)
		}
	}
	if fails != 1 || aclFails != 3 {
		t.Errorf("%d memory FAIL, want 1 (on %s); %d acl FAIL, want 3 (every master)", fails, cl.Nodes[1].Addr, aclFails)
	}

	// Scripts loaded on every master, the policy put right: no FAIL.
	if err := bad.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	crdb, err := cl.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer crdb.Close()
	pc, err := patterns.New(crdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err = runDoctor(t, url, "-cluster")
	if err != nil {
		t.Errorf("doctor: %v", err)
	}
	expectVerdicts(t, rep, map[string]string{"cluster": verdictOK, "memory": verdictOK, "scripts": verdictOK, "tracking": verdictOK, "acl": verdictOK})

	// A slot without a master: that node reports cluster_state fail.
	if err := bad.Do(ctx, "CLUSTER", "DELSLOTS", 16384/3 /* the first of Nodes[1]'s slots */).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := bad.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:fail") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster_state did not turn fail: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep, err = runDoctor(t, url, "-cluster")
	if !errors.Is(err, errDoctorFail) {
		t.Errorf("want errDoctorFail, got %v", err)
	}
	expectVerdicts(t, rep, map[string]string{"cluster": verdictFail})
}

// TestDoctorSentinel: through a Sentinel, doctor checks the master it names,
// which has a replica.
func TestDoctorSentinel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	set, err := redisserver.StartSentinel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	rep, err := runDoctor(t, "redis://"+set.Sentinel.Addr, "-sentinel", set.MasterName)
	if err != nil {
		t.Errorf("doctor: %v", err)
	}
	expectVerdicts(t, rep, map[string]string{"server": verdictOK, "replicas": verdictOK, "memory": verdictOK})
}

// TestDoctorVersions: the server check's verdicts for versions no test
// server runs.
func TestDoctorVersions(t *testing.T) {
	for _, c := range []struct {
		info map[string]string
		want string
	}{
		{map[string]string{"redis_version": "7.2.4"}, verdictOK},
		{map[string]string{"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "8.0.1"}, verdictOK},
		{map[string]string{"redis_version": "6.2.14"}, verdictFail},
		{map[string]string{"redis_version": "5.0.7"}, verdictFail},
	} {
		rep := &doctorReport{}
		checkServer(rep, "", c.info)
		if rep.Checks[0].Status != c.want {
			t.Errorf("%v: %s, want %s", c.info, rep.Checks[0].Status, c.want)
		}
	}
	for in, want := range map[string]string{
		"redis://a:1":                      "redis://a:1",
		"redis://a:1,b:2,c:3":              "redis://a:1?addr=b:2&addr=c:3",
		"redis://u:p@a:1,b:2/0?x=1":        "redis://u:p@a:1/0?x=1&addr=b:2",
		"rediss://a:1,b:2?dial_timeout=1s": "rediss://a:1?dial_timeout=1s&addr=b:2",
	} {
		if got := commaHosts(in); got != want {
			t.Errorf("commaHosts(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDoctorREADME makes the doctor output quoted in the README: a server
// started with --maxmemory 256mb --maxmemory-policy allkeys-lru, and a user
// "shop" with the rule of `patterns acl -prefix shop -user shop` but for
// +blpop. Run with -v to print it:
//
//	go test -run TestDoctorREADME -v .
func TestDoctorREADME(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, rdb := startProc(t, "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru")
	if err := rdb.Do(ctx, aclRuleArgs(t, "shop", []string{"+blpop"}, nil)...).Err(); err != nil {
		t.Fatal(err)
	}
	url := "redis://" + srv.Addr
	args := []string{"-prefix", "shop", "-acl-user", "shop"}
	var out bytes.Buffer
	err := doctorMain(ctx, url, args, &out)
	if err != nil {
		fmt.Fprintln(&out, "patterns:", err)
	}
	text := out.String()
	if testing.Verbose() {
		fmt.Printf("$ REDIS_URL=%s patterns doctor %s\n%s", url, strings.Join(args, " "), text)
	}
	if !errors.Is(err, errDoctorFail) {
		t.Errorf("want errDoctorFail (exit status 1), got %v", err)
	}
	for _, want := range []string{
		"\nFAIL  memory      allkeys-lru, maxmemory 256.0mb",
		"\nFAIL  acl         user shop lacks commands blpop: `patterns acl -user shop -prefix shop`",
		"\nOK    tracking    ",
		" 2 FAIL\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}
