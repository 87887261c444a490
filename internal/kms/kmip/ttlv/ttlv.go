// Package ttlv is KMIP's wire format: Tag-Type-Length-Value items, each a
// 3-byte tag, a 1-byte type, a 4-byte big-endian length and a value padded
// with zeros to a multiple of 8 bytes (KMIP 1.4, section 9.1).
//
// Decode is strict, so that what it accepts is exactly what Encode writes:
// every length must be the one its type fixes, padding must be zero,
// booleans 0 or 1, text valid UTF-8, structures nested at most MaxDepth
// deep and messages at most MaxMessageSize long. Malformed input is an
// error wrapping ErrMalformed, never a panic.
package ttlv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxMessageSize bounds a decoded message. The messages tenantcrypt
// exchanges are a few hundred bytes; PyKMIP's own bound is 1 MiB.
const MaxMessageSize = 1 << 20

// MaxDepth bounds the nesting of structures. KMIP's deepest messages
// (attributes inside payloads inside batch items) are about 6 deep.
const MaxDepth = 16

// HeaderSize is the length of an item's tag, type and length.
const HeaderSize = 8

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed TTLV")

// Tag names a field. KMIP's own tags are 0x42xxxx; 0x54xxxx are extensions.
type Tag uint32

// Type is an item's encoding.
type Type byte

// The TTLV types (KMIP 1.4, 9.1.1.2).
const (
	Structure   Type = 0x01
	Integer     Type = 0x02
	LongInteger Type = 0x03
	BigInteger  Type = 0x04
	Enumeration Type = 0x05
	Boolean     Type = 0x06
	TextString  Type = 0x07
	ByteString  Type = 0x08
	DateTime    Type = 0x09
	Interval    Type = 0x0A
)

func (t Type) String() string {
	switch t {
	case Structure:
		return "Structure"
	case Integer:
		return "Integer"
	case LongInteger:
		return "LongInteger"
	case BigInteger:
		return "BigInteger"
	case Enumeration:
		return "Enumeration"
	case Boolean:
		return "Boolean"
	case TextString:
		return "TextString"
	case ByteString:
		return "ByteString"
	case DateTime:
		return "DateTime"
	case Interval:
		return "Interval"
	}
	return fmt.Sprintf("Type(%#02x)", byte(t))
}

// Item is one TTLV item. Which field holds the value depends on Type:
// Items for Structure; Int for Integer, LongInteger, Enumeration, Boolean
// (0 or 1), DateTime (Unix seconds) and Interval; Bytes for TextString,
// ByteString and BigInteger (two's complement, big-endian, a multiple of 8
// bytes).
type Item struct {
	Tag   Tag
	Type  Type
	Items []Item
	Int   int64
	Bytes []byte
}

// Struct returns a Structure of items.
func Struct(tag Tag, items ...Item) Item { return Item{Tag: tag, Type: Structure, Items: items} }

// Int returns an Integer.
func Int(tag Tag, v int32) Item { return Item{Tag: tag, Type: Integer, Int: int64(v)} }

// Enum returns an Enumeration.
func Enum(tag Tag, v uint32) Item { return Item{Tag: tag, Type: Enumeration, Int: int64(v)} }

// Bool returns a Boolean.
func Bool(tag Tag, v bool) Item {
	var n int64
	if v {
		n = 1
	}
	return Item{Tag: tag, Type: Boolean, Int: n}
}

// Text returns a TextString.
func Text(tag Tag, s string) Item { return Item{Tag: tag, Type: TextString, Bytes: []byte(s)} }

// Bytes returns a ByteString.
func Bytes(tag Tag, b []byte) Item { return Item{Tag: tag, Type: ByteString, Bytes: b} }

// Find returns the first direct child of it with tag, or nil.
func (it *Item) Find(tag Tag) *Item {
	for i := range it.Items {
		if it.Items[i].Tag == tag {
			return &it.Items[i]
		}
	}
	return nil
}

