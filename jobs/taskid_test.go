package jobs_test

import (
	"strings"
	"testing"

	"github.com/scanq/scanq/jobs"
)

// TestTaskIDsReadInAsynqmon: asynqmon's task lists show a task id up to
// its first '-', so scanq's ids have none, and two runs never share one.
func TestTaskIDsReadInAsynqmon(t *testing.T) {
	t.Parallel()
	runIDs := []string{
		"20261206T051726Z-5a190e94a0", // runs.NewID
		"20261206T051726Z-5a190e94a1",
		"sched-demo-unscanned-20261206T052200Z", // the scheduler's RunID
		"sched-demo_unscanned-20261206T052200Z",
		"sched-demo.unscanned-20261206T052200Z",
		"sched-demo-unscanned-manual-20261206T052200Z",
	}
	seen := map[string]string{}
	for _, id := range runIDs {
		ids := []string{jobs.RunTaskID(id), jobs.PageTaskID(id, 3), jobs.BatchTaskID(id, 3, 1),
			jobs.DeferredID(jobs.PageTaskID(id, 3), 2), jobs.NotifyTaskID(id)}
		for _, tid := range ids {
			if strings.Contains(tid, "-") {
				t.Errorf("task id %q has a '-': asynqmon would show %q", tid, tid[:strings.Index(tid, "-")])
			}
			if other, dup := seen[tid]; dup {
				t.Errorf("runs %s and %s share task id %q", other, id, tid)
			}
			seen[tid] = id
		}
	}
	if got, want := jobs.BatchTaskID("20261206T051726Z-5a190e94a0", 3, 1), "run:20261206T051726Z~5a190e94a0:p3:b1"; got != want {
		t.Errorf("BatchTaskID = %q, want %q", got, want)
	}
}
