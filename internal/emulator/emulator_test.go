package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

var requestIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestCreateAccepted(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 50, Seed: 7, Now: clk.Now})
	imgs := e.RegistryImages()[:3]
	var infos []hss.ImageInfo
	for _, img := range imgs {
		infos = append(infos, img.ImageInfo())
	}
	body, _ := json.Marshal(hss.ScanTaskBody{ImageInfo: infos, RateLimit: new(int32(100)), ScanScope: new(hss.ScanScopeVuln)})
	r := serve(t, e, req{
		target: createPath + "?enterprise_project_id=all_granted_eps&global_image_type=registry",
		body:   string(body) + "\n",
		header: map[string]string{"Region": "cn-north-4"},
	})
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != "{}" {
		t.Fatalf("create: %d %q, want 200 {}", r.status, r.body)
	}
	if rid := r.header.Get("X-Request-Id"); !requestIDRe.MatchString(rid) {
		t.Errorf("X-Request-Id %q is not 32 hex digits", rid)
	}
	subs := e.Submissions()
	if len(subs) != 1 {
		t.Fatalf("submissions: %d, want 1", len(subs))
	}
	s := subs[0]
	if s.Seq != 1 || !s.Time.Equal(t0) || s.RequestID != r.header.Get("X-Request-Id") ||
		s.ProjectID != testProject || s.Region != "cn-north-4" || s.EnterpriseProjectID != "all_granted_eps" ||
		s.GlobalImageType != "registry" || s.Images != 3 || s.TaskID == "" ||
		s.Query.Get("global_image_type") != "registry" {
		t.Errorf("submission = %+v", s)
	}
	if !slices.Equal(s.Body.ImageInfo, infos) || *s.Body.RateLimit != 100 || *s.Body.ScanScope != hss.ScanScopeVuln {
		t.Errorf("submission body = %+v, want the request's", s.Body)
	}
	st := e.Stats()
	if st.Creates != 1 || st.ImagesAccepted != 3 || st.DistinctImages != 3 || st.BatchSizes[3] != 1 ||
		st.MaxBatch != 3 || st.Requests[200] != 1 || st.Routes[routeCreate] != 1 {
		t.Errorf("stats = %+v", st)
	}
	// The same images again are accepted but not distinct.
	serve(t, e, req{target: createPath, body: string(body)})
	if st := e.Stats(); st.ImagesAccepted != 6 || st.DistinctImages != 3 || st.BatchSizes[3] != 2 {
		t.Errorf("after a repeat: stats = %+v", st)
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name   string
		query  string
		body   string
		header map[string]string
		status int
		code   string
		field  string // must appear in error_msg
	}{
		{name: "minimal", body: `{"is_all":true}`, status: 200},
		{name: "not JSON", body: `{`, status: 400, code: "HSS.0002"},
		{name: "empty body", body: ``, status: 400, code: "HSS.0002"},
		{name: "array", body: `[]`, status: 400, code: "HSS.0002"},
		{name: "trailing data", body: `{} {}`, status: 400, code: "HSS.0002"},
		{name: "rate_limit string", body: `{"rate_limit":"x"}`, status: 400, code: "HSS.0001", field: "rate_limit"},
		{name: "rate_limit 1001", body: `{"rate_limit":1001}`, status: 400, code: "HSS.0001", field: "rate_limit"},
		{name: "rate_limit -1", body: `{"rate_limit":-1}`, status: 400, code: "HSS.0001", field: "rate_limit"},
		{name: "rate_limit 1000", body: `{"rate_limit":1000,"is_all":true}`, status: 200},
		{name: "rate_limit 0", body: `{"rate_limit":0,"is_all":true}`, status: 200},
		{name: "scan_scope negative", body: `{"scan_scope":-5}`, status: 400, code: "HSS.0001", field: "scan_scope"},
		{name: "scan_scope over int32", body: `{"scan_scope":2147483648}`, status: 400, code: "HSS.0001", field: "scan_scope"},
		{name: "scan_scope all", body: `{"scan_scope":2147483647,"is_all":true}`, status: 200},
		{name: "is_all string", body: `{"is_all":"yes"}`, status: 400, code: "HSS.0001", field: "is_all"},
		{name: "bad image_type", body: `{"query_info":{"image_type":"bogus"}}`, status: 400, code: "HSS.0001", field: "query_info.image_type"},
		{name: "scan_status download_failed", body: `{"query_info":{"scan_status":"download_failed"}}`, status: 200},
		{name: "bad scan_status", body: `{"query_info":{"scan_status":"done"}}`, status: 400, code: "HSS.0001", field: "query_info.scan_status"},
		{name: "pod_id 65", body: `{"query_info":{"pod_id":"` + long(65) + `"}}`, status: 400, code: "HSS.0001", field: "query_info.pod_id"},
		{name: "pod_id 64", body: `{"query_info":{"pod_id":"` + long(64) + `"}}`, status: 200},
		{name: "bad registry_type", body: `{"image_info":[{"registry_type":"Quay"}]}`, status: 400, code: "HSS.0001", field: "image_info[0].registry_type"},
		{name: "image_info object", body: `{"image_info":{}}`, status: 400, code: "HSS.0001", field: "image_info"},
		{name: "bad global_image_type", query: "?global_image_type=bogus", body: `{"is_all":true}`, status: 400, code: "HSS.0001", field: "global_image_type"},
		{name: "global_image_type local_image", query: "?global_image_type=local_image", body: `{"is_all":true}`, status: 200},
		{name: "enterprise_project_id 257", query: "?enterprise_project_id=" + long(257), body: `{"is_all":true}`, status: 400, code: "HSS.0001", field: "enterprise_project_id"},
		{name: "enterprise_project_id 256", query: "?enterprise_project_id=" + long(256), body: `{"is_all":true}`, status: 200},
		{name: "region 129", body: `{"is_all":true}`, header: map[string]string{"Region": long(129)}, status: 400, code: "HSS.0001", field: "region"},
		{name: "region 128", body: `{"is_all":true}`, header: map[string]string{"Region": long(128)}, status: 200},
		{name: "body over 12 MB", body: `{"x":"` + long(MaxBodyBytes) + `"}`, status: 413, code: "APIGW.0201"},
	}
	e := NewHandler(Options{Images: 10})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := serve(t, e, req{method: http.MethodPost, target: createPath + tt.query, body: tt.body, header: tt.header})
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if tt.status == 200 {
				return
			}
			ae := r.apiErr(t)
			if ae.ErrorCode != tt.code || !strings.Contains(ae.ErrorMsg, tt.field) || ae.RequestID != r.header.Get("X-Request-Id") {
				t.Errorf("error %+v, want code %s naming %q", ae, tt.code, tt.field)
			}
		})
	}
}

