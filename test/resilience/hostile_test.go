package resilience

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/hss/signer"
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
	return startTargetConfig(t, role, "schedules: []\n", settings)
}

// startTargetConfig is startTarget with a config file of content.
func startTargetConfig(t *testing.T, role, content string, settings map[string]string) *target {
	t.Helper()
	needSuite(t)
	cfg := filepath.Join(t.TempDir(), "scanq.yaml")
	if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
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
	waitFor(t, 30*time.Second, role+" to answer /readyz at "+tg.url, func() error {
		t.Helper()
		st, _, err := tg.send("GET", "/readyz", nil, nil)
		if err == nil && st == http.StatusOK {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("/readyz answered %d", st)
		}
		if !tg.p.alive() {
			t.Fatalf("%s exited (%s) before it was ready at %s (last error %v)\n%s", role, tg.p.exitText(), tg.url, err, tg.p.tail(30))
		}
		return fmt.Errorf("%v\n%s", err, tg.p.tail(30))
	})
	return tg
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

const (
	hostileToken = "hostile-api-token-0001"
	hostileAK    = "HOSTILEAK0001"
	hostileSK    = "hostile-secret-key-0001"
	hssPath      = "/v5/0123456789abcdef0123456789abcdef/image/image-scan/tasks"
)

// TestHostileSlowClients: 40 sockets that each declared a 12 MiB body and
// sent all but 2 bytes took an unauthenticated `scanq api` from 18 to 512
// MB, and all 40 were still open after 62 s. Now 200 stalled clients (a
// third without credentials, a third with a forged signature whose body
// the server must hash, a third with the right token sending all but 2
// bytes of 12 MiB) cannot raise the peak RSS over the bound, and the
// server closes every connection (api.read_timeout 3 s and
// api.body_stall_timeout 2 s here). A forged-signature GET declaring a 12 MiB body is refused before
// its body is sent.
func TestHostileSlowClients(t *testing.T) {
	tg := startTarget(t, "api", map[string]string{
		"SCANQ_API_TOKEN": hostileToken, "SCANQ_API_AK": hostileAK, "SCANQ_API_SK": hostileSK,
		"SCANQ_API_READ_TIMEOUT": "3s", "SCANQ_API_WRITE_TIMEOUT": "4s", "SCANQ_API_BODY_STALL_TIMEOUT": "2s",
	})
	addr := strings.TrimPrefix(tg.url, "http://")
	const clients = 200
	const declared = 12 << 20
	conns := make([]net.Conn, clients)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	// Three kinds, in turn: no credentials; a forged signature with a
	// known access key (the body must be read to judge it); the right
	// token, sending all but 2 bytes of the declared body.
	kinds := []struct {
		header string
		sends  int
	}{
		{"", 256 << 10},
		{"Authorization: SDK-HMAC-SHA256 Access=" + hostileAK + ", SignedHeaders=x-sdk-date, Signature=" + strings.Repeat("0", 64) + "\r\n" +
			"X-Sdk-Date: " + time.Now().UTC().Format("20060102T150405Z") + "\r\n", 256 << 10},
		{"X-Auth-Token: " + hostileToken + "\r\n", declared - 2},
	}
	body := bytes.Repeat([]byte("a"), declared)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns[i] = c
		k := kinds[i%len(kinds)]
		head := "POST " + hssPath + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n" + k.header +
			"Content-Length: " + strconv.Itoa(declared) + "\r\n\r\n"
		wg.Go(func() {
			// Writes fail once the server has answered and closed, or
			// stop at the deadline: that is the point, not an error.
			_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
			if _, err := c.Write([]byte(head)); err == nil {
				_, _ = c.Write(body[:k.sends])
			}
		})
	}
	// Every connection ends: the server answers (401 from the headers, 429
	// when the body budget is spent) and closes, or cuts it off when the
	// body stalls or the read timeout passes. None stays open.
	deadline := time.Now().Add(60 * time.Second)
	for i, c := range conns {
		_ = c.SetReadDeadline(deadline)
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("client %d: connection still open 60 s after it stalled", i)
		}
	}
	t.Logf("all %d connections closed by the server within %s", clients, time.Since(start).Round(100*time.Millisecond))
	wg.Wait()
	tg.healthy()

	// A forged-signature GET declaring a 12 MiB body: 401, answered
	// before the body is sent.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	head := "GET /api/v1/runs HTTP/1.1\r\nHost: " + addr + "\r\n" +
		"Authorization: SDK-HMAC-SHA256 Access=" + hostileAK + ", SignedHeaders=host;x-sdk-date, Signature=" + strings.Repeat("0", 64) + "\r\n" +
		"X-Sdk-Date: " + time.Now().UTC().Format("20060102T150405Z") + "\r\nContent-Length: " + strconv.Itoa(declared) + "\r\n\r\n"
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second)) // well inside the 3 s read timeout
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a forged GET before its body was sent: %v", err)
	}
	// 401 (the signature is judged wrong) or 413 (a signed GET takes no
	// body): either way, refused from its headers.
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("forged GET: status %d, want 401 or 413", resp.StatusCode)
	}
	tg.noRuns(map[string]string{"Authorization": "Bearer " + hostileToken})
	t.Logf("peak RSS of api after %d stalled clients: %d MiB", clients, tg.peakRSS()>>20)
}

