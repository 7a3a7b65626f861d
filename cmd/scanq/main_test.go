package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// runCmd runs one command line in process on the embedded defaults and
// returns its exit code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Workers log to stderr from their own goroutines, as they do to
	// os.Stderr in a real process: the buffers must take concurrent writes.
	var out, errOut testkit.Buffer
	err := run(ctx, args, &out, &errOut)
	code := 0
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.code
	default:
		code = 1
		errOut.WriteString(err.Error())
	}
	return code, out.String(), errOut.String()
}

func TestScanJSONOnEmbeddedDefaults(t *testing.T) {
	code, out, errOut := runCmd(t, "scan", "--all", "--include-unscannable", "--set", "hss.emulator_images=450", "--set", "hss.request_rate=1000", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	r := runOf(t, out)
	if c := r.Counters; r.State != jobs.StateSucceeded || c.ImagesTotal != 450 || c.ImagesSubmitted != 450 || c.BatchesTotal != 5 ||
		r.ID == "" || r.FinishedAt == nil || r.ETASeconds != 0 {
		t.Fatalf("run %+v, counters %+v", r.Run, c)
	}
}

// TestScanVerifyWaitsForTheScans: scan --verify on the embedded defaults
// follows the run's images to their scan results; the summary says what
// became of them, and since some scans failed, it exits 1.
func TestScanVerifyWaitsForTheScans(t *testing.T) {
	code, out, errOut := runCmd(t, "scan", "--all", "--verify", "--set", "hss.emulator_images=300", "--set", "hss.request_rate=1000",
		"--set", "hss.emulator_scan_delay=200ms", "--set", "hss.emulator_scan_fail_rate=0.2", "--set", "verify.poll_min=50ms", "--set", "verify.poll_max=200ms", "--json")
	r := runOf(t, out)
	v := r.Verification
	if code != 1 || v == nil || v.State != jobs.VerifyVerified || v.Scanned+v.ScanFailed != r.Counters.ImagesSubmitted || v.ScanFailed == 0 || len(v.Failures) == 0 {
		t.Fatalf("exit %d, verification %+v of %d submitted\n%s", code, v, r.Counters.ImagesSubmitted, errOut)
	}
	if !strings.Contains(errOut, "not every image was shown scanned") {
		t.Errorf("exit 1 under a summary that says succeeded, without saying why:\n%s", errOut)
	}
	// verify.poll_min at its default (1m): on embedded emulators only, the
	// first round comes after their scan delay, not a minute later (the
	// command would run into runCmd's 60s timeout).
	img := "payments/user-profile-97:latest" // an image of the demo inventory
	// In text, the summary says it.
	code, out, errOut = runCmd(t, "scan", "--image", img, "--verify", "--set", "hss.emulator_scan_delay=200ms", "--set", "hss.emulator_scan_fail_rate=0")
	if code != 0 || !strings.Contains(out, "verification: verified: 1 scanned, 0 scan failed, 0 unverified") {
		t.Fatalf("--image %s --verify: exit %d\n%s\n%s", img, code, out, errOut)
	}
	code, out, errOut = runCmd(t, "scan", "--image", "ns/app:1", "--verify", "--set", "hss.emulator_scan_delay=0s", "--set", "verify.timeout=1m",
		"--set", "verify.poll_min=50ms", "--set", "verify.poll_max=100ms", "--dry-run")
	if code == 0 || !strings.Contains(errOut, "verify") {
		t.Fatalf("--verify with --dry-run: exit %d\n%s%s", code, out, errOut)
	}
}

func TestScanDryRunSummary(t *testing.T) {
	code, out, errOut := runCmd(t, "scan", "--all", "--include-unscannable", "--dry-run", "--rate-limit", "600", "--set", "hss.emulator_images=300")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"resolved", "300 total", "skipped dry_run: 300", "30 total", "about 30m0s at rate_limit 600/h"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestScanExitCodeWhenImagesFail(t *testing.T) {
	// HSS unreachable and no retries: the image fails, and a run that does
	// not submit everything exits 1 with the error in its summary.
	code, out, errOut := runCmd(t, "scan", "--image", "ns/app:1", "--set", "hss.endpoint=http://127.0.0.1:1", "--set", "retry.max_attempts=1")
	if code != 1 || !strings.Contains(out, "1 failed") || !strings.Contains(out, "error:") {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
}

func TestBadInputNamesTheProblem(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"scan"}, 2, "choose exactly one of --all, --image, --query"},
		{[]string{"scan", "--all", "--rate-limit", "1001"}, 2, "rate_limit"},
		{[]string{"scan", "--image", "nginx"}, 2, "NAMESPACE/NAME:TAG"},
		{[]string{"scan", "--query", "colour=blue"}, 2, `unknown key "colour"`},
		{[]string{"scan", "--query", "has_vul=maybe"}, 2, "has_vul"},
		{[]string{"scan", "--all", "--global-image-type", "cloud"}, 2, "global_image_type"},
		{[]string{"scan", "--all", "--priority", "urgent"}, 2, "priority"},
		{[]string{"scan", "--all", "--bogus"}, 2, "bogus"},
		{[]string{"scan", "--all", "--set", "worker.concurrency=0"}, 1, "worker.concurrency"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"runs", "show", "--set", "redis.url=" + redistest.Mini(t).URL, "nope"}, 1, "not found"},
	}
	for _, c := range cases {
		code, out, errOut := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("scanq %s: exit %d (want %d), output lacks %q:\n%s%s", strings.Join(c.args, " "), code, c.code, c.want, out, errOut)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("worker:\n  concurrency: 4\n"), 0o600)
	os.WriteFile(bad, []byte("worker:\n  concurency: 4\nschedules:\n  - name: x\n    cron: \"61 * * * *\"\n"), 0o600)
	if code, out, errOut := runCmd(t, "config", "validate", good); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("good file: exit %d %s%s", code, out, errOut)
	}
	code, _, errOut := runCmd(t, "config", "validate", bad)
	if code != 1 || !strings.Contains(errOut, "concurency") || !strings.Contains(errOut, "cron") {
		t.Fatalf("bad file: exit %d, errors:\n%s", code, errOut)
	}
}

