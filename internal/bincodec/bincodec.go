// Package bincodec writes Go values as compact bytes and reads them back
// exactly: a nil pointer stays nil and a pointer to a zero value stays a
// pointer, a nil slice or map stays nil and an empty one empty. encoding/gob
// loses both distinctions (the configuration's *float64 order 0 and its
// ICMP code 0 would come back absent), encoding/json and CBOR keep them but
// repeat every field name and file name: the loader's cache of a 10k-rule
// configuration read back in 120 ms as JSON, 40 ms as CBOR and 10 ms here
// (docs/performance.md).
//
// Values are walked by reflection: booleans, integers, floats, strings
// (each distinct string written once, then referred to by number),
// pointers, slices, arrays, maps and structs of exported fields, and any
// type with MarshalBinary/UnmarshalBinary or MarshalText/UnmarshalText
// methods. The bytes carry no type description: reading them as another
// type than they were written from is an error at best, so whoever keeps
// them keys them by the program that wrote them. Damaged bytes are an
// error, never a panic or a huge allocation.
package bincodec

import (
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
)

var (
	binaryMarshaler   = reflect.TypeFor[encoding.BinaryMarshaler]()
	binaryUnmarshaler = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	textMarshaler     = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshaler   = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// Marshal encodes v, or what it points to.
func Marshal(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, fmt.Errorf("bincodec: Marshal of a nil %T", v)
		}
		rv = rv.Elem()
	}
	if !rv.IsValid() {
		return nil, errors.New("bincodec: Marshal of nil")
	}
	e := &encoder{strings: map[string]uint64{}}
	if err := e.value(rv); err != nil {
		return nil, err
	}
	return e.buf, nil
}

// Unmarshal decodes data, written by Marshal from a value of the type ptr
// points to (through any number of pointers), into it.
func Unmarshal(data []byte, ptr any) error {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("bincodec: Unmarshal needs a non-nil pointer, not %T", ptr)
	}
	for v = v.Elem(); v.Kind() == reflect.Pointer; v = v.Elem() {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
	}
	d := &decoder{buf: data}
	if err := d.value(v); err != nil {
		return err
	}
	if len(d.buf) != 0 {
		return fmt.Errorf("bincodec: %d bytes left over", len(d.buf))
	}
	return nil
}

type encoder struct {
	buf     []byte
	strings map[string]uint64
}

func (e *encoder) uvarint(x uint64) { e.buf = binary.AppendUvarint(e.buf, x) }

func (e *encoder) bytes(b []byte) {
	e.uvarint(uint64(len(b)))
	e.buf = append(e.buf, b...)
}

// str writes a string's number, followed by the string when it is new.
func (e *encoder) str(s string) {
	if n, ok := e.strings[s]; ok {
		e.uvarint(n)
		return
	}
	n := uint64(len(e.strings))
	e.strings[s] = n
	e.uvarint(n)
	e.bytes([]byte(s))
}

// present writes a nil pointer, slice or map as 0, anything else as 1+n.
func (e *encoder) present(v reflect.Value, n int) {
	if v.IsNil() {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(n) + 1)
}

func (e *encoder) value(v reflect.Value) error { return encFor(v.Type())(e, v) }

type encFn func(*encoder, reflect.Value) error

type decFn func(*decoder, reflect.Value) error

// The functions for each type, made once: finding out how to walk a type
// costs more than walking a value of it.
var (
	mu   sync.Mutex
	encs = map[reflect.Type]*encFn{}
	decs = map[reflect.Type]*decFn{}
)

func encFor(t reflect.Type) encFn {
	mu.Lock()
	defer mu.Unlock()
	return *encLocked(t)
}

func encLocked(t reflect.Type) *encFn { return fnFor(encs, t, makeEnc) }

// fnFor returns the function for t from fns, made by build the first time,
// through a pointer that a type referring to itself fills in later.
func fnFor[F any](fns map[reflect.Type]*F, t reflect.Type, build func(reflect.Type) F) *F {
	if f, ok := fns[t]; ok {
		return f
	}
	f := new(F)
	fns[t] = f
	*f = build(t)
	return f
}

