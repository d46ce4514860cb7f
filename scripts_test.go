package patterns

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestScriptFiles checks that every file in scripts/ is registered and has
// a header in the common form, and runs the header's example through the
// real redis-cli on a fresh server of its own, as a user would paste it.
//
// The header is the leading block of "--" lines. Its first line is
// "-- NAME: what it does"; it names the KEYS (KEYS[...]) and the ARGV, and
// the reply in a paragraph that starts with "-- Returns". It ends with the
// example, in one of two forms:
//
//	-- Example: redis-cli --eval scripts/NAME.lua KEYS... , ARGV...
//
// or, when the script needs data to exist first, the setup commands in the
// order to run them, then the script's call, one command a line:
//
//	-- Example, on a fresh server:
//	--   redis-cli XGROUP CREATE ...
//	--   redis-cli --eval scripts/NAME.lua KEYS... , ARGV...
//
// Every command runs through sh as written (quotes as the shell reads
// them), against an empty server, in order; each must succeed (no error
// reply), and the last must be the script's --eval.
func TestScriptFiles(t *testing.T) {
	files, err := filepath.Glob("scripts/*.lua")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	if len(files) != len(registry) {
		t.Errorf("%d files in scripts/, %d registered with newScript", len(files), len(registry))
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skipf("redis-cli is needed to run the header examples (apt-get install redis-tools): %v", err)
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skipf("sh is needed to run the header examples as written: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".lua")
		t.Run(name, func(t *testing.T) {
			if _, ok := registry[name]; !ok {
				t.Errorf("%s is not registered with newScript", f)
			}
			header, example := scriptHeader(t, f)
			if !strings.HasPrefix(header, "-- "+name+": ") {
				t.Errorf("the header's first line must be %q", "-- "+name+": what it does")
			}
			for _, want := range []struct{ what, text string }{{"its KEYS", "KEYS["}, {"its ARGV", "ARGV"}, {"its reply", "\n-- Returns"}} {
				if !strings.Contains(header, want.text) {
					t.Errorf("the header does not name %s (%q)", want.what, want.text)
				}
			}
			if len(example) == 0 {
				t.Fatal(`no example: end the header with "-- Example: redis-cli --eval ..." (see TestScriptFiles)`)
			}
			last := strings.Fields(example[len(example)-1])
			if len(last) < 3 || last[1] != "--eval" || last[2] != f {
				t.Fatalf("the example's last command %q must be: redis-cli --eval %s ...", example[len(example)-1], f)
			}
			rdb := ownRedis(t) // an empty server: the example must bring what it needs
			host, port, err := net.SplitHostPort(rdb.Options().Addr)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range example {
				// --no-raw marks an error reply "(error)"; redis-cli exits 0
				// on one.
				cmd := exec.Command("sh", "-c", `"$REDIS_CLI" -h "$REDIS_HOST" -p "$REDIS_PORT" --no-raw`+strings.TrimPrefix(line, "redis-cli"))
				cmd.Env = append(os.Environ(), "REDIS_CLI="+cli, "REDIS_HOST="+host, "REDIS_PORT="+port)
				out, err := cmd.CombinedOutput()
				if err != nil || strings.Contains(string(out), "(error)") {
					t.Fatalf("%s: %v\n%s", line, err, out)
				}
				t.Logf("%s -> %s", line, strings.TrimSpace(string(out)))
			}
		})
	}
}

// scriptHeader returns the leading comment block of a script and the
// commands of its example (see TestScriptFiles).
func scriptHeader(t *testing.T, path string) (header string, example []string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	inExample := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "--") {
			break
		}
		b.WriteString(line + "\n")
		if rest, ok := strings.CutPrefix(line, "-- Example"); ok {
			inExample = true
			if _, cmd, ok := strings.Cut(rest, ":"); ok && strings.HasPrefix(strings.TrimSpace(cmd), "redis-cli ") {
				example = append(example, strings.TrimSpace(cmd))
			}
			continue
		}
		if cmd, ok := strings.CutPrefix(line, "--   redis-cli "); ok && inExample {
			example = append(example, "redis-cli "+cmd)
		}
	}
	return b.String(), example
}
