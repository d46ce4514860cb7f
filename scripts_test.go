package patterns

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestScriptFiles checks that every file in scripts/ is registered, has a
// header naming its KEYS and ARGV, and runs unchanged through the real
// redis-cli with the arguments its "-- Example:" line gives.
func TestScriptFiles(t *testing.T) {
	files, err := filepath.Glob("scripts/*.lua")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli is needed (apt-get install redis-tools): %v", err)
	}
	rdb := ownRedis(t) // the examples write under the default prefix
	host, port, err := net.SplitHostPort(rdb.Options().Addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(registry) {
		t.Errorf("%d files in scripts/, %d registered with newScript", len(files), len(registry))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".lua")
		t.Run(name, func(t *testing.T) {
			if _, ok := registry[name]; !ok {
				t.Errorf("%s is not registered with newScript", f)
			}
			header, example := scriptHeader(t, f)
			for _, word := range []string{"KEYS", "ARGV"} {
				if !strings.Contains(header, word) {
					t.Errorf("header does not name its %s", word)
				}
			}
			if example == "" {
				t.Fatal(`no "-- Example: redis-cli --eval ..." line in the header`)
			}
			args := strings.Fields(example)
			if len(args) < 3 || args[0] != "redis-cli" || args[1] != "--eval" || args[2] != f {
				t.Fatalf("example %q must start with: redis-cli --eval %s", example, f)
			}
			cmd := exec.Command(cli, append([]string{"-h", host, "-p", port}, args[1:]...)...)
			out, err := cmd.CombinedOutput()
			if err != nil || strings.Contains(string(out), "ERR") || strings.HasPrefix(string(out), "(error)") {
				t.Fatalf("%s: %v\n%s", example, err, out)
			}
			t.Logf("%s -> %s", example, strings.TrimSpace(string(out)))
		})
	}
	// The examples write under the "patterns" prefix: remove what they made.
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "patterns:*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Unlink(ctx, iter.Val())
	}
}

// scriptHeader returns the leading comment block of a script and the command
// of its "-- Example:" line.
func scriptHeader(t *testing.T, path string) (header, example string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "--") {
			break
		}
		b.WriteString(line + "\n")
		if rest, ok := strings.CutPrefix(line, "-- Example:"); ok {
			example = strings.TrimSpace(rest)
		}
	}
	return b.String(), example
}
