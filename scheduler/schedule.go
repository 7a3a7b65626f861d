package scheduler

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/jobs"
)

// TriggerKind is the jobs.Trigger kind of every run a schedule starts. A
// tick's run has Tick set to the tick time (RFC 3339); a run started by hand
// (Scheduler.Trigger) has Tick "manual-" followed by the time it was asked
// for, so that consumers counting schedule runs see both and can tell them
// apart.
const TriggerKind = "schedule"

// ManualTickPrefix starts the Tick of a run started by hand.
const ManualTickPrefix = "manual-"

// compiled is a schedule with its defaults filled in and its cron spec
// parsed.
type compiled struct {
	configs.Schedule
	cron cron.Schedule
	loc  *time.Location
}

func (c *compiled) options() jobs.Options {
	return jobs.Options{BatchSize: c.BatchSize, Priority: c.Queue, Verify: c.Verifies()}
}

// compile fills in the defaults of ss (configs.Schedule.WithDefaults),
// holds them to configs' rules and parses their specs.
func compile(ss []configs.Schedule) ([]*compiled, error) {
	full := make([]configs.Schedule, len(ss))
	for i, s := range ss {
		full[i] = s.WithDefaults()
	}
	if err := configs.ValidateSchedules(full); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	out := make([]*compiled, len(full))
	for i, s := range full {
		// Valid, so both parse.
		sched, _ := s.CronSchedule()
		loc, _ := s.Location()
		out[i] = &compiled{Schedule: s, cron: sched, loc: loc}
	}
	return out, nil
}

// RunID is the id of the run that schedule name starts for tick: the same
// on every replica, so that the run store's atomic create lets only one of
// them start it.
func RunID(name string, tick time.Time) string {
	return "sched-" + name + "-" + tick.UTC().Format("20060102T150405Z")
}

// countTicks counts the ticks of sched in (after, until]. A cron schedule's
// ticks are counted one by one, stopping at limit; capped reports that it
// stopped there. @every ticks are counted exactly by arithmetic.
func countTicks(sched cron.Schedule, after, until time.Time, limit int64) (n int64, capped bool) {
	if !until.After(after) {
		return 0, false
	}
	if e, ok := sched.(configs.Every); ok {
		first := e.Next(after)
		if first.After(until) {
			return 0, false
		}
		return int64(until.Sub(first)/e.Interval) + 1, false // exact, no need to stop
	}
	for t := sched.Next(after); !t.IsZero() && !t.After(until); t = sched.Next(t) {
		if n++; n >= limit {
			return n, true
		}
	}
	return n, false
}
