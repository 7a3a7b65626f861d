package browser

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// TestMonitoring drives headless Chromium through asynqmon as `scanq
// serve` mounts it on the embedded defaults: the dashboard lists the
// critical, default and bulk queues before any task exists; once a
// rate-limited run has batches waiting, the queue's task list shows each
// scan:batch as one row under 200 px with its whole task id; and no page
// logs an error. Each page is kept as a screenshot (artifactDir).
func TestMonitoring(t *testing.T) {
	chromium := browser(t)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir()) // the serve's record for the CLI
	out := artifactDir(t)

	// The embedded defaults without schedules: the demo schedule's first
	// tick (at the next whole minute) would enqueue tasks before the
	// dashboard is looked at.
	file := filepath.Join(t.TempDir(), "scanq.yaml")
	if err := os.WriteFile(file, []byte("schedules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(configs.LoadOptions{File: file, Set: map[string]string{"api.addr": "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close) // after the serve stops (cleanups run last first)
	base := serve(t, a, logs)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ctx, problems := newTab(t, ctx, chromium)

	// The dashboard, before any task was enqueued: its queue table.
	var queues []string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/monitoring/"),
		chromedp.WaitVisible("tbody tr", chromedp.ByQuery),
		waitText("critical", "default", "bulk"),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("tbody tr")).map(r => r.cells[0].innerText.trim())`, &queues),
	); err != nil {
		t.Fatalf("dashboard: %v\n%s", err, logs)
	}
	screenshot(t, ctx, out, "dashboard.png")
	if want := []string{"bulk", "critical", "default"}; !slices.Equal(queues, want) {
		t.Errorf("the dashboard's queue table lists %q, want %q", queues, want)
	}
	if info, err := asynq.NewInspectorFromRedisClient(a.Redis.Client).GetQueueInfo(jobs.QueueCritical); err != nil || info.Size > 0 || info.Processed > 0 {
		t.Fatalf("queue critical was used before the dashboard was looked at: %+v, %v", info, err)
	}

	// A run at 1000 images an hour: batches of ceil(1000/60) = 17 images
	// (the ~2,700 px rows of the issue), the first sent at once and the
	// next a minute apart, so the rest wait as scheduled tasks.
	rate, all, scope := int32(1000), true, hss.ScanScopeAll
	run, err := a.Starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: &all, RateLimit: &rate, ScanScope: &scope}},
		jobs.Options{}, jobs.Trigger{Kind: "api"})
	if err != nil {
		t.Fatal(err)
	}
	batch := waitScheduledBatch(t, ctx, a, run.Queue)
	t.Logf("run %s: scheduled batch %s", run.ID, batch.ID)

	var rows []rowBox
	if err := chromedp.Run(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/monitoring/queues/%s?status=scheduled", base, run.Queue)),
		waitText(jobs.TypeBatch, batch.ID),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("tr")).
			filter(r => r.innerText.includes("`+jobs.TypeBatch+`")).
			map(r => ({height: r.getBoundingClientRect().height, text: r.innerText}))`, &rows),
	); err != nil {
		t.Fatalf("scheduled tasks of %s: %v\n%s", run.Queue, err, logs)
	}
	screenshot(t, ctx, out, "scheduled-batches.png")
	if len(rows) == 0 {
		t.Fatal("no scan:batch row")
	}
	for _, r := range rows {
		if r.Height >= 200 {
			t.Errorf("a scan:batch row is %.0f px tall (want under 200):\n%s", r.Height, r.Text)
		}
	}
	if !strings.Contains(rows[0].Text, "17 images") || !strings.Contains(rows[0].Text, run.ID) {
		t.Errorf("a scan:batch row does not read as one line of run, batch and images:\n%s", rows[0].Text)
	}
	t.Logf("%d scan:batch rows, the first %.0f px: %s", len(rows), rows[0].Height, strings.Join(strings.Fields(rows[0].Text), " "))

	for _, p := range problems() {
		t.Errorf("the page logged: %s", p)
	}
}

// rowBox is a table row as the page lays it out.
type rowBox struct {
	Height float64 `json:"height"`
	Text   string  `json:"text"`
}

// browser returns Chromium's path. Without SCANQ_TEST_BROWSER the test
// is skipped; with it (CI, `make browser`) a missing Chromium fails it.
func browser(t *testing.T) string {
	t.Helper()
	if os.Getenv("SCANQ_TEST_BROWSER") == "" {
		t.Skip("set SCANQ_TEST_BROWSER=1 to drive headless Chromium against scanq serve (make browser; .ci/run does)")
	}
	candidates := []string{os.Getenv("SCANQ_TEST_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := lookPath(c); err == nil {
			return p
		}
	}
	t.Fatalf("SCANQ_TEST_BROWSER is set and no Chromium was found (tried %v; on Debian: apt-get install chromium, or set SCANQ_TEST_CHROMIUM)", candidates[1:])
	return ""
}

