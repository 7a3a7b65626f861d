package scheduler

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/scanq/scanq/jobs"
)

// Overlap policies: what a tick does while the previous run of its schedule
// has not finished.
const (
	OverlapSkip  = "skip"  // the tick is skipped, logged and counted (default)
	OverlapAllow = "allow" // the tick starts a second run anyway
)

// DefaultMisfireGrace is the misfire grace of a schedule that sets none.
const DefaultMisfireGrace = time.Hour

// TriggerKind is the jobs.Trigger kind of every run a schedule starts. A
// tick's run has Tick set to the tick time (RFC 3339); a run started by hand
// (Scheduler.Trigger) has Tick "manual-" followed by the time it was asked
// for, so that consumers counting schedule runs see both and can tell them
// apart.
const TriggerKind = "schedule"

// ManualTickPrefix starts the Tick of a run started by hand.
const ManualTickPrefix = "manual-"

// Schedule is one cron schedule: when to fire and what to scan.
type Schedule struct {
	// Name is unique among the schedules: letters, digits, '.', '_' and
	// '-', starting with a letter or digit, at most 64 characters. It is
	// part of every run id the schedule makes.
	Name string
	// Spec is the robfig/cron spec: 5 fields, @daily-style descriptors,
	// @every 10m, optionally prefixed by CRON_TZ=Zone.
	Spec string
	// Location is the zone the cron fields are read in; nil = UTC, or the
	// spec's CRON_TZ= prefix (setting both is an error).
	Location *time.Location
	// Enabled false keeps the schedule listed (and triggerable by hand) but
	// never fires it.
	Enabled bool
	// Queue its runs go to: critical, default or bulk; "" = bulk.
	Queue string
	// Overlap is OverlapSkip or OverlapAllow; "" = skip.
	Overlap string
	// MisfireGrace: a tick missed while no scheduler held the lease is
	// still fired if it is the latest missed one and at most this late;
	// 0 = DefaultMisfireGrace.
	MisfireGrace time.Duration
	// BatchSize of its runs; 0 leaves it to the starter's default.
	BatchSize int
	// Request is what each run scans.
	Request jobs.ScanRequest
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks every schedule and that names are unique, naming the
// schedule and the field in each error.
func Validate(ss []Schedule) error {
	_, err := compile(ss)
	return err
}

// compiled is a validated schedule with its defaults filled in.
type compiled struct {
	Schedule
	cron cron.Schedule
	loc  *time.Location
}

func (c *compiled) options() jobs.Options {
	return jobs.Options{BatchSize: c.BatchSize, Priority: c.Queue}
}

func compile(ss []Schedule) ([]*compiled, error) {
	var errs []error
	seen := make(map[string]bool, len(ss))
	out := make([]*compiled, 0, len(ss))
	for i, s := range ss {
		c, err := compileOne(s)
		if err != nil {
			errs = append(errs, err)
		}
		if s.Name == "" {
			errs = append(errs, fmt.Errorf("schedules[%d]: name: required", i))
		} else if seen[s.Name] {
			errs = append(errs, fmt.Errorf("schedule %q: name: used by two schedules", s.Name))
		}
		seen[s.Name] = true
		out = append(out, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func compileOne(s Schedule) (*compiled, error) {
	c := &compiled{Schedule: s}
	if c.Queue == "" {
		c.Queue = jobs.QueueBulk
	}
	if c.Overlap == "" {
		c.Overlap = OverlapSkip
	}
	if c.MisfireGrace == 0 {
		c.MisfireGrace = DefaultMisfireGrace
	}
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("schedule %q: %s", s.Name, fmt.Sprintf(format, a...)))
	}
	if s.Name != "" && !nameRE.MatchString(s.Name) {
		bad("name: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters")
	}
	sched, loc, err := parseIn(s.Spec, s.Location)
	if err != nil {
		errs = append(errs, fmt.Errorf("schedule %q: %w", s.Name, err))
	}
	c.cron, c.loc = sched, loc
	if !jobs.ValidQueue(c.Queue) {
		bad("queue: must be one of critical, default, bulk, got %q", s.Queue)
	}
	if c.Overlap != OverlapSkip && c.Overlap != OverlapAllow {
		bad("overlap: must be %s or %s, got %q", OverlapSkip, OverlapAllow, s.Overlap)
	}
	if s.MisfireGrace < 0 {
		bad("misfire_grace: must not be negative, got %s", s.MisfireGrace)
	}
	if s.BatchSize < 0 {
		bad("batch_size: must be >= 0, got %d", s.BatchSize)
	}
	req := s.Request
	if err := req.Validate(); err != nil {
		bad("request: %v", err)
	} else if _, _, err := jobs.Resolve(&req, c.options()); err != nil {
		// A query the list API would refuse fails at start-up, not nightly.
		bad("request: %v", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// RunID is the id of the run that schedule name starts for tick: the same
// on every replica, so that the run store's atomic create lets only one of
// them start it.
func RunID(name string, tick time.Time) string {
	return "sched-" + name + "-" + tick.UTC().Format("20060102T150405Z")
}
