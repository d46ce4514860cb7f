package patterns

import (
	"context"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// allTimeBoard marks the all-time board's keys as the documented exception
// to the TTL rule, and the other one: a scheduler's schedules.
func allTimeBoard(key string) bool {
	return strings.HasSuffix(key, "}:s") || strings.HasSuffix(key, "}:r") || strings.HasSuffix(key, "}:h") || schedLongLived(key)
}

func TestBoard(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb, allTimeBoard)
		b, err := c.Board("game", &BoardOptions{Daily: time.Hour, Weekly: time.Hour, Monthly: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		submit := func(m string, s float64) BoardEntry {
			t.Helper()
			e, err := b.Submit(ctx, m, s)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		// Ties: alice reaches 50 before bob; carol beats both; dave is behind.
		submit("alice", 50)
		time.Sleep(2 * time.Millisecond)
		submit("bob", 50)
		submit("carol", 70)
		submit("dave", 10)
		if e := submit("bob", 40); e.Score != 50 || e.Rank != 3 {
			t.Fatalf("KeepBest with a worse score: %+v", e)
		}
		top, err := b.Top(ctx, 10, RankOrdinal)
		if err != nil {
			t.Fatal(err)
		}
		want := []BoardEntry{{"carol", 70, 1}, {"alice", 50, 2}, {"bob", 50, 3}, {"dave", 10, 4}}
		if !equalEntries(top, want) {
			t.Fatalf("Top ordinal = %v, want %v", top, want)
		}
		comp, _ := b.Top(ctx, 10, RankCompetition)
		if ranks(comp) != "1 2 2 4" {
			t.Fatalf("competition ranks %s", ranks(comp))
		}
		dense, _ := b.Top(ctx, 10, RankDense)
		if ranks(dense) != "1 2 2 3" {
			t.Fatalf("dense ranks %s", ranks(dense))
		}
		// Bob improves: he now reached 60 later than nobody: rank 2.
		if e := submit("bob", 60); e.Rank != 2 || e.Score != 60 {
			t.Fatalf("bob 60: %+v", e)
		}
		if e, err := b.Rank(ctx, "alice", RankDense); err != nil || e.Rank != 3 || e.Score != 50 {
			t.Fatalf("alice: %+v %v", e, err)
		}
		if _, err := b.Rank(ctx, "nobody", RankOrdinal); !errors.Is(err, ErrNotOnBoard) {
			t.Fatalf("nobody: %v", err)
		}
		page2, _ := b.Page(ctx, 2, 2, RankOrdinal)
		if !equalEntries(page2, []BoardEntry{{"alice", 50, 3}, {"dave", 10, 4}}) {
			t.Fatalf("page 2: %v", page2)
		}
		around, _ := b.Around(ctx, "bob", 1, RankCompetition)
		if !equalEntries(around, []BoardEntry{{"carol", 70, 1}, {"bob", 60, 2}, {"alice", 50, 3}}) {
			t.Fatalf("around bob: %v", around)
		}
		if n, _ := b.Count(ctx); n != 4 {
			t.Fatalf("count %d", n)
		}
		// Exact scores at any magnitude.
		big := 1e300 + 12345
		if e := submit("huge", big); e.Score != big || e.Rank != 1 {
			t.Fatalf("huge: %+v", e)
		}
		if e := submit("tiny", 0.1+0.2); e.Score != 0.1+0.2 {
			t.Fatalf("tiny: %+v", e)
		}
		// The windowed boards were written in the same calls.
		now, _ := rdb.Time(ctx).Result()
		for name, view := range map[string]*Board{"day": b.Day(now), "week": b.Week(now), "month": b.Month(now)} {
			top, err := view.Top(ctx, 2, RankOrdinal)
			if err != nil || len(top) != 2 || top[0].Member != "huge" || top[1].Member != "carol" {
				t.Fatalf("%s board: %v %v", name, top, err)
			}
			if ttl, _ := rdb.PTTL(ctx, view.keys[0]).Result(); ttl <= 0 || ttl > time.Hour {
				t.Fatalf("%s board TTL %v", name, ttl)
			}
			if _, err := view.Submit(ctx, "x", 1); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("submit to a view: %v", err)
			}
		}
		roll, err := b.Rollup(ctx, now, 7)
		if err != nil {
			t.Fatal(err)
		}
		if top, _ := roll.Top(ctx, 1, RankOrdinal); len(top) != 1 || top[0].Member != "huge" {
			t.Fatalf("roll-up: %v", top)
		}
		if ttl, _ := rdb.PTTL(ctx, roll.keys[0]).Result(); ttl <= 0 || ttl > time.Minute {
			t.Fatalf("roll-up TTL %v", ttl)
		}
		if err := b.Remove(ctx, "huge"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Rank(ctx, "huge", RankOrdinal); !errors.Is(err, ErrNotOnBoard) {
			t.Fatalf("after Remove: %v", err)
		}
		if e, _ := b.Rank(ctx, "carol", RankOrdinal); e.Rank != 1 {
			t.Fatalf("carol after Remove: %+v", e)
		}
		if err := b.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		if n, _ := b.Count(ctx); n != 0 {
			t.Fatalf("count after Reset %d", n)
		}
	})
}

func TestBoardPolicies(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb, allTimeBoard)
	latest, _ := c.Board("latest", &BoardOptions{Policy: ScoreKeepLatest})
	latest.Submit(ctx, "a", 10)
	if e, _ := latest.Submit(ctx, "a", 3); e.Score != 3 {
		t.Fatalf("KeepLatest: %+v", e)
	}
	golf, _ := c.Board("golf", &BoardOptions{LowerIsBetter: true})
	golf.Submit(ctx, "a", 72)
	golf.Submit(ctx, "b", 68)
	golf.Submit(ctx, "a", 75) // worse: kept at 72
	top, _ := golf.Top(ctx, 2, RankOrdinal)
	if !equalEntries(top, []BoardEntry{{"b", 68, 1}, {"a", 72, 2}}) {
		t.Fatalf("lower is better: %v", top)
	}
	for _, b := range []*Board{latest, golf} {
		_ = b.Reset(ctx)
	}
}

