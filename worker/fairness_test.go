package worker_test

import (
	"strings"
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
// target at its request rate with hundreds of batches queued (batches of
// one image); a second bulk run on the same target, started then, takes
// turns with it from its first call: it does not wait behind the first
// run's queue for worker slots. Its run task is on the target's critical
// queue and submits the run's first page from its own slot, each batch in
// line for its turn at once (submitInline).
//
// Counted: the first run's calls that reach HSS before the second run's
// first, and between its next ones. Before, its tasks waited in line behind
// the first run's queue: 39-42 calls went first on real Redis, and on
// miniredis under the race detector the whole queue (1,241 of 911); now 1
// (the next turn but one) on real Redis and a handful on miniredis, whose
// every script waits behind the first run's (the second's own start takes
// that long), and then one between each of its calls.
func TestSecondRunTakesTurns(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 3000}, cfg: worker.Config{MaxInlineWait: 5 * time.Second},
			target: worker.Target{Name: "a", RequestRate: 40, RequestBurst: 1}})
		e.start(16)
		first := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}},
			jobs.Options{BatchSize: 1, Priority: jobs.QueueBulk, IncludeUnscannable: true})
		var queued int64
		testkit.Eventually(t, 60*time.Second, func() bool {
			var err error
			if queued, err = e.store.Backlog(t.Context(), first.ID); err != nil {
				t.Fatal(err)
			}
			return queued >= 400 && len(e.emu.Submissions()) >= 10
		}, "the first run to queue 400 batches")

		var imgs []hss.ImageInfo
		for _, ri := range e.emu.RegistryImages()[:20] {
			imgs = append(imgs, hss.ImageInfo{Namespace: ri.Namespace, ImageName: ri.ImageName, ImageVersion: ri.ImageVersion})
		}
		before := len(e.emu.Submissions())
		second := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}},
			jobs.Options{BatchSize: 2, Priority: jobs.QueueBulk, IncludeUnscannable: true})
		if r := e.wait(second.ID, 60*time.Second); r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != 20 {
			t.Fatalf("second run: %s %+v", r.State, r.Counters)
		}
		var between []int // the first run's calls before each of the second's
		n := 0
		for _, s := range e.emu.Submissions()[before:] {
			if len(s.Body.ImageInfo) == 2 { // the second run's batches hold 2 images, the first's 1
				between = append(between, n)
				n = 0
			} else {
				n++
			}
		}
		t.Logf("the first run had %d batches queued; its calls before each of the second's: %v", queued, between)
		if len(between) != 10 {
			t.Fatalf("%d calls of the second run, want 10", len(between))
		}
		// Its first call: on real Redis, a handful of turns at most (its
		// own start, and the next turn but one); on miniredis, a small part
		// of the queue it no longer waits behind.
		limit := 12
		if b.Mini != nil {
			limit = int(queued) / 10
		}
		if between[0] > limit {
			t.Errorf("%d of the first run's calls went before the second run's first (%d were queued): it waited in line behind them", between[0], queued)
		}
		for i, n := range between[1:] {
			if n > 2 {
				t.Errorf("%d of the first run's calls between the second's calls %d and %d: they do not take turns", n, i+1, i+2)
			}
		}
	})
}

// TestInlineBatchKeepsItsRetries: a run starting on a contended target
// submits its first batches from its run task; one that fails there
// (503) is queued with the retries it has left: 1 + 3 tries in all, as a
// queued batch has, and the run goes on.
func TestInlineBatchKeepsItsRetries(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		var logs testkit.Buffer
		bad := &unavailableFor{version: "fails"}
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 300}, log: &logs, cfg: worker.Config{MaxAttempts: 4, MaxInlineWait: 5 * time.Second},
			target: worker.Target{Name: "a", RequestRate: 100, RequestBurst: 1},
			wrap:   func(h worker.HSS) worker.HSS { bad.HSS = h; return bad }})
		first := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}},
			jobs.Options{BatchSize: 1, Priority: jobs.QueueBulk, IncludeUnscannable: true})
		testkit.Eventually(t, 30*time.Second, func() bool {
			queued, err := e.store.Backlog(t.Context(), first.ID)
			return err == nil && queued >= 50
		}, "the first run to queue 50 batches")

		var imgs []hss.ImageInfo
		for _, v := range []string{"1", "fails", "3"} {
			imgs = append(imgs, hss.ImageInfo{Namespace: "inline", ImageName: "b", ImageVersion: v})
		}
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}}, jobs.Options{BatchSize: 1, Priority: jobs.QueueBulk})
		testkit.Eventually(t, 30*time.Second, func() bool { return strings.Contains(logs.String(), "batch failed in its run's task") },
			"the failing batch to be tried in its run's task first")
		r = e.wait(r.ID, 30*time.Second) // its retries are queued behind the first run's batches
		if c := r.Counters; c.ImagesFailed != 1 || c.ImagesSubmitted != 2 || r.State != jobs.StatePartiallyFailed {
			t.Fatalf("%s %+v", r.State, c)
		}
		if n := bad.calls.Load(); n != 4 {
			t.Errorf("the failing batch was tried %d times, want 1 + 3 retries", n)
		}
	})
}
