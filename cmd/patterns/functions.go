package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// cmdFunctions is `patterns functions`: with no argument it prints the
// Functions library (what FUNCTION LOAD takes); `name` prints its name,
// `list` its functions, and `load [-replace]` loads it on every primary of
// REDIS_URL's server, Sentinel set (-sentinel MASTER) or cluster (-cluster).
func cmdFunctions(ctx context.Context, args []string, w io.Writer) error {
	lib := patterns.Functions()
	if len(args) == 0 {
		_, err := io.WriteString(w, lib.Code)
		return err
	}
	switch args[0] {
	case "name":
		fmt.Fprintln(w, lib.Name)
		return nil
	case "list":
		for _, f := range lib.Functions {
			ro := ""
			switch {
			case f.ReadOnly == f.Name:
				ro = "  (no-writes)"
			case f.ReadOnly != "":
				ro = fmt.Sprintf("  read-only: %s when ARGV[%d] is %s", f.ReadOnly, f.ReadOnlyArg, strings.Join(f.ReadOnlyOps, " | "))
			}
			fmt.Fprintf(w, "%s%s\n", f.Name, ro)
		}
		return nil
	case "load":
		return functionsLoad(ctx, os.Getenv("REDIS_URL"), args[1:], w)
	}
	return fmt.Errorf("functions: unknown subcommand %q (name, list or load)", args[0])
}

// functionsLoad is `patterns functions load` with REDIS_URL=url.
func functionsLoad(ctx context.Context, url string, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("functions load", flag.ContinueOnError)
	cluster := fs.Bool("cluster", false, "REDIS_URL names a Redis Cluster")
	sentinel := fs.String("sentinel", "", "REDIS_URL names Sentinels watching this master name")
	replace := fs.Bool("replace", false, "FUNCTION LOAD REPLACE: replace a library of the same name")
	tf := addTLSFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("functions load: set REDIS_URL")
	}
	rdb, err := connectTLS(url, *cluster, *sentinel, tf)
	if err != nil {
		return err
	}
	defer rdb.Close()
	pc, err := patterns.New(rdb, nil)
	if err != nil {
		return err
	}
	if *replace {
		err = pc.ReplaceFunctions(ctx)
	} else {
		err = pc.LoadFunctions(ctx)
	}
	if err != nil {
		return err
	}
	lib := patterns.Functions()
	fmt.Fprintf(w, "loaded %s (%d scripts)\n", lib.Name, len(lib.Functions))
	return nil
}

// checkFunctions is doctor's report of the Functions libraries a primary
// holds: which versions, and whether this build's is among them.
func checkFunctions(ctx context.Context, rep *doctorReport, node string, n *redis.Client) {
	want := patterns.Functions().Name
	libs, err := n.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: "patterns_v*"}).Result()
	if err != nil {
		rep.add("functions", node, verdictWarn, "FUNCTION LIST refused (%v): needed only with Options.Functions or by other languages; grant +function|list", err)
		return
	}
	var names []string
	for _, l := range libs {
		names = append(names, l.Name)
	}
	sort.Strings(names)
	held := strings.Join(names, ", ")
	switch {
	case len(names) == 0:
		rep.add("functions", node, verdictOK, "no patterns library loaded (this build's is %s): with Options.Functions it is loaded on first use; `patterns functions load` loads it for other languages", want)
	case slices.Contains(names, want) && len(names) == 1:
		rep.add("functions", node, verdictOK, "library %s loaded, this build's", want)
	case slices.Contains(names, want):
		rep.add("functions", node, verdictOK, "libraries %s loaded; this build's is %s (the others are other releases': FUNCTION DELETE them once no process uses them)", held, want)
	default:
		rep.add("functions", node, verdictWarn, "libraries %s loaded, not this build's %s: processes of another release use them; run `patterns functions load` (it loads beside them)", held, want)
	}
}
