package patterns_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleBoard_Submit() {
	ctx := context.Background()
	pc := exampleClient("board")
	board, err := pc.Board("weekly-quiz", &patterns.BoardOptions{Policy: patterns.ScoreKeepBest, Daily: 8 * 24 * time.Hour})
	if err != nil {
		panic(err)
	}
	defer board.Reset(ctx)
	board.Submit(ctx, "ana", 80)
	board.Submit(ctx, "ben", 95)
	board.Submit(ctx, "cho", 80) // ties with ana, who got there first
	e, _ := board.Submit(ctx, "ana", 70)
	fmt.Printf("ana keeps her best: %v, rank %d\n", e.Score, e.Rank)

	top, _ := board.Top(ctx, 3, patterns.RankCompetition)
	for _, e := range top {
		fmt.Println(e.Rank, e.Member, e.Score)
	}
	// Output:
	// ana keeps her best: 80, rank 2
	// 1 ben 95
	// 2 ana 80
	// 2 cho 80
}

func ExampleUniques_Add() {
	ctx := context.Background()
	pc := exampleClient("uniques")
	visitors, err := pc.Uniques("homepage", nil) // daily buckets, 35 days kept
	if err != nil {
		panic(err)
	}
	visitors.Add(ctx, "alice", "bob", "alice", "carol")
	n, _ := visitors.Count(ctx, time.Now(), 1)
	fmt.Println("distinct visitors today:", n)
	// Output:
	// distinct visitors today: 3
}
