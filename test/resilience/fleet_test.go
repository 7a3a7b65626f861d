package resilience

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/jobs"
)

// projectID is the HSS project of every fleet; the emulator answers only it.
const projectID = "5ca9a0000000000000000000000e5111"

// Fleet shape, the same in every scenario.
const (
	concurrency = 10  // SCANQ_WORKER_CONCURRENCY
	batchSize   = 100 // of every run
)

// fleetOptions describe one fleet.
type fleetOptions struct {
	RedisURL   string
	Images     int     // the emulator's registry
	Rate       float64 // SCANQ_HSS_REQUEST_RATE: sets how long a run takes
	Schedulers int
	Workers    int
	// Config is the --config file's content; default "schedules: []" (the
	// embedded nightly schedule must not fire during a test).
	Config string
	// Env adds or overrides SCANQ_* settings.
	Env map[string]string
}

// fleet is a running set of scanq processes around one emulator.
type fleet struct {
	t          *testing.T
	opt        fleetOptions
	env        []string
	configFile string
	emu        *proc
	emuURL     string
	api        *proc
	apiURL     string
	schedulers []*proc
	workers    []*proc
	others     []*proc // every scanq process started, replacements included
	client     *http.Client
}

// newFleet starts the emulator, the API, the schedulers and the workers,
// and waits until each is ready. Every process is stopped when t ends,
// after the fleet's crash check.
func newFleet(t *testing.T, opt fleetOptions) *fleet {
	t.Helper()
	if opt.Config == "" {
		opt.Config = "schedules: []\n"
	}
	f := &fleet{t: t, opt: opt, client: &http.Client{Timeout: 10 * time.Second}}
	dir := t.TempDir()
	f.configFile = filepath.Join(dir, "scanq.yaml")
	if err := os.WriteFile(f.configFile, []byte(opt.Config), 0o600); err != nil {
		t.Fatal(err)
	}

	// Every process of the fleet is ended by f.finish, registered now so
	// that it runs after the cleanups of whatever the scenario starts
	// later (its own t.Cleanup calls run first), and before those
	// registered earlier (a Redis server the fleet runs on).
	t.Cleanup(f.finish)
	f.emu = spawn(t, "emulator", baseEnv(), bin, "emulator", "--addr", "127.0.0.1:0",
		"--images", strconv.Itoa(opt.Images), "--project-id", projectID, "--seed", "7",
		"--max-submissions", "0", "--log-level", "warn")
	f.emu.waitOutput(t, "\n", 10*time.Second)
	first, _, _ := strings.Cut(f.emu.out.String(), "\n")
	url, ok := strings.CutPrefix(first, "listening ")
	if !ok {
		t.Fatalf("emulator's first line is %q, want \"listening http://HOST:PORT\"", first)
	}
	f.emuURL = url

	apiAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	f.apiURL = "http://" + apiAddr
	// The request rate sets how long a run takes (about 3 calls per 200
	// images); retries are quick so that faults cost seconds, not minutes,
	// and plentiful so that 30% faults never exhaust them.
	settings := map[string]string{
		"SCANQ_REDIS_URL":               opt.RedisURL,
		"SCANQ_HSS_ENDPOINT":            f.emuURL,
		"SCANQ_HSS_PROJECT_ID":          projectID,
		"SCANQ_HSS_REQUEST_RATE":        strconv.FormatFloat(opt.Rate, 'f', -1, 64),
		"SCANQ_HSS_REQUEST_BURST":       "10",
		"SCANQ_HSS_THROTTLE_COOLDOWN":   "5s",
		"SCANQ_HSS_TIMEOUT":             "10s",
		"SCANQ_API_ADDR":                apiAddr,
		"SCANQ_WORKER_CONCURRENCY":      strconv.Itoa(concurrency),
		"SCANQ_WORKER_POLL_INTERVAL":    "100ms",
		"SCANQ_WORKER_SHUTDOWN_TIMEOUT": "5s",
		"SCANQ_WORKER_MAX_INLINE_WAIT":  "5s",
		"SCANQ_RETRY_BASE":              "50ms",
		"SCANQ_RETRY_CAP":               "1s",
		"SCANQ_RETRY_MAX_ATTEMPTS":      "12",
		"SCANQ_SCAN_BATCH_SIZE":         strconv.Itoa(batchSize),
		"SCANQ_LOG_LEVEL":               "info",
		"SCANQ_SCHEDULER_MISFIRE_GRACE": "1m",
	}
	maps.Copy(settings, opt.Env)
	f.env = baseEnv()
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		f.env = append(f.env, k+"="+settings[k])
	}

	f.api = f.start("api")
	f.waitReady()
	for i := range opt.Schedulers {
		f.schedulers = append(f.schedulers, f.start("scheduler", fmt.Sprintf("scheduler-%d", i+1)))
	}
	for i := range opt.Workers {
		f.workers = append(f.workers, f.start("worker", fmt.Sprintf("worker-%d", i+1)))
	}
	for _, p := range f.schedulers {
		p.waitOutput(t, "scheduler started", 20*time.Second)
	}
	for _, p := range f.workers {
		p.waitOutput(t, "worker started", 20*time.Second)
	}
	return f
}

