package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/redispatterns/patterns"
)

func init() {
	demos = append(demos, demo{"leaderboard", demoLeaderboard}, demo{"counters", demoCounters})
}

func demoLeaderboard(ctx context.Context, pc *patterns.Client, w io.Writer) error {
	b, err := pc.Board("arcade", &patterns.BoardOptions{Daily: 8 * 24 * time.Hour, Weekly: 35 * 24 * time.Hour})
	if err != nil {
		return err
	}
	defer b.Reset(ctx)
	for _, s := range []struct {
		who   string
		score float64
	}{{"ana", 1200}, {"ben", 1500}, {"cho", 1200}, {"dev", 900}, {"ana", 1100}} {
		e, err := b.Submit(ctx, s.who, s.score)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "submit %-3s %5.0f -> best %5.0f, rank %d\n", s.who, s.score, e.Score, e.Rank)
	}
	for _, mode := range []struct {
		name string
		m    patterns.RankMode
	}{{"ordinal (ties by time)", patterns.RankOrdinal}, {"competition", patterns.RankCompetition}, {"dense", patterns.RankDense}} {
		top, err := b.Top(ctx, 4, mode.m)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%-23s", mode.name+":")
		for _, e := range top {
			fmt.Fprintf(w, " %d.%s(%.0f)", e.Rank, e.Member, e.Score)
		}
		fmt.Fprintln(w)
	}
	now, err := pc.Redis().Time(ctx).Result()
	if err != nil {
		return err
	}
	day, _ := b.Day(now).Top(ctx, 1, patterns.RankOrdinal)
	fmt.Fprintf(w, "today's board, written in the same calls: leader %s\n", day[0].Member)
	return b.Day(now).Reset(ctx)
}

func demoCounters(ctx context.Context, pc *patterns.Client, w io.Writer) error {
	u, err := pc.Uniques("homepage", &patterns.UniquesOptions{Retention: time.Hour})
	if err != nil {
		return err
	}
	items := make([]string, 0, 50000)
	for i := 0; i < 50000; i++ {
		items = append(items, fmt.Sprintf("visitor-%d", i%20000))
	}
	if _, err := u.Add(ctx, items...); err != nil {
		return err
	}
	now, err := pc.Redis().Time(ctx).Result()
	if err != nil {
		return err
	}
	n, err := u.Count(ctx, now, 1)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "HyperLogLog: 50000 visits by 20000 visitors -> %d distinct (12 KB at most)\n", n)
	a, err := pc.Activity("app", &patterns.ActivityOptions{Retention: time.Hour})
	if err != nil {
		return err
	}
	for _, id := range []int64{7, 42, 1001, 42} {
		first, err := a.Mark(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "bitmap: user %d active today (first time today: %t)\n", id, first)
	}
	dau, err := a.Count(ctx, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "daily active users: %d\n", dau)
	return nil
}
