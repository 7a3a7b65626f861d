package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/jobs"
)

// configFlags are the flags every configuration-reading command takes.
type configFlags struct {
	file string
	set  setFlag
	// client: the command never calls HSS (enqueue, runs, coverage,
	// schedules), so the credential variables targets name may be unset.
	client bool
}

// register adds --config and --set to fs: a command's own flags, or the
// persistent flags of a command whose subcommands all read the
// configuration (runs, schedules).
func (c *configFlags) register(fs *pflag.FlagSet) {
	c.set = setFlag{}
	fs.StringVar(&c.file, "config", "", "configuration `FILE` (default: $SCANQ_CONFIG, else the embedded defaults)")
	fs.Var(c.set, "set", "override one setting (repeatable)")
}

func (c *configFlags) load() (*configs.Config, error) {
	return configs.Load(configs.LoadOptions{File: c.file, Env: os.Environ(), Set: c.set, WithoutCredentials: c.client})
}

// setFlag is --set SECTION.KEY=VALUE, repeatable. Each value is one pair,
// never split at commas: a value may hold them (URLs, cron specs).
type setFlag map[string]string

func (s setFlag) String() string {
	if len(s) == 0 {
		return ""
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + s[k]
	}
	return "[" + strings.Join(keys, ",") + "]"
}

func (s setFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want SECTION.KEY=VALUE, got %q", v)
	}
	s[k] = val
	return nil
}

func (s setFlag) Type() string { return "SECTION.KEY=VALUE" }

// usageError is a command line that does not parse: an unknown command or
// flag, a bad flag value, a wrong number of arguments. run prints it on one
// line with where the command's help is, and exits 2.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// noArgs refuses arguments; for a command with subcommands (runs,
// schedules) an argument is an unknown subcommand.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasAvailableSubCommands() {
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
		}
		return usageError{cmd: cmd, err: errors.New(msg)}
	}
	return usageErrorf(cmd, "%s takes no arguments, got %q", commandName(cmd), args[0])
}

// flagError is the usage error of a flag that does not parse in the
// command line args. On a command that only holds subcommands it is a
// mistyped subcommand (`scanq sacn --all`) that the error names, not a flag
// of the subcommand that was meant; a flag spelled with one dash (`-json`,
// which pflag reads as -j -s -o -n) is named with its two.
func flagError(cmd *cobra.Command, args []string, err error) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if len(name) > 1 && a[0] == '-' && a[1] != '-' && cmd.Flags().Lookup(name) != nil {
			return usageErrorf(cmd, "unknown shorthand flag %s: flags take two dashes: -%s", a, a)
		}
	}
	if cmd.Annotations[groupAnnotation] != "" {
		if _, rest, ferr := cmd.Root().Find(args); ferr == nil {
			fs := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.ParseErrorsAllowlist.UnknownFlags = true
			fs.AddFlagSet(cmd.Flags())
			if fs.Parse(rest) == nil && fs.NArg() > 0 {
				return noArgs(cmd, fs.Args())
			}
		}
	}
	return usageError{cmd: cmd, err: err}
}

// exactArgs wants n arguments, named what in the error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf(cmd, "%s takes %s, got %d arguments", commandName(cmd), what, len(args))
		}
		return nil
	}
}

// maxArgs wants at most n arguments, named what in the error.
func maxArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageErrorf(cmd, "%s takes at most %s, got %d arguments", commandName(cmd), what, len(args))
		}
		return nil
	}
}

// commandName is "runs show" for `scanq runs show`.
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// groupAnnotation marks a command that only holds subcommands, so that its
// help shows no usage line of its own (usageTemplate).
const groupAnnotation = "scanq-group"

// usageTemplate is cobra's, without the usage line "scanq runs [flags]" of
// a command that only holds subcommands.
var usageTemplate = strings.Replace((&cobra.Command{}).UsageTemplate(), "{{if .Runnable}}",
	`{{if and .Runnable (not (index .Annotations "`+groupAnnotation+`"))}}`, 1)

// group is a command that only holds subcommands (scanq, runs, config):
// without one it prints its help on stderr and exits 2, as a usage error.
func group(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[groupAnnotation] = "true"
	cmd.Args = noArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(cmd.ErrOrStderr())
		_ = cmd.Help()
		return exitError{exitUsage}
	}
	return cmd
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// viewOf is r in the one JSON shape of a run (jobs.RunView), as the API
// shows it.
func viewOf(a *app.App, r *jobs.Run) jobs.RunView {
	return jobs.NewRunView(r, time.Now(), a.Cfg.Scan.RatePeriod)
}

func newLogger(cfg *configs.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// open loads the configuration and connects the components.
func open(cf *configFlags, stderr io.Writer) (*app.App, error) {
	cfg, err := cf.load()
	if err != nil {
		return nil, err
	}
	return openWith(cfg, stderr)
}

func openWith(cfg *configs.Config, stderr io.Writer) (*app.App, error) {
	a, err := app.New(cfg, newLogger(cfg, stderr))
	if err != nil {
		return nil, err
	}
	return a, nil
}

// openClient is open for the commands that act on a deployment's runs and
// queues (runs, enqueue, schedules). With redis.url left at embedded they
// reach the `scanq serve` running on this machine, never an empty Redis of
// their own whose state would be lost when they exit; with none running
// they say so and how to start one.
func openClient(ctx context.Context, name string, cf *configFlags, stderr io.Writer) (*app.App, error) {
	cfg, err := cf.load()
	if err != nil {
		return nil, err
	}
	if cfg.Redis.URL == configs.Embedded {
		path, err := app.LocalServePath()
		var l *app.LocalServe
		if err == nil {
			l, err = app.FindLocalServe(ctx, path)
		}
		if err != nil {
			fmt.Fprintf(stderr, "scanq %s: %v\n"+
				"  Start one in another terminal: go run ./cmd/scanq serve (or: scanq serve)\n"+
				"  or reach a fleet's Redis: SCANQ_REDIS_URL=redis://HOST:6379/0 or --set redis.url=URL\n", name, err)
			return nil, exitError{exitFailure}
		}
		cfg.Redis.URL = l.RedisURL()
		if err := adoptEstate(ctx, name, cf, cfg, stderr); err != nil {
			return nil, err
		}
		if msg := l.TargetsDiffer(cfg.TargetNames()); msg != "" {
			fmt.Fprintf(stderr, "scanq %s: %s\n", name, msg)
			return nil, exitError{exitUsage}
		}
		if l.DemoSchedule {
			cfg.Schedules = append(cfg.Schedules, app.DemoSchedule())
		}
	} else if err := adoptEstate(ctx, name, cf, cfg, stderr); err != nil {
		return nil, err
	}
	return openWith(cfg, stderr)
}

// adoptEstate gives cfg, a client command's (one that never calls HSS:
// enqueue, runs, coverage, schedules), the targets the deployment its
// Redis reaches publishes, when cfg lists none of its own
// (app.AdoptEstate): the CLI starts and lists runs on the deployment's
// targets without being given its configuration. The roles (worker,
// scheduler, api) never take them: they run the configuration they are
// given. A published estate that cannot be read is refused, saying what
// to pass instead.
func adoptEstate(ctx context.Context, name string, cf *configFlags, cfg *configs.Config, stderr io.Writer) error {
	if !cf.client {
		return nil
	}
	if _, err := app.AdoptEstate(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "scanq %s: %v\n  Pass the deployment's configuration instead (--config FILE or SCANQ_CONFIG).\n", name, err)
		return exitError{exitFailure}
	}
	return nil
}
