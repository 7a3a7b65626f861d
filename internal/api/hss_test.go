package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
)

// A request signed by the right AK/SK starts a run whose record holds
// exactly the request that was sent: query, region header and body.
func TestHSSCreateStartsRun(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}}))
		body := `{"scan_scope":983040,"rate_limit":600,"is_all":false,` +
			`"query_info":{"namespace":"web","has_vul":true,"image_size":0},` +
			`"image_info":[{"id":7,"namespace":"web","image_name":"nginx","image_version":"1.25","registry_type":"SwrPrivate"},` +
			`{"image_digest":"sha256:abc","instance_id":"i-1"}],"ignored_by_hss":1}` + "\n"
		r := e.do(t, call{method: http.MethodPost,
			path: createPath + "?enterprise_project_id=ep-1&global_image_type=local_image",
			body: body, sign: goodKeys,
			header: map[string]string{"Content-Type": "application/json;charset=UTF-8", "Region": "cn-north-4", "X-Project-Id": testProject}})
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var got map[string]string
		r.decode(t, &got)
		id := got["run_id"]
		if len(got) != 1 || id == "" {
			t.Fatalf("body %s, want {\"run_id\"}", r.body)
		}
		run, err := e.store.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		want := jobs.ScanRequest{
			GlobalImageType: "local_image", EnterpriseProjectID: "ep-1", Region: "cn-north-4",
			ScanTaskBody: hss.ScanTaskBody{
				ScanScope: new(int32(983040)), RateLimit: new(int32(600)), IsAll: new(false),
				QueryInfo: &hss.QueryInfo{Namespace: new("web"), HasVul: new(true), ImageSize: new(int64(0))},
				ImageInfo: []hss.ImageInfo{
					{ID: 7, Namespace: "web", ImageName: "nginx", ImageVersion: "1.25", RegistryType: "SwrPrivate"},
					{ImageDigest: "sha256:abc", InstanceID: "i-1"},
				},
			},
		}
		// The record keeps the images apart (runs.Store.Images).
		images, err := e.store.Images(t.Context(), id, 0, run.ImageCount)
		if err != nil {
			t.Fatal(err)
		}
		run.Request.ImageInfo = images
		if !reflect.DeepEqual(run.Request, want) {
			g, _ := json.Marshal(run.Request)
			w, _ := json.Marshal(want)
			t.Errorf("run request\n got %s\nwant %s", g, w)
		}
		if run.Trigger.Kind != TriggerHSSAPI || run.Target != testTarget || run.State != jobs.StatePending || run.Queue != jobs.QueueCritical {
			t.Errorf("run %+v", run)
		}
		if !e.runTaskQueued(t, id, jobs.QueueCritical) {
			t.Error("the run's scan:run task is not queued")
		}
		if loc := r.header.Get("Location"); loc != "/api/v1/runs/"+id {
			t.Errorf("Location %q", loc)
		}

		// The token as X-Auth-Token is the other accepted credential.
		r = e.do(t, call{method: http.MethodPost, path: createPath, body: `{"is_all":true}`,
			header: map[string]string{"X-Auth-Token": testToken, "Content-Type": "application/json"}})
		if r.status != http.StatusOK {
			t.Fatalf("X-Auth-Token: %d %s", r.status, r.body)
		}
	})
}

