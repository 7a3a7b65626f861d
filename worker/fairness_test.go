package worker_test

import (
	"testing"
	"time"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// TestSecondRunTakesTurns: a bulk run over a large registry keeps its
// target at its request rate with dozens of batches queued; a second bulk
// run on the same target, started then, is not served after all of them.
// Its first batch reaches HSS before the first run's queue has drained:
// the first run's batches far back in line go back to the queue instead of
// holding the worker's slots, and the second run takes turns with it.
//
// Real Redis only: the first run's tasks far back in line pass through the
// slots at the pace of a few Redis round trips each, and miniredis under
// the race detector is slow enough (a Lua script in an interpreter in the
// test process) to let the first run's queue go first (101 of 83 in CI).
func TestSecondRunTakesTurns(t *testing.T) {
	b := redistest.Real(t)
	e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 3000},
		target: worker.Target{Name: "a", RequestRate: 40, RequestBurst: 1}})
	e.start(16) // 20 slots in all, more than the waiters a token queue keeps in them
	first := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}},
		jobs.Options{BatchSize: 10, Priority: jobs.QueueBulk, IncludeUnscannable: true})
	var queued int64
	testkit.Eventually(t, 30*time.Second, func() bool {
		var err error
		if queued, err = e.store.Backlog(t.Context(), first.ID); err != nil {
			t.Fatal(err)
		}
		return queued >= 40 && len(e.emu.Submissions()) >= 10
	}, "the first run to queue 40 batches")

	var imgs []hss.ImageInfo
	for _, ri := range e.emu.RegistryImages()[:20] {
		imgs = append(imgs, hss.ImageInfo{Namespace: ri.Namespace, ImageName: ri.ImageName, ImageVersion: ri.ImageVersion})
	}
	before := len(e.emu.Submissions())
	second := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}},
		jobs.Options{BatchSize: 2, Priority: jobs.QueueBulk, IncludeUnscannable: true})
	ahead := -1
	testkit.Eventually(t, 30*time.Second, func() bool {
		for i, s := range e.emu.Submissions()[before:] {
			if len(s.Body.ImageInfo) == 2 { // the second run's batches hold 2 images, the first's 10
				ahead = i
				return true
			}
		}
		return false
	}, "the second run's first batch to reach HSS")
	t.Logf("the first run had %d batches queued; %d of its calls reached HSS between the second's start and its first call", queued, ahead)
	// In line behind the first run's queue, the second run's run, page
	// and batch tasks each wait for all of its batches queued then:
	// more calls than were queued went first (119 of 82 measured, real
	// Redis 83 of 64). Taking turns, a handful on real Redis, a few
	// dozen on a busy miniredis.
	if ahead >= int(queued) {
		t.Errorf("%d of the first run's calls went before the second run's first (it had %d queued): the second waited in line behind them", ahead, queued)
	}
	if r := e.wait(second.ID, 30*time.Second); r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != 20 {
		t.Errorf("second run: %s %+v", r.State, r.Counters)
	}
}
