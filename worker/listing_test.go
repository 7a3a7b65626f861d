package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// TestRunInFlightAcrossTheUpgrade: an is_all run in flight across the
// upgrade to overlapping pages and passes: the old code (offset p*200, no
// geometry in the run) recorded pages 0 and 1, the first 400 images, then
// the workers were upgraded. The new code resumes at page 2 as the run
// started: pages of 200 that do not overlap, one pass, so that none of the
// 400 goes again.
func TestRunInFlightAcrossTheUpgrade(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 1000}})
	ctx := context.Background()
	all := true
	r := &jobs.Run{ID: "old", Trigger: jobs.Trigger{Kind: "cli"}, Target: "default", Queue: jobs.QueueCritical,
		Request: jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: &all}}, Options: jobs.Options{IncludeUnscannable: true},
		Source: jobs.SourceAll, BatchSize: 100}
	if err := e.store.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	// Started before the change: the run's hash holds no geometry.
	if _, err := e.store.Start(ctx, "old", runs.Geometry{}); err != nil {
		t.Fatal(err)
	}
	e.b.Client.HDel(ctx, "scanq:run:{old}", "page_size", "overlap", "max_passes")
	oldDone := map[string]bool{}
	for p := 0; p < 2; p++ {
		pg, err := e.client.ListImages(ctx, hss.ListQuery{GlobalImageType: "registry"}, p*200, 200)
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range pg.Images {
			oldDone[jobs.ImageKey(img.Info)] = true
		}
		// The old code counted them (a skip counter keeps the sums).
		if _, err := e.store.PageDone(ctx, "old", p, runs.PageResult{Listed: 200, Skipped: map[string]int{"old_code": 200}}); err != nil {
			t.Fatal(err)
		}
	}
	task, _ := jobs.NewPageTask("old", "", 2, jobs.QueueCritical)
	if _, err := asynq.NewClientFromRedisClient(e.b.Client).EnqueueContext(ctx, task); err != nil {
		t.Fatal(err)
	}
	got := e.wait("old", 30*time.Second)
	seen, _ := e.submitted()
	again := 0
	for k := range oldDone {
		if seen[k] > 0 {
			again++
		}
	}
	if got.Drift == nil || got.Drift.Passes != 1 {
		t.Errorf("drift %+v, want one pass", got.Drift)
	}
	if len(oldDone) != 400 {
		t.Fatalf("old code listed %d", len(oldDone))
	}
	if again > 0 {
		t.Errorf("%d of the 400 images the pre-upgrade code had already handled were submitted again", again)
	}
}

type countingLister struct {
	worker.HSS
	mu      sync.Mutex
	offsets []int
}

func (s *countingLister) ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error) {
	s.mu.Lock()
	s.offsets = append(s.offsets, offset)
	s.mu.Unlock()
	return s.HSS.ListImages(ctx, q, offset, limit)
}

// TestNoListingPastTheLastPage: 1090 images, pages at 0, 180, ..., 900;
// 900 is the last (900+200 >= 1090), and the page at 1080, which would hold
// only images page 900 listed, is not listed ahead.
func TestNoListingPastTheLastPage(t *testing.T) {
	cl := &countingLister{}
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 1090},
		wrap: func(h worker.HSS) worker.HSS { cl.HSS = h; return cl }})
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{IncludeUnscannable: true})
	r = e.wait(r.ID, 30*time.Second)
	t.Logf("offsets listed: %v, drift %+v", cl.offsets, r.Drift)
	for _, o := range cl.offsets {
		if o >= 1080 {
			t.Errorf("listed offset %d, past the last page (900) of a 1090-image registry", o)
		}
	}
}

// TestNoGapsWhenScanqFiltersTheListing: a query whose scan_status scanq
// applies itself to the listed items, over a registry that does not
// change: the pages follow on (told by the items listed before scanq's
// filter), so no page shows a gap and one reconciliation pass, which finds
// nothing, ends the listing.
func TestNoGapsWhenScanqFiltersTheListing(t *testing.T) {
	cl := &countingLister{}
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 5000},
		wrap: func(h worker.HSS) worker.HSS { cl.HSS = h; return cl }})
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{ScanStatus: new("download_failed")}}},
		jobs.Options{IncludeUnscannable: true})
	r = e.wait(r.ID, 60*time.Second)
	t.Logf("state %s, %d list calls, submitted %d, drift %+v", r.State, len(cl.offsets), r.Counters.ImagesSubmitted, r.Drift)
	if r.Drift == nil || r.Drift.Gaps > 0 || r.Drift.Passes > 2 {
		t.Errorf("a registry that never changed: drift %+v", *r.Drift)
	}
}