// Every class of bad request gets HSS's status, error code and message,
// and the passing neighbour of each rule is accepted.
func TestHSSCreateErrors(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	// bodyErr is what HSS says about a body, from the shared decoder.
	bodyErr := func(body string) string {
		_, err := hss.DecodeScanTaskBody([]byte(body))
		if err == nil {
			t.Fatalf("body %s is valid", body)
		}
		return err.Error()
	}
	tok := map[string]string{"X-Auth-Token": testToken, "Content-Type": "application/json"}
	withTok := func(kv ...string) map[string]string {
		m := map[string]string{"X-Auth-Token": testToken, "Content-Type": "application/json"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name   string
		c      call
		status int
		code   string // "" = success
		msg    string // "" = any
	}{
		// authentication
		{"no credentials", call{body: `{"is_all":true}`, header: jsonCT}, 401, "APIGW.0301", hss.MsgNoToken},
		{"wrong token", call{body: `{"is_all":true}`, header: withTok("X-Auth-Token", "wrong")}, 401, "APIGW.0301", hss.MsgBadToken},
		{"bearer is not HSS's", call{body: `{"is_all":true}`, header: bearer(testToken)}, 401, "APIGW.0301", hss.MsgNoToken},
		{"wrong secret key", call{body: `{"is_all":true}`, header: jsonCT, sign: &keys{testAK, "wrong-sk"}}, 401, "APIGW.0301", hss.MsgBadSignature},
		{"unknown access key", call{body: `{"is_all":true}`, header: jsonCT, sign: &keys{"OTHERAK", testSK}}, 401, "APIGW.0301", hss.MsgUnknownAK},
		{"clock skew", call{body: `{"is_all":true}`, header: jsonCT, sign: goodKeys, signAt: time.Now().Add(-20 * time.Minute)}, 401, "APIGW.0301", ""},
		{"body changed after signing", call{body: `{"is_all":true}`, header: jsonCT, sign: goodKeys, tamper: `{"is_all":false}`}, 401, "APIGW.0301", hss.MsgBadSignature},
		{"skew within 15 minutes", call{body: `{"is_all":true}`, header: jsonCT, sign: goodKeys, signAt: time.Now().Add(-10 * time.Minute)}, 200, "", ""},
		{"signed", call{body: `{"is_all":true}`, header: jsonCT, sign: goodKeys}, 200, "", ""},

		// parse failures: HSS.0002
		{"malformed JSON", call{body: `{"is_all":`, header: tok}, 400, "HSS.0002", bodyErr(`{"is_all":`)},
		{"empty body", call{body: ``, header: tok}, 400, "HSS.0002", bodyErr(``)},
		{"not an object", call{body: `[{"is_all":true}]`, header: tok}, 400, "HSS.0002", bodyErr(`[{"is_all":true}]`)},
		{"trailing data", call{body: `{"is_all":true}{}`, header: tok}, 400, "HSS.0002", bodyErr(`{"is_all":true}{}`)},

		// wrong types: HSS.0001 naming the field
		{"rate_limit string", call{body: `{"rate_limit":"100"}`, header: tok}, 400, "HSS.0001", bodyErr(`{"rate_limit":"100"}`)},
		{"is_all number", call{body: `{"is_all":1}`, header: tok}, 400, "HSS.0001", bodyErr(`{"is_all":1}`)},
		{"image_info object", call{body: `{"image_info":{}}`, header: tok}, 400, "HSS.0001", bodyErr(`{"image_info":{}}`)},
		{"image_info id string", call{body: `{"image_info":[{"id":"7"}]}`, header: tok}, 400, "HSS.0001", bodyErr(`{"image_info":[{"id":"7"}]}`)},
		// a query scanq resolves by listing is held to the list API's limits
		{"image_size beyond the registry list", call{body: `{"query_info":{"image_size":2147483548}}`, header: tok}, 400, "HSS.0001", ""},
		{"image_size at the registry list's max", call{body: `{"query_info":{"image_size":2147483547}}`, header: tok}, 200, "", ""},
		{"host field on registry images: forwarded", call{body: `{"query_info":{"host_name":"h"}}`, header: tok}, 200, "", ""},
		{"query_info array", call{body: `{"query_info":[]}`, header: tok}, 400, "HSS.0001", bodyErr(`{"query_info":[]}`)},

		// out of range
		{"rate_limit above 1000", call{body: `{"rate_limit":1001}`, header: tok}, 400, "HSS.0001", bodyErr(`{"rate_limit":1001}`)},
		{"rate_limit 1000", call{body: `{"rate_limit":1000}`, header: tok}, 200, "", ""},
		{"rate_limit negative", call{body: `{"rate_limit":-1}`, header: tok}, 400, "HSS.0001", bodyErr(`{"rate_limit":-1}`)},
		{"rate_limit 0", call{body: `{"rate_limit":0}`, header: tok}, 200, "", ""},
		{"scan_scope beyond int32", call{body: `{"scan_scope":2147483648}`, header: tok}, 400, "HSS.0001", bodyErr(`{"scan_scope":2147483648}`)},
		{"scan_scope negative", call{body: `{"scan_scope":-1}`, header: tok}, 400, "HSS.0001", bodyErr(`{"scan_scope":-1}`)},
		{"scan_scope all", call{body: `{"scan_scope":2147483647}`, header: tok}, 200, "", ""},
		{"pod_id 65 chars", call{body: `{"query_info":{"pod_id":"` + long(65) + `"}}`, header: tok}, 400, "HSS.0001", bodyErr(`{"query_info":{"pod_id":"` + long(65) + `"}}`)},
		{"pod_id 64 chars", call{body: `{"query_info":{"pod_id":"` + long(64) + `"}}`, header: tok}, 200, "", ""},
		{"image_size negative", call{body: `{"query_info":{"image_size":-1}}`, header: tok}, 400, "HSS.0001", bodyErr(`{"query_info":{"image_size":-1}}`)},

		// bad enumerations
		{"registry_type", call{body: `{"image_info":[{"image_name":"a"},{"registry_type":"Docker"}]}`, header: tok}, 400, "HSS.0001",
			bodyErr(`{"image_info":[{"image_name":"a"},{"registry_type":"Docker"}]}`)},
		{"registry_type Harbor", call{body: `{"image_info":[{"registry_type":"Harbor"}]}`, header: tok}, 200, "", ""},
		{"scan_status", call{body: `{"query_info":{"scan_status":"done"}}`, header: tok}, 400, "HSS.0001", bodyErr(`{"query_info":{"scan_status":"done"}}`)},
		{"image_type", call{body: `{"query_info":{"image_type":"public"}}`, header: tok}, 400, "HSS.0001", bodyErr(`{"query_info":{"image_type":"public"}}`)},

		// query and headers
		{"global_image_type", call{path: createPath + "?global_image_type=cloud", body: `{"is_all":true}`, header: tok}, 400, "HSS.0001",
			`invalid parameter global_image_type: "cloud" is not one of registry, local, local_image`},
		{"global_image_type local", call{path: createPath + "?global_image_type=local", body: `{"is_all":true}`, header: tok}, 200, "", ""},
		{"enterprise_project_id 257", call{path: createPath + "?enterprise_project_id=" + long(257), body: `{"is_all":true}`, header: tok}, 400, "HSS.0001",
			"invalid parameter enterprise_project_id: length 257 exceeds 256"},
		{"enterprise_project_id 256", call{path: createPath + "?enterprise_project_id=" + long(256), body: `{"is_all":true}`, header: tok}, 200, "", ""},
		{"region 129", call{body: `{"is_all":true}`, header: withTok("Region", long(129))}, 400, "HSS.0001", "invalid parameter region: length 129 exceeds 128"},
		{"region 128", call{body: `{"is_all":true}`, header: withTok("Region", long(128))}, 200, "", ""},
		{"other project", call{path: "/v5/proj-2/image/image-scan/tasks", body: `{"is_all":true}`, header: tok}, 400, "HSS.0010", ""},
		{"X-Project-Id mismatch", call{body: `{"is_all":true}`, header: withTok("X-Project-Id", "proj-2")}, 400, "HSS.0010", ""},

		// size, route, method
		{"oversized body", call{body: `{"image_info":[` + strings.Repeat(`{"image_name":"a"},`, 400) + `{}]}`, header: tok}, 413, "APIGW.0201", hss.MsgTooLarge},
		{"wrong method", call{method: http.MethodGet, header: tok}, 405, "APIGW.0101", ""},
		{"unknown route", call{path: "/v5/" + testProject + "/image/nothing", header: tok}, 404, "APIGW.0101", hss.MsgNotFoundRoute},
	}
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}, MaxBodyBytes: 4096}))
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := tc.c
				if c.method == "" {
					c.method = http.MethodPost
				}
				if c.path == "" {
					c.path = createPath
				}
				r := e.do(t, c)
				r.noSecrets(t)
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				if tc.code == "" {
					var ok map[string]string
					r.decode(t, &ok)
					if ok["run_id"] == "" {
						t.Fatalf("body %s, want a run_id", r.body)
					}
					return
				}
				he := r.hssErr(t)
				if he.ErrorCode != tc.code || (tc.msg != "" && he.ErrorMsg != tc.msg) {
					t.Errorf("error %+v, want %s %q", he, tc.code, tc.msg)
				}
				if ct := r.header.Get("Content-Type"); ct != hssContentType {
					t.Errorf("Content-Type %q", ct)
				}
				if tc.status == http.StatusMethodNotAllowed && r.header.Get("Allow") != http.MethodPost {
					t.Errorf("Allow %q, want POST", r.header.Get("Allow"))
				}
			})
		}
	})
}

