// Package app wires scanq's components into the roles cmd/scanq starts:
// Redis (or the embedded miniredis), the HSS client (or the embedded
// emulator), the run store, the limiter and the asynq client and server.
// It holds no logic of its own beyond that wiring and the role lifecycles.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/coverage"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/metrics"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// App is a configured set of components. Build it with New, Close it when done.
type App struct {
	Cfg   *configs.Config
	Log   *slog.Logger
	Redis *Redis
	// Targets are the estate's targets, in configuration order, each with
	// the client that reaches it.
	Targets []*Target
	Runs    *runs.Store
	Starter *runs.Starter
	Client  *asynq.Client
	Limiter *limit.Limiter
	// Coverage keeps the targets' coverage figures.
	Coverage *coverage.Store
	// Metrics is this process's Prometheus registry and recorders.
	Metrics *metrics.Metrics
	// Emulator is the first embedded HSS emulator (endpoint: embedded),
	// nil against a real HSS. Every target on the embedded endpoint has
	// one of its own (Target.Emulator).
	Emulator *emulator.Server

	ends runEnds // the runs this process follows, woken when its worker ends them
}

// New connects the components cfg describes. With redis.url or
// hss.endpoint set to "embedded" it starts the in-process stand-ins. A Redis
// that refuses the connection (unreachable, wrong password) is an error
// here, so no role starts on it.
func New(cfg *configs.Config, log *slog.Logger) (*App, error) {
	a := &App{Cfg: cfg, Log: log, Metrics: metrics.New(cfg.TargetNames()...)}
	var err error
	if a.Redis, err = OpenRedis(cfg.Redis.URL, cfg.Redis.DialTimeout); err != nil {
		return nil, err
	}
	// Dial timeout plus go-redis's own retries of a failed dial.
	if err := a.Redis.Check(context.Background(), configs.RedactURL(cfg.Redis.URL), 2*cfg.Redis.DialTimeout+time.Second); err != nil {
		a.Redis.Close()
		return nil, err
	}
	var limits []runs.Target
	for _, ct := range cfg.Estate() {
		t, err := a.connect(ct)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.Targets = append(a.Targets, t)
		limits = append(limits, runs.Target{Name: ct.Name, MaxBatchSize: ct.MaxBatchSize})
	}
	a.Runs = runs.New(a.Redis.Client, runs.Options{Retention: cfg.Scan.Retention, PendingTTL: cfg.Scan.PendingTTL})
	a.Client = asynq.NewClientFromRedisClient(a.Redis.Client)
	a.Limiter = limit.New(a.Redis.Client, limit.Options{})
	a.Coverage = coverage.New(a.Redis.Client, "")
	a.Starter = &runs.Starter{Store: a.Runs, Client: a.Client, Inspector: asynq.NewInspectorFromRedisClient(a.Redis.Client),
		Targets: limits, BatchSize: cfg.Scan.BatchSize, VerifyWatch: cfg.Verify.PollMax}
	a.Starter.Notify, a.Starter.NotifyRetries = cfg.Webhook.URL != "", max(cfg.Webhook.MaxAttempts-1, 0)
	return a, nil
}

// Close releases every component.
func (a *App) Close() {
	if a.Client != nil {
		_ = a.Client.Close()
	}
	for _, t := range a.Targets {
		if t.Emulator != nil {
			t.Emulator.Close()
		}
	}
	if a.Redis != nil {
		a.Redis.Close()
	}
}

// Demo reports whether anything runs on the embedded stand-ins.
func (a *App) Demo() bool { return a.Redis.Mini != nil || a.Emulator != nil }

// verifyPollMin is verify.poll_min, but for an estate of embedded
// emulators only, left at its default: their scans take
// emulator_scan_delay (10s), and a first round a minute later would leave
// a demo idle; the first round comes after the longest of them (at least
// a second).
func (a *App) verifyPollMin() time.Duration {
	c := a.Cfg
	if c.Verify.PollMin != worker.DefaultVerifyPollMin {
		return c.Verify.PollMin
	}
	longest := time.Duration(0)
	for _, t := range c.Estate() {
		if t.Endpoint != configs.Embedded {
			return c.Verify.PollMin
		}
		longest = max(longest, t.EmulatorScanDelay)
	}
	return min(c.Verify.PollMin, max(longest, time.Second))
}

// Handlers builds the worker's task handlers.
func (a *App) Handlers() *worker.Handlers {
	c := a.Cfg
	return worker.New(worker.Config{
		PageSize: c.Scan.PageSize, PagesAhead: c.Scan.PagesAhead, Slots: c.Worker.Concurrency, ListOverlap: listOverlap(c.Scan.ListOverlap), MaxPasses: c.Scan.MaxPasses,
		RatePeriod: c.Scan.RatePeriod, MaxInlineWait: c.Worker.MaxInlineWait,
		MaxAttempts: c.Retry.MaxAttempts, RetryBase: c.Retry.Base, RetryCap: c.Retry.Cap,
		VerifyTimeout: c.Verify.Timeout, VerifyPollMin: a.verifyPollMin(), VerifyPollMax: c.Verify.PollMax,
	}, a.workerTargets(), worker.Deps{Runs: a.Runs, Limiter: a.Limiter, Client: a.Client, Inspector: a.Starter.Inspector, Logger: a.Log, Metrics: a.Metrics,
		Webhook:  worker.Webhook{URL: c.Webhook.URL, Secret: c.Webhook.Secret, MaxRetry: max(c.Webhook.MaxAttempts-1, 0)},
		Finished: a.ends.ended, Coverage: a.Coverage})
}

