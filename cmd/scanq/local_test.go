package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
)

// TestMain points the per-user state directory at a directory of its own,
// so that no test finds (or records) a `scanq serve` of the user running
// the tests.
func TestMain(m *testing.M) { os.Exit(testkit.RunIsolated(m, "scanq-cmd-test-")) }

// watchWriter closes seen once something written contains want.
type watchWriter struct {
	testkit.Buffer
	want string
	once sync.Once
	seen chan struct{}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Contains(w.Buffer.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// startServe runs `scanq serve` in process on the embedded defaults until
// its API is up; the returned function stops it and waits for it to exit.
func startServe(t *testing.T, args ...string) (stdout *watchWriter, stop func()) {
	t.Helper()
	out := &watchWriter{want: "API:", seen: make(chan struct{})}
	var errOut testkit.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--set", "api.addr=127.0.0.1:0"}, args...), out, &errOut)
	}()
	select {
	case <-out.seen:
	case err := <-done:
		cancel()
		t.Fatalf("serve stopped: %v\n%s", err, errOut.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve did not come up\n%s", errOut.String())
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v\n%s", err, errOut.String())
			}
		})
	}
	t.Cleanup(stop)
	return out, stop
}

// TestCLIReachesLocalServe: with default settings the CLI's commands reach
// the `scanq serve` running on this machine: a run enqueued is the serve's,
// runs show and list find it, --wait follows it to its end. With no serve
// running, every such command says so and how to start one, and enqueue
// prints no run id.
func TestCLIReachesLocalServe(t *testing.T) {
	out, stop := startServe(t, "--set", "hss.emulator_images=50")
	if !strings.Contains(out.String(), "Redis:") || !strings.Contains(out.String(), "127.0.0.1:") {
		t.Errorf("serve's banner does not name its Redis:\n%s", out.String())
	}
	code, id, errOut := runCmd(t, "enqueue", "--image", "library/nginx:1.25")
	id = strings.TrimSpace(id)
	if code != 0 || id == "" {
		t.Fatalf("enqueue: exit %d\n%s", code, errOut)
	}
	code, show, errOut := runCmd(t, "runs", "show", id)
	if code != 0 || !strings.Contains(show, id) {
		t.Fatalf("runs show %s: exit %d\n%s%s", id, code, show, errOut)
	}
	code, list, errOut := runCmd(t, "runs", "list")
	if code != 0 || !strings.Contains(list, id) {
		t.Fatalf("runs list: exit %d, lacks %s\n%s%s", code, id, list, errOut)
	}
	if code, list, errOut := runCmd(t, "runs", "list", "--target", "default"); code != 0 || !strings.Contains(list, id) {
		t.Fatalf("runs list --target default: exit %d, lacks %s\n%s%s", code, id, list, errOut)
	}
	// A target that is not configured is a mistake, named, not an empty list.
	if code, list, errOut := runCmd(t, "runs", "list", "--target", "nope"); code != 2 || list != "" ||
		!strings.Contains(errOut, `--target: "nope" is not a configured target (targets: default)`) {
		t.Fatalf("runs list --target nope: exit %d\n%s%s", code, list, errOut)
	}
	code, waited, errOut := runCmd(t, "enqueue", "--image", "library/nginx:1.25", "--wait")
	if code != 0 || !strings.Contains(waited, "succeeded") {
		t.Fatalf("enqueue --wait: exit %d\n%s%s", code, waited, errOut)
	}
	// The serve lists its target's registry for coverage when it starts.
	testkit.Eventually(t, 30*time.Second, func() bool {
		code, cov, _ := runCmd(t, "coverage")
		return code == 0 && strings.Contains(cov, "TARGET") && regexp.MustCompile(`(?m)^default +\d+ +success=`).MatchString(cov)
	}, "scanq coverage to show the default target's registry")
	if code, cov, errOut := runCmd(t, "coverage", "--json"); code != 0 || !strings.Contains(cov, `"target"`) {
		t.Fatalf("coverage --json: exit %d\n%s%s", code, cov, errOut)
	}
	if code, sched, errOut := runCmd(t, "schedules"); code != 0 || !strings.Contains(sched, "SCHEDULE") {
		t.Fatalf("schedules: exit %d\n%s%s", code, sched, errOut)
	}

	// A worker of its own on the defaults joins the serve's Redis: the
	// serve's and this one serve its queues.
	joinsServe(t, "worker")

	// A second serve (on a port of its own, as the port-in-use error
	// suggests) is refused: it would take the record the CLI follows.
	code, _, errOut = runCmd(t, "serve", "--set", "api.addr=127.0.0.1:0")
	if code == 0 || !strings.Contains(errOut, "already running") || !strings.Contains(errOut, "XDG_RUNTIME_DIR") {
		t.Fatalf("a second serve: exit %d\n%s", code, errOut)
	}
	if code, list, errOut := runCmd(t, "runs", "list"); code != 0 || !strings.Contains(list, id) {
		t.Fatalf("runs list after a second serve was refused: exit %d\n%s%s", code, list, errOut)
	}

	stop()
	for _, args := range [][]string{
		{"runs", "list"}, {"runs", "show", id}, {"runs", "cancel", id}, {"schedules"},
		{"enqueue", "--all"}, {"enqueue", "--all", "--wait"},
		{"worker"}, {"scheduler"}, {"api", "--set", "api.addr=127.0.0.1:0"},
	} {
		code, out, errOut := runCmd(t, args...)
		if code == 0 || out != "" || !strings.Contains(errOut, "no scanq serve is running") || !strings.Contains(errOut, "scanq serve") ||
			!strings.Contains(errOut, "redis.url") {
			t.Errorf("%v with no serve running: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
	}
}

// joinsServe runs `scanq role` on the defaults while a serve runs, until
// the serve's Redis shows two asynq servers (the serve's worker and this
// role's), then stops it.
func joinsServe(t *testing.T, role string) {
	t.Helper()
	path, err := app.LocalServePath()
	if err != nil {
		t.Fatal(err)
	}
	l, err := app.FindLocalServe(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(l.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testkit.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{role}, &out, &errOut) }()
	deadline := time.After(30 * time.Second)
	for n := 0; n < 2; {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("scanq %s on the defaults with a serve running stopped: %v\n%s", role, err, errOut.String())
		case <-deadline:
			cancel()
			<-done
			t.Fatalf("scanq %s on the defaults did not join the serve's Redis (%d asynq servers there)\n%s", role, n, errOut.String())
		case <-time.After(20 * time.Millisecond):
		}
		servers, err := insp.Servers()
		if err != nil {
			t.Fatal(err)
		}
		n = len(servers)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("scanq %s: %v\n%s", role, err, errOut.String())
	}
}

// TestCLIDetectsStaleServeRecord: a record left by a serve that is gone
// (killed, so it could not remove it) is detected and removed, and the
// command says no serve is running.
func TestCLIDetectsStaleServeRecord(t *testing.T) {
	_, stop := startServe(t)
	path := filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "scanq", "serve.json")
	rec, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("serve records no state in %s: %v", path, err)
	}
	stop()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("serve left %s behind on exit: %v", path, err)
	}
	// What a killed serve leaves behind.
	if err := os.WriteFile(path, rec, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "runs", "list")
	if code == 0 || out != "" || !strings.Contains(errOut, "no scanq serve is running") || !strings.Contains(errOut, "stale") {
		t.Fatalf("runs list on a stale record: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the stale record %s is still there: %v", path, err)
	}
}