func TestListValidation(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("n", 129)
	tests := []struct {
		path  string
		query string
		field string // "" = valid
	}{
		{registryPath, "", ""},
		{registryPath, "limit=1", ""},
		{registryPath, "limit=200", ""},
		{registryPath, "limit=0", "limit"},
		{registryPath, "limit=201", "limit"},
		{registryPath, "limit=ten", "limit"},
		{registryPath, "offset=0", ""},
		{registryPath, "offset=2000000", ""},
		{registryPath, "offset=-1", "offset"},
		{registryPath, "offset=2000001", "offset"},
		{registryPath, "image_type=harbor", ""},
		{registryPath, "image_type=quay", "image_type"},
		{registryPath, "scan_status=waiting_for_scan", ""},
		{registryPath, "scan_status=done", "scan_status"},
		{registryPath, "has_vul=true", ""},
		{registryPath, "has_vul=maybe", "has_vul"},
		{registryPath, "sort_key=latest_scan_time&sort_dir=desc", ""},
		{registryPath, "sort_key=image_name", "sort_key"},
		{registryPath, "sort_dir=up", "sort_dir"},
		{registryPath, "namespace=" + long[:128], ""},
		{registryPath, "namespace=" + long, "namespace"},
		{registryPath, "image_version=" + long[:65], "image_version"},
		{registryPath, "start_latest_scan_time=5&end_latest_scan_time=5", ""},
		{registryPath, "start_latest_scan_time=6&end_latest_scan_time=5", "start_latest_scan_time"},
		{registryPath, "end_latest_update_time=-1", "end_latest_update_time"},
		{registryPath, "image_size=2147483548", "image_size"},
		{registryPath, "enterprise_project_id=" + strings.Repeat("e", 257), "enterprise_project_id"},
		{localPath, "", ""},
		{localPath, "limit=10", ""},
		{localPath, "limit=9", "limit"},
		{localPath, "limit=201", "limit"},
		{localPath, "offset=2000001", "offset"},
		{localPath, "local_image_type=swr_image", ""},
		// outside their enumerations: an empty list, not an error (SDK)
		{localPath, "local_image_type=docker", ""},
		{localPath, "scan_status=download_failed", ""},
		{localPath, "start_latest_update_time=6&end_latest_update_time=5", ""}, // ignored, not refused
		{localPath, "host_ip=10.0.0.1", ""},
		{localPath, "host_ip=fe80::1", "host_ip"},
		{localPath, "image_version=" + long[:129], "image_version"},
		{localPath, "image_name=" + strings.Repeat("n", 257), "image_name"},
		{localPath, "host_name=" + long[:65], "host_name"},
		{localPath, "container_name=" + long[:65], "container_name"},
		{localPath, "app_name=" + long[:65], "app_name"},
		{localPath, "pod_id=" + long[:65], "pod_id"},
		{registryPath, "scan_status=download_failed", "scan_status"},
		{registryPath, "scan_status=image_oversized", "scan_status"},
		{registryPath, "scan_status=waiting_for_scan", ""},
		{registryPath, "image_name=" + long[:129], "image_name"},
		{registryPath, "registry_name=" + long[:129], "registry_name"},
		{localPath, "pod_name=" + long[:63], ""},
		{localPath, "pod_name=" + long[:64], "pod_name"},
		{localPath, "has_container=1", "has_container"},
		{tasksPath, "type=image_scan", ""},
		{tasksPath, "", "type"},
		{tasksPath, "type=image_build", "type"},
		{tasksPath, "type=image_scan&limit=9", "limit"},
		{tasksPath, "type=image_scan&task_status=running", "task_status"},
		{tasksPath, "type=image_scan&global_image_type=local_image", "global_image_type"},
	}
	e := NewHandler(Options{Images: 30, LocalImages: 30})
	for _, tt := range tests {
		t.Run(tt.path+"?"+tt.query, func(t *testing.T) {
			t.Parallel()
			r := serve(t, e, req{target: tt.path + "?" + tt.query})
			if tt.field == "" {
				if r.status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", r.status, r.body)
				}
				return
			}
			ae := r.apiErr(t)
			if r.status != http.StatusBadRequest || ae.ErrorCode != "HSS.0001" || !strings.Contains(ae.ErrorMsg, "invalid parameter "+tt.field+":") {
				t.Errorf("%d %+v, want 400 HSS.0001 naming %s", r.status, ae, tt.field)
			}
		})
	}
}

