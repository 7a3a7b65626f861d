package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParse(t *testing.T) {
	t.Parallel()
	shanghai := mustZone(t, "Asia/Shanghai")
	ny := mustZone(t, "America/New_York")
	from := time.Date(2026, 11, 27, 1, 30, 0, 0, time.UTC)
	tests := []struct {
		name, spec, tz string
		want           []time.Time // the next fire times after from
		err            string      // substring of the error; "" = ok
	}{
		{name: "five fields", spec: "0 2 * * *", want: []time.Time{
			time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC), time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)}},
		{name: "ranges and steps", spec: "*/20 1-2 * * MON-FRI", want: []time.Time{
			time.Date(2026, 11, 27, 1, 40, 0, 0, time.UTC), time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)}},
		{name: "hourly", spec: "@hourly", want: []time.Time{
			time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC), time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)}},
		{name: "daily", spec: "@daily", want: []time.Time{time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)}},
		{name: "midnight", spec: "@midnight", want: []time.Time{time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)}},
		{name: "weekly", spec: "@weekly", want: []time.Time{time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)}},
		{name: "monthly", spec: "@monthly", want: []time.Time{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "yearly", spec: "@yearly", want: []time.Time{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "every is epoch aligned", spec: "@every 10s", want: []time.Time{
			time.Date(2026, 11, 27, 1, 30, 10, 0, time.UTC), time.Date(2026, 11, 27, 1, 30, 20, 0, time.UTC)}},
		{name: "every minutes", spec: "@every 45m", want: []time.Time{
			time.Unix((from.Unix()/2700+1)*2700, 0).UTC()}},
		{name: "timezone", spec: "0 2 * * *", tz: "Asia/Shanghai", want: []time.Time{
			time.Date(2026, 11, 28, 2, 0, 0, 0, shanghai).UTC(), time.Date(2026, 11, 29, 2, 0, 0, 0, shanghai).UTC()}},
		{name: "CRON_TZ prefix", spec: "CRON_TZ=America/New_York 0 2 * * *", want: []time.Time{
			time.Date(2026, 11, 27, 2, 0, 0, 0, ny).UTC()}},
		{name: "TZ prefix", spec: "TZ=Asia/Shanghai 0 2 * * *", want: []time.Time{
			time.Date(2026, 11, 28, 2, 0, 0, 0, shanghai).UTC()}},
		{name: "CRON_TZ with descriptor", spec: "CRON_TZ=Asia/Shanghai @daily", want: []time.Time{
			time.Date(2026, 11, 28, 0, 0, 0, 0, shanghai).UTC()}},
		{name: "surrounding spaces", spec: "  0 2 * * *  ", want: []time.Time{time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)}},

		{name: "minute out of range", spec: "61 * * * *", err: `schedule "s": cron "61 * * * *": `},
		{name: "too few fields", spec: "* * * *", err: `cron "* * * *": `},
		{name: "six fields", spec: "0 0 2 * * *", err: `cron "0 0 2 * * *": `},
		{name: "empty", spec: "", err: `cron "": empty`},
		{name: "blank", spec: "   ", err: `empty`},
		{name: "garbage", spec: "every night", err: `cron "every night"`},
		{name: "unknown descriptor", spec: "@fortnightly", err: `cron "@fortnightly"`},
		{name: "bad every", spec: "@every soon", err: `cron "@every soon"`},
		{name: "never fires", spec: "0 0 30 2 *", err: "never fires"},
		{name: "unknown zone", spec: "0 2 * * *", tz: "Mars/Olympus", err: `schedule "s": timezone "Mars/Olympus": unknown time zone`},
		{name: "unknown CRON_TZ zone", spec: "CRON_TZ=Mars/Olympus 0 2 * * *", err: `unknown time zone "Mars/Olympus"`},
		{name: "CRON_TZ without schedule", spec: "CRON_TZ=UTC", err: "must be followed by a space"},
		{name: "CRON_TZ without zone", spec: "CRON_TZ= 0 2 * * *", err: "needs a zone name"},
		{name: "zone given twice", spec: "CRON_TZ=UTC 0 2 * * *", tz: "UTC", err: "the zone is given twice"},
		{name: "prefix twice", spec: "TZ=UTC CRON_TZ=UTC 0 2 * * *", err: "the zone is given twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sched, err := Parse("s", tc.spec, tc.tz)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse(%q, %q) error = %v, want one containing %q", tc.spec, tc.tz, err, tc.err)
				}
				if !strings.HasPrefix(err.Error(), `schedule "s": `) {
					t.Errorf("error %q does not name the schedule first", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q, %q): %v", tc.spec, tc.tz, err)
			}
			at := from
			for i, want := range tc.want {
				at = sched.Next(at)
				if !at.Equal(want) {
					t.Fatalf("fire time %d = %s, want %s", i, at.UTC(), want.UTC())
				}
			}
		})
	}
}

