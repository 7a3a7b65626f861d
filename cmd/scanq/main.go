// Command scanq schedules container-image security scans on Huawei Cloud
// HSS: cron schedules and ad-hoc requests become runs on Redis, and a fleet
// of workers submits them in rate-limited batches. Run `scanq help`.
//
// main parses flags, loads the configuration and starts roles; everything
// else lives in packages.
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

	"github.com/scanq/scanq/internal/app"
)

const usage = `scanq schedules container-image security scans on Huawei Cloud HSS.

Usage: scanq COMMAND [flags]

Roles:
  serve               every role in one process (demo mode with no configuration)
  worker              process scan tasks
  scheduler           fire cron schedules (any number of replicas; one leader)
  api                 the HTTP API, asynqmon and /metrics

Scans:
  scan                run one scan to completion in this process
  enqueue             hand a scan to the fleet (--wait to follow it)
  runs list|show ID|cancel ID
  schedules [trigger NAME]   the schedules and their next fire times; fire one now

Tools:
  config validate [FILE]   check a configuration, naming the bad field
  config show [FILE]       print the effective configuration, secrets redacted
  emulator                 the HSS emulator as a server
  version                  the version, VCS revision and Go release

Flags common to every command that reads the configuration:
  --config FILE       configuration file (default: $SCANQ_CONFIG, else the embedded defaults)
  --set SECTION.KEY=VALUE   override one setting (repeatable)

Flags may come before or after a command's arguments.
Run 'scanq help COMMAND' (or 'scanq COMMAND -h') for a command's flags.
`

// commands are the commands `scanq help COMMAND` knows.
var commands = map[string]bool{"serve": true, "worker": true, "scheduler": true, "api": true, "scan": true,
	"enqueue": true, "runs": true, "schedules": true, "config": true, "emulator": true}

// version is the module's version and VCS state as the Go toolchain
// recorded them, and the Go release that built it.
func version() string {
	v, rev, at, dirty := "(devel)", "", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
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
		out += fmt.Sprintf(" (%.12s%s %s)", rev, dirty, at)
	}
	return out + fmt.Sprintf(" %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// exitError carries an exit code through the command functions.
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
		os.Exit(1)
	}
}

// run dispatches one command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr)
	case "worker":
		return cmdWorker(ctx, rest, stderr)
	case "scheduler":
		return cmdScheduler(ctx, rest, stderr)
	case "api":
		return cmdAPI(ctx, rest, stderr)
	case "scan":
		return cmdScan(ctx, rest, stdout, stderr, false)
	case "enqueue":
		return cmdScan(ctx, rest, stdout, stderr, true)
	case "runs":
		return cmdRuns(ctx, rest, stdout, stderr)
	case "schedules":
		return cmdSchedules(ctx, rest, stdout, stderr)
	case "config":
		return cmdConfig(rest, stdout, stderr)
	case "emulator":
		return cmdEmulator(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version())
		return nil
	case "help", "-h", "--help":
		if len(rest) > 0 && commands[rest[0]] {
			return run(ctx, []string{rest[0], "-h"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "scanq: unknown command %q (see: scanq help)\n", cmd)
	return exitError{2}
}
