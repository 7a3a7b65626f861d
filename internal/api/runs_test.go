package api

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

var auth = bearer(testToken)

// The run lifecycle through /api/v1: create, show (with counters and ETA),
// list (with filters), cancel, and cancel again.
func TestRunsLifecycle(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{}))
		body := `{"global_image_type":"registry","enterprise_project_id":"0","region":"cn-north-4",` +
			`"scan_scope":2147483647,"rate_limit":100,"image_info":[{"namespace":"web","image_name":"nginx","image_version":"1"}],` +
			`"target":"default","batch_size":10,"priority":"bulk","skip_scanned_within":"24h"}`
		r := e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: body, header: auth})
		id := createdRun(t, r, http.StatusAccepted)
		if r.header.Get("Location") != "/api/v1/runs/"+id {
			t.Errorf("Location %q", r.header.Get("Location"))
		}
		var created runCreated
		r.decode(t, &created)
		if created.State != jobs.StatePending {
			t.Errorf("state %q", created.State)
		}
		if !e.runTaskQueued(t, id, jobs.RunTaskQueue(jobs.DefaultTarget)) {
			t.Error("scan:run task not on the critical queue, where every run starts")
		}
		rec, err := e.store.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		wantReq := jobs.ScanRequest{GlobalImageType: "registry", EnterpriseProjectID: "0", Region: "cn-north-4",
			ScanTaskBody: hss.ScanTaskBody{ScanScope: new(hss.ScanScopeAll), RateLimit: new(int32(100))}}
		wantOpts := jobs.Options{BatchSize: 10, Priority: "bulk", SkipScannedWithin: jobs.Duration(24 * time.Hour)}
		if !reflect.DeepEqual(rec.Request, wantReq) || rec.ImageCount != 1 || rec.Options != wantOpts || rec.Trigger.Kind != TriggerAPI || rec.Queue != jobs.QueueBulk {
			t.Errorf("record %+v", rec)
		}
		// The images are kept apart from the record.
		wantImages := []hss.ImageInfo{{Namespace: "web", ImageName: "nginx", ImageVersion: "1"}}
		if imgs, err := e.store.Images(t.Context(), id, 0, 10); err != nil || !reflect.DeepEqual(imgs, wantImages) {
			t.Errorf("images %+v, %v; want %+v", imgs, err, wantImages)
		}

		// Progress: 100 images listed, none done, 100/h: one hour left.
		if _, err := e.store.Start(t.Context(), id, runs.Geometry{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.PageDone(t.Context(), id, 0, runs.PageResult{Listed: 100, Batches: 10, Last: true}); err != nil {
			t.Fatal(err)
		}
		r = e.do(t, call{path: "/api/v1/runs/" + id, header: auth})
		if r.status != http.StatusOK {
			t.Fatalf("get: %d %s", r.status, r.body)
		}
		var v struct {
			RunID      string        `json:"run_id"`
			State      jobs.State    `json:"state"`
			Counters   jobs.Counters `json:"counters"`
			CreatedAt  time.Time     `json:"created_at"`
			StartedAt  *time.Time    `json:"started_at"`
			ETASeconds float64       `json:"eta_seconds"`
			Request    map[string]any
			Options    jobs.Options
		}
		r.decode(t, &v)
		if v.RunID != id || v.State != jobs.StateRunning || v.Counters.ImagesTotal != 100 || v.Counters.BatchesTotal != 10 ||
			v.CreatedAt.IsZero() || v.StartedAt == nil || v.ETASeconds != 3600 || v.Request["rate_limit"] != 100.0 || v.Options != wantOpts {
			t.Errorf("run view %s", r.body)
		}

		// Two more runs, then list.
		id2 := createdRun(t, e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: `{"is_all":true,"dry_run":true}`, header: auth}), 202)
		id3 := createdRun(t, e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: `{"is_all":true}`, header: auth}), 202)
		list := func(q string) []string {
			t.Helper()
			r := e.do(t, call{path: "/api/v1/runs" + q, header: auth})
			if r.status != http.StatusOK {
				t.Fatalf("list%s: %d %s", q, r.status, r.body)
			}
			var l ListRunsResponse
			r.decode(t, &l)
			var ids []string
			for _, x := range l.Runs {
				ids = append(ids, x.ID)
			}
			return ids
		}
		if got := list(""); len(got) != 3 {
			t.Errorf("list: %v", got)
		}
		if got := list("?limit=2"); len(got) != 2 {
			t.Errorf("list limit 2: %v", got)
		}
		if got := list("?state=pending"); len(got) != 2 || got[0] == id || got[1] == id {
			t.Errorf("pending: %v, want %s and %s", got, id2, id3)
		}

		// Cancel, then cancel again: 409.
		r = e.do(t, call{method: http.MethodPost, path: "/api/v1/runs/" + id3 + "/cancel", header: map[string]string{"Authorization": "Bearer " + testToken}})
		if r.status != http.StatusOK {
			t.Fatalf("cancel: %d %s", r.status, r.body)
		}
		var cv RunView
		r.decode(t, &cv)
		if cv.State != jobs.StateCancelled || cv.FinishedAt == nil || cv.StopReason != "cancelled" {
			t.Errorf("cancelled run %s", r.body)
		}
		if got := list("?state=cancelled"); len(got) != 1 || got[0] != id3 {
			t.Errorf("cancelled: %v", got)
		}
		r = e.do(t, call{method: http.MethodPost, path: "/api/v1/runs/" + id3 + "/cancel", header: auth})
		if ae := r.apiErr(t); r.status != http.StatusConflict || ae.Code != codeRunFinal || !strings.Contains(ae.Message, "cancelled") {
			t.Errorf("second cancel: %d %+v", r.status, ae)
		}
	})
}

