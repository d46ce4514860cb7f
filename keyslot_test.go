package patterns

import "testing"

// crc16 is the CRC16-XMODEM (polynomial 0x1021) that Redis Cluster hashes
// keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// keySlot returns the Redis Cluster slot of key: the CRC16 of its hash tag
// (see hashTag) modulo 16384.
func keySlot(key string) int { return int(crc16(hashTag(key)) % 16384) }

func TestKeySlotVectors(t *testing.T) {
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16 check value = %#x, want 0x31c3", got)
	}
	// Slots as CLUSTER KEYSLOT of Redis 7 gives them: a tag holds the key's
	// slot; an empty first tag makes the whole key count.
	for key, want := range map[string]int{"foo": 12182, "user1000": 3443, "{user1000}.following": 3443, "a{}b": 13694, "{}{x}": 3257, "x{a}{b}": 15495} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
	if hashTag("a{}b") != "a{}b" || hashTag("{}{x}") != "{}{x}" || hashTag("x{a}{b}") != "a" {
		t.Error("hashTag does not follow the cluster's rule")
	}
}
