package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/redispatterns/patterns"
)

const queueUsage = `usage: patterns queue stats|peek|redrive|purge|result|workers|groups|schedules [flags] NAME [ID...]
  stats NAME            counts, the age of the oldest due message, paused or not
  workers NAME          the live workers (Queue.Work) and the messages each runs
  peek [-state S] [-n N] NAME
                        up to N messages (ready, inflight or dead) without leasing them
  redrive NAME [ID...]  dead letters back to the consumers, deliveries reset (all without ids)
  purge NAME ID...      delete dead letters; purge -all NAME deletes every one
  result NAME ID...     each message's state; its result and deliveries once finished
  groups [-n N] NAME    up to N groups with ready messages: ready, in flight, next turn
  schedules NAME        the schedules that enqueue to it (Scheduler): next and last tick, counts
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
	case "stats", "peek", "redrive", "purge", "result", "workers", "groups", "schedules":
	default:
		fmt.Fprint(w, queueUsage)
		return fmt.Errorf("queue: unknown subcommand %q", sub)
	}
	if len(rest) == 0 {
		return fmt.Errorf("queue %s: no queue NAME", sub)
	}
	name, ids := rest[0], rest[1:]
	if len(ids) > 0 && sub != "redrive" && sub != "purge" && sub != "result" {
		return fmt.Errorf("queue %s: unexpected arguments %q", sub, ids)
	}
	if sub == "result" && len(ids) == 0 {
		return fmt.Errorf("queue result: give the message ids")
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
	case "result":
		return queueResults(ctx, in, name, ids, w, out)
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
	case "workers":
		ws, err := in.QueueWorkers(ctx, name)
		if err != nil {
			return err
		}
		return out(ws, func() { printQueueWorkers(w, name, ws) })
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
	case "schedules":
		ss, err := in.Schedules(ctx, name)
		if err != nil {
			return err
		}
		return out(schedulesJSON(ss), func() { printSchedules(w, name, ss) })
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

// scheduleJSON is a schedule as `patterns queue schedules -json` prints it.
type scheduleJSON struct {
	ID        string
	Spec      string `json:",omitempty"`
	EveryMs   int64  `json:",omitempty"`
	TimeZone  string `json:",omitempty"`
	Priority  int
	Missed    string
	CatchUpMs int64
	Next      string // RFC 3339, "" when none
	Last      string // RFC 3339, "" when none
	Enqueued  int64
	Skipped   int64
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func missedName(m patterns.ScheduleMissed) string {
	if m == patterns.ScheduleSkip {
		return "skip"
	}
	return "run-once"
}

func schedulesJSON(ss []patterns.ScheduleInfo) []scheduleJSON {
	out := []scheduleJSON{}
	for _, s := range ss {
		out = append(out, scheduleJSON{s.ID, s.Spec, s.Every.Milliseconds(), s.TimeZone, int(s.Priority), missedName(s.Missed),
			s.CatchUp.Milliseconds(), rfc3339(s.Next), rfc3339(s.Last), s.Enqueued, s.Skipped})
	}
	return out
}

// printSchedules prints the schedules of the queue name, one a line.
func printSchedules(w io.Writer, name string, ss []patterns.ScheduleInfo) {
	fmt.Fprintf(w, "queue %s: %d schedule(s)\n", name, len(ss))
	for _, s := range ss {
		when := s.Spec
		if s.Every > 0 {
			when = "every " + s.Every.String()
		}
		if s.TimeZone != "" {
			when += " (" + s.TimeZone + ")"
		}
		next, last := rfc3339(s.Next), rfc3339(s.Last)
		if next == "" {
			next = "none"
		}
		if last == "" {
			last = "none"
		}
		fmt.Fprintf(w, "  %s  %s  next %s  last %s  enqueued %d  skipped %d  missed: %s\n",
			s.ID, strconv.Quote(when), next, last, s.Enqueued, s.Skipped, missedName(s.Missed))
	}
}

// printQueueWorkers writes the live workers of queue name, one line each
// and one more per message it runs.
func printQueueWorkers(w io.Writer, name string, ws []patterns.QueueWorkerInfo) {
	fmt.Fprintf(w, "queue %s: %d live worker(s)\n", name, len(ws))
	for _, x := range ws {
		fmt.Fprintf(w, "  %s  host %s  pid %d  running %d/%d  processed %d  failed %d  expires in %v\n",
			x.ID, x.Host, x.PID, len(x.Running), x.Concurrency, x.Processed, x.Failed, x.Expires.Round(time.Millisecond))
		for _, j := range x.Running {
			fmt.Fprintf(w, "    %s  delivery %d  for %v\n", j.ID, j.Deliveries, j.Running.Round(time.Millisecond))
		}
	}
}

// queueResults is `patterns queue result NAME ID...`: what the Inspector
// knows of each id (an unknown one is reported as not found, not an error).
func queueResults(ctx context.Context, in *patterns.Inspector, name string, ids []string, w io.Writer, out func(any, func()) error) error {
	type result struct {
		ID         string
		State      string
		Deliveries int
		Finished   string `json:",omitempty"`
		Result     string `json:",omitempty"`
	}
	var rs []result
	for _, id := range ids {
		r, err := in.QueueResult(ctx, name, id)
		if errors.Is(err, patterns.ErrQueueNotFound) {
			rs = append(rs, result{ID: id, State: "not found"})
			continue
		}
		if err != nil {
			return err
		}
		x := result{ID: id, State: string(r.State), Deliveries: r.Deliveries, Result: string(r.Result)}
		if !r.Finished.IsZero() {
			x.Finished = r.Finished.UTC().Format(time.RFC3339Nano)
		}
		rs = append(rs, x)
	}
	return out(rs, func() {
		for _, r := range rs {
			fmt.Fprintf(w, "queue %s: %s %s", name, r.ID, r.State)
			if r.State != "not found" {
				fmt.Fprintf(w, "  deliveries %d", r.Deliveries)
			}
			if r.Finished != "" {
				fmt.Fprintf(w, "  finished %s", r.Finished)
			}
			if r.Result != "" {
				fmt.Fprintf(w, "  result %s", strconv.Quote(r.Result))
			}
			fmt.Fprintln(w)
		}
	})
}