// The idempotency key: the same key and request give the same run; the same
// key with another request is a conflict.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{IdempotencyTTL: time.Hour}))
		post := func(key, body string) resp {
			h := bearer(testToken)
			if key != "" {
				h["Idempotency-Key"] = key
			}
			return e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: body, header: h})
		}
		first := post("k-1", `{"is_all":true,"rate_limit":10}`)
		id := createdRun(t, first, http.StatusAccepted)
		for _, body := range []string{
			`{"is_all":true,"rate_limit":10}`,
			"{ \"rate_limit\": 10,\n \"is_all\": true }", // the same request, written differently
		} {
			r := post("k-1", body)
			if got := createdRun(t, r, http.StatusOK); got != id || r.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("replay: %s %v, want run %s", got, r.header, id)
			}
		}
		r := post("k-1", `{"is_all":true,"rate_limit":11}`)
		if ae := r.apiErr(t); r.status != http.StatusConflict || ae.Code != codeIdempotencyReused {
			t.Errorf("reused key: %d %+v", r.status, ae)
		}
		other := createdRun(t, post("k-2", `{"is_all":true,"rate_limit":10}`), http.StatusAccepted)
		if other == id {
			t.Error("another key gave the same run")
		}
		createdRun(t, post("", `{"is_all":true,"rate_limit":10}`), http.StatusAccepted)
		if rs, _ := e.store.List(t.Context(), 10, ""); len(rs) != 3 {
			t.Errorf("%d runs, want 3", len(rs))
		}
		keys, err := b.Client.Keys(t.Context(), "scanq:idem:runs:*").Result()
		if err != nil || len(keys) != 2 {
			t.Fatalf("idempotency keys %v %v", keys, err)
		}
		for _, k := range keys {
			if ttl := b.Client.TTL(t.Context(), k).Val(); ttl <= 0 || ttl > time.Hour {
				t.Errorf("key %s TTL %s, want within 1h", k, ttl)
			}
			if strings.Contains(k, "k-1") || strings.Contains(k, "k-2") {
				t.Errorf("key %s holds the client's key in clear", k)
			}
		}

		// A refused request claims nothing: the key still works after.
		r = post("k-3", `{"rate_limit":5000}`)
		if ae := r.apiErr(t); r.status != http.StatusBadRequest || ae.Field != "rate_limit" {
			t.Errorf("invalid with key: %d %+v", r.status, ae)
		}
		createdRun(t, post("k-3", `{"is_all":true}`), http.StatusAccepted)

		// A key whose run is not there yet: the first request is in flight.
		if prev, err := e.h.idem.claimFor(t.Context(), "runs", "k-4", hashOf(t, `{"is_all":true}`), "no-such-run", e.h.idem.ttl); err != nil || prev != nil {
			t.Fatal(prev, err)
		}
		r = post("k-4", `{"is_all":true}`)
		if ae := r.apiErr(t); r.status != http.StatusConflict || ae.Code != codeIdempotencyInFlight {
			t.Errorf("in flight: %d %+v", r.status, ae)
		}

		// A bad key.
		r = post(strings.Repeat("k", 256), `{"is_all":true}`)
		if ae := r.apiErr(t); r.status != http.StatusBadRequest || ae.Code != codeInvalidHeader {
			t.Errorf("long key: %d %+v", r.status, ae)
		}
	})
}

