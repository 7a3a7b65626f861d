package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// `scanq runs list` prints a page and the cursor of the next on stderr.
func TestRunsListPages(t *testing.T) {
	b := redistest.Mini(t)
	store := runs.New(b.Client, runs.Options{})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		r := &jobs.Run{ID: fmt.Sprintf("run-%d", i), CreatedAt: base.Add(time.Duration(i) * time.Second), Trigger: jobs.Trigger{Kind: "cli"},
			Options: jobs.Options{Verify: i == 2}}
		if err := store.Create(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	set := []string{"--set", "redis.url=" + b.URL}
	code, out, errOut := runCmd(t, append([]string{"runs", "list", "--limit", "2"}, set...)...)
	m := regexp.MustCompile(`more runs: add --cursor (\S+)`).FindStringSubmatch(errOut)
	if code != 0 || !strings.Contains(out, "run-2") || !strings.Contains(out, "run-1") || strings.Contains(out, "run-0") || m == nil {
		t.Fatalf("first page: exit %d\n%s\n%s", code, out, errOut)
	}
	// The verification column: the verified run's state and images
	// scanned of submitted, "-" for a run not verified.
	if !regexp.MustCompile(`run-2 .* pending 0/0 `).MatchString(out) || !regexp.MustCompile(`run-1 .* - `).MatchString(out) {
		t.Fatalf("no verification column:\n%s", out)
	}
	code, out, errOut = runCmd(t, append([]string{"runs", "list", "--limit", "2", "--cursor", m[1]}, set...)...)
	if code != 0 || !strings.Contains(out, "run-0") || strings.Contains(out, "run-1") || strings.Contains(errOut, "more runs") {
		t.Fatalf("second page: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, args := range [][]string{{"--limit", "501"}, {"--limit", "0"}, {"--cursor", "nope"}} {
		if code, _, errOut := runCmd(t, append(append([]string{"runs", "list"}, args...), set...)...); code != 2 {
			t.Errorf("runs list %v: exit %d, want 2\n%s", args, code, errOut)
		}
	}
}

// `scanq runs show` says how a run's query was resolved, widening first.
func TestRunsShowResolution(t *testing.T) {
	b := redistest.Mini(t)
	store := runs.New(b.Client, runs.Options{})
	r := &jobs.Run{ID: "wide", CreatedAt: time.Now().UTC(), Trigger: jobs.Trigger{Kind: "cli"}, Source: jobs.SourceQuery,
		Resolution: &jobs.Resolution{ListAPI: "ListRegistryImages", ScanqFilters: []string{"scan_status"}, Unlisted: []string{"host_name"}, Widened: true}}
	if err := store.Create(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "runs", "show", "--set", "redis.url="+b.URL, "wide")
	if code != 0 || !strings.Contains(out, "resolution: listed with ListRegistryImages; applied by scanq scan_status; no list evaluates host_name; WIDENED") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}
