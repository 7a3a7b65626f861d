package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
)

// TestDemoScheduleFiresWithinAMinute: whenever a serve starts, the demo
// schedule's first tick is at most a minute away (a new schedule's cursor
// starts at the scheduler's start, and it fires the first tick after it).
func TestDemoScheduleFiresWithinAMinute(t *testing.T) {
	t.Parallel()
	d := app.DemoSchedule()
	spec, err := d.CronSchedule()
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	for step := time.Duration(0); step < 3*time.Hour; step += 7*time.Second + 130*time.Millisecond {
		start := base.Add(step)
		if wait := spec.Next(start).Sub(start); wait <= 0 || wait > time.Minute {
			t.Fatalf("started at %s, the demo schedule first fires %v later", start.Format(time.RFC3339Nano), wait)
		}
	}
	if err := configs.ValidateSchedules([]configs.Schedule{d}); err != nil {
		t.Fatal(err)
	}
}

// TestServeAddsDemoScheduleOnlyToDefaultSchedules: `scanq serve` on the
// embedded defaults adds the demo schedule (banner, the record the CLI's
// `scanq schedules` reads, /api/v1/schedules); a file that sets
// `schedules`, `schedules: []` included, gets exactly its own.
func TestServeAddsDemoScheduleOnlyToDefaultSchedules(t *testing.T) {
	cases := []struct {
		name, file string
		demo       bool
		schedules  string // the banner's list
	}{
		{"embedded defaults", "", true, "nightly-full-registry (0 2 * * *, next "},
		{"a file without schedules", "worker:\n  concurrency: 3\n", true, "nightly-full-registry (0 2 * * *, next "},
		{"schedules: []", "schedules: []\n", false, "schedules: none."},
		{"a file's own schedule", "schedules:\n  - {name: mine, cron: \"@daily\", request: {is_all: true}}\n", false, "mine (@daily, next "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := configs.LoadOptions{Set: map[string]string{"api.addr": "127.0.0.1:0"}}
			if c.file != "" {
				opts.File = filepath.Join(t.TempDir(), "scanq.yaml")
				if err := os.WriteFile(opts.File, []byte(c.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			a, logs := newAppWith(t, opts)
			t.Cleanup(a.Close)
			startServe(t, a, logs)
			ctx := context.Background()
			banner := logs.String()
			if !strings.Contains(banner, c.schedules) {
				t.Errorf("banner lacks %q:\n%s", c.schedules, banner)
			}
			if got := strings.Contains(banner, app.DemoScheduleName+" (@every 1m, next "); got != c.demo {
				t.Errorf("banner lists the demo schedule: %v, want %v:\n%s", got, c.demo, banner)
			}
			path, err := app.LocalServePath()
			if err != nil {
				t.Fatal(err)
			}
			rec, err := app.FindLocalServe(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if rec.DemoSchedule != c.demo {
				t.Errorf("serve record: demo_schedule %v, want %v", rec.DemoSchedule, c.demo)
			}
			s, err := a.NewScheduler()
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, x := range st {
				if x.Name == app.DemoScheduleName {
					found = true
					if len(x.Next) == 0 || time.Until(x.Next[0]) > time.Minute {
						t.Errorf("the demo schedule next fires at %v, over a minute away", x.Next)
					}
				}
			}
			if found != c.demo {
				t.Errorf("the scheduler fires the demo schedule: %v, want %v", found, c.demo)
			}
		})
	}
}
