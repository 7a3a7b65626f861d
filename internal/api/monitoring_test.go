package api

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
)

func basicAuth(user, pass string) map[string]string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return map[string]string{"Authorization": r.Header.Get("Authorization")}
}

var mainJSRe = regexp.MustCompile(`src="(/monitoring/static/js/main\.[0-9a-f]+\.chunk\.js)"`)

// asynqmon is served under /monitoring/: its page, its assets and its API,
// behind the API's authentication.
func TestMonitoring(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{Monitoring: true}))
		// A run puts a task on the critical queue, so asynq knows the queue.
		createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: auth}), 202)
		browser := basicAuth("admin", testToken)

		// Refused without credentials or with wrong ones, offering basic auth.
		for _, c := range []call{
			{path: "/monitoring/"},
			{path: "/monitoring/api/queues"},
			{path: "/monitoring/api/queues", header: basicAuth("admin", "wrong-token")},
			{path: "/monitoring/api/queues", header: map[string]string{"Authorization": "Bearer wrong-token"}},
		} {
			r := e.do(t, c)
			if ae := r.apiErr(t); r.status != 401 || ae.Code != codeUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: %d %+v %v", c.path, r.status, ae, r.header)
			}
			r.noSecrets(t, "wrong-token")
		}

		// The page.
		r := e.do(t, call{path: "/monitoring/", header: browser})
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "<title>Asynq - Monitoring</title>") {
			t.Fatalf("page: %d %v %.300s", r.status, r.header, r.body)
		}
		if !strings.Contains(string(r.body), `window.FLAG_ROOT_PATH="\/monitoring"`) {
			t.Errorf("page is not rooted at /monitoring: %s", regexp.MustCompile(`<script>window[^<]*`).FindString(string(r.body)))
		}
		// A path inside the app (the browser reloading a page) is the page too.
		if r := e.do(t, call{path: "/monitoring/queues/critical", header: browser}); r.status != 200 || !strings.Contains(string(r.body), "<title>Asynq") {
			t.Errorf("deep link: %d", r.status)
		}

		// Its assets, under the mount path.
		m := mainJSRe.FindStringSubmatch(string(r.body))
		if m == nil {
			t.Fatalf("no main script in the page: %.2000s", r.body)
		}
		js := e.do(t, call{path: m[1], header: browser})
		if js.status != 200 || !strings.HasPrefix(js.header.Get("Content-Type"), "application/javascript") || len(js.body) < 1000 {
			t.Errorf("asset %s: %d %q %d bytes", m[1], js.status, js.header.Get("Content-Type"), len(js.body))
		}
		if icon := e.do(t, call{path: "/monitoring/favicon.ico", header: browser}); icon.status != 200 || strings.HasPrefix(icon.header.Get("Content-Type"), "text/html") {
			t.Errorf("favicon: %d %q", icon.status, icon.header.Get("Content-Type"))
		}

		// Its API, with basic auth and with the bearer token.
		for _, h := range []map[string]string{browser, {"Authorization": "Bearer " + testToken}, {"X-Auth-Token": testToken}} {
			r := e.do(t, call{path: "/monitoring/api/queues", header: h})
			var qs struct {
				Queues []struct {
					Queue   string `json:"queue"`
					Pending int    `json:"pending"`
				} `json:"queues"`
			}
			// asynqmon answers JSON without saying so (text/plain).
			if r.status != 200 {
				t.Fatalf("api/queues: %d %v %s", r.status, r.header, r.body)
			}
			if err := json.Unmarshal(r.body, &qs); err != nil || len(qs.Queues) != 1 || qs.Queues[0].Queue != "critical" || qs.Queues[0].Pending != 1 {
				t.Errorf("api/queues: %s %v", r.body, err)
			}
		}

		// Not read-only: pausing a queue works.
		if r := e.do(t, call{method: "POST", path: "/monitoring/api/queues/critical:pause", header: browser}); r.status >= 300 {
			t.Errorf("pause: %d %s", r.status, r.body)
		}
		// A page of another site cannot make the browser do it.
		xs := basicAuth("admin", testToken)
		xs["Sec-Fetch-Site"] = "cross-site"
		if r := e.do(t, call{method: "POST", path: "/monitoring/api/queues/critical:resume", header: xs}); r.status != 403 {
			t.Errorf("cross-site resume: %d %s", r.status, r.body)
		}
		// Without the slash, the mux redirects to the mount point.
		if r := e.do(t, call{path: "/monitoring", header: browser}); r.status/100 != 3 || r.header.Get("Location") != "/monitoring/" {
			t.Errorf("/monitoring: %d %v", r.status, r.header)
		}
	})
}

func TestMonitoringReadOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Monitoring: true, MonitoringReadOnly: true}))
	createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: auth}), 202)
	r := e.do(t, call{path: "/monitoring/", header: auth})
	if r.status != 200 || !strings.Contains(string(r.body), `FLAG_READ_ONLY="true"`) {
		t.Errorf("page: %d %.800s", r.status, r.body)
	}
	for _, c := range []call{
		{method: "POST", path: "/monitoring/api/queues/critical:pause", header: auth},
		{method: "DELETE", path: "/monitoring/api/queues/critical", header: auth},
		{method: "DELETE", path: "/monitoring/api/nothing", header: auth},
	} {
		r := e.do(t, c)
		if ae := r.apiErr(t); r.status != 405 || ae.Code != codeMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: %d %+v", c.method, c.path, r.status, ae)
		}
	}
	if r := e.do(t, call{path: "/monitoring/api/queues", header: auth}); r.status != 200 {
		t.Errorf("GET api/queues: %d", r.status)
	}
	if qi, err := e.insp.GetQueueInfo("critical"); err != nil || qi.Paused {
		t.Errorf("queue %+v %v: a read-only console paused it", qi, err)
	}
}

func TestMonitoringOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), Options{})
	if r := e.do(t, call{path: "/monitoring/"}); r.status != 404 {
		t.Errorf("%d", r.status)
	}
	if _, err := New(Options{Starter: e.starter, Redis: e.b.Client, Monitoring: true}); err == nil {
		t.Error("Monitoring without RedisOpt was accepted")
	}
}

// TestMonitoringReadOnlyWithoutAuth: with no credentials configured anyone
// who reaches the API reaches asynqmon, so it is read-only whatever
// MonitoringReadOnly says: no pausing, deleting or retrying.
func TestMonitoringReadOnlyWithoutAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), Options{Monitoring: true, MonitoringReadOnly: false})
	createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: jsonCT}), 202)
	if r := e.do(t, call{path: "/monitoring/"}); r.status != 200 || !strings.Contains(string(r.body), `FLAG_READ_ONLY="true"`) {
		t.Errorf("page: %d, want the read-only console", r.status)
	}
	for _, c := range []call{
		{method: "POST", path: "/monitoring/api/queues/critical:pause"},
		{method: "DELETE", path: "/monitoring/api/queues/critical"},
		{method: "POST", path: "/monitoring/api/queues/critical/pending_tasks:delete_all"},
	} {
		if r := e.do(t, c); r.status != 405 {
			t.Errorf("%s %s without auth: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	if qi, err := e.insp.GetQueueInfo("critical"); err != nil || qi.Paused || qi.Pending != 1 {
		t.Errorf("queue %+v %v: an unauthenticated console changed it", qi, err)
	}
}

// TestMonitoringShowsOneLinePerTask: asynqmon showed each scan:batch task
// with its whole payload, a row about 2,700 px tall for 17 images. Its task
// lists now show jobs.Summary's one line.
func TestMonitoringShowsOneLinePerTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), Options{Monitoring: true})
	var images []hss.ImageInfo
	for i := range 17 {
		images = append(images, hss.ImageInfo{ID: int64(i + 1), Namespace: "team", ImageName: "svc-" + strconv.Itoa(i), ImageVersion: "v1"})
	}
	task, err := jobs.NewBatchTask(jobs.BatchPayload{RunID: "r1", Page: 0, Index: 4, Images: images}, jobs.QueueCritical, 3)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(e.b.Client)
	defer client.Close()
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	r := e.do(t, call{path: "/monitoring/api/queues/critical/pending_tasks"})
	var list struct {
		Tasks []struct {
			Type    string `json:"type"`
			Payload string `json:"payload"`
		} `json:"tasks"`
	}
	r.decode(t, &list)
	if len(list.Tasks) != 1 || list.Tasks[0].Payload != "17 images · first team/svc-0:v1 · run r1 · page 0 · batch 4" {
		t.Fatalf("asynqmon's pending tasks: %+v", list.Tasks)
	}
}