// start starts one scanq role; name defaults to the role.
func (f *fleet) start(role string, name ...string) *proc {
	n := role
	if len(name) > 0 {
		n = name[0]
	}
	p := spawn(f.t, n, f.env, bin, role, "--config", f.configFile)
	f.others = append(f.others, p)
	return p
}

// startWorker starts another worker and waits until it runs.
func (f *fleet) startWorker(name string) *proc {
	p := f.start("worker", name)
	p.waitOutput(f.t, "worker started", 20*time.Second)
	return p
}

// procs is every process the fleet started, the emulator first.
func (f *fleet) procs() []*proc {
	if f.emu == nil {
		return f.others
	}
	return append([]*proc{f.emu}, f.others...)
}

// checkNoCrash fails the test for every process that crashed.
func (f *fleet) checkNoCrash() {
	f.t.Helper()
	for _, p := range f.procs() {
		if why := p.crashed(); why != "" {
			f.t.Errorf("%s (pid %d) crashed: %s\n%s", p.name, p.pid(), why, p.tail(40))
		}
	}
}

// finish checks for crashes, then stops every process still running with
// SIGTERM and expects each to exit 0: every scenario ends with a graceful
// shutdown of its fleet. On failure it shows the end of every log.
func (f *fleet) finish() {
	t := f.t
	f.checkNoCrash()
	var running []*proc
	for _, p := range f.procs() {
		if p.alive() {
			p.stopped.Store(true)
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			running = append(running, p)
		}
	}
	for _, p := range running {
		select {
		case <-p.done:
			if code := p.state.ExitCode(); code != 0 {
				t.Errorf("%s (pid %d): SIGTERM at the end of the scenario: %s, want exit 0\n%s", p.name, p.pid(), p.exitText(), p.tail(30))
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s (pid %d) did not exit within 15s of SIGTERM\n%s", p.name, p.pid(), p.tail(30))
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if t.Failed() {
		for _, p := range f.procs() {
			t.Log(p.tail(25))
		}
	}
	saveLogs(t, f.procs()...)
}

// logsEnv names a directory that receives every process's full output,
// one file per process under the test's name, for a look after the run.
const logsEnv = "SCANQ_TEST_RESILIENCE_LOGS"

func saveLogs(t *testing.T, procs ...*proc) {
	root := os.Getenv(logsEnv)
	if root == "" {
		return
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("%s: %v", logsEnv, err)
		return
	}
	for _, p := range procs {
		name := filepath.Join(dir, fmt.Sprintf("%s-%d.log", p.name, p.pid()))
		if err := os.WriteFile(name, []byte(p.out.String()), 0o644); err != nil {
			t.Logf("%s: %v", logsEnv, err)
		}
	}
	t.Logf("process logs in %s", dir)
}

// waitReady waits for the API's /readyz.
func (f *fleet) waitReady() {
	f.t.Helper()
	waitFor(f.t, 20*time.Second, "the api to answer /readyz at "+f.apiURL, func() error {
		f.t.Helper()
		resp, err := f.client.Get(f.apiURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz answered %s", resp.Status)
		}
		if !f.api.alive() {
			f.t.Fatalf("the api exited (%s) before it was ready at %s (last error %v)\n%s", f.api.exitText(), f.apiURL, err, f.api.tail(30))
		}
		return err
	})
}

// do sends one request and decodes a JSON answer into out (when not nil).
func (f *fleet) do(method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, url, err)
		}
	}
	return nil
}

