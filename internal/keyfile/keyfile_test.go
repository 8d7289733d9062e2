package keyfile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestWriteNewOneWinner has writers race for one file: exactly one
// succeeds, the others get fs.ErrExist, the file holds the winner's whole
// data with mode 0600, and no temporary file is left behind.
func TestWriteNewOneWinner(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key.pem")
	datas := make([][]byte, 8)
	errs := make([]error, len(datas))
	var wg sync.WaitGroup
	for i := range datas {
		datas[i] = bytes.Repeat([]byte{byte('a' + i)}, 64<<10)
		wg.Go(func() { errs[i] = WriteNew(file, datas[i]) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fs.ErrExist):
			t.Fatalf("writer %d: %v, want fs.ErrExist", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer succeeded")
	}
	got, err := os.ReadFile(file)
	if err != nil || !bytes.Equal(got, datas[winner]) {
		t.Fatalf("file holds %d bytes (err %v), not the winner's", len(got), err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries in the directory, want only the file", len(ents))
	}
}

// TestCreatePEM writes a key into a directory that does not exist yet and
// reads it back; a second CreatePEM of the same file is fs.ErrExist.
func TestCreatePEM(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "new", "dir", "key.pem")
	if err := CreatePEM(file, key); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("not a PEM PRIVATE KEY block: %q", data)
	}
	back, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil || !key.Equal(back) {
		t.Fatalf("read back %v (err %v), not the key written", back, err)
	}
	if err := CreatePEM(file, key); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CreatePEM: %v, want fs.ErrExist", err)
	}
}
