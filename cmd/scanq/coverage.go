package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scanq/scanq/internal/api"
	"github.com/scanq/scanq/internal/coverage"
	"github.com/spf13/cobra"
)

func newCoverageCmd() *cobra.Command {
	var cf configFlags
	var asJSON, refresh, force bool
	cmd := &cobra.Command{
		Use:   "coverage [--refresh [--force]]",
		Short: "each target's registry images by scan status and by age of their latest scan",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if force && !refresh {
				return usageErrorf(cmd, "--force goes with --refresh")
			}
			return showCoverage(cmd.Context(), &cf, refresh, force, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON (GET /api/v1/coverage)")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "list every target not being listed now, at once (the workers do it)")
	cmd.Flags().BoolVar(&force, "force", false, "with --refresh: also replace a listing under way (one that stalled: its task was deleted or failed)")
	return cmd
}

// showCoverage prints the coverage of every target of the deployment, and
// with refresh first starts a refresh of each target not refreshing.
func showCoverage(ctx context.Context, cf *configFlags, refresh, force, asJSON bool, stdout, stderr io.Writer) error {
	cf.client = true // never calls HSS
	a, err := openClient(ctx, "coverage", cf, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	targets := a.Cfg.TargetNames()
	now := time.Now()
	all, err := a.Coverage.Get(ctx, targets, now)
	if err != nil {
		return err
	}
	if refresh {
		for _, c := range all {
			if c.Refreshing != nil && !force {
				fmt.Fprintf(stderr, "%s: a refresh is under way (since %s, %d pages); --force replaces it, should it have stalled\n",
					c.Target, c.Refreshing.StartedAt.Format(time.RFC3339), c.Refreshing.Pages)
				continue
			}
			if err := coverage.Enqueue(ctx, a.Client, c.Target, now.UnixMilli(), force); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "%s: refresh enqueued\n", c.Target)
		}
	}
	if asJSON {
		return writeJSON(stdout, api.CoverageResponse{Targets: all})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tIMAGES\tBY SCAN STATUS\tSCANNED 1D\t7D\t30D\tOLDER\tNEVER\tLISTED\tREFRESHING")
	for _, c := range all {
		refreshing := "no"
		if r := c.Refreshing; r != nil {
			refreshing = fmt.Sprintf("since %s, %d pages", r.StartedAt.Format(time.RFC3339), r.Pages)
		}
		if c.Figures == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\tnever\t%s\n", c.Target, refreshing)
			continue
		}
		f := c.Figures
		listed := fmt.Sprintf("%s ago", (time.Duration(*c.AgeSeconds) * time.Second).String())
		if c.Truncated {
			listed += " (truncated at offset 2000000)"
		}
		ages := f.ByScanAge
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", c.Target, f.Images, statuses(f.ByScanStatus), ages.Day, ages.Week, ages.Month, ages.Older, ages.Never, listed, refreshing)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range all {
		if c.LastError != nil {
			fmt.Fprintf(stderr, "%s: the last refresh failed at %s: %s\n", c.Target, c.LastError.At.Format(time.RFC3339), c.LastError.Message)
		}
	}
	return nil
}

// statuses is "success=55 unscan=25 ...", largest first.
func statuses(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