func TestEveryNext(t *testing.T) {
	t.Parallel()
	e := every{d: 2 * time.Second}
	tests := []struct{ at, want time.Time }{
		{time.Unix(100, 0), time.Unix(102, 0)}, // on a tick: strictly after
		{time.Unix(100, 1), time.Unix(102, 0)},
		{time.Unix(101, 999_999_999), time.Unix(102, 0)},
		{time.Unix(-3, 0), time.Unix(-2, 0)}, // before the epoch: floor, not truncation
		{time.Unix(-2, 0), time.Unix(0, 0)},
	}
	for _, tc := range tests {
		if got := e.Next(tc.at); !got.Equal(tc.want) {
			t.Errorf("Next(%d.%09d) = %d, want %d", tc.at.Unix(), tc.at.Nanosecond(), got.Unix(), tc.want.Unix())
		}
	}
}

func TestCountTicks(t *testing.T) {
	t.Parallel()
	everyMin, err := Parse("m", "* * * * *", "")
	if err != nil {
		t.Fatal(err)
	}
	every2s, err := Parse("e", "@every 2s", "")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		spec        string
		after, upto time.Time
		limit       int64
		want        int64
		capped      bool
	}{
		{"cron: half-open interval", "cron", base, base.Add(10 * time.Minute), 100, 10, false},
		{"cron: empty interval", "cron", base, base, 100, 0, false},
		{"cron: reversed interval", "cron", base.Add(time.Hour), base, 100, 0, false},
		{"cron: capped", "cron", base, base.Add(10 * time.Minute), 4, 4, true},
		{"every: exact", "every", base, base.Add(10 * time.Second), 100, 5, false},
		{"every: off-tick bounds", "every", base.Add(time.Second), base.Add(9 * time.Second), 100, 4, false},
		{"every: none in interval", "every", base.Add(100 * time.Millisecond), base.Add(time.Second), 100, 0, false},
		{"every: counted, not capped", "every", base, base.Add(365 * 24 * time.Hour), 10, 365 * 24 * 1800, false},
	}
	for _, tc := range tests {
		sched := everyMin
		if tc.spec == "every" {
			sched = every2s
		}
		n, capped := countTicks(sched, tc.after, tc.upto, tc.limit)
		if n != tc.want || capped != tc.capped {
			t.Errorf("%s: countTicks = %d, %v; want %d, %v", tc.name, n, capped, tc.want, tc.capped)
		}
	}
}