// TestIdempotencyKeyOfAGroup: a create for every target repeated with its
// Idempotency-Key answers the group it started, and starts nothing more.
func TestIdempotencyKeyOfAGroup(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{IdempotencyTTL: time.Hour}))
		h := bearer(testToken)
		h["Idempotency-Key"] = "group-1"
		body := `{"is_all":true,"target":"all"}`
		id := createdRun(t, e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: body, header: h}), http.StatusAccepted)
		r := e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: body, header: h})
		if got := createdRun(t, r, http.StatusOK); got != id || r.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay of a group: %s %v, want group %s", got, r.header, id)
		}
		if rs, _ := e.store.List(t.Context(), 10, ""); len(rs) != 1 {
			t.Errorf("%d runs, want the group's one", len(rs))
		}
	})
}

// hashOf is the idempotency hash createRun computes for body.
func hashOf(t *testing.T, body string) string {
	t.Helper()
	var req RunRequest
	if err := hss.DecodeStrict([]byte(body), &req, true); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(req)
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// Concurrent creates with one key start exactly one run.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, Options{})
		const n = 16
		var wg sync.WaitGroup
		results := make([]resp, n)
		for i := range n {
			wg.Go(func() {
				results[i] = e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: `{"is_all":true}`,
					header: map[string]string{"Content-Type": "application/json", "Idempotency-Key": "same"}})
			})
		}
		wg.Wait()
		ids := map[string]bool{}
		accepted := 0
		for _, r := range results {
			switch r.status {
			case http.StatusAccepted:
				accepted++
				ids[createdRun(t, r, http.StatusAccepted)] = true
			case http.StatusOK:
				ids[createdRun(t, r, http.StatusOK)] = true
			case http.StatusConflict:
				if ae := r.apiErr(t); ae.Code != codeIdempotencyInFlight {
					t.Errorf("conflict %+v", ae)
				}
			default:
				t.Errorf("status %d: %s", r.status, r.body)
			}
		}
		if rs, _ := e.store.List(t.Context(), 100, ""); accepted != 1 || len(ids) != 1 || len(rs) != 1 {
			t.Errorf("%d accepted, run ids %v, %d runs stored; want exactly one", accepted, ids, len(rs))
		}
	})
}

