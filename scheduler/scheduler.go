// Package scheduler fires scanq's cron schedules: it elects one leader
// among any number of scheduler replicas and starts exactly one run per
// schedule tick. A schedule is a configs.Schedule, held to configs' rules
// and parsed by configs (CronSchedule), so that what validated at start-up
// is what fires.
//
// Exactly once rests on two independent guards. Leader election (a lease
// in Redis, see lease.go) makes one replica fire at a time. And every tick
// has an identity, its run id (RunID: schedule name + tick time), which the
// run store creates atomically; so even two replicas that both believe they
// lead (a paused leader waking after its lease passed to another) start a
// tick's run once, and the loser counts a prevented duplicate.
//
// Per schedule, Redis keeps a cursor: every tick up to it has been dealt
// with (fired, found already fired, or skipped). A new leader continues
// from the cursor, so no tick between two leaders is lost: ticks that fell
// within a dead leader's lease are fired late, each once (they are at most
// a lease's worth). Ticks that fell in a time when no scheduler held the
// lease (every replica was down) are misfires: the latest of them is fired
// if it is at most the schedule's misfire grace late, the others are
// skipped, logged and counted; a backlog is never fired.
//
// Redis keys, all under the {scheduler} hash tag: <prefix>{scheduler}:leader
// (the lease; its value names the leading instance), :covered (until when a
// leader was responsible for ticks) and :schedule:<name> (cursor, last
// tick, last run, counters).
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// ErrUnknownSchedule is returned for a schedule name that is not configured.
var ErrUnknownSchedule = errors.New("no such schedule")

// errNotLeader stops a pass whose leadership ended half-way.
var errNotLeader = errors.New("no longer leader")

// Clock is the time source. Tests substitute one they advance by hand, so
// that ticks fire without sleeping.
type Clock interface {
	Now() time.Time
	// At returns a channel that receives once the clock has reached t.
	At(t time.Time) <-chan time.Time
}

// Metrics receives the scheduler's events; the Prometheus adapter lives
// with the wiring. Calls are made from the scheduler's goroutines and must
// not block.
type Metrics interface {
	// TickFired: a tick started its run.
	TickFired(schedule string)
	// TicksMissed: n ticks were missed while no scheduler ran, and skipped.
	TicksMissed(schedule string, n int64)
	// TickSkipped: a tick was skipped because the previous run of the
	// schedule had not finished (overlap: skip).
	TickSkipped(schedule string)
	// TickDuplicate: a tick's run already existed (another leader fired
	// it); nothing was started.
	TickDuplicate(schedule string)
	// Leader: this instance became, or stopped being, the leader.
	Leader(leading bool)
}

// NopMetrics discards every event.
type NopMetrics struct{}

func (NopMetrics) TickFired(string)          {}
func (NopMetrics) TicksMissed(string, int64) {}
func (NopMetrics) TickSkipped(string)        {}
func (NopMetrics) TickDuplicate(string)      {}
func (NopMetrics) Leader(bool)               {}

var _ Metrics = NopMetrics{}

// wallClock is the real clock, read through now (time.Now, or an offset
// clock the caller gives).
type wallClock struct{ now func() time.Time }

func (w wallClock) Now() time.Time                  { return w.now() }
func (w wallClock) At(t time.Time) <-chan time.Time { return time.After(t.Sub(w.now())) }

// DefaultLease is the leader lease when Options.Lease is 0.
const DefaultLease = 15 * time.Second

// Options configure a Scheduler.
type Options struct {
	// Lease is the leader lease: when the leader dies another replica takes
	// over within about this long. Default DefaultLease.
	Lease time.Duration
	// Prefix of every Redis key; default "scanq:".
	Prefix string
	// Logger; default discards.
	Logger *slog.Logger
	// Now is the clock, when Clock is nil; default time.Now. Waits are
	// real timers measured against it.
	Now func() time.Time
	// Clock, when set, replaces Now and the timers.
	Clock Clock
	// Metrics receives tick and leadership events; default none.
	Metrics Metrics
	// NextCount is how many next fire times Status lists; default 5.
	NextCount int
}

