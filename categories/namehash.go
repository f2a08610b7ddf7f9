package categories

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"unsafe"
)

// nameHasher hashes a domain name label by label from the right, so that
// one pass over a host yields the hash of every level (the host and each
// domain above it) at the cost of hashing the host once. The Index needs a
// hash per level for every lookup; hashing each level from scratch cost
// more than the lookups themselves. The keys are random per Index, so the
// lists cannot be crafted to collide.
type nameHasher struct {
	k0, k1, k2 uint64
}

func newNameHasher() nameHasher {
	return nameHasher{k0: rand.Uint64(), k1: rand.Uint64() | 1, k2: rand.Uint64() | 1}
}

// mum is the folded 128-bit product (as in wyhash): one multiplication
// mixes every input bit into the low and the high half.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// label folds the label s[a:b] into h. Only the label's bytes and length
// count: bytes of s around it that a word load reads are shifted out.
func (k *nameHasher) label(h uint64, s string, a, b int) uint64 {
	n := b - a
	p := unsafe.Slice(unsafe.StringData(s), len(s))
	for ; b-a >= 8; a += 8 {
		h = mum(h^binary.LittleEndian.Uint64(p[a:]), k.k1)
	}
	var tail uint64
	switch r := b - a; {
	case r == 0:
	case b >= 8: // the 8 bytes ending with the label's
		tail = binary.LittleEndian.Uint64(p[b-8:]) >> (64 - 8*r)
	case len(s)-a >= 8: // the 8 bytes starting with the label's
		tail = binary.LittleEndian.Uint64(p[a:]) & (1<<(8*r) - 1)
	default: // a name shorter than a word
		for i := b - 1; i >= a; i-- {
			tail = tail<<8 | uint64(p[i])
		}
	}
	return mum(h^(tail<<8|uint64(n&0xff))^k.k0, k.k2)
}

// name hashes a whole name the way a walk over a host that ends with it
// hashes that level.
func (k *nameHasher) name(s string) uint64 {
	h, b := k.k0, len(s)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			h = k.label(h, s, i+1, b)
			b = i
		}
	}
	return k.label(h, s, 0, b)
}

// dots has a '.' in every byte, for finding them a word at a time.
const dots = lsb * '.'

// labelStart returns where the label that ends at end starts in p: just
// after the last '.' before end, or 0. It reads a word at a time, back from
// end, which for most labels is one read.
func labelStart(p []byte, end int) int {
	for end >= 8 {
		if m := dotBytes(binary.LittleEndian.Uint64(p[end-8:])); m != 0 {
			return end - 8 + bits.Len64(m)>>3
		}
		end -= 8
	}
	if len(p) >= 8 && end > 0 {
		// The first word of a longer name, with the bytes from end on
		// made to differ from '.'.
		w := binary.LittleEndian.Uint64(p)
		m := dotBytes(w) & (1<<(8*end) - 1)
		return bits.Len64(m) >> 3
	}
	for i := end - 1; i >= 0; i-- {
		if p[i] == '.' {
			return i + 1
		}
	}
	return 0
}

// dotBytes has the top bit set of exactly the bytes of w that are '.'
// (exact, unlike the classic zero-byte test, whose borrow can flag a byte
// above a match).
func dotBytes(w uint64) uint64 {
	x := w ^ dots
	return ^(((x &^ msb) + ^uint64(msb)) | x) & msb
}
