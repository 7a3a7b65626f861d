package worker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

func TestTransientFaultsLoseNothing(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 2000}, cfg: worker.Config{MaxAttempts: 31}})
		if err := e.emu.SetFaults(emulator.Faults{FailRate: 0.2, ThrottleRate: 0.1, Latency: 2 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{BatchSize: 40, IncludeUnscannable: true})
		r = e.wait(r.ID, 90*time.Second)
		if r.State != jobs.StateSucceeded {
			t.Fatalf("state %s %+v %+v", r.State, r.Counters, r.Errors)
		}
		seen, _ := e.submitted()
		if len(seen) != 2000 {
			t.Fatalf("%d distinct images reached HSS, want 2000", len(seen))
		}
		dups := 0
		for _, n := range seen {
			dups += n - 1
		}
		st := e.emu.Stats()
		t.Logf("requests by status %v; duplicate submissions %d", st.Requests, dups)
		if c := r.Counters; c.ImagesSubmitted != 2000 || c.ImagesFailed != 0 {
			t.Fatalf("counters %+v", c)
		}
		if st.Requests[429] == 0 || st.Requests[500]+st.Requests[502]+st.Requests[503] == 0 {
			t.Fatalf("faults were not injected: %v", st.Requests)
		}
		checkCountersAddUp(t, r)
	})
}

func TestPermanentErrorFailsOnlyItsBatch(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 10}})
	var imgs []hss.ImageInfo
	for i := range 9 {
		imgs = append(imgs, hss.ImageInfo{Namespace: "ns", ImageName: "img", ImageVersion: string(rune('0' + i))})
	}
	e.emu.FailNext(1, 400, "HSS.1002")
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}}, jobs.Options{BatchSize: 3})
	r = e.wait(r.ID, 10*time.Second)
	c := r.Counters
	if r.State != jobs.StatePartiallyFailed || c.ImagesFailed != 3 || c.ImagesSubmitted != 6 || c.BatchesFailed != 1 {
		t.Fatalf("%s %+v", r.State, c)
	}
	if len(r.Errors) != 1 || r.Errors[0].Code != "HSS.1002" || r.Errors[0].Status != 400 || r.Errors[0].RequestID == "" {
		t.Fatalf("errors %+v", r.Errors)
	}
	if st := e.emu.Stats(); st.Requests[400] != 1 {
		t.Fatalf("a permanent error was retried: %v", st.Requests)
	}
	checkCountersAddUp(t, r)
}

// unavailableFor answers 503 to every create that carries one image version,
// in front of the emulator.
type unavailableFor struct {
	worker.HSS
	version string
	calls   atomic.Int32
}

func (u *unavailableFor) CreateScanTask(ctx context.Context, req *hss.CreateScanTaskRequest) error {
	for _, img := range req.Body.ImageInfo {
		if img.ImageVersion == u.version {
			u.calls.Add(1)
			return &hss.APIError{StatusCode: 503, Code: "SYS.0503", Message: "service unavailable", RequestID: "req-503", Op: "CreateManualImageScanTask"}
		}
	}
	return u.HSS.CreateScanTask(ctx, req)
}

func TestRetriesExhaustedFailTheBatchAndTheRunGoesOn(t *testing.T) {
	bad := &unavailableFor{version: "2"}
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 10}, cfg: worker.Config{MaxAttempts: 4},
		wrap: func(h worker.HSS) worker.HSS { bad.HSS = h; return bad }})
	var imgs []hss.ImageInfo
	for _, v := range []string{"1", "2", "3"} {
		imgs = append(imgs, hss.ImageInfo{Namespace: "a", ImageName: "b", ImageVersion: v})
	}
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}}, jobs.Options{BatchSize: 1})
	r = e.wait(r.ID, 10*time.Second)
	c := r.Counters
	if c.ImagesFailed != 1 || c.ImagesSubmitted != 2 || c.BatchesFailed != 1 || r.State != jobs.StatePartiallyFailed {
		t.Fatalf("%s %+v", r.State, c)
	}
	if n := bad.calls.Load(); n != 4 {
		t.Fatalf("the failing batch was tried %d times, want 1 + 3 retries", n)
	}
	if len(r.Errors) != 1 || r.Errors[0].Status != 503 || r.Errors[0].RequestID != "req-503" {
		t.Fatalf("last error not kept: %+v", r.Errors)
	}
}

