package testkit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/testkit"
)

// recorder is a testing.TB that keeps what Fatalf says instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestEventually(t *testing.T) {
	t.Parallel()
	t.Run("returns once the condition holds", func(t *testing.T) {
		t.Parallel()
		calls := 0
		rec := &recorder{TB: t}
		testkit.Eventually(rec, 10*time.Second, func() bool { calls++; return calls == 5 }, "the fifth call")
		if rec.failed != "" || calls != 5 {
			t.Fatalf("failed %q after %d calls", rec.failed, calls)
		}
	})
	t.Run("fails after the timeout when it never holds", func(t *testing.T) {
		t.Parallel()
		calls := 0
		rec := &recorder{TB: t}
		start := time.Now()
		testkit.Eventually(rec, 50*time.Millisecond, func() bool { calls++; return false }, "n to be %d", -1)
		if took := time.Since(start); took < 50*time.Millisecond {
			t.Fatalf("gave up after %s, before the timeout", took)
		}
		if want := "waited 50ms for n to be -1"; rec.failed != want || calls < 2 {
			t.Fatalf("failure %q after %d calls, want %q", rec.failed, calls, want)
		}
	})
}
