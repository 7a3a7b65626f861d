package resilience

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/scanq/scanq/internal/redistest"
)

// bin is the scanq binary every process of the suite runs; buildErr says
// why there is none.
var (
	bin      string
	buildErr error
)

// TestMain builds scanq once (without -race: the processes are the system
// under test, not the test's own code), runs the tests, and prints the
// results table to stdout.
func TestMain(m *testing.M) {
	flag.Parse()
	dir := ""
	if suiteEnabled() == "" {
		var err error
		dir, err = os.MkdirTemp("", "scanq-resilience-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "resilience:", err)
			os.Exit(1)
		}
		bin, buildErr = build(filepath.Join(dir, "scanq"))
		// A serve on the embedded Redis records it for the CLI in the
		// user's runtime directory: the processes of the suite record
		// theirs here, not beside a serve of the user's.
		os.Setenv("XDG_RUNTIME_DIR", dir)
	}
	code := m.Run()
	if table := resultsTable(); table != "" {
		fmt.Print(table)
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// build compiles ./cmd/scanq of this module into out.
func build(out string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	gomod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		return "", fmt.Errorf("go env GOMOD: not inside the scanq module (%q)", gomod)
	}
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/scanq")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/scanq in %s: %w\n%s", root, err, stderr.String())
	}
	fmt.Fprintf(os.Stderr, "resilience: built %s in %s\n", out, time.Since(start).Round(time.Millisecond))
	return out, nil
}

// enableEnv must be 1 for the suite to run. It runs a dozen processes for
// about five minutes and loads the machine; inside `go test ./...` it
// would run alongside other packages' timing-sensitive tests (and twice in
// CI, which runs it on its own with `make resilience`).
const enableEnv = "SCANQ_TEST_RESILIENCE"

// suiteEnabled returns why the suite does not run, "" when it does.
func suiteEnabled() string {
	switch {
	case os.Getenv(redistest.EnvURL) == "":
		return redistest.EnvURL + " is not set: the resilience suite runs a fleet of scanq processes on a real Redis (.ci/run sets it)"
	case os.Getenv(enableEnv) != "1":
		return enableEnv + "=1 is not set: the resilience suite (about 5 minutes of process fleets) runs on its own, with `make resilience`"
	case testing.Short():
		return "the resilience suite runs process fleets for minutes; skipped in -short mode"
	}
	return ""
}

// needSuite skips the test unless the suite is enabled, and fails it when
// scanq could not be built.
func needSuite(t *testing.T) {
	t.Helper()
	if why := suiteEnabled(); why != "" {
		t.Skip(why)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// result is one row of the scenario table.
type result struct {
	Scenario   string
	Expected   int64 // images the run(s) had to submit
	Submitted  int64 // distinct images the emulator accepted
	Duplicated int64 // image submissions beyond the first of each image
	DupBound   int64 // the most duplicates what was in flight allows
	Failed     int64 // images the run(s) counted as failed
	State      string
	Took       time.Duration
	Note       string
	Pass       bool
}

// shutdownResult is one row of the graceful-shutdown table.
type shutdownResult struct {
	Process string
	Signal  string
	Exit    string
	Took    time.Duration
	Note    string
	Pass    bool
}

var results struct {
	sync.Mutex
	rows     []*result
	shutdown []*shutdownResult
}

// report adds r to the table; its verdict is taken when t ends, so fill
// r in as the scenario goes.
func report(t *testing.T, r *result) {
	start := time.Now()
	results.Lock()
	results.rows = append(results.rows, r)
	results.Unlock()
	t.Cleanup(func() {
		results.Lock()
		defer results.Unlock()
		r.Pass = !t.Failed()
		if r.Took == 0 {
			r.Took = time.Since(start)
		}
	})
}

func reportShutdown(t *testing.T, r *shutdownResult) {
	results.Lock()
	results.shutdown = append(results.shutdown, r)
	results.Unlock()
	t.Cleanup(func() {
		results.Lock()
		defer results.Unlock()
		r.Pass = !t.Failed()
	})
}

func verdict(pass bool) string {
	if pass {
		return "ok"
	}
	return "FAIL"
}

// resultsTable renders both tables ("" when no scenario ran).
func resultsTable() string {
	results.Lock()
	defer results.Unlock()
	if len(results.rows) == 0 && len(results.shutdown) == 0 {
		return ""
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	if len(results.rows) > 0 {
		fmt.Fprintln(&b, "\nresilience: scenarios")
		fmt.Fprintln(tw, "scenario\texpected\tsubmitted\tduplicated\tdup bound\tfailed\tstate\ttook\tverdict\t")
		for _, r := range results.rows {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", r.Scenario, r.Expected, r.Submitted, r.Duplicated,
				r.DupBound, r.Failed, r.State, r.Took.Round(100*time.Millisecond), verdict(r.Pass))
		}
		tw.Flush()
		for _, r := range results.rows {
			if r.Note != "" {
				fmt.Fprintf(&b, "  %s: %s\n", r.Scenario, r.Note)
			}
		}
	}
	if len(results.shutdown) > 0 {
		fmt.Fprintln(&b, "\nresilience: graceful shutdown")
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "process\tsignal\texit\ttook\tverdict\tnote")
		for _, r := range results.shutdown {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Process, r.Signal, r.Exit, r.Took.Round(time.Millisecond), verdict(r.Pass), r.Note)
		}
		tw.Flush()
	}
	return b.String()
}
