package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// TestEstateIsolation: in an estate of two targets, t1 hangs (every call
// waits for ever), answers 429 to every call, 5xx to every call, or
// refuses the credentials, and a run on t1 with a batch per image is under
// way; a run on t0 still submits all its images. In the hang the run on t0
// starts only once t1's calls hold every worker slot t1 has: slots shared
// between targets, t0's tasks would wait behind t1's for ever.
func TestEstateIsolation(t *testing.T) {
	const slots = 2
	faults := []struct {
		name  string
		set   func(*emulator.Server)
		badSK bool
	}{
		{"hang", func(e *emulator.Server) { mustFaults(t, e, emulator.Faults{Latency: time.Hour}) }, false},
		{"429", func(e *emulator.Server) { mustFaults(t, e, emulator.Faults{ThrottleRate: 1}) }, false},
		{"5xx", func(e *emulator.Server) { mustFaults(t, e, emulator.Faults{FailRate: 1}) }, false},
		{"401", func(*emulator.Server) {}, true},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			e := newEstate(t, 2)
			e.yaml = fmt.Sprintf("worker: {concurrency: %d}\n", slots) + e.yaml
			if f.badSK {
				for i, kv := range e.env {
					if strings.HasPrefix(kv, "T1_SK=") {
						e.env[i] = "T1_SK=not-the-secret"
					}
				}
			}
			f.set(e.emus[1])
			a := e.app(t)
			ctx := context.Background()
			defer startWorker(ctx, a)()

			var imgs []hss.ImageInfo
			for i := range 3 * slots {
				imgs = append(imgs, hss.ImageInfo{Namespace: "bad", ImageName: "img", ImageVersion: fmt.Sprint(i)})
			}
			bad, err := a.Starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}},
				jobs.Options{Target: "t1", BatchSize: 1}, jobs.Trigger{Kind: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if f.name == "hang" {
				insp := asynq.NewInspectorFromRedisClient(a.Redis.Client)
				testkit.Eventually(t, 30*time.Second, func() bool {
					q, err := insp.GetQueueInfo(jobs.TaskQueue(bad.Queue, "t1"))
					return err == nil && q.Active >= slots
				}, "t1's calls to hold all %d of its slots", slots)
			}

			good, err := a.Starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}},
				jobs.Options{Target: "t0", IncludeUnscannable: true}, jobs.Trigger{Kind: "test"})
			if err != nil {
				t.Fatal(err)
			}
			var r *jobs.Run
			testkit.Eventually(t, 60*time.Second, func() bool {
				if r, err = a.Runs.Get(ctx, good.ID); err != nil {
					t.Fatal(err)
				}
				return r.State.Final()
			}, "the run on t0 to finish beside t1's trouble")
			if r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != 20 {
				t.Fatalf("run on t0: %s, %d of 20 images submitted", r.State, r.Counters.ImagesSubmitted)
			}
			if f.badSK {
				testkit.Eventually(t, 30*time.Second, func() bool {
					rb, err := a.Runs.Get(ctx, bad.ID)
					return err == nil && rb.State == jobs.StateFailed
				}, "the run on t1 to fail on its refused credentials")
			}
			if n := len(e.emus[1].Submissions()); n != 0 {
				t.Errorf("t1 accepted %d calls, want none", n)
			}
		})
	}
}

func mustFaults(t *testing.T, e *emulator.Server, f emulator.Faults) {
	t.Helper()
	if err := e.SetFaults(f); err != nil {
		t.Fatal(err)
	}
}