// Target is one target of the estate, connected.
type Target struct {
	configs.Target
	HSS *hss.Client
	// Emulator is the target's embedded HSS emulator (endpoint: embedded),
	// nil for a real HSS.
	Emulator *emulator.Server
}

// connect builds the client of target ct, starting its embedded emulator
// when it has one.
func (a *App) connect(ct configs.Target) (*Target, error) {
	t := &Target{Target: ct}
	endpoint := ct.EndpointURL()
	creds := hss.Credentials{AK: ct.AK, SK: ct.SK, SecurityToken: ct.SecurityToken, AuthToken: ct.AuthToken}
	if ct.Endpoint == configs.Embedded {
		t.Emulator = emulator.NewServer(emulator.Options{
			Images: ct.EmulatorImages, LocalImages: ct.EmulatorImages / 10, Seed: ct.EmulatorSeed,
			ScanDelay: ct.EmulatorScanDelay, ScanFailRate: ct.EmulatorScanFailRate,
			ProjectID: ct.ProjectID, // its per-call log lines would drown the demo's own
		})
		endpoint = t.Emulator.URL
		creds = hss.Credentials{} // the embedded emulator runs without authentication
		if a.Emulator == nil {
			a.Emulator = t.Emulator
		}
	}
	var err error
	t.HSS, err = hss.NewClient(hss.Config{
		Endpoint: endpoint, Region: ct.Region, ProjectID: ct.ProjectID,
		EnterpriseProjectID: ct.EnterpriseProjectID, Credentials: creds, Timeout: ct.Timeout,
		Observe: a.Metrics.HSSObserver(ct.Name),
	})
	if err != nil {
		if t.Emulator != nil {
			t.Emulator.Close()
		}
		return nil, fmt.Errorf("target %s: hss: %w", ct.Name, err)
	}
	return t, nil
}

// workerTargets are the targets as the worker takes them.
func (a *App) workerTargets() []worker.Target {
	out := make([]worker.Target, len(a.Targets))
	for i, t := range a.Targets {
		out[i] = worker.Target{
			Name: t.Name, HSS: t.HSS, ProjectID: t.ProjectID, EnterpriseProjectID: t.EnterpriseProjectID, Region: t.Region,
			RequestRate: t.RequestRate, RequestBurst: t.RequestBurst, ThrottleCooldown: t.ThrottleCooldown, MaxBatchSize: t.MaxBatchSize,
		}
	}
	return out
}

// Queues are the worker's queues and their weights.
func (a *App) Queues() map[string]int {
	w := a.Cfg.Worker
	return map[string]int{jobs.QueueCritical: w.WeightCritical, jobs.QueueDefault: w.WeightDefault, jobs.QueueBulk: w.WeightBulk}
}

// RunWorker processes tasks until ctx is done, then stops fetching, lets
// in-flight tasks finish within worker.shutdown_timeout and returns the rest
// to their queues. It runs one asynq server for the default queues and one
// per other target (worker.Handlers.ServerConfigs), and publishes its
// estate for the CLI (PublishEstate).
func (a *App) RunWorker(ctx context.Context) error {
	if err := a.RegisterQueues(ctx); err != nil {
		return err
	}
	if err := a.PublishEstate(ctx); err != nil {
		return err
	}
	go a.keepEstatePublished(ctx)
	h := a.Handlers()
	w := a.Cfg.Worker
	s := a.Cfg.Scan
	cfgs := h.ServerConfigs(worker.ServerOptions{
		Concurrency: w.Concurrency, Queues: a.Queues(), PollInterval: w.PollInterval, FetchInterval: w.FetchInterval, ShutdownTimeout: w.ShutdownTimeout,
		GroupMaxSize: s.BatchSize, GroupGracePeriod: s.GroupGracePeriod, GroupMaxDelay: s.GroupMaxDelay,
		Logger: asynqLogger{a.Log.With("component", "asynq")},
	})
	var servers []*asynq.Server
	defer func() { // at once, so that the shutdown timeout is one for all
		var wg sync.WaitGroup
		for _, srv := range servers {
			wg.Go(srv.Shutdown)
		}
		wg.Wait()
	}()
	mux := h.Mux()
	for _, c := range cfgs {
		srv := asynq.NewServerFromRedisClient(a.Redis.Client, c)
		if err := srv.Start(mux); err != nil {
			return fmt.Errorf("starting worker: %w", err)
		}
		servers = append(servers, srv)
	}
	a.Log.Info("worker started", "concurrency", w.Concurrency, "queues", a.Queues(), "targets", h.TargetNames())
	<-ctx.Done()
	a.Log.Info("worker stopping: in-flight batches finish, the rest go back to the queue", "timeout", w.ShutdownTimeout)
	return nil
}

// ErrRunFailed is returned by commands whose run did not submit every image.
var ErrRunFailed = errors.New("run did not submit every image")

// listOverlap is scan.list_overlap as worker.Config takes it, where 0
// means the default and a negative value none.
func listOverlap(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
