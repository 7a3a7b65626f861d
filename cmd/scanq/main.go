// Command scanq schedules container-image security scans on Huawei Cloud
// HSS: cron schedules and ad-hoc requests become runs on Redis, and a fleet
// of workers submits them in rate-limited batches. Run `scanq help`.
//
// main parses the command line (spf13/cobra), loads the configuration and
// starts roles; everything else lives in packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/scanq/scanq/internal/app"
)

// Exit codes: 0 done, 1 a failure (a run that did not submit every image,
// an error), 2 a command line that does not parse or a request that is
// refused before anything starts, 130 interrupted while following a run.
const (
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// exitError carries an exit code through the command functions, which
// have printed what there is to say.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	app.TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "scanq:", err)
		os.Exit(exitFailure)
	}
}

// run runs one command line. A usage error is printed here, on one line
// with where the command's help is (exit 2); a command that has printed
// its own outcome returns an exitError; any other error is main's to print
// (exit 1).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot()
	root.SetOut(stdout)
	root.SetErr(stderr)
	if args == nil {
		args = []string{} // nil makes cobra read os.Args
	}
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return flagError(cmd, args, err) })
	cmd, err := root.ExecuteContextC(ctx)
	var ue usageError
	if errors.As(err, &ue) {
		if ue.cmd != nil {
			cmd = ue.cmd
		}
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "scanq: %v\nRun '%s --help' for usage.\n", ue.err, cmd.CommandPath())
		return exitError{exitUsage}
	}
	return err
}

const rootLong = `scanq schedules container-image security scans on Huawei Cloud HSS.

Every command that reads the configuration takes --config FILE (default:
$SCANQ_CONFIG, else the embedded defaults) and --set SECTION.KEY=VALUE
(repeatable). Flags may come before or after a command's arguments.`

// newRoot is the command tree of scanq.
func newRoot() *cobra.Command {
	root := group(&cobra.Command{
		Use:     "scanq",
		Short:   "schedule container-image scans on Huawei Cloud HSS",
		Long:    rootLong,
		Version: version(),
		// Usage errors are printed by run, on one line; errors of a
		// command that ran are main's.
		SilenceUsage:  true,
		SilenceErrors: true,
		// cobra's own suggestions take several lines; noArgs puts them on
		// the error's.
		DisableSuggestions: true,
	})
	root.SetUsageTemplate(usageTemplate)
	root.SetVersionTemplate("{{.Version}}\n")
	// --version without cobra's -v shorthand, which is left free.
	root.Flags().Bool("version", false, "print the version, VCS revision and Go release")
	root.AddGroup(
		&cobra.Group{ID: "roles", Title: "Roles:"},
		&cobra.Group{ID: "scans", Title: "Scans:"},
		&cobra.Group{ID: "tools", Title: "Tools:"},
	)
	root.SetHelpCommand(newHelpCmd())
	root.SetHelpCommandGroupID("tools")
	root.SetCompletionCommandGroupID("tools")
	for _, c := range []*cobra.Command{
		newRoleCmd("serve", "every role in one process (demo mode with no configuration)"),
		newRoleCmd("worker", "process scan tasks"),
		newRoleCmd("scheduler", "fire cron schedules (any number of replicas; one leader)"),
		newRoleCmd("api", "the HTTP API, asynqmon and /metrics"),
	} {
		c.GroupID = "roles"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newScanCmd(false), newScanCmd(true), newRunsCmd(), newSchedulesCmd(), newCoverageCmd()} {
		c.GroupID = "scans"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newConfigCmd(), newEmulatorCmd(), newVersionCmd()} {
		c.GroupID = "tools"
		root.AddCommand(c)
	}
	return root
}

// newHelpCmd is `scanq help [COMMAND]`: cobra's, but a topic that is no
// command is a usage error, not the top-level help.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "help about any command",
		ValidArgsFunction: func(c *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					out = append(out, sub.Name()+"\t"+sub.Short)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil {
				return usageError{cmd: c, err: err}
			}
			if len(rest) > 0 {
				return noArgs(cmd, rest)
			}
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "the version, VCS revision and Go release",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version())
			return err
		},
	}
}

// version is the module's version and VCS state as the Go toolchain
// recorded them, and the Go release that built it.
func version() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi)
}

// versionOf is "scanq v1.2.3 (0123456789ab+dirty 2026-12-06T05:00:00Z)
// go1.26.0 linux/amd64" for bi (nil when the binary has none). A binary
// built without VCS stamping (go run, go test, -buildvcs=false) has no
// revision.
func versionOf(bi *debug.BuildInfo) string {
	v, rev, at, dirty := "(devel)", "", "", ""
	goVersion := runtime.Version()
	if bi != nil {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
	}
	out := "scanq " + v
	if rev != "" {
		out += fmt.Sprintf(" (%.12s%s", rev, dirty)
		if at != "" {
			out += " " + at
		}
		out += ")"
	}
	return out + fmt.Sprintf(" %s %s/%s", goVersion, runtime.GOOS, runtime.GOARCH)
}