// Scheduler fires the ticks of its schedules while it leads. It is safe for
// concurrent use; Run is called once.
type Scheduler struct {
	rdb       redis.UniversalClient
	starter   *runs.Starter
	store     *runs.Store
	scheds    []*compiled
	byName    map[string]*compiled
	lease     time.Duration
	prefix    string
	log       *slog.Logger
	clock     Clock
	metrics   Metrics
	nextCount int
	token     string

	wake    chan struct{}
	running atomic.Bool

	mu         sync.Mutex
	held       bool
	validUntil time.Time
	term       term

	// Test hooks: forced makes this instance lead in the given term without
	// election; noRelease leaves the lease behind on exit, as a crash does.
	forced    *term
	noRelease bool
}

// New validates schedules and returns a Scheduler. The schedules are held
// to configs' rules (configs.ValidateSchedules), their zero Queue, Overlap
// and MisfireGrace meaning the defaults (configs.Schedule.WithDefaults).
// Nothing runs until Run; an API process may use Status and Trigger without
// ever calling it.
func New(rdb redis.UniversalClient, starter *runs.Starter, store *runs.Store, schedules []configs.Schedule, opts Options) (*Scheduler, error) {
	if rdb == nil || starter == nil || store == nil {
		return nil, errors.New("scheduler: redis client, starter and store are required")
	}
	cs, err := compile(schedules)
	if err != nil {
		return nil, err
	}
	if opts.Lease == 0 {
		opts.Lease = DefaultLease
	}
	if opts.Lease < 30*time.Millisecond {
		return nil, fmt.Errorf("scheduler: lease: must be at least 30ms, got %s", opts.Lease)
	}
	s := &Scheduler{
		rdb: rdb, starter: starter, store: store, scheds: cs,
		byName: make(map[string]*compiled, len(cs)),
		lease:  opts.Lease, prefix: opts.Prefix, clock: opts.Clock, metrics: opts.Metrics,
		nextCount: opts.NextCount, token: newToken(),
		wake: make(chan struct{}, 1),
	}
	for _, c := range cs {
		s.byName[c.Name] = c
	}
	if s.prefix == "" {
		s.prefix = "scanq:"
	}
	if s.clock == nil {
		now := opts.Now
		if now == nil {
			now = time.Now
		}
		s.clock = wallClock{now: now}
	}
	if s.metrics == nil {
		s.metrics = NopMetrics{}
	}
	if s.nextCount <= 0 {
		s.nextCount = 5
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.log = log.With("component", "scheduler")
	return s, nil
}

// newToken names this instance in the lease: host and pid for the operator
// who reads the key, and random bytes so that it is unique.
func newToken() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// Instance is this scheduler's token in the leader lease.
func (s *Scheduler) Instance() string { return s.token }

// Keys. The {scheduler} hash tag keeps them on one Redis Cluster slot, as
// the lease scripts touch two of them.
func (s *Scheduler) leaseKey() string   { return s.prefix + "{scheduler}:leader" }
func (s *Scheduler) coveredKey() string { return s.prefix + "{scheduler}:covered" }
func (s *Scheduler) stateKey(name string) string {
	return s.prefix + "{scheduler}:schedule:" + name
}

// Leader returns the instance token of the current leader, "" when none.
func (s *Scheduler) Leader(ctx context.Context) (string, error) {
	v, err := s.rdb.Get(ctx, s.leaseKey()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the scheduler leader: %w", err)
	}
	return v, nil
}

// IsLeader reports whether this instance currently leads.
func (s *Scheduler) IsLeader() bool { return s.leading(s.clock.Now()) }

// Run seeks leadership and, while leading, fires due ticks; it blocks until
// ctx is done, then gives up the lease and returns nil.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run is already running")
	}
	defer s.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.forced == nil {
		wg.Go(func() { s.elect(ctx) })
	}
	s.log.Info("scheduler started", "instance", s.token, "schedules", len(s.scheds), "lease", s.lease)
	for {
		now := s.clock.Now()
		wait := now.Add(time.Minute) // re-evaluate now and then whatever the clock did
		if tm, ok := s.currentTerm(now); ok {
			next, err := s.pass(ctx, tm)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil && !errors.Is(err, errNotLeader) {
				s.log.Warn("firing schedules; retrying", "err", err)
				next = s.clock.Now().Add(s.lease / 3)
			}
			if !next.IsZero() && next.Before(wait) {
				wait = next
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-s.clock.At(wait):
		}
	}
}