// Every class of bad input to POST /api/v1/runs, each with its passing
// neighbour, asserting status, code, field and message.
func TestCreateRunValidation(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name   string
		body   string
		status int
		code   string // "" = accepted
		field  string
		msg    string // substring
	}{
		// malformed JSON
		{"malformed", `{"is_all":`, 400, codeInvalidJSON, "", "not valid JSON"},
		{"empty", ``, 400, codeInvalidJSON, "", "empty"},
		{"array", `[{"is_all":true}]`, 400, codeInvalidJSON, "", "must be a JSON object"},
		{"trailing data", `{"is_all":true} {}`, 400, codeInvalidJSON, "", "data after"},

		// unknown fields, at every level, all named
		{"unknown fields", `{"is_all":true,"bogus":1,"also":2}`, 400, codeUnknownField, "also", `unknown fields "also", "bogus"`},
		{"unknown in query_info", `{"query_info":{"nope":1}}`, 400, codeUnknownField, "query_info.nope", `"query_info.nope"`},
		{"unknown in image_info", `{"image_info":[{"image_name":"a"},{"tag":"x"}]}`, 400, codeUnknownField, "image_info[1].tag", `"image_info[1].tag"`},
		{"names match exactly", `{"Rate_Limit":10}`, 400, codeUnknownField, "Rate_Limit", `"Rate_Limit"`},

		// wrong types
		{"rate_limit string", `{"rate_limit":"10"}`, 400, codeInvalidField, "rate_limit", "must be an integer in int32 range, got a string"},
		{"is_all string", `{"is_all":"yes"}`, 400, codeInvalidField, "is_all", "must be a boolean"},
		{"dry_run number", `{"is_all":true,"dry_run":1}`, 400, codeInvalidField, "dry_run", "must be a boolean, got 1"},
		{"batch_size string", `{"batch_size":"10"}`, 400, codeInvalidField, "batch_size", "must be an integer"},
		{"batch_size fraction", `{"batch_size":1.5}`, 400, codeInvalidField, "batch_size", "got 1.5"},
		{"priority number", `{"priority":1}`, 400, codeInvalidField, "priority", "must be a string"},
		{"target bool", `{"target":true}`, 400, codeInvalidField, "target", "must be a string"},
		{"image_info object", `{"image_info":{}}`, 400, codeInvalidField, "image_info", "must be an array"},
		{"image_info item id", `{"image_info":[{"id":"7"}]}`, 400, codeInvalidField, "image_info[0].id", "int64"},
		{"query_info array", `{"query_info":[]}`, 400, codeInvalidField, "query_info", "must be an object"},
		{"skip_scanned_within bool", `{"skip_scanned_within":true}`, 400, codeInvalidField, "skip_scanned_within", "duration"},
		{"skip_scanned_within garbage", `{"skip_scanned_within":"soon"}`, 400, codeInvalidField, "skip_scanned_within", "duration"},

		// out of range
		{"rate_limit 1001", `{"rate_limit":1001}`, 400, codeInvalidField, "rate_limit", "outside 0..1000"},
		{"rate_limit 1000", `{"rate_limit":1000,"is_all":true}`, 202, "", "", ""},
		{"rate_limit -1", `{"rate_limit":-1}`, 400, codeInvalidField, "rate_limit", "outside 0..1000"},
		{"scan_scope beyond int32", `{"scan_scope":2147483648}`, 400, codeInvalidField, "scan_scope", "int32"},
		{"scan_scope -1", `{"scan_scope":-1}`, 400, codeInvalidField, "scan_scope", "negative"},
		{"batch_size -1", `{"batch_size":-1}`, 400, codeInvalidField, "batch_size", "must be >= 0"},
		{"batch_size 1", `{"batch_size":1,"is_all":true}`, 202, "", "", ""},
		{"pod_id 65", `{"query_info":{"pod_id":"` + long(65) + `"}}`, 400, codeInvalidField, "query_info.pod_id", "exceeds 64"},
		{"pod_id 64", `{"query_info":{"pod_id":"` + long(64) + `"}}`, 202, "", "", ""},
		{"region 129", `{"region":"` + long(129) + `"}`, 400, codeInvalidField, "region", "exceeds 128"},
		{"region 128", `{"region":"` + long(128) + `","is_all":true}`, 202, "", "", ""},
		{"enterprise_project_id 257", `{"enterprise_project_id":"` + long(257) + `"}`, 400, codeInvalidField, "enterprise_project_id", "exceeds 256"},
		{"image_size -1", `{"query_info":{"image_size":-1}}`, 400, codeInvalidField, "query_info.image_size", "negative"},
		{"skip_scanned_within negative", `{"skip_scanned_within":"-1h"}`, 400, codeInvalidField, "skip_scanned_within", "negative"},
		{"skip_scanned_within seconds", `{"skip_scanned_within":3600,"is_all":true}`, 202, "", "", ""},

		// bad enumerations
		{"global_image_type", `{"global_image_type":"cloud"}`, 400, codeInvalidField, "global_image_type", "not one of"},
		{"global_image_type local_image", `{"global_image_type":"local_image","is_all":true}`, 202, "", "", ""},
		{"priority", `{"priority":"urgent"}`, 400, codeInvalidField, "priority", "critical, default, bulk"},
		{"priority critical", `{"priority":"critical","is_all":true}`, 202, "", "", ""},
		{"registry_type", `{"image_info":[{"registry_type":"Docker"}]}`, 400, codeInvalidField, "image_info[0].registry_type", "not one of"},
		{"scan_status", `{"query_info":{"scan_status":"done"}}`, 400, codeInvalidField, "query_info.scan_status", "not one of"},
		{"local_image_type", `{"query_info":{"local_image_type":"x"}}`, 400, codeInvalidField, "query_info.local_image_type", "not one of"},
		{"target", `{"target":"other","is_all":true}`, 400, codeInvalidField, "target", "not a configured target"},
		{"target default", `{"target":"default","is_all":true}`, 202, "", "", ""},
		{"forward with dry_run", `{"forward":true,"dry_run":true}`, 400, codeInvalidField, "dry_run", "cannot be dry-run"},
		{"forward", `{"forward":true,"is_all":true}`, 202, "", "", ""},
		{"nulls are not sent", `{"rate_limit":null,"query_info":null,"is_all":true}`, 202, "", "", ""},

		// a query resolved through a list API is held to that API's limits
		// when it is made, not when the run lists
		{"image_version 65, registry list", `{"query_info":{"image_version":"` + long(65) + `"}}`, 400, codeInvalidField, "query_info.image_version", "ListRegistryImages"},
		{"image_version 64, registry list", `{"query_info":{"image_version":"` + long(64) + `"}}`, 202, "", "", ""},
		{"namespace 129, registry list", `{"query_info":{"namespace":"` + long(129) + `"}}`, 400, codeInvalidField, "query_info.namespace", "exceeds 128"},
		{"image_name 129, registry list", `{"query_info":{"image_name":"` + long(129) + `"}}`, 400, codeInvalidField, "query_info.image_name", "exceeds 128"},
		{"image_size beyond the registry list", `{"query_info":{"image_size":2147483548}}`, 400, codeInvalidField, "query_info.image_size", "2147483547"},
		{"image_size at the registry list's max", `{"query_info":{"image_size":2147483547}}`, 202, "", "", ""},
		{"pod_name 64, local list", `{"global_image_type":"local","query_info":{"pod_name":"` + long(64) + `"}}`, 400, codeInvalidField, "query_info.pod_name", "ListImageLocal"},
		{"host_name 65, local list", `{"global_image_type":"local","query_info":{"host_name":"` + long(65) + `"}}`, 400, codeInvalidField, "query_info.host_name", "exceeds 64"},
		{"image_version 129, local list", `{"global_image_type":"local","query_info":{"image_name":"a","image_version":"` + long(129) + `"}}`, 400, codeInvalidField, "query_info.image_version", "exceeds 128"},
		{"private_ip not IPv4, local list", `{"global_image_type":"local","query_info":{"private_ip":"fe80::1"}}`, 400, codeInvalidField, "query_info.private_ip", "IPv4"},
		{"scan time start after end", `{"query_info":{"start_latest_scan_time":5,"end_latest_scan_time":4}}`, 400, codeInvalidField, "query_info.start_latest_scan_time", "after"},
		{"pod_name 64, forwarded", `{"forward":true,"global_image_type":"local","query_info":{"pod_name":"` + long(64) + `"}}`, 202, "", "", ""},
		// fields no list can evaluate: forwarded, refused when expansion
		// is asked for, dropped only with widen
		{"host_name on registry images", `{"query_info":{"host_name":"h"}}`, 202, "", "", ""},
		{"host_name, expand", `{"query_info":{"host_name":"h"},"expand":true}`, 400, codeInvalidField, "query_info.host_name", "widen"},
		{"cluster_id, dry run", `{"query_info":{"cluster_id":"c"},"dry_run":true}`, 400, codeInvalidField, "query_info.cluster_id", "cannot be evaluated"},
		{"host_name, widen", `{"query_info":{"host_name":"h"},"widen":true}`, 202, "", "", ""},
		{"expand with forward", `{"is_all":true,"expand":true,"forward":true}`, 400, codeInvalidField, "expand", "forward"},
		{"widen with forward", `{"query_info":{"host_name":"h"},"widen":true,"forward":true}`, 400, codeInvalidField, "widen", "forward"},
	}
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{}))
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: tc.body, header: auth})
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				if tc.code == "" {
					createdRun(t, r, http.StatusAccepted)
					return
				}
				ae := r.apiErr(t)
				if ae.Code != tc.code || ae.Field != tc.field || !strings.Contains(ae.Message, tc.msg) {
					t.Errorf("error %+v, want %s field %q message containing %q", ae, tc.code, tc.field, tc.msg)
				}
			})
		}
		accepted := 0
		for _, tc := range cases {
			if tc.code == "" {
				accepted++
			}
		}
		if rs, _ := e.store.List(t.Context(), 100, ""); len(rs) != accepted {
			t.Errorf("%d runs stored, want one per accepted case (%d): a refused request must store nothing", len(rs), accepted)
		}
	})
}

