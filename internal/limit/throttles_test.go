package limit

import (
	"context"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/redistest"
)

// Throttles reads each target's block and slow-down, exactly, through
// both phases and after, and only the throttled target's.
func TestThrottlesOnAControlledClock(t *testing.T) {
	t.Parallel()
	c := newClock(t)
	ctx := context.Background()
	l := New(c.b.Client, Options{})
	expect := func(what string, want ...Throttle) {
		t.Helper()
		got, err := l.Throttles(ctx, []string{"t1", "t2"})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("%s: got %+v, want %+v", what, got, want)
		}
	}
	none := Throttle{}
	expect("before any 429", none, none)
	if err := l.Throttled(ctx, "t1", 3*time.Second, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	expect("after the 429", Throttle{Blocked: 3 * time.Second, Slowed: 13 * time.Second}, none)
	c.advance(3 * time.Second)
	expect("in the cooldown", Throttle{Slowed: 10 * time.Second}, none)
	c.advance(10*time.Second - time.Microsecond)
	expect("at the end of the cooldown", Throttle{Slowed: time.Microsecond}, none)
	c.advance(time.Microsecond)
	expect("after the cooldown", none, none)
	// Reading changes nothing: requests see the same throttle.
	if err := l.Throttled(ctx, "t2", time.Second, 0); err != nil {
		t.Fatal(err)
	}
	expect("t2 blocked, no cooldown", none, Throttle{Blocked: time.Second, Slowed: time.Second})
	d, err := l.AllowRequest(ctx, "t2", 10, 1)
	c.expect("t2's request after the read", d, err, false, time.Second)
}

// On a real Redis the times are the server's: a throttle just recorded
// reads as at most its block and slow-down, and more than none.
func TestThrottles(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		l := New(b.Client, Options{})
		if err := l.Throttled(ctx, "t1", time.Hour, time.Hour); err != nil {
			t.Fatal(err)
		}
		got, err := l.Throttles(ctx, []string{"t1", "t2"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("%d throttles for 2 targets", len(got))
		}
		if th := got[0]; th.Blocked <= 59*time.Minute || th.Blocked > time.Hour || th.Slowed <= 119*time.Minute || th.Slowed > 2*time.Hour {
			t.Errorf("t1: %+v, want a block of just under 1h and a slow-down of just under 2h", th)
		}
		if got[1] != (Throttle{}) {
			t.Errorf("t2, never throttled: %+v", got[1])
		}
		if got, err := l.Throttles(ctx, nil); err != nil || len(got) != 0 {
			t.Errorf("no targets: %v %v", got, err)
		}
	})
}