func TestAuthFailureStopsTheRun(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 10}})
	var imgs []hss.ImageInfo
	for i := range 50 {
		imgs = append(imgs, hss.ImageInfo{Namespace: "ns", ImageName: "img", ImageVersion: string(rune('A' + i))})
	}
	e.emu.FailNext(1000, 401, "APIGW.0301")
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}}, jobs.Options{BatchSize: 1})
	r = e.wait(r.ID, 10*time.Second)
	if r.State != jobs.StateFailed || r.StopReason == "" {
		t.Fatalf("state %s, stop reason %q", r.State, r.StopReason)
	}
	// Once the batches queued behind the 401 have been processed (each
	// finds the run failed), count calls: far fewer than 50.
	testkit.Eventually(t, 10*time.Second, func() bool { return e.drained(r.Queue) }, "the run's queue to drain")
	calls := e.emu.Stats().Requests[401]
	if calls >= 50 || calls == 0 {
		t.Fatalf("%d calls hit the 401 wall, want few", calls)
	}
	r, _ = e.store.Get(context.Background(), r.ID)
	if c := r.Counters; c.ImagesSubmitted != 0 || c.ImagesFailed == 0 {
		t.Fatalf("counters %+v", c)
	}
	t.Logf("401: %d calls before the run stopped", calls)
}

func TestCancelStopsSubmission(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 3000}, cfg: worker.Config{RatePeriod: 10 * time.Second}})
	// 600 images per 10 s with batches of 10: one call every ~170 ms.
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true), RateLimit: new(int32(600))}}, jobs.Options{IncludeUnscannable: true})
	testkit.Eventually(t, 10*time.Second, func() bool { return len(e.emu.Submissions()) >= 3 }, "3 submissions")
	if _, err := e.starter.Cancel(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	atCancel, processed := len(e.emu.Submissions()), e.queue(r.Queue).ProcessedTotal
	// Every batch left is processed, and finds the run cancelled; only
	// those running and past their state check at the cancel (one per
	// worker slot at most) may still land.
	testkit.Eventually(t, 20*time.Second, func() bool { return e.drained(r.Queue) }, "the run's queue to drain")
	n, after := len(e.emu.Submissions()), e.queue(r.Queue).ProcessedTotal-processed
	t.Logf("%d calls before the cancel, %d landed after it; %d tasks processed after it", atCancel, n-atCancel, after)
	if n-atCancel > 4 {
		t.Fatalf("%d submissions after cancel", n-atCancel)
	}
	if after < 10 {
		t.Fatalf("only %d tasks were processed after the cancel: nothing shows that later batches stay away from HSS", after)
	}
	r, _ = e.store.Get(context.Background(), r.ID)
	if r.State != jobs.StateCancelled || r.Counters.ImagesSubmitted != int64(n*10) {
		t.Fatalf("%s %+v, %d calls", r.State, r.Counters, n)
	}
}

