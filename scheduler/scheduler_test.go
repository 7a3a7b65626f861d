package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

var _ Clock = (*fakeClock)(nil)

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{t, ch})
	return ch
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// countingMetrics records events; checked against Metrics at compile time.
type countingMetrics struct {
	mu                          sync.Mutex
	fired, missed, skipped, dup int64
	leaderChanges               []bool
}

var _ Metrics = (*countingMetrics)(nil)

func (m *countingMetrics) TickFired(string)              { m.mu.Lock(); m.fired++; m.mu.Unlock() }
func (m *countingMetrics) TicksMissed(_ string, n int64) { m.mu.Lock(); m.missed += n; m.mu.Unlock() }
func (m *countingMetrics) TickSkipped(string)            { m.mu.Lock(); m.skipped++; m.mu.Unlock() }
func (m *countingMetrics) TickDuplicate(string)          { m.mu.Lock(); m.dup++; m.mu.Unlock() }
func (m *countingMetrics) Leader(b bool) {
	m.mu.Lock()
	m.leaderChanges = append(m.leaderChanges, b)
	m.mu.Unlock()
}

func (m *countingMetrics) leaderEvents() []bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.leaderChanges)
}

func (m *countingMetrics) counts() [4]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return [4]int64{m.fired, m.missed, m.skipped, m.dup}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// rig is one scheduler replica's worth of components on a Redis.
type rig struct {
	t       *testing.T
	b       *redistest.Backend
	store   *runs.Store
	starter *runs.Starter
	s       *Scheduler
	m       *countingMetrics
}

func newRig(t *testing.T, b *redistest.Backend, clock Clock, lease time.Duration, ss ...configs.Schedule) *rig {
	t.Helper()
	return newEstateRig(t, b, clock, lease, []string{"default"}, ss...)
}

