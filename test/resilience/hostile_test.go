package resilience

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/redistest"
)

// The hostile-input scenarios (issue 10): real scanq processes on a real
// Redis, attacked over loopback as an outside client could. After each
// attack the process must still be alive and healthy, its peak RSS (VmHWM,
// read from /proc) under a bound, and a refused request must have stored
// and enqueued nothing.

// hostileRSSLimit is the peak RSS a process under attack may reach.
const hostileRSSLimit = 150 << 20

// target is one scanq process under attack.
type target struct {
	t    *testing.T
	p    *proc
	url  string
	http *http.Client
}

// startTarget starts `scanq ROLE` (serve or api) on a leased real Redis
// database with settings over the defaults (no schedules), and waits until
// it answers /readyz.
func startTarget(t *testing.T, role string, settings map[string]string) *target {
	t.Helper()
	needSuite(t)
	cfg := filepath.Join(t.TempDir(), "scanq.yaml")
	if err := os.WriteFile(cfg, []byte("schedules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	all := map[string]string{
		"SCANQ_REDIS_URL": redistest.Real(t).URL,
		"SCANQ_API_ADDR":  addr,
		"SCANQ_LOG_LEVEL": "info",
	}
	maps.Copy(all, settings)
	env := baseEnv()
	for _, k := range slices.Sorted(maps.Keys(all)) {
		env = append(env, k+"="+all[k])
	}
	tg := &target{t: t, url: "http://" + addr, http: &http.Client{Timeout: 30 * time.Second}}
	tg.p = startProc(t, role, env, bin, role, "--config", cfg)
	t.Cleanup(func() {
		if why := tg.p.crashed(); why != "" {
			t.Errorf("%s crashed: %s\n%s", role, why, tg.p.tail(30))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, _, err := tg.send("GET", "/readyz", nil, nil); err == nil && st == http.StatusOK {
			return tg
		}
		if !tg.p.alive() || time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s\n%s", role, tg.url, tg.p.tail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// send makes one request and returns the status and body.
func (tg *target) send(method, path string, body []byte, header map[string]string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, tg.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := tg.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// must is send that fails the test on a transport error or another status.
func (tg *target) must(want int, method, path string, body []byte, header map[string]string) []byte {
	tg.t.Helper()
	st, raw, err := tg.send(method, path, body, header)
	if err != nil {
		tg.t.Fatalf("%s %s: %v\n%s", method, path, err, tg.p.tail(20))
	}
	if st != want {
		tg.t.Fatalf("%s %s: status %d, want %d: %.300s", method, path, st, want, raw)
	}
	return raw
}

// healthy fails the test unless the process runs, answers /healthz, and
// has never held more than hostileRSSLimit.
func (tg *target) healthy() {
	tg.t.Helper()
	if why := tg.p.crashed(); why != "" {
		tg.t.Fatalf("crashed: %s\n%s", why, tg.p.tail(30))
	}
	tg.must(http.StatusOK, "GET", "/healthz", nil, nil)
	if peak := tg.peakRSS(); peak > hostileRSSLimit {
		tg.t.Fatalf("peak RSS %d MiB, over the %d MiB bound", peak>>20, hostileRSSLimit>>20)
	}
}

// peakRSS is the process's VmHWM in bytes.
func (tg *target) peakRSS() int64 {
	tg.t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", tg.p.pid()))
	if err != nil {
		tg.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tg.t.Fatal(err)
			}
			return kb << 10
		}
	}
	tg.t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// noRuns fails the test when the target holds any run.
func (tg *target) noRuns(header map[string]string) {
	tg.t.Helper()
	raw := tg.must(http.StatusOK, "GET", "/api/v1/runs", nil, header)
	if bytes.Contains(raw, []byte(`"run_id"`)) {
		tg.t.Fatalf("a refused request left a run: %.300s", raw)
	}
}

var jsonHeader = map[string]string{"Content-Type": "application/json"}

// TestHostileDeepNesting: a body of two million '[' ended `scanq serve`
// (API, worker and scheduler) with a fatal stack overflow, and one of a
// million closed levels was accepted and took RSS to 812 MB. Both are now
// a 400 on both routes that take a scan request.
func TestHostileDeepNesting(t *testing.T) {
	tg := startTarget(t, "serve", nil)
	bodies := map[string][]byte{
		"2.1M open":     []byte(`{"x":` + strings.Repeat("[", 2_100_000)),
		"1M closed":     []byte(`{"x":` + strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000) + `}`),
		"1M in request": []byte(`{"query_info":` + strings.Repeat(`{"a":`, 1_000_000) + `1` + strings.Repeat("}", 1_000_000) + `}`),
	}
	for _, name := range slices.Sorted(maps.Keys(bodies)) {
		for _, path := range []string{"/api/v1/runs", "/v5/0123456789abcdef0123456789abcdef/image/image-scan/tasks"} {
			raw := tg.must(http.StatusBadRequest, "POST", path, bodies[name], jsonHeader)
			if !bytes.Contains(raw, []byte("nested deeper than 32 levels")) {
				t.Errorf("%s to %s: answer %.300s does not say why", name, path, raw)
			}
			tg.healthy()
		}
	}
	tg.noRuns(nil)
	t.Logf("peak RSS of serve: %d MiB", tg.peakRSS()>>20)
}