// TestRequestRateHoldsForEveryCall: with a request rate on the target, the
// calls of a run reach HSS no faster than that rate, the first batches of a
// run (which take their token on their own) and the later ones (which take
// it with their read of the run) alike.
func TestRequestRateHoldsForEveryCall(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		const perSecond = 40
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 1000}, target: worker.Target{Name: "rated", RequestRate: perSecond, RequestBurst: 1}})
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{BatchSize: 50, IncludeUnscannable: true})
		if r = e.wait(r.ID, 30*time.Second); r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != 1000 {
			t.Fatalf("run %s: %+v", r.State, r.Counters)
		}
		subs := e.emu.Submissions()
		span := subs[len(subs)-1].Time.Sub(subs[0].Time)
		// Tokens come 1/perSecond apart (burst 1): the creates alone need
		// (n-1)/perSecond, less what arrival times can vary by.
		least := time.Duration(len(subs)-1)*time.Second/perSecond - 20*time.Millisecond
		t.Logf("%d creates and %d list calls; creates spread over %s (at least %s at %d/s)", len(subs), e.emu.Stats().Routes["list_registry"], span, least, perSecond)
		if span < least {
			t.Fatalf("%d creates within %s: faster than %d requests/s", len(subs), span, perSecond)
		}
	})
}

// A run task whose run is gone (it expired while pending) is dropped
// without retries, and says why.
func TestRunTaskOfMissingRunIsDropped(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{})
		task, err := jobs.NewRunTask("gone", "")
		if err != nil {
			t.Fatal(err)
		}
		err = e.h.Mux().ProcessTask(context.Background(), task)
		if !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, runs.ErrNotFound) {
			t.Fatalf("run task of a missing run: %v, want SkipRetry and ErrNotFound", err)
		}
	})
}

// deadLister answers every list call 503, counting them.
type deadLister struct {
	worker.HSS
	calls atomic.Int32
}

func (d *deadLister) ListImages(context.Context, hss.ListQuery, int, int) (hss.Page, error) {
	d.calls.Add(1)
	return hss.Page{}, &hss.APIError{StatusCode: 503, Code: "SYS.0503", Message: "service unavailable", Op: "ListImages"}
}

// A listing that keeps failing is tried retry.max_attempts times, as a
// batch is, and the run ends failed saying why: with max_attempts 2 a
// dead target's run was listed 26 times (the run task's own 25 retries)
// before it failed (new-user trial).
func TestListingRetriesAreMaxAttempts(t *testing.T) {
	dead := &deadLister{}
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 10}, cfg: worker.Config{MaxAttempts: 3},
		wrap: func(h worker.HSS) worker.HSS { dead.HSS = h; return dead }})
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{})
	r = e.wait(r.ID, 20*time.Second)
	if r.State != jobs.StateFailed || len(r.Errors) == 0 || r.Errors[0].Status != 503 {
		t.Fatalf("%s, errors %+v", r.State, r.Errors)
	}
	if n := dead.calls.Load(); n != 3 {
		t.Errorf("the listing was tried %d times, want retry.max_attempts (3)", n)
	}
}

// flakyLister fails the first list call at each offset (503), then
// answers: every page of a run needs a second try.
type flakyLister struct {
	worker.HSS
	mu     sync.Mutex
	failed map[int]bool
	calls  int
}

func (f *flakyLister) ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error) {
	f.mu.Lock()
	f.calls++
	first := !f.failed[offset]
	f.failed[offset] = true
	f.mu.Unlock()
	if first {
		return hss.Page{}, &hss.APIError{StatusCode: 503, Code: "SYS.0503", Message: "service unavailable", Op: "ListImages"}
	}
	return f.HSS.ListImages(ctx, q, offset, limit)
}

// retry.max_attempts counts one list call's tries, not the task's: a run
// whose every page fails once lists them all with max_attempts 2 (counting
// the task's tries, the second page's failure ended its listing).
func TestListingFailuresOfPagesDoNotAddUp(t *testing.T) {
	flaky := &flakyLister{failed: map[int]bool{}}
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 1000}, cfg: worker.Config{MaxAttempts: 2},
		wrap: func(h worker.HSS) worker.HSS { flaky.HSS = h; return flaky }})
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{IncludeUnscannable: true})
	r = e.wait(r.ID, 30*time.Second)
	if r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != 1000 {
		t.Fatalf("%s %+v, errors %+v", r.State, r.Counters, r.Errors)
	}
	t.Logf("%d list calls", flaky.calls)
}
