// Package keyfile writes the private keys presenced makes for itself (the
// development token issuer's, the validation-token signer's) so that no
// reader ever sees one half written: not another process starting on the
// same data directory at the same moment, and not a restart after a crash.
package keyfile

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CreatePEM writes key, a private key, to file as a PEM "PRIVATE KEY" block
// (PKCS #8), creating file's directory (mode 0700) if needed. Like WriteNew
// it fails with an error matching fs.ErrExist when file already exists.
func CreatePEM(file string, key any) error {
	data, err := EncodePEM(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("creating the key's directory: %w", err)
	}
	return WriteNew(file, data)
}

// EncodePEM returns key, a private key, as a PEM "PRIVATE KEY" block
// (PKCS #8): the bytes CreatePEM writes, for keys kept elsewhere than in a
// file (shared by several nodes through their store).
func EncodePEM(key any) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteNew writes data to file with mode 0600, failing with an error that
// matches fs.ErrExist when file already exists (another process made it
// first: read that one). It writes a temporary file in the same directory
// and hard-links it into place, so file appears whole or not at all; where
// the file system has no hard links it writes file directly.
func WriteNew(file string, data []byte) error {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, ".key-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, data); err != nil {
		return err
	}
	err = os.Link(tmp.Name(), file)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		err = writeExclusive(file, data)
	}
	if err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: make the new name durable
		d.Close()
	}
	return nil
}

// writeExclusive creates file with mode 0600 and writes data to it, failing
// with fs.ErrExist when file exists.
func writeExclusive(file string, data []byte) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := writeSynced(f, data); err != nil {
		os.Remove(file)
		return err
	}
	return nil
}

// writeSynced writes data to f, syncs it to disk and closes it, returning
// the first error.
func writeSynced(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
