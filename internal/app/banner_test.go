package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
)

// signalWriter closes seen once something written contains want.
type signalWriter struct {
	testkit.Buffer
	want string
	once sync.Once
	seen chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Contains(w.Buffer.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// newApp builds the app of set over the embedded defaults, logging to the
// buffer it returns.
func newApp(t *testing.T, set map[string]string) (*app.App, *testkit.Buffer) {
	t.Helper()
	return newAppWith(t, configs.LoadOptions{Set: set})
}

// newAppWith is newApp for any configuration layers.
func newAppWith(t *testing.T, opts configs.LoadOptions) (*app.App, *testkit.Buffer) {
	t.Helper()
	cfg, err := configs.Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return a, logs
}

// serveLogs runs `scanq serve` with set over the embedded defaults until
// its API is up and returns the log.
func serveLogs(t *testing.T, set map[string]string) string {
	t.Helper()
	return serveLogsWith(t, configs.LoadOptions{Set: set})
}

// serveLogsWith is serveLogs for any configuration layers.
func serveLogsWith(t *testing.T, opts configs.LoadOptions) string {
	t.Helper()
	if opts.Set == nil {
		opts.Set = map[string]string{}
	}
	opts.Set["api.addr"] = "127.0.0.1:0"
	a, logs := newAppWith(t, opts)
	defer a.Close()
	out := &signalWriter{want: "API:", seen: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, out) }()
	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("serve stopped: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not come up\n%s", logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return logs.String()
}

// startServe runs a.Serve until the test ends, and returns what it prints
// once it has printed its URLs (metrics: is the last). a must be closed by
// a cleanup registered before, so that it outlives the serve.
func startServe(t *testing.T, a *app.App, logs *testkit.Buffer) *signalWriter {
	t.Helper()
	out := &signalWriter{want: "metrics:", seen: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case <-out.seen:
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("serve stopped: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not come up\n%s", logs)
	}
	return out
}

// TestServeBannerStatesTheTruth: the start-up banner says whether the API
// checks credentials and whether Redis is the embedded one, as they are.
func TestServeBannerStatesTheTruth(t *testing.T) {
	real := redistest.Mini(t).URL // any Redis that is not the embedded one
	cases := []struct {
		name      string
		set       map[string]string
		want, not []string
	}{
		{"embedded, no auth", map[string]string{},
			[]string{"embedded Redis", "lost on restart", "API authentication is OFF"}, []string{"authentication is ON"}},
		{"embedded, token", map[string]string{"api.token": "tok-banner"},
			[]string{"embedded Redis", "API authentication is ON"}, []string{"authentication is OFF", "tok-banner"}},
		{"real Redis, emulator, token", map[string]string{"redis.url": real, "api.token": "tok-banner"},
			[]string{"built-in HSS emulator", "API authentication is ON"}, []string{"embedded Redis", "lost on restart", "authentication is OFF", "tok-banner"}},
		{"real Redis, emulator, AK/SK", map[string]string{"redis.url": real, "api.ak": "AKBANNER", "api.sk": "SKBANNER"},
			[]string{"API authentication is ON"}, []string{"embedded Redis", "authentication is OFF", "SKBANNER"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logs := serveLogs(t, c.set)
			checkLog(t, logs, c.want, c.not)
		})
	}
}

// TestServeBannerListsSchedules: the banner names each schedule the
// process fires, with its next fire time, the demo one included.
func TestServeBannerListsSchedules(t *testing.T) {
	logs := serveLogs(t, map[string]string{})
	for _, w := range []string{"schedules:", "nightly-full-registry (0 2 * * *, next ", "demo-unscanned (@every 1m, next "} {
		if !strings.Contains(logs, w) {
			t.Errorf("banner lacks %q:\n%s", w, logs)
		}
	}
}

// TestServeBannerNamesEachTarget: with a targets list the banner names each
// target and where its scans go, its endpoint or the built-in emulator; it
// said "HSS: ." when every target had an endpoint URL, and that no scan
// reached Huawei Cloud when only one of them was on the emulator.
func TestServeBannerNamesEachTarget(t *testing.T) {
	cn := emulator.NewServer(emulator.Options{Images: 5, ProjectID: "0123456789abcdef0123456789abcd01"})
	t.Cleanup(cn.Close)
	ap := emulator.NewServer(emulator.Options{Images: 5, ProjectID: "0123456789abcdef0123456789abcd02"})
	t.Cleanup(ap.Close)
	cases := []struct {
		name, targets string
		want, not     []string
	}{
		{"every target on a URL",
			fmt.Sprintf("  - {name: cn, endpoint: %q, project_id: 0123456789abcdef0123456789abcd01}\n"+
				"  - {name: ap, endpoint: %q, project_id: 0123456789abcdef0123456789abcd02}\n", cn.URL, ap.URL),
			[]string{"target cn: " + cn.URL, "target ap: " + ap.URL}, []string{"HSS: .", "emulator"}},
		{"one on a URL, one on the emulator",
			fmt.Sprintf("  - {name: cn, endpoint: %q, project_id: 0123456789abcdef0123456789abcd01}\n"+
				"  - {name: ap, endpoint: embedded, project_id: 0123456789abcdef0123456789abcd02}\n", cn.URL),
			[]string{"target cn: " + cn.URL, "target ap: the built-in emulator"}, []string{"no scan reaches Huawei Cloud", "HSS: ."}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := t.TempDir() + "/estate.yaml"
			if err := os.WriteFile(path, []byte("schedules: []\ntargets:\n"+c.targets), 0o600); err != nil {
				t.Fatal(err)
			}
			logs := serveLogsWith(t, configs.LoadOptions{File: path})
			checkLog(t, logs, c.want, c.not)
		})
	}
}

// checkLog fails the test unless logs holds every string of want and none
// of not.
func checkLog(t *testing.T, logs string, want, not []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(logs, w) {
			t.Errorf("log lacks %q:\n%s", w, logs)
		}
	}
	for _, n := range not {
		if strings.Contains(logs, n) {
			t.Errorf("log says %q:\n%s", n, logs)
		}
	}
}
