package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/scheduler"
)

// newRoleCmd is `scanq NAME` for a long-lived role (serve, worker,
// scheduler, api): it runs until SIGTERM/SIGINT.
func newRoleCmd(name, short string) *cobra.Command {
	var cf configFlags
	cmd := &cobra.Command{
		Use:   name + " [--config FILE] [--set SECTION.KEY=VALUE ...]",
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			// serve runs every role on its own embedded Redis; a role of
			// its own on the embedded defaults joins that serve's Redis,
			// never an empty one that no other process can reach.
			opener := open
			if name != "serve" {
				opener = func(cf *configFlags, stderr io.Writer) (*app.App, error) { return openClient(ctx, name, cf, stderr) }
			}
			a, err := opener(&cf, stderr)
			if err != nil {
				return err
			}
			defer a.Close()
			switch name {
			case "worker":
				return a.RunWorker(ctx)
			case "scheduler":
				// Fires the cron schedules while this replica holds the
				// leader lease (any number of replicas may run).
				return a.RunScheduler(ctx)
			case "api":
				return a.RunAPI(ctx, nil)
			default:
				return a.Serve(ctx, stdout)
			}
		},
	}
	cf.register(cmd.Flags())
	return cmd
}

// newSchedulesCmd is `scanq schedules`: each schedule with its next fire
// times and its last run; `scanq schedules trigger NAME` fires one now.
func newSchedulesCmd() *cobra.Command {
	var cf configFlags
	var asJSON, force bool
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "the schedules and their next fire times; fire one now",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return schedules(cmd.Context(), &cf, "", false, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cf.register(cmd.PersistentFlags())
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON (trigger: the API's run object)")
	trigger := &cobra.Command{
		Use:               "trigger NAME [--force]",
		Short:             "start a run of schedule NAME now, as its cron would",
		Args:              exactArgs(1, "one schedule NAME"),
		ValidArgsFunction: completeScheduleNames(&cf),
		RunE: func(cmd *cobra.Command, args []string) error {
			return schedules(cmd.Context(), &cf, args[0], force, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	trigger.Flags().BoolVar(&force, "force", false, "start a run even while the schedule's last run goes on (overlap: skip)")
	cmd.AddCommand(trigger)
	return cmd
}

// schedules prints the schedules, or with trigger set fires that one.
func schedules(ctx context.Context, cf *configFlags, trigger string, force, asJSON bool, stdout, stderr io.Writer) error {
	name := "schedules"
	if trigger != "" {
		name = "schedules trigger"
	}
	cf.client = true // never calls HSS
	a, err := openClient(ctx, name, cf, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	s, err := a.NewScheduler()
	if err != nil {
		return err
	}
	if trigger != "" {
		r, err := s.Trigger(ctx, trigger, force)
		var active *scheduler.RunActiveError
		switch {
		case errors.Is(err, scheduler.ErrUnknownSchedule):
			fmt.Fprintf(stderr, "scanq schedules trigger: %v (see: scanq schedules)\n", err)
			return exitError{exitFailure}
		case errors.As(err, &active):
			fmt.Fprintf(stderr, "scanq schedules trigger: %v (--force starts another)\n", err)
			return exitError{exitFailure}
		case err != nil:
			return err
		}
		if asJSON {
			return writeJSON(stdout, viewOf(a, r)) // trigger.name is the schedule
		}
		fmt.Fprintf(stdout, "schedule %s: run %s %s\n", trigger, r.ID, r.State)
		return nil
	}
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, st)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCHEDULE\tCRON\tENABLED\tQUEUE\tTARGETS\tNEXT\tLAST RUN\tSTATE")
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
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\n", x.Name, x.Cron, x.Enabled, x.Queue, strings.Join(x.Targets, ","), next, last, x.LastRunState)
	}
	return tw.Flush()
}
