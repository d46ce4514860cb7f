package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/redispatterns/patterns"
)

const queueUsage = `usage: patterns queue stats|peek|redrive|purge|groups [flags] NAME [ID...]
  stats NAME            counts, the age of the oldest due message, paused or not
  peek [-state S] [-n N] NAME
                        up to N messages (ready, inflight or dead) without leasing them
  redrive NAME [ID...]  dead letters back to the consumers, deliveries reset (all without ids)
  purge NAME ID...      delete dead letters; purge -all NAME deletes every one
  groups [-n N] NAME    up to N groups with ready messages: ready, in flight, next turn
`

// cmdQueue is `patterns queue`.
func cmdQueue(ctx context.Context, args []string, w io.Writer) error {
	return queueMain(ctx, os.Getenv("REDIS_URL"), args, w)
}

// queueMain is `patterns queue` with REDIS_URL=url.
func queueMain(ctx context.Context, url string, args []string, w io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(w, queueUsage)
		return fmt.Errorf("queue: no subcommand")
	}
	sub := args[0]
	fs := flag.NewFlagSet("queue "+sub, flag.ContinueOnError)
	fs.SetOutput(w)
	cluster := fs.Bool("cluster", false, "REDIS_URL names a Redis Cluster")
	sentinel := fs.String("sentinel", "", "REDIS_URL names Sentinels watching this master name")
	prefix := fs.String("prefix", patterns.DefaultPrefix, "the client's Options.Prefix")
	retention := fs.Duration("retention", 7*24*time.Hour, "the queue's QueueOptions.Retention (the TTL a write renews)")
	asJSON := fs.Bool("json", false, "print JSON")
	state := fs.String("state", "ready", "peek: ready, inflight or dead")
	n := fs.Int("n", 10, "peek, groups: how many messages or groups at most")
	all := fs.Bool("all", false, "purge: every dead letter")
	tf := addTLSFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	rest := fs.Args()
	switch sub {
	case "stats", "peek", "redrive", "purge", "groups":
	default:
		fmt.Fprint(w, queueUsage)
		return fmt.Errorf("queue: unknown subcommand %q", sub)
	}
	if len(rest) == 0 {
		return fmt.Errorf("queue %s: no queue NAME", sub)
	}
	name, ids := rest[0], rest[1:]
	if len(ids) > 0 && sub != "redrive" && sub != "purge" {
		return fmt.Errorf("queue %s: unexpected arguments %q", sub, ids)
	}
	if sub == "purge" && (len(ids) == 0) == !*all {
		return fmt.Errorf("queue purge: give the ids to delete, or -all (and no ids)")
	}
	if url == "" {
		return fmt.Errorf("queue: set REDIS_URL")
	}
	rdb, err := connectTLS(url, *cluster, *sentinel, tf)
	if err != nil {
		return err
	}
	defer rdb.Close()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: *prefix})
	if err != nil {
		return err
	}
	// stats and peek read through the Inspector; redrive and purge write
	// through the Queue, which renews the TTLs with the retention.
	in := pc.Inspector()
	out := func(v any, text func()) error {
		if *asJSON {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		text()
		return nil
	}
	switch sub {
	case "groups":
		return queueGroups(ctx, in, name, *n, w, out)
	case "stats":
		st, err := in.Queue(ctx, name, 0)
		if err != nil {
			return err
		}
		return out(struct {
			Name                  string
			Ready, InFlight, Dead int64
			OldestReadyMs         int64
			Paused                bool
		}{name, st.Ready, st.InFlight, st.Dead, st.OldestReady.Milliseconds(), st.Paused}, func() {
			fmt.Fprintf(w, "queue %s: %d ready (oldest due %v ago), %d in flight, %d dead", name, st.Ready, st.OldestReady, st.InFlight, st.Dead)
			if st.Paused {
				fmt.Fprint(w, ", paused")
			}
			fmt.Fprintln(w)
		})
	case "peek":
		ps, err := in.QueueMessages(ctx, name, patterns.QueueState(*state), *n)
		if err != nil {
			return err
		}
		type peeked struct {
			ID         string
			Body       string
			Deliveries int
			Priority   int
			UntilMs    int64
		}
		js := []peeked{}
		for _, p := range ps {
			js = append(js, peeked{p.ID, string(p.Body), p.Deliveries, int(p.Priority), p.Until.Milliseconds()})
		}
		return out(js, func() {
			fmt.Fprintf(w, "queue %s: %d %s message(s)\n", name, len(ps), *state)
			for _, p := range ps {
				body := p.Body
				if len(body) > 60 {
					body = append(body[:60:60], "..."...)
				}
				fmt.Fprintf(w, "  %s  deliveries %d  priority %d  until %v  %s\n", p.ID, p.Deliveries, p.Priority, p.Until, strconv.Quote(string(body)))
			}
		})
	default:
		q, err := pc.Queue(name, &patterns.QueueOptions{Retention: *retention})
		if err != nil {
			return err
		}
		var moved int
		if sub == "redrive" {
			moved, err = q.Redrive(ctx, ids...)
		} else {
			moved, err = q.PurgeDead(ctx, ids...)
		}
		if err != nil {
			return err
		}
		verb := map[string]string{"redrive": "redriven", "purge": "purged"}[sub]
		return out(map[string]int{verb: moved}, func() {
			fmt.Fprintf(w, "queue %s: %d dead letter(s) %s\n", name, moved, verb)
		})
	}
}
