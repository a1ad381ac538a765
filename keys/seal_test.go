package keys

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
)

func randomSecret(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	s, err := NewSealer(randomSecret(t))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("pkcs8 bytes stand-in")
	sealed, err := s.Seal("kid1", ES256, secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed bytes contain the plaintext")
	}
	again, _ := s.Seal("kid1", ES256, secret)
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of the same key are identical: the nonce is not random")
	}
	got, err := s.Open("kid1", ES256, sealed)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestOpenRefusesWrongKeyBindingOrTampering(t *testing.T) {
	s, _ := NewSealer(randomSecret(t))
	other, _ := NewSealer(randomSecret(t))
	sealed, _ := s.Seal("kid1", ES256, []byte("private"))
	cases := map[string]func() ([]byte, error){
		"other cluster key": func() ([]byte, error) { return other.Open("kid1", ES256, sealed) },
		"other kid":         func() ([]byte, error) { return s.Open("kid2", ES256, sealed) },
		"other alg":         func() ([]byte, error) { return s.Open("kid1", RS256, sealed) },
		"truncated":         func() ([]byte, error) { return s.Open("kid1", ES256, sealed[:len(sealed)-1]) },
		"empty":             func() ([]byte, error) { return s.Open("kid1", ES256, nil) },
	}
	for i := range sealed {
		tampered := bytes.Clone(sealed)
		tampered[i] ^= 0x01
		cases[fmt.Sprintf("bit flipped in byte %d", i)] = func() ([]byte, error) { return s.Open("kid1", ES256, tampered) }
	}
	for name, open := range cases {
		pt, err := open()
		if !errors.Is(err, ErrUnsealable) || pt != nil {
			t.Errorf("%s: Open = %q, %v; want ErrUnsealable", name, pt, err)
		}
	}
}

// TestOpenWithAcceptedKey: during a cluster-key rotation a node whose
// primary key is the new one still opens keys sealed under the old one,
// and seals only under the new one.
func TestOpenWithAcceptedKey(t *testing.T) {
	oldKey, newKey := randomSecret(t), randomSecret(t)
	oldSealer, _ := NewSealer(oldKey)
	sealed, _ := oldSealer.Seal("kid1", EdDSA, []byte("private"))

	rotating, err := NewSealer(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := rotating.Open("kid1", EdDSA, sealed); err != nil || string(pt) != "private" {
		t.Fatalf("accepted key: Open = %q, %v", pt, err)
	}
	resealed, _ := rotating.Seal("kid1", EdDSA, []byte("private"))
	if _, err := oldSealer.Open("kid1", EdDSA, resealed); err == nil {
		t.Fatal("sealed under the accepted key, not the primary one")
	}
	after, _ := NewSealer(newKey)
	if _, err := after.Open("kid1", EdDSA, sealed); !errors.Is(err, ErrUnsealable) {
		t.Fatalf("old key no longer accepted: Open err = %v, want ErrUnsealable", err)
	}
	if _, err := after.Open("kid1", EdDSA, resealed); err != nil {
		t.Fatal(err)
	}
}

func TestNewSealerRefusesShortSecrets(t *testing.T) {
	if _, err := NewSealer(make([]byte, 8)); err == nil {
		t.Error("8-byte primary accepted")
	}
	if _, err := NewSealer(make([]byte, 32), make([]byte, 4)); err == nil {
		t.Error("4-byte accepted key accepted")
	}
}
