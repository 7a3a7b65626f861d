package worker_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

func TestIsAllSubmitsEveryImageOnceInBoundedBatches(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 1234}})
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true), ScanScope: new(hss.ScanScopeAll)}}, jobs.Options{BatchSize: 50, IncludeUnscannable: true})
		r = e.wait(r.ID, 30*time.Second)
		if r.State != jobs.StateSucceeded {
			t.Fatalf("state %s: %+v %+v", r.State, r.Counters, r.Errors)
		}
		seen, sizes := e.submitted()
		want := e.emu.RegistryImages()
		if len(seen) != len(want) {
			t.Fatalf("%d distinct images submitted, want %d", len(seen), len(want))
		}
		for _, img := range want {
			if n := seen[jobs.ImageKey(img.ImageInfo())]; n != 1 {
				t.Fatalf("image %s submitted %d times", jobs.ImageKey(img.ImageInfo()), n)
			}
		}
		for _, n := range sizes {
			if n > 50 || n == 0 {
				t.Fatalf("batch of %d images, want 1..50", n)
			}
		}
		if c := r.Counters; c.ImagesTotal != 1234 || c.ImagesSubmitted != 1234 || c.BatchesTotal != int64(len(sizes)) {
			t.Fatalf("counters %+v, %d calls", c, len(sizes))
		}
		checkCountersAddUp(t, r)
		// Each page listed once: listing the next page while one is being
		// recorded wastes no call. Pages of 200 overlap by 20 (offsets 0,
		// 180, ..., 1080: 7 pages), in two passes: the reconciliation pass
		// finds nothing, and the run's listing ends.
		if n := e.emu.Stats().Routes["list_registry"]; n != 14 {
			t.Fatalf("%d list calls for 7 pages in each of 2 passes", n)
		}
		if want := (jobs.Drift{Passes: 2}); r.Drift == nil || *r.Drift != want {
			t.Fatalf("drift %+v, want %+v", r.Drift, want)
		}
		// The scan parameters reached HSS on every call.
		for _, s := range e.emu.Submissions() {
			if s.Body.ScanScope == nil || *s.Body.ScanScope != hss.ScanScopeAll || s.Body.IsAll != nil {
				t.Fatalf("submission body %+v", s.Body)
			}
		}
	})
}

func TestQueryInfoSubmitsExactlyTheMatchingImages(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 600}})
	ns := e.emu.RegistryImages()[0].Namespace
	want := map[string]bool{}
	for _, img := range e.emu.RegistryImages() {
		if img.Namespace == ns {
			want[jobs.ImageKey(img.ImageInfo())] = true
		}
	}
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{Namespace: &ns}}}, jobs.Options{BatchSize: 7, IncludeUnscannable: true})
	r = e.wait(r.ID, 30*time.Second)
	seen, sizes := e.submitted()
	if len(seen) != len(want) || len(want) == 0 {
		t.Fatalf("%d images submitted, want %d", len(seen), len(want))
	}
	for k := range seen {
		if !want[k] {
			t.Fatalf("image %s does not match namespace %s", k, ns)
		}
	}
	for _, n := range sizes {
		if n > 7 {
			t.Fatalf("batch of %d > 7", n)
		}
	}
	if r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != int64(len(want)) {
		t.Fatalf("%s %+v", r.State, r.Counters)
	}
}

func TestImageInfoIsCutIntoBatches(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 10}})
	var imgs []hss.ImageInfo
	for i := range 7 {
		imgs = append(imgs, hss.ImageInfo{Namespace: "team", ImageName: "app", ImageVersion: string(rune('a' + i))})
	}
	imgs = append(imgs, imgs[2]) // named twice: submitted once
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs, RateLimit: new(int32(0))}}, jobs.Options{BatchSize: 3})
	r = e.wait(r.ID, 10*time.Second)
	seen, sizes := e.submitted()
	if len(seen) != 7 || len(sizes) != 3 {
		t.Fatalf("%d images in %d calls, want 7 in 3", len(seen), len(sizes))
	}
	c := r.Counters
	if c.ImagesTotal != 8 || c.ImagesSubmitted != 7 || c.ImagesSkipped[jobs.SkipDuplicate] != 1 {
		t.Fatalf("counters %+v", c)
	}
	// rate_limit 0 set by the user is passed on.
	if s := e.emu.Submissions()[0]; s.Body.RateLimit == nil || *s.Body.RateLimit != 0 {
		t.Fatalf("rate_limit not passed on: %+v", s.Body.RateLimit)
	}
	checkCountersAddUp(t, r)
}