// TestBoardIncrementsExact: 8 goroutines x 10,000 increments; the total is
// exact, and ties are ordered by the time the score was reached.
func TestBoardIncrementsExact(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb, allTimeBoard)
		b, _ := c.Board("clicks", &BoardOptions{Policy: ScoreIncrement, Daily: time.Hour})
		per := 2500 // 20,000 concurrent increments; 80,000 with PATTERNS_SOAK
		if os.Getenv("PATTERNS_SOAK") != "" {
			per = 10000
		}
		if testing.Short() {
			per = 1000
		}
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					if _, err := b.Submit(ctx, "page", 1); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if s, err := b.Score(ctx, "page"); err != nil || s != float64(8*per) {
			t.Fatalf("total %v, %v; want %d", s, err, 8*per)
		}
		now, _ := rdb.Time(ctx).Result()
		if s, _ := b.Day(now).Score(ctx, "page"); s != float64(8*per) {
			t.Fatalf("daily total %v", s)
		}
		// Ties by time reached: x reaches 5 first, then y.
		b.Submit(ctx, "y", 4)
		b.Submit(ctx, "x", 5)
		b.Submit(ctx, "y", 1)
		top, _ := b.Top(ctx, 3, RankOrdinal)
		if top[1].Member != "x" || top[2].Member != "y" || top[1].Score != top[2].Score {
			t.Fatalf("tie order: %v", top)
		}
		_ = b.Reset(ctx)
	})
}

func TestBoardBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb, allTimeBoard)
		b, _ := c.Board("bad", &BoardOptions{Daily: time.Hour})
		rejectsAll(t, rdb, c.prefix, map[string]func() error{
			"NaN":         func() error { _, err := b.Submit(ctx, "m", math.NaN()); return err },
			"+Inf":        func() error { _, err := b.Submit(ctx, "m", math.Inf(1)); return err },
			"-Inf":        func() error { _, err := b.Submit(ctx, "m", math.Inf(-1)); return err },
			"empty":       func() error { _, err := b.Submit(ctx, "", 1); return err },
			"long member": func() error { _, err := b.Submit(ctx, strings.Repeat("m", MaxMemberLen+1), 1); return err },
			"empty board": func() error { _, err := c.Board("", nil); return err },
			"policy":      func() error { _, err := c.Board("x", &BoardOptions{Policy: 9}); return err },
			"retention":   func() error { _, err := c.Board("x", &BoardOptions{Daily: -1}); return err },
			"top 0":       func() error { _, err := b.Top(ctx, 0, RankOrdinal); return err },
			"page 0":      func() error { _, err := b.Page(ctx, 0, 10, RankOrdinal); return err },
			"mode":        func() error { _, err := b.Top(ctx, 1, RankMode(7)); return err },
			"rollup days": func() error { _, err := b.Rollup(ctx, time.Now(), 0); return err },
		})
	})
}

func equalEntries(a, b []BoardEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func ranks(es []BoardEntry) string {
	var s []string
	for _, e := range es {
		s = append(s, strconv.Itoa(e.Rank))
	}
	return strings.Join(s, " ")
}