// With a clock skew the message gives both times, as the gateway does.
func TestHSSClockSkewMessage(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Now: func() time.Time { return now }}))
	r := e.do(t, call{method: http.MethodPost, path: createPath, body: `{}`, header: jsonCT, sign: goodKeys, signAt: now.Add(16 * time.Minute)})
	he := r.hssErr(t)
	want := hss.MsgIAMPrefix + "signature expired, signature time:20250602T101600Z,server time:20250602T100000Z"
	if r.status != 401 || he.ErrorCode != "APIGW.0301" || he.ErrorMsg != want {
		t.Errorf("%d %+v, want 401 %q", r.status, he, want)
	}
}

// With neither a token nor AK/SK configured, the endpoint is open (demo).
func TestHSSCreateOpenWithoutCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), Options{})
	r := e.do(t, call{method: http.MethodPost, path: "/v5/any-project/image/image-scan/tasks", body: `{"is_all":true}`, header: jsonCT})
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// TestHSSRegionMustBeTheTargets: a project's calls whose region header
// names another region than its target's are refused as HSS refuses a
// project it does not know (they went to the target with that region, a
// call HSS itself would refuse); the target's own region and no header
// both reach it.
func TestHSSRegionMustBeTheTargets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Projects: []Project{{ProjectID: testProject, Region: "cn-north-4", Target: testTarget}}}))
	for region, status := range map[string]int{"": 200, "cn-north-4": 200, "ap-southeast-1": 400} {
		hdr := map[string]string{"X-Auth-Token": testToken, "Content-Type": "application/json"}
		if region != "" {
			hdr["Region"] = region
		}
		r := e.do(t, call{method: http.MethodPost, path: createPath, body: `{"is_all":true}`, header: hdr})
		if r.status != status {
			t.Errorf("region %q: %d %s, want %d", region, r.status, r.body, status)
			continue
		}
		if status == 400 {
			if he := r.hssErr(t); he.ErrorCode != "HSS.0010" || !strings.Contains(he.ErrorMsg, "served in region cn-north-4, not the region header's ap-southeast-1") {
				t.Errorf("region %q: %+v", region, he)
			}
		}
	}
}
