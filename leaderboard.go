package patterns

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotOnBoard is returned by Board.Rank when the member has no score.
var ErrNotOnBoard = errors.New("patterns: member not on the board")

var (
	scriptLBSubmit = newScript("lb_submit")
	scriptLBRead   = newScript("lb_read")
	scriptLBRemove = newScript("lb_remove")
)

// ScorePolicy says what a submitted score does to a member's score.
type ScorePolicy int

const (
	// ScoreKeepBest keeps the better of the old and the new score.
	ScoreKeepBest ScorePolicy = iota
	// ScoreKeepLatest replaces the score with the new one.
	ScoreKeepLatest
	// ScoreIncrement adds the submitted value to the score.
	ScoreIncrement
)

// RankMode says how equal scores share ranks.
type RankMode int

const (
	// RankOrdinal ranks 1, 2, 3, 4: among equal scores, who reached the score
	// first ranks higher (roll-ups: by member name).
	RankOrdinal RankMode = iota
	// RankCompetition ranks 1, 2, 2, 4: equal scores share a rank, the next rank
	// skips.
	RankCompetition
	// RankDense ranks 1, 2, 2, 3: equal scores share a rank, none is skipped.
	RankDense
)

var rankModes = [...]string{"ordinal", "competition", "dense"}

// MaxMemberLen is the largest member name a board accepts, in bytes.
const MaxMemberLen = 1024

// BoardOptions configure a Board. A nil *BoardOptions means all defaults.
type BoardOptions struct {
	// Policy is what Submit does with a score.
	//
	// default: ScoreKeepBest
	Policy ScorePolicy

	// LowerIsBetter ranks the lowest score first (race times, golf).
	//
	// default: false (the highest score ranks first)
	LowerIsBetter bool

	// Daily, Weekly and Monthly, when above zero, make Submit also write a
	// board for the current UTC day, ISO week (from Monday) and month, each
	// kept for that long after its last write.
	//
	// default: 0 (no windowed board)
	Daily, Weekly, Monthly time.Duration

	// RollupTTL is how long a roll-up of days stays cached.
	//
	// default: 1 minute
	RollupTTL time.Duration
}

// Board is a leaderboard: a sorted set of members and scores, with ties
// ranked by the time the score was reached, and optional daily, weekly and
// monthly boards written in the same call.
//
// Keys: prefix:lb:{name}:s, :r and :h hold the all-time board. They have no
// TTL: the all-time board is long-lived by nature (the one documented
// exception to the library's rule); Reset deletes it. Windowed boards are
// prefix:lb:{name}:day:YYYYMMDD:*, :week:YYYYMMDD:* (the Monday) and
// :month:YYYYMM:*, each with its retention as TTL. Every key of a board
// shares the hash tag {name}, so a Submit is one script on one slot of a
// Redis Cluster: a very hot board is a hot slot (shard by board name, e.g.
// one board per region, if one slot cannot take the load).
//
// Scores are float64 and exact: the board keeps the submitted value as is;
// ties are ordered by the server time (microseconds) at which each member
// reached its score, encoded in the order of members, not folded into the
// score, so no precision is lost at any magnitude.
type Board struct {
	c    *Client
	name string
	opt  BoardOptions
	view string // "" for the board itself, else the window or roll-up suffix
	keys []string
}

// BoardEntry is a member's place on a board.
type BoardEntry struct {
	// Member is the member's name, as submitted.
	Member string
	// Score is the member's score on the board (or window) read.
	Score float64
	// Rank is 1-based, in the RankMode asked for.
	Rank int
}

