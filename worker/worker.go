// Package worker holds the asynq handlers that carry a run from its request
// to the API calls: scan:run decides how the run's images are found,
// scan:page resolves one page of them into batches, scan:batch submits one
// batch as one CreateManualImageScanTask, and scan:image / scan:image-batch
// batch single images added ad hoc. Every HSS call first passes the
// fleet-wide limiter (internal/limit).
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/coverage"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/metrics"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"

	fastjson "github.com/segmentio/encoding/json"
)

// HSS is the part of the HSS client the worker uses; *hss.Client has it.
type HSS interface {
	CreateScanTask(ctx context.Context, req *hss.CreateScanTaskRequest) error
	ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error)
}

var _ HSS = (*hss.Client)(nil)

// Target is one HSS target the worker submits to: a project, the client
// that reaches it, and its limits. Every target has a request limiter and a
// 429 slow-down of its own, keyed by Name.
type Target struct {
	Name                string // "" = jobs.DefaultTarget
	HSS                 HSS
	ProjectID           string
	EnterpriseProjectID string // default for requests that name none
	Region              string // default region header
	RequestRate         float64
	RequestBurst        int
	ThrottleCooldown    time.Duration
	MaxBatchSize        int // largest batch the target takes; 0 = no cap of its own
}

// Config tunes the handlers. Zero values take the defaults noted.
type Config struct {
	PageSize   int // images per list call; 200
	PagesAhead int // listing stays at most this many pages ahead of submission; 4
	Slots      int // batches one worker process runs at once (its concurrency); 10
	// ListOverlap is how many images consecutive pages of a listing share,
	// to tell a shift (ListOverlap or more images deleted before the
	// cursor) from a page that follows on; 20, at most PageSize/2
	// (negative: none, and no shift is told).
	ListOverlap int
	// MaxPasses is how many times at most a run lists its source: once,
	// then reconciliation passes (see runs.PageResult.MaxPasses); 3.
	MaxPasses     int
	RatePeriod    time.Duration // rate_limit's window; 1h
	MaxInlineWait time.Duration // longer limiter waits go back to the queue; 5s
	MaxAttempts   int           // attempts of a batch (the first and its retries); 8
	RetryBase     time.Duration // backoff base; 1s
	RetryCap      time.Duration // backoff cap; 5m
	// VerifyTimeout is how long after a run its verification follows the
	// images it submitted; 6h. VerifyPollMin is the wait before its first
	// round, doubling each round up to VerifyPollMax; 1m and 15m.
	VerifyTimeout, VerifyPollMin, VerifyPollMax time.Duration
	// VerifyLookback is how far before a round's start the next round
	// lists from (start_latest_scan_time), for scans that HSS records a
	// little late or with a clock behind scanq's; 10m.
	VerifyLookback time.Duration
}

// Defaults of the Config fields left zero or negative (ListOverlap: zero
// only, as negative means none). configs/scanq.yaml documents the same
// values, and a test in configs keeps the two equal.
const (
	DefaultPageSize       = 200
	DefaultPagesAhead     = 4
	DefaultSlots          = 10
	DefaultListOverlap    = 20
	DefaultMaxPasses      = 3
	DefaultMaxAttempts    = 8
	DefaultRatePeriod     = time.Hour
	DefaultMaxInlineWait  = 5 * time.Second
	DefaultRetryBase      = time.Second
	DefaultRetryCap       = 5 * time.Minute
	DefaultVerifyTimeout  = 6 * time.Hour
	DefaultVerifyPollMin  = time.Minute
	DefaultVerifyPollMax  = 15 * time.Minute
	DefaultVerifyLookback = 10 * time.Minute
)

// defaults fills in the fields left zero or negative from the Default
// constants, and caps ListOverlap and MaxPasses.
func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.PageSize, DefaultPageSize)
	def(&c.PagesAhead, DefaultPagesAhead)
	def(&c.Slots, DefaultSlots)
	if c.ListOverlap == 0 { // negative: none
		c.ListOverlap = DefaultListOverlap
	}
	c.ListOverlap = min(c.ListOverlap, c.PageSize/2)
	def(&c.MaxPasses, DefaultMaxPasses)
	c.MaxPasses = min(c.MaxPasses, runs.MaxPasses)
	def(&c.MaxAttempts, DefaultMaxAttempts)
	defD(&c.RatePeriod, DefaultRatePeriod)
	defD(&c.MaxInlineWait, DefaultMaxInlineWait)
	defD(&c.RetryBase, DefaultRetryBase)
	defD(&c.RetryCap, DefaultRetryCap)
	defD(&c.VerifyTimeout, DefaultVerifyTimeout)
	defD(&c.VerifyPollMin, DefaultVerifyPollMin)
	defD(&c.VerifyPollMax, DefaultVerifyPollMax)
	c.VerifyPollMax = max(c.VerifyPollMax, c.VerifyPollMin)
	defD(&c.VerifyLookback, DefaultVerifyLookback)
}