// Authentication, body limits, media types, unknown routes and runs,
// methods: status and error body of each.
func TestV1RequestErrors(t *testing.T) {
	t.Parallel()
	const good = `{"is_all":true}`
	basic := func(user, pass string) map[string]string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return map[string]string{"Authorization": r.Header.Get("Authorization"), "Content-Type": "application/json"}
	}
	cases := []struct {
		name   string
		c      call
		status int
		code   string // "" = success
		msg    string // substring
	}{
		// authentication
		{"no credentials", call{method: "POST", path: "/api/v1/runs", body: good, header: jsonCT}, 401, codeUnauthorized, "authentication required"},
		{"wrong bearer", call{method: "POST", path: "/api/v1/runs", body: good, header: bearer("wrong-token")}, 401, codeUnauthorized, "invalid credentials"},
		{"wrong X-Auth-Token", call{method: "POST", path: "/api/v1/runs", body: good, header: map[string]string{"X-Auth-Token": "wrong-token", "Content-Type": "application/json"}}, 401, codeUnauthorized, "invalid credentials"},
		{"wrong basic password", call{method: "POST", path: "/api/v1/runs", body: good, header: basic("u", "wrong-token")}, 401, codeUnauthorized, "invalid credentials"},
		{"token prefix", call{method: "POST", path: "/api/v1/runs", body: good, header: bearer(testToken[:5])}, 401, codeUnauthorized, "invalid credentials"},
		{"unsupported scheme", call{method: "POST", path: "/api/v1/runs", body: good, header: map[string]string{"Authorization": "Token " + testToken, "Content-Type": "application/json"}}, 401, codeUnauthorized, "unsupported"},
		{"wrong secret key", call{method: "POST", path: "/api/v1/runs", body: good, header: jsonCT, sign: &keys{testAK, "wrong-sk"}}, 401, codeUnauthorized, "invalid AK/SK signature"},
		{"unknown access key", call{method: "POST", path: "/api/v1/runs", body: good, header: jsonCT, sign: &keys{"NOPE", testSK}}, 401, codeUnauthorized, "unknown access key"},
		{"clock skew", call{method: "POST", path: "/api/v1/runs", body: good, header: jsonCT, sign: goodKeys, signAt: time.Now().Add(time.Hour)}, 401, codeUnauthorized, "X-Sdk-Date"},
		{"missing auth on GET", call{path: "/api/v1/runs"}, 401, codeUnauthorized, "authentication required"},
		{"missing auth on schedules", call{path: "/api/v1/schedules"}, 401, codeUnauthorized, "authentication required"},
		{"bearer", call{method: "POST", path: "/api/v1/runs", body: good, header: bearer(testToken)}, 202, "", ""},
		{"X-Auth-Token", call{method: "POST", path: "/api/v1/runs", body: good, header: map[string]string{"X-Auth-Token": testToken, "Content-Type": "application/json"}}, 202, "", ""},
		{"basic with token", call{method: "POST", path: "/api/v1/runs", body: good, header: basic("anyone", testToken)}, 202, "", ""},
		{"basic with AK/SK", call{method: "POST", path: "/api/v1/runs", body: good, header: basic(testAK, testSK)}, 202, "", ""},
		{"AK/SK signature", call{method: "POST", path: "/api/v1/runs", body: good, header: jsonCT, sign: goodKeys}, 202, "", ""},

		// body size and media type
		{"oversized", call{method: "POST", path: "/api/v1/runs", body: `{"image_info":[` + strings.Repeat(`{"image_name":"a"},`, 300) + `{}]}`, header: auth}, 413, codeBodyTooLarge, "exceeds 4096 bytes"},
		{"oversized signed", call{method: "POST", path: "/api/v1/runs", body: `{"image_info":[` + strings.Repeat(`{"image_name":"a"},`, 300) + `{}]}`, header: jsonCT, sign: goodKeys}, 413, codeBodyTooLarge, "exceeds 4096 bytes"},
		{"text/plain", call{method: "POST", path: "/api/v1/runs", body: good, header: map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "text/plain"}}, 415, codeUnsupportedMediaType, "application/json"},
		{"no content type", call{method: "POST", path: "/api/v1/runs", body: good, header: map[string]string{"Authorization": "Bearer " + testToken}}, 415, codeUnsupportedMediaType, "application/json"},
		{"json with charset", call{method: "POST", path: "/api/v1/runs", body: good, header: map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json; charset=utf-8"}}, 202, "", ""},
		{"cancel with a text body", call{method: "POST", path: "/api/v1/runs/x/cancel", body: "now", header: map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "text/plain"}}, 415, codeUnsupportedMediaType, ""},

		// unknown runs and routes
		{"unknown run", call{path: "/api/v1/runs/20250101T000000Z-0000000000", header: auth}, 404, codeRunNotFound, "not found"},
		{"cancel unknown run", call{method: "POST", path: "/api/v1/runs/20250101T000000Z-0000000000/cancel", header: auth}, 404, codeRunNotFound, "not found"},
		{"run id with braces", call{path: "/api/v1/runs/%7Bx%7D", header: auth}, 404, codeRunNotFound, "not found"},
		{"unknown route", call{path: "/api/v1/nothing", header: auth}, 404, codeNotFound, "no route"},
		{"unknown version", call{path: "/api/v2/runs", header: auth}, 404, codeNotFound, "no route"},

		// methods
		{"DELETE runs", call{method: "DELETE", path: "/api/v1/runs", header: auth}, 405, codeMethodNotAllowed, "GET, HEAD, POST"},
		{"GET cancel", call{path: "/api/v1/runs/x/cancel", header: auth}, 405, codeMethodNotAllowed, "POST"},
		{"PUT run", call{method: "PUT", path: "/api/v1/runs/x", header: auth}, 405, codeMethodNotAllowed, "GET"},
		{"GET images", call{path: "/api/v1/images", header: auth}, 405, codeMethodNotAllowed, "POST"},
		{"POST schedules", call{method: "POST", path: "/api/v1/schedules", header: auth}, 405, codeMethodNotAllowed, "GET"},
		{"POST healthz", call{method: "POST", path: "/healthz"}, 405, codeMethodNotAllowed, "GET"},

		// list query
		{"list bad state", call{path: "/api/v1/runs?state=done", header: auth}, 400, codeInvalidQuery, "not one of"},
		{"list limit 0", call{path: "/api/v1/runs?limit=0", header: auth}, 400, codeInvalidQuery, "limit must be an integer in 1..500"},
		{"list limit 501", call{path: "/api/v1/runs?limit=501", header: auth}, 400, codeInvalidQuery, "limit must be an integer in 1..500"},
		{"list limit x", call{path: "/api/v1/runs?limit=x", header: auth}, 400, codeInvalidQuery, "1..500"},
		{"list limit 500", call{path: "/api/v1/runs?limit=500&state=failed", header: auth}, 200, "", ""},
		{"list bad cursor", call{path: "/api/v1/runs?cursor=nope", header: auth}, 400, codeInvalidQuery, "cursor"},
		{"list forged cursor", call{path: "/api/v1/runs?cursor=MTIzOg", header: auth}, 400, codeInvalidQuery, "cursor"},

		// browsers from another origin cannot drive the API
		{"cross-origin POST", call{method: "POST", path: "/api/v1/runs", body: good, header: map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}}, 403, codeForbidden, "cross-origin"},
	}
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{MaxBodyBytes: 4096}))
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do(t, tc.c)
				r.noSecrets(t, "wrong-token", "wrong-sk")
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				if tc.code == "" {
					return
				}
				ae := r.apiErr(t)
				if ae.Code != tc.code || !strings.Contains(ae.Message, tc.msg) {
					t.Errorf("error %+v, want %s with %q", ae, tc.code, tc.msg)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				switch tc.status {
				case 401:
					if r.header.Get("WWW-Authenticate") == "" {
						t.Error("401 without WWW-Authenticate")
					}
				case 405:
					if allow := r.header.Get("Allow"); !strings.Contains(allow, tc.msg) {
						t.Errorf("Allow %q, want %s in it", allow, tc.msg)
					}
				}
			})
		}
	})
}

