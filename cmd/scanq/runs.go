package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// maxListLimit is the most runs one `scanq runs list` prints, as for
// GET /api/v1/runs: a page, with a cursor to the next.
const maxListLimit = 500

// newRunsCmd is `scanq runs list|show ID|cancel ID`: the run records of
// the deployment the command reaches.
func newRunsCmd() *cobra.Command {
	var cf configFlags
	var asJSON bool
	cmd := group(&cobra.Command{
		Use:   "runs",
		Short: "list, show and cancel runs (runs list|show ID|cancel ID)",
		Long: `The runs of the deployment this command reaches: the local scanq serve, or the
Redis of redis.url. --json prints the API's run object (GET /api/v1/runs/{id});
runs list --json prints the API's page ({"runs": [...], "next_cursor": ...}).`,
	})
	cf.register(cmd.PersistentFlags())
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON: the API's run object (list: its page of runs)")

	var limit int
	var state, cursor, target string
	list := &cobra.Command{
		Use:   "list [--state S] [--target T] [--limit N] [--cursor C]",
		Short: "the runs, newest first, a page at a time (the next page's --cursor on stderr)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state != "" && !jobs.State(state).Valid() {
				return usageErrorf(cmd, "--state %q: not one of %s", state, strings.Join(stateNames(), ", "))
			}
			return runsList(cmd.Context(), &cf, runs.ListQuery{Limit: limit, State: jobs.State(state), Target: target, Cursor: cursor}, asJSON,
				cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	list.Flags().IntVar(&limit, "limit", 20, fmt.Sprintf("list at most this many runs, 1..%d", maxListLimit))
	list.Flags().StringVar(&state, "state", "", "list only runs in this `STATE`")
	list.Flags().StringVar(&cursor, "cursor", "", "list the page after the one that printed this cursor")
	list.Flags().StringVar(&target, "target", "", "list only runs on this `TARGET`")
	_ = list.RegisterFlagCompletionFunc("state", fixed(stateNames()...))

	show := &cobra.Command{
		Use:               "show ID",
		Short:             "one run: state, counters, errors",
		Args:              exactArgs(1, "one run ID"),
		ValidArgsFunction: completeRunIDs(&cf),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runsShow(cmd.Context(), &cf, "show", args[0], asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cancel := &cobra.Command{
		Use:               "cancel ID",
		Short:             "stop a run: nothing more is submitted, the rest counts as skipped (cancelled)",
		Args:              exactArgs(1, "one run ID"),
		ValidArgsFunction: completeRunIDs(&cf),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runsShow(cmd.Context(), &cf, "cancel", args[0], asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.AddCommand(list, show, cancel)
	return cmd
}

// stateNames are the states a run can be in.
func stateNames() []string {
	var out []string
	for _, s := range jobs.States {
		out = append(out, string(s))
	}
	return out
}

// runsList is `scanq runs list`: a table, or with --json the API's page
// (jobs.RunList). The table announces the next page on stderr, so that
// stdout stays the table.
func runsList(ctx context.Context, cf *configFlags, q runs.ListQuery, asJSON bool, stdout, stderr io.Writer) error {
	if q.Limit < 1 || q.Limit > maxListLimit {
		fmt.Fprintf(stderr, "scanq runs list: --limit must be in 1..%d, got %d\n", maxListLimit, q.Limit)
		return exitError{exitUsage}
	}
	cf.client = true // never calls HSS
	a, err := openClient(ctx, "runs list", cf, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if q.Target == jobs.AllTargets {
		q.Target = "" // every target's runs, as --target all starts one on each
	}
	if q.Target != "" {
		if _, err := a.Starter.Target(q.Target); err != nil {
			msg := err.Error()
			if ve, ok := errors.AsType[*hss.ValidationError](err); ok {
				msg = ve.Reason
			}
			fmt.Fprintf(stderr, "scanq runs list: --target: %s\n", msg)
			return exitError{exitUsage}
		}
	}
	page, err := a.Runs.ListPage(ctx, q)
	if errors.Is(err, runs.ErrBadCursor) {
		fmt.Fprintf(stderr, "scanq runs list: --cursor: %v: pass the cursor a previous list printed\n", err)
		return exitError{exitUsage}
	}
	if err != nil {
		return err
	}
	if asJSON {
		out := jobs.RunList{Runs: make([]jobs.RunView, 0, len(page.Runs)), NextCursor: page.Next}
		for _, r := range page.Runs {
			out.Runs = append(out.Runs, viewOf(a, r))
		}
		return writeJSON(stdout, out)
	}
	if page.Next != "" {
		defer fmt.Fprintf(stderr, "more runs: add --cursor %s\n", page.Next)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tTARGET\tTRIGGER\tSTATE\tIMAGES\tSUBMITTED\tSKIPPED\tFAILED\tVERIFICATION\tCREATED")
	for _, r := range page.Runs {
		c := r.Counters
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.ID, r.Target, r.Trigger.Kind, r.State, c.ImagesTotal,
			c.ImagesSubmitted, c.Skipped(), c.ImagesFailed, verificationCell(r), r.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// verificationCell is a run's VERIFICATION column: its state and the
// images shown scanned of those submitted; "-" for a run not verified.
func verificationCell(r *jobs.Run) string {
	if r == nil || r.Verification == nil {
		return "-"
	}
	return fmt.Sprintf("%s %d/%d", r.Verification.State, r.Verification.Scanned, r.Counters.ImagesSubmitted)
}

// runsShow is `scanq runs show ID` and `scanq runs cancel ID`: the run
// (after the cancel), as text or in its one JSON shape.
func runsShow(ctx context.Context, cf *configFlags, sub, id string, asJSON bool, stdout, stderr io.Writer) error {
	cf.client = true // never calls HSS
	a, err := openClient(ctx, "runs "+sub, cf, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	var r *jobs.Run
	if sub == "show" {
		r, err = a.Runs.Get(ctx, id)
	} else {
		r, err = a.Starter.Cancel(ctx, id)
	}
	if errors.Is(err, runs.ErrNotFound) {
		return showGroup(ctx, a, sub, id, asJSON, stdout, stderr)
	}
	if errors.Is(err, runs.ErrFinal) {
		fmt.Fprintf(stderr, "scanq runs %s: %v\n", sub, err)
		return exitError{exitFailure}
	}
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, viewOf(a, r))
	}
	fmt.Fprintf(stdout, "run %s  target %s  trigger %s  state %s  queue %s  batch size %d\n", r.ID, r.Target, r.Trigger.Kind, r.State, r.Queue, r.BatchSize)
	if r.Trigger.Parent != "" {
		fmt.Fprintf(stdout, "group: %s\n", r.Trigger.Parent)
	}
	if r.Resolution != nil {
		fmt.Fprintf(stdout, "resolution: %s\n", r.Resolution)
	}
	c := r.Counters
	fmt.Fprintf(stdout, "images: %d total (%d expected), %d submitted, %d skipped%s, %d failed\n",
		c.ImagesTotal, c.ImagesExpected, c.ImagesSubmitted, c.Skipped(), skipReasons(c.ImagesSkipped), c.ImagesFailed)
	fmt.Fprintf(stdout, "batches: %d total, %d submitted, %d failed, %d skipped\n", c.BatchesTotal, c.BatchesSubmitted, c.BatchesFailed, c.BatchesSkipped)
	if r.Drift != nil {
		fmt.Fprintf(stdout, "listing: %s\n", r.Drift)
	}
	app.PrintVerification(stdout, "", r.Verification)
	if eta := r.ETA(time.Now(), a.Cfg.Scan.RatePeriod); eta > 0 {
		fmt.Fprintf(stdout, "eta: %s\n", eta.Round(time.Second))
	}
	if r.StopReason != "" {
		fmt.Fprintf(stdout, "stopped: %s\n", r.StopReason)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(stdout, "error: %s %s %d %s: %s (request id %s)\n", e.At.Format(time.RFC3339), e.Batch, e.Status, e.Code, e.Message, e.RequestID)
	}
	return nil
}

// showGroup is runs show and runs cancel for the id of a run group.
func showGroup(ctx context.Context, a *app.App, sub, id string, asJSON bool, stdout, stderr io.Writer) error {
	var err error
	if sub == "cancel" {
		err = a.Starter.CancelGroup(ctx, id)
	}
	var g jobs.RunGroup
	if err == nil {
		g, err = a.Runs.GroupView(ctx, id, a.Cfg.Scan.RatePeriod)
	}
	if errors.Is(err, runs.ErrNotFound) {
		fmt.Fprintf(stderr, "scanq runs %s: run or group %s not found (it never was, or its record expired after scan.retention)\n", sub, hss.Clip(id))
		return exitError{exitFailure}
	}
	if errors.Is(err, runs.ErrFinal) {
		fmt.Fprintf(stderr, "scanq runs %s: %v\n", sub, err)
		return exitError{exitFailure}
	}
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, g)
	}
	printGroup(stdout, g)
	return nil
}

// printGroup prints a run group: the whole, then a line per run.
func printGroup(w io.Writer, g jobs.RunGroup) {
	c := g.Counters
	fmt.Fprintf(w, "group %s  state %s  targets %s\n", g.ID, g.State, strings.Join(g.Targets, ", "))
	fmt.Fprintf(w, "images: %d total, %d submitted, %d skipped%s, %d failed\n", c.ImagesTotal, c.ImagesSubmitted, c.Skipped(), skipReasons(c.ImagesSkipped), c.ImagesFailed)
	app.PrintVerification(w, "", g.Verification)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tTARGET\tSTATE\tIMAGES\tSUBMITTED\tSKIPPED\tFAILED\tVERIFICATION")
	for _, r := range g.Runs {
		rc := r.Counters
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.ID, r.Target, r.State, rc.ImagesTotal, rc.ImagesSubmitted, rc.Skipped(), rc.ImagesFailed, verificationCell(r.Run))
	}
	_ = tw.Flush()
	for _, r := range g.Runs {
		printWhy(w, r)
	}
}

// printWhy says why a run of a group failed, or what errors it met: its
// stop reason and its last error, and the command that shows the rest. A
// run that failed without either still gets the command.
func printWhy(w io.Writer, r jobs.RunView) {
	failed := r.State == jobs.StateFailed || r.State == jobs.StatePartiallyFailed
	if r.Run == nil || !failed && len(r.Errors) == 0 {
		return
	}
	var why []string
	if r.StopReason != "" {
		why = append(why, "stopped: "+r.StopReason)
	}
	if len(r.Errors) > 0 {
		e := r.Errors[0] // the newest: the run store keeps them newest first
		last := "last error: "
		if e.Status != 0 {
			last += strconv.Itoa(e.Status) + " "
		}
		if e.Code != "" {
			last += e.Code + ": "
		}
		last += e.Message
		if e.RequestID != "" {
			last += " (request id " + e.RequestID + ")"
		}
		why = append(why, last)
	}
	fmt.Fprintf(w, "run %s (target %s) %s", r.ID, r.TargetName(), r.State)
	if len(why) > 0 {
		fmt.Fprintf(w, ": %s", strings.Join(why, "; "))
	}
	fmt.Fprintf(w, "\n  details: scanq runs show %s\n", r.ID)
}

// skipReasons is " (cancelled 990, duplicate 3)", or "" when nothing was
// skipped.
func skipReasons(by map[string]int64) string {
	var parts []string
	for reason, n := range by {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", reason, n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return " (" + strings.Join(parts, ", ") + ")"
}
