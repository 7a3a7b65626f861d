package app_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// scanOne does what `scanq scan --image NS/NAME:TAG` does once its flags
// are parsed (cmd/scanq's cmdScan): load the configuration, build the app
// on an embedded Redis, start its worker, start the run, follow it to its
// end (at the non-terminal interval, 1s), stop the worker and close. It
// returns the run as followed.
func scanOne(ctx context.Context, tb testing.TB, endpoint string) *jobs.Run {
	tb.Helper()
	cfg, err := configs.Load(configs.LoadOptions{Set: map[string]string{"hss.endpoint": endpoint}})
	if err != nil {
		tb.Fatal(err)
	}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	defer a.Close()
	defer startWorker(ctx, a)()
	r, err := a.Starter.Start(ctx, oneImage(), jobs.Options{}, jobs.Trigger{Kind: "cli"})
	if err != nil {
		tb.Fatal(err)
	}
	r, err = a.Follow(ctx, r.ID, time.Second, func(*jobs.Run) {})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// startWorker runs a's worker until the function it returns stops it
// (and waits for it), as `scan` does.
func startWorker(ctx context.Context, a *app.App) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.RunWorker(ctx) }()
	return func() { cancel(); <-done }
}

// oneImage is the request of `scanq scan --image library/nginx:1.25`.
func oneImage() jobs.ScanRequest {
	scope := hss.ScanScopeAll
	return jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ScanScope: &scope,
		ImageInfo: []hss.ImageInfo{{Namespace: "library", ImageName: "nginx", ImageVersion: "1.25"}}}}
}

// BenchmarkScanOneImage measures a one-image `scan` against a local HSS
// (the emulator as a server of its own, as `scanq emulator` runs it)
// beside one CreateManualImageScanTask call of the HSS client against the
// same emulator: scan-ms is the whole command but flag parsing, hss-ms the
// call alone, and overhead-ms their difference, each the median of b.N
// rounds that take turns. The bound is 150 ms of overhead; the
// benchmark reports it rather than asserting it, since wall time on a shared
// machine is no test.
func BenchmarkScanOneImage(b *testing.B) {
	emu := emulator.NewServer(emulator.Options{Images: 1000, ProjectID: configs.Default().HSS.ProjectID})
	defer emu.Close()
	cfg := configs.Default()
	client, err := hss.NewClient(hss.Config{Endpoint: emu.URL, Region: cfg.HSS.Region, ProjectID: cfg.HSS.ProjectID, Timeout: cfg.HSS.Timeout})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	call := &hss.CreateScanTaskRequest{Body: oneImage().ScanTaskBody}
	// One of each first, so that neither pays for a cold connection pool
	// or first-use initialisation inside the figures.
	if err := client.CreateScanTask(ctx, call); err != nil {
		b.Fatal(err)
	}
	scanOne(ctx, b, emu.URL)

	var scans, calls []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		r := scanOne(ctx, b, emu.URL)
		scans = append(scans, time.Since(start))
		if r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != 1 {
			b.Fatalf("run %s: %s, %d submitted", r.ID, r.State, r.Counters.ImagesSubmitted)
		}
		start = time.Now()
		if err := client.CreateScanTask(ctx, call); err != nil {
			b.Fatal(err)
		}
		calls = append(calls, time.Since(start))
	}
	b.StopTimer()
	scan, direct := median(scans), median(calls)
	b.ReportMetric(ms(scan), "scan-ms")
	b.ReportMetric(ms(direct), "hss-ms")
	b.ReportMetric(ms(scan-direct), "overhead-ms")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