// newEstateRig is newRig for runs on targets.
func newEstateRig(t *testing.T, b *redistest.Backend, clock Clock, lease time.Duration, targets []string, ss ...configs.Schedule) *rig {
	t.Helper()
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	store := runs.New(b.Client, runs.Options{Now: now})
	var ts []runs.Target
	for _, name := range targets {
		ts = append(ts, runs.Target{Name: name, MaxBatchSize: 100})
	}
	starter := &runs.Starter{Store: store, Client: asynq.NewClientFromRedisClient(b.Client), Targets: ts, BatchSize: 100, Now: now}
	m := &countingMetrics{}
	s, err := New(b.Client, starter, store, ss, Options{Lease: lease, Clock: clock, Logger: testLogger(t), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, b: b, store: store, starter: starter, s: s, m: m}
}

// lead makes the rig's scheduler lead without election, in a term that
// began at start and followed leaders covering up to prev.
func (r *rig) lead(prev, start time.Time) { r.s.forced = &term{prev: prev, start: start} }

// pass runs one pass at the clock's now.
func (r *rig) pass() {
	r.t.Helper()
	if _, err := r.s.pass(context.Background(), *r.s.forced); err != nil {
		r.t.Fatalf("pass: %v", err)
	}
}

// scheduleRuns returns, per tick (RFC 3339), the number of runs schedule
// name started, and the manual runs.
func scheduleRuns(t *testing.T, store *runs.Store, name string) (ticks map[string]int, manual []*jobs.Run) {
	t.Helper()
	all, err := store.List(context.Background(), 100000, "")
	if err != nil {
		t.Fatal(err)
	}
	ticks = map[string]int{}
	for _, r := range all {
		if r.Trigger.Kind != TriggerKind || r.Trigger.Name != name {
			continue
		}
		if strings.HasPrefix(r.Trigger.Tick, ManualTickPrefix) {
			manual = append(manual, r)
			continue
		}
		tick, err := time.Parse(time.RFC3339, r.Trigger.Tick)
		if err != nil {
			t.Fatalf("run %s: tick %q: %v", r.ID, r.Trigger.Tick, err)
		}
		if want := RunID(name, tick); r.ID != want {
			t.Errorf("run %s of tick %s: id should be %s", r.ID, r.Trigger.Tick, want)
		}
		ticks[r.Trigger.Tick]++
	}
	return ticks, manual
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func every10s(name string) configs.Schedule {
	s := validSchedule(name)
	s.Cron, s.Overlap = "@every 10s", configs.OverlapAllow
	return s
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

var t0 = time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)

func TestTicksFireOnceEach(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		clock := newFakeClock(t0.Add(3 * time.Second))
		r := newRig(t, b, clock, 15*time.Second, every10s("e"))
		r.lead(time.Time{}, clock.Now())

		r.pass() // first sight: the cursor starts now, nothing before it is due
		var want []string
		for i := 1; i <= 5; i++ {
			tick := t0.Add(time.Duration(i) * 10 * time.Second)
			clock.Set(tick.Add(time.Duration(i*100) * time.Millisecond)) // a little late, as real timers are
			r.pass()
			r.pass() // a second pass at the same time finds nothing new
			want = append(want, rfc(tick))
		}
		ticks, _ := scheduleRuns(t, r.store, "e")
		if got := sortedKeys(ticks); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("ticks fired = %v, want %v", got, want)
		}
		for tick, n := range ticks {
			if n != 1 {
				t.Errorf("tick %s: %d runs", tick, n)
			}
		}
		run, err := r.store.Get(context.Background(), RunID("e", t0.Add(50*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if run.Queue != jobs.QueueBulk || run.Trigger != (jobs.Trigger{Kind: "schedule", Name: "e", Tick: "2026-11-27T02:00:50Z"}) {
			t.Errorf("run = queue %q trigger %+v", run.Queue, run.Trigger)
		}
		if got := r.m.counts(); got != [4]int64{5, 0, 0, 0} {
			t.Errorf("metrics fired/missed/skipped/dup = %v", got)
		}
	})
}

// Two leaders at once (a paused leader that has not noticed that it lost
// its lease) pass over the same ticks concurrently: the tick's run id is
// its identity, so every tick still starts one run.
func TestSplitBrainStartsOneRunPerTick(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		clock := newFakeClock(t0.Add(time.Second))
		a := newRig(t, b, clock, 15*time.Second, every10s("e"))
		c := newRig(t, b, clock, 15*time.Second, every10s("e"))
		a.lead(time.Time{}, clock.Now())
		c.lead(time.Time{}, clock.Now())
		a.pass()
		const n = 20
		for i := 1; i <= n; i++ {
			clock.Set(t0.Add(time.Duration(i) * 10 * time.Second))
			var wg sync.WaitGroup
			for _, r := range []*rig{a, c} {
				wg.Go(func() {
					if _, err := r.s.pass(context.Background(), *r.s.forced); err != nil {
						t.Errorf("pass: %v", err)
					}
				})
			}
			wg.Wait()
		}
		ticks, _ := scheduleRuns(t, a.store, "e")
		if len(ticks) != n {
			t.Errorf("%d ticks fired, want %d", len(ticks), n)
		}
		for tick, k := range ticks {
			if k != 1 {
				t.Errorf("tick %s: %d runs", tick, k)
			}
		}
		ca, cc := a.m.counts(), c.m.counts()
		if fired := ca[0] + cc[0]; fired != n {
			t.Errorf("fired %d+%d, want %d in all", ca[0], cc[0], n)
		}
		// Each tick was seen by both: the one that lost the race counted a
		// prevented duplicate, unless the winner had already moved the
		// cursor past it.
		if dup := ca[3] + cc[3]; dup > n {
			t.Errorf("duplicates %d > ticks %d", dup, n)
		}
		st, err := a.s.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Fired != n {
			t.Errorf("status fired = %d, want %d", st[0].Fired, n)
		}
	})
}

