package main

import (
	"encoding/binary"
	"math"
	"testing"
)

// TestInspectTokenBucketForms: decodeTokenBucket reads both forms of a token
// bucket's key, E and X (16 bytes) and X alone (8 bytes, earlier versions),
// alike.
func TestInspectTokenBucketForms(t *testing.T) {
	f := func(vs ...float64) string {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return string(b)
	}
	// Rate 10 per 1000 ms, burst 10; PTTL 2000 ms: p*rate = 20000 units, X
	// 17000 leaves d = 3000 units, 3 tokens used, full in 300 ms.
	for _, v := range []string{f(1.8e12, 17000), f(17000)} {
		state := map[string]string{}
		decodeTokenBucket(state, v, 2000, 10, 1000, 10)
		if state["tokens"] != "7 of 10" || state["full_in"] != "300ms" {
			t.Errorf("%d bytes: %v; want 7 of 10, full in 300ms", len(v), state)
		}
	}
}
