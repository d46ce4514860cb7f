package bench

import (
	"encoding/binary"
	"fmt"
	"math"
)

// TokenBucketFloor returns the packed argument of rl_token_bucket that the
// redis-benchmark floors send (BenchmarkThroughputRatios and throughput.sh,
// through cmd/tbfloorarg), and the three numbers in it: the cost c, the rate
// and the capacity, as three little-endian float64, as the library packs
// them (ARGV[1], 24 bytes: the script's fast path, nk == 1 and #ARGV == 1).
//
// redis-benchmark takes its arguments from argv, which cannot hold a NUL
// byte, and the library's own values for the benchmarks' limit (2^30 per
// hour: c = 3600000, rate = 2^30, capacity = 2^30 * 3600000) have zero low
// mantissa bytes. So every zero byte is set to 1: c grows by less than 0.01,
// the rate by 0.025 % and the capacity by 2e-9 of itself. The values are
// no longer whole numbers, which the script's arithmetic does not mind, and
// the decision takes the same admitted path as the library's calls: the key
// exists, the bucket is nowhere near empty (it refills 2^30 units a
// millisecond and a call costs 3.6e6), and the bucket is written back with
// KEEPTTL. BenchmarkThroughputRatios checks once that the script admits with
// them. No byte is a newline either, so that a shell's $(...) keeps them all.
func TokenBucketFloor() (c, rate, capacity float64, packed string) {
	var b []byte
	var v [3]float64
	for i, x := range [3]float64{3600000, 1 << 30, (1 << 30) * 3600000} {
		bits := math.Float64bits(x)
		for k := 0; k < 8; k++ {
			if bits>>(8*k)&0xff == 0 {
				bits |= 1 << (8 * k)
			}
		}
		v[i] = math.Float64frombits(bits)
		b = binary.LittleEndian.AppendUint64(b, bits)
	}
	for _, x := range b {
		if x == 0 || x == '\n' {
			panic(fmt.Sprintf("bench: token-bucket floor argument % x holds a NUL or a newline", b))
		}
	}
	return v[0], v[1], v[2], string(b)
}

// PackTokenBucket returns the token bucket's packed argument for one limit
// and a request of one: the cost period_ms, the rate and the capacity
// burst * period_ms, three little-endian float64, as the library's
// tbRecord builds it.
func PackTokenBucket(rate, burst int, periodMs int64) string {
	var b []byte
	for _, x := range [3]float64{float64(periodMs), float64(rate), float64(int64(burst) * periodMs)} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	return string(b)
}
