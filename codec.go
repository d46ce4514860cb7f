package patterns

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec turns values into bytes and back; it must be safe for concurrent
// use. Unmarshal may receive a read-only view of bytes the library holds
// (a Cache passes its entries without a copy): it must neither modify data
// nor keep it, or any part of it, after it returns; copy what the value
// keeps.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec, encoding/json.
var JSON Codec = jsonCodec{}

// Msgpack is a Codec using github.com/vmihailenco/msgpack/v5: smaller and
// faster than JSON for most values.
var Msgpack Codec = msgpackCodec{}

type jsonCodec struct{}

// Marshal encodes v with encoding/json.
func (jsonCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes data with encoding/json.
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

type msgpackCodec struct{}

// Marshal encodes v with msgpack.
func (msgpackCodec) Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

// readers are reused by msgpackCodec.Unmarshal: msgpack.Unmarshal makes a
// new bytes.Reader on every call.
var readers = sync.Pool{New: func() any { return new(bytes.Reader) }}

// Unmarshal decodes data with msgpack, reusing readers and decoders.
func (msgpackCodec) Unmarshal(data []byte, v any) error {
	r := readers.Get().(*bytes.Reader)
	r.Reset(data)
	dec := msgpack.GetDecoder()
	dec.UsePreallocateValues(true)
	dec.Reset(r)
	err := dec.Decode(v)
	msgpack.PutDecoder(dec)
	r.Reset(nil)
	readers.Put(r)
	return err
}