// Board returns the leaderboard named name.
func (c *Client) Board(name string, opt *BoardOptions) (*Board, error) {
	if err := checkID("board name", name); err != nil {
		return nil, err
	}
	b := &Board{c: c, name: name}
	if opt != nil {
		b.opt = *opt
	}
	if b.opt.Policy < ScoreKeepBest || b.opt.Policy > ScoreIncrement {
		return nil, invalidf("unknown score policy %d", b.opt.Policy)
	}
	if b.opt.Daily < 0 || b.opt.Weekly < 0 || b.opt.Monthly < 0 || b.opt.RollupTTL < 0 {
		return nil, invalidf("negative retention")
	}
	if b.opt.RollupTTL == 0 {
		b.opt.RollupTTL = time.Minute
	}
	b.keys = b.unitKeys("")
	return b, nil
}

func (b *Board) unitKeys(view string) []string {
	if view == "" {
		return []string{b.c.key("lb", b.name, "s"), b.c.key("lb", b.name, "r"), b.c.key("lb", b.name, "h")}
	}
	return []string{b.c.key("lb", b.name, view, "s"), b.c.key("lb", b.name, view, "r"), b.c.key("lb", b.name, view, "h")}
}

func (b *Board) order() string {
	if b.opt.LowerIsBetter {
		return "asc"
	}
	return "desc"
}

func checkMember(member string) error {
	if member == "" {
		return invalidf("empty member")
	}
	if len(member) > MaxMemberLen {
		return invalidf("member is %d bytes, over %d", len(member), MaxMemberLen)
	}
	return nil
}

func checkScore(score float64) error {
	if math.IsNaN(score) || math.IsInf(score, 0) {
		return invalidf("score %v: want a finite number", score)
	}
	return nil
}