// pass handles the due ticks of every enabled schedule in term tm and
// returns when the next one is due.
func (s *Scheduler) pass(ctx context.Context, tm term) (time.Time, error) {
	var next time.Time
	var errs []error
	for _, c := range s.scheds {
		if !c.Enabled {
			continue
		}
		n, err := s.runSchedule(ctx, c, tm)
		if errors.Is(err, errNotLeader) {
			return time.Time{}, err
		}
		if err != nil {
			errs = append(errs, err) // one schedule's trouble does not hold up the others
			continue
		}
		if next.IsZero() || n.Before(next) {
			next = n
		}
	}
	return next, errors.Join(errs...)
}

// maxCount bounds the counting of long-missed ticks (an @every 1s schedule
// down for a month); the log and counter then say "at least".
const maxCount = 1_000_000

// runSchedule handles the due ticks of c, in order:
//   - ticks within a leader's lease (the current term, or a predecessor's
//     that died or paused) are fired, each once, even late, as long as they
//     are at most two leases old;
//   - of the others (no scheduler held the lease), the latest is fired if
//     it is at most c.MisfireGrace late, and the rest are skipped.
//
// It returns the schedule's next tick after now.
func (s *Scheduler) runSchedule(ctx context.Context, c *compiled, tm term) (time.Time, error) {
	now := s.clock.Now()
	cursor, err := s.cursor(ctx, c.Name, now)
	if err != nil {
		return time.Time{}, err
	}
	window := max(c.MisfireGrace, 2*s.lease)
	if recent := now.Add(-window); cursor.Before(recent) {
		// Too old for either rule: count them, don't list them.
		if n, capped := countTicks(c.cron, cursor, recent, maxCount); n > 0 {
			if err := s.skipMissed(ctx, c, c.cron.Next(cursor), recent, n, capped); err != nil {
				return time.Time{}, err
			}
		}
		cursor = recent
	}
	var ticks []time.Time
	for t := c.cron.Next(cursor); !t.IsZero() && !t.After(now); t = c.cron.Next(t) {
		ticks = append(ticks, t)
	}
	covered := func(t time.Time) bool {
		return (!t.After(tm.prev) || !t.Before(tm.start)) && now.Sub(t) <= 2*s.lease
	}
	latest := -1 // the latest missed tick, fired if within grace
	for i, t := range ticks {
		if !covered(t) {
			latest = i
		}
	}
	if latest >= 0 && now.Sub(ticks[latest]) > c.MisfireGrace {
		latest = -1
	}
	var missed []time.Time
	flush := func() error {
		if len(missed) == 0 {
			return nil
		}
		err := s.skipMissed(ctx, c, missed[0], missed[len(missed)-1], int64(len(missed)), false)
		missed = nil
		return err
	}
	for i, t := range ticks {
		if !covered(t) && i != latest {
			missed = append(missed, t)
			continue
		}
		if err := flush(); err != nil {
			return time.Time{}, err
		}
		if !s.leading(s.clock.Now()) {
			return time.Time{}, errNotLeader
		}
		if err := s.fire(ctx, c, t); err != nil {
			return time.Time{}, err
		}
	}
	if err := flush(); err != nil {
		return time.Time{}, err
	}
	return c.cron.Next(now), nil
}

// cursor reads the time up to which c's ticks are dealt with. A schedule
// seen for the first time starts at now: ticks before it are no one's.
func (s *Scheduler) cursor(ctx context.Context, name string, now time.Time) (time.Time, error) {
	key := s.stateKey(name)
	v, err := s.rdb.HGet(ctx, key, "cursor").Int64()
	if errors.Is(err, redis.Nil) {
		if err := s.rdb.HSetNX(ctx, key, "cursor", now.UnixMilli()).Err(); err != nil {
			return time.Time{}, fmt.Errorf("starting the cursor of schedule %q: %w", name, err)
		}
		v, err = s.rdb.HGet(ctx, key, "cursor").Int64()
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the cursor of schedule %q: %w", name, err)
	}
	return time.UnixMilli(v), nil
}