// TestEnqueueWaitWithNoWorker: `enqueue --wait` on a Redis that no worker
// serves does not wait forever: it says the run waits for a worker, and
// how to follow it later.
func TestEnqueueWaitWithNoWorker(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		code, out, errOut := runCmd(t, "enqueue", "--image", "library/nginx:1.25", "--wait", "--set", "redis.url="+b.URL)
		if code == 0 || code == 130 || !strings.Contains(errOut, "no worker") || !strings.Contains(errOut, "scanq runs show") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
	})
}

// TestPortInUseNamesTheSetting: `scanq serve` and `scanq api` on a port in
// use stop with an error whose first line names the setting to change,
// before any log line of roles that started in vain.
func TestPortInUseNamesTheSetting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	for _, role := range []string{"serve", "api"} {
		t.Run(role, func(t *testing.T) {
			var out, errOut testkit.Buffer
			args := []string{role, "--set", "api.addr=" + addr}
			if role == "api" { // a role of its own needs a Redis others reach
				args = append(args, "--set", "redis.url="+redistest.Mini(t).URL)
			}
			err := run(t.Context(), args, &out, &errOut)
			if err == nil {
				t.Fatal("started on a port in use")
			}
			if errOut.String() != "" {
				t.Errorf("log lines before the error:\n%s", errOut.String())
			}
			first, _, _ := strings.Cut(err.Error(), "\n")
			for _, w := range []string{addr, "in use", "api.addr", "SCANQ_API_ADDR", "--set api.addr="} {
				if !strings.Contains(first, w) {
					t.Errorf("first line of the error lacks %q: %s", w, err)
				}
			}
		})
	}
}

