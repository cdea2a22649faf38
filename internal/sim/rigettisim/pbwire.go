package rigettisim

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// pbField is one decoded protobuf field: a varint in v, or the bytes of a
// length-delimited field in b.
type pbField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// pbDecode splits a message into its fields. Groups are refused; fixed
// 32/64-bit fields are kept (as v) so that unknown ones can be skipped, as
// a proto3 server skips unknown fields.
func pbDecode(b []byte) ([]pbField, error) {
	var out []pbField
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		f := pbField{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		default:
			return nil, fmt.Errorf("field %d: wire type %d is not supported", num, typ)
		}
		if n < 0 {
			return nil, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		out = append(out, f)
	}
	return out, nil
}

// wantType checks a known field's wire type.
func (f pbField) wantType(t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("field %d has wire type %d, want %d", f.num, f.typ, t)
	}
	return nil
}

// str reads a proto3 string field (UTF-8 required, as protobuf does).
func (f pbField) str() (string, error) {
	if err := f.wantType(protowire.BytesType); err != nil {
		return "", err
	}
	if !utf8.Valid(f.b) {
		return "", fmt.Errorf("field %d: string is not valid UTF-8", f.num)
	}
	return string(f.b), nil
}

// pbString appends a string field (proto3: omitted when empty).
func pbString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// pbBytes appends a bytes or message field, even when empty (a present
// sub-message).
func pbBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// pbVarint appends a varint field (proto3: omitted when zero unless keep).
func pbVarint(b []byte, num protowire.Number, v uint64, keep bool) []byte {
	if v == 0 && !keep {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}