// advance moves c's cursor to tick (never back), adds n to counter, and,
// for a tick that has a run, records it as the last one.
var advanceScript = redis.NewScript(`
local t = tonumber(ARGV[1])
if t > tonumber(redis.call("HGET", KEYS[1], "cursor") or "0") then
  redis.call("HSET", KEYS[1], "cursor", ARGV[1])
end
if ARGV[2] ~= "" then redis.call("HINCRBY", KEYS[1], ARGV[2], ARGV[3]) end
if ARGV[4] ~= "" and t >= tonumber(redis.call("HGET", KEYS[1], "last_tick") or "0") then
  redis.call("HSET", KEYS[1], "last_tick", ARGV[1], "last_run", ARGV[4])
end
return 1`)

// State hash counters.
const (
	fieldFired      = "fired"
	fieldMissed     = "missed"
	fieldSkipped    = "skipped"
	fieldDuplicates = "duplicates"
	fieldManual     = "manual"
)

func (s *Scheduler) advance(ctx context.Context, name string, tick time.Time, counter string, n int64, runID string) error {
	err := advanceScript.Run(ctx, s.rdb, []string{s.stateKey(name)}, tick.UnixMilli(), counter, n, runID).Err()
	if err != nil {
		return fmt.Errorf("recording tick %s of schedule %q: %w", tick.UTC().Format(time.RFC3339), name, err)
	}
	return nil
}

// skipMissed records n missed ticks of c from first up to upto.
func (s *Scheduler) skipMissed(ctx context.Context, c *compiled, first, upto time.Time, n int64, capped bool) error {
	if err := s.advance(ctx, c.Name, upto, fieldMissed, n, ""); err != nil {
		return err
	}
	s.log.Warn("skipped ticks missed while no scheduler ran",
		"schedule", c.Name, "ticks", n, "at_least", capped,
		"first", first.UTC().Format(time.RFC3339), "up_to", upto.UTC().Format(time.RFC3339),
		"misfire_grace", c.MisfireGrace)
	s.metrics.TicksMissed(c.Name, n)
	return nil
}

// fire starts the run of tick t of c, unless the overlap policy skips it or
// another leader already started it.
func (s *Scheduler) fire(ctx context.Context, c *compiled, t time.Time) error {
	id := RunID(c.Name, t)
	tick := t.UTC().Format(time.RFC3339)
	if c.Overlap == configs.OverlapSkip {
		prev, active, err := s.activeRun(ctx, c.Name)
		if err != nil {
			return err
		}
		if active && prev != id {
			if err := s.advance(ctx, c.Name, t, fieldSkipped, 1, ""); err != nil {
				return err
			}
			s.log.Info("tick skipped: the previous run has not finished", "schedule", c.Name, "tick", tick, "run_id", prev)
			s.metrics.TickSkipped(c.Name)
			return nil
		}
	}
	trig := jobs.Trigger{Kind: TriggerKind, Name: c.Name, Tick: tick}
	_, err := s.start(ctx, c, id, trig)
	switch {
	case errors.Is(err, runs.ErrExists):
		if err := s.advance(ctx, c.Name, t, fieldDuplicates, 1, id); err != nil {
			return err
		}
		s.log.Info("tick already fired by another instance", "schedule", c.Name, "tick", tick, "run_id", id)
		s.metrics.TickDuplicate(c.Name)
	case err != nil:
		return fmt.Errorf("firing tick %s of schedule %q: %w", tick, c.Name, err)
	default:
		if err := s.advance(ctx, c.Name, t, fieldFired, 1, id); err != nil {
			return err
		}
		s.log.Info("tick fired", "schedule", c.Name, "tick", tick, "run_id", id, "late", s.clock.Now().Sub(t).Round(time.Millisecond))
		s.metrics.TickFired(c.Name)
	}
	return nil
}

// activeRun returns the last run of schedule name and whether it is still
// going. A run whose record has expired is long finished.
func (s *Scheduler) activeRun(ctx context.Context, name string) (string, bool, error) {
	id, err := s.rdb.HGet(ctx, s.stateKey(name), "last_run").Result()
	if errors.Is(err, redis.Nil) || id == "" {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading the last run of schedule %q: %w", name, err)
	}
	st, err := s.store.StateOf(ctx, id)
	if errors.Is(err, runs.ErrNotFound) {
		return id, false, nil
	}
	if err != nil {
		return "", false, err
	}
	return id, !st.Final(), nil
}

