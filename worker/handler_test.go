package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// fakeHSS answers each CreateScanTask with the next of its errors (nil, or
// none left: accepted) and records the calls. Runs of image_info never list.
type fakeHSS struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

var _ worker.HSS = (*fakeHSS)(nil)

func (f *fakeHSS) CreateScanTask(context.Context, *hss.CreateScanTaskRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

func (f *fakeHSS) ListImages(context.Context, hss.ListQuery, int, int) (hss.Page, error) {
	return hss.Page{}, errors.New("fakeHSS: no listing")
}

// handlerRig runs the handlers on tasks one at a time, in the test's
// goroutine, with no asynq server: the tasks they enqueue wait in Redis
// until the test takes them.
type handlerRig struct {
	t       *testing.T
	hss     *fakeHSS
	store   *runs.Store
	starter *runs.Starter
	insp    *asynq.Inspector
	mux     *asynq.ServeMux
}

func newHandlerRig(t *testing.T, errs ...error) *handlerRig {
	b := redistest.Mini(t)
	ac := asynq.NewClientFromRedisClient(b.Client)
	t.Cleanup(func() { _ = ac.Close() })
	store := runs.New(b.Client, runs.Options{Retention: time.Hour, SeenBuckets: 16})
	f := &fakeHSS{errs: errs}
	h := worker.New(worker.Config{}, []worker.Target{{ProjectID: project, HSS: f}},
		worker.Deps{Runs: store, Limiter: limit.New(b.Client, limit.Options{}), Client: ac})
	return &handlerRig{t: t, hss: f, store: store, insp: asynq.NewInspectorFromRedisClient(b.Client), mux: h.Mux(),
		starter: &runs.Starter{Store: store, Client: ac, Targets: []runs.Target{{Name: "default", MaxBatchSize: 100}}, BatchSize: 100}}
}

// start starts a run of n images in batches of one, and runs its run task:
// its n batch tasks are then pending.
func (g *handlerRig) start(n int) *jobs.Run {
	g.t.Helper()
	var imgs []hss.ImageInfo
	for i := range n {
		imgs = append(imgs, hss.ImageInfo{Namespace: "ns", ImageName: "img", ImageVersion: fmt.Sprint(i)})
	}
	r, err := g.starter.Start(context.Background(), jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}},
		jobs.Options{BatchSize: 1}, jobs.Trigger{Kind: "cli"})
	if err != nil {
		g.t.Fatal(err)
	}
	if tasks := g.take(jobs.RunTaskQueue(r.Target), jobs.TypeRun); len(tasks) != 1 || g.process(tasks[0]) != nil {
		g.t.Fatalf("run task of run %s: %d found, or it failed", r.ID, len(tasks))
	}
	return r
}

// take removes the pending tasks of type typ from queue q and returns them.
func (g *handlerRig) take(q, typ string) []*asynq.Task {
	g.t.Helper()
	infos, err := g.insp.ListPendingTasks(q, asynq.PageSize(100_000)) // one page: the default is 30 tasks
	if err != nil {
		g.t.Fatal(err)
	}
	var out []*asynq.Task
	for _, ti := range infos {
		if ti.Type != typ {
			continue
		}
		if err := g.insp.DeleteTask(q, ti.ID); err != nil {
			g.t.Fatal(err)
		}
		out = append(out, asynq.NewTask(ti.Type, ti.Payload))
	}
	return out
}

func (g *handlerRig) process(t *asynq.Task) error {
	return g.mux.ProcessTask(context.Background(), t)
}

func (g *handlerRig) run(id string) *jobs.Run {
	g.t.Helper()
	r, err := g.store.Get(context.Background(), id)
	if err != nil {
		g.t.Fatal(err)
	}
	return r
}

