package ruleset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// A set's binary form, for records that keep a table's sets (the verified
// record's base, read by the next plan). A set of 100,000 networks is
// 200,000 keys: as gob they cost ~14 ms to write and ~16 ms to read, one
// string each. Here a set whose keys all have one length and whose
// elements carry no verdict writes its keys as one block, and reads back
// with every key a slice of one string.
//
//	version 1
//	name, type, comment, owner    uvarint length + bytes each
//	flags                         bit 0 interval, bit 1 map, bit 2 block
//	n                             uvarint element count
//	block: k, then n×(From To)    uvarint key length, n·2k bytes
//	else n × (From, To, verdict)  strings; verdict: 0, or 1 + kind, chain, map, key
const setCodecVersion = 1

const (
	setInterval = 1 << iota
	setMap
	setBlock
)

// MarshalBinary writes the set in its binary form.
func (s *Set) MarshalBinary() ([]byte, error) {
	b := []byte{setCodecVersion}
	for _, str := range []string{s.Name, string(s.Type), s.Comment, s.Owner} {
		b = appendString(b, str)
	}
	k, block := s.blockKeyLen()
	flags := byte(0)
	if s.Interval {
		flags |= setInterval
	}
	if s.Map {
		flags |= setMap
	}
	if block {
		flags |= setBlock
	}
	b = binary.AppendUvarint(append(b, flags), uint64(len(s.Elements)))
	if block {
		b = binary.AppendUvarint(b, uint64(k))
		b = slices.Grow(b, 2*k*len(s.Elements))
		for _, e := range s.Elements {
			b = append(append(b, e.From...), e.To...)
		}
		return b, nil
	}
	for _, e := range s.Elements {
		b = appendString(appendString(b, e.From), e.To)
		if e.Verdict == nil {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		for _, str := range []string{string(e.Verdict.Kind), e.Verdict.Chain, e.Verdict.Map, string(e.Verdict.Key)} {
			b = appendString(b, str)
		}
	}
	return b, nil
}

// blockKeyLen is the key length of a set that can be written as a block:
// one whose keys all have one length, not zero (the reader refuses a block
// of empty keys, whose size cannot bound the count), and no verdicts.
func (s *Set) blockKeyLen() (int, bool) {
	if len(s.Elements) == 0 || len(s.Elements[0].From) == 0 {
		return 0, false
	}
	k := len(s.Elements[0].From)
	for _, e := range s.Elements {
		if len(e.From) != k || len(e.To) != k || e.Verdict != nil {
			return 0, false
		}
	}
	return k, true
}

// UnmarshalBinary reads a set written by MarshalBinary. Damaged bytes are
// an error, never a panic or a huge allocation.
func (s *Set) UnmarshalBinary(data []byte) error {
	r := setReader{b: data}
	if v := r.byte(); v != setCodecVersion {
		return fmt.Errorf("set: binary form version %d, want %d", v, setCodecVersion)
	}
	var typ string
	for _, dst := range []*string{&s.Name, &typ, &s.Comment, &s.Owner} {
		*dst = r.string()
	}
	s.Type = SetType(typ)
	flags := r.byte()
	s.Interval, s.Map = flags&setInterval != 0, flags&setMap != 0
	n := r.count(1) // an element takes at least a byte
	s.Elements = nil
	if n > 0 {
		s.Elements = make([]Element, n)
	}
	if flags&setBlock != 0 {
		k := r.count(1)
		if k == 0 || n > len(r.b)/(2*k) {
			r.fail()
		}
		if r.err != nil {
			return r.err
		}
		all := string(r.take(2 * k * n)) // one allocation for every key
		for i := range s.Elements {
			s.Elements[i] = Element{From: all[2*i*k : (2*i+1)*k], To: all[(2*i+1)*k : (2*i+2)*k]}
		}
		return r.done()
	}
	for i := range s.Elements {
		e := &s.Elements[i]
		e.From, e.To = r.string(), r.string()
		if r.byte() == 1 {
			e.Verdict = &Verdict{Kind: VerdictKind(r.string()), Chain: r.string(), Map: r.string(), Key: IfDir(r.string())}
		}
	}
	return r.done()
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// setReader reads a set's binary form; the first problem sticks.
type setReader struct {
	b   []byte
	err error
}

var errSetDamaged = errors.New("set: damaged binary form")

func (r *setReader) fail() {
	if r.err == nil {
		r.err = errSetDamaged
	}
	r.b = nil
}

func (r *setReader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// count reads a uvarint that counts things of at least min bytes each
// still to come, refusing one the rest of the data cannot hold.
func (r *setReader) count(min int) int {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > uint64(len(r.b)-n)/uint64(min) {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

func (r *setReader) take(n int) []byte {
	if n > len(r.b) {
		r.fail()
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *setReader) string() string { return string(r.take(r.count(1))) }

func (r *setReader) done() error {
	if r.err == nil && len(r.b) > 0 {
		return fmt.Errorf("set: %d bytes after the binary form", len(r.b))
	}
	return r.err
}
