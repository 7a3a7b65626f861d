package app_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// TestProgressBarAndLogsNeverShareALine: on a terminal, a log line written
// while the bar is drawn lands on a line of its own above the bar, which is
// drawn again below it; and the bar never starts at "0/0 images ETA 0s".
func TestProgressBarAndLogsNeverShareALine(t *testing.T) {
	var out testkit.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &app.Progress{W: &out, TTY: true, RatePeriod: time.Hour, Now: func() time.Time { return now }}
	log := slog.New(slog.NewTextHandler(p.LogWriter(), nil))

	r := &jobs.Run{ID: "run-1", State: jobs.StatePending}
	p.Update(r)
	log.Info("run started", "run", "run-1")
	started := now.Add(-time.Second)
	r.State, r.StartedAt = jobs.StateRunning, &started
	r.Counters.ImagesExpected, r.Counters.ImagesTotal, r.Counters.ImagesSubmitted = 100, 100, 40
	p.Update(r)
	log.Info("batch submitted", "run", "run-1")
	r.State, r.Counters.ImagesSubmitted = jobs.StateSucceeded, 100
	p.Update(r)
	p.Summary(r)

	s := out.String()
	if strings.Contains(s, "0/0") || strings.Contains(s, "ETA 0s") {
		t.Errorf("the bar shows 0/0 or ETA 0s before the run is resolved:\n%q", s)
	}
	for _, line := range strings.Split(s, "\n") {
		// What the terminal shows of a line: what follows its last
		// carriage return that clears it.
		if i := strings.LastIndex(line, "\r"); i >= 0 {
			line = line[i+1:]
		}
		if strings.Contains(line, "level=") && strings.Contains(line, "images") {
			t.Errorf("a log line shares the bar's line: %q", line)
		}
	}
	if !strings.Contains(s, "msg=\"batch submitted\"") || !strings.Contains(s, "40/100 images") {
		t.Errorf("output lacks the log line or the bar:\n%q", s)
	}
}

// TestProgressShowsReconciliation: while a run lists its source again the
// progress line says so (its counts stand still at the total meanwhile),
// and the summary prints what the passes saw.
func TestProgressShowsReconciliation(t *testing.T) {
	var out testkit.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &app.Progress{W: &out, RatePeriod: time.Hour, Now: func() time.Time { return now }}
	started := now.Add(-time.Minute)
	r := &jobs.Run{ID: "run-1", State: jobs.StateRunning, StartedAt: &started, Source: jobs.SourceAll,
		Counters: jobs.Counters{ImagesExpected: 100, ImagesTotal: 100, ImagesSubmitted: 100},
		Drift:    &jobs.Drift{Passes: 2}}
	p.Update(r)
	if !strings.Contains(out.String(), "(reconciliation pass 2)") {
		t.Errorf("progress during pass 2:\n%s", out.String())
	}
	r.State = jobs.StateSucceeded
	r.Drift = &jobs.Drift{Passes: 3, Found: 12, Disappeared: 4, Gaps: 1}
	p.Summary(r)
	if want := "listing: 3 passes, 12 found by reconciliation, 4 disappeared, 1 gap\n"; !strings.Contains(out.String(), want) {
		t.Errorf("summary lacks %q:\n%s", want, out.String())
	}
}
