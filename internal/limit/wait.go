package limit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// WaitError says the limiter's next slot is further away than the caller was
// willing to wait. It is not a failure: the caller puts its work back on the
// queue to run after Delay, without spending a retry.
//
// Budget not taken when its slot opens is lost (the images bound allows no
// catching up). A task put back with exactly Delay comes back late by however
// long its queue takes to notice (asynq moves scheduled tasks every few
// seconds), so put it back a little early, by about maxWait, and let Wait
// sleep out the rest.
type WaitError struct {
	// Delay is how long until the slot opens, as of the last try.
	Delay time.Duration
	// Throttled says the target is blocked after a 429 for Delay.
	Throttled bool
}

func (e *WaitError) Error() string {
	return "rate limited: next slot in " + roundDelay(e.Delay).String()
}

// roundDelay keeps messages readable: milliseconds below ten seconds, whole
// seconds above.
func roundDelay(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// Maximum random delay added to a wait, and its share of the wait. Waiters
// woken at the same instant would all go to Redis at once and all but one
// be denied again; a little jitter spreads them, and keeping it small keeps
// the time lost between a slot opening and its use (utilisation) small.
const (
	maxJitter      = 2 * time.Millisecond
	jitterFraction = 50 // at most 1/50 of the wait
)

// throttleInline is the longest wait for a throttled target (after a 429)
// that Wait sleeps out in process: a longer one, of the target's own
// making, goes back to the caller's queue at once, so that it holds no
// worker slot however long maxWait is.
const throttleInline = 100 * time.Millisecond

// Wait calls try until it is granted, sleeping for the Wait of each denial
// plus a little jitter, as long as the total stays within maxWait. When the
// next slot is further away, it returns a *WaitError carrying the delay.
// waited is the time spent sleeping. A denial that says the target is
// throttled for longer than throttleInline returns a *WaitError at once.
// A grant with a Wait, a token reserved for the caller (Request), is slept
// out before Wait returns. Errors of try and of ctx are returned as they are (ctx errors wrapped, so errors.Is
// works).
func (l *Limiter) Wait(ctx context.Context, maxWait time.Duration, try func(ctx context.Context) (Decision, error)) (waited time.Duration, err error) {
	return l.WaitWithin(ctx, maxWait, maxWait, try)
}

// WaitWithin is Wait that also gives up on any one denial whose delay is
// longer than maxDelay, however little it has waited so far: a caller far
// back in line for its turn (Request) goes back to its queue, while one
// pushed back a little after waiting a while stays.
func (l *Limiter) WaitWithin(ctx context.Context, maxWait, maxDelay time.Duration, try func(ctx context.Context) (Decision, error)) (waited time.Duration, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return waited, fmt.Errorf("limit: waiting for a slot: %w", err)
		}
		d, err := try(ctx)
		if err != nil {
			return waited, err
		}
		if d.Granted {
			if d.Wait > 0 { // a token reserved for the caller (Request)
				if err := l.sleep(ctx, d.Wait); err != nil {
					return waited, fmt.Errorf("limit: waiting %s for a reserved slot: %w", d.Wait, err)
				}
				waited += d.Wait
			}
			return waited, nil
		}
		delay := d.Wait
		if d.Throttled && delay > throttleInline {
			return waited, &WaitError{Delay: delay, Throttled: true}
		}
		if delay <= 0 {
			// A denial always names a positive delay; be safe against a
			// try that does not, instead of spinning.
			delay = time.Millisecond
		}
		remaining := maxWait - waited
		if delay > remaining || delay > maxDelay {
			return waited, &WaitError{Delay: delay}
		}
		sleep := delay + jitter(min(delay/jitterFraction, maxJitter, remaining-delay))
		if err := l.sleep(ctx, sleep); err != nil {
			return waited, fmt.Errorf("limit: waiting %s for a slot: %w", sleep, err)
		}
		waited += sleep
	}
}

// jitter is uniform in [0, upTo].
func jitter(upTo time.Duration) time.Duration {
	if upTo <= 0 {
		return 0
	}
	return rand.N(upTo + 1)
}
