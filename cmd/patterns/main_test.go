package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/internal/redisserver"
)

// TestDemo runs every demo against a throwaway Redis started by the command
// itself, as `patterns demo` does on a fresh machine.
func TestDemo(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	var out bytes.Buffer
	if err := run([]string{"demo"}, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, d := range demos {
		if !strings.Contains(out.String(), "== "+d.name+" ==") {
			t.Errorf("demo %s did not run", d.name)
		}
	}
	// A newcomer's first command prints no warning: no registry, no image.
	for _, bad := range []string{"docker", "no such host", "warning", "error"} {
		if strings.Contains(strings.ToLower(out.String()), bad) {
			t.Errorf("the demo's output mentions %q", bad)
		}
	}
	t.Log(out.String())
}

func TestScriptsAndLoad(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"scripts"}, &out); err != nil {
		t.Fatal(err)
	}
	all := patterns.Scripts()
	if got := strings.Count(out.String(), "\n"); got != len(all) {
		t.Fatalf("scripts listed %d lines, want %d", got, len(all))
	}
	out.Reset()
	if err := run([]string{"scripts", all[0].Name}, &out); err != nil || out.String() != all[0].Source {
		t.Fatalf("scripts %s: %v", all[0].Name, err)
	}
	if err := run([]string{"scripts", "no-such"}, &out); err == nil {
		t.Fatal("want an error for an unknown script")
	}

	srv, err := redisserver.StartProcess(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	rdb, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	t.Setenv("REDIS_URL", "redis://"+rdb.Options().Addr)
	out.Reset()
	if err := run([]string{"load"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		ok, err := rdb.ScriptExists(context.Background(), s.SHA1).Result()
		if err != nil || !ok[0] {
			t.Errorf("script %s not loaded: %v", s.Name, err)
		}
	}
}