// A tick fired by a leader that died before recording it is found already
// fired by the next one: no second run, a duplicate counted.
func TestDuplicateTickCounted(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		clock := newFakeClock(t0.Add(time.Second))
		r := newRig(t, b, clock, 15*time.Second, every10s("e"))
		r.lead(time.Time{}, clock.Now())
		r.pass()
		tick := t0.Add(10 * time.Second)
		// The dead leader's run.
		if _, err := r.starter.StartWithID(context.Background(), RunID("e", tick), r.s.scheds[0].Request, jobs.Options{}, jobs.Trigger{Kind: TriggerKind, Name: "e", Tick: rfc(tick)}); err != nil {
			t.Fatal(err)
		}
		clock.Set(tick.Add(time.Second))
		r.pass()
		ticks, _ := scheduleRuns(t, r.store, "e")
		if ticks[rfc(tick)] != 1 || len(ticks) != 1 {
			t.Errorf("runs per tick = %v", ticks)
		}
		if got := r.m.counts(); got != [4]int64{0, 0, 0, 1} {
			t.Errorf("metrics fired/missed/skipped/dup = %v, want one duplicate", got)
		}
		st, err := r.s.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Duplicates != 1 || st[0].LastRunID != RunID("e", tick) {
			t.Errorf("status = %+v", st[0])
		}
	})
}

// setCursor pretends that schedule name's ticks were dealt with up to at.
func setCursor(t *testing.T, r *rig, name string, at time.Time) {
	t.Helper()
	if err := r.b.Client.HSet(context.Background(), r.s.stateKey(name), "cursor", at.UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestMisfire(t *testing.T) {
	t.Parallel()
	const lease = 15 * time.Second
	// now is 3s after a tick of the 10s schedule.
	now := t0.Add(time.Hour + 3*time.Second)
	tests := []struct {
		name       string
		cursor     time.Time
		prev       time.Time // the predecessors' covered time
		grace      time.Duration
		wantFired  []time.Time
		wantMissed int64
	}{
		{
			name:   "down an hour: only the latest tick within grace fires",
			cursor: t0, grace: time.Minute,
			wantFired: []time.Time{t0.Add(time.Hour)}, wantMissed: 359,
		},
		{
			name:   "down an hour: the latest tick is older than grace, none fires",
			cursor: t0, grace: 2 * time.Second,
			wantFired: nil, wantMissed: 360,
		},
		{
			name:   "down a year: counted, not listed",
			cursor: t0.Add(-365 * 24 * time.Hour), grace: time.Minute,
			wantFired: []time.Time{t0.Add(time.Hour)}, wantMissed: 365*24*360 + 359,
		},
		{
			name:   "failover: ticks in the dead leader's lease fire late, each once",
			cursor: t0.Add(time.Hour - 20*time.Second), prev: t0.Add(time.Hour + time.Second), grace: time.Minute,
			wantFired: []time.Time{t0.Add(time.Hour - 10*time.Second), t0.Add(time.Hour)}, wantMissed: 0,
		},
		{
			name: "failover after a gap: covered ticks fire, the gap's latest fires, older gap ticks are skipped",
			// Covered up to T-15s. Ticks T-40, T-30: older than two leases,
			// so misfires even though covered. T-20: covered, fires. T-10, T:
			// in the gap before this term; T is the latest, fires.
			cursor: t0.Add(time.Hour - 50*time.Second), prev: t0.Add(time.Hour - 15*time.Second), grace: time.Minute,
			wantFired: []time.Time{t0.Add(time.Hour - 20*time.Second), t0.Add(time.Hour)}, wantMissed: 3,
		},
		{
			name:   "grace zero means the default, an hour",
			cursor: t0.Add(-2 * time.Hour), grace: 0,
			wantFired: []time.Time{t0.Add(time.Hour)}, wantMissed: 3*360 - 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
				clock := newFakeClock(now)
				s := every10s("e")
				s.MisfireGrace = tc.grace
				r := newRig(t, b, clock, lease, s)
				r.lead(tc.prev, now) // the term begins now: ticks before it were no one's, unless covered by prev
				setCursor(t, r, "e", tc.cursor)
				r.pass()
				ticks, _ := scheduleRuns(t, r.store, "e")
				var want []string
				for _, f := range tc.wantFired {
					want = append(want, rfc(f))
				}
				if got := sortedKeys(ticks); strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("fired %v, want %v", got, want)
				}
				st, err := r.s.Status(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if st[0].Missed != tc.wantMissed || r.m.counts()[1] != tc.wantMissed {
					t.Errorf("missed: status %d, metrics %d; want %d", st[0].Missed, r.m.counts()[1], tc.wantMissed)
				}
				// Nothing is left behind: a second pass fires nothing more.
				r.pass()
				if again, _ := scheduleRuns(t, r.store, "e"); len(again) != len(ticks) {
					t.Errorf("second pass fired %d more", len(again)-len(ticks))
				}
			})
		})
	}
}

