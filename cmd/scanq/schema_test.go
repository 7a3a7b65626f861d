package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// hookReceiver keeps the webhook deliveries it gets, by run id.
type hookReceiver struct {
	mu     sync.Mutex
	bodies map[string]map[string]any
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, _ := m["run_id"].(string)
	h.mu.Lock()
	h.bodies[id] = m
	h.mu.Unlock()
}

func (h *hookReceiver) wait(t *testing.T, id string) map[string]any {
	t.Helper()
	var m map[string]any
	testkit.Eventually(t, 20*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		m = h.bodies[id]
		return m != nil
	}, "a webhook delivery for run %s", id)
	return m
}

// generic decodes a JSON object as maps, for comparing whole objects.
func generic(t *testing.T, data string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, data)
	}
	return m
}

func getJSON(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return string(body)
}

// TestOneRunSchema: a run is one JSON object wherever it is shown: `enqueue
// --json` (as created, and with --wait as it ended), `runs show --json`,
// each run of `runs list --json` (the API's page), `runs cancel --json`,
// `scan --json`, GET /api/v1/runs/{id} and the webhook delivery (the same
// object and its event). Every run shown after it has listed its images
// has images_total = submitted + skipped + failed, a cancelled one at once.
func TestOneRunSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a serve and scans")
	}
	hooks := &hookReceiver{bodies: map[string]map[string]any{}}
	srv := httptest.NewServer(hooks)
	t.Cleanup(srv.Close)
	banner, _ := startServe(t, "--set", "hss.emulator_images=300", "--set", "webhook.url="+srv.URL+"/hook")
	m := regexp.MustCompile(`API:\s+(http://\S+)/api/v1/runs`).FindStringSubmatch(banner.String())
	if m == nil {
		t.Fatalf("serve's banner names no API:\n%s", banner.String())
	}
	api := m[1] + "/api/v1/runs"

	// As created: the run object, pending.
	code, out, errOut := runCmd(t, "enqueue", "--image", "library/nginx:1.25", "--image", "team/api:v2", "--json")
	if created := runOf(t, out); code != 0 || created.ID == "" || created.State != jobs.StatePending || created.ImageCount != 2 {
		t.Fatalf("enqueue --json: exit %d, %+v\n%s%s", code, created.Run, out, errOut)
	}

	// As it ended, through every output.
	code, out, errOut = runCmd(t, "enqueue", "--all", "--wait", "--json")
	ended := runOf(t, out)
	c := ended.Counters
	if code != 0 || ended.State != jobs.StateSucceeded || c.ImagesTotal != 300 || c.ImagesSubmitted == 0 || c.BatchesTotal == 0 {
		t.Fatalf("enqueue --wait --json: exit %d, %+v %+v\n%s", code, ended.Run, c, errOut)
	}
	id := ended.ID
	want := generic(t, out)

	outputs := map[string]string{}
	code, out, errOut = runCmd(t, "runs", "show", id, "--json")
	if code != 0 {
		t.Fatalf("runs show: exit %d\n%s", code, errOut)
	}
	outputs["runs show --json"] = out
	runOf(t, out)
	code, out, errOut = runCmd(t, "runs", "list", "--json", "--limit", "500")
	if code != 0 {
		t.Fatalf("runs list: exit %d\n%s", code, errOut)
	}
	outputs["runs list --json"] = listed(t, out, id)
	outputs["GET /api/v1/runs/{id}"] = getJSON(t, api+"/"+id)
	outputs["GET /api/v1/runs"] = listed(t, getJSON(t, api+"?limit=500"), id)
	hook := hooks.wait(t, id)
	if hook["event"] != "run.finished" {
		t.Errorf("webhook event %v, want run.finished", hook["event"])
	}
	delete(hook, "event")
	for name, out := range outputs {
		if got := generic(t, out); !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs from enqueue --wait --json:\n%v\n%v", name, got, want)
		}
	}
	if !reflect.DeepEqual(hook, want) {
		t.Errorf("the webhook's run differs from enqueue --wait --json:\n%v\n%v", hook, want)
	}

	// Cancelled while it runs (one image an hour): the images not
	// submitted are skipped at once.
	code, out, errOut = runCmd(t, "enqueue", "--all", "--rate-limit", "1")
	slow := strings.TrimSpace(out)
	if code != 0 || slow == "" {
		t.Fatalf("enqueue: exit %d\n%s", code, errOut)
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		_, out, _ = runCmd(t, "runs", "show", slow, "--json")
		r := runOf(t, out)
		return r.State == jobs.StateRunning && r.Counters.ImagesTotal == 300
	}, "run %s to list its 300 images", slow)
	// The canceller enqueues the webhook when its configuration has one,
	// as the fleet's does.
	code, out, errOut = runCmd(t, "runs", "cancel", slow, "--json", "--set", "webhook.url="+srv.URL+"/hook")
	cancelled := runOf(t, out) // checks the sum
	if code != 0 || cancelled.State != jobs.StateCancelled || cancelled.Counters.ImagesSkipped[jobs.SkipCancelled] == 0 {
		t.Fatalf("runs cancel --json: exit %d, %+v %+v\n%s", code, cancelled.Run, cancelled.Counters, errOut)
	}
	if hook := hooks.wait(t, slow); hook["state"] != string(jobs.StateCancelled) {
		t.Errorf("webhook of the cancelled run: %v", hook)
	}

	// scan --json: the same object, of a run of this process.
	code, out, errOut = runCmd(t, "scan", "--all", "--dry-run", "--json", "--set", "hss.emulator_images=300")
	dry := runOf(t, out)
	if code != 0 || dry.Counters.ImagesSkipped[jobs.SkipDryRun] == 0 {
		t.Fatalf("scan --dry-run --json: exit %d, %+v\n%s", code, dry.Counters, errOut)
	}
	if got, want := keys(generic(t, out)), keys(want); !reflect.DeepEqual(got, want) {
		t.Errorf("scan --json has fields %v, the API's run %v", got, want)
	}
}

// listed is run id's object in a page of runs ({"runs": [...],
// "next_cursor": ...}), which has no other field.
func listed(t *testing.T, page, id string) string {
	t.Helper()
	var p struct {
		Runs       []json.RawMessage `json:"runs"`
		NextCursor string            `json:"next_cursor"`
	}
	dec := json.NewDecoder(strings.NewReader(page))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("not a page of runs: %v\n%s", err, page)
	}
	for _, raw := range p.Runs {
		if r := runOf(t, string(raw)); r.ID == id {
			return string(raw)
		}
	}
	t.Fatalf("run %s not in the page:\n%s", id, page)
	return ""
}

// keys are an object's field names, and its counters'.
func keys(m map[string]any) []string {
	var out []string
	for k, v := range m {
		out = append(out, k)
		if sub, ok := v.(map[string]any); ok && k == "counters" {
			for k2 := range sub {
				out = append(out, k+"."+k2)
			}
		}
	}
	sort.Strings(out)
	return out
}
