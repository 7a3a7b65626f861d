package main

import (
	"context"
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

// newFlagSet returns a FlagSet that reports errors itself and returns them.
func newFlagSet(name string, stderr io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scanq %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; a flag error has been printed with the usage, so it
// becomes exit code 2.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return exitError{2}
	}
	return nil
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
