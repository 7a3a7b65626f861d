package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
)

// running is a scheduler's Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, s *Scheduler) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	r.done <- nil // a second stop returns at once
}

func leaseHolder(t *testing.T, r *rig) string {
	t.Helper()
	v, err := r.s.Leader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Wall-clock tests: leases are Redis TTLs. Timeouts are generous and only
// bound how long a test waits for something that must happen.
func TestLeaderElection(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		const lease = 1500 * time.Millisecond
		a := newRig(t, b, nil, lease)
		c := newRig(t, b, nil, lease)
		ra, rc := start(t, a.s), start(t, c.s)
		testkit.Eventually(t, 20*time.Second, func() bool { return a.s.IsLeader() || c.s.IsLeader() }, "a leader")
		leader, follower, rl := a, c, ra
		if c.s.IsLeader() {
			leader, follower, rl = c, a, rc
		}
		// Over several lease periods, renewal keeps the same leader, and
		// there is never a second one.
		for end := time.Now().Add(3 * lease); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if follower.s.IsLeader() {
				t.Fatal("two leaders")
			}
			if !leader.s.IsLeader() {
				t.Fatal("the leader lost its lease while renewing it")
			}
			if got := leaseHolder(t, leader); got != leader.s.Instance() {
				t.Fatalf("lease held by %q, want the leader %q", got, leader.s.Instance())
			}
		}
		// The leader stops: it gives the lease up, and the other takes over.
		rl.stop(t)
		if leader.s.IsLeader() {
			t.Error("a stopped scheduler says it leads")
		}
		if got := leaseHolder(t, leader); got == leader.s.Instance() {
			t.Error("a stopped leader kept its lease")
		}
		testkit.Eventually(t, 20*time.Second, follower.s.IsLeader, "the follower to take over")
		if got := leaseHolder(t, follower); got != follower.s.Instance() {
			t.Errorf("lease held by %q, want %q", got, follower.s.Instance())
		}
		if got := leader.m.leaderEvents(); !slices.Equal(got, []bool{true, false}) {
			t.Errorf("old leader's leader events = %v, want [true false]", got)
		}
	})
}

// A leader that dies without letting go: the other waits for the lease to
// run out, then takes over, knowing until when the dead one was
// responsible for ticks.
func TestLeaderCrashFailover(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		const lease = time.Second
		a := newRig(t, b, nil, lease)
		a.s.noRelease = true // as if SIGKILLed
		ra := start(t, a.s)
		testkit.Eventually(t, 20*time.Second, a.s.IsLeader, "a to lead")
		c := newRig(t, b, nil, lease)
		start(t, c.s)
		ra.stop(t)
		if got := leaseHolder(t, a); got != a.s.Instance() {
			t.Fatalf("lease held by %q right after the crash, want the dead leader's", got)
		}
		testkit.Eventually(t, 20*time.Second, c.s.IsLeader, "c to take over")
		tm, _ := c.s.currentTerm(time.Now())
		if tm.prev.IsZero() {
			t.Error("the new leader does not know until when the dead one was responsible")
		}
	})
}

// A leader whose lease is taken over stops firing at once, and does not
// take the lease back while the other holds it.
func TestLosingLeaseStopsFiring(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := validSchedule("e")
		s.Cron, s.Overlap = "@every 1s", configs.OverlapAllow
		r := newRig(t, b, nil, time.Second, s)
		start(t, r.s)
		testkit.Eventually(t, 20*time.Second, func() bool { return r.m.counts()[0] >= 1 }, "a first tick")
		if err := b.Client.Set(ctx, r.s.leaseKey(), "intruder", 0).Err(); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 20*time.Second, func() bool { return !r.s.IsLeader() }, "the leader to notice")
		fired := r.m.counts()[0]
		time.Sleep(2500 * time.Millisecond) // two and a half ticks
		// One tick may have been past its leadership check when the lease
		// went; no more.
		if got := r.m.counts()[0]; got > fired+1 {
			t.Errorf("fired %d ticks after losing the lease", got-fired)
		}
		if got := leaseHolder(t, r); got != "intruder" {
			t.Errorf("lease holder = %q, want the intruder kept", got)
		}
		if ch := r.m.leaderEvents(); len(ch) == 0 || ch[len(ch)-1] {
			t.Errorf("leader events = %v, want ending in false", ch)
		}
	})
}
