package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/redistest"
)

// A group whose run on one target failed says why, or where to read it:
// `scan --target all` and `runs show GROUP` ended "cn-demo failed 0 0 0 0"
// and no more, the reason only in `runs show GROUP.cn-demo` (new-user
// trial). Here cn-demo's HSS refuses the credentials it is given.
func TestGroupShowsWhyARunFailed(t *testing.T) {
	const project = "0123456789abcdef0123456789abcd01"
	emu := emulator.NewServer(emulator.Options{Images: 5, ProjectID: project, Credentials: map[string]string{"AKCNDEMO": "the-right-sk"}})
	t.Cleanup(emu.Close)
	t.Setenv("CN_DEMO_AK", "AKCNDEMO")
	t.Setenv("CN_DEMO_SK", "a-wrong-sk")
	path := t.TempDir() + "/estate.yaml"
	estate := fmt.Sprintf("schedules: []\nretry: {max_attempts: 1}\ntargets:\n"+
		"  - {name: cn-demo, endpoint: %q, project_id: %s, ak_env: CN_DEMO_AK, sk_env: CN_DEMO_SK}\n"+
		"  - {name: ap-demo, endpoint: embedded, emulator_images: 20, project_id: 0123456789abcdef0123456789abcd02}\n", emu.URL, project)
	if err := os.WriteFile(path, []byte(estate), 0o600); err != nil {
		t.Fatal(err)
	}
	redisURL := redistest.Mini(t).URL
	code, out, errOut := runCmd(t, "scan", "--config", path, "--set", "redis.url="+redisURL, "--target", "all", "--all")
	m := regexp.MustCompile(`(?m)^group (\S+)  state partially_failed`).FindStringSubmatch(out)
	if code != 1 || m == nil {
		t.Fatalf("scan --target all: exit %d\n%s%s", code, out, errOut)
	}
	group := m[1]
	wantWhy := func(what, out string) {
		t.Helper()
		for _, w := range []string{"run " + group + ".cn-demo (target cn-demo) failed: last error: 401 ", "scanq runs show " + group + ".cn-demo"} {
			if !strings.Contains(out, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, out)
			}
		}
		if strings.Contains(out, "the-right-sk") || strings.Contains(out, "a-wrong-sk") {
			t.Errorf("%s shows a secret:\n%s", what, out)
		}
		if strings.Contains(out, "run "+group+".ap-demo (target") {
			t.Errorf("%s explains the run that succeeded:\n%s", what, out)
		}
	}
	wantWhy("scan --target all", out)
	code, out, errOut = runCmd(t, "runs", "show", "--set", "redis.url="+redisURL, group)
	if code != 0 {
		t.Fatalf("runs show %s: exit %d\n%s%s", group, code, out, errOut)
	}
	wantWhy("runs show GROUP", out)

	// The same through a serve: enqueue --wait follows the group to its end.
	startServe(t, "--config", path)
	code, out, errOut = runCmd(t, "enqueue", "--config", path, "--target", "all", "--all", "--wait")
	if m = regexp.MustCompile(`(?m)^group (\S+)  state partially_failed`).FindStringSubmatch(out); code != 1 || m == nil {
		t.Fatalf("enqueue --target all --wait: exit %d\n%s%s", code, out, errOut)
	}
	group = m[1]
	wantWhy("enqueue --target all --wait", out)
	code, out, errOut = runCmd(t, "runs", "show", "--config", path, group)
	if code != 0 {
		t.Fatalf("runs show %s: exit %d\n%s%s", group, code, out, errOut)
	}
	wantWhy("runs show GROUP (of the serve)", out)
}

// The CLI names the flag it refuses: `scan --all` on an estate said
// "invalid parameter target: required: ...", the API's field (new-user
// trial).
func TestTargetRefusalNamesTheFlag(t *testing.T) {
	path := t.TempDir() + "/estate.yaml"
	estate := "schedules: []\ntargets:\n" +
		"  - {name: cn-demo, endpoint: embedded, emulator_images: 5, project_id: 0123456789abcdef0123456789abcd01}\n" +
		"  - {name: ap-demo, endpoint: embedded, emulator_images: 5, project_id: 0123456789abcdef0123456789abcd02}\n"
	if err := os.WriteFile(path, []byte(estate), 0o600); err != nil {
		t.Fatal(err)
	}
	redisURL := redistest.Mini(t).URL
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"scan", "--all"}, "scanq scan: --target: required: this server has several targets (cn-demo, ap-demo)"},
		{[]string{"scan", "--all", "--target", "eu-demo"}, `scanq scan: --target: "eu-demo" is not a configured target`},
		{[]string{"enqueue", "--all"}, "scanq enqueue: --target: required: this server has several targets (cn-demo, ap-demo)"},
		{[]string{"enqueue", "--all", "--target", "eu-demo"}, `scanq enqueue: --target: "eu-demo" is not a configured target`},
	} {
		args := append(c.args, "--config", path, "--set", "redis.url="+redisURL)
		code, out, errOut := runCmd(t, args...)
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "invalid parameter") {
			t.Errorf("scanq %s: exit %d, want 2 and %q:\n%s%s", strings.Join(c.args, " "), code, c.want, out, errOut)
		}
	}
}

// A group's summary shows its runs' verifications: `scan --target all
// --verify` exited 1 under a group summary that said only "succeeded", the
// reason on stderr alone (new-user trial).
func TestGroupShowsItsVerification(t *testing.T) {
	path := t.TempDir() + "/estate.yaml"
	estate := "schedules: []\nhss: {request_rate: 1000, emulator_images: 60, emulator_scan_delay: 200ms, emulator_scan_fail_rate: 0.2}\n" +
		"verify: {poll_min: 50ms, poll_max: 200ms}\ntargets:\n" +
		"  - {name: cn-demo, endpoint: embedded, project_id: 0123456789abcdef0123456789abcd01}\n" +
		"  - {name: ap-demo, endpoint: embedded, emulator_seed: 2, project_id: 0123456789abcdef0123456789abcd02}\n"
	if err := os.WriteFile(path, []byte(estate), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "scan", "--config", path, "--target", "all", "--all", "--verify")
	if code != 1 || !regexp.MustCompile(`(?m)^verification: verified: \d+ scanned, [1-9]\d* scan failed, 0 unverified`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^\S+\.ap-demo\s+ap-demo\s+succeeded\s.*\sverified \d+/\d+$`).MatchString(out) {
		t.Fatalf("scan --target all --verify: exit %d\n%s%s", code, out, errOut)
	}
}
