#!/usr/bin/env bash
# Queue jobs beside asynq: BenchmarkQueueJobs (one redis-server, 1, 8 and 64
# handlers doing no work, ratios within each round), then its medians:
# writes queue_throughput.txt (raw output), queue_throughput.md (table) and
# queue_throughput.png (plot) here, in bench/.
#
#   cd bench && ./queue_throughput.sh [rounds, default 5] [jobs per contender, default 4000]
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-5}
PATTERNS_QUEUE_JOBS=${2:-4000} go test -run '^$' -bench '^BenchmarkQueueJobs$' -benchtime "${rounds}x" . | tee queue_throughput.txt
go run ./cmd/queueplot -o queue_throughput.png < queue_throughput.txt > queue_throughput.md
cat queue_throughput.md