func TestUnknownRoutes(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{})
	for _, rq := range []req{
		{method: http.MethodGet, target: createPath},
		{method: http.MethodPost, target: registryPath, body: "{}"},
		{target: "/v5/"},
		{target: "/v3/p/image/tasks"},
		{target: "/v5/p/image/unknown"},
		{target: "/emulator/v1/nothing"},
	} {
		r := serve(t, e, rq)
		if ae := r.apiErr(t); r.status != http.StatusNotFound || ae.ErrorCode != "APIGW.0101" || r.header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: %d %+v, want 404 APIGW.0101", rq.method, rq.target, r.status, ae)
		}
	}
	if st := e.Stats(); st.Routes[routeUnknown] != 5 || st.Requests[404] != 5 {
		t.Errorf("stats %+v: want 5 unknown API calls (debug routes are not counted)", st)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	body := `{"is_all":true}`
	tests := []struct {
		name string
		rq   req
		msg  string // "" = accepted
		sig  bool   // counts as a bad signature
	}{
		{name: "no credentials", rq: req{target: registryPath}, msg: hss.MsgNoToken},
		{name: "wrong token", rq: req{target: registryPath, header: map[string]string{"X-Auth-Token": "nope"}}, msg: hss.MsgBadToken},
		{name: "token", rq: req{target: registryPath, header: map[string]string{"X-Auth-Token": testToken}}},
		{name: "signed", rq: req{target: registryPath + "?limit=5&namespace=web", sign: good}},
		{name: "signed create", rq: req{target: createPath, body: body, sign: good, header: map[string]string{"X-Project-Id": testProject, "Region": "cn-north-4"}}},
		{name: "wrong sk", rq: req{target: registryPath, sign: &creds{testAK, "other"}}, msg: hss.MsgBadSignature, sig: true},
		{name: "unknown ak", rq: req{target: registryPath, sign: &creds{"OTHERAK", testSK}}, msg: hss.MsgUnknownAK, sig: true},
		{name: "skew 14m", rq: req{target: registryPath, sign: good, signAt: t0.Add(-14 * time.Minute)}},
		{name: "skew 16m", rq: req{target: registryPath, sign: good, signAt: t0.Add(16 * time.Minute)}, msg: hss.MsgIAMPrefix + "signature expired, signature time:20250602T101600Z,server time:20250602T100000Z", sig: true},
		{name: "malformed authorization", rq: req{target: registryPath, header: map[string]string{"Authorization": "SDK-HMAC-SHA256 Access=x"}}, msg: hss.MsgBadSignature, sig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			e := NewHandler(Options{Images: 5, Credentials: map[string]string{testAK: testSK}, Token: testToken, Now: clk.Now})
			r := serve(t, e, tt.rq)
			if tt.msg == "" {
				if r.status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", r.status, r.body)
				}
				return
			}
			ae := r.apiErr(t)
			if r.status != http.StatusUnauthorized || ae.ErrorCode != "APIGW.0301" || ae.ErrorMsg != tt.msg {
				t.Errorf("%d %+v, want 401 APIGW.0301 %q", r.status, ae, tt.msg)
			}
			if strings.Contains(string(r.body), testSK) || strings.Contains(string(r.body), "OTHERAK") {
				t.Errorf("error body %s leaks a key", r.body)
			}
			st := e.Stats()
			if st.AuthFailures != 1 || (st.BadSignatures == 1) != tt.sig {
				t.Errorf("stats %+v, want one auth failure, bad signature %v", st, tt.sig)
			}
		})
	}

	t.Run("body changed after signing", func(t *testing.T) {
		t.Parallel()
		e := NewHandler(Options{Credentials: map[string]string{testAK: testSK}, Now: newClock().Now})
		rq := httpRequest(t, createPath, body)
		rq.Header.Set("Content-Type", "application/json")
		signRequest(t, rq, body)
		rq.Body = readCloser(`{"is_all":false}`)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, rq)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", w.Code)
		}
	})

	t.Run("auth off", func(t *testing.T) {
		t.Parallel()
		e := NewHandler(Options{})
		if r := serve(t, e, req{target: createPath, body: body}); r.status != 200 {
			t.Errorf("status %d, want 200 with auth off", r.status)
		}
		if r := serve(t, e, req{target: registryPath, sign: &creds{"any", "thing"}}); r.status != 200 {
			t.Errorf("signed request with auth off: status %d, want 200", r.status)
		}
	})
}