// interrupt runs one command line until its stderr shows want, then
// cancels its context as Ctrl-C does, and returns its exit code, stdout
// and stderr.
func interrupt(t *testing.T, want string, args ...string) (int, string, string) {
	t.Helper()
	var out testkit.Buffer
	errOut := &watchWriter{want: want, seen: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &out, errOut) }()
	select {
	case <-errOut.seen:
	case err := <-done:
		t.Fatalf("%v ended before %q: %v\n%s", args, want, err, errOut.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%v: no %q\n%s", args, want, errOut.String())
	}
	cancel()
	err := <-done
	var ee exitError
	if !errors.As(err, &ee) {
		t.Fatalf("%v: %v", args, err)
	}
	return ee.code, out.String(), errOut.String()
}

// TestInterruptSaysWhatHappensToTheRun: Ctrl-C on `enqueue --wait` says
// the run goes on with the workers that serve it, and it does; on `scan`
// over its embedded Redis it says the run ends with the process.
func TestInterruptSaysWhatHappensToTheRun(t *testing.T) {
	startServe(t)
	code, _, errOut := interrupt(t, "running", "enqueue", "--all", "--rate-limit", "1", "--wait")
	m := regexp.MustCompile(`stopped following run (\S+); it goes on \(1 worker\(s\) serve queue critical\)`).FindStringSubmatch(errOut)
	if code != 130 || m == nil {
		t.Fatalf("enqueue --wait, interrupted: exit %d\n%s", code, errOut)
	}
	if code, show, errOut := runCmd(t, "runs", "show", m[1]); code != 0 || !strings.Contains(show, "state running") {
		t.Fatalf("the run did not go on: exit %d\n%s%s", code, show, errOut)
	}

	code, _, errOut = interrupt(t, "running", "scan", "--all", "--rate-limit", "1")
	if code != 130 || !strings.Contains(errOut, "ends with this process") || strings.Contains(errOut, "goes on") {
		t.Fatalf("scan, interrupted: exit %d\n%s", code, errOut)
	}
}

// TestEnqueueWarnsWithNoWorker: `enqueue` on a Redis no worker serves
// prints the run's id (the run is kept there) and warns that it waits.
func TestEnqueueWarnsWithNoWorker(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		code, out, errOut := runCmd(t, "enqueue", "--image", "library/nginx:1.25", "--set", "redis.url="+b.URL)
		if code != 0 || strings.TrimSpace(out) == "" || !strings.Contains(errOut, "no worker serves queue critical") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
	})
}

// TestCLITakesTheServesEstate: a CLI given no configuration of its own
// takes the targets the serve it reaches publishes (it was started with
// --config, the CLI without): it starts runs on them and lists them, and
// refuses a run that names none, naming them. A CLI configured with other
// targets says so and what to pass, instead of starting runs the serve's
// workers cannot do (a run on "default" failed at once, "target not
// configured on this worker").
func TestCLITakesTheServesEstate(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/estate.yaml"
	estate := "schedules: []\ntargets:\n" +
		"  - {name: cn, endpoint: embedded, project_id: 0123456789abcdef0123456789abcd01}\n" +
		"  - {name: ap, endpoint: embedded, project_id: 0123456789abcdef0123456789abcd02}\n"
	if err := os.WriteFile(path, []byte(estate), 0o600); err != nil {
		t.Fatal(err)
	}
	other := dir + "/other.yaml"
	if err := os.WriteFile(other, []byte("schedules: []\ntargets:\n  - {name: eu, endpoint: embedded, project_id: 0123456789abcdef0123456789abcd03}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startServe(t, "--config", path)
	code, out, errOut := runCmd(t, "enqueue", "--target", "ap", "--all", "--wait")
	if code != 0 || !strings.Contains(out, "succeeded") {
		t.Fatalf("enqueue --target ap without the serve's configuration: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "runs", "list", "--target", "ap")
	if code != 0 || !strings.Contains(out, "ap") {
		t.Fatalf("runs list --target ap: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "runs", "list", "--target", "all")
	if code != 0 || !strings.Contains(out, "ap") {
		t.Fatalf("runs list --target all: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "runs", "show", "nope")
	if code != 1 || !strings.Contains(errOut, "run or group nope not found") {
		t.Fatalf("runs show of no run: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "enqueue", "--all")
	if code == 0 || !strings.Contains(errOut, "cn, ap") {
		t.Fatalf("enqueue naming no target of two: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "enqueue", "--config", other, "--all")
	if code != 2 || out != "" || !strings.Contains(errOut, "targets eu, but the scanq serve it reaches") ||
		!strings.Contains(errOut, "has cn, ap") || !strings.Contains(errOut, "--config FILE or SCANQ_CONFIG") {
		t.Fatalf("enqueue with another estate's configuration: exit %d\n%s%s", code, out, errOut)
	}
}