func TestOverlap(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{configs.OverlapSkip, configs.OverlapAllow} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
				ctx := context.Background()
				clock := newFakeClock(t0.Add(time.Second))
				s := every10s("e")
				s.Overlap = policy
				r := newRig(t, b, clock, 15*time.Second, s)
				r.lead(time.Time{}, clock.Now())
				r.pass()
				tick := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Second) }
				clock.Set(tick(1))
				r.pass() // starts run 1, which stays pending: no worker here
				clock.Set(tick(2))
				r.pass() // run 1 still going
				if _, err := r.starter.Cancel(ctx, RunID("e", tick(1))); err != nil {
					t.Fatal(err)
				}
				clock.Set(tick(3))
				r.pass() // run 1 finished: fires under both policies

				ticks, _ := scheduleRuns(t, r.store, "e")
				want := map[string]int{rfc(tick(1)): 1, rfc(tick(3)): 1}
				wantSkipped := int64(1)
				if policy == configs.OverlapAllow {
					want[rfc(tick(2))] = 1
					wantSkipped = 0
				}
				if len(ticks) != len(want) {
					t.Errorf("ticks fired %v, want %v", ticks, want)
				}
				for k, v := range want {
					if ticks[k] != v {
						t.Errorf("ticks fired %v, want %v", ticks, want)
					}
				}
				st, err := r.s.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st[0].Skipped != wantSkipped || r.m.counts()[2] != wantSkipped {
					t.Errorf("skipped: status %d, metrics %d; want %d", st[0].Skipped, r.m.counts()[2], wantSkipped)
				}
			})
		})
	}
}

// A run whose record has expired no longer blocks its schedule.
func TestOverlapExpiredRun(t *testing.T) {
	t.Parallel()
	b := redistest.Mini(t)
	clock := newFakeClock(t0.Add(time.Second))
	s := every10s("e")
	s.Overlap = configs.OverlapSkip
	r := newRig(t, b, clock, 15*time.Second, s)
	r.lead(time.Time{}, clock.Now())
	r.pass()
	clock.Set(t0.Add(10 * time.Second))
	r.pass()
	if err := b.Client.Del(context.Background(), "scanq:run:{"+RunID("e", t0.Add(10*time.Second))+"}").Err(); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(20 * time.Second))
	r.pass()
	if got := r.m.counts(); got[0] != 2 || got[2] != 0 {
		t.Errorf("fired/skipped = %d/%d, want 2/0", got[0], got[2])
	}
}

