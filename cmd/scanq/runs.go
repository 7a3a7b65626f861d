package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// maxListLimit is the most runs one `scanq runs list` prints, as for
// GET /api/v1/runs: a page, with a cursor to the next.
const maxListLimit = 500

const runsUsage = `Usage: scanq runs list [--state S] [--limit N] [--cursor C] [--json]
       scanq runs show ID [--json]
       scanq runs cancel ID [--json]

  list     the runs, newest first, a page at a time (the next page's --cursor on stderr)
  show     one run: state, counters, errors
  cancel   stop a run: nothing more is submitted, the rest counts as skipped (cancelled)

Each takes --config FILE and --set SECTION.KEY=VALUE; flags may follow the ID.
Run 'scanq runs list -h' for a subcommand's flags.
`

// cmdRuns is `scanq runs list|show ID|cancel ID`.
func cmdRuns(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, runsUsage)
		return exitError{2}
	}
	sub := args[0]
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, runsUsage)
		return nil
	case "list", "show", "cancel":
	default:
		fmt.Fprintf(stderr, "scanq runs: unknown subcommand %q (see: scanq runs -h)\n", sub)
		return exitError{2}
	}
	var cf configFlags
	fs := newFlagSet("runs "+sub, stderr, "runs "+sub+" [flags]")
	cf.register(fs.FlagSet)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 20, "list at most this many runs, 1..500")
	state := fs.String("state", "", "list only runs in this state")
	cursor := fs.String("cursor", "", "list the page after the one that printed this cursor")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	a, err := openClient(ctx, "runs "+sub, &cf, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	out := func(v any) error {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	switch sub {
	case "list":
		if *limit < 1 || *limit > maxListLimit {
			fmt.Fprintf(stderr, "scanq runs list: --limit must be in 1..%d, got %d\n", maxListLimit, *limit)
			return exitError{2}
		}
		page, err := a.Runs.ListPage(ctx, runs.ListQuery{Limit: *limit, State: jobs.State(*state), Cursor: *cursor})
		if errors.Is(err, runs.ErrBadCursor) {
			fmt.Fprintf(stderr, "scanq runs list: --cursor: %v: pass the cursor a previous list printed\n", err)
			return exitError{2}
		}
		if err != nil {
			return err
		}
		// The next page is announced on stderr, so that stdout stays the
		// table or the JSON array.
		if page.Next != "" {
			defer fmt.Fprintf(stderr, "more runs: add --cursor %s\n", page.Next)
		}
		list := page.Runs
		if *asJSON {
			return out(list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tTRIGGER\tSTATE\tIMAGES\tSUBMITTED\tSKIPPED\tFAILED\tCREATED")
		for _, r := range list {
			c := r.Counters
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.ID, r.Trigger.Kind, r.State, c.ImagesTotal,
				c.ImagesSubmitted, c.Skipped(), c.ImagesFailed, r.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "show", "cancel":
		if fs.NArg() != 1 {
			fmt.Fprintf(stderr, "Usage: scanq runs %s ID\n", sub)
			return exitError{2}
		}
		id := fs.Arg(0)
		var r *jobs.Run
		if sub == "show" {
			r, err = a.Runs.Get(ctx, id)
		} else {
			r, err = a.Starter.Cancel(ctx, id)
		}
		if errors.Is(err, runs.ErrNotFound) || errors.Is(err, runs.ErrFinal) {
			fmt.Fprintf(stderr, "scanq runs %s: %v\n", sub, err)
			return exitError{1}
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return out(r)
		}
		fmt.Fprintf(stdout, "run %s  trigger %s  state %s  queue %s  batch size %d\n", r.ID, r.Trigger.Kind, r.State, r.Queue, r.BatchSize)
		if r.Resolution != nil {
			fmt.Fprintf(stdout, "resolution: %s\n", r.Resolution)
		}
		c := r.Counters
		fmt.Fprintf(stdout, "images: %d total (%d expected), %d submitted, %d skipped%s, %d failed\n",
			c.ImagesTotal, c.ImagesExpected, c.ImagesSubmitted, c.Skipped(), skipReasons(c.ImagesSkipped), c.ImagesFailed)
		fmt.Fprintf(stdout, "batches: %d total, %d submitted, %d failed, %d skipped\n", c.BatchesTotal, c.BatchesSubmitted, c.BatchesFailed, c.BatchesSkipped)
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
	return nil
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