// start starts the run of c with id: on its one target, or, when it names
// several (or all of several), one run per target grouped under id
// (runs.Starter.StartGroup), each started once however many replicas fire
// the tick. For a group it returns a run that stands for it: its id and
// state.
func (s *Scheduler) start(ctx context.Context, c *compiled, id string, trig jobs.Trigger) (*jobs.Run, error) {
	targets := c.Targets
	if len(targets) == 0 || slices.Contains(targets, jobs.AllTargets) {
		targets = s.starter.TargetNames()
	}
	opts := c.options()
	if len(targets) == 1 {
		opts.Target = targets[0]
		return s.starter.StartWithID(ctx, id, c.Request, opts, trig)
	}
	started, err := s.starter.StartGroup(ctx, id, targets, c.Request, opts, trig)
	if err != nil {
		return nil, err
	}
	return &jobs.Run{ID: id, Trigger: trig, Target: jobs.AllTargets, State: jobs.GroupStateOf(started)}, nil
}

// ErrRunActive marks a trigger refused by overlap: skip because the
// schedule's last run has not finished; the error is a *RunActiveError.
var ErrRunActive = errors.New("the schedule's last run has not finished")

// RunActiveError is a trigger refused by the overlap policy. RunID is the
// run still going ("" when another trigger of the schedule is starting one
// at this moment).
type RunActiveError struct {
	Schedule, RunID string
}

func (e *RunActiveError) Error() string {
	if e.RunID == "" {
		return fmt.Sprintf("schedule %q: another trigger is starting a run now (overlap: skip)", e.Schedule)
	}
	return fmt.Sprintf("schedule %q: its run %s has not finished (overlap: skip)", e.Schedule, e.RunID)
}

// Is makes errors.Is(err, ErrRunActive) true.
func (e *RunActiveError) Is(target error) bool { return target == ErrRunActive }

// ActiveRunID is what the API names in its 409.
func (e *RunActiveError) ActiveRunID() string { return e.RunID }

// Trigger starts a run of schedule name now, by hand, whether or not this
// instance leads and whether or not the schedule is enabled. The overlap
// policy applies as it does to ticks (the same activeRun check): with
// overlap skip and the schedule's last run not final, the trigger is
// refused with a *RunActiveError unless force is set. Triggers of one
// schedule take a short lock in Redis, so that triggers racing each other
// cannot all find no run going. The run's trigger is {Kind: "schedule",
// Name: name, Tick: "manual-<RFC 3339 time>"} and its id
// "sched-<name>-manual-<unique>". It becomes the schedule's last run.
func (s *Scheduler) Trigger(ctx context.Context, name string, force bool) (*jobs.Run, error) {
	c, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("schedule %q: %w", name, ErrUnknownSchedule)
	}
	if c.Overlap == configs.OverlapSkip && !force {
		release, held, err := s.lockTrigger(ctx, name)
		if err != nil {
			return nil, err
		}
		if !held {
			return nil, &RunActiveError{Schedule: name}
		}
		defer release()
		prev, active, err := s.activeRun(ctx, name)
		if err != nil {
			return nil, err
		}
		if active {
			return nil, &RunActiveError{Schedule: name, RunID: prev}
		}
	}
	now := s.clock.Now()
	id := "sched-" + name + "-manual-" + runs.NewID(now)
	trig := jobs.Trigger{Kind: TriggerKind, Name: name, Tick: ManualTickPrefix + now.UTC().Format(time.RFC3339)}
	r, err := s.start(ctx, c, id, trig)
	if err != nil {
		return nil, fmt.Errorf("triggering schedule %q: %w", name, err)
	}
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, s.stateKey(name), "last_run", id)
	pipe.HIncrBy(ctx, s.stateKey(name), fieldManual, 1)
	if _, err := pipe.Exec(ctx); err != nil {
		// The run is started; only the schedule's bookkeeping is behind.
		s.log.Warn("recording a manual run", "schedule", name, "run_id", id, "err", err)
	}
	s.log.Info("schedule triggered by hand", "schedule", name, "run_id", id, "forced", force)
	return r, nil
}

// triggerLockTTL bounds how long a crashed trigger can keep the lock.
const triggerLockTTL = 30 * time.Second

