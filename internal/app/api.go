package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"syscall"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/api"
	"github.com/scanq/scanq/scheduler"
)

// NewAPI builds the HTTP API handler: the HSS-compatible endpoint,
// /api/v1, asynqmon, /metrics and the health probes.
func (a *App) NewAPI() (*api.Handler, error) {
	c := a.Cfg
	s, err := a.NewScheduler()
	if err != nil {
		return nil, err
	}
	if err := a.Metrics.RegisterRuns(a.Runs); err != nil {
		return nil, err
	}
	if err := a.Metrics.RegisterQueues(asynq.NewInspectorFromRedisClient(a.Redis.Client), a.queueNames()); err != nil {
		return nil, err
	}
	if err := a.Metrics.RegisterCoverage(a.Coverage, a.Cfg.TargetNames()); err != nil {
		return nil, err
	}
	if err := a.Metrics.RegisterThrottles(a.Limiter, a.Cfg.TargetNames()); err != nil {
		return nil, err
	}
	return api.New(api.Options{
		Starter: a.Starter, Runs: a.Runs, Redis: a.Redis.Client, RedisOpt: a.Redis.Opt,
		Token: c.API.Token, AK: c.API.AK, SK: c.API.SK, MetricsToken: c.API.MetricsToken, Projects: a.projects(),
		MaxBodyBytes: c.API.MaxBodyBytes, MaxImagesPerRequest: c.API.MaxImagesPerRequest, MaxBodyMemory: c.API.MaxBodyMemory, BodyStallTimeout: c.API.BodyStallTimeout,
		Monitoring: c.API.Monitoring, MonitoringReadOnly: c.API.MonitoringReadOnly,
		IdempotencyTTL: c.API.IdempotencyTTL, RatePeriod: c.Scan.RatePeriod,
		CreateRate: c.API.CreateRate, CreateBurst: c.API.CreateBurst,
		Schedules: api.SchedulesFunc(s.Status, s.Trigger, scheduler.ErrUnknownSchedule),
		Images:    api.StarterImages(a.Starter),
		Coverage:  a.Coverage, CoverageTargets: a.Cfg.TargetNames(),
		Metrics: a.Metrics, Logger: a.Log.With("component", "api"),
	})
}

// ListenAPI binds api.addr and checks that the API may serve there
// (checkExposure). Roles call it before they start anything else, so that
// a port in use is the first and only thing a start that fails prints, and
// its error names the setting to change.
func (a *App) ListenAPI() (net.Listener, error) {
	addr := a.Cfg.API.Addr
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("api.addr %s is in use (another scanq serve?): choose another with SCANQ_API_ADDR=HOST:PORT or --set api.addr=HOST:PORT, e.g. --set api.addr=127.0.0.1:0 for any free port\n(%w)", addr, err)
	}
	if err != nil {
		return nil, fmt.Errorf("api.addr %s: cannot listen there: choose another with SCANQ_API_ADDR=HOST:PORT or --set api.addr=HOST:PORT\n(%w)", addr, err)
	}
	if err := a.checkExposure(ln.Addr()); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln, nil
}

// RunAPI serves the API on api.addr until ctx is done, then drains: it
// stops accepting and lets requests in flight finish (up to the worker
// shutdown timeout). ready, when not nil, receives the bound address.
func (a *App) RunAPI(ctx context.Context, ready chan<- string) error {
	ln, err := a.ListenAPI()
	if err != nil {
		return err
	}
	return a.ServeAPI(ctx, ln, ready)
}

// ServeAPI is RunAPI on a listener ListenAPI bound; it closes ln.
func (a *App) ServeAPI(ctx context.Context, ln net.Listener, ready chan<- string) error {
	// asynqmon shows every queue from the start.
	if err := a.RegisterQueues(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	h, err := a.NewAPI()
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer h.Close()
	if limit, ok := limitHeapForBodies(a.Cfg.API.MaxBodyMemory, os.LookupEnv); ok {
		a.Log.Info("api: soft heap limit set (GOMEMLIMIT unset)", "limit_bytes", limit, "max_body_memory", a.Cfg.API.MaxBodyMemory)
	}
	c := a.Cfg.API
	ln = api.LimitConnections(ln, c.MaxConnections)
	srv := api.NewServer(h, api.ServerOptions{
		ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout, IdleTimeout: c.IdleTimeout, MaxHeaderBytes: c.MaxHeaderBytes,
	})
	addr := ln.Addr().String()
	a.Log.Info("api listening", "addr", addr, "monitoring", "/monitoring/", "metrics", "/metrics",
		"auth", a.apiAuthenticated())
	if ready != nil {
		ready <- addr
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.Cfg.Worker.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("api: draining: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// apiHeapHeadroom is what the API's heap needs besides request bodies
// (asynqmon, the metrics registry, connections, decoded requests), with
// room to spare.
const apiHeapHeadroom = 64 << 20

// limitHeapForBodies sets a soft heap limit of the body budget plus
// apiHeapHeadroom, unless GOMEMLIMIT is set (or a limit already is). The
// body budget bounds the bodies held at once, but not their garbage: a
// buffer that grows leaves the old one behind, and a refused request its
// partial buffer, and under DefaultGCPercent (400) the heap may grow to
// five times what is live before a collection: stalled clients sending
// 12 MiB bodies took the process to about twice the 150 MB the API is to
// stay under without it. The limit is soft: the collector works harder
// near it, and never fails an allocation. In `scanq serve` the worker
// shares it.
func limitHeapForBodies(bodyMemory int64, lookupEnv func(string) (string, bool)) (int64, bool) {
	if _, set := lookupEnv("GOMEMLIMIT"); set {
		return 0, false
	}
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return 0, false
	}
	limit := bodyMemory + apiHeapHeadroom
	debug.SetMemoryLimit(limit)
	return limit, true
}

// printURLs tells a demo user where to look.
func printURLs(w io.Writer, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	base := "http://" + net.JoinHostPort(host, port)
	fmt.Fprintf(w, "API:           %s/api/v1/runs\n", base)
	fmt.Fprintf(w, "HSS endpoint:  %s/v5/{project_id}/image/image-scan/tasks\n", base)
	fmt.Fprintf(w, "asynqmon:      %s/monitoring/\n", base)
	fmt.Fprintf(w, "metrics:       %s/metrics\n", base)
}

// projects are the targets' projects, as the HSS-compatible endpoint routes
// them.
func (a *App) projects() []api.Project {
	out := make([]api.Project, len(a.Targets))
	for i, t := range a.Targets {
		out[i] = api.Project{ProjectID: t.ProjectID, Region: t.Region, Target: t.Name}
	}
	return out
}