func TestProject(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{ProjectID: testProject})
	tests := []struct {
		target string
		header map[string]string
		status int
	}{
		{registryPath, nil, 200},
		{"/v5/other/image/registries/images", nil, 400},
		{registryPath, map[string]string{"X-Project-Id": "other"}, 400},
		{registryPath, map[string]string{"X-Project-Id": testProject}, 200},
		{"/v5/" + strings.Repeat("p", 257) + "/image/registries/images", nil, 400},
	}
	for _, tt := range tests {
		r := serve(t, e, req{target: tt.target, header: tt.header})
		if r.status != tt.status {
			t.Errorf("%s %v: status %d, want %d", tt.target, tt.header, r.status, tt.status)
		}
		if r.status == 400 {
			if ae := r.apiErr(t); ae.ErrorCode != "HSS.0010" {
				t.Errorf("%s: code %s, want HSS.0010", tt.target, ae.ErrorCode)
			}
		}
	}
	// Any project when none is configured, but 1..256 characters.
	e = NewHandler(Options{})
	if r := serve(t, e, req{target: "/v5/anything/image/registries/images"}); r.status != 200 {
		t.Errorf("any project: status %d", r.status)
	}
	r := serve(t, e, req{target: "/v5/" + strings.Repeat("p", 257) + "/image/registries/images"})
	if ae := r.apiErr(t); r.status != 400 || ae.ErrorCode != "HSS.0001" || !strings.Contains(ae.ErrorMsg, "project_id") {
		t.Errorf("257-character project: %d %+v", r.status, ae)
	}
}

