package app

import (
	"context"

	"github.com/scanq/scanq/scheduler"
)

// NewScheduler builds the cron scheduler for the configured schedules.
func (a *App) NewScheduler() (*scheduler.Scheduler, error) {
	return scheduler.New(a.Redis.Client, a.Starter, a.Runs, a.Cfg.Schedules, scheduler.Options{
		Lease: a.Cfg.Scheduler.Lease, Logger: a.Log, Metrics: a.Metrics.Scheduler(),
	})
}

// RunScheduler fires the schedules while this replica leads, and every
// target's coverage refresh on its ticks (coverage.interval, unless 0),
// until ctx is done; then it gives up leadership.
func (a *App) RunScheduler(ctx context.Context) error {
	s, err := a.NewScheduler()
	if err != nil {
		return err
	}
	if iv := a.Cfg.Coverage.Interval; iv > 0 {
		c, err := scheduler.NewCoverage(a.Client, a.Cfg.TargetNames(), iv, nil, a.Log)
		if err != nil {
			return err
		}
		ctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = c.Run(ctx) }()
		defer func() { stop(); <-done }()
	}
	return s.Run(ctx)
}