func TestDryRunSubmitsNothing(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 450}})
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true), RateLimit: new(int32(600))}}, jobs.Options{DryRun: true, IncludeUnscannable: true})
	r = e.wait(r.ID, 10*time.Second)
	if n := len(e.emu.Submissions()); n != 0 {
		t.Fatalf("dry run made %d submissions", n)
	}
	if r.State != jobs.StateResolved {
		t.Fatalf("dry run ended %s, want %s (its own state, not succeeded)", r.State, jobs.StateResolved)
	}
	c := r.Counters
	// rate 600/h caps the batch at 10: 450 images → 45 batches, 45 minutes.
	if r.BatchSize != 10 || c.ImagesTotal != 450 || c.ImagesSkipped[jobs.SkipDryRun] != 450 || c.BatchesTotal != 45 {
		t.Fatalf("batch size %d, counters %+v", r.BatchSize, c)
	}
	if d := r.ExpectedDuration(c.ImagesSkipped[jobs.SkipDryRun], time.Hour); d != 45*time.Minute {
		t.Fatalf("expected duration %s, want 45m", d)
	}
	checkCountersAddUp(t, r)
}

func TestSkipScannedWithin(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 300}})
	// Scan ten images now; the rest keep their synthetic (older) scan times.
	recent := map[string]bool{}
	for _, img := range e.emu.RegistryImages()[:10] {
		if err := e.emu.SetScanned(img.Namespace+"/"+img.ImageName+":"+img.ImageVersion, time.Now()); err != nil {
			t.Fatal(err)
		}
		recent[jobs.ImageKey(img.ImageInfo())] = true
	}
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{SkipScannedWithin: jobs.Duration(time.Hour), IncludeUnscannable: true})
	r = e.wait(r.ID, 10*time.Second)
	seen, _ := e.submitted()
	for k := range recent {
		if seen[k] > 0 {
			t.Fatalf("recently scanned image %s was submitted", k)
		}
	}
	c := r.Counters
	if c.ImagesSkipped[jobs.SkipScannedWithin] < 10 || int(c.ImagesSubmitted) != len(seen) {
		t.Fatalf("counters %+v, %d submitted", c, len(seen))
	}
	checkCountersAddUp(t, r)
}

// shiftingLister lists as if an image had been inserted at the front of
// the registry right after page 0 was read: every later page starts one
// image early, so it begins with the last image of the page before, and the
// total grows by one.
type shiftingLister struct{ worker.HSS }

func (s *shiftingLister) wrap(h worker.HSS) { s.HSS = h }

func (s *shiftingLister) ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error) {
	if offset == 0 {
		return s.HSS.ListImages(ctx, q, offset, limit)
	}
	p, err := s.HSS.ListImages(ctx, q, offset-1, limit)
	p.Total++
	return p, err
}

func TestImageListedTwiceIsSubmittedOnce(t *testing.T) {
	// Page 1 begins with the last image of page 0, listed twice and
	// counted once; the last page holds the image pushed past the end.
	runSubmitsEachOnce(t, redistest.Mini(t), &shiftingLister{}, worker.Config{ListOverlap: -1}, 1000)
}

