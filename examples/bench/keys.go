package main

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
)

// seedBytes derives 32 bytes from the run's seed, a label and numbers: the
// seed of every pseudo-random choice the generator makes.
func seedBytes(seed uint64, label string, n ...uint64) [32]byte {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(label))
	for _, x := range n {
		binary.BigEndian.PutUint64(b[:], x)
		h.Write(b[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// newRand returns a ChaCha8 generator for the seed, label and numbers.
func newRand(seed uint64, label string, n ...uint64) *rand.Rand {
	return rand.New(rand.NewChaCha8(seedBytes(seed, label, n...)))
}
