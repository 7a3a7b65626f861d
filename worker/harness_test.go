package worker_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

const project = "0123456789abcdef0123456789abcdef"

// env is one worker process's worth of components on one Redis, against an
// emulator: what a test needs to start runs and watch them finish.
type env struct {
	t       *testing.T
	b       *redistest.Backend
	emu     *emulator.Server
	client  *hss.Client
	store   *runs.Store
	starter *runs.Starter
	h       *worker.Handlers
	insp    *asynq.Inspector
}

type envOpts struct {
	emu     emulator.Options
	cfg     worker.Config
	target  worker.Target
	wrap    func(worker.HSS) worker.HSS
	webhook worker.Webhook
	// log, when set, takes the handlers' log lines (JSON, debug and up).
	log io.Writer
	// now, when set, is the handlers' clock.
	now func() time.Time
}

func newEnv(t *testing.T, b *redistest.Backend, o envOpts) *env {
	t.Helper()
	if o.emu.Seed == 0 {
		o.emu.Seed = 7
	}
	o.emu.ProjectID = project
	emu := emulator.NewServer(o.emu)
	t.Cleanup(emu.Close)
	client, err := hss.NewClient(hss.Config{Endpoint: emu.URL, ProjectID: project, Region: "cn-north-4", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ac := asynq.NewClientFromRedisClient(b.Client)
	ro := runs.Options{Retention: time.Hour}
	if b.Mini != nil {
		ro.SeenBuckets = 16 // redistest.Mini expires keys on every command, walking all of them (ClockTTL)
	}
	store := runs.New(b.Client, ro)
	var api worker.HSS = client
	if o.wrap != nil {
		api = o.wrap(client)
	}
	if o.cfg.RetryBase == 0 {
		o.cfg.RetryBase, o.cfg.RetryCap = 5*time.Millisecond, 50*time.Millisecond
	}
	if o.cfg.MaxInlineWait == 0 {
		o.cfg.MaxInlineWait = time.Second
	}
	o.target.ProjectID, o.target.HSS = project, api
	logger := slog.New(slog.DiscardHandler)
	switch {
	case o.log != nil:
		logger = slog.New(slog.NewJSONHandler(o.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case testing.Verbose():
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	insp := asynq.NewInspectorFromRedisClient(b.Client)
	h := worker.New(o.cfg, []worker.Target{o.target}, worker.Deps{Runs: store, Limiter: limit.New(b.Client, limit.Options{}), Client: ac, Inspector: insp, Logger: logger, Webhook: o.webhook, Now: o.now})
	e := &env{t: t, b: b, emu: emu, client: client, store: store, h: h, insp: insp,
		starter: &runs.Starter{Store: store, Client: ac, Targets: []runs.Target{{Name: cmp.Or(o.target.Name, jobs.DefaultTarget), MaxBatchSize: 100}}, BatchSize: 100}}
	e.start(4)
	t.Cleanup(func() { _ = ac.Close() })
	return e
}

func (e *env) start(concurrency int) {
	cfgs := e.h.ServerConfigs(worker.ServerOptions{Concurrency: concurrency, Queues: queues, PollInterval: 50 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, GroupMaxSize: 5, GroupGracePeriod: time.Second, GroupMaxDelay: 2 * time.Second, Logger: quietLogger{}})
	for _, cfg := range cfgs {
		srv := asynq.NewServerFromRedisClient(e.b.Client, cfg)
		if err := srv.Start(e.h.Mux()); err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(srv.Shutdown)
	}
}

// startRun starts a run from req with opts.
func (e *env) startRun(req jobs.ScanRequest, opts jobs.Options) *jobs.Run {
	e.t.Helper()
	r, err := e.starter.Start(context.Background(), req, opts, jobs.Trigger{Kind: "cli"})
	if err != nil {
		e.t.Fatalf("starting run: %v", err)
	}
	return r
}

// wait polls run id until it is final, failing the test after limit.
func (e *env) wait(id string, limit time.Duration) *jobs.Run {
	e.t.Helper()
	return waitRun(e.t, e.store, id, limit)
}

// queue returns the counts of queue q's tasks by state.
func (e *env) queue(q string) *asynq.QueueInfo {
	e.t.Helper()
	info, err := e.insp.GetQueueInfo(q)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

// drained reports whether queue q has no task waiting, running or due
// to run: every task it had has been processed (or archived).
func (e *env) drained(q string) bool {
	i := e.queue(q)
	return i.Pending+i.Active+i.Scheduled+i.Retry == 0
}

// taskState is the state of task id in queue q; 0 if there is no such task.
func (e *env) taskState(q, id string) asynq.TaskState {
	e.t.Helper()
	ti, err := e.insp.GetTaskInfo(q, id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return ti.State
}

// deferredPage returns the payload of run r's page task deferred most
// often (jobs.PagePayload.Deferred) that is queued, due or running, or nil
// if none was ever deferred.
func (e *env) deferredPage(r *jobs.Run) *jobs.PagePayload {
	e.t.Helper()
	var last *jobs.PagePayload
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){e.insp.ListScheduledTasks, e.insp.ListPendingTasks, e.insp.ListActiveTasks} {
		tasks, err := list(r.Queue, asynq.PageSize(100_000)) // one page: the default is 30 tasks
		if err != nil {
			e.t.Fatal(err)
		}
		for _, ti := range tasks {
			var p jobs.PagePayload
			if ti.Type == jobs.TypePage && json.Unmarshal(ti.Payload, &p) == nil && p.RunID == r.ID && p.Deferred > 0 &&
				(last == nil || p.Deferred > last.Deferred) {
				last = &p
			}
		}
	}
	return last
}

// submitted returns how often each image key reached HSS, and the batch sizes.
func (e *env) submitted() (map[string]int, []int) {
	seen := map[string]int{}
	var sizes []int
	for _, s := range e.emu.Submissions() {
		sizes = append(sizes, len(s.Body.ImageInfo))
		for _, img := range s.Body.ImageInfo {
			seen[jobs.ImageKey(img)]++
		}
	}
	return seen, sizes
}

func checkCountersAddUp(t *testing.T, r *jobs.Run) {
	t.Helper()
	c := r.Counters
	if c.ImagesTotal != c.ImagesSubmitted+c.Skipped()+c.ImagesFailed {
		t.Fatalf("counters do not add up: total %d != submitted %d + skipped %d + failed %d", c.ImagesTotal, c.ImagesSubmitted, c.Skipped(), c.ImagesFailed)
	}
	if c.BatchesTotal != c.BatchesSubmitted+c.BatchesFailed+c.BatchesSkipped {
		t.Fatalf("batch counters do not add up: %+v", c)
	}
}

var queues = map[string]int{jobs.QueueCritical: 6, jobs.QueueDefault: 3, jobs.QueueBulk: 1}

type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}