func TestDisabledScheduleDoesNotFire(t *testing.T) {
	t.Parallel()
	b := redistest.Mini(t)
	clock := newFakeClock(t0.Add(time.Second))
	s := every10s("off")
	s.Enabled = false
	r := newRig(t, b, clock, 15*time.Second, s, every10s("on"))
	r.lead(time.Time{}, clock.Now())
	r.pass()
	clock.Set(t0.Add(10 * time.Second))
	r.pass()
	if off, _ := scheduleRuns(t, r.store, "off"); len(off) != 0 {
		t.Errorf("disabled schedule fired %v", off)
	}
	if on, _ := scheduleRuns(t, r.store, "on"); len(on) != 1 {
		t.Errorf("enabled schedule fired %v, want one tick", on)
	}
	st, err := r.s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st[0].Next) != 0 || len(st[1].Next) != 5 {
		t.Errorf("next fire times: disabled %v, enabled %v", st[0].Next, st[1].Next)
	}
}

func TestStatusAndTrigger(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		clock := newFakeClock(t0.Add(-time.Minute))
		shanghai := testkit.Zone(t, "Asia/Shanghai")
		nightly := validSchedule("nightly")
		nightly.Timezone, nightly.Queue, nightly.BatchSize = "Asia/Shanghai", jobs.QueueDefault, 42
		r := newRig(t, b, clock, 15*time.Second, nightly)
		r.lead(time.Time{}, clock.Now())

		st, err := r.s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != 1 || st[0].Name != "nightly" || st[0].Timezone != "Asia/Shanghai" || st[0].LastTick != nil || st[0].LastRunID != "" {
			t.Fatalf("status before any tick = %+v", st)
		}
		// t0-1m is 09:59 in Shanghai: the next 02:00 there is the next day.
		first := time.Date(2026, 11, 28, 2, 0, 0, 0, shanghai)
		for i, n := range st[0].Next {
			if want := first.AddDate(0, 0, i); !n.Equal(want) || n.Location().String() != shanghai.String() {
				t.Errorf("next[%d] = %s, want %s", i, n, want)
			}
		}
		r.pass()
		clock.Set(first.Add(time.Second))
		r.pass()
		st, err = r.s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].LastTick == nil || !st[0].LastTick.Equal(first) || st[0].LastRunID != RunID("nightly", first) || st[0].LastRunState != jobs.StatePending {
			t.Errorf("status after a tick = %+v", st[0])
		}
		run, err := r.store.Get(ctx, RunID("nightly", first))
		if err != nil {
			t.Fatal(err)
		}
		if run.Queue != jobs.QueueDefault || run.Options.BatchSize != 42 || run.BatchSize != 42 {
			t.Errorf("run queue %q, batch size %d/%d; want default, 42", run.Queue, run.Options.BatchSize, run.BatchSize)
		}

		// By hand, while the tick's run is pending: refused (overlap: skip)
		// unless forced; a distinct run, recorded as the schedule's last.
		if _, err := r.s.Trigger(ctx, "nightly", false); !errors.Is(err, ErrRunActive) {
			t.Fatalf("trigger while the tick's run is pending: %v, want ErrRunActive", err)
		}
		manual, err := r.s.Trigger(ctx, "nightly", true)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(manual.ID, "sched-nightly-manual-") || manual.Trigger.Kind != TriggerKind ||
			manual.Trigger.Name != "nightly" || !strings.HasPrefix(manual.Trigger.Tick, ManualTickPrefix) || manual.Queue != jobs.QueueDefault {
			t.Errorf("manual run = %+v", manual)
		}
		st, err = r.s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].LastRunID != manual.ID || st[0].Manual != 1 || !st[0].LastTick.Equal(first) {
			t.Errorf("status after a manual run = %+v", st[0])
		}
		if _, err := r.s.Trigger(ctx, "weekly", true); !errors.Is(err, ErrUnknownSchedule) {
			t.Errorf("Trigger(unknown) = %v, want ErrUnknownSchedule", err)
		}
	})
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	b := redistest.Mini(t)
	store := runs.New(b.Client, runs.Options{})
	starter := &runs.Starter{Store: store, Client: asynq.NewClientFromRedisClient(b.Client)}
	tests := []struct {
		name string
		f    func() error
		err  string
	}{
		{"bad schedule", func() error {
			_, err := New(b.Client, starter, store, []configs.Schedule{{Name: "x", Cron: "nope"}}, Options{})
			return err
		}, `scheduler: schedules["x"].cron: cron "nope"`},
		{"lease too short", func() error {
			_, err := New(b.Client, starter, store, nil, Options{Lease: time.Millisecond})
			return err
		}, "lease: must be at least 30ms"},
		{"no store", func() error {
			_, err := New(b.Client, starter, nil, nil, Options{})
			return err
		}, "required"},
		{"ok", func() error {
			_, err := New(b.Client, starter, store, []configs.Schedule{validSchedule("x")}, Options{Lease: 30 * time.Millisecond})
			return err
		}, ""},
	}
	for _, tc := range tests {
		err := tc.f()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
}