// runSubmitsEachOnce runs an is_all run over 1000 images listed through
// lister and checks that distinct images reached HSS once each, and that
// the run counted each once: no duplicates, however often one was listed.
func runSubmitsEachOnce(t *testing.T, b *redistest.Backend, lister interface {
	worker.HSS
	wrap(worker.HSS)
}, cfg worker.Config, distinct int) *jobs.Run {
	t.Helper()
	e := newEnv(t, b, envOpts{
		emu:  emulator.Options{Images: 1000},
		cfg:  cfg,
		wrap: func(h worker.HSS) worker.HSS { lister.wrap(h); return lister },
	})
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{IncludeUnscannable: true})
	r = e.wait(r.ID, 10*time.Second)
	seen, _ := e.submitted()
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("image %s submitted %d times", k, n)
		}
	}
	if len(seen) != distinct {
		t.Fatalf("%d distinct images submitted, want %d", len(seen), distinct)
	}
	if got, total := r.Counters.ImagesSkipped[jobs.SkipDuplicate], r.Counters.ImagesTotal; got != 0 || total != int64(distinct) {
		t.Fatalf("%d duplicates of %d images counted, want none of %d (%+v)", got, total, distinct, r.Counters)
	}
	checkCountersAddUp(t, r)
	return r
}

// echoLister lists page 2 as starting with the last image of page 0 (its
// own last image drops off): a duplicate two pages apart, which only the
// run's seen-set can catch, where one a page apart is caught in the
// listing of the page before; and a miss, which only a reconciliation pass
// can catch. It echoes in the first pass only.
type echoLister struct {
	worker.HSS
	echoed atomic.Bool
}

func (s *echoLister) wrap(h worker.HSS) { s.HSS = h }

func (s *echoLister) ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error) {
	p, err := s.HSS.ListImages(ctx, q, offset, limit)
	if err != nil || offset != 2*limit || s.echoed.Swap(true) {
		return p, err
	}
	echo, err := s.HSS.ListImages(ctx, q, limit-1, 1)
	if err != nil {
		return p, err
	}
	p.Images = append(echo.Images, p.Images[:len(p.Images)-1]...)
	return p, nil
}

func TestImageListedTwoPagesLaterIsSubmittedOnce(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		// Pages that do not overlap: the image dropped off page 2 leaves
		// no trace in the first pass, and the reconciliation pass finds it;
		// a third pass finds nothing more.
		r := runSubmitsEachOnce(t, b, &echoLister{}, worker.Config{ListOverlap: -1}, 1000)
		if want := (jobs.Drift{Passes: 3, Found: 1}); r.Drift == nil || *r.Drift != want {
			t.Fatalf("drift %+v, want %+v", r.Drift, want)
		}
	})
}

// deletingLister deletes the first n images of the registry (before the
// cursor) just before the first pass lists its second page, as if another
// team cleaned up its repository then.
type deletingLister struct {
	worker.HSS
	n       int
	remove  func(key string) error
	deleted []string
	once    sync.Once
}

func (s *deletingLister) wrap(h worker.HSS) { s.HSS = h }

func (s *deletingLister) ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error) {
	var err error
	if offset > 0 {
		s.once.Do(func() {
			var front hss.Page
			if front, err = s.HSS.ListImages(ctx, q, 0, s.n); err != nil {
				return
			}
			for _, img := range front.Images {
				k := img.Info.Namespace + "/" + img.Info.ImageName + ":" + img.Info.ImageVersion
				if err = s.remove(k); err != nil {
					return
				}
				s.deleted = append(s.deleted, jobs.ImageKey(img.Info))
			}
		})
	}
	if err != nil {
		return hss.Page{}, err
	}
	return s.HSS.ListImages(ctx, q, offset, limit)
}

