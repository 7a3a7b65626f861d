package worker_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/worker"
)

// TestBackoff: the delay before retry n+1 is drawn uniformly below a ceiling
// of base·2^n, capped at max (also where base·2^n overflows), and is never
// shorter than what the server asked for: its Retry-After, and 2 s after a
// 429.
func TestBackoff(t *testing.T) {
	t.Parallel()
	const base, maxDelay = 100 * time.Millisecond, 5 * time.Second
	top := func() float64 { return 1 } // the ceiling itself
	zero := func() float64 { return 0 }
	half := func() float64 { return 0.5 }
	transient := errors.New("connection reset")
	throttled := &hss.APIError{StatusCode: 429, Code: "APIGW.0308"}
	unavailable := func(ra time.Duration) error {
		return fmt.Errorf("creating scan task: %w", &hss.APIError{StatusCode: 503, RetryAfter: ra})
	}

	cases := []struct {
		name   string
		n      int
		err    error
		random func() float64
		want   time.Duration
	}{
		{"first retry: ceiling base", 0, transient, top, base},
		{"doubles", 1, transient, top, 2 * base},
		{"doubles again", 3, transient, top, 8 * base},
		{"last below the cap", 5, transient, top, 32 * base},
		{"capped", 6, transient, top, maxDelay},
		{"capped far out", 40, transient, top, maxDelay},
		{"shift past 62 bits", 62, transient, top, maxDelay},
		{"huge n", 1000, transient, top, maxDelay},
		{"full jitter reaches zero", 3, transient, zero, 0},
		{"uniform: half the ceiling", 3, transient, half, 4 * base},
		{"429: at least 2s", 0, throttled, zero, 2 * time.Second},
		{"429 wrapped: at least 2s", 0, fmt.Errorf("batch: %w", throttled), half, 2 * time.Second},
		{"429: a longer draw stands", 6, throttled, top, maxDelay},
		{"Retry-After is a floor", 0, unavailable(3 * time.Second), top, 3 * time.Second},
		{"Retry-After above the cap", 10, unavailable(time.Minute), top, time.Minute},
		{"Retry-After below the draw", 6, unavailable(time.Second), top, maxDelay},
		{"no Retry-After", 0, unavailable(0), zero, 0},
	}
	for _, c := range cases {
		if got := worker.Backoff(c.n, c.err, base, maxDelay, c.random); got != c.want {
			t.Errorf("%s: Backoff(%d) = %s, want %s", c.name, c.n, got, c.want)
		}
	}

	// Drawn with a real source: within [0, ceiling), and spread over it.
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 10 {
		ceiling := min(base<<n, maxDelay)
		lo, hi := ceiling, time.Duration(0)
		for range 2000 {
			d := worker.Backoff(n, transient, base, maxDelay, r.Float64)
			if d < 0 || d >= ceiling {
				t.Fatalf("retry %d: %s outside [0, %s)", n, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo > ceiling/20 || hi < ceiling*19/20 {
			t.Errorf("retry %d: 2000 draws span only [%s, %s] of [0, %s)", n, lo, hi, ceiling)
		}
	}
}