// Run with a controlled clock: the loop sleeps on the clock, so moving it
// fires the ticks, each once, without the test sleeping.
func TestRunWithControlledClock(t *testing.T) {
	t.Parallel()
	b := redistest.Mini(t)
	clock := newFakeClock(t0.Add(time.Second))
	r := newRig(t, b, clock, 15*time.Second, every10s("e"))
	r.lead(time.Time{}, clock.Now())
	r.pass() // the cursor starts here, before the test moves the clock
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for i := 1; i <= 3; i++ {
		clock.Set(t0.Add(time.Duration(i) * 10 * time.Second))
		testkit.Eventually(t, 20*time.Second, func() bool { return r.m.counts()[0] == int64(i) }, "tick %d to fire", i)
	}
	ticks, _ := scheduleRuns(t, r.store, "e")
	if len(ticks) != 3 {
		t.Errorf("ticks fired = %v", ticks)
	}
	if !r.s.IsLeader() {
		t.Error("IsLeader = false for a forced leader")
	}
}

// TestTriggerHonoursOverlap: a manual trigger of an overlap: skip schedule
// whose last run is still going is refused, naming that run, unless forced;
// concurrent triggers start one run between them; overlap: allow always
// starts one; a finished last run lets the next trigger through.
func TestTriggerHonoursOverlap(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		skip := validSchedule("skipper")
		allow := validSchedule("allower")
		allow.Overlap = configs.OverlapAllow
		r := newRig(t, b, nil, 15*time.Second, skip, allow)

		first, err := r.s.Trigger(ctx, "skipper", false)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.s.Trigger(ctx, "skipper", false)
		var busy *RunActiveError
		if !errors.As(err, &busy) || busy.RunID != first.ID || !errors.Is(err, ErrRunActive) || !strings.Contains(err.Error(), first.ID) {
			t.Fatalf("second trigger while %s is pending: %v", first.ID, err)
		}
		forced, err := r.s.Trigger(ctx, "skipper", true)
		if err != nil || forced.ID == first.ID {
			t.Fatalf("forced trigger: %v", err)
		}
		// The forced run is now the last one: it is the one named.
		if _, err := r.s.Trigger(ctx, "skipper", false); !errors.As(err, &busy) || busy.RunID != forced.ID {
			t.Fatalf("trigger after the forced run: %v", err)
		}
		// Once the last run is final, a trigger goes through.
		if err := r.store.Stop(ctx, forced.ID, jobs.StateCancelled, "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.s.Trigger(ctx, "skipper", false); err != nil {
			t.Fatalf("trigger after the last run finished: %v", err)
		}

		for range 3 {
			if _, err := r.s.Trigger(ctx, "allower", false); err != nil {
				t.Fatalf("overlap: allow: %v", err)
			}
		}

		// Racing triggers of a schedule with no run going: one run.
		race := validSchedule("racer")
		r2 := newRig(t, b, nil, 15*time.Second, race)
		var wg sync.WaitGroup
		var mu sync.Mutex
		started := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := r2.s.Trigger(ctx, "racer", false)
				switch {
				case err == nil:
					mu.Lock()
					started++
					mu.Unlock()
				case !errors.Is(err, ErrRunActive):
					t.Errorf("racing trigger: %v", err)
				}
			}()
		}
		wg.Wait()
		if started != 1 {
			t.Fatalf("8 racing triggers started %d runs, want 1", started)
		}
	})
}

