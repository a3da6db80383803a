package retry

import (
	"context"
	"errors"
	"net"
	"testing"
)

// TestUnreachable: a refused dial is unreachable; a timeout or any other
// error is not.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := net.Dial("tcp", addr)
	if refused == nil || !Unreachable(refused) {
		t.Errorf("Unreachable(%v) = false, want true", refused)
	}
	if Unreachable(errors.New("connection refused")) || Unreachable(context.DeadlineExceeded) || Unreachable(nil) {
		t.Error("a text, a deadline or nil counted as unreachable")
	}
}