// TestShiftPastTheOverlapIsReconciled: 30 images deleted before the cursor
// shift the registry by more than the pages' overlap of 20, so that page
// 1 of the first pass starts 10 images too late. The page shows the gap
// (none of its first 20 images was on page 0), and the reconciliation
// pass submits the 10 images the shift hid: every image in the registry
// for the whole run is submitted, once.
func TestShiftPastTheOverlapIsReconciled(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		lister := &deletingLister{n: 30}
		e := newEnv(t, b, envOpts{
			emu:  emulator.Options{Images: 1000},
			wrap: func(h worker.HSS) worker.HSS { lister.wrap(h); return lister },
		})
		lister.remove = e.emu.RemoveRegistryImage
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{IncludeUnscannable: true})
		r = e.wait(r.ID, 30*time.Second)
		if r.State != jobs.StateSucceeded {
			t.Fatalf("state %s: %+v %+v", r.State, r.Counters, r.Errors)
		}
		seen, _ := e.submitted()
		for _, img := range e.emu.RegistryImages() { // those present throughout
			if n := seen[jobs.ImageKey(img.ImageInfo())]; n != 1 {
				t.Fatalf("image %s, in the registry throughout, submitted %d times", jobs.ImageKey(img.ImageInfo()), n)
			}
		}
		for k, n := range seen {
			if n != 1 {
				t.Fatalf("image %s submitted %d times", k, n)
			}
		}
		if len(lister.deleted) != 30 {
			t.Fatalf("%d images deleted", len(lister.deleted))
		}
		// Pass 1 lists 990 (page 0's 200, 30 of them deleted later, and
		// 790 after the shift); pass 2 finds the 10; pass 3 finds nothing
		// and does not list the 30 deleted.
		if want := (jobs.Drift{Passes: 3, Found: 10, Disappeared: 30, Gaps: 1}); r.Drift == nil || *r.Drift != want {
			t.Fatalf("drift %+v, want %+v", r.Drift, want)
		}
		if r.Counters.ImagesTotal != 1000 || r.Counters.ImagesSubmitted != 1000 {
			t.Fatalf("counters %+v, want the 1000 images listed submitted", r.Counters)
		}
		checkCountersAddUp(t, r)
	})
}

func TestForwardSendsTheRequestUnexpanded(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 50}})
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true), RateLimit: new(int32(100))}}, jobs.Options{Forward: true, IncludeUnscannable: true})
	r = e.wait(r.ID, 10*time.Second)
	subs := e.emu.Submissions()
	if len(subs) != 1 || subs[0].Body.IsAll == nil || !*subs[0].Body.IsAll || len(subs[0].Body.ImageInfo) != 0 {
		t.Fatalf("submissions %+v", subs)
	}
	if r.State != jobs.StateSucceeded || r.Counters.BatchesSubmitted != 1 {
		t.Fatalf("%s %+v", r.State, r.Counters)
	}
}

// An image_info run over several pages reads each page's slice of the run's
// image list, and a forwarded one sends the whole list in its one call.
func TestImageInfoListIsReadByPage(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 10}})
		var imgs []hss.ImageInfo
		for i := range 450 {
			imgs = append(imgs, hss.ImageInfo{Namespace: "team", ImageName: "app", ImageVersion: fmt.Sprintf("v%03d", i)})
		}
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}}, jobs.Options{BatchSize: 100})
		r = e.wait(r.ID, 30*time.Second)
		seen, _ := e.submitted()
		if r.State != jobs.StateSucceeded || len(seen) != 450 || r.Counters.PagesDone != 3 || r.ImageCount != 450 {
			t.Fatalf("%s, %d images submitted, %d pages, image_count %d; want succeeded, 450, 3, 450", r.State, len(seen), r.Counters.PagesDone, r.ImageCount)
		}
		for _, img := range imgs {
			if seen[jobs.ImageKey(img)] != 1 {
				t.Fatalf("image %s submitted %d times", jobs.ImageKey(img), seen[jobs.ImageKey(img)])
			}
		}
		before := len(e.emu.Submissions())
		f := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs[:5]}}, jobs.Options{Forward: true})
		f = e.wait(f.ID, 10*time.Second)
		subs := e.emu.Submissions()[before:]
		if f.State != jobs.StateSucceeded || len(subs) != 1 || !reflect.DeepEqual(subs[0].Body.ImageInfo, imgs[:5]) {
			t.Fatalf("forwarded: %s, %d calls %+v", f.State, len(subs), subs)
		}
	})
}