func TestAPIRate(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 5, APIRate: 2, Now: clk.Now})
	statuses := func(n int) []int {
		var out []int
		for range n {
			out = append(out, serve(t, e, req{target: registryPath}).status)
		}
		return out
	}
	if got := statuses(3); !slices.Equal(got, []int{200, 200, 429}) {
		t.Fatalf("3 calls in one instant: %v, want 200 200 429", got)
	}
	r := serve(t, e, req{target: registryPath})
	ae := r.apiErr(t)
	if want := "The throttling threshold has been reached: policy user over ratelimit,limit:2,time:1 second"; r.status != 429 ||
		ae.ErrorCode != "APIGW.0308" || ae.ErrorMsg != want {
		t.Errorf("429 answer %+v, want APIGW.0308 %q", ae, want)
	}
	// Debug routes are not rate limited.
	if r := serve(t, e, req{target: "/emulator/v1/stats"}); r.status != 200 {
		t.Errorf("stats route while throttled: %d", r.status)
	}
	clk.Add(500 * time.Millisecond)
	if got := statuses(2); !slices.Equal(got, []int{200, 429}) {
		t.Errorf("after 0.5s: %v, want one more call", got)
	}
	clk.Add(10 * time.Second)
	if got := statuses(3); !slices.Equal(got, []int{200, 200, 429}) {
		t.Errorf("after 10s: %v, want a burst of 2 only", got)
	}
	if st := e.Stats(); st.Throttled != 4 || st.Requests[429] != 4 {
		t.Errorf("stats %+v, want 4 throttled", st)
	}
	// Changed at run time.
	if err := e.SetAPIRate(0); err != nil {
		t.Fatal(err)
	}
	if got := statuses(5); slices.Contains(got, 429) {
		t.Errorf("rate 0 means no limit: %v", got)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	codes := map[int]string{500: "HSS.1000", 502: "APIGW.0202", 504: "APIGW.0203"}
	t.Run("fail rate 1 before auth and validation", func(t *testing.T) {
		t.Parallel()
		e := NewHandler(Options{FailRate: 1, Token: testToken})
		for range 20 {
			r := serve(t, e, req{target: createPath, body: `{`}) // unauthenticated and unparsable
			ae := r.apiErr(t)
			if codes[r.status] == "" || ae.ErrorCode != codes[r.status] || r.header.Get("X-Request-Id") == "" {
				t.Fatalf("%d %+v, want an injected 5xx", r.status, ae)
			}
		}
		if st := e.Stats(); st.Injected != 20 || st.AuthFailures != 0 {
			t.Errorf("stats %+v", st)
		}
		if r := serve(t, e, req{target: "/emulator/v1/stats"}); r.status != 200 {
			t.Errorf("debug route with FailRate 1: %d", r.status)
		}
	})
	t.Run("throttle rate 1", func(t *testing.T) {
		t.Parallel()
		e := NewHandler(Options{ThrottleRate: 1, APIRate: 30})
		r := serve(t, e, req{target: registryPath})
		if ae := r.apiErr(t); r.status != 429 || ae.ErrorCode != "APIGW.0308" ||
			ae.ErrorMsg != "The throttling threshold has been reached: policy user over ratelimit,limit:30,time:1 second" {
			t.Errorf("%d %+v", r.status, ae)
		}
	})
	t.Run("deterministic for a seed", func(t *testing.T) {
		t.Parallel()
		run := func(seed int64) []int {
			e := NewHandler(Options{Seed: seed, FailRate: 0.2, ThrottleRate: 0.2})
			var out []int
			for range 200 {
				out = append(out, serve(t, e, req{target: registryPath}).status)
			}
			return out
		}
		a, b := run(3), run(3)
		if !slices.Equal(a, b) {
			t.Fatal("same seed, different fault sequences")
		}
		if slices.Equal(a, run(4)) {
			t.Error("different seeds, same fault sequence")
		}
		var fails, throttles int
		for _, s := range a {
			switch {
			case s >= 500:
				fails++
			case s == 429:
				throttles++
			}
		}
		// 200 draws at 20%: expect 40 each; the bounds are ±4 sigma.
		if fails < 18 || fails > 62 || throttles < 18 || throttles > 62 {
			t.Errorf("%d failures and %d throttles in 200 calls at 20%% each", fails, throttles)
		}
	})
	t.Run("set at run time", func(t *testing.T) {
		t.Parallel()
		e := NewHandler(Options{})
		if err := e.SetFaults(Faults{FailRate: 1}); err != nil {
			t.Fatal(err)
		}
		if r := serve(t, e, req{target: registryPath}); r.status < 500 {
			t.Errorf("status %d after SetFaults(FailRate 1)", r.status)
		}
		if err := e.SetFaults(Faults{}); err != nil {
			t.Fatal(err)
		}
		if r := serve(t, e, req{target: registryPath}); r.status != 200 {
			t.Errorf("status %d after clearing faults", r.status)
		}
		for _, bad := range []Faults{{FailRate: -0.1}, {FailRate: 1.1}, {ThrottleRate: 2}, {FailRate: 0.6, ThrottleRate: 0.6}, {Latency: -1}} {
			if err := e.SetFaults(bad); err == nil {
				t.Errorf("SetFaults(%+v) accepted", bad)
			}
		}
	})
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{APIRate: 100})
	e.FailNext(2, 503, "")
	e.FailNext(1, 429, "")
	e.FailNext(1, 400, "HSS.1002")
	want := []struct {
		status int
		code   string
		msg    string
	}{
		{503, "HSS.1000", "System error."},
		{503, "HSS.1000", "System error."},
		{429, "APIGW.0308", "The throttling threshold has been reached: policy user over ratelimit,limit:100,time:1 second"},
		{400, "HSS.1002", "Insufficient quota."},
	}
	for i, w := range want {
		r := serve(t, e, req{target: createPath, body: `{"is_all":true}`})
		if ae := r.apiErr(t); r.status != w.status || ae.ErrorCode != w.code || ae.ErrorMsg != w.msg {
			t.Errorf("call %d: %d %+v, want %+v", i, r.status, ae, w)
		}
	}
	if r := serve(t, e, req{target: createPath, body: `{"is_all":true}`}); r.status != 200 {
		t.Errorf("after the injected faults: %d", r.status)
	}
	if n := len(e.Submissions()); n != 1 {
		t.Errorf("%d submissions, want only the last call", n)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Latency: 30 * time.Millisecond})
	start := time.Now()
	serve(t, e, req{target: registryPath})
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("answered after %s, want at least the 30ms latency", d)
	}
	start = time.Now()
	serve(t, e, req{target: "/emulator/v1/stats"})
	if d := time.Since(start); d >= 30*time.Millisecond {
		t.Logf("debug route took %s (latency must not apply; slow machine?)", d)
	}
}