// unlockScript deletes the trigger lock if it is still ours.
// KEYS[1] -> the lock; ARGV[1] -> our token. Output: 1 if deleted, else 0.
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
`)

// lockTrigger takes the trigger lock of schedule name: held is false when
// another trigger holds it.
func (s *Scheduler) lockTrigger(ctx context.Context, name string) (release func(), held bool, err error) {
	key := s.prefix + "{scheduler}:trigger:" + name
	tok := newToken()
	ok, err := s.rdb.SetNX(ctx, key, tok, triggerLockTTL).Result()
	if err != nil {
		return nil, false, fmt.Errorf("locking the triggers of schedule %q: %w", name, err)
	}
	if !ok {
		return nil, false, nil
	}
	return func() {
		if err := unlockScript.Run(context.WithoutCancel(ctx), s.rdb, []string{key}, tok).Err(); err != nil {
			s.log.Warn("releasing the trigger lock (it expires by itself)", "schedule", name, "err", err)
		}
	}, true, nil
}

// ScheduleStatus is one schedule as `scanq schedules` and
// GET /api/v1/schedules show it.
type ScheduleStatus struct {
	Name     string `json:"name"`
	Cron     string `json:"cron"`
	Timezone string `json:"timezone"`
	Enabled  bool   `json:"enabled"`
	Queue    string `json:"queue"`
	// Targets are the targets each tick starts a run on: names, or "all".
	Targets      []string      `json:"targets"`
	Overlap      string        `json:"overlap"`
	MisfireGrace jobs.Duration `json:"misfire_grace"`
	// Next fire times, in the schedule's zone; none when disabled.
	Next []time.Time `json:"next"`
	// LastTick is the last tick that started a run.
	LastTick *time.Time `json:"last_tick,omitempty"`
	// LastRunID is the schedule's most recent run (a tick's or a manual
	// one), LastRunState its state ("" once its record has expired).
	LastRunID    string     `json:"last_run_id,omitempty"`
	LastRunState jobs.State `json:"last_run_state,omitempty"`
	// Counters since the schedule was first seen, over all replicas.
	Fired      int64 `json:"ticks_fired"`
	Missed     int64 `json:"ticks_missed"`
	Skipped    int64 `json:"ticks_skipped"`
	Duplicates int64 `json:"ticks_duplicate"`
	Manual     int64 `json:"manual_runs"`
}

// scheduleTargets are a schedule's targets as Status shows them: none
// listed is every target, "all".
func scheduleTargets(targets []string) []string {
	if len(targets) == 0 {
		return []string{jobs.AllTargets}
	}
	return targets
}

// Status lists every schedule, in configuration order.
func (s *Scheduler) Status(ctx context.Context) ([]ScheduleStatus, error) {
	now := s.clock.Now()
	pipe := s.rdb.Pipeline()
	hs := make([]*redis.MapStringStringCmd, len(s.scheds))
	for i, c := range s.scheds {
		hs[i] = pipe.HGetAll(ctx, s.stateKey(c.Name))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading schedule state: %w", err)
	}
	out := make([]ScheduleStatus, 0, len(s.scheds))
	for i, c := range s.scheds {
		h := hs[i].Val()
		n := func(f string) int64 { v, _ := strconv.ParseInt(h[f], 10, 64); return v }
		st := ScheduleStatus{
			Name: c.Name, Cron: c.Cron, Timezone: c.loc.String(), Enabled: c.Enabled,
			Queue: c.Queue, Targets: scheduleTargets(c.Targets), Overlap: c.Overlap, MisfireGrace: jobs.Duration(c.MisfireGrace),
			Next: []time.Time{}, LastRunID: h["last_run"],
			Fired: n(fieldFired), Missed: n(fieldMissed), Skipped: n(fieldSkipped),
			Duplicates: n(fieldDuplicates), Manual: n(fieldManual),
		}
		if ms := n("last_tick"); ms > 0 {
			t := time.UnixMilli(ms).In(c.loc)
			st.LastTick = &t
		}
		if c.Enabled {
			for t := now; len(st.Next) < s.nextCount; {
				if t = c.cron.Next(t); t.IsZero() {
					break
				}
				st.Next = append(st.Next, t.In(c.loc))
			}
		}
		if st.LastRunID != "" {
			state, err := s.store.StateOf(ctx, st.LastRunID) // a run, or a group of one per target
			if err != nil && !errors.Is(err, runs.ErrNotFound) {
				return nil, err
			}
			st.LastRunState = state
		}
		out = append(out, st)
	}
	return out, nil
}
