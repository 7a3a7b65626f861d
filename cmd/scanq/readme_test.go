package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/jobs"
)

// tryIt reads the commands of README's "Try it" section: each line of its
// first sh block, split into the command and its comment.
func tryIt(t *testing.T) [][2]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(data), "\n## Try it\n")
	if !ok {
		t.Fatal(`README has no "## Try it" section`)
	}
	_, block, ok := strings.Cut(sec, "```sh\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal(`README's "Try it" section has no sh block`)
	}
	var out [][2]string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		cmd, comment, _ := strings.Cut(line, "#")
		out = append(out, [2]string{strings.TrimSpace(cmd), strings.TrimSpace(comment)})
	}
	return out
}

// runOf decodes the run a --json command prints: the API's run object
// (jobs.RunView) and nothing else, images_total the sum of its outcomes.
func runOf(t *testing.T, out string) jobs.RunView {
	t.Helper()
	var v jobs.RunView
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || v.Run == nil || dec.More() {
		t.Fatalf("stdout is not one JSON run: %v\n%s", err, out)
	}
	if c := v.Counters; v.State.Final() && c.ImagesTotal != c.ImagesSubmitted+c.Skipped()+c.ImagesFailed {
		t.Errorf("run %s %s: images_total %d != submitted %d + skipped %d + failed %d", v.ID, v.State,
			c.ImagesTotal, c.ImagesSubmitted, c.Skipped(), c.ImagesFailed)
	}
	return v
}

// TestReadmeTryIt runs every command of README's "Try it" section on the
// embedded defaults, in the order given, and checks that it does what its
// comment says: images found where it promises images. A command without a
// check here fails the test, so the section cannot drift from it.
func TestReadmeTryIt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs full demo scans")
	}
	nonEmpty := regexp.MustCompile(`\b([1-9]\d*) total, ([1-9]\d*) submitted, 0 skipped, 0 failed`)
	// The whole demo registry: 5,000 images, every one submitted but
	// those HSS reports it cannot scan (skipped not_scannable).
	wholeRegistry := regexp.MustCompile(`\b5000 total, ([1-9]\d{3}) submitted, (\d+) skipped, 0 failed`)
	onlyUnscannable := func(out string) bool {
		m := wholeRegistry.FindStringSubmatch(out)
		return m != nil && (m[2] == "0" || strings.Contains(out, "not_scannable: "+m[2]))
	}
	checks := map[string]func(t *testing.T, code int, out, errOut string){
		"serve": func(t *testing.T, _ int, out, _ string) {
			for _, w := range []string{"Redis:", "API:", "asynqmon:"} {
				if !strings.Contains(out, w) {
					t.Errorf("serve's banner lacks %q:\n%s", w, out)
				}
			}
		},
		"scan --all": func(t *testing.T, code int, out, errOut string) {
			if code != 0 || !onlyUnscannable(out) || !strings.Contains(out, "batches:") {
				t.Errorf("exit %d, want a summary of the 5000 images submitted (but the unscannable)\n%s%s", code, out, errOut)
			}
		},
		"scan --all --rate-limit 600 --dry-run": func(t *testing.T, code int, out, errOut string) {
			if code != 0 || !regexp.MustCompile(`dry_run: [1-9]\d{3}\b`).MatchString(out) || !regexp.MustCompile(`batches: [1-9]\d* total`).MatchString(out) ||
				!regexp.MustCompile(`about \d+h\d+m\d+s at rate_limit 600/h`).MatchString(out) {
				t.Errorf("exit %d, want counts, batches and the expected duration\n%s%s", code, out, errOut)
			}
		},
		"scan --image library/nginx:1.25 --image team/api:v2 --json": func(t *testing.T, code int, out, errOut string) {
			if r := runOf(t, out); code != 0 || r.Counters.ImagesTotal != 2 || r.Counters.ImagesSubmitted != 2 {
				t.Errorf("exit %d, run %+v\n%s", code, r.Counters, errOut)
			}
		},
		"scan --query namespace=payments --query scan_status=unscan": func(t *testing.T, code int, out, errOut string) {
			if code != 0 || !nonEmpty.MatchString(out) {
				t.Errorf("exit %d, want images found and submitted\n%s%s", code, out, errOut)
			}
		},
		"enqueue --all --wait": func(t *testing.T, code int, out, errOut string) {
			if code != 0 || !strings.Contains(out, "succeeded") || !onlyUnscannable(out) {
				t.Errorf("exit %d, want the serve's run followed to its end\n%s%s", code, out, errOut)
			}
		},
		"runs list": func(t *testing.T, code int, out, errOut string) {
			if code != 0 || strings.Count(out, "succeeded") < 1 || !strings.Contains(out, "cli") {
				t.Errorf("exit %d, want the serve's runs\n%s%s", code, out, errOut)
			}
		},
		"schedules": func(t *testing.T, code int, out, errOut string) {
			if code != 0 || !strings.Contains(out, "nightly-full-registry") || !strings.Contains(out, "demo-unscanned") {
				t.Errorf("exit %d, want the serve's schedules\n%s%s", code, out, errOut)
			}
		},
	}
	for _, c := range tryIt(t) {
		cmd, comment := c[0], c[1]
		if args, ok := strings.CutPrefix(cmd, "go run ./cmd/scanq serve"); ok {
			// A serve in this process until the test ends, for the
			// commands below it that reach it.
			out, _ := startServe(t, strings.Fields(args)...)
			t.Run(cmd, func(t *testing.T) { checks["serve"](t, 0, out.String(), "") })
			continue
		}
		t.Run(cmd, func(t *testing.T) {
			if cmd == "make help" {
				if _, err := exec.LookPath("make"); err != nil {
					t.Skip("no make on this machine")
				}
				out, err := exec.Command("make", "-C", "../..", "help").CombinedOutput()
				if err != nil || !strings.Contains(string(out), "test") || !strings.Contains(string(out), "run") {
					t.Errorf("make help: %v\n%s", err, out)
				}
				return
			}
			args, ok := strings.CutPrefix(cmd, "go run ./cmd/scanq ")
			if !ok {
				t.Fatalf("%q is neither `go run ./cmd/scanq ...` nor `make help`: add a check for it", cmd)
			}
			argv := strings.Fields(args)
			switch argv[0] {
			case "emulator":
				// The emulator as a server: it must come up and answer
				// (on a free port, not the README's fixed one).
				for i, a := range argv {
					if a == "--addr" && i+1 < len(argv) {
						argv[i+1] = "127.0.0.1:0"
					}
				}
				w := &watchWriter{want: "listening http://", seen: make(chan struct{})}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- run(ctx, argv, w, w) }()
				select {
				case <-w.seen:
				case err := <-done:
					cancel()
					t.Fatalf("emulator stopped: %v\n%s", err, w.String())
				case <-time.After(30 * time.Second):
					cancel()
					t.Fatalf("emulator did not come up\n%s", w.String())
				}
				url := strings.Fields(strings.SplitN(w.String(), "listening ", 2)[1])[0]
				resp, err := http.Get(url + "/emulator/v1/stats")
				if err == nil {
					resp.Body.Close()
				}
				cancel()
				<-done
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("emulator at %s: %v %v", url, err, resp)
				}
				return
			}
			check := checks[args]
			if check == nil {
				t.Fatalf("no check for README's %q (%s): add one", cmd, comment)
			}
			code, out, errOut := runCmd(t, argv...)
			check(t, code, out, errOut)
		})
	}
}
