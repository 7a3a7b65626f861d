package limit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/redistest"
)

// script is a try that answers with a fixed list of decisions.
type script struct {
	answers []Decision
	calls   int
}

func (s *script) try(context.Context) (Decision, error) {
	d := s.answers[s.calls]
	s.calls++
	return d, nil
}

func deny(d time.Duration) Decision { return Decision{Wait: d} }

var allow = Decision{Granted: true}

// recorder is an injected Sleep that does not sleep.
type recorder struct{ slept []time.Duration }

func (r *recorder) sleep(_ context.Context, d time.Duration) error {
	r.slept = append(r.slept, d)
	return nil
}

func TestWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		maxWait   time.Duration
		answers   []Decision
		wantSleep []time.Duration // the denial's Wait behind each sleep
		wantDelay time.Duration   // > 0: a WaitError with this delay
	}{
		{"allowed at once", time.Second, []Decision{allow}, nil, 0},
		{"waits then allowed", time.Second, []Decision{deny(30 * time.Millisecond), deny(20 * time.Millisecond), allow}, []time.Duration{30 * time.Millisecond, 20 * time.Millisecond}, 0},
		{"long waits get the jitter cap", time.Minute, []Decision{deny(10 * time.Second), allow}, []time.Duration{10 * time.Second}, 0},
		{"too far", 5 * time.Second, []Decision{deny(12 * time.Second)}, nil, 12 * time.Second},
		{"zero maxWait never sleeps", 0, []Decision{deny(time.Millisecond)}, nil, time.Millisecond},
		{"exactly maxWait is waited", 3 * time.Second, []Decision{deny(3 * time.Second), allow}, []time.Duration{3 * time.Second}, 0},
		{"budget used up by earlier waits", 5 * time.Second, []Decision{deny(3 * time.Second), deny(3 * time.Second)}, []time.Duration{3 * time.Second}, 3 * time.Second},
		{"a denial without delay does not spin", time.Second, []Decision{deny(0), allow}, []time.Duration{time.Millisecond}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &script{answers: tt.answers}
			r := &recorder{}
			l := New(nil, Options{Sleep: r.sleep})
			waited, err := l.Wait(context.Background(), tt.maxWait, s.try)
			if s.calls != len(tt.answers) {
				t.Errorf("try called %d times, want %d", s.calls, len(tt.answers))
			}
			if len(r.slept) != len(tt.wantSleep) {
				t.Fatalf("slept %v, want one sleep per %v", r.slept, tt.wantSleep)
			}
			var sum time.Duration
			for i, d := range r.slept {
				lo := tt.wantSleep[i]
				hi := lo + min(lo/jitterFraction, maxJitter)
				if d < lo || d > hi {
					t.Errorf("sleep %d = %s, want in [%s, %s]", i, d, lo, hi)
				}
				sum += d
			}
			if waited != sum {
				t.Errorf("waited = %s, want the %s slept", waited, sum)
			}
			if sum > tt.maxWait {
				t.Errorf("slept %s in all, more than maxWait %s", sum, tt.maxWait)
			}
			if tt.wantDelay == 0 {
				if err != nil {
					t.Fatalf("Wait: %v", err)
				}
				return
			}
			we, ok := errors.AsType[*WaitError](err)
			if !ok || we.Delay != tt.wantDelay {
				t.Fatalf("Wait error = %v, want a *WaitError with delay %s", err, tt.wantDelay)
			}
		})
	}
}

func TestWaitErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		delay time.Duration
		want  string
	}{
		{12*time.Second + 300*time.Millisecond, "rate limited: next slot in 12s"},
		{1500 * time.Millisecond, "rate limited: next slot in 1.5s"},
		{2*time.Millisecond + 400*time.Microsecond, "rate limited: next slot in 2ms"},
		{61 * time.Second, "rate limited: next slot in 1m1s"},
	}
	for _, tt := range tests {
		if got := (&WaitError{Delay: tt.delay}).Error(); got != tt.want {
			t.Errorf("WaitError{%s}.Error() = %q, want %q", tt.delay, got, tt.want)
		}
	}
}

func TestWaitPassesTryErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	l := New(nil, Options{Sleep: (&recorder{}).sleep})
	_, err := l.Wait(context.Background(), time.Second, func(context.Context) (Decision, error) { return Decision{}, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Wait error = %v, want %v", err, boom)
	}
}

func TestWaitContext(t *testing.T) {
	t.Parallel()
	t.Run("cancelled before the first try", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s := &script{answers: []Decision{allow}}
		_, err := New(nil, Options{}).Wait(ctx, time.Second, s.try)
		if !errors.Is(err, context.Canceled) || s.calls != 0 {
			t.Fatalf("Wait = %v after %d tries, want context.Canceled and no try", err, s.calls)
		}
	})
	t.Run("cancelled while sleeping", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		s := &script{answers: []Decision{deny(time.Hour)}}
		// The real sleep: it must return when ctx ends, not after an hour.
		done := make(chan error, 1)
		go func() {
			_, err := New(nil, Options{}).Wait(ctx, 2*time.Hour, s.try)
			done <- err
		}()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	})
	t.Run("deadline on a real limiter", func(t *testing.T) {
		t.Parallel()
		b := redistest.Mini(t)
		l := New(b.Client, Options{})
		if d, err := l.allowImages(context.Background(), "run", 60, time.Hour, 1); err != nil || !d.Granted {
			t.Fatalf("first image: %+v, %v", d, err)
		}
		// The next image is a minute away; a 50ms deadline ends the wait.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := l.Wait(ctx, 2*time.Minute, func(ctx context.Context) (Decision, error) {
			return l.allowImages(ctx, "run", 60, time.Hour, 1)
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait = %v, want context.DeadlineExceeded", err)
		}
	})
}

// TestWaitOnRedis: the WaitError path with a real limiter on both backends.
func TestWaitOnRedis(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		t.Parallel()
		r := &recorder{}
		l := New(b.Client, Options{Sleep: r.sleep})
		ctx := context.Background()
		try := func(ctx context.Context) (Decision, error) { return l.allowImages(ctx, "run", 3600, time.Hour, 60) }
		if waited, err := l.Wait(ctx, time.Second, try); err != nil || waited != 0 {
			t.Fatalf("first batch: waited %s, %v", waited, err)
		}
		_, err := l.Wait(ctx, time.Second, try)
		we, ok := errors.AsType[*WaitError](err)
		if !ok || we.Delay <= time.Second || we.Delay > time.Minute {
			t.Fatalf("second batch: %v, want a *WaitError with a delay in (1s, 1m]", err)
		}
		if len(r.slept) != 0 {
			t.Errorf("slept %v for a slot beyond maxWait", r.slept)
		}
	})
}