// maxRetry is the retries of a batch's transient failures.
func (c *Config) maxRetry() int { return c.MaxAttempts - 1 }

// batchStride spaces the sequence numbers of a run's batches: batch i of
// page p is bit p*batchStride+i of the run's finished-batches bitmap. It is
// at least the largest page size, so a page never has more batches.
const batchStride = 256

// Handlers are the task handlers. Build them with New.
type Handlers struct {
	cfg     Config
	targets map[string]*Target
	runs    *runs.Store
	limiter *limit.Limiter
	enq     *asynq.Client
	insp    *asynq.Inspector
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics.Metrics
	webhook Webhook
	onEnd   func(runID string)
	cover   *coverage.Store
}

// Deps are the components the handlers work with.
type Deps struct {
	Runs    *runs.Store
	Limiter *limit.Limiter
	Client  *asynq.Client
	// Inspector, when set, tells whether a run's queue holds tasks a run
	// starting would queue its batches behind (see contended).
	Inspector *asynq.Inspector
	Logger    *slog.Logger
	Now       func() time.Time
	// Metrics may be nil.
	Metrics *metrics.Metrics
	// Webhook reports finished runs; zero = off.
	Webhook Webhook
	// Finished, when set, is called with the id of each run these handlers
	// made final, once it is final in Redis: a process that follows its
	// own run (`scanq scan`) learns of its end at once instead of at its
	// next poll.
	Finished func(runID string)
	// Coverage keeps the targets' coverage figures (coverage:page tasks);
	// nil fails those tasks.
	Coverage *coverage.Store
}

// New returns the handlers of targets (at least one, names unique).
func New(cfg Config, targets []Target, d Deps) *Handlers {
	cfg.defaults()
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	byName := make(map[string]*Target, len(targets))
	for _, t := range targets {
		t.Name = cmp.Or(t.Name, jobs.DefaultTarget)
		byName[t.Name] = &t
	}
	return &Handlers{cfg: cfg, targets: byName, runs: d.Runs, limiter: d.Limiter, enq: d.Client, insp: d.Inspector,
		log: d.Logger.With("component", "worker"), now: d.Now, metrics: d.Metrics, webhook: d.Webhook, onEnd: d.Finished, cover: d.Coverage}
}

// ErrUnknownTarget is the error of a task whose target this worker does
// not have: its configuration lists fewer targets than the producer's.
var ErrUnknownTarget = errors.New("target not configured on this worker")

// target returns the target called name ("" = jobs.DefaultTarget).
func (h *Handlers) target(name string) (*Target, error) {
	name = cmp.Or(name, jobs.DefaultTarget)
	if t, ok := h.targets[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%w: %q (configure every target on every worker, and add a target to the workers before the API and schedulers)", ErrUnknownTarget, name)
}

// Mux routes every task type in jobs.Types to its handler, through the
// middleware that puts a task that has to wait back on its queue
// (deferOnWait).
func (h *Handlers) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Use(h.deferOnWait)
	mux.Handle(jobs.TypeRun, typed(h.handleRun))
	mux.Handle(jobs.TypePage, typed(h.handlePage))
	mux.Handle(jobs.TypeBatch, typed(h.handleBatch))
	mux.Handle(jobs.TypeImage, typed(h.handleImage))
	mux.Handle(jobs.TypeImageBatch, typed(h.handleImageBatch))
	mux.Handle(jobs.TypeNotify, typed(h.handleNotify))
	mux.Handle(jobs.TypeCoverage, typed(h.handleCoverage))
	mux.Handle(jobs.TypeVerify, typed(h.handleVerify))
	return mux
}

// typed decodes a task's payload into T; a payload that does not decode will
// never decode, so it is archived at once instead of retried.
func typed[T any](fn func(context.Context, T) error) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p T
		if err := fastjson.Unmarshal(t.Payload(), &p); err != nil {
			return fmt.Errorf("decoding %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
		}
		return fn(ctx, p)
	})
}

// RetryDelay is the asynq RetryDelayFunc for scanq's tasks: exponential
// backoff with full jitter (a uniformly random delay up to
// min(cap, base·2^n)), never shorter than a Retry-After the server sent, and
// at least 2 s after a 429 (Huawei's advice for its throttle).
func (h *Handlers) RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	return Backoff(n, err, h.cfg.RetryBase, h.cfg.RetryCap, rand.Float64)
}

// Backoff computes the delay before retry n+1.
func Backoff(n int, err error, base, maxDelay time.Duration, random func() float64) time.Duration {
	ceil := maxDelay
	if n < 62 {
		if d := base << n; d > 0 && d < maxDelay {
			ceil = d
		}
	}
	d := time.Duration(random() * float64(ceil))
	var apiErr *hss.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == 429 && d < 2*time.Second {
		d = 2 * time.Second
	}
	if ra, ok := hss.RetryAfter(err); ok && d < ra {
		d = ra
	}
	return d
}

