package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/hss"
)

// DemoSchedule is what `scanq serve` adds on the embedded defaults, so that
// the scheduler shows its work within a minute of start: the images not
// scanned yet (a quarter of the demo inventory), every minute, on the bulk
// queue, a tick skipped while the last run goes on. `@every` ticks fall on
// whole minutes of the Unix epoch, so the first comes at most a minute
// after start.
func DemoSchedule() configs.Schedule {
	unscanned := "unscan"
	scope := hss.ScanScopeAll
	return configs.Schedule{
		Name: DemoScheduleName, Cron: "@every 1m", Enabled: true, Queue: configs.QueueBulk,
		Overlap: configs.OverlapSkip, MisfireGrace: 0,
		Request: configs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{ScanStatus: &unscanned}, ScanScope: &scope}},
	}
}

// DemoScheduleName names the DemoSchedule.
const DemoScheduleName = "demo-unscanned"

// addsDemoSchedule reports whether this serve adds DemoSchedule: when it
// runs on an embedded stand-in and its schedules are the embedded
// defaults'. A file that lists schedules, `schedules: []` included, gets
// exactly those.
func (a *App) addsDemoSchedule() bool { return a.Demo() && a.Cfg.DefaultSchedules }

// Serve runs every role in one process until ctx is done: worker, scheduler
// and API. On embedded defaults it says loudly that this is a demo.
func (a *App) Serve(ctx context.Context, stdout io.Writer) error {
	// The API's port first: when it is taken, its error is all a start
	// that fails prints.
	ln, err := a.ListenAPI()
	if err != nil {
		return err
	}
	if err := a.checkNoLocalServe(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	// Before the URLs are printed, as the worker would: whoever reads them
	// can use the CLI on this estate at once.
	if err := a.PublishEstate(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	demoSchedule := a.addsDemoSchedule()
	if demoSchedule {
		a.Cfg.Schedules = append(a.Cfg.Schedules, DemoSchedule())
	}
	banner := a.banner(ctx)
	if a.Demo() {
		a.Log.Warn("DEMO MODE: " + banner)
		for _, t := range a.Targets {
			switch {
			case t.Emulator == nil:
			case len(a.Cfg.Targets) == 0:
				fmt.Fprintf(stdout, "HSS emulator:  %s  (stats: %s/emulator/v1/stats)\n", t.Emulator.URL, t.Emulator.URL)
			default:
				fmt.Fprintf(stdout, "HSS emulator:  %s  (target %s; stats: %s/emulator/v1/stats)\n", t.Emulator.URL, t.Name, t.Emulator.URL)
			}
		}
	} else {
		a.Log.Info("serve: " + banner)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan string, 1)
	recorded := make(chan string, 1) // the record to remove on exit, if any
	go func() {
		defer close(recorded)
		select {
		case addr := <-ready:
			// Recorded before the URLs are printed: whoever reads them
			// can use the CLI at once.
			if path, ok := a.recordLocalServe(stdout, addr, demoSchedule); ok {
				recorded <- path
			}
			printURLs(stdout, addr)
		case <-ctx.Done():
		}
	}()
	defer func() {
		cancel()
		if path, ok := <-recorded; ok {
			removeLocalServe(path, a.Redis.Mini.Addr())
		}
	}()
	roles := map[string]func(context.Context) error{
		"worker":    a.RunWorker,
		"scheduler": a.RunScheduler,
		"api":       func(ctx context.Context) error { return a.ServeAPI(ctx, ln, ready) },
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(roles))
	for name, run := range roles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel() // one role down takes the others down: no half-running process
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(func() []error {
		var out []error
		for e := range errs {
			out = append(out, e)
		}
		return out
	}()...)
}

// checkNoLocalServe refuses a serve on the embedded Redis while another
// runs on this machine: its record (which the CLI follows) would be
// replaced, and once this one stopped the CLI would find neither.
func (a *App) checkNoLocalServe(ctx context.Context) error {
	if a.Redis.Mini == nil {
		return nil
	}
	path, err := LocalServePath()
	if err != nil {
		return nil // nothing to replace: this serve will say it cannot record itself
	}
	l, err := FindLocalServe(ctx, path)
	if err != nil {
		return nil
	}
	return fmt.Errorf("a scanq serve is already running on this machine (pid %d, API %s, recorded in %s), and the CLI reaches it: "+
		"use that one, stop it first, or give this one a record of its own (XDG_RUNTIME_DIR=DIR scanq serve, and the same for its CLI)",
		l.PID, l.APIAddr, path)
}

// recordLocalServe prints where Redis is and, for the embedded one,
// records it where the CLI of this user looks (LocalServePath), so that
// `scanq runs`, `enqueue` and `schedules` reach this process. A record that
// cannot be written is a warning: the serve itself works without it.
func (a *App) recordLocalServe(stdout io.Writer, apiAddr string, demoSchedule bool) (string, bool) {
	if a.Redis.Mini == nil {
		fmt.Fprintf(stdout, "Redis:         %s\n", configs.RedactURL(a.Cfg.Redis.URL))
		return "", false
	}
	addr := a.Redis.Mini.Addr()
	path, err := LocalServePath()
	if err == nil {
		err = writeLocalServe(path, &LocalServe{PID: os.Getpid(), RedisAddr: addr, RedisPassword: a.Redis.MiniPassword,
			APIAddr: apiAddr, DemoSchedule: demoSchedule, Targets: a.Cfg.TargetNames(), StartedAt: time.Now().UTC()})
	}
	if err != nil {
		fmt.Fprintf(stdout, "Redis:         redis://%s/0 (embedded)\n", addr)
		a.Log.Warn("the CLI will not find this serve", "err", err)
		return "", false
	}
	fmt.Fprintf(stdout, "Redis:         redis://%s/0 (embedded; the scanq CLI finds it, with its password, in %s)\n", addr, path)
	return path, true
}

// banner says what this process runs on, as it is: embedded or real Redis,
// the emulator or real HSS, and whether the API checks credentials.
func (a *App) banner(ctx context.Context) string {
	var parts []string
	if a.Redis.Mini != nil {
		parts = append(parts, "embedded Redis (miniredis): every run, queue and schedule lives in this process and is lost on restart.")
	} else {
		parts = append(parts, "Redis "+configs.RedactURL(a.Cfg.Redis.URL)+".")
	}
	parts = append(parts, a.hssBanner())
	switch {
	case a.Cfg.API.Token != "" && a.Cfg.API.AK != "":
		parts = append(parts, "API authentication is ON (token and AK/SK).")
	case a.Cfg.API.Token != "":
		parts = append(parts, "API authentication is ON (token).")
	case a.Cfg.API.AK != "":
		parts = append(parts, "API authentication is ON (AK/SK).")
	default:
		parts = append(parts, "API authentication is OFF: anyone who reaches the API can start scans; /monitoring/ is read-only.")
	}
	return strings.Join(append(parts, a.scheduleBanner(ctx)), " ")
}

// hssBanner says where the scans go. The hss section alone: the built-in
// emulator or its endpoint. A targets list: each target by name, with its
// endpoint or "the built-in emulator", so that an estate that mixes them
// says which is which.
func (a *App) hssBanner() string {
	if len(a.Cfg.Targets) == 0 || len(a.Targets) == 0 {
		if a.Emulator != nil {
			return "HSS: the built-in HSS emulator, no scan reaches Huawei Cloud."
		}
		return "HSS: " + configs.RedactURL(a.Cfg.HSS.EndpointURL()) + "."
	}
	list := make([]string, len(a.Targets))
	emulated := 0
	for i, t := range a.Targets {
		where := configs.RedactURL(t.EndpointURL())
		if t.Emulator != nil {
			where = "the built-in emulator"
			emulated++
		}
		list[i] = "target " + t.Name + ": " + where
	}
	head := fmt.Sprintf("HSS, %d targets: ", len(a.Targets))
	if len(a.Targets) == 1 {
		head = "HSS, 1 target: "
	}
	tail := "."
	switch {
	case emulated == len(a.Targets):
		tail = "; no scan reaches Huawei Cloud."
	case emulated > 0:
		tail = "; the scans of the targets on the built-in emulator reach no cloud."
	}
	return head + strings.Join(list, "; ") + tail
}

// scheduleBanner names the schedules this process fires, each with its
// cron and next fire time.
func (a *App) scheduleBanner(ctx context.Context) string {
	s, err := a.NewScheduler()
	if err != nil {
		return "schedules: " + err.Error() + "."
	}
	st, err := s.Status(ctx)
	if err != nil {
		return "schedules: unknown (" + err.Error() + ")."
	}
	if len(st) == 0 {
		return "schedules: none."
	}
	var list []string
	for _, x := range st {
		switch {
		case !x.Enabled:
			list = append(list, fmt.Sprintf("%s (%s, disabled)", x.Name, x.Cron))
		case len(x.Next) > 0:
			list = append(list, fmt.Sprintf("%s (%s, next %s)", x.Name, x.Cron, x.Next[0].UTC().Format(time.RFC3339)))
		default:
			list = append(list, fmt.Sprintf("%s (%s, never fires)", x.Name, x.Cron))
		}
	}
	return "schedules: " + strings.Join(list, ", ") + "."
}