func validSchedule(name string) Schedule {
	all := true
	return Schedule{Name: name, Spec: "0 2 * * *", Enabled: true,
		Request: jobs.ScanRequest{GlobalImageType: hss.ImageTypeRegistry, ScanTaskBody: hss.ScanTaskBody{IsAll: &all}}}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	with := func(f func(*Schedule)) []Schedule {
		s := validSchedule("nightly")
		f(&s)
		return []Schedule{s}
	}
	neg := int32(-1)
	tests := []struct {
		name string
		ss   []Schedule
		err  string // "" = valid
	}{
		{"none", nil, ""},
		{"one", with(func(*Schedule) {}), ""},
		{"two", []Schedule{validSchedule("a"), validSchedule("b")}, ""},
		{"name with dots and dashes", with(func(s *Schedule) { s.Name = "Nightly.full_registry-1" }), ""},
		{"name missing", with(func(s *Schedule) { s.Name = "" }), "schedules[0]: name: required"},
		{"name bad characters", with(func(s *Schedule) { s.Name = "night ly" }), `schedule "night ly": name: letters`},
		{"name starts with dash", with(func(s *Schedule) { s.Name = "-x" }), `schedule "-x": name:`},
		{"name too long", with(func(s *Schedule) { s.Name = strings.Repeat("a", 65) }), "at most 64"},
		{"name 64 long", with(func(s *Schedule) { s.Name = strings.Repeat("a", 64) }), ""},
		{"duplicate names", []Schedule{validSchedule("a"), validSchedule("a")}, `schedule "a": name: used by two schedules`},
		{"bad cron", with(func(s *Schedule) { s.Spec = "61 * * * *" }), `schedule "nightly": cron "61 * * * *": `},
		{"location", with(func(s *Schedule) { s.Location = mustZone(t, "Europe/Berlin") }), ""},
		{"location and CRON_TZ", with(func(s *Schedule) {
			s.Location, s.Spec = mustZone(t, "Europe/Berlin"), "CRON_TZ=UTC 0 2 * * *"
		}), "the zone is given twice"},
		{"queue default", with(func(s *Schedule) { s.Queue = jobs.QueueDefault }), ""},
		{"queue critical", with(func(s *Schedule) { s.Queue = jobs.QueueCritical }), ""},
		{"queue bad", with(func(s *Schedule) { s.Queue = "urgent" }), `schedule "nightly": queue: must be one of critical, default, bulk, got "urgent"`},
		{"overlap allow", with(func(s *Schedule) { s.Overlap = OverlapAllow }), ""},
		{"overlap skip", with(func(s *Schedule) { s.Overlap = OverlapSkip }), ""},
		{"overlap bad", with(func(s *Schedule) { s.Overlap = "queue" }), `overlap: must be skip or allow, got "queue"`},
		{"misfire grace", with(func(s *Schedule) { s.MisfireGrace = time.Minute }), ""},
		{"misfire grace negative", with(func(s *Schedule) { s.MisfireGrace = -time.Second }), "misfire_grace: must not be negative"},
		{"batch size", with(func(s *Schedule) { s.BatchSize = 50 }), ""},
		{"batch size negative", with(func(s *Schedule) { s.BatchSize = -1 }), "batch_size: must be >= 0"},
		{"request bad", with(func(s *Schedule) { s.Request.GlobalImageType = "cloud" }), `schedule "nightly": request: `},
		{"request bad rate limit", with(func(s *Schedule) { s.Request.ScanTaskBody.RateLimit = &neg }), "rate_limit"},
		{"request beyond the list API", with(func(s *Schedule) {
			v := strings.Repeat("v", 65)
			s.Request.ScanTaskBody.QueryInfo = &hss.QueryInfo{ImageVersion: &v}
		}), "query_info.image_version: length 65 exceeds 64 (ListRegistryImages)"},
		{"disabled is still checked", with(func(s *Schedule) { s.Enabled, s.Spec = false, "bad" }), `cron "bad"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(tc.ss)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Validate error = %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestRunID(t *testing.T) {
	t.Parallel()
	tick := time.Date(2026, 11, 27, 10, 0, 0, 0, mustZone(t, "Asia/Shanghai"))
	if got, want := RunID("nightly", tick), "sched-nightly-20261127T020000Z"; got != want {
		t.Errorf("RunID = %q, want %q", got, want)
	}
}

// FuzzParse checks that no spec makes Parse panic, and that every error
// names the schedule.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 2 * * *", "@every 10s", "CRON_TZ=UTC @daily", "TZ=", "CRON_TZ=", "61 * * * *", "@every -1s", "*/0 * * * *", "0-70/3 * * * *"} {
		f.Add(s, "")
	}
	f.Add("0 2 * * *", "Asia/Shanghai")
	f.Fuzz(func(t *testing.T, spec, tz string) {
		sched, err := Parse("f", spec, tz)
		if err != nil {
			if !strings.HasPrefix(err.Error(), `schedule "f": `) {
				t.Fatalf("error %q does not name the schedule", err)
			}
			return
		}
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if next := sched.Next(from); !next.IsZero() && !next.After(from) {
			t.Fatalf("Next(%s) = %s, not after it", from, next)
		}
	})
}
