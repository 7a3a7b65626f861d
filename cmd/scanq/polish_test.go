package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

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
		{"flags after the argument", []string{"runs", "show", "run-p", "--json", "--set", set}, 0, []string{`"run_id": "run-p"`, `"eta_seconds"`}, nil},
		{"flags before the argument", []string{"runs", "--set", set, "show", "--json", "run-p"}, 0, []string{`"run_id": "run-p"`, `"eta_seconds"`}, nil},
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

	// An unknown flag: one line naming it, one saying where the flags are,
	// and nothing on stdout.
	code, out, errOut := runCmd(t, "scan", "--all", "--bogus")
	if !isUsageHint(errOut, "--bogus", "scanq scan") || code != 2 || out != "" {
		t.Errorf("unknown flag: exit %d, want 2 and a line naming it and one naming scanq scan --help:\n%s%s", code, out, errOut)
	}
	// The emulator's help after a flag it does not know is that flag's
	// usage error, as for every other command (docker-compose's check of
	// its command lines relies on it).
	code, out, errOut = runCmd(t, "emulator", "--imagez", "20000", "-h")
	if !isUsageHint(errOut, "imagez", "scanq emulator") || code != 2 || out != "" {
		t.Errorf("emulator --imagez 20000 -h: exit %d\n%s%s", code, out, errOut)
	}
	// A state no run can be in is a usage error, as the API's 400 is,
	// not an empty list.
	code, out, errOut = runCmd(t, "runs", "list", "--state", "bogus")
	if !isUsageHint(errOut, "bogus", "scanq runs list") || code != 2 || out != "" {
		t.Errorf("runs list --state bogus: exit %d\n%s%s", code, out, errOut)
	}
}

// isUsageHint tells whether errOut is a usage error's two lines: the error,
// naming want, and where the help of the command path is.
func isUsageHint(errOut, want, path string) bool {
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	return len(lines) == 2 && strings.HasPrefix(lines[0], "scanq: ") && strings.Contains(lines[0], want) &&
		lines[1] == "Run '"+path+" --help' for usage."
}

// commandPaths are the command lines of every command of scanq's tree:
// ["scan"], ["runs", "show"], ...
func commandPaths() [][]string {
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			if sub.Hidden {
				continue
			}
			p := append(append([]string(nil), path...), sub.Name())
			out = append(out, p)
			walk(sub, p)
		}
	}
	root := newRoot()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	walk(root, nil)
	return out
}