func makeEnc(t reflect.Type) encFn {
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface {
		if t.Implements(binaryMarshaler) || reflect.PointerTo(t).Implements(binaryMarshaler) {
			return func(e *encoder, v reflect.Value) error {
				b, err := addressed(v).Interface().(encoding.BinaryMarshaler).MarshalBinary()
				e.bytes(b)
				return err
			}
		}
		if t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler) {
			return func(e *encoder, v reflect.Value) error {
				b, err := addressed(v).Interface().(encoding.TextMarshaler).MarshalText()
				e.bytes(b)
				return err
			}
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		return func(e *encoder, v reflect.Value) error {
			if v.Bool() {
				e.buf = append(e.buf, 1)
			} else {
				e.buf = append(e.buf, 0)
			}
			return nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(e *encoder, v reflect.Value) error {
			e.buf = binary.AppendVarint(e.buf, v.Int())
			return nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return func(e *encoder, v reflect.Value) error {
			e.uvarint(v.Uint())
			return nil
		}
	case reflect.Float32, reflect.Float64:
		return func(e *encoder, v reflect.Value) error {
			e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v.Float()))
			return nil
		}
	case reflect.String:
		return func(e *encoder, v reflect.Value) error {
			e.str(v.String())
			return nil
		}
	case reflect.Pointer:
		elem := encLocked(t.Elem())
		return func(e *encoder, v reflect.Value) error {
			e.present(v, 0)
			if v.IsNil() {
				return nil
			}
			return (*elem)(e, v.Elem())
		}
	case reflect.Slice:
		if plainBytes(t) {
			return func(e *encoder, v reflect.Value) error {
				e.present(v, v.Len())
				e.buf = append(e.buf, v.Bytes()...)
				return nil
			}
		}
		elem := encLocked(t.Elem())
		return func(e *encoder, v reflect.Value) error {
			e.present(v, v.Len())
			for i := range v.Len() {
				if err := (*elem)(e, v.Index(i)); err != nil {
					return err
				}
			}
			return nil
		}
	case reflect.Array:
		elem := encLocked(t.Elem())
		return func(e *encoder, v reflect.Value) error {
			for i := range v.Len() {
				if err := (*elem)(e, v.Index(i)); err != nil {
					return err
				}
			}
			return nil
		}
	case reflect.Map:
		key, elem := encLocked(t.Key()), encLocked(t.Elem())
		return func(e *encoder, v reflect.Value) error {
			e.present(v, v.Len())
			for it := v.MapRange(); it.Next(); {
				if err := (*key)(e, it.Key()); err != nil {
					return err
				}
				if err := (*elem)(e, it.Value()); err != nil {
					return err
				}
			}
			return nil
		}
	case reflect.Struct:
		fields := make([]*encFn, t.NumField())
		for i := range fields {
			if !t.Field(i).IsExported() {
				return failEnc(fmt.Errorf("bincodec: %s has unexported field %s and no MarshalBinary or MarshalText", t, t.Field(i).Name))
			}
			fields[i] = encLocked(t.Field(i).Type)
		}
		return func(e *encoder, v reflect.Value) error {
			for i, f := range fields {
				if err := (*f)(e, v.Field(i)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return failEnc(fmt.Errorf("bincodec: cannot encode %s", t))
}

// plainBytes reports whether t is a slice of bytes written byte by byte
// (the loader's cache holds whole encoded files).
func plainBytes(t reflect.Type) bool {
	e := t.Elem()
	return e.Kind() == reflect.Uint8 && !reflect.PointerTo(e).Implements(binaryUnmarshaler) && !reflect.PointerTo(e).Implements(textUnmarshaler) &&
		!e.Implements(binaryMarshaler) && !e.Implements(textMarshaler)
}

func failEnc(err error) encFn { return func(*encoder, reflect.Value) error { return err } }

// addressed is v, or a copy that has an address when v has none, so that
// methods of *T apply.
func addressed(v reflect.Value) reflect.Value {
	if v.CanAddr() {
		return v.Addr()
	}
	p := reflect.New(v.Type())
	p.Elem().Set(v)
	return p
}

var (
	errShort = errors.New("bincodec: the data ends early")
	errDepth = fmt.Errorf("bincodec: values nested deeper than %d", maxDepth)
)

// maxDepth bounds the nesting of pointers, slices and maps a decoding
// follows, so that damaged data for a type that refers to itself cannot
// exhaust the stack.
const maxDepth = 1000

type decoder struct {
	buf     []byte
	strings []string
	depth   int
}

func (d *decoder) uvarint() (uint64, error) {
	x, n := binary.Uvarint(d.buf)
	if n <= 0 {
		return 0, errShort
	}
	d.buf = d.buf[n:]
	return x, nil
}

// count reads a length, refusing one the remaining data cannot hold (every
// element takes at least a byte).
func (d *decoder) count() (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(d.buf)) {
		return 0, errShort
	}
	return int(n), nil
}

func (d *decoder) bytes() ([]byte, error) {
	n, err := d.count()
	if err != nil {
		return nil, err
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b, nil
}

func (d *decoder) str() (string, error) {
	n, err := d.uvarint()
	if err != nil {
		return "", err
	}
	switch {
	case n < uint64(len(d.strings)):
		return d.strings[n], nil
	case n > uint64(len(d.strings)):
		return "", fmt.Errorf("bincodec: string %d before string %d", n, len(d.strings))
	}
	b, err := d.bytes()
	if err != nil {
		return "", err
	}
	s := string(b)
	d.strings = append(d.strings, s)
	return s, nil
}

// present reads what encoder.present wrote: -1 for nil, else n.
func (d *decoder) present() (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return -1, nil
	}
	if n-1 > uint64(len(d.buf)) {
		return 0, errShort
	}
	return int(n - 1), nil
}

// value decodes into v, which is settable.
func (d *decoder) value(v reflect.Value) error { return decFor(v.Type())(d, v) }

func decFor(t reflect.Type) decFn {
	mu.Lock()
	defer mu.Unlock()
	return *decLocked(t)
}

func decLocked(t reflect.Type) *decFn { return fnFor(decs, t, makeDec) }

func makeDec(t reflect.Type) decFn {
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface {
		if reflect.PointerTo(t).Implements(binaryUnmarshaler) {
			return func(d *decoder, v reflect.Value) error {
				b, err := d.bytes()
				if err != nil {
					return err
				}
				return v.Addr().Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(b)
			}
		}
		if reflect.PointerTo(t).Implements(textUnmarshaler) {
			return func(d *decoder, v reflect.Value) error {
				b, err := d.bytes()
				if err != nil {
					return err
				}
				return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText(b)
			}
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		return func(d *decoder, v reflect.Value) error {
			if len(d.buf) == 0 || d.buf[0] > 1 {
				return errShort
			}
			v.SetBool(d.buf[0] == 1)
			d.buf = d.buf[1:]
			return nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(d *decoder, v reflect.Value) error {
			x, n := binary.Varint(d.buf)
			if n <= 0 {
				return errShort
			}
			d.buf = d.buf[n:]
			if v.OverflowInt(x) {
				return fmt.Errorf("bincodec: %d overflows %s", x, t)
			}
			v.SetInt(x)
			return nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return func(d *decoder, v reflect.Value) error {
			x, err := d.uvarint()
			if err != nil {
				return err
			}
			if v.OverflowUint(x) {
				return fmt.Errorf("bincodec: %d overflows %s", x, t)
			}
			v.SetUint(x)
			return nil
		}
	case reflect.Float32, reflect.Float64:
		return func(d *decoder, v reflect.Value) error {
			if len(d.buf) < 8 {
				return errShort
			}
			v.SetFloat(math.Float64frombits(binary.LittleEndian.Uint64(d.buf)))
			d.buf = d.buf[8:]
			return nil
		}
	case reflect.String:
		return func(d *decoder, v reflect.Value) error {
			s, err := d.str()
			v.SetString(s)
			return err
		}
	case reflect.Pointer:
		elem := decLocked(t.Elem())
		return func(d *decoder, v reflect.Value) error {
			n, err := d.present()
			if err != nil || n < 0 {
				v.SetZero()
				return err
			}
			if d.depth++; d.depth > maxDepth {
				return errDepth
			}
			defer func() { d.depth-- }()
			p := reflect.New(t.Elem())
			if err := (*elem)(d, p.Elem()); err != nil {
				return err
			}
			v.Set(p)
			return nil
		}
	case reflect.Slice:
		if plainBytes(t) {
			return func(d *decoder, v reflect.Value) error {
				n, err := d.present()
				if err != nil || n < 0 {
					v.SetZero()
					return err
				}
				b := reflect.MakeSlice(t, n, n)
				copy(b.Bytes(), d.buf[:n])
				d.buf = d.buf[n:]
				v.Set(b)
				return nil
			}
		}
		elem := decLocked(t.Elem())
		return func(d *decoder, v reflect.Value) error {
			n, err := d.present()
			if err != nil || n < 0 {
				v.SetZero()
				return err
			}
			if d.depth++; d.depth > maxDepth {
				return errDepth
			}
			defer func() { d.depth-- }()
			s := reflect.MakeSlice(t, n, n)
			for i := range n {
				if err := (*elem)(d, s.Index(i)); err != nil {
					return err
				}
			}
			v.Set(s)
			return nil
		}
	case reflect.Array:
		elem := decLocked(t.Elem())
		return func(d *decoder, v reflect.Value) error {
			for i := range v.Len() {
				if err := (*elem)(d, v.Index(i)); err != nil {
					return err
				}
			}
			return nil
		}
	case reflect.Map:
		key, elem := decLocked(t.Key()), decLocked(t.Elem())
		return func(d *decoder, v reflect.Value) error {
			n, err := d.present()
			if err != nil || n < 0 {
				v.SetZero()
				return err
			}
			if d.depth++; d.depth > maxDepth {
				return errDepth
			}
			defer func() { d.depth-- }()
			m := reflect.MakeMapWithSize(t, n)
			k, e := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
			for range n {
				if err := (*key)(d, k); err != nil {
					return err
				}
				if err := (*elem)(d, e); err != nil {
					return err
				}
				m.SetMapIndex(k, e)
			}
			v.Set(m)
			return nil
		}
	case reflect.Struct:
		fields := make([]*decFn, t.NumField())
		for i := range fields {
			if !t.Field(i).IsExported() {
				return failDec(fmt.Errorf("bincodec: %s has unexported field %s and no UnmarshalBinary or UnmarshalText", t, t.Field(i).Name))
			}
			fields[i] = decLocked(t.Field(i).Type)
		}
		return func(d *decoder, v reflect.Value) error {
			for i, f := range fields {
				if err := (*f)(d, v.Field(i)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return failDec(fmt.Errorf("bincodec: cannot decode %s", t))
}

func failDec(err error) decFn { return func(*decoder, reflect.Value) error { return err } }
