package bincodec

import (
	"bytes"
	"errors"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"testing/quick"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

type inner struct {
	Name string
	N    *int
}

type list struct {
	V    uint8
	Next *list
}

// every holds each kind the codec walks, with the distinctions it keeps:
// nil against empty, nil against a pointer to zero.
type every struct {
	B                  bool
	I                  int
	I8                 int8
	I64                int64
	U16                uint16
	U64                uint64
	F                  float64
	F32                float32
	S, Same            string
	P, PZero           *float64
	Slice, SliceEmpty  []string
	Map, MapEmpty      map[string]int
	PSlice, PSliceNone *[]int
	Arr                [3]uint16
	Structs            []inner
	Ptrs               []*inner
	Nested             map[string][]*inner
	Prefix             netip.Prefix
	Addrs              []netip.Addr
	Bytes, BytesEmpty  []byte
	BytesNil           []byte
	Text               text
	TextP              *text
	List               *list
}

// text marshals as text only, in a form of its own ("t:" and the value),
// so that a value written by the walk of a string would not read back.
type text struct{ v string }

func (t text) MarshalText() ([]byte, error) { return []byte("t:" + t.v), nil }
func (t *text) UnmarshalText(b []byte) error {
	v, ok := strings.CutPrefix(string(b), "t:")
	if !ok {
		return errors.New("not a text")
	}
	t.v = v
	return nil
}

func ptr[T any](v T) *T { return &v }

func TestRoundTrip(t *testing.T) {
	in := every{
		B: true, I: -7, I8: math.MinInt8, I64: math.MaxInt64, U16: math.MaxUint16, U64: math.MaxUint64,
		F: -1.5, F32: 0.25, S: "same", Same: "same",
		P: ptr(2.5), PZero: ptr(0.0),
		Slice: []string{"a", "same", "a", ""}, SliceEmpty: []string{},
		Map: map[string]int{"x": 1, "same": 0}, MapEmpty: map[string]int{},
		PSlice: &[]int{}, Arr: [3]uint16{1, 0, 3},
		Structs: []inner{{Name: "n", N: ptr(0)}, {}},
		Ptrs:    []*inner{nil, {Name: "same"}},
		Nested:  map[string][]*inner{"k": {{N: ptr(-1)}}, "nil": nil},
		Prefix:  netip.MustParsePrefix("2001:db8::/32"),
		Addrs:   []netip.Addr{netip.MustParseAddr("10.0.0.1"), {}, netip.MustParseAddr("fe80::1%eth0")},
		Bytes:   []byte{0, 1, 0xff}, BytesEmpty: []byte{},
		Text: text{"abc"}, TextP: &text{},
		List: &list{1, &list{2, &list{}}},
	}
	for _, v := range []every{in, {}} {
		data, err := Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		var out every
		if err := Unmarshal(data, &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(v, out) {
			t.Errorf("round trip changed the value:\n in %+v\nout %+v", v, out)
		}
	}
}

// TestRoundTripRandom: random values of a struct of the plain kinds.
func TestRoundTripRandom(t *testing.T) {
	type plain struct {
		A []map[string][]int16
		B map[int32]*[2]string
		C *struct{ X, Y []byte }
		D []float32
		E map[bool]uint
	}
	f := func(v plain) bool {
		data, err := Marshal(v)
		if err != nil {
			t.Log(err)
			return false
		}
		var out plain
		return Unmarshal(data, &out) == nil && reflect.DeepEqual(v, out)
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 500}); err != nil {
		t.Error(err)
	}
}

func TestStringsOnce(t *testing.T) {
	long := strings.Repeat("x", 100)
	one, _ := Marshal([]string{long})
	many, _ := Marshal([]string{long, long, long, long})
	if len(many)-len(one) != 3 {
		t.Errorf("each repeat of a string should cost one byte: %d bytes for one, %d for four", len(one), len(many))
	}
}

func TestRefused(t *testing.T) {
	type private struct{ x int }
	type iface struct{ V any }
	for _, v := range []any{private{1}, iface{1}, make(chan int), (*every)(nil), nil} {
		if _, err := Marshal(v); err == nil {
			t.Errorf("Marshal(%#v): no error", v)
		}
	}
	var e every
	if err := Unmarshal(nil, e); err == nil {
		t.Error("Unmarshal into a non-pointer: no error")
	}
	var p private
	if err := Unmarshal([]byte{0}, &p); err == nil {
		t.Error("Unmarshal into a struct with an unexported field: no error")
	}
}

// TestDamaged: every truncation and every single-byte change of a valid
// encoding is an error or a value, never a panic; truncations are errors.
func TestDamaged(t *testing.T) {
	in := every{S: "abc", Slice: []string{"abc", "d"}, Map: map[string]int{"k": 1}, P: ptr(1.0),
		Prefix: netip.MustParsePrefix("10.0.0.0/8"), List: &list{1, &list{}}, Text: text{"t"}}
	data, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for n := range data {
		var out every
		if err := Unmarshal(data[:n], &out); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(data))
		}
	}
	for i := range data {
		for _, b := range []byte{0, 1, 0x7f, 0x80, 0xff} {
			d := bytes.Clone(data)
			d[i] = b
			var out every
			_ = Unmarshal(d, &out)
		}
	}
	var out every
	if err := Unmarshal(append(bytes.Clone(data), 0), &out); err == nil {
		t.Error("a byte left over: no error")
	}
}

// TestHugeLength: a length beyond the data allocates nothing.
func TestHugeLength(t *testing.T) {
	var out []uint64
	if err := Unmarshal([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, &out); err == nil {
		t.Error("no error")
	}
	allocs := testing.AllocsPerRun(10, func() { _ = Unmarshal([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, &out) })
	if allocs > 5 {
		t.Errorf("%v allocations for a refused length", allocs)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, v := range []every{{}, {S: "x", Slice: []string{"x"}, Nested: map[string][]*inner{"a": {{}}}, List: &list{}}} {
		data, err := Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v every
		if Unmarshal(data, &v) != nil {
			return
		}
		again, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var w every
		if err := Unmarshal(again, &w); err != nil {
			t.Fatalf("a decoded value does not decode again: %v", err)
		}
		// NaN is not equal to itself (DeepEqual), but it is kept.
		if d := cmp.Diff(v, w, cmpopts.EquateNaNs(), cmp.AllowUnexported(text{}),
			cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Fatalf("a decoded value does not survive another round (-first +second):\n%s", d)
		}
	})
}

// TestDeep: a chain nested beyond maxDepth is refused, not followed.
func TestDeep(t *testing.T) {
	l := &list{}
	for range maxDepth + 10 {
		l = &list{Next: l}
	}
	data, err := Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var out list
	if err := Unmarshal(data, &out); err != errDepth {
		t.Errorf("got %v, want %v", err, errDepth)
	}
}