func TestDebugRoutes(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Images: 20, Credentials: map[string]string{testAK: testSK}, APIRate: 5})
	r := serve(t, e, req{method: http.MethodPost, target: "/emulator/v1/faults",
		body: `{"fail_rate":0.25,"throttle_rate":0.5,"latency":"15ms","api_rate":7,"fail_next":{"count":2,"status":502,"code":"APIGW.0202"}}`})
	if r.status != 200 {
		t.Fatalf("POST faults: %d %s", r.status, r.body)
	}
	var fs map[string]any
	if err := json.Unmarshal(r.body, &fs); err != nil {
		t.Fatal(err)
	}
	if fs["fail_rate"] != 0.25 || fs["throttle_rate"] != 0.5 || fs["latency"] != "15ms" || fs["api_rate"] != 7.0 || fs["fail_next_pending"] != 2.0 {
		t.Errorf("faults state %v", fs)
	}
	if f := e.Faults(); f != (Faults{FailRate: 0.25, ThrottleRate: 0.5, Latency: 15 * time.Millisecond}) {
		t.Errorf("Faults() = %+v", f)
	}
	// Partial update keeps the rest.
	r = serve(t, e, req{method: http.MethodPost, target: "/emulator/v1/faults", body: `{"latency":"0s"}`})
	if f := e.Faults(); r.status != 200 || f != (Faults{FailRate: 0.25, ThrottleRate: 0.5}) {
		t.Errorf("after partial update: %d %+v", r.status, f)
	}
	for _, bad := range []struct{ body, field string }{
		{`{"fail_rate":2}`, "fail_rate"},
		{`{"fail_rate":0.7,"throttle_rate":0.7}`, "fail_rate + throttle_rate"},
		{`{"latency":"soon"}`, "latency"},
		{`{"api_rate":-1}`, "api_rate"},
		{`{"fail_next":{"count":1,"status":200}}`, "fail_next.status"},
		{`{"fail_next":{"count":-1,"status":500}}`, "fail_next.count"},
		{`{"fail_rat":0.1}`, "fail_rat"},
		{`nope`, "decode"},
	} {
		r := serve(t, e, req{method: http.MethodPost, target: "/emulator/v1/faults", body: bad.body})
		if ae := r.apiErr(t); r.status != 400 || !strings.Contains(ae.ErrorMsg, bad.field) {
			t.Errorf("POST faults %s: %d %+v, want 400 naming %s", bad.body, r.status, ae, bad.field)
		}
	}
	var st Stats
	getJSON(t, e, "/emulator/v1/stats", &st)
	if st.Requests == nil || len(st.Requests) != 0 {
		t.Errorf("stats over HTTP: %+v, want no API calls yet", st)
	}
	var subs []Submission
	getJSON(t, e, "/emulator/v1/submissions", &subs)
	if subs == nil || len(subs) != 0 {
		t.Errorf("submissions = %v, want []", subs)
	}
}