// artifactDir is where the screenshots go: $SCANQ_TEST_ARTIFACTS/browser,
// else test/browser/out (ignored by git). Unlike t.TempDir it outlives the
// test; each run replaces the files it writes.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := "out"
	if d := os.Getenv("SCANQ_TEST_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, "browser")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", abs)
	return abs
}

// serve runs a.Serve until the test ends and returns the API's base URL.
func serve(t *testing.T, a *app.App, logs *testkit.Buffer) string {
	t.Helper()
	stdout := &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, stdout) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	re := regexp.MustCompile(`asynqmon: +(http://\S+)/monitoring/`)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, logs)
		default:
		}
	}
	t.Fatalf("serve did not come up\n%s\n%s", stdout, logs)
	return ""
}

// newTab starts headless Chromium with the flags this machine's closed
// network needs, and returns a tab and a function that lists what the
// page logged as errors: console.error, uncaught exceptions, and the
// browser's own error entries (failed loads).
func newTab(t *testing.T, ctx context.Context, chromium string) (context.Context, func() []string) {
	t.Helper()
	// Not t.TempDir: Chromium's helper processes may still write to their
	// profile a moment after the browser is gone, and t.TempDir's removal
	// fails the test then; this one is removed once it can be.
	profile, err := os.MkdirTemp("", "scanq-browser-profile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testkit.Eventually(t, 30*time.Second, func() bool { return os.RemoveAll(profile) == nil }, "Chromium's profile %s to be removable", profile)
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })

	var mu sync.Mutex
	var problems []string
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, s)
	}
	chromedp.ListenTarget(tctx, func(ev any) {
		switch ev := ev.(type) {
		case *fetch.EventRequestPaused:
			// asynqmon's index.html loads Roboto and Material Icons from
			// Google Fonts, which a machine without Internet access (CI's)
			// cannot reach: those requests get an empty stylesheet, so
			// that every error left is one of scanq's pages.
			go func() {
				ctx := cdp.WithExecutor(tctx, chromedp.FromContext(tctx).Target)
				err := fetch.FulfillRequest(ev.RequestID, 200).
					WithResponseHeaders([]*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/css"}}).
					WithBody("").Do(ctx)
				if err != nil && tctx.Err() == nil {
					note("answering " + ev.Request.URL + ": " + err.Error())
				}
			}()
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, strings.Trim(string(a.Value), `"`)+a.Description)
				}
				note("console." + string(ev.Type) + ": " + strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			note("exception: " + msg)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.LevelError {
				note(fmt.Sprintf("%s error: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err := chromedp.Run(tctx, chromedp.ActionFunc(func(ctx context.Context) error {
		if err := runtime.Enable().Do(ctx); err != nil {
			return err
		}
		if err := fetch.Enable().WithPatterns([]*fetch.RequestPattern{{URLPattern: "https://fonts.googleapis.com/*"},
			{URLPattern: "https://fonts.gstatic.com/*"}}).Do(ctx); err != nil {
			return err
		}
		return cdplog.Enable().Do(ctx)
	})); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return tctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// waitText waits until the page's text contains every one of want.
func waitText(want ...string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var text string
		for {
			if err := chromedp.Text("body", &text, chromedp.ByQuery, chromedp.NodeVisible).Do(ctx); err != nil {
				return err
			}
			missing := ""
			for _, w := range want {
				if !strings.Contains(text, w) {
					missing = w
					break
				}
			}
			if missing == "" {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("the page never showed %q: %w\n%s", missing, ctx.Err(), text)
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// screenshot keeps the whole page as dir/name.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Error(err)
	}
}

// waitScheduledBatch waits until queue holds a scheduled scan:batch task
// (a batch waiting for its run's rate limit) and returns it.
func waitScheduledBatch(t *testing.T, ctx context.Context, a *app.App, queue string) *asynq.TaskInfo {
	t.Helper()
	ins := asynq.NewInspectorFromRedisClient(a.Redis.Client)
	for {
		tasks, err := ins.ListScheduledTasks(queue)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if task.Type == jobs.TypeBatch {
				return task
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no scheduled %s task in queue %s: %v", jobs.TypeBatch, queue, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var lookPath = exec.LookPath
