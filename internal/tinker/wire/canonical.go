package wire

import (
	"bytes"
	"fmt"
	"math"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Marshal serializes m the way the SDK's Python protobuf does with
// deterministic=True: every field in increasing field-number order, map
// entries sorted by key. protobuf-go's own deterministic mode cannot be used
// for byte comparisons because it writes oneof members (Tensor.dense,
// Chunk.encoded_text) after the other fields "for historic compatibility".
// Both orders decode to the same message; this one reproduces the SDK's
// bytes, so a request can be checked byte for byte against the fixtures.
func Marshal(m proto.Message) ([]byte, error) {
	var e canonicalEncoder
	if err := e.message(m.ProtoReflect()); err != nil {
		return nil, err
	}
	return e.buf, nil
}

type canonicalEncoder struct {
	buf []byte
}

func (e *canonicalEncoder) message(m protoreflect.Message) error {
	fields := m.Descriptor().Fields()
	// Sorted by number so declaration order in the .proto does not matter.
	fds := make([]protoreflect.FieldDescriptor, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		if fd := fields.Get(i); m.Has(fd) {
			fds = append(fds, fd)
		}
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i].Number() < fds[j].Number() })
	for _, fd := range fds {
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			if err := e.mapField(fd, v.Map()); err != nil {
				return err
			}
		case fd.IsList():
			l := v.List()
			if fd.IsPacked() {
				var packed []byte
				for j := 0; j < l.Len(); j++ {
					var err error
					if packed, err = appendScalar(packed, fd.Kind(), l.Get(j)); err != nil {
						return err
					}
				}
				e.buf = protowire.AppendTag(e.buf, fd.Number(), protowire.BytesType)
				e.buf = protowire.AppendBytes(e.buf, packed)
				continue
			}
			for j := 0; j < l.Len(); j++ {
				if err := e.value(fd, l.Get(j)); err != nil {
					return err
				}
			}
		default:
			if err := e.value(fd, v); err != nil {
				return err
			}
		}
	}
	e.buf = append(e.buf, m.GetUnknown()...)
	return nil
}

func (e *canonicalEncoder) value(fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		var sub canonicalEncoder
		if err := sub.message(v.Message()); err != nil {
			return err
		}
		e.buf = protowire.AppendTag(e.buf, fd.Number(), protowire.BytesType)
		e.buf = protowire.AppendBytes(e.buf, sub.buf)
		return nil
	case protoreflect.GroupKind:
		return fmt.Errorf("field %s: groups are not used by this schema", fd.FullName())
	}
	e.buf = protowire.AppendTag(e.buf, fd.Number(), wireType(fd.Kind()))
	var err error
	e.buf, err = appendScalar(e.buf, fd.Kind(), v)
	return err
}

func (e *canonicalEncoder) mapField(fd protoreflect.FieldDescriptor, mp protoreflect.Map) error {
	keys := make([]protoreflect.MapKey, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	sort.Slice(keys, func(i, j int) bool { return lessKey(keys[i], keys[j]) })
	kd, vd := fd.MapKey(), fd.MapValue()
	for _, k := range keys {
		// Entries always carry both key and value, as the C++ and Go
		// runtimes write them.
		var entry canonicalEncoder
		if err := entry.value(kd, k.Value()); err != nil {
			return err
		}
		if err := entry.value(vd, mp.Get(k)); err != nil {
			return err
		}
		e.buf = protowire.AppendTag(e.buf, fd.Number(), protowire.BytesType)
		e.buf = protowire.AppendBytes(e.buf, entry.buf)
	}
	return nil
}

func lessKey(a, b protoreflect.MapKey) bool {
	switch x := a.Interface().(type) {
	case string:
		return x < b.Interface().(string)
	case bool:
		return !x && b.Bool()
	case int32, int64:
		return a.Int() < b.Int()
	case uint32, uint64:
		return a.Uint() < b.Uint()
	}
	return bytes.Compare([]byte(a.String()), []byte(b.String())) < 0
}

func wireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.DoubleKind, protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return protowire.Fixed64Type
	case protoreflect.FloatKind, protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
		return protowire.Fixed32Type
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return protowire.BytesType
	}
	return protowire.VarintType
}

func appendScalar(b []byte, k protoreflect.Kind, v protoreflect.Value) ([]byte, error) {
	switch k {
	case protoreflect.BoolKind:
		return protowire.AppendVarint(b, protowire.EncodeBool(v.Bool())), nil
	case protoreflect.EnumKind:
		return protowire.AppendVarint(b, uint64(int64(v.Enum()))), nil
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		return protowire.AppendVarint(b, uint64(v.Int())), nil
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return protowire.AppendVarint(b, protowire.EncodeZigZag(v.Int())), nil
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		return protowire.AppendVarint(b, v.Uint()), nil
	case protoreflect.Fixed32Kind:
		return protowire.AppendFixed32(b, uint32(v.Uint())), nil
	case protoreflect.Sfixed32Kind:
		return protowire.AppendFixed32(b, uint32(int32(v.Int()))), nil
	case protoreflect.Fixed64Kind:
		return protowire.AppendFixed64(b, v.Uint()), nil
	case protoreflect.Sfixed64Kind:
		return protowire.AppendFixed64(b, uint64(v.Int())), nil
	case protoreflect.FloatKind:
		return protowire.AppendFixed32(b, math.Float32bits(float32(v.Float()))), nil
	case protoreflect.DoubleKind:
		return protowire.AppendFixed64(b, math.Float64bits(v.Float())), nil
	case protoreflect.StringKind:
		return protowire.AppendString(b, v.String()), nil
	case protoreflect.BytesKind:
		return protowire.AppendBytes(b, v.Bytes()), nil
	}
	return b, fmt.Errorf("unsupported field kind %v", k)
}
