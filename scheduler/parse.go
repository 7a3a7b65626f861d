package scheduler

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
)

// cronParser reads the standard 5-field crontab, the @daily-style
// descriptors and @every.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse reads the cron spec of schedule name in time zone tz ("" = UTC).
// The spec may carry its own zone as a CRON_TZ=Zone (or TZ=Zone) prefix;
// giving a zone both ways is an error, as one of them would be ignored.
// Errors name the schedule: `schedule "nightly": cron "61 * * * *": ...`.
//
// @every specs are aligned to the Unix epoch (an @every 10m schedule fires
// at :00, :10, ...), not counted from the moment a process starts: every
// replica must agree on a tick's time, because the tick's time is its
// identity (see RunID).
func Parse(name, spec, tz string) (cron.Schedule, error) {
	var loc *time.Location
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: timezone %q: unknown time zone", name, tz)
		}
		loc = l
	}
	sched, _, err := parseIn(spec, loc)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", name, err)
	}
	return sched, nil
}

// parseIn parses spec in loc (nil = UTC unless the spec names its zone) and
// returns the schedule and the zone it is read in.
func parseIn(spec string, loc *time.Location) (cron.Schedule, *time.Location, error) {
	orig := spec
	bad := func(format string, a ...any) error {
		return fmt.Errorf("cron %q: %s", orig, fmt.Sprintf(format, a...))
	}
	spec = strings.TrimSpace(spec)
	// robfig/cron understands the prefix itself but panics when no space
	// follows it, and would not let us check it against the zone given
	// beside the spec; so it is taken off here.
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if !strings.HasPrefix(spec, p) {
			continue
		}
		i := strings.IndexFunc(spec, unicode.IsSpace)
		if i < 0 {
			return nil, nil, bad("%sZONE must be followed by a space and the schedule", p)
		}
		zone := spec[len(p):i]
		if zone == "" {
			return nil, nil, bad("%s needs a zone name", p)
		}
		if loc != nil {
			return nil, nil, bad("the zone is given twice, by %s and by the schedule's timezone; keep one", p)
		}
		l, err := time.LoadLocation(zone)
		if err != nil {
			return nil, nil, bad("unknown time zone %q", zone)
		}
		loc = l
		spec = strings.TrimSpace(spec[i:])
		break
	}
	if loc == nil {
		loc = time.UTC
	}
	if spec == "" {
		return nil, nil, bad("empty")
	}
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		return nil, nil, bad("the zone is given twice")
	}
	sched, err := parseCron(spec)
	if err != nil {
		return nil, nil, bad("%v", err)
	}
	switch s := sched.(type) {
	case *cron.SpecSchedule:
		s.Location = loc
		// A spec like "0 0 30 2 *" (February 30) parses but never fires;
		// robfig/cron then returns the zero time.
		if s.Next(time.Now()).IsZero() {
			return nil, nil, bad("never fires")
		}
	case cron.ConstantDelaySchedule:
		sched = every{d: s.Delay}
	}
	return sched, loc, nil
}

// parseCron calls robfig/cron, turning a panic into an error: the spec is
// outside input.
func parseCron(spec string) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("cannot parse: %v", r)
		}
	}()
	return cronParser.Parse(spec)
}

// every is @every aligned to the Unix epoch: its ticks are the multiples of
// d since 1970-01-01T00:00:00Z.
type every struct{ d time.Duration }

// Next returns the first tick strictly after t.
func (e every) Next(t time.Time) time.Time {
	n := t.UnixNano() / int64(e.d)
	if t.UnixNano() < 0 && t.UnixNano()%int64(e.d) != 0 {
		n-- // floor, not truncation toward zero
	}
	return time.Unix(0, (n+1)*int64(e.d)).UTC()
}

// countTicks counts the ticks of sched in (after, until]. A cron schedule's
// ticks are counted one by one, stopping at limit; capped reports that it
// stopped there. @every ticks are counted exactly by arithmetic.
func countTicks(sched cron.Schedule, after, until time.Time, limit int64) (n int64, capped bool) {
	if !until.After(after) {
		return 0, false
	}
	if e, ok := sched.(every); ok {
		first := e.Next(after)
		if first.After(until) {
			return 0, false
		}
		return int64(until.Sub(first)/e.d) + 1, false // exact, no need to stop
	}
	for t := sched.Next(after); !t.IsZero() && !t.After(until); t = sched.Next(t) {
		if n++; n >= limit {
			return n, true
		}
	}
	return n, false
}
