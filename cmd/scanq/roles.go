package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scanq/scanq/internal/app"
)

// role runs one long-lived role of `scanq NAME` until SIGTERM/SIGINT.
func role(name string, args []string, stderr io.Writer, run func(*app.App) error) error {
	var cf configFlags
	fs := newFlagSet(name, stderr, name+" [--config FILE] [--set SECTION.KEY=VALUE ...]")
	cf.register(fs)
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
// times and its last run.
func cmdSchedules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf configFlags
	fs := newFlagSet("schedules", stderr, "schedules [--config FILE] [--json]")
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
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
