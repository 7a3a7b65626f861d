package scheduler

import (
	"testing"
	"time"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

func TestCountTicks(t *testing.T) {
	t.Parallel()
	everyMin, err := configs.Schedule{Name: "m", Cron: "* * * * *"}.CronSchedule()
	if err != nil {
		t.Fatal(err)
	}
	every2s, err := configs.Schedule{Name: "e", Cron: "@every 2s"}.CronSchedule()
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

func validSchedule(name string) configs.Schedule {
	all := true
	return configs.Schedule{Name: name, Cron: "0 2 * * *", Enabled: true,
		Request: jobs.ScanRequest{GlobalImageType: hss.ImageTypeRegistry, ScanTaskBody: hss.ScanTaskBody{IsAll: &all}}}
}

func TestRunID(t *testing.T) {
	t.Parallel()
	tick := time.Date(2026, 11, 27, 10, 0, 0, 0, testkit.Zone(t, "Asia/Shanghai"))
	if got, want := RunID("nightly", tick), "sched-nightly-20261127T020000Z"; got != want {
		t.Errorf("RunID = %q, want %q", got, want)
	}
}