func TestConfigShowRedactsSecrets(t *testing.T) {
	t.Setenv("CLOUD_SDK_AK", "ak-very-secret-value")
	t.Setenv("CLOUD_SDK_SK", "sk-very-secret-value")
	t.Setenv("SCANQ_API_TOKEN", "tok-very-secret-value")
	code, out, errOut := runCmd(t, "config", "show")
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	if strings.Contains(out, "very-secret") {
		t.Fatalf("config show printed a secret:\n%s", out)
	}
}

// TestRolesStopWhenRedisRefusesThem: every long-lived role exits 1 at
// start, naming the URL without its password, when Redis refuses it; `scanq
// api` no longer says "listening" while every call fails with WRONGPASS.
func TestRolesStopWhenRedisRefusesThem(t *testing.T) {
	mini := miniredis.RunT(t)
	mini.RequireAuth("right-password")
	u := "redis://:Wr0ng-S3CRET@" + mini.Addr() + "/0"
	for _, role := range []string{"api", "worker", "scheduler", "serve"} {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			// Before the check a role ran until this deadline and exited 0.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errOut testkit.Buffer
			err := run(ctx, []string{role, "--set", "redis.url=" + u, "--set", "api.addr=127.0.0.1:0"}, &out, &errOut)
			if err == nil {
				t.Fatalf("scanq %s started on a Redis that refuses it:\n%s", role, errOut.String())
			}
			all := err.Error() + out.String() + errOut.String()
			if strings.Contains(all, "Wr0ng-S3CRET") || !strings.Contains(err.Error(), "WRONGPASS") ||
				!strings.Contains(err.Error(), "redis://:REDACTED@"+mini.Addr()) || strings.Contains(all, "listening") {
				t.Fatalf("scanq %s: %v\n%s", role, err, all)
			}
		})
	}
}

// TestOpenAPIBeyondLoopbackRefused: `scanq api` and `scanq serve` without
// credentials exit 1 on a non-loopback address, naming the setting that
// allows it.
func TestOpenAPIBeyondLoopbackRefused(t *testing.T) {
	for _, role := range []string{"api", "serve"} {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errOut testkit.Buffer
			args := []string{role, "--set", "api.addr=0.0.0.0:0"}
			if role == "api" { // a role of its own needs a Redis others reach
				args = append(args, "--set", "redis.url="+redistest.Mini(t).URL)
			}
			err := run(ctx, args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), "api.allow_unauthenticated") {
				t.Fatalf("scanq %s on 0.0.0.0 without credentials: %v\n%s", role, err, errOut.String())
			}
		})
	}
}

// A query that will be resolved through a list API is checked against that
// API's limits before anything runs; one that cannot be listed is refused
// when expansion is asked for, and widened only with --widen, which the
// summary shows.
func TestScanRefusesAtTheDoorAndShowsWidening(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		field string
	}{
		{[]string{"--query", "image_version=" + strings.Repeat("v", 65)}, "query_info.image_version"},
		{[]string{"--query", "image_size=2147483548"}, "query_info.image_size"},
		{[]string{"--query", "host_name=web", "--dry-run"}, "query_info.host_name"},
		{[]string{"--query", "pod_id=p", "--expand"}, "query_info.pod_id"},
	} {
		code, _, errOut := runCmd(t, append([]string{"scan"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.field) {
			t.Errorf("scan %v: exit %d, %q; want 2 naming %s", tc.args, code, errOut, tc.field)
		}
	}
	code, out, errOut := runCmd(t, "scan", "--query", "host_name=web", "--query", "scan_status=download_failed", "--widen", "--dry-run",
		"--set", "hss.emulator_images=300")
	if code != 0 || !strings.Contains(out, "WIDENED") || !strings.Contains(out, "host_name") {
		t.Fatalf("widened dry run: exit %d\n%s%s", code, out, errOut)
	}
}
