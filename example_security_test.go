package patterns_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

// aesGCM is a Codec that encrypts what another Codec encodes, with
// AES-GCM: Redis, its snapshots and its replicas hold only ciphertext.
// Each value gets a fresh random nonce, stored before the ciphertext. The
// additional data binds a ciphertext to this use ("products"), so a value
// copied from another store does not decrypt here.
type aesGCM struct {
	inner patterns.Codec
	aead  cipher.AEAD
	ad    []byte
}

func newAESGCM(key []byte, use string, inner patterns.Codec) (*aesGCM, error) {
	block, err := aes.NewCipher(key) // 16, 24 or 32 bytes: AES-128, -192, -256
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &aesGCM{inner: inner, aead: aead, ad: []byte(use)}, nil
}

func (c *aesGCM) Marshal(v any) ([]byte, error) {
	plain, err := c.inner.Marshal(v)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(plain)+c.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return c.aead.Seal(nonce, nonce, plain, c.ad), nil
}

func (c *aesGCM) Unmarshal(data []byte, v any) error {
	n := c.aead.NonceSize()
	if len(data) < n+c.aead.Overhead() {
		return errors.New("aesgcm: value too short")
	}
	// Open into a new slice: data may be the library's own read-only bytes.
	plain, err := c.aead.Open(nil, data[:n], data[n:], c.ad)
	if err != nil {
		return fmt.Errorf("aesgcm: %w", err)
	}
	return c.inner.Unmarshal(plain, v)
}

// Values encrypted at rest: a Cache whose Codec is AES-GCM over JSON. Redis
// holds nonce and ciphertext; the application reads plain values.
func Example_encryptingCodec() {
	ctx := context.Background()
	pc := exampleClient("aesgcm")
	key := make([]byte, 32) // in production: from a secret manager, not from Redis
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	codec, err := newAESGCM(key, "products", patterns.JSON)
	if err != nil {
		panic(err)
	}
	products, err := patterns.NewCache[Product](pc, "products", &patterns.CacheOptions{TTL: time.Minute, Codec: codec})
	if err != nil {
		panic(err)
	}
	defer products.Delete(ctx, "product:7")
	if err := products.Set(ctx, "product:7", Product{ID: 7, Name: "Lamp", Price: 4200}, nil); err != nil {
		panic(err)
	}
	p, ok, err := products.Lookup(ctx, "product:7")
	fmt.Println(p.Name, p.Price, ok, err)

	// Another key cannot read it: authentication fails, nothing is decoded.
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	wrong, _ := newAESGCM(other, "products", patterns.JSON)
	var q Product
	sealed, _ := codec.Marshal(Product{ID: 8})
	fmt.Println(wrong.Unmarshal(sealed, &q) != nil)
	// Output:
	// Lamp 4200 true <nil>
	// true
}
