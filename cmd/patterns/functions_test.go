package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// TestFunctionsCommand: `patterns functions` prints the library, `name` its
// name; `functions load` loads it on every master of a cluster (and again
// without error, and with -replace); doctor reports the versions a server
// holds: this build's alone, beside an older release's (an upgrade in
// progress: both callable), and the older one alone (a WARN).
func TestFunctionsCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lib := patterns.Functions()
	var out bytes.Buffer
	if err := cmdFunctions(ctx, nil, &out); err != nil || out.String() != lib.Code {
		t.Fatalf("functions: %v, printed %d bytes, want the library's %d", err, out.Len(), len(lib.Code))
	}
	out.Reset()
	if err := cmdFunctions(ctx, []string{"name"}, &out); err != nil || out.String() != lib.Name+"\n" {
		t.Fatalf("functions name: %q, %v", out.String(), err)
	}

	cl := startCluster(t)
	url := "redis://" + strings.Join(cl.Addrs(), ",")
	for _, args := range [][]string{{"-cluster"}, {"-cluster"}, {"-cluster", "-replace"}} {
		out.Reset()
		if err := functionsLoad(ctx, url, args, &out); err != nil || !strings.Contains(out.String(), "loaded "+lib.Name) {
			t.Fatalf("functions load %v: %q, %v", args, out.String(), err)
		}
	}
	for _, n := range cl.Nodes {
		c, err := n.Client()
		if err != nil {
			t.Fatal(err)
		}
		libs, err := c.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: lib.Name}).Result()
		c.Close()
		if err != nil || len(libs) != 1 {
			t.Fatalf("%s: %d libraries %s, %v", n.Addr, len(libs), lib.Name, err)
		}
	}

	srv, rdb := startProc(t)
	surl := "redis://" + srv.Addr
	doctorSays := func(status, detail string) {
		t.Helper()
		rep, _ := runDoctor(t, surl)
		for _, c := range rep.Checks {
			if c.Check == "functions" {
				if c.Status != status || !strings.Contains(c.Detail, detail) {
					t.Fatalf("doctor: functions %s %q, want %s with %q", c.Status, c.Detail, status, detail)
				}
				return
			}
		}
		t.Fatal("doctor: no functions check")
	}
	doctorSays(verdictOK, "no patterns library loaded")
	if err := functionsLoad(ctx, surl, nil, &out); err != nil {
		t.Fatal(err)
	}
	doctorSays(verdictOK, "library "+lib.Name+" loaded, this build's")
	// An older release's library, loaded beside this one: both answer.
	old := "patterns_v00000000"
	if err := rdb.FunctionLoad(ctx, strings.ReplaceAll(lib.Code, lib.Name, old)).Err(); err != nil {
		t.Fatal(err)
	}
	doctorSays(verdictOK, "libraries "+old+", "+lib.Name+" loaded; this build's is "+lib.Name)
	for _, name := range []string{old, lib.Name} {
		got, err := rdb.FCall(ctx, name+"_lock_obtain", []string{"doctor:{l}:" + name, "doctor:{l}:f:" + name}, "tok", 60000, 60000).Result()
		if err != nil {
			t.Fatalf("%s: %v, %v", name, got, err)
		}
	}
	if err := rdb.FunctionDelete(ctx, lib.Name).Err(); err != nil {
		t.Fatal(err)
	}
	doctorSays(verdictWarn, "not this build's "+lib.Name)
}
