package retry

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestAfter(t *testing.T) {
	for in, want := range map[string]float64{"3": 3, "0.25": 0.25, " 1.5 ": 1.5, "0": 0} {
		d, ok := After(in)
		if !ok || d.Seconds() != want {
			t.Errorf("After(%q) = %v, %v", in, d, ok)
		}
	}
	for _, in := range []string{"", "soon", "-1", "NaN", "Inf", "-Inf"} {
		if _, ok := After(in); ok {
			t.Errorf("After(%q) parsed", in)
		}
	}
	if d, ok := After(time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)); !ok || d != 0 {
		t.Errorf("After(a past date) = %v, %v; want 0, true", d, ok)
	}
	if d, ok := After(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); !ok || d < 59*time.Minute || d > time.Hour {
		t.Errorf("After(a date in an hour) = %v, %v", d, ok)
	}
}

func TestBackoff(t *testing.T) {
	base, limit := time.Duration(100), time.Duration(1000)
	for n := 1; n < 70; n++ {
		d := Backoff(base, limit, n)
		want := min(limit, base<<min(n-1, 30))
		if d < want/2 || d > want {
			t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
		}
	}
}

func TestGate(t *testing.T) {
	var g Gate
	if g.Remaining(time.Now()) > 0 {
		t.Fatal("the zero gate is shut")
	}
	g.Hold(time.Now().Add(30 * time.Millisecond))
	g.Hold(time.Now()) // an earlier time does not open it
	start := time.Now()
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 25*time.Millisecond {
		t.Errorf("Wait returned after %v; the gate was shut for 30 ms", waited)
	}
	g.Hold(time.Now().Add(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Wait(ctx); err != context.Canceled {
		t.Errorf("Wait with a cancelled context: %v", err)
	}
}