// TestBatchHandlerOutcomes: what the batch handler returns to asynq (done,
// retry, or skip retries) and records for each answer of HSS, with no
// server and no emulator: three batches of one image, the first answered
// as the case says, then the two others.
func TestBatchHandlerOutcomes(t *testing.T) {
	t.Parallel()
	apiErr := func(status int, code string) error {
		return &hss.APIError{StatusCode: status, Code: code, Op: "CreateManualImageScanTask"}
	}
	type want struct {
		retry, skipRetry bool // what the first batch returns
		calls            int  // to HSS, over the three batches
		state            jobs.State
		submitted        int64
		failed           int64
	}
	cases := []struct {
		name string
		err  error // the answer to the first call
		want want
	}{
		{"accepted", nil, want{calls: 3, state: jobs.StateSucceeded, submitted: 3}},
		{"permanent error fails its batch only", apiErr(400, "HSS.1002"),
			want{skipRetry: true, calls: 3, state: jobs.StatePartiallyFailed, submitted: 2, failed: 1}},
		{"transient error is retried", apiErr(503, "SYS.0503"),
			want{retry: true, calls: 3, state: jobs.StateRunning, submitted: 2}},
		// A short Retry-After: the 429 pauses the target (limit.Throttled)
		// for that long, and the later batches wait it out inline.
		{"throttled is retried", &hss.APIError{StatusCode: 429, Code: "APIGW.0308", RetryAfter: 10 * time.Millisecond},
			want{retry: true, calls: 3, state: jobs.StateRunning, submitted: 2}},
		{"refused credentials stop the run", apiErr(401, "APIGW.0301"),
			want{skipRetry: true, calls: 1, state: jobs.StateFailed, failed: 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g := newHandlerRig(t, c.err)
			r := g.start(3)
			batches := g.take(r.Queue, jobs.TypeBatch)
			if len(batches) != 3 {
				t.Fatalf("%d batch tasks, want 3", len(batches))
			}
			// Batches come back from Redis in no set order: the first taken
			// gets the first answer.
			err := g.process(batches[0])
			switch {
			case c.want.skipRetry && !errors.Is(err, asynq.SkipRetry),
				c.want.retry && (err == nil || errors.Is(err, asynq.SkipRetry)),
				!c.want.skipRetry && !c.want.retry && err != nil:
				t.Fatalf("first batch returned %v, want retry %v, skip retry %v", err, c.want.retry, c.want.skipRetry)
			}
			for _, b := range batches[1:] {
				if err := g.process(b); err != nil && !errors.Is(err, asynq.SkipRetry) {
					t.Fatalf("later batch: %v", err)
				}
			}
			got := g.run(r.ID)
			cnt := got.Counters
			if g.hss.calls != c.want.calls || got.State != c.want.state || cnt.ImagesSubmitted != c.want.submitted || cnt.ImagesFailed != c.want.failed {
				t.Fatalf("%d calls, run %s, %d submitted, %d failed; want %d calls, %s, %d, %d",
					g.hss.calls, got.State, cnt.ImagesSubmitted, cnt.ImagesFailed, c.want.calls, c.want.state, c.want.submitted, c.want.failed)
			}
			if c.want.failed > 0 && c.err != nil && (len(got.Errors) == 0 || got.Errors[0].Status != c.err.(*hss.APIError).StatusCode) {
				t.Fatalf("run errors %+v do not keep HSS's answer", got.Errors)
			}
		})
	}
}

// TestBatchOfCancelledRunMakesNoCall: every batch processed after its run
// was cancelled is counted skipped, without a call.
func TestBatchOfCancelledRunMakesNoCall(t *testing.T) {
	t.Parallel()
	g := newHandlerRig(t)
	r := g.start(3)
	batches := g.take(r.Queue, jobs.TypeBatch)
	if _, err := g.starter.Cancel(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := g.process(b); err != nil {
			t.Fatalf("batch of a cancelled run: %v", err)
		}
	}
	got := g.run(r.ID)
	if g.hss.calls != 0 || got.State != jobs.StateCancelled || got.Counters.ImagesSkipped[jobs.SkipCancelled] != 3 {
		t.Fatalf("%d calls; run %s %+v", g.hss.calls, got.State, got.Counters)
	}
}
