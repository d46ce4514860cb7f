#!/usr/bin/env bash
# Throughput of the hot operations, coalescing off and on, beside the peers
# and the floors, in one run, then the ratios between them within rounds
# (BenchmarkThroughputRatios): writes throughput.txt (raw output),
# throughput.md (table) and throughput.png (plot) here, in bench/.
#
#   cd bench && ./throughput.sh [benchtime, default 3000x]
set -euo pipefail
cd "$(dirname "$0")"
benchtime=${1:-3000x}
port=$((20000 + RANDOM % 20000))
redis-server --port "$port" --save '' --appendonly no --daemonize no >/dev/null &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
sha=$(redis-cli -p "$port" script load 'return 1')
{
	go test -run '^$' -bench '^BenchmarkThroughput$' -benchtime "$benchtime" .
	# The pipelined floor: the same script, 16 in flight on each of 64
	# connections.
	rps=$(redis-benchmark -p "$port" -P 16 -c 64 -n 400000 -q evalsha "$sha" 1 k | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
	echo "redis-benchmark -P 16 -c 64 evalsha return 1: $rps ops/s"
	# What the server decides when token-bucket calls arrive pipelined: the
	# limiter's script, its limit (the benchmark's: 2^30 per hour) over
	# 1,000 random ids, keys of the limiter's shape, its argument packed as
	# the library packs it (three little-endian doubles), with no NUL byte
	# (argv cannot hold one): bench.TokenBucketFloor, printed by
	# cmd/tbfloorarg, which BenchmarkThroughputRatios sends too.
	tb=$(redis-cli -p "$port" script load "$(cat ../scripts/rl_token_bucket.lua)")
	arg=$(go run ./cmd/tbfloorarg 2>/dev/null)
	go run ./cmd/tbfloorarg 2>&1 >/dev/null # its values, into throughput.txt
	rps=$(redis-benchmark -p "$port" -P 16 -c 64 -n 400000 -r 1000 -q evalsha "$tb" 1 \
		'tp-rb:rl:{user:__rand_int__}:tp:tb:1073741824:3600000:1073741824' "$arg" |
		tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
	echo "redis-benchmark -P 16 -c 64 evalsha token bucket, packed: $rps ops/s"
	# Ratios within rounds, at 64 goroutines: every contender once a round,
	# medians of 5 rounds (a server of its own).
	go test -run '^$' -bench '^BenchmarkThroughputRatios$' -benchtime 5x .
} | tee throughput.txt
go run ./cmd/throughputplot -o throughput.png < throughput.txt > throughput.md
cat throughput.md
# The queue's jobs beside asynq: queue_throughput.{txt,md,png}.
./queue_throughput.sh