// TestEveryCommandHasHelpAndHints: -h, --help and `help CMD` print a
// command's help (exit 0), and an unknown flag in any position is a usage
// error of two lines (exit 2), for every command of the tree, so that a
// command added later cannot miss them.
func TestEveryCommandHasHelpAndHints(t *testing.T) {
	paths := commandPaths()
	if len(paths) < 20 {
		t.Fatalf("%d commands: the walk missed the tree: %v", len(paths), paths)
	}
	for _, p := range paths {
		name := strings.Join(p, " ")
		t.Run(name, func(t *testing.T) {
			var helps []string
			for _, args := range [][]string{append(p[:len(p):len(p)], "-h"), append(p[:len(p):len(p)], "--help"), append([]string{"help"}, p...)} {
				code, out, errOut := runCmd(t, args...)
				if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "scanq "+name) || errOut != "" {
					t.Errorf("scanq %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
				}
				helps = append(helps, out)
			}
			if helps[0] != helps[1] || helps[0] != helps[2] {
				t.Errorf("-h, --help and help %s differ:\n%s\n%s\n%s", name, helps[0], helps[1], helps[2])
			}
			for _, args := range [][]string{append(p[:len(p):len(p)], "--bogus"), append([]string{p[0], "--bogus"}, p[1:]...)} {
				code, out, errOut := runCmd(t, args...)
				if code != 2 || out != "" || !isUsageHint(errOut, "-bogus", "scanq "+name) {
					if len(p) > 1 && args[1] == "--bogus" && strings.HasPrefix(errOut, "scanq: unknown flag: --bogus\nRun 'scanq "+p[0]+" --help'") {
						continue // a flag before the subcommand is the parent's
					}
					t.Errorf("scanq %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
				}
			}
		})
	}
}

// TestUsageErrors: what does not parse is a usage error (exit 2) of one
// line and the hint; a group alone prints its help on stderr (exit 2).
func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args       []string
		want, path string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, "scanq"},
		{[]string{"sacn", "--all"}, "did you mean scan?", "scanq"},
		{[]string{"runs", "shwo", "x"}, "did you mean show?", "scanq runs"},
		{[]string{"runs", "show"}, "one run ID, got 0", "scanq runs show"},
		{[]string{"runs", "show", "a", "b"}, "one run ID, got 2", "scanq runs show"},
		{[]string{"runs", "list", "--limit", "many"}, `"many"`, "scanq runs list"},
		{[]string{"scan", "--all", "extra"}, `"extra"`, "scanq scan"},
		{[]string{"schedules", "trigger"}, "one schedule NAME", "scanq schedules trigger"},
		{[]string{"schedules", "nope"}, `unknown command "nope"`, "scanq schedules"},
		{[]string{"config", "validate", "a.yaml", "b.yaml"}, "at most one FILE", "scanq config validate"},
		{[]string{"emulator", "--bogus"}, "bogus", "scanq emulator"},
		{[]string{"version", "x"}, `"x"`, "scanq version"},
		{[]string{"scan", "-all"}, "flags take two dashes: --all", "scanq scan"},
		{[]string{"runs", "show", "x", "-json"}, "flags take two dashes: --json", "scanq runs show"},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`, "scanq"},
		{[]string{"help", "runs", "shwo"}, "did you mean show?", "scanq runs"},
	} {
		code, out, errOut := runCmd(t, c.args...)
		if code != 2 || out != "" || !isUsageHint(errOut, c.want, c.path) {
			t.Errorf("scanq %s: exit %d, want 2 and a line naming %q, then %s --help\nstdout: %s\nstderr: %s",
				strings.Join(c.args, " "), code, c.want, c.path, out, errOut)
		}
	}
	for _, args := range [][]string{nil, {"runs"}, {"config"}} {
		code, out, errOut := runCmd(t, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "Usage:") || !strings.Contains(errOut, "[command]") {
			t.Errorf("scanq %s: exit %d, want 2 and the help on stderr\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
		}
	}
}

func TestVersionOf(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	vcs := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	for _, c := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{nil, "scanq (devel) " + runtime.Version() + " " + platform},
		{&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, "scanq (devel) go1.26.0 " + platform},
		{&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
			Settings: vcs("vcs", "git", "vcs.revision", "0123456789abcdef0123", "vcs.time", "2026-12-06T05:00:00Z", "vcs.modified", "false")},
			"scanq v1.2.3 (0123456789ab 2026-12-06T05:00:00Z) go1.26.0 " + platform},
		{&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.4-0.20261206050000-0123456789ab+dirty"},
			Settings: vcs("vcs.revision", "0123456789abcdef0123", "vcs.modified", "true")},
			"scanq v1.2.4-0.20261206050000-0123456789ab+dirty (0123456789ab+dirty) go1.26.0 " + platform},
	} {
		if got := versionOf(c.bi); got != c.want {
			t.Errorf("versionOf: %q, want %q", got, c.want)
		}
	}
}

// TestVersionAndCompletion: the version names the module version, the
// VCS state when the build recorded it and the Go release; cobra's
// completion scripts are there for each shell; run ids and schedule names
// complete from the deployment the command reaches.
func TestVersionAndCompletion(t *testing.T) {
	want := []string{"scanq ", runtime.GOOS + "/" + runtime.GOARCH}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := runCmd(t, args...)
		if code != 0 || strings.Count(out, "\n") != 1 || errOut != "" {
			t.Errorf("scanq %s: exit %d\n%s%s", args[0], code, out, errOut)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("scanq %s: %q lacks %q", args[0], out, w)
			}
		}
	}
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, errOut := runCmd(t, "completion", sh)
		if code != 0 || !strings.Contains(out, "scanq") || len(out) < 1000 {
			t.Errorf("completion %s: exit %d, %d bytes\n%s", sh, code, len(out), errOut)
		}
	}

	b := redistest.Mini(t)
	store := runs.New(b.Client, runs.Options{})
	if err := store.Create(t.Context(), &jobs.Run{ID: "run-c", Trigger: jobs.Trigger{Kind: "cli"}, Queue: jobs.QueueCritical, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	set := "redis.url=" + b.URL
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "runs", "show", "--set", set, ""}, "run-c\t"},
		{[]string{"__complete", "runs", "cancel", "--set", set, ""}, "run-c\t"},
		{[]string{"__complete", "schedules", "trigger", "--set", set, ""}, "nightly-full-registry\t"},
		{[]string{"__complete", "runs", "list", "--state", ""}, "partially_failed"},
		{[]string{"__complete", "scan", "--priority", ""}, "bulk"},
		{[]string{"__complete", "enqueue", "--query", ""}, "scan_status="},
		{[]string{"__complete", "r"}, "runs"},
	} {
		code, out, errOut := runCmd(t, c.args...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("scanq %s: exit %d, lacks %q\n%s%s", strings.Join(c.args, " "), code, c.want, out, errOut)
		}
	}
	// Nothing to reach: nothing to complete, and nothing printed but the
	// completion's directive.
	code, out, errOut := runCmd(t, "__complete", "runs", "show", "")
	if code != 0 || strings.Contains(out, "\t") || strings.Contains(errOut, "serve") {
		t.Errorf("completing with no deployment: exit %d\n%s%s", code, out, errOut)
	}
}
