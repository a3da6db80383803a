package main

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/big"
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

// deterministicRSAKey derives an RSA-2048 key from seed. crypto/rsa's
// GenerateKey ignores its io.Reader since Go 1.26, so the primes are found
// here: 1024-bit odd candidates with their two top bits set (so that the
// modulus has 2048 bits), drawn from a ChaCha8 stream and tested with
// ProbablyPrime. The keys are for synthetic test data only.
func deterministicRSAKey(seed [32]byte) (*rsa.PrivateKey, error) {
	rng := rand.NewChaCha8(seed)
	e := big.NewInt(65537)
	one := big.NewInt(1)
	prime := func() *big.Int {
		buf := make([]byte, 128)
		for {
			_, _ = rng.Read(buf) // ChaCha8.Read never fails
			buf[0] |= 0xc0
			buf[len(buf)-1] |= 1
			p := new(big.Int).SetBytes(buf)
			// e is prime: gcd(e, p-1) = 1 unless p ≡ 1 (mod e).
			if new(big.Int).Mod(p, e).Cmp(one) == 0 || !p.ProbablyPrime(20) {
				continue
			}
			return p
		}
	}
	p := prime()
	q := prime()
	if p.Cmp(q) == 0 {
		return nil, errors.New("bench: equal primes") // 2^-1000: never
	}
	n := new(big.Int).Mul(p, q)
	pm1 := new(big.Int).Sub(p, one)
	qm1 := new(big.Int).Sub(q, one)
	phi := new(big.Int).Mul(pm1, qm1)
	d := new(big.Int).ModInverse(e, phi)
	if d == nil {
		return nil, errors.New("bench: e is not invertible") // excluded above
	}
	k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: int(e.Int64())}, D: d, Primes: []*big.Int{p, q}}
	k.Precompute()
	if err := k.Validate(); err != nil {
		return nil, err
	}
	return k, nil
}

// deterministicEd25519Key derives an Ed25519 key from seed.
func deterministicEd25519Key(seed [32]byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(seed[:])
}
