package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"sync"
)

// KeyType is the algorithm of a generated key.
type KeyType int

// The key types.
const (
	// ECDSA is ECDSA on P-256: the default, cheap to make.
	ECDSA KeyType = iota
	// RSA is RSA-2048: slow to make; tests that only need some RSA key
	// take one from [RSAKey].
	RSA
	// Ed25519 signs deterministically and cheaply.
	Ed25519
)

// String names t.
func (t KeyType) String() string {
	switch t {
	case ECDSA:
		return "ECDSA P-256"
	case RSA:
		return "RSA-2048"
	case Ed25519:
		return "Ed25519"
	}
	return fmt.Sprintf("KeyType(%d)", int(t))
}

// NewKey makes a fresh key of type t.
func NewKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case ECDSA:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA:
		return rsa.GenerateKey(rand.Reader, 2048)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("testpki: unknown key type %d", int(t))
}

// rsaPoolSize is how many distinct keys [RSAKey] hands out.
const rsaPoolSize = 8

var rsaPool [rsaPoolSize]func() *rsa.PrivateKey

func init() {
	for i := range rsaPool {
		rsaPool[i] = sync.OnceValue(func() *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic("testpki: " + err.Error()) // crypto/rand does not fail
			}
			return k
		})
	}
}

// RSAKey returns one of a few process-wide RSA-2048 keys, made on first
// use: key i and key i+8 are the same. Generating an RSA key per
// certificate would make tests slow for nothing: what they compare is
// certificates, not keys.
func RSAKey(i int) *rsa.PrivateKey {
	return rsaPool[(i%rsaPoolSize+rsaPoolSize)%rsaPoolSize]()
}

// DeterministicKey derives a key of type t from seed: the same seed gives
// the same key in every process and on every Go version. For synthetic
// test data only (the benchmark's directory, the revocation tests'
// authorities shared between fuzz workers).
//
// ECDSA keys take seed as the private scalar; Ed25519 keys take it as
// their seed. RSA keys are found here rather than by crypto/rsa, whose
// GenerateKey ignores its io.Reader since Go 1.26: 1024-bit odd
// candidates with their two top bits set (so that the modulus has 2048
// bits), drawn from a ChaCha8 stream keyed by seed and tested with
// ProbablyPrime.
func DeterministicKey(t KeyType, seed [32]byte) (crypto.Signer, error) {
	switch t {
	case ECDSA:
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed[:])
		if err != nil {
			return nil, fmt.Errorf("testpki: seed is no P-256 scalar: %w", err)
		}
		return k, nil
	case Ed25519:
		return ed25519.NewKeyFromSeed(seed[:]), nil
	case RSA:
		return deterministicRSAKey(seed)
	}
	return nil, fmt.Errorf("testpki: unknown key type %d", int(t))
}

func deterministicRSAKey(seed [32]byte) (*rsa.PrivateKey, error) {
	rng := mrand.NewChaCha8(seed)
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
		return nil, errors.New("testpki: equal primes") // 2^-1000: never
	}
	n := new(big.Int).Mul(p, q)
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	d := new(big.Int).ModInverse(e, phi)
	if d == nil {
		return nil, errors.New("testpki: e is not invertible") // excluded above
	}
	k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: int(e.Int64())}, D: d, Primes: []*big.Int{p, q}}
	k.Precompute()
	if err := k.Validate(); err != nil {
		return nil, err
	}
	return k, nil
}
