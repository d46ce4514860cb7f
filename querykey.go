package patterns

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// QueryKey returns a stable cache key for a query and its parameters: the
// SHA-256 of a canonical JSON encoding (map keys sorted), hex. Equal queries
// with equal parameters give equal keys, and any difference in their JSON
// encoding gives another key. Values that encoding/json encodes alike give
// the same key: 1 and 1.0, or strings that differ only in bytes that are not
// valid UTF-8 (each is encoded as U+FFFD); pass such bytes hex- or
// base64-encoded if they matter.
func QueryKey(query string, params ...any) (string, error) {
	b, err := json.Marshal(append([]any{query}, params...))
	if err != nil {
		return "", invalidf("query parameters: %v", err)
	}
	sum := sha256.Sum256(b)
	return "q:" + hex.EncodeToString(sum[:]), nil
}