// scrapeCommands scrapes /metrics once and returns how many commands the
// Redis server processed meanwhile (the target does nothing else).
func scrapeCommands(t *testing.T, tg *target, rdb *redis.Client, header map[string]string) int64 {
	t.Helper()
	before := totalCommands(t, rdb)
	tg.must(http.StatusOK, "GET", "/metrics", nil, header)
	return totalCommands(t, rdb) - before - 1 // the INFO of the second reading
}

func totalCommands(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no total_commands_processed in INFO stats")
	return 0
}

// TestHostileMetricsCost: each scrape loaded the 1,000 newest run records,
// image lists included (one scrape took 5.3 s and 1.76 GB with 30 runs of
// 150,000 images). A scrape now costs the same number of Redis commands
// with 25 runs as with 325, and with api.metrics_token set it is refused
// without the token. (The queue statistics asynq's inspector computes
// sample the memory of up to 20 tasks per queue and state, so below 20
// queued tasks a scrape costs a little less; 25 is past that.)
func TestHostileMetricsCost(t *testing.T) {
	// A server of the test's own: its command count is this process's
	// and the test's alone.
	needSuite(t)
	srv := startRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "redis://"), "/0")})
	t.Cleanup(func() { _ = rdb.Close() })
	tg := startTarget(t, "api", map[string]string{
		"SCANQ_REDIS_URL": srv.URL(), "SCANQ_API_METRICS_TOKEN": "metrics-token-0001",
		"SCANQ_API_CREATE_RATE": "0", // no creation limit: this test creates hundreds
	})
	scrape := map[string]string{"Authorization": "Bearer metrics-token-0001"}
	tg.must(http.StatusUnauthorized, "GET", "/metrics", nil, nil)
	create := func(n, images int) {
		var body strings.Builder
		body.WriteString(`{"image_info":[`)
		for i := range images {
			if i > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"id":%d,"image_name":"team/image-%d"}`, i+1, i)
		}
		body.WriteString(`]}`)
		for range n {
			tg.must(http.StatusAccepted, "POST", "/api/v1/runs", []byte(body.String()), jsonHeader)
		}
	}
	create(5, 10_000)
	create(20, 10)
	tg.must(http.StatusOK, "GET", "/metrics", nil, scrape) // warm: first-scrape work is not the steady cost
	few := scrapeCommands(t, tg, rdb, scrape)
	create(300, 10)
	many := scrapeCommands(t, tg, rdb, scrape)
	t.Logf("Redis commands per scrape: %d with 25 runs, %d with 325", few, many)
	if many != few {
		t.Errorf("a scrape with 325 runs cost %d Redis commands, with 25 runs %d: it grows with the runs", many, few)
	}
	tg.healthy()
}

// TestHostileReplay: a captured signed request sent 3 times created 3
// runs, and with UNSIGNED-PAYLOAD (or a non-JSON Content-Type) its body
// could be swapped for any other. Now a repeat returns the first run, an
// unsigned payload is refused, and a non-JSON body is a 415.
func TestHostileReplay(t *testing.T) {
	tg := startTarget(t, "api", map[string]string{"SCANQ_API_AK": hostileAK, "SCANQ_API_SK": hostileSK, "SCANQ_API_TOKEN": hostileToken})
	bearer := map[string]string{"Authorization": "Bearer " + hostileToken}
	body := []byte(`{"image_info":[{"id":1,"image_name":"team/app"}]}`)
	signed := func(body []byte, header map[string]string) *http.Request {
		req, err := http.NewRequest("POST", tg.url+hssPath, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		if err := signer.Sign(req, body, hostileAK, hostileSK, time.Now()); err != nil {
			t.Fatal(err)
		}
		return req
	}
	send := func(req *http.Request, body []byte) (int, []byte) {
		again := req.Clone(context.Background())
		again.Body = io.NopCloser(bytes.NewReader(body))
		again.ContentLength = int64(len(body))
		resp, err := tg.http.Do(again)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	captured := signed(body, nil)
	var first string
	for i := range 3 {
		st, raw := send(captured, body)
		if st != http.StatusOK {
			t.Fatalf("send %d: status %d: %s", i+1, st, raw)
		}
		if first == "" {
			first = string(raw)
		} else if string(raw) != first {
			t.Fatalf("send %d answered %s, the first %s: a replay started another run", i+1, raw, first)
		}
	}
	if n := strings.Count(string(tg.must(http.StatusOK, "GET", "/api/v1/runs", nil, bearer)), `"run_id"`); n != 1 {
		t.Fatalf("%d runs after three sends of one signed request, want 1", n)
	}

	// UNSIGNED-PAYLOAD: the body is not covered, so any body would pass.
	unsigned := signed(body, map[string]string{"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"})
	if st, raw := send(unsigned, []byte(`{"is_all":true}`)); st < 400 || st >= 500 {
		t.Fatalf("UNSIGNED-PAYLOAD with another body: status %d: %s", st, raw)
	}
	// A non-JSON body: 415.
	text := []byte("is_all=true")
	req, err := http.NewRequest("POST", tg.url+hssPath, bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	if err := signer.Sign(req, text, hostileAK, hostileSK, time.Now()); err != nil {
		t.Fatal(err)
	}
	if st, raw := send(req, text); st != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain body: status %d, want 415: %s", st, raw)
	}
	if n := strings.Count(string(tg.must(http.StatusOK, "GET", "/api/v1/runs", nil, bearer)), `"run_id"`); n != 1 {
		t.Fatalf("%d runs after the refused requests, want the first one only", n)
	}
	tg.healthy()
}

// startRole starts `scanq ROLE` with exactly these settings (no defaults of
// startTarget's) and a config file of cfg.
func startRole(t *testing.T, role, cfg string, settings map[string]string) *proc {
	t.Helper()
	needSuite(t)
	file := filepath.Join(t.TempDir(), "scanq.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := baseEnv()
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		env = append(env, k+"="+settings[k])
	}
	return startProc(t, role, env, bin, role, "--config", file)
}

// TestHostileOpenByDefault: everything, asynqmon's pause/delete/retry
// included, was open on every interface by default, with an INFO line as
// the only word; the banner said authentication was off with a token
// enforced, and "embedded Redis" on a real one.
func TestHostileOpenByDefault(t *testing.T) {
	t.Run("serve on embedded defaults listens on loopback", func(t *testing.T) {
		p := startRole(t, "serve", "schedules: []\n", nil)
		p.waitOutput(t, "api listening", 30*time.Second)
		line := ""
		for _, l := range strings.Split(p.out.String(), "\n") {
			if strings.Contains(l, "api listening") {
				line = l
			}
		}
		if !strings.Contains(line, "addr=127.0.0.1:8080") {
			t.Fatalf("serve on its defaults: %s", line)
		}
	})
	t.Run("an open API beyond loopback is refused", func(t *testing.T) {
		p := startRole(t, "api", "schedules: []\n", map[string]string{
			"SCANQ_REDIS_URL": redistest.Real(t).URL, "SCANQ_API_ADDR": "0.0.0.0:" + strconv.Itoa(freePort(t)),
		})
		code, _ := p.waitExit(t, 30*time.Second)
		if code == 0 || !strings.Contains(p.out.String(), "api.allow_unauthenticated") {
			t.Fatalf("api without credentials on 0.0.0.0: exit %d\n%s", code, p.tail(10))
		}
	})
	t.Run("open on purpose: a WARN, and asynqmon is read-only", func(t *testing.T) {
		tg := startTarget(t, "api", map[string]string{"SCANQ_API_ALLOW_UNAUTHENTICATED": "true"})
		if !strings.Contains(tg.p.out.String(), "level=WARN") || !strings.Contains(tg.p.out.String(), "authentication is OFF") {
			t.Fatalf("no WARN that authentication is off:\n%s", tg.p.tail(20))
		}
		st, raw, err := tg.send("POST", "/monitoring/api/queues/critical:pause", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st < 400 {
			t.Fatalf("pausing a queue through an open asynqmon: %d %s", st, raw)
		}
		tg.healthy()
	})
	t.Run("the banner tells the truth", func(t *testing.T) {
		p := startRole(t, "serve", "schedules: []\n", map[string]string{
			"SCANQ_REDIS_URL": redistest.Real(t).URL, "SCANQ_API_ADDR": "127.0.0.1:" + strconv.Itoa(freePort(t)),
			"SCANQ_API_TOKEN": hostileToken,
		})
		p.waitOutput(t, "api listening", 30*time.Second)
		out := p.out.String()
		for _, lie := range []string{"authentication is OFF", "embedded Redis", hostileToken} {
			if strings.Contains(out, lie) {
				t.Errorf("serve with a token on a real Redis says %q:\n%s", lie, p.tail(20))
			}
		}
		if !strings.Contains(out, "authentication is ON") {
			t.Errorf("serve with a token does not say authentication is on:\n%s", p.tail(20))
		}
	})
}

// TestHostileGrowth: 2,000 runs were created in 8.7 s by one client;
// pending runs never expired; three triggers of a schedule with overlap:
// skip started three concurrent full-registry runs.
func TestHostileGrowth(t *testing.T) {
	t.Run("creation is limited per client", func(t *testing.T) {
		tg := startTarget(t, "api", map[string]string{"SCANQ_API_CREATE_RATE": "60", "SCANQ_API_CREATE_BURST": "5"})
		accepted, limited := 0, 0
		for range 20 {
			req, _ := http.NewRequest("POST", tg.url+"/api/v1/runs", strings.NewReader(`{"image_info":[{"id":1}]}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := tg.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusAccepted:
				accepted++
			case http.StatusTooManyRequests:
				limited++
				if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
					t.Fatalf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
				}
			default:
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		// A burst of 5 and one more per second: 20 quick creates cannot
		// all pass, and the burst always does.
		if limited == 0 || accepted < 5 {
			t.Fatalf("20 creates: %d accepted, %d limited", accepted, limited)
		}
		var list struct {
			Runs []json.RawMessage `json:"runs"`
		}
		if err := json.Unmarshal(tg.must(http.StatusOK, "GET", "/api/v1/runs?limit=100", nil, nil), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Runs) != accepted {
			t.Fatalf("%d runs stored, %d creates accepted", len(list.Runs), accepted)
		}
	})
	t.Run("a run that never starts expires", func(t *testing.T) {
		tg := startTarget(t, "api", map[string]string{"SCANQ_SCAN_PENDING_TTL": "2s"})
		var created struct {
			RunID string `json:"run_id"`
		}
		if err := json.Unmarshal(tg.must(http.StatusAccepted, "POST", "/api/v1/runs", []byte(`{"is_all":true}`), jsonHeader), &created); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "pending run "+created.RunID+" to expire (pending_ttl 2s)", func() error {
			st, _, err := tg.send("GET", "/api/v1/runs/"+created.RunID, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if st != http.StatusNotFound {
				return fmt.Errorf("GET /api/v1/runs/%s answers %d", created.RunID, st)
			}
			return nil
		})
	})
	t.Run("a trigger honours overlap: skip", func(t *testing.T) {
		cfg := "schedules:\n  - name: full\n    cron: '0 2 * * *'\n    overlap: skip\n    request: {is_all: true}\n"
		tg := startTargetConfig(t, "api", cfg, nil)
		tg.must(http.StatusAccepted, "POST", "/api/v1/schedules/full/trigger", nil, nil)
		raw := tg.must(http.StatusConflict, "POST", "/api/v1/schedules/full/trigger", nil, nil)
		if !bytes.Contains(raw, []byte("run")) {
			t.Errorf("409 does not name the running run: %s", raw)
		}
		tg.must(http.StatusAccepted, "POST", "/api/v1/schedules/full/trigger?force=true", nil, nil)
	})
}

