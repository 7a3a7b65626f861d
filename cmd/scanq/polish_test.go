package main

import (
	"strings"
	"testing"

	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// TestCLIPolish: flags after arguments, help for a command in every form,
// a version, schedules trigger, a one-line hint for an unknown flag, and no
// Go value syntax in `runs show`.
func TestCLIPolish(t *testing.T) {
	b := redistest.Mini(t)
	store := runs.New(b.Client, runs.Options{})
	if err := store.Create(t.Context(), &jobs.Run{ID: "run-p", Trigger: jobs.Trigger{Kind: "cli"}, Queue: jobs.QueueCritical}); err != nil {
		t.Fatal(err)
	}
	set := "redis.url=" + b.URL
	cases := []struct {
		name      string
		args      []string
		code      int
		want, not []string
	}{
		{"flags after the argument", []string{"runs", "show", "run-p", "--json", "--set", set}, 0, []string{`"run_id": "run-p"`}, nil},
		{"runs show prints no Go map", []string{"runs", "show", "run-p", "--set", set}, 0, []string{"run run-p", "0 skipped"}, []string{"map["}},
		{"runs -h", []string{"runs", "-h"}, 0, []string{"list", "show", "cancel"}, []string{"unknown subcommand"}},
		{"runs --help", []string{"runs", "--help"}, 0, []string{"list", "show", "cancel"}, []string{"unknown subcommand"}},
		{"help scan", []string{"help", "scan"}, 0, []string{"--rate-limit", "--dry-run"}, []string{"Roles:"}},
		{"help runs", []string{"help", "runs"}, 0, []string{"list", "show", "cancel"}, []string{"Roles:"}},
		{"version", []string{"version"}, 0, []string{"scanq", "go1."}, nil},
		{"--version", []string{"--version"}, 0, []string{"scanq", "go1."}, nil},
		{"schedules trigger", []string{"schedules", "trigger", "nightly-full-registry", "--set", set}, 0, []string{"nightly-full-registry", "run "}, []string{"SCHEDULE\tCRON", "NEXT"}},
		{"schedules trigger unknown", []string{"schedules", "trigger", "nope", "--set", set}, 1, []string{`"nope"`, "no such schedule"}, []string{"NEXT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, c.args...)
			all := out + errOut
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, n := range c.not {
				if strings.Contains(all, n) {
					t.Errorf("output has %q", n)
				}
			}
			if t.Failed() {
				t.Logf("scanq %s:\n%s%s", strings.Join(c.args, " "), out, errOut)
			}
		})
	}

	// An unknown flag: one line naming it and where the flags are.
	code, out, errOut := runCmd(t, "scan", "--all", "--bogus")
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != 2 || out != "" || len(lines) != 1 || !strings.Contains(lines[0], "bogus") || !strings.Contains(lines[0], "scanq scan -h") {
		t.Errorf("unknown flag: exit %d, want 2 and one line naming it and scanq scan -h:\n%s", code, errOut)
	}
}
