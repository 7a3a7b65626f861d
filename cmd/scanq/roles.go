package main

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// cmdWorker is `scanq worker`: process scan tasks until SIGTERM/SIGINT.
func cmdWorker(ctx context.Context, args []string, stderr io.Writer) error {
	var cf configFlags
	fs := newFlagSet("worker", stderr, "worker [--config FILE] [--set SECTION.KEY=VALUE ...]")
	cf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	a, err := open(&cf, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.RunWorker(ctx)
}

// cmdServe is `scanq serve`: every role in one process.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf configFlags
	fs := newFlagSet("serve", stderr, "serve [--config FILE] [--set SECTION.KEY=VALUE ...]")
	cf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	a, err := open(&cf, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx, stdout)
}

func cmdScheduler(ctx context.Context, args []string, stderr io.Writer) error {
	return errors.New("scanq scheduler: not implemented yet")
}

func cmdAPI(ctx context.Context, args []string, stderr io.Writer) error {
	return errors.New("scanq api: not implemented yet")
}

func cmdSchedules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("scanq schedules: not implemented yet")
}