// startRun starts an is_all run of the whole registry through the API.
func (f *fleet) startRun() string {
	f.t.Helper()
	var created struct {
		RunID string `json:"run_id"`
	}
	body := map[string]any{"is_all": true, "batch_size": batchSize, "include_unscannable": true}
	if err := f.do("POST", f.apiURL+"/api/v1/runs", body, &created); err != nil {
		f.t.Fatalf("starting a run: %v", err)
	}
	f.t.Logf("run %s started", created.RunID)
	return created.RunID
}

func (f *fleet) run(id string) (*jobs.Run, error) {
	var r jobs.Run
	if err := f.do("GET", f.apiURL+"/api/v1/runs/"+id, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// listRuns lists every run through the API, page by page.
func (f *fleet) listRuns() []*jobs.Run {
	f.t.Helper()
	var runs []*jobs.Run
	cursor := ""
	for {
		var out struct {
			Runs       []*jobs.Run `json:"runs"`
			NextCursor string      `json:"next_cursor"`
		}
		if err := f.do("GET", f.apiURL+"/api/v1/runs?limit=500&cursor="+url.QueryEscape(cursor), nil, &out); err != nil {
			f.t.Fatalf("listing runs: %v", err)
		}
		runs = append(runs, out.Runs...)
		if out.NextCursor == "" {
			return runs
		}
		cursor = out.NextCursor
	}
}

// waitRun polls run id until it is final. Errors from the API are
// tolerated for a while (Redis may be away on purpose).
func (f *fleet) waitRun(id string, limit time.Duration) *jobs.Run {
	f.t.Helper()
	var last *jobs.Run
	var lastErr error
	lastLog := time.Now()
	waitFor(f.t, limit, "run "+id+" to be final", func() error {
		f.t.Helper()
		r, err := f.run(id)
		if err == nil {
			last = r
			if r.State.Final() {
				return nil
			}
		} else {
			lastErr = err
		}
		if time.Since(lastLog) >= 10*time.Second && last != nil {
			c := last.Counters
			f.t.Logf("run %s %s: %d/%d images submitted, %d failed, %d batches", id, last.State, c.ImagesSubmitted, c.ImagesExpected, c.ImagesFailed, c.BatchesTotal)
			lastLog = time.Now()
		}
		if last == nil {
			return fmt.Errorf("the run is not readable: %v", lastErr)
		}
		return fmt.Errorf("run %s %s %+v (last API error: %v)", id, last.State, last.Counters, lastErr)
	})
	return last
}

// stats reads the emulator's counters.
func (f *fleet) stats() emulator.Stats {
	f.t.Helper()
	var s emulator.Stats
	if err := f.do("GET", f.emuURL+"/emulator/v1/stats", nil, &s); err != nil {
		f.t.Fatalf("emulator stats: %v", err)
	}
	return s
}

// submissions reads the emulator's accepted scan requests after seq since.
func (f *fleet) submissions(since int64) []emulator.Submission {
	f.t.Helper()
	var subs []emulator.Submission
	if err := f.do("GET", f.emuURL+"/emulator/v1/submissions?since="+strconv.FormatInt(since, 10), nil, &subs); err != nil {
		f.t.Fatalf("emulator submissions: %v", err)
	}
	return subs
}

// orphans counts the run queue's active tasks that no live worker holds
// (their lease expired), as asynqmon shows them.
func (f *fleet) orphans(queue string) int {
	f.t.Helper()
	var out struct {
		Tasks []struct {
			ID         string `json:"id"`
			IsOrphaned bool   `json:"is_orphaned"`
		} `json:"tasks"`
	}
	if err := f.do("GET", f.apiURL+"/monitoring/api/queues/"+queue+"/active_tasks?page=1&page_size=1000", nil, &out); err != nil {
		f.t.Fatalf("asynqmon active tasks: %v", err)
	}
	n := 0
	for _, task := range out.Tasks {
		if task.IsOrphaned {
			n++
		}
	}
	return n
}

// setFaults changes the emulator's fault injection.
func (f *fleet) setFaults(req emulator.FaultsRequest) {
	f.t.Helper()
	if err := f.do("POST", f.emuURL+"/emulator/v1/faults", req, nil); err != nil {
		f.t.Fatalf("emulator faults: %v", err)
	}
}

// waitCreates waits until the emulator has accepted n scan requests.
func (f *fleet) waitCreates(n int64, limit time.Duration) {
	f.t.Helper()
	waitFor(f.t, limit, fmt.Sprintf("the emulator to accept %d scan requests", n), func() error {
		if got := f.stats().Creates; got < n {
			return fmt.Errorf("%d accepted", got)
		}
		return nil
	})
}

// tally counts what the emulator accepted: distinct images, and image
// submissions beyond each image's first.
func tally(subs []emulator.Submission) (distinct, dups int64) {
	seen := map[string]int{}
	for _, s := range subs {
		for _, img := range s.Body.ImageInfo {
			seen[jobs.ImageKey(img)]++
		}
	}
	for _, n := range seen {
		dups += int64(n - 1)
	}
	return int64(len(seen)), dups
}

// checkComplete is what every run-based scenario demands: nothing lost,
// counters right, duplicates within bound. It fills in r.
func (f *fleet) checkComplete(r *result, run *jobs.Run, expected, dupBound int64) {
	t := f.t
	t.Helper()
	subs := f.submissions(0)
	distinct, dups := tally(subs)
	c := run.Counters
	r.Expected, r.Submitted, r.Duplicated, r.DupBound, r.Failed, r.State = expected, distinct, dups, dupBound, c.ImagesFailed, string(run.State)
	t.Logf("run %s %s: %d images expected, %d distinct submitted in %d calls, %d duplicate submissions (bound %d); counters %+v",
		run.ID, run.State, expected, distinct, len(subs), dups, dupBound, c)
	if st := f.stats(); st.DistinctImages != distinct {
		t.Errorf("the emulator counts %d distinct images, the submissions list %d", st.DistinctImages, distinct)
	}
	if run.State != jobs.StateSucceeded {
		t.Errorf("run %s ended %s, want succeeded; errors: %+v", run.ID, run.State, run.Errors)
	}
	if distinct != expected {
		t.Errorf("LOST WORK: %d distinct images submitted, want all %d", distinct, expected)
	}
	if c.ImagesTotal != expected || c.ImagesSubmitted != expected {
		t.Errorf("counters: images_total %d, images_submitted %d, want both %d", c.ImagesTotal, c.ImagesSubmitted, expected)
	}
	if sum := c.ImagesSubmitted + c.Skipped() + c.ImagesFailed; c.ImagesTotal != sum {
		t.Errorf("counters do not add up: images_total %d != submitted %d + skipped %d + failed %d", c.ImagesTotal, c.ImagesSubmitted, c.Skipped(), c.ImagesFailed)
	}
	if c.ImagesFailed != 0 {
		t.Errorf("%d images failed", c.ImagesFailed)
	}
	if dups > dupBound {
		t.Errorf("%d duplicate submissions > %d, the most that was in flight", dups, dupBound)
	}
}