func TestSubmissionsOverHTTP(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 20, Now: clk.Now, MaxSubmissions: 2})
	for i := range 3 {
		clk.Add(time.Second)
		body := `{"image_info":[{"id":` + string(rune('1'+i)) + `,"namespace":"web"}],"rate_limit":5}`
		if r := serve(t, e, req{target: createPath + "?global_image_type=registry", body: body, header: map[string]string{"Region": "eu"}}); r.status != 200 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
	}
	var subs []Submission
	getJSON(t, e, "/emulator/v1/submissions", &subs)
	if len(subs) != 2 || subs[0].Seq != 2 || subs[1].Seq != 3 {
		t.Fatalf("submissions %+v, want the newest 2 (seq 2, 3)", subs)
	}
	s := subs[1]
	if !s.Time.Equal(t0.Add(3*time.Second)) || s.Region != "eu" || s.Query.Get("global_image_type") != "registry" ||
		len(s.Body.ImageInfo) != 1 || s.Body.ImageInfo[0].ID != 3 || *s.Body.RateLimit != 5 {
		t.Errorf("submission over HTTP = %+v", s)
	}
	var st Stats
	getJSON(t, e, "/emulator/v1/stats", &st)
	if st.Creates != 3 || st.ImagesAccepted != 3 || st.DistinctImages != 3 || st.BatchSizes[1] != 3 {
		t.Errorf("stats %+v: counts must cover dropped submissions too", st)
	}
	if e := NewHandler(Options{MaxSubmissions: -1}); serve(t, e, req{target: createPath, body: `{"is_all":true}`}).status != 200 || len(e.Submissions()) != 0 || e.Stats().AllScans != 1 {
		t.Error("MaxSubmissions -1 must keep none but count all")
	}
}

func TestTasks(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 100, LocalImages: 40, Seed: 2, Now: clk.Now})
	create := func(query, body string) {
		t.Helper()
		if r := serve(t, e, req{target: createPath + query, body: body}); r.status != 200 {
			t.Fatalf("create %s: %d %s", body, r.status, r.body)
		}
	}
	tasks := func(query string) taskPage {
		t.Helper()
		var p taskPage
		getJSON(t, e, tasksPath+"?type=image_scan"+query, &p)
		return p
	}
	create("", `{"image_info":[{"id":1},{"id":2},{"id":3},{"id":4}],"scan_scope":983040}`)
	p := tasks("")
	if p.TotalNum != 1 || len(p.DataList) != 1 {
		t.Fatalf("tasks %+v", p)
	}
	tk := p.DataList[0]
	if tk.TaskStatus != 0 || tk.TotalNum != 4 || tk.TaskType != "manual" || tk.ImageType != "registry" ||
		tk.ScanScope != 983040 || tk.BeginTime != t0.UnixMilli() || tk.EndTime != 0 || tk.TaskID == "" || tk.TaskID != e.Submissions()[0].TaskID {
		t.Errorf("new task %+v", tk)
	}
	clk.Add(2 * time.Second) // 4 images at 1s each: half done
	if tk := tasks("").DataList[0]; tk.TaskStatus != 50 || tk.SuccessNum != 2 || tk.RemainMin != 1 {
		t.Errorf("half-way task %+v", tk)
	}
	if n := tasks("&task_status=scanning").TotalNum; n != 1 {
		t.Errorf("scanning tasks: %d", n)
	}
	clk.Add(2 * time.Second)
	if tk := tasks("").DataList[0]; tk.TaskStatus != 100 || tk.SuccessNum != 4 || tk.EndTime != t0.Add(4*time.Second).UnixMilli() {
		t.Errorf("finished task %+v", tk)
	}
	if n := tasks("&task_status=finished").TotalNum; n != 1 {
		t.Errorf("finished tasks: %d", n)
	}

	// rate_limit paces the task: 10 images/hour is 6 minutes per image.
	create("", `{"image_info":[{"id":5},{"id":6}],"rate_limit":10}`)
	clk.Add(6 * time.Minute)
	if tk := tasks("").DataList[0]; tk.TaskStatus != 50 || tk.RateLimit != 10 || tk.RemainMin != 6 {
		t.Errorf("rate-limited task %+v", tk)
	}
	// is_all and query_info are sized from the inventory.
	create("", `{"is_all":true}`)
	create("?global_image_type=local", `{"is_all":true}`)
	ns := e.RegistryImages()[0].Namespace
	create("", `{"query_info":{"namespace":"`+ns+`"}}`)
	var inNS int
	for _, img := range e.RegistryImages() {
		if img.Namespace == ns {
			inNS++
		}
	}
	p = tasks("")
	if p.TotalNum != 5 || p.DataList[0].TotalNum != int32(inNS) || p.DataList[1].TotalNum != 40 || p.DataList[1].ImageType != "local" ||
		p.DataList[2].TotalNum != 100 || !p.DataList[2].IsAll {
		t.Errorf("tasks newest first: %+v (want %d in namespace %s)", p.DataList, inNS, ns)
	}
	if n := tasks("&global_image_type=local").TotalNum; n != 1 {
		t.Errorf("local tasks: %d", n)
	}
	if n := tasks("&task_id=" + url.QueryEscape(p.DataList[3].TaskID)).TotalNum; n != 1 {
		t.Errorf("task by id: %d", n)
	}
	if p := tasks("&limit=10&offset=4"); len(p.DataList) != 1 || p.TotalNum != 5 {
		t.Errorf("page at offset 4: %+v", p)
	}
	var sync taskPage
	getJSON(t, e, tasksPath+"?type=image_sync", &sync)
	if sync.TotalNum != 0 || sync.DataList == nil {
		t.Errorf("image_sync tasks: %+v, want an empty list", sync)
	}
}