// Submit applies score to member under the board's policy (for ScoreIncrement,
// score is the increment) on the all-time board and on the current windowed
// boards, in one script, and returns the member's all-time score and ordinal
// rank. NaN and infinite scores are ErrInvalidArgument.
func (b *Board) Submit(ctx context.Context, member string, score float64) (e BoardEntry, err error) {
	ctx, done := b.c.observe(ctx, PatternBoard, OpSubmit, b.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if b.view != "" {
		return BoardEntry{}, invalidf("board view %q is read-only", b.view)
	}
	if err := checkMember(member); err != nil {
		return BoardEntry{}, err
	}
	if err := checkScore(score); err != nil {
		return BoardEntry{}, err
	}
	policy := [...]string{"best", "latest", "incr"}[b.opt.Policy]
	// Name the window keys from the local clock; the script checks the
	// buckets against the server's and says which to use when they differ.
	now := time.Now().UTC()
	buckets := map[string]string{"day": now.Format("20060102"), "month": now.Format("200601"),
		"week": now.AddDate(0, 0, -((int(now.Weekday()) + 6) % 7)).Format("20060102")}
	for attempt := 0; attempt < 3; attempt++ {
		keys := append([]string{}, b.keys...)
		args := []any{member, strconv.FormatFloat(score, 'g', -1, 64), policy, b.order(), 0}
		for _, w := range []struct {
			kind string
			ret  time.Duration
		}{{"day", b.opt.Daily}, {"week", b.opt.Weekly}, {"month", b.opt.Monthly}} {
			if w.ret <= 0 {
				continue
			}
			keys = append(keys, b.unitKeys(w.kind+":"+buckets[w.kind])...)
			args = append(args, w.kind, buckets[w.kind], w.ret.Milliseconds())
			args[4] = args[4].(int) + 1
		}
		v, err := scriptLBSubmit.run(ctx, b.c.scr, keys, args...).Slice()
		if err != nil {
			return BoardEntry{}, fmt.Errorf("patterns: board %q: submit: %w", b.name, err)
		}
		if len(v) == 4 && v[0] == "retry" {
			buckets["day"], buckets["week"], buckets["month"] = v[1].(string), v[2].(string), v[3].(string)
			continue
		}
		if len(v) != 3 || v[0] != "ok" {
			return BoardEntry{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
		}
		s, _ := v[1].(string)
		f, err := strconv.ParseFloat(s, 64)
		rank, ok := v[2].(int64)
		if err != nil || !ok {
			return BoardEntry{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
		}
		return BoardEntry{Member: member, Score: f, Rank: int(rank)}, nil
	}
	return BoardEntry{}, fmt.Errorf("patterns: board %q: the server's day kept changing", b.name)
}

// Day returns a read-only view of the daily board of day (its UTC date).
func (b *Board) Day(day time.Time) *Board {
	return b.windowView("day:" + day.UTC().Format("20060102"))
}

// Week returns a read-only view of the weekly board of the ISO week (from
// Monday, UTC) that holds day.
func (b *Board) Week(day time.Time) *Board {
	d := day.UTC()
	return b.windowView("week:" + d.AddDate(0, 0, -((int(d.Weekday())+6)%7)).Format("20060102"))
}

// Month returns a read-only view of the monthly board of month (UTC).
func (b *Board) Month(month time.Time) *Board {
	return b.windowView("month:" + month.UTC().Format("200601"))
}

func (b *Board) windowView(view string) *Board {
	v := *b
	v.view, v.keys = view, b.unitKeys(view)
	return &v
}

// Rollup merges the daily boards of the days days ending with last (UTC
// dates) into a cached board, kept for BoardOptions.RollupTTL, and returns a
// read-only view of it. Scores combine by the policy: the best for
// ScoreKeepBest and ScoreKeepLatest, the sum for ScoreIncrement. Equal
// scores in a roll-up rank by member name. One round trip (ZUNIONSTORE and PEXPIRE in a transaction).
func (b *Board) Rollup(ctx context.Context, last time.Time, days int) (rolled *Board, err error) {
	ctx, done := b.c.observe(ctx, PatternBoard, OpRollup, b.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if days < 1 || days > 366 {
		return nil, invalidf("roll-up of %d days: want 1 to 366", days)
	}
	d := last.UTC()
	view := "roll:" + d.Format("20060102") + ":" + strconv.Itoa(days)
	dest := b.c.key("lb", b.name, view, "s")
	store := &redis.ZStore{Aggregate: "MAX"}
	if b.opt.LowerIsBetter {
		store.Aggregate = "MIN"
	}
	if b.opt.Policy == ScoreIncrement {
		store.Aggregate = "SUM"
	}
	for i := 0; i < days; i++ {
		store.Keys = append(store.Keys, b.c.key("lb", b.name, "day:"+d.AddDate(0, 0, -i).Format("20060102"), "s"))
	}
	pipe := b.c.rdb.TxPipeline()
	pipe.ZUnionStore(ctx, dest, store)
	pipe.PExpire(ctx, dest, b.opt.RollupTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("patterns: board %q: roll-up: %w", b.name, err)
	}
	v := *b
	v.view, v.keys = view, []string{dest}
	return &v, nil
}

func (b *Board) read(ctx context.Context, mode RankMode, args ...any) ([]any, error) {
	if mode < RankOrdinal || mode > RankDense {
		return nil, invalidf("unknown rank mode %d", mode)
	}
	v, err := scriptLBRead.run(ctx, b.c.scr, b.keys, append([]any{b.order(), rankModes[mode]}, args...)...).Slice()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("patterns: board %q: %w", b.name, err)
	}
	return v, nil
}

// Rank returns member's score and rank, or ErrNotOnBoard.
func (b *Board) Rank(ctx context.Context, member string, mode RankMode) (e BoardEntry, err error) {
	ctx, done := b.c.observe(ctx, PatternBoard, OpRank, b.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	return b.rank(ctx, member, mode)
}

func (b *Board) rank(ctx context.Context, member string, mode RankMode) (BoardEntry, error) {
	if err := checkMember(member); err != nil {
		return BoardEntry{}, err
	}
	v, err := b.read(ctx, mode, "member", member)
	if err != nil {
		return BoardEntry{}, err
	}
	if len(v) != 2 {
		return BoardEntry{}, ErrNotOnBoard
	}
	s, _ := v[0].(string)
	f, ferr := strconv.ParseFloat(s, 64)
	r, ok := v[1].(int64)
	if ferr != nil || !ok {
		return BoardEntry{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	return BoardEntry{Member: member, Score: f, Rank: int(r)}, nil
}

// Score returns member's score, or ErrNotOnBoard.
func (b *Board) Score(ctx context.Context, member string) (score float64, err error) {
	ctx, done := b.c.observe(ctx, PatternBoard, OpScore, b.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	e, err := b.rank(ctx, member, RankOrdinal)
	return e.Score, err
}

// Top returns the n best entries.
func (b *Board) Top(ctx context.Context, n int, mode RankMode) (es []BoardEntry, err error) {
	ctx, done := b.c.observe(ctx, PatternBoard, OpTop, b.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if n < 1 {
		return nil, invalidf("top %d: want at least 1", n)
	}
	return b.entries(b.read(ctx, mode, "range", 0, n-1))
}

// Page returns page number page (from 1) of size entries.
func (b *Board) Page(ctx context.Context, page, size int, mode RankMode) (es []BoardEntry, err error) {
	ctx, done := b.c.observe(ctx, PatternBoard, OpPage, b.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if page < 1 || size < 1 || size > 1000 {
		return nil, invalidf("page %d of size %d: want page >= 1 and size 1 to 1000", page, size)
	}
	first := (page - 1) * size
	return b.entries(b.read(ctx, mode, "range", first, first+size-1))
}

// Around returns member's entry with up to n entries above and n below it;
// none when member is not on the board.
func (b *Board) Around(ctx context.Context, member string, n int, mode RankMode) (es []BoardEntry, err error) {
	ctx, done := b.c.observe(ctx, PatternBoard, OpAround, b.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkMember(member); err != nil {
		return nil, err
	}
	if n < 0 || n > 500 {
		return nil, invalidf("around %d: want 0 to 500", n)
	}
	return b.entries(b.read(ctx, mode, "around", member, n))
}

func (b *Board) entries(v []any, err error) ([]BoardEntry, error) {
	if err != nil {
		return nil, err
	}
	out := make([]BoardEntry, 0, len(v)/3)
	for i := 0; i+2 < len(v); i += 3 {
		m, _ := v[i].(string)
		s, _ := v[i+1].(string)
		f, ferr := strconv.ParseFloat(s, 64)
		r, ok := v[i+2].(int64)
		if ferr != nil || !ok {
			return nil, fmt.Errorf("%w: %v", ErrUnexpectedReply, v[i:i+3])
		}
		out = append(out, BoardEntry{Member: m, Score: f, Rank: int(r)})
	}
	return out, nil
}

// Count returns how many members the board holds.
func (b *Board) Count(ctx context.Context) (n int64, err error) {
	ctx, done := b.c.observe(ctx, PatternBoard, OpCount, b.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	n, err = b.c.rdb.ZCard(ctx, b.keys[0]).Result()
	if err != nil {
		return 0, fmt.Errorf("patterns: board %q: %w", b.name, err)
	}
	return n, nil
}

// Remove takes member off the all-time board (windowed boards keep their
// history until they expire). One script.
func (b *Board) Remove(ctx context.Context, member string) (err error) {
	ctx, done := b.c.observe(ctx, PatternBoard, OpRemove, b.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if b.view != "" {
		return invalidf("board view %q is read-only", b.view)
	}
	if err := checkMember(member); err != nil {
		return err
	}
	if err := scriptLBRemove.run(ctx, b.c.scr, b.keys, member).Err(); err != nil {
		return fmt.Errorf("patterns: board %q: %w", b.name, err)
	}
	return nil
}

// Reset deletes the board (for a view: that window or roll-up).
func (b *Board) Reset(ctx context.Context) (err error) {
	ctx, done := b.c.observe(ctx, PatternBoard, OpReset, b.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := b.c.rdb.Del(ctx, b.keys...).Err(); err != nil {
		return fmt.Errorf("patterns: board %q: %w", b.name, err)
	}
	return nil
}