// TestHostileRedisSecrets: parts of a Redis password with '/' or '?'
// appeared in URL errors, and `scanq api` with a wrong password said
// "listening" while the worker flooded WRONGPASS. Now a role refuses to
// start, naming the URL without its password.
func TestHostileRedisSecrets(t *testing.T) {
	needSuite(t)
	srv := startRedis(t, "right-password-0001")
	port := strings.TrimPrefix(strings.TrimSuffix(srv.URL(), "/0"), "redis://127.0.0.1:")
	for _, c := range []struct{ name, url, says string }{
		// A URL that cannot be split safely is refused as configuration.
		{"slash and question mark", "redis://user:PWHEAD/PWTAIL?x@127.0.0.1:" + port + "/0", "percent-encode"},
		// A password Redis refuses: the role says which Redis.
		{"refused password", "redis://:PWREFUSED0001@127.0.0.1:" + port + "/0", "127.0.0.1:" + port},
	} {
		name, url := c.name, c.url
		t.Run(name, func(t *testing.T) {
			for _, role := range []string{"api", "worker", "scheduler"} {
				p := startRole(t, role, "schedules: []\n", map[string]string{
					"SCANQ_REDIS_URL": url, "SCANQ_API_ADDR": "127.0.0.1:" + strconv.Itoa(freePort(t)),
				})
				code, _ := p.waitExit(t, 30*time.Second)
				out := p.out.String()
				if code == 0 {
					t.Errorf("%s started on %s:\n%s", role, name, p.tail(10))
				}
				for _, secret := range []string{"PWHEAD", "PWTAIL", "PWREFUSED0001"} {
					if strings.Contains(out, secret) {
						t.Errorf("%s printed part of the password (%s):\n%s", role, secret, p.tail(10))
					}
				}
				if !strings.Contains(out, c.says) {
					t.Errorf("%s does not say %q:\n%s", role, c.says, p.tail(10))
				}
				if strings.Contains(out, "api listening") {
					t.Errorf("%s said it was listening:\n%s", role, p.tail(10))
				}
			}
		})
	}
}