func TestSubmissionsSince(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{})
	for range 3 {
		serve(t, e, req{target: createPath, body: `{"is_all":true}`})
	}
	var subs []Submission
	getJSON(t, e, "/emulator/v1/submissions?since=1", &subs)
	if len(subs) != 2 || subs[0].Seq != 2 {
		t.Errorf("since=1: %+v, want seq 2 and 3", subs)
	}
	getJSON(t, e, "/emulator/v1/submissions?since=3", &subs)
	if len(subs) != 0 {
		t.Errorf("since=3: %d submissions", len(subs))
	}
	if r := serve(t, e, req{target: "/emulator/v1/submissions?since=-1"}); r.status != 400 {
		t.Errorf("since=-1: %d", r.status)
	}
}

func TestClientGoneDuringLatency(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Latency: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := httptest.NewRequest(http.MethodGet, registryPath, nil).WithContext(ctx)
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r) // returns at once: the client has gone
	if st := e.Stats(); st.Requests[499] != 1 || len(e.Submissions()) != 0 {
		t.Errorf("stats %+v, want one 499", st)
	}
}

// is_all with query_info: the query narrows "all", as scanq reads the pair,
// for registry and local images; and Select agrees with the task's size.
func TestIsAllWithQueryIsNarrowedByTheQuery(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Images: 300, LocalImages: 200, Seed: 5})
	for _, tc := range []struct {
		imageType string
		q         *hss.QueryInfo
	}{
		{"registry", &hss.QueryInfo{ScanStatus: new("download_failed")}},
		{"local", &hss.QueryInfo{ScanStatus: new("success"), StartLatestUpdateTime: new(InventoryEpoch.UnixMilli() - 30*dayMS)}},
	} {
		want, ok := e.Select(tc.imageType, tc.q)
		if !ok || len(want) == 0 || len(want) == e.RegistryImageCount() || len(want) == len(e.LocalImages()) {
			t.Fatalf("%s: Select %d images, ok %v: not a narrowing query", tc.imageType, len(want), ok)
		}
		body, _ := json.Marshal(hss.ScanTaskBody{IsAll: new(true), QueryInfo: tc.q})
		before := len(e.Submissions())
		if r := serve(t, e, req{target: createPath + "?global_image_type=" + tc.imageType, body: string(body)}); r.status != http.StatusOK {
			t.Fatalf("%s: create %d %s", tc.imageType, r.status, r.body)
		}
		if s := e.Submissions()[before]; s.Images != len(want) {
			t.Errorf("%s: is_all with query_info covers %d images, want the query's %d", tc.imageType, s.Images, len(want))
		}
	}
}
