package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// heldCreates holds every submission until released.
type heldCreates struct {
	worker.HSS
	release chan struct{}
}

func (h heldCreates) CreateScanTask(ctx context.Context, req *hss.CreateScanTaskRequest) error {
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return h.HSS.CreateScanTask(ctx, req)
}

// TestLookaheadIsBounded: with no batch able to finish, a run lists pages
// while fewer than PagesAhead pages' worth of batches plus the worker's
// slots are enqueued and unfinished, and then stops: the backlog settles at
// the first whole page at or over that bound, and stays there.
func TestLookaheadIsBounded(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		const (
			pagesAhead, slots, batch = 2, 4, 10
			perPage                  = 200 / batch
			bound                    = pagesAhead*perPage + slots                // 44
			want                     = (bound + perPage - 1) / perPage * perPage // 60: three pages
		)
		held := heldCreates{release: make(chan struct{})}
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 6000}, cfg: worker.Config{PagesAhead: pagesAhead, Slots: slots, ListOverlap: -1},
			wrap: func(h worker.HSS) worker.HSS { held.HSS = h; return held }})
		var once sync.Once
		release := func() { once.Do(func() { close(held.release) }) }
		t.Cleanup(release) // before the worker shuts down
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{BatchSize: batch, IncludeUnscannable: true})

		backlog := func() int64 {
			n, err := e.store.Backlog(t.Context(), r.ID)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		testkit.Eventually(t, 10*time.Second, func() bool { return backlog() >= want }, "a backlog of %d batches", want)
		// Then until the page loop has waited its MaxInlineWait for the
		// backlog to drain and handed the next page back to the queue,
		// unlisted: nothing lists on while no batch finishes.
		var deferred *jobs.PagePayload
		testkit.Eventually(t, 10*time.Second, func() bool { deferred = e.deferredPage(r); return deferred != nil }, "the page task to be deferred")
		if deferred.Page != want/perPage {
			t.Fatalf("page %d deferred, want page %d, the first after the bound", deferred.Page, want/perPage)
		}
		if n := backlog(); n != want {
			t.Fatalf("backlog %d batches, want %d: the lookahead is %d pages of %d batches plus %d slots = %d, and a page adds its %d",
				n, want, pagesAhead, perPage, slots, bound, perPage)
		}
		release()
		if err := e.store.Stop(t.Context(), r.ID, jobs.StateCancelled, "test over"); err != nil {
			t.Fatal(err)
		}
	})
}

// slowLister makes every list call take 20 ms and counts how many are in
// flight at once.
type slowLister struct {
	worker.HSS
	mu             sync.Mutex
	inFlight, peak int
}

func (s *slowLister) ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error) {
	s.mu.Lock()
	s.inFlight++
	s.peak = max(s.peak, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	time.Sleep(20 * time.Millisecond)
	return s.HSS.ListImages(ctx, q, offset, limit)
}

// TestListingRunsAhead: when listing is the slow part, the pages after the
// current one are listed while it is (up to two of them), each page once.
func TestListingRunsAhead(t *testing.T) {
	lister := &slowLister{}
	// One pass over pages that do not overlap: 12 pages of 200.
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 2400}, cfg: worker.Config{ListOverlap: -1, MaxPasses: 1},
		wrap: func(h worker.HSS) worker.HSS { lister.HSS = h; return lister }})
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{IncludeUnscannable: true})
	if r = e.wait(r.ID, 30*time.Second); r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != 2400 {
		t.Fatalf("run %s: %+v", r.State, r.Counters)
	}
	if n := e.emu.Stats().Routes["list_registry"]; n != 12 {
		t.Fatalf("%d list calls for 12 pages", n)
	}
	t.Logf("at most %d list calls at once", lister.peak)
	if lister.peak < 2 || lister.peak > 3 {
		t.Fatalf("at most %d list calls at once, want 2 or 3: the page's own and up to two ahead", lister.peak)
	}
}
