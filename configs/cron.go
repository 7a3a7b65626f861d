package configs

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

// CronSchedule parses Cron in its time zone (the CRON_TZ=/TZ= prefix of the
// spec, else Timezone, else UTC). Validation and the scheduler both call it,
// so a spec that validates fires exactly as it was checked. Errors name the
// schedule: `schedule "nightly": cron "61 * * * *": ...`.
//
// @every specs are aligned to the Unix epoch (Every): an @every 10m
// schedule fires at :00, :10, ..., not counted from the moment a process
// starts, because every scheduler replica must agree on a tick's time (the
// tick's time is its identity).
func (s Schedule) CronSchedule() (cron.Schedule, error) {
	sched, _, err := s.parse()
	return sched, err
}

// Location is the time zone the schedule's cron fields are read in.
func (s Schedule) Location() (*time.Location, error) {
	_, loc, err := s.parse()
	return loc, err
}

func (s Schedule) parse() (cron.Schedule, *time.Location, error) {
	sched, loc, _, err := s.parseSpec()
	if err != nil {
		return nil, nil, fmt.Errorf("schedule %q: %w", s.Name, err)
	}
	return sched, loc, nil
}

// parseSpec parses Cron in Timezone; on error, key is the one at fault:
// "timezone" when Timezone names no zone, else "cron".
func (s Schedule) parseSpec() (sched cron.Schedule, loc *time.Location, key string, err error) {
	if s.Timezone != "" {
		if loc, err = time.LoadLocation(s.Timezone); err != nil {
			return nil, nil, "timezone", fmt.Errorf("timezone %q: unknown time zone", s.Timezone)
		}
	}
	sched, loc, err = parseCron(s.Cron, loc)
	if err != nil {
		return nil, nil, "cron", err
	}
	return sched, loc, "", nil
}

// parseCron parses spec in loc (nil = UTC unless the spec names its zone)
// and returns the schedule and the zone it is read in. A zone given both by
// a CRON_TZ= prefix and beside the spec is an error, as one of them would
// be ignored.
func parseCron(spec string, loc *time.Location) (cron.Schedule, *time.Location, error) {
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
	sched, err := robfigParse(spec)
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
		sched = Every{Interval: s.Delay}
	}
	return sched, loc, nil
}

// robfigParse calls robfig/cron, turning a panic into an error: the spec is
// outside input.
func robfigParse(spec string) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("cannot parse: %v", r)
		}
	}()
	return cronParser.Parse(spec)
}

// Every is an @every schedule aligned to the Unix epoch: its ticks are the
// multiples of Interval since 1970-01-01T00:00:00Z. The scheduler counts
// its ticks by arithmetic rather than one by one.
type Every struct{ Interval time.Duration }

// Next returns the first tick strictly after t.
func (e Every) Next(t time.Time) time.Time {
	n := t.UnixNano() / int64(e.Interval)
	if t.UnixNano() < 0 && t.UnixNano()%int64(e.Interval) != 0 {
		n-- // floor, not truncation toward zero
	}
	return time.Unix(0, (n+1)*int64(e.Interval)).UTC()
}