// All returns the direct children of it with tag.
func (it *Item) All(tag Tag) []*Item {
	var out []*Item
	for i := range it.Items {
		if it.Items[i].Tag == tag {
			out = append(out, &it.Items[i])
		}
	}
	return out
}

// Text returns a TextString's value.
func (it *Item) Text() string { return string(it.Bytes) }

// fixedLen is the value length a type fixes, or -1 if it varies.
func fixedLen(t Type) int {
	switch t {
	case Integer, Enumeration, Interval:
		return 4
	case LongInteger, Boolean, DateTime:
		return 8
	}
	return -1
}

func pad(n int) int { return (8 - n%8) % 8 }

// Encode returns it in TTLV. It fails for an item that Decode would refuse:
// an unknown type, a Boolean other than 0 or 1, an Integer out of range,
// a BigInteger whose length is not a multiple of 8, invalid UTF-8, or a
// result longer than MaxMessageSize.
func Encode(it Item) ([]byte, error) {
	b, err := appendItem(nil, it, 1)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("ttlv: message of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	return b, nil
}

func appendItem(b []byte, it Item, depth int) ([]byte, error) {
	if it.Tag>>24 != 0 {
		return nil, fmt.Errorf("ttlv: tag %#x is longer than 3 bytes", uint32(it.Tag))
	}
	if depth > MaxDepth {
		return nil, fmt.Errorf("ttlv: structures nested deeper than %d", MaxDepth)
	}
	start := len(b)
	b = append(b, byte(it.Tag>>16), byte(it.Tag>>8), byte(it.Tag), byte(it.Type), 0, 0, 0, 0)
	var n int
	switch it.Type {
	case Structure:
		for _, child := range it.Items {
			var err error
			if b, err = appendItem(b, child, depth+1); err != nil {
				return nil, err
			}
		}
		n = len(b) - start - HeaderSize
	case Integer, Enumeration, Interval:
		if it.Type == Integer && (it.Int < -1<<31 || it.Int >= 1<<31) ||
			it.Type != Integer && (it.Int < 0 || it.Int >= 1<<32) {
			return nil, fmt.Errorf("ttlv: %v %d out of range", it.Type, it.Int)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(it.Int))
		b = append(b, 0, 0, 0, 0)
		n = 4
	case Boolean:
		if it.Int != 0 && it.Int != 1 {
			return nil, fmt.Errorf("ttlv: Boolean %d is neither 0 nor 1", it.Int)
		}
		fallthrough
	case LongInteger, DateTime:
		b = binary.BigEndian.AppendUint64(b, uint64(it.Int))
		n = 8
	case TextString, ByteString, BigInteger:
		if it.Type == TextString && !utf8.Valid(it.Bytes) {
			return nil, errors.New("ttlv: TextString is not valid UTF-8")
		}
		if it.Type == BigInteger && (len(it.Bytes) == 0 || len(it.Bytes)%8 != 0) {
			return nil, fmt.Errorf("ttlv: BigInteger of %d bytes, want a positive multiple of 8", len(it.Bytes))
		}
		if len(it.Bytes) > MaxMessageSize {
			return nil, fmt.Errorf("ttlv: value of %d bytes exceeds %d", len(it.Bytes), MaxMessageSize)
		}
		b = append(b, it.Bytes...)
		n = len(it.Bytes)
		b = append(b, make([]byte, pad(n))...)
	default:
		return nil, fmt.Errorf("ttlv: unknown type %v", it.Type)
	}
	binary.BigEndian.PutUint32(b[start+4:], uint32(n))
	return b, nil
}

// Decode decodes exactly one item that fills b. See the package comment
// for what it refuses; every error wraps ErrMalformed.
func Decode(b []byte) (Item, error) {
	if len(b) > MaxMessageSize {
		return Item{}, malformed("message of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	it, rest, err := decodeItem(b, 1)
	if err != nil {
		return Item{}, err
	}
	if len(rest) != 0 {
		return Item{}, malformed("%d bytes after the item", len(rest))
	}
	return it, nil
}

// MessageLen reads the total length of the item whose first HeaderSize
// bytes are header, so that a reader knows how much more to read. It
// refuses a header that is not a Structure or announces more than
// MaxMessageSize.
func MessageLen(header []byte) (int, error) {
	if len(header) < HeaderSize {
		return 0, malformed("header of %d bytes, want %d", len(header), HeaderSize)
	}
	if Type(header[3]) != Structure {
		return 0, malformed("message is a %v, want a Structure", Type(header[3]))
	}
	n := binary.BigEndian.Uint32(header[4:8])
	if n%8 != 0 || uint64(n)+HeaderSize > MaxMessageSize {
		return 0, malformed("message length %d", n)
	}
	return int(n) + HeaderSize, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func decodeItem(b []byte, depth int) (Item, []byte, error) {
	if depth > MaxDepth {
		return Item{}, nil, malformed("structures nested deeper than %d", MaxDepth)
	}
	if len(b) < HeaderSize {
		return Item{}, nil, malformed("%d bytes left, too short for an item header", len(b))
	}
	it := Item{Tag: Tag(b[0])<<16 | Tag(b[1])<<8 | Tag(b[2]), Type: Type(b[3])}
	if b[0] != 0x42 && b[0] != 0x54 {
		return Item{}, nil, malformed("tag %#06x is neither a KMIP (0x42) nor an extension (0x54) tag", uint32(it.Tag))
	}
	n := uint64(binary.BigEndian.Uint32(b[4:8]))
	if want := fixedLen(it.Type); want >= 0 && n != uint64(want) {
		return Item{}, nil, malformed("%v %#06x of length %d, want %d", it.Type, uint32(it.Tag), n, want)
	}
	padded := n + uint64(pad(int(n%8)))
	body := b[HeaderSize:]
	if uint64(len(body)) < padded {
		return Item{}, nil, malformed("%v %#06x of length %d overruns the %d bytes left", it.Type, uint32(it.Tag), n, len(body))
	}
	value, padding, rest := body[:n], body[n:padded], body[padded:]
	for _, p := range padding {
		if p != 0 {
			return Item{}, nil, malformed("non-zero padding after %v %#06x", it.Type, uint32(it.Tag))
		}
	}
	switch it.Type {
	case Structure:
		if n%8 != 0 {
			return Item{}, nil, malformed("Structure %#06x of length %d, not a multiple of 8", uint32(it.Tag), n)
		}
		for len(value) > 0 {
			child, more, err := decodeItem(value, depth+1)
			if err != nil {
				return Item{}, nil, err
			}
			it.Items = append(it.Items, child)
			value = more
		}
	case Integer:
		it.Int = int64(int32(binary.BigEndian.Uint32(value)))
	case Enumeration, Interval:
		it.Int = int64(binary.BigEndian.Uint32(value))
	case LongInteger, DateTime:
		it.Int = int64(binary.BigEndian.Uint64(value))
	case Boolean:
		v := binary.BigEndian.Uint64(value)
		if v > 1 {
			return Item{}, nil, malformed("Boolean %#06x is %d, neither 0 nor 1", uint32(it.Tag), v)
		}
		it.Int = int64(v)
	case TextString:
		if !utf8.Valid(value) {
			return Item{}, nil, malformed("TextString %#06x is not valid UTF-8", uint32(it.Tag))
		}
		it.Bytes = append([]byte{}, value...)
	case ByteString:
		it.Bytes = append([]byte{}, value...)
	case BigInteger:
		if n == 0 || n%8 != 0 {
			return Item{}, nil, malformed("BigInteger %#06x of length %d, want a positive multiple of 8", uint32(it.Tag), n)
		}
		it.Bytes = append([]byte{}, value...)
	default:
		return Item{}, nil, malformed("unknown type %#02x at tag %#06x", byte(it.Type), uint32(it.Tag))
	}
	return it, rest, nil
}