// TestScheduleOverAllTargetsFiresOncePerTarget: a schedule over all of
// three targets, passed by three replicas at once, starts one run per
// target per tick, grouped under the tick's run id, and no more; a
// schedule naming one target starts a plain run on it.
func TestScheduleOverAllTargetsFiresOncePerTarget(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		clock := newFakeClock(t0.Add(time.Second))
		targets := []string{"a", "b", "c"}
		all := every10s("all")
		all.Targets = []string{jobs.AllTargets}
		one := every10s("one")
		one.Targets = []string{"b"}
		var rigs []*rig
		for range 3 {
			r := newEstateRig(t, b, clock, 15*time.Second, targets, all, one)
			r.lead(time.Time{}, clock.Now())
			rigs = append(rigs, r)
		}
		rigs[0].pass()
		const n = 6
		for i := 1; i <= n; i++ {
			clock.Set(t0.Add(time.Duration(i) * 10 * time.Second))
			var wg sync.WaitGroup
			for _, r := range rigs {
				wg.Go(func() {
					if _, err := r.s.pass(context.Background(), *r.s.forced); err != nil {
						t.Errorf("pass: %v", err)
					}
				})
			}
			wg.Wait()
		}
		ctx := context.Background()
		list, err := rigs[0].store.List(ctx, 100000, "")
		if err != nil {
			t.Fatal(err)
		}
		perTick := map[string]map[string]int{}
		plain := 0
		for _, r := range list {
			switch r.Trigger.Name {
			case "all":
				if perTick[r.Trigger.Tick] == nil {
					perTick[r.Trigger.Tick] = map[string]int{}
				}
				perTick[r.Trigger.Tick][r.Target]++
				tick, _ := time.Parse(time.RFC3339, r.Trigger.Tick)
				if parent := RunID("all", tick); r.Trigger.Parent != parent || r.ID != jobs.ChildID(parent, r.Target) {
					t.Errorf("run %s: parent %q", r.ID, r.Trigger.Parent)
				}
			case "one":
				tick, _ := time.Parse(time.RFC3339, r.Trigger.Tick)
				if r.Target != "b" || r.ID != RunID("one", tick) || r.Trigger.Parent != "" {
					t.Errorf("run %s of schedule one: target %s parent %q", r.ID, r.Target, r.Trigger.Parent)
				}
				plain++
			}
		}
		if len(perTick) != n || plain != n {
			t.Fatalf("%d ticks of all, %d runs of one; want %d each", len(perTick), plain, n)
		}
		for tick, byTarget := range perTick {
			for _, target := range targets {
				if byTarget[target] != 1 {
					t.Errorf("tick %s: %d runs on %s", tick, byTarget[target], target)
				}
			}
			g, err := rigs[0].store.GroupTargets(ctx, RunID("all", mustParse(t, tick)))
			if err != nil || strings.Join(g, ",") != "a,b,c" {
				t.Errorf("group of tick %s: %v %v", tick, g, err)
			}
		}
		// The status names each schedule's targets, and the state of the
		// last run of all, a group (it showed none).
		st, err := rigs[0].s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range st {
			want := map[string]string{"all": "all", "one": "b"}[x.Name]
			if strings.Join(x.Targets, ",") != want || x.LastRunID == "" || x.LastRunState != jobs.StatePending {
				t.Errorf("status of %s: targets %v, last run %q in state %q; want targets %s, a pending last run", x.Name, x.Targets, x.LastRunID, x.LastRunState, want)
			}
		}
	})
}

func mustParse(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