// ServerOptions size the asynq server.
type ServerOptions struct {
	Concurrency int
	Queues      map[string]int // queue name → weight
	// PollInterval is how often scheduled (deferred) and retry tasks are
	// moved to their queue.
	PollInterval time.Duration
	// FetchInterval is how long an idle worker sleeps before it looks at
	// its queues again; default 10ms. A run is a chain of short tasks, so
	// this is dead time on every hop.
	FetchInterval   time.Duration
	ShutdownTimeout time.Duration
	// GroupMaxSize, GroupGracePeriod and GroupMaxDelay shape the batches of
	// ad-hoc images: up to GroupMaxSize images, sent once no image joined
	// for the grace period or the oldest has waited GroupMaxDelay.
	GroupMaxSize     int
	GroupGracePeriod time.Duration
	GroupMaxDelay    time.Duration
	Logger           asynq.Logger
}

// ServerConfigs are the asynq servers one worker process runs: the first
// serves the queues of o (critical, default and bulk: the default target's
// tasks and every webhook delivery), and each target other than the
// default has one of its own, serving its queues (jobs.TargetQueues) with
// the same weights and o.Concurrency slots of its own. A target that is
// slow, throttled or failing thus holds its own slots only: the other
// targets' tasks never wait behind its tasks for a slot.
func (h *Handlers) ServerConfigs(o ServerOptions) []asynq.Config {
	var out []asynq.Config
	serve := func(name string, queues map[string]int) {
		to := o
		to.Queues = queues
		if t, ok := h.targets[name]; ok && t.MaxBatchSize > 0 && (to.GroupMaxSize <= 0 || t.MaxBatchSize < to.GroupMaxSize) {
			to.GroupMaxSize = t.MaxBatchSize // ad-hoc images aggregate into batches the target takes
		}
		out = append(out, h.ServerConfig(to))
	}
	serve(jobs.DefaultTarget, o.Queues)
	for _, name := range h.TargetNames() {
		if name == jobs.DefaultTarget {
			continue
		}
		queues := make(map[string]int, len(o.Queues))
		for q, w := range o.Queues {
			queues[jobs.TaskQueue(q, name)] = w
		}
		serve(name, queues)
	}
	return out
}

// TargetNames are the names of the handlers' targets, sorted.
func (h *Handlers) TargetNames() []string {
	return slices.Sorted(maps.Keys(h.targets))
}

// ServerConfig returns the asynq server configuration for these handlers,
// serving o.Queues.
func (h *Handlers) ServerConfig(o ServerOptions) asynq.Config {
	return asynq.Config{
		Concurrency:              o.Concurrency,
		Queues:                   o.Queues,
		RetryDelayFunc:           h.RetryDelay,
		DelayedTaskCheckInterval: o.PollInterval,
		GroupAggregator:          asynq.GroupAggregatorFunc(aggregate),
		GroupMaxSize:             o.GroupMaxSize,
		GroupGracePeriod:         o.GroupGracePeriod,
		GroupMaxDelay:            o.GroupMaxDelay,
		TaskCheckInterval:        cmp.Or(o.FetchInterval, 10*time.Millisecond),
		ShutdownTimeout:          o.ShutdownTimeout,
		Logger:                   o.Logger,
	}
}

// taskOrErr carries a task constructor's two results into enqueue.
type taskOrErr struct {
	t   *asynq.Task
	err error
}

func built(t *asynq.Task, err error) taskOrErr { return taskOrErr{t, err} }

// enqueue enqueues a task; one with the same id already queued is success.
func (h *Handlers) enqueue(ctx context.Context, te taskOrErr) error {
	t, err := te.t, te.err
	if err != nil {
		return err
	}
	if _, err := h.enq.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueueing %s: %w", t.Type(), err)
	}
	return nil
}

func (h *Handlers) finished(ctx context.Context, runID string) {
	r, err := h.runs.Get(ctx, runID)
	if err != nil {
		h.log.InfoContext(ctx, "run finished", "run_id", runID)
	} else {
		h.log.InfoContext(ctx, "run finished", "run_id", runID, "target", r.TargetName(), "state", r.State)
	}
	if err == nil && r.Trigger.Parent != "" {
		if err := h.runs.SettleGroup(ctx, r.Trigger.Parent); err != nil {
			h.log.WarnContext(ctx, "settling the run's group", "run_id", runID, "group", r.Trigger.Parent, "err", err)
		}
	}
	if err != nil {
		h.Notify(ctx, runID, "") // the plain default queue, which every worker serves
	} else {
		h.Notify(ctx, runID, r.Target)
		h.beginVerify(ctx, r)
	}
	if h.onEnd != nil {
		h.onEnd(runID)
	}
}

// runErr turns an error from HSS into a run error record.
func runErr(batch string, images int, err error, now time.Time) *jobs.RunError {
	e := &jobs.RunError{At: now.UTC(), Batch: batch, Images: images, Message: err.Error()}
	var apiErr *hss.APIError
	if errors.As(err, &apiErr) {
		e.Status, e.Code, e.Message, e.RequestID = apiErr.StatusCode, apiErr.Code, apiErr.Message, apiErr.RequestID
	}
	return e
}
