package testkit

import (
	"fmt"
	"testing"
	"time"
)

// Eventually calls cond until it returns true, and fails t (Fatal) with the
// message format and args if it has not by timeout. Make the timeout
// generous: a failure should mean never, not late. cond is called again at
// once, then at intervals growing to 5 ms, so a condition that holds soon is
// seen soon without a busy loop. A test that wants the last state in the
// message defers its own report of it: deferred calls run when t.Fatal ends
// the test.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 5*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, fmt.Sprintf(format, args...))
			return
		}
		time.Sleep(wait)
	}
}
