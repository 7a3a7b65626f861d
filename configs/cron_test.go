package configs

import (
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/testkit"
)

func TestParseCron(t *testing.T) {
	t.Parallel()
	shanghai := testkit.Zone(t, "Asia/Shanghai")
	ny := testkit.Zone(t, "America/New_York")
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
			sched, err := Schedule{Name: "s", Cron: tc.spec, Timezone: tc.tz}.CronSchedule()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("CronSchedule(%q, %q) error = %v, want one containing %q", tc.spec, tc.tz, err, tc.err)
				}
				if !strings.HasPrefix(err.Error(), `schedule "s": `) {
					t.Errorf("error %q does not name the schedule first", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CronSchedule(%q, %q): %v", tc.spec, tc.tz, err)
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
	e := Every{Interval: 2 * time.Second}
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

// FuzzCronSchedule checks that no spec makes CronSchedule panic, and that every error
// names the schedule.
func FuzzCronSchedule(f *testing.F) {
	for _, s := range []string{"0 2 * * *", "@every 10s", "CRON_TZ=UTC @daily", "TZ=", "CRON_TZ=", "61 * * * *", "@every -1s", "*/0 * * * *", "0-70/3 * * * *"} {
		f.Add(s, "")
	}
	f.Add("0 2 * * *", "Asia/Shanghai")
	f.Fuzz(func(t *testing.T, spec, tz string) {
		sched, err := Schedule{Name: "f", Cron: spec, Timezone: tz}.CronSchedule()
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
