package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/scheduler"
)

// TestTriggerHonoursOverlap: POST /api/v1/schedules/{name}/trigger of an
// overlap: skip schedule whose run is still going is a 409 naming that
// run; ?force=true starts another.
func TestTriggerHonoursOverlap(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, Options{})
		sched := configs.Schedule{Name: "full", Cron: "0 2 * * *", Enabled: true, Queue: "bulk", Overlap: configs.OverlapSkip}
		s, err := scheduler.New(b.Client, e.starter, e.store, []configs.Schedule{sched}, scheduler.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e = newEnv(t, b, Options{Schedules: SchedulesFunc(s.Status, s.Trigger, scheduler.ErrUnknownSchedule)})
		path := "/api/v1/schedules/full/trigger"
		first := createdRun(t, e.do(t, call{method: "POST", path: path, header: jsonCT}), http.StatusAccepted)
		for range 2 {
			r := e.do(t, call{method: "POST", path: path, header: jsonCT})
			if ae := r.apiErr(t); r.status != http.StatusConflict || ae.Code != codeScheduleRunActive || !strings.Contains(ae.Message, first) {
				t.Fatalf("trigger while %s runs: %d %+v", first, r.status, ae)
			}
		}
		forced := createdRun(t, e.do(t, call{method: "POST", path: path + "?force=true", header: jsonCT}), http.StatusAccepted)
		if forced == first {
			t.Fatal("the forced trigger returned the running run")
		}
		if r := e.do(t, call{method: "POST", path: path + "?force=maybe", header: jsonCT}); r.status != http.StatusBadRequest || r.apiErr(t).Code != codeInvalidQuery {
			t.Errorf("force=maybe: %d %s", r.status, r.body)
		}
		// Exactly two runs exist: the refused triggers created nothing.
		all, err := e.store.List(t.Context(), 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 {
			t.Fatalf("%d runs, want 2", len(all))
		}
	})
}