// Without a token or AK/SK the API is open (demo mode).
func TestV1OpenWithoutCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), Options{})
	createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: jsonCT}), 202)
	if r := e.do(t, call{path: "/api/v1/runs"}); r.status != 200 {
		t.Errorf("list: %d %s", r.status, r.body)
	}
}

// When a run cannot be enqueued (its queue's Redis is away), the answer is
// a 500 without the cause, and the Idempotency-Key is freed for the retry.
func TestStartFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{}))
	gone := redistest.Mini(t)
	addr := gone.Mini.Addr()
	gone.Mini.Close()
	good := e.starter.Client
	broken := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	t.Cleanup(func() { _ = broken.Close() })
	e.starter.Client = broken

	h := bearer(testToken)
	h["Idempotency-Key"] = "retry-me"
	r := e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: h})
	if ae := r.apiErr(t); r.status != 500 || ae.Code != codeInternal || strings.Contains(ae.Message, addr) {
		t.Errorf("%d %+v", r.status, ae)
	}
	r = e.do(t, call{method: "POST", path: createPath, body: `{"is_all":true}`, header: map[string]string{"X-Auth-Token": testToken, "Content-Type": "application/json"}})
	if he := r.hssErr(t); r.status != 500 || he.ErrorCode != "HSS.1000" || he.ErrorMsg != msgSystemError {
		t.Errorf("hss endpoint: %d %+v", r.status, he)
	}
	// A signed request's signature is not left claimed by a run that did
	// not start.
	r = e.do(t, call{method: "POST", path: createPath, body: `{"is_all":true}`, sign: goodKeys, header: jsonCT})
	if he := r.hssErr(t); r.status != 500 || he.ErrorCode != "HSS.1000" {
		t.Errorf("hss endpoint, signed: %d %+v", r.status, he)
	}
	if keys := e.b.Client.Keys(t.Context(), "scanq:idem:*").Val(); len(keys) != 0 {
		t.Errorf("idempotency keys %v left behind by a failed start", keys)
	}

	e.starter.Client = good
	createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: h}), http.StatusAccepted)
}

