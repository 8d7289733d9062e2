package filestore

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkSync measures what one durable append costs the disk under the
// data directory, by the kind of sync (issue #10's question: would
// fdatasync on preallocated segments shorten a commit?). Each op writes a
// 600-byte record (a typical batch at low concurrency) and syncs it:
//
//   - append-fsync: what the store does (an O_APPEND segment, fsync);
//
//   - append-fdatasync: the same with fdatasync, which still commits the
//     growing file size;
//
//   - prealloc-fdatasync: into a segment whose blocks were written (zeros)
//     and synced beforehand, so that fdatasync has no metadata to commit.
//
//     go test -run '^$' -bench BenchmarkSync -benchtime 3000x ./filestore/
func BenchmarkSync(b *testing.B) {
	const preallocated = 8 << 20 // written over and over: never grown
	record := make([]byte, 600)
	for _, kind := range []string{"append-fsync", "append-fdatasync", "prealloc-fdatasync"} {
		b.Run(kind, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "segment")
			flags := os.O_CREATE | os.O_WRONLY
			if kind != "prealloc-fdatasync" {
				flags |= os.O_APPEND
			}
			f, err := os.OpenFile(path, flags, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if kind == "prealloc-fdatasync" {
				zeros := make([]byte, 1<<20)
				for off := int64(0); off < preallocated; off += int64(len(zeros)) {
					if _, err := f.WriteAt(zeros, off); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				switch kind {
				case "append-fsync":
					_, err = f.Write(record)
					if err == nil {
						err = f.Sync()
					}
				case "append-fdatasync":
					_, err = f.Write(record)
					if err == nil {
						err = syscall.Fdatasync(int(f.Fd()))
					}
				default:
					_, err = f.WriteAt(record, int64(i)*int64(len(record))%(preallocated-int64(len(record))))
					if err == nil {
						err = syscall.Fdatasync(int(f.Fd()))
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
