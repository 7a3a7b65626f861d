package main

import (
	"context"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// Shell completion is cobra's (`scanq completion bash|zsh|fish|powershell`).
// Beside commands and flags it completes the values scanq knows without
// asking anyone (queues, states, query_info keys) and, from the deployment
// the command would reach, run ids and schedule names; a deployment that
// does not answer within completeTimeout completes nothing.
const completeTimeout = 2 * time.Second

// fixed completes one of values.
func fixed(values ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
}

// completeScanFlags completes the values of scan's and enqueue's flags.
func completeScanFlags(cmd *cobra.Command) {
	_ = cmd.RegisterFlagCompletionFunc("priority", fixed(jobs.QueueCritical, jobs.QueueDefault, jobs.QueueBulk))
	_ = cmd.RegisterFlagCompletionFunc("global-image-type", fixed("registry", "local"))
	_ = cmd.RegisterFlagCompletionFunc("query", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return queryKeys(), cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	})
}

// queryKeys are the query_info fields, as KEY= for --query.
func queryKeys() []string {
	t := reflect.TypeOf(hss.QueryInfo{})
	var out []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name+"=")
		}
	}
	sort.Strings(out)
	return out
}

// completeRunIDs completes the one argument of `runs show|cancel` with the
// ids of the newest runs of the deployment that cf reaches.
func completeRunIDs(cf *configFlags) cobra.CompletionFunc {
	return completeFromDeployment(cf, func(ctx context.Context, a *app.App) []string {
		page, err := a.Runs.ListPage(ctx, runs.ListQuery{Limit: 50})
		if err != nil {
			return nil
		}
		out := make([]string, 0, len(page.Runs))
		for _, r := range page.Runs {
			out = append(out, r.ID+"\t"+string(r.State)+" "+r.Trigger.Kind+" "+r.CreatedAt.Format(time.RFC3339))
		}
		return out
	})
}

// completeScheduleNames completes `schedules trigger NAME` with the
// schedules of the deployment that cf reaches.
func completeScheduleNames(cf *configFlags) cobra.CompletionFunc {
	return completeFromDeployment(cf, func(_ context.Context, a *app.App) []string {
		var out []string
		for _, s := range a.Cfg.Schedules {
			out = append(out, s.Name+"\t"+s.Cron)
		}
		return out
	})
}

// completeFromDeployment completes a command's one argument with what
// values says of the deployment that cf reaches, within completeTimeout:
// nothing when none answers.
func completeFromDeployment(cf *configFlags, values func(context.Context, *app.App) []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
		defer cancel()
		cf.client = true // never calls HSS
		a, err := openClient(ctx, "", cf, io.Discard)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer a.Close()
		return values(ctx, a), cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	}
}