// TestReadBodyLimit: a body of exactly the limit is read whole; one byte
// more is 413.
func TestReadBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 64
	for _, tc := range []struct {
		size       int
		wantStatus int // 0: read
	}{{limit - 1, 0}, {limit, 0}, {limit + 1, http.StatusRequestEntityTooLarge}, {10 * limit, http.StatusRequestEntityTooLarge}} {
		body := strings.Repeat("x", tc.size)
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		b, rerr := readBody(httptest.NewRecorder(), r, limit)
		switch {
		case tc.wantStatus == 0 && (rerr != nil || string(b) != body):
			t.Errorf("%d-byte body: read %d bytes, %+v; want it whole", tc.size, len(b), rerr)
		case tc.wantStatus != 0 && (rerr == nil || rerr.status != tc.wantStatus):
			t.Errorf("%d-byte body: %+v, want status %d", tc.size, rerr, tc.wantStatus)
		}
	}
}

// The API shows how a run's query was resolved: what the list filters,
// what scanq applies, what no list evaluates, and whether it was widened.
func TestRunShowsItsResolution(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{}))
	body := `{"is_all":true,"query_info":{"host_name":"web","scan_status":"download_failed","namespace":"team"},"widen":true}`
	id := createdRun(t, e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: body, header: auth}), http.StatusAccepted)
	r := e.do(t, call{method: http.MethodGet, path: "/api/v1/runs/" + id, header: auth})
	var got struct {
		Source     jobs.Source      `json:"source"`
		Options    jobs.Options     `json:"options"`
		Resolution *jobs.Resolution `json:"resolution"`
	}
	r.decode(t, &got)
	want := &jobs.Resolution{ListAPI: "ListRegistryImages", ListFilters: []string{"namespace"}, ScanqFilters: []string{"scan_status"},
		Unlisted: []string{"host_name"}, Widened: true}
	if got.Resolution != nil {
		want.Note = got.Resolution.Note
	}
	if got.Source != jobs.SourceQuery || !got.Options.Widen || !reflect.DeepEqual(got.Resolution, want) ||
		!strings.Contains(want.Note, "narrows all") || !strings.Contains(want.Note, "widened") {
		t.Fatalf("source %s, options %+v, resolution %+v", got.Source, got.Options, got.Resolution)
	}
}
