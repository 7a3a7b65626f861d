package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
)

// configFlags are the flags every configuration-reading command takes.
type configFlags struct {
	file string
	set  map[string]string
}

func (c *configFlags) register(fs *flag.FlagSet) {
	c.set = map[string]string{}
	fs.StringVar(&c.file, "config", "", "configuration `FILE` (default: $SCANQ_CONFIG, else the embedded defaults)")
	fs.Func("set", "override one setting, `SECTION.KEY=VALUE` (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("want SECTION.KEY=VALUE, got %q", s)
		}
		c.set[k] = v
		return nil
	})
}

func (c *configFlags) load() (*configs.Config, error) {
	return configs.Load(configs.LoadOptions{File: c.file, Env: os.Environ(), Set: c.set})
}

// cmdFlags is one command's FlagSet, with what its help says.
type cmdFlags struct {
	*flag.FlagSet
	stderr   io.Writer
	synopsis string
}

// newFlagSet returns the flags of `scanq NAME`. The FlagSet prints
// nothing itself: parse prints a one-line hint for a bad flag, and the
// full help for -h.
func newFlagSet(name string, stderr io.Writer, synopsis string) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, stderr: stderr, synopsis: synopsis}
}

// Usage prints the command's synopsis and its flags, with two dashes.
func (c *cmdFlags) Usage() {
	w := c.stderr
	fmt.Fprintf(w, "Usage: scanq %s\n\nFlags:\n", c.synopsis)
	c.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parse parses args with flags in any position (`runs show ID --json`):
// the flag package stops at the first argument, so parsing resumes after
// each one; "--" ends the flags. -h prints the help (exit 0); a bad flag
// prints one line naming it and where the help is (exit 2).
func parse(fs *cmdFlags, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.Usage()
				return exitError{0}
			}
			fmt.Fprintf(fs.stderr, "scanq %s: %v (see: scanq %s -h)\n", fs.Name(), err, fs.Name())
			return exitError{2}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...) // after "--": all arguments
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	// Leave the arguments where fs.Args finds them.
	return fs.Parse(append([]string{"--"}, pos...))
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
			return nil, exitError{1}
		}
		cfg.Redis.URL = l.RedisURL()
		if l.DemoSchedule {
			cfg.Schedules = append(cfg.Schedules, app.DemoSchedule())
		}
	}
	return openWith(cfg, stderr)
}