// TestHostileHugeLists: a 12 MiB body of two million nulls in image_info
// took `scanq api` to 561 MB per request (three at once: 1.4 GB) before its
// length was checked. Now the items are counted first: three such bodies
// at once, on both routes, leave the peak under the bound.
func TestHostileHugeLists(t *testing.T) {
	tg := startTarget(t, "api", map[string]string{"SCANQ_API_TOKEN": hostileToken})
	n := (12<<20 - 40) / 5
	nulls := []byte(`{"image_info":[` + strings.TrimSuffix(strings.Repeat("null,", n), ",") + `]}`)
	empties := []byte(`{"image_info":[` + strings.TrimSuffix(strings.Repeat("{},", n*5/3), ",") + `]}`)
	header := map[string]string{"Content-Type": "application/json", "X-Auth-Token": hostileToken, "Authorization": "Bearer " + hostileToken}
	var wg sync.WaitGroup
	for _, path := range []string{"/api/v1/runs", hssPath, "/api/v1/runs"} {
		for _, body := range [][]byte{nulls, empties} {
			wg.Go(func() {
				st, raw, err := tg.send("POST", path, body, header)
				// 400 naming the limit, or 503/429 when the body budget is
				// spent by the others: never accepted, never a crash.
				if err != nil || (st != http.StatusBadRequest && st != http.StatusServiceUnavailable && st != http.StatusTooManyRequests) {
					t.Errorf("%s: %d %v %.200s", path, st, err, raw)
				}
				if st == http.StatusBadRequest && !bytes.Contains(raw, []byte("more than 10000")) {
					t.Errorf("%s: 400 does not name the limit: %.300s", path, raw)
				}
			})
		}
	}
	wg.Wait()
	tg.healthy()
	tg.noRuns(map[string]string{"Authorization": "Bearer " + hostileToken})
	t.Logf("peak RSS of api after six 12 MiB lists at once: %d MiB", tg.peakRSS()>>20)
}

// TestHostileManyConnections: 3,000 clients trickling 60 KB of headers
// each took an authenticated `scanq api` to 251 MB. Connections beyond
// api.max_connections (512) now wait to be accepted, and 2,000 of them
// stay under the bound.
func TestHostileManyConnections(t *testing.T) {
	tg := startTarget(t, "api", map[string]string{"SCANQ_API_TOKEN": hostileToken})
	addr := strings.TrimPrefix(tg.url, "http://")
	const clients = 2000
	line := "X-Pad: " + strings.Repeat("p", 1000) + "\r\n"
	conns := make([]net.Conn, 0, clients)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns = append(conns, c)
		// Writes to a connection not yet accepted land in the kernel's
		// buffers; a write that would block is given up.
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte("GET /api/v1/runs HTTP/1.1\r\nHost: x\r\n" + strings.Repeat(line, 60)))
	}
	// healthy's client reuses the connection of its readiness probe; a new
	// connection would wait for held ones to time out (10 s each round).
	tg.healthy()
	for _, c := range conns {
		c.Close()
	}
	t.Logf("peak RSS of api with %d connections trickling headers: %d MiB", clients, tg.peakRSS()>>20)
}
