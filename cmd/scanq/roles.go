package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/scheduler"
)

// role runs one long-lived role of `scanq NAME` until SIGTERM/SIGINT.
func role(name string, args []string, stderr io.Writer, run func(*app.App) error) error {
	var cf configFlags
	fs := newFlagSet(name, stderr, name+" [--config FILE] [--set SECTION.KEY=VALUE ...]")
	cf.register(fs.FlagSet)
	if err := parse(fs, args); err != nil {
		return err
	}
	a, err := open(&cf, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	return run(a)
}

// cmdWorker is `scanq worker`: process scan tasks.
func cmdWorker(ctx context.Context, args []string, stderr io.Writer) error {
	return role("worker", args, stderr, func(a *app.App) error { return a.RunWorker(ctx) })
}

// cmdScheduler is `scanq scheduler`: fire the cron schedules while this
// replica holds the leader lease (any number of replicas may run).
func cmdScheduler(ctx context.Context, args []string, stderr io.Writer) error {
	return role("scheduler", args, stderr, func(a *app.App) error { return a.RunScheduler(ctx) })
}

// cmdAPI is `scanq api`: the HTTP API, asynqmon and /metrics.
func cmdAPI(ctx context.Context, args []string, stderr io.Writer) error {
	return role("api", args, stderr, func(a *app.App) error { return a.RunAPI(ctx, nil) })
}

// cmdServe is `scanq serve`: every role in one process.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return role("serve", args, stderr, func(a *app.App) error { return a.Serve(ctx, stdout) })
}

// cmdSchedules is `scanq schedules`: each schedule with its next fire
// times and its last run; `scanq schedules trigger NAME` fires one now.
func cmdSchedules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf configFlags
	fs := newFlagSet("schedules", stderr, "schedules [trigger NAME [--force]] [--config FILE] [--json]")
	cf.register(fs.FlagSet)
	asJSON := fs.Bool("json", false, "print JSON")
	force := fs.Bool("force", false, "trigger: start a run even while the schedule's last run goes on (overlap: skip)")
	if err := parse(fs, args); err != nil {
		return err
	}
	trigger := ""
	switch {
	case fs.NArg() == 0:
	case fs.NArg() == 2 && fs.Arg(0) == "trigger":
		trigger = fs.Arg(1)
	default:
		fmt.Fprintf(stderr, "scanq schedules: unexpected arguments %q (see: scanq schedules -h)\n", fs.Args())
		return exitError{2}
	}
	a, err := openClient(ctx, "schedules", &cf, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	s, err := a.NewScheduler()
	if err != nil {
		return err
	}
	if trigger != "" {
		r, err := s.Trigger(ctx, trigger, *force)
		var active *scheduler.RunActiveError
		switch {
		case errors.Is(err, scheduler.ErrUnknownSchedule):
			fmt.Fprintf(stderr, "scanq schedules trigger: %v (see: scanq schedules)\n", err)
			return exitError{1}
		case errors.As(err, &active):
			fmt.Fprintf(stderr, "scanq schedules trigger: %v (--force starts another)\n", err)
			return exitError{1}
		case err != nil:
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(map[string]string{"schedule": trigger, "run_id": r.ID, "state": string(r.State)})
		}
		fmt.Fprintf(stdout, "schedule %s: run %s %s\n", trigger, r.ID, r.State)
		return nil
	}
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCHEDULE\tCRON\tENABLED\tQUEUE\tNEXT\tLAST RUN\tSTATE")
	for _, x := range st {
		next := "-"
		if len(x.Next) > 0 {
			var parts []string
			for _, t := range x.Next[:min(3, len(x.Next))] {
				parts = append(parts, t.Format(time.RFC3339))
			}
			next = strings.Join(parts, ", ")
		}
		last := x.LastRunID
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\n", x.Name, x.Cron, x.Enabled, x.Queue, next, last, x.LastRunState)
	}
	return tw.Flush()
}
