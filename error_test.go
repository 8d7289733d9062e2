package presence

import (
	"errors"
	"io"
	"testing"
)

func TestUnavailableMatchesSentinelAndCause(t *testing.T) {
	err := Unavailable(io.ErrUnexpectedEOF)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("errors.Is(%v, ErrUnavailable) = false", err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("the cause is not reachable through %v", err)
	}
	if ErrorCode(err) != CodeUnavailable {
		t.Fatalf("ErrorCode = %s, want %s", ErrorCode(err), CodeUnavailable)
	}
	if Unavailable(nil) != nil {
		t.Fatal("Unavailable(nil) is not nil")
	}
	if ErrorCode(io.EOF) == CodeUnavailable {
		t.Fatal("an unrelated error has the unavailable code")
	}
}
