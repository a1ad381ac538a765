package keys

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFileName is the dev key file in a node's data directory: the sealing
// secret of a node that runs without a cluster key.
const KeyFileName = "signing-keys.key"

// keyFileSize is the size of a key file: 32 random bytes, nothing else.
const keyFileSize = 32

// LoadOrCreateKeyFile returns the 32-byte secret in path, creating the
// file (mode 0600) with fresh random bytes when it does not exist. An
// existing file that is not a regular file of exactly 32 bytes, or that its
// group or others may access, is refused rather than repaired: either
// would mean the sealed keys were exposed or the secret is not the one
// they were sealed under.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	b, err := readKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	secret := make([]byte, keyFileSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("keys: key file %s: %w", path, err)
	}
	if err := createKeyFile(path, secret); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process created it first
			return readKeyFile(path)
		}
		return nil, err
	}
	return secret, nil
}

func readKeyFile(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("keys: key file: %w", err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("keys: key file %s is not a regular file", path)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("keys: key file %s has mode %04o; group and others must have no access (chmod 600)", path, fi.Mode().Perm())
	case fi.Size() != keyFileSize:
		return nil, fmt.Errorf("keys: key file %s holds %d bytes, want %d", path, fi.Size(), keyFileSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: key file: %w", err)
	}
	defer f.Close()
	b := make([]byte, keyFileSize)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("keys: key file %s: %w", path, err)
	}
	return b, nil
}

// createKeyFile writes secret to a temporary file and links it into place,
// so the key file either does not exist or holds all 32 bytes, and an
// existing one is never overwritten (link fails with fs.ErrExist).
func createKeyFile(path string, secret []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keys: key file directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".signing-keys-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("keys: key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(secret)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keys: write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("keys: key file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the new name survives a crash
		d.Close()
	}
	return nil
}
