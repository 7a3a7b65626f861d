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

// RunScheduler fires the schedules while this replica leads, until ctx is
// done; then it gives up leadership.
func (a *App) RunScheduler(ctx context.Context) error {
	s, err := a.NewScheduler()
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
