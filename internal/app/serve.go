package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/hss"
)

// demoSchedule is added in demo mode so that the scheduler has something to
// show within minutes: the images not scanned yet, every ten minutes.
func demoSchedule() configs.Schedule {
	unscanned := "unscan"
	scope := hss.ScanScopeAll
	return configs.Schedule{
		Name: "demo-unscanned-every-10m", Cron: "@every 10m", Enabled: true, Queue: configs.QueueBulk,
		Overlap: configs.OverlapSkip, MisfireGrace: 0,
		Request: configs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{ScanStatus: &unscanned}, ScanScope: &scope}},
	}
}

// Serve runs every role in one process until ctx is done: worker, scheduler
// and API. On embedded defaults it says loudly that this is a demo.
func (a *App) Serve(ctx context.Context, stdout io.Writer) error {
	if a.Demo() {
		a.Cfg.Schedules = append(a.Cfg.Schedules, demoSchedule())
		a.Log.Warn("DEMO MODE: embedded Redis (miniredis) and the built-in HSS emulator. Every run, queue and schedule lives in this process and is lost on restart. API authentication is OFF.")
		if a.Emulator != nil {
			fmt.Fprintf(stdout, "HSS emulator:  %s  (stats: %s/emulator/v1/stats)\n", a.Emulator.URL, a.Emulator.URL)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan string, 1)
	go func() {
		select {
		case addr := <-ready:
			printURLs(stdout, addr)
		case <-ctx.Done():
		}
	}()
	roles := map[string]func(context.Context) error{
		"worker":    a.RunWorker,
		"scheduler": a.RunScheduler,
		"api":       func(ctx context.Context) error { return a.RunAPI(ctx, ready) },
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(roles))
	for name, run := range roles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel() // one role down takes the others down: no half-running process
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(func() []error {
		var out []error
		for e := range errs {
			out = append(out, e)
		}
		return out
	}()...)
}
