package interop

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/invoker/retry"
	hssv5 "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/hss/v5"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/hss/v5/model"

	"github.com/scanq/scanq/internal/api"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// The official SDK as a client of scanq's HSS-compatible endpoint
// (POST /v5/{project_id}/image/image-scan/tasks): pointed at scanq instead of
// HSS, unchanged, it starts runs, and gets HSS's own answers when it is
// wrong.

// scanqAPI is scanq's API handler on a miniredis, with a real run store,
// starter and asynq client, served over HTTP.
type scanqAPI struct {
	url   string
	store *runs.Store
	insp  *asynq.Inspector
}

func newAPI(t *testing.T, now func() time.Time) *scanqAPI {
	t.Helper()
	b := redistest.Mini(t)
	store := runs.New(b.Client, runs.Options{})
	client := asynq.NewClientFromRedisClient(b.Client)
	t.Cleanup(func() { _ = client.Close() })
	h, err := api.New(api.Options{
		Starter:  &runs.Starter{Store: store, Client: client, Targets: []runs.Target{{Name: "default", MaxBatchSize: 1000}}, BatchSize: 100},
		Redis:    b.Client,
		AK:       testAK,
		SK:       testSK,
		Token:    "api-token-not-used-here", // token and AK/SK both configured, as in production
		Projects: []api.Project{{ProjectID: testProject, Target: "default"}},
		Now:      now,
	})
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		_ = h.Close()
	})
	return &scanqAPI{url: srv.URL, store: store, insp: asynq.NewInspectorFromRedisClient(b.Client)}
}

func (a *scanqAPI) runs(t *testing.T) []*jobs.Run {
	t.Helper()
	rs, err := a.store.List(context.Background(), 100, "")
	if err != nil {
		t.Fatalf("listing runs: %v", err)
	}
	return rs
}

// createWithRunID is CreateManualImageScanTask through the SDK's own client,
// request definition and signing, with a response type that also reads the
// run_id scanq adds (the SDK's CreateManualImageScanTaskResponse has no
// fields, so it drops it).
type createWithRunID struct {
	RunID          *string `json:"run_id,omitempty"`
	HttpStatusCode int     `json:"-"`
}

func createReadingRunID(c *hssv5.HssClient, req *model.CreateManualImageScanTaskRequest) (*createWithRunID, error) {
	def := hssv5.GenReqDefForCreateManualImageScanTask()
	def.Response = new(createWithRunID)
	resp, err := c.HcClient.Sync(req, def)
	if err != nil {
		return nil, err
	}
	return resp.(*createWithRunID), nil
}

func TestAPICreateWithSDK(t *testing.T) {
	t.Parallel()
	infos := []model.CreateManualImageScanTaskReqInfoImageInfo{
		{Id: new(int64(11)), ImageId: new("sha256:aa"), ImageDigest: new("sha256:bb"), RegistryId: new("reg-1"),
			RegistryName: new("SWR"), ImageName: new("nginx<&>"), ImageVersion: new("1.27"), Namespace: new("team-a"),
			InstanceId: new("inst-1"), InstanceUrl: new("https://swr.example"), RegistryType: new("SwrEnterprise")},
		{ImageName: new("redis"), ImageVersion: new("7"), Namespace: new("team-b"), RegistryType: new("SwrPrivate")},
	}
	tests := []struct {
		name   string
		req    model.CreateManualImageScanTaskRequest
		source jobs.Source
	}{
		{"image_info, every parameter", model.CreateManualImageScanTaskRequest{
			Region: new("cn-north-4"), EnterpriseProjectId: new("0"), GlobalImageType: new("registry"),
			Body: &model.CreateManualImageScanTaskReqInfo{ScanScope: new(int32(0x000f0000)), RateLimit: new(int32(0)), ImageInfo: &infos},
		}, jobs.SourceImages},
		{"is_all at rate_limit 1000", model.CreateManualImageScanTaskRequest{
			Body: &model.CreateManualImageScanTaskReqInfo{IsAll: new(true), RateLimit: new(int32(1000))},
		}, jobs.SourceAll},
		{"query_info on local images, spelled local_image", model.CreateManualImageScanTaskRequest{
			GlobalImageType: new("local_image"),
			Body:            &model.CreateManualImageScanTaskReqInfo{IsAll: new(false), QueryInfo: fullQueryInfo()},
		}, jobs.SourceForward}, // cluster_id, namespace, image_type: no list evaluates them on local images
		{"query_info that ListImageLocal can evaluate", model.CreateManualImageScanTaskRequest{
			GlobalImageType: new("local"),
			Body:            &model.CreateManualImageScanTaskReqInfo{QueryInfo: &model.CreateManualImageScanTaskReqInfoQueryInfo{ImageName: new("nginx"), ScanStatus: new("download_failed")}},
		}, jobs.SourceQuery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAPI(t, nil)
			c, rec := newSDK(t, a.url, testAK, testSK)

			// The SDK's own call and response type.
			resp, err := c.CreateManualImageScanTask(&tt.req)
			if err != nil {
				t.Fatalf("CreateManualImageScanTask: %v", err)
			}
			if resp.HttpStatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.HttpStatusCode)
			}
			rs := a.runs(t)
			if len(rs) != 1 {
				t.Fatalf("%d runs after one create, want 1", len(rs))
			}
			r := rs[0]

			// The run holds the request as the SDK sent it.
			sdkJSON, err := json.Marshal(tt.req.Body)
			if err != nil {
				t.Fatal(err)
			}
			want := jobs.ScanRequest{
				GlobalImageType:     deref(tt.req.GlobalImageType),
				EnterpriseProjectID: deref(tt.req.EnterpriseProjectId),
				Region:              deref(tt.req.Region),
			}
			if err := json.Unmarshal(sdkJSON, &want.ScanTaskBody); err != nil {
				t.Fatal(err)
			}
			// The record keeps image_info apart, as a list of its own.
			images, err := a.store.Images(context.Background(), r.ID, 0, r.ImageCount)
			if err != nil {
				t.Fatal(err)
			}
			req := r.Request
			req.ImageInfo = images
			if !reflect.DeepEqual(req, want) {
				got, _ := json.Marshal(req)
				wantJSON, _ := json.Marshal(want)
				t.Errorf("run request\n got %s\nwant %s\n(SDK sent %s)", got, wantJSON, rec.Last(t).Body)
			}
			if r.Trigger.Kind != api.TriggerHSSAPI || r.Source != tt.source || r.State != jobs.StatePending || r.Queue != jobs.QueueCritical {
				t.Errorf("run trigger %q source %q state %q queue %q, want %q %q %q %q",
					r.Trigger.Kind, r.Source, r.State, r.Queue, api.TriggerHSSAPI, tt.source, jobs.StatePending, jobs.QueueCritical)
			}
			// ... and was handed to the workers.
			if _, err := a.insp.GetTaskInfo(jobs.RunTaskQueue(r.Target), jobs.RunTaskID(r.ID)); err != nil {
				t.Errorf("run task %s not enqueued on %s: %v", jobs.RunTaskID(r.ID), jobs.RunTaskQueue(r.Target), err)
			}

			// The same call read with a response type that knows run_id. Sent
			// with the first call's X-Sdk-Date (the SDK signs with a date
			// already on the request), it is the same signed request, a repeat:
			// the first run's id comes back and nothing new starts.
			date := rec.Last(t).Header.Get("X-Sdk-Date")
			c.HcClient.PreInvoke(map[string]string{"X-Sdk-Date": date})
			repeat, err := createReadingRunID(c, &tt.req)
			if err != nil {
				t.Fatalf("repeated create: %v", err)
			}
			if repeat.HttpStatusCode != http.StatusOK || repeat.RunID == nil || *repeat.RunID != r.ID {
				t.Fatalf("repeated create: status %d run_id %v, want 200 and the first run %s", repeat.HttpStatusCode, repeat.RunID, r.ID)
			}
			if rs := a.runs(t); len(rs) != 1 {
				t.Fatalf("%d runs after a repeated create, want 1", len(rs))
			}

			// Signed a second later it is a new request: the id comes back
			// and names a new run.
			signedAt, err := time.Parse("20060102T150405Z", date)
			if err != nil {
				t.Fatal(err)
			}
			c.HcClient.PreInvoke(map[string]string{"X-Sdk-Date": signedAt.Add(time.Second).Format("20060102T150405Z")})
			withID, err := createReadingRunID(c, &tt.req)
			if err != nil {
				t.Fatalf("second create: %v", err)
			}
			if withID.HttpStatusCode != http.StatusOK || withID.RunID == nil {
				t.Fatalf("second create: status %d run_id %v", withID.HttpStatusCode, withID.RunID)
			}
			second, err := a.store.Get(context.Background(), *withID.RunID)
			if err != nil {
				t.Fatalf("run %s from the response: %v", *withID.RunID, err)
			}
			if second.ID == r.ID || !reflect.DeepEqual(second.Request, r.Request) {
				t.Errorf("second run %s (first %s) request %+v, want a new run of the same request", second.ID, r.ID, second.Request)
			}
		})
	}
}

// The SDK's own retry (invoker WithRetry) when an answer is lost: the
// first attempt reaches scanq and starts a run, and the client sees a 502
// from a proxy in between. The retry succeeds; signed with the first
// attempt's date (as a retry within the same second is) it is answered
// with the first run and starts nothing; signed anew a second later it is
// a new request, and starts a second run.
func TestAPIRetryAfterLostAnswer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		pinDate  bool
		wantRuns int
	}{{"same signature", true, 1}, {"signed anew", false, 0}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAPI(t, nil)
			target, err := url.Parse(a.url)
			if err != nil {
				t.Fatal(err)
			}
			var lost atomic.Bool
			proxy := httputil.NewSingleHostReverseProxy(target)
			proxy.ModifyResponse = func(*http.Response) error {
				if lost.CompareAndSwap(false, true) {
					return errors.New("answer lost")
				}
				return nil
			}
			proxy.ErrorLog = log.New(io.Discard, "", 0)
			ps := httptest.NewServer(proxy)
			t.Cleanup(ps.Close)

			c, rec := newSDK(t, ps.URL, testAK, testSK)
			inv := c.CreateManualImageScanTaskInvoker(&model.CreateManualImageScanTaskRequest{
				Body: &model.CreateManualImageScanTaskReqInfo{IsAll: new(true)},
			})
			inv.WithRetry(2, func(_ interface{}, err error) bool { return err != nil }, &retry.None{})
			if tt.pinDate {
				inv.AddHeader(map[string]string{"X-Sdk-Date": time.Now().UTC().Format("20060102T150405Z")})
			}
			resp, err := inv.Invoke()
			if err != nil {
				t.Fatalf("CreateManualImageScanTask with retry: %v", err)
			}
			if resp.HttpStatusCode != http.StatusOK || len(rec.Sent()) != 2 {
				t.Fatalf("status %d after %d attempts, want 200 after 2", resp.HttpStatusCode, len(rec.Sent()))
			}
			sent := rec.Sent()
			same := sent[0].Header.Get("Authorization") == sent[1].Header.Get("Authorization")
			want := tt.wantRuns
			if want == 0 { // signed anew: one run per distinct signature
				want = 2
				if same {
					want = 1 // both attempts fell in one second
				}
			}
			if rs := a.runs(t); len(rs) != want {
				t.Errorf("%d runs, want %d (attempts signed alike: %v)", len(rs), want, same)
			}
		})
	}
}

// TestAPIRejectsLikeHSS sends the same bad requests through the SDK to the
// emulator and to scanq's endpoint: scanq must answer exactly as the emulator
// (status, error_code, error_msg), with the expected code and naming the
// field, and start no run.
func TestAPIRejectsLikeHSS(t *testing.T) {
	t.Parallel()
	body := func(b model.CreateManualImageScanTaskReqInfo) func(c *hssv5.HssClient) error {
		return func(c *hssv5.HssClient) error {
			_, err := c.CreateManualImageScanTask(&model.CreateManualImageScanTaskRequest{Body: &b})
			return err
		}
	}
	raw := func(b string) func(c *hssv5.HssClient) error {
		return func(c *hssv5.HssClient) error { return createRaw(c, b) }
	}
	tests := []struct {
		name   string
		ak, sk string
		call   func(c *hssv5.HssClient) error
		status int
		code   string
		field  string
	}{
		{name: "rate_limit 1001", call: body(model.CreateManualImageScanTaskReqInfo{IsAll: new(true), RateLimit: new(int32(1001))}),
			status: 400, code: "HSS.0001", field: "rate_limit"},
		{name: "rate_limit -1", call: body(model.CreateManualImageScanTaskReqInfo{IsAll: new(true), RateLimit: new(int32(-1))}),
			status: 400, code: "HSS.0001", field: "rate_limit"},
		{name: "rate_limit a string", call: raw(`{"is_all":true,"rate_limit":"fast"}`), status: 400, code: "HSS.0001", field: "rate_limit"},
		{name: "is_all a string", call: raw(`{"is_all":"true"}`), status: 400, code: "HSS.0001", field: "is_all"},
		{name: "image_info an object", call: raw(`{"image_info":{"image_name":"nginx"}}`), status: 400, code: "HSS.0001", field: "image_info"},
		{name: "scan_scope beyond int32", call: raw(`{"is_all":true,"scan_scope":2147483648}`), status: 400, code: "HSS.0001", field: "scan_scope"},
		{name: "registry_type not in the enum", call: body(model.CreateManualImageScanTaskReqInfo{
			ImageInfo: &[]model.CreateManualImageScanTaskReqInfoImageInfo{{ImageName: new("nginx"), RegistryType: new("Quay")}}}),
			status: 400, code: "HSS.0001", field: "registry_type"},
		{name: "global_image_type not in the enum", call: func(c *hssv5.HssClient) error {
			_, err := c.CreateManualImageScanTask(&model.CreateManualImageScanTaskRequest{
				GlobalImageType: new("cloud"), Body: &model.CreateManualImageScanTaskReqInfo{IsAll: new(true)}})
			return err
		}, status: 400, code: "HSS.0001", field: "global_image_type"},
		{name: "region longer than 128", call: func(c *hssv5.HssClient) error {
			_, err := c.CreateManualImageScanTask(&model.CreateManualImageScanTaskRequest{
				Region: new(strings.Repeat("r", 129)), Body: &model.CreateManualImageScanTaskReqInfo{IsAll: new(true)}})
			return err
		}, status: 400, code: "HSS.0001", field: "region"},
		{name: "malformed JSON", call: raw(`{"is_all":`), status: 400, code: "HSS.0002"},
		{name: "two JSON objects", call: raw(`{"is_all":true}{}`), status: 400, code: "HSS.0002"},
		{name: "no body", call: func(c *hssv5.HssClient) error {
			_, err := c.CreateManualImageScanTask(&model.CreateManualImageScanTaskRequest{})
			return err
		}, status: 400, code: "HSS.0002"},
		{name: "body null", call: raw(`null`), status: 400, code: "HSS.0002"},
		{name: "body over 12 MB", call: raw(`{"is_all":true,"pad":"` + strings.Repeat("a", 12<<20) + `"}`), status: 413, code: "APIGW.0201"},
		{name: "wrong SK", sk: "not-the-secret", call: body(model.CreateManualImageScanTaskReqInfo{IsAll: new(true)}),
			status: 401, code: "APIGW.0301"},
		{name: "unknown AK", ak: "NOSUCHAK", call: body(model.CreateManualImageScanTaskReqInfo{IsAll: new(true)}),
			status: 401, code: "APIGW.0301"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ak, sk := testAK, testSK
			if tt.ak != "" {
				ak = tt.ak
			}
			if tt.sk != "" {
				sk = tt.sk
			}
			emu := newEmulator(t, emulator.Options{Images: 5})
			ec, _ := newSDK(t, emu.URL, ak, sk)
			hssErr := sdkError(t, tt.call(ec), tt.status, tt.code)

			a := newAPI(t, nil)
			c, _ := newSDK(t, a.url, ak, sk)
			se := sdkError(t, tt.call(c), tt.status, tt.code)
			if se.StatusCode != hssErr.StatusCode || se.ErrorCode != hssErr.ErrorCode || se.ErrorMessage != hssErr.ErrorMessage {
				t.Errorf("scanq answers %d %s %q\n   HSS answers %d %s %q",
					se.StatusCode, se.ErrorCode, se.ErrorMessage, hssErr.StatusCode, hssErr.ErrorCode, hssErr.ErrorMessage)
			}
			if !requestIDRe.MatchString(se.RequestId) {
				t.Errorf("X-Request-Id %q is not the gateway's 32 hex digits", se.RequestId)
			}
			if tt.field != "" && !strings.Contains(se.ErrorMessage, tt.field) {
				t.Errorf("error_msg %q does not name %s", se.ErrorMessage, tt.field)
			}
			if tt.status == http.StatusUnauthorized && se.ErrorMessage == "" {
				t.Error("401 without the gateway's message")
			}
			assertNoSecret(t, "error", se.Error())
			if rs := a.runs(t); len(rs) != 0 {
				t.Errorf("%d runs started by a refused request", len(rs))
			}
		})
	}
}

// An HSS operation scanq does not implement gets the gateway's 404, in
// HSS's error format, so the SDK reports it as HSS would.
func TestAPIUnknownOperation(t *testing.T) {
	t.Parallel()
	a := newAPI(t, nil)
	c, _ := newSDK(t, a.url, testAK, testSK)
	_, err := c.ListRegistryImages(&model.ListRegistryImagesRequest{})
	se := sdkError(t, err, http.StatusNotFound, "APIGW.0101")
	if !requestIDRe.MatchString(se.RequestId) {
		t.Errorf("X-Request-Id %q", se.RequestId)
	}
}

// A wrong key gets the gateway's exact message, as the real HSS would send it.
func TestAPIWrongKeyMessage(t *testing.T) {
	t.Parallel()
	a := newAPI(t, nil)
	c, _ := newSDK(t, a.url, testAK, "not-the-secret")
	_, err := c.CreateManualImageScanTask(&model.CreateManualImageScanTaskRequest{
		Body: &model.CreateManualImageScanTaskReqInfo{IsAll: new(true)},
	})
	se := sdkError(t, err, http.StatusUnauthorized, "APIGW.0301")
	if se.ErrorMessage != msgBadSignature {
		t.Errorf("error_msg %q, want %q", se.ErrorMessage, msgBadSignature)
	}
}

// The endpoint checks the SDK's signature against its own clock, with HSS's
// 15 minutes of tolerance.
func TestAPIClockSkew(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		skew time.Duration
		ok   bool
	}{{14 * time.Minute, true}, {-16 * time.Minute, false}, {16 * time.Minute, false}} {
		t.Run(tt.skew.String(), func(t *testing.T) {
			t.Parallel()
			a := newAPI(t, func() time.Time { return time.Now().Add(tt.skew) })
			c, _ := newSDK(t, a.url, testAK, testSK)
			_, err := c.CreateManualImageScanTask(&model.CreateManualImageScanTaskRequest{
				Body: &model.CreateManualImageScanTaskReqInfo{IsAll: new(true)},
			})
			if tt.ok {
				if err != nil {
					t.Fatalf("clock %s off: %v", tt.skew, err)
				}
				return
			}
			se := sdkError(t, err, http.StatusUnauthorized, "APIGW.0301")
			if !strings.Contains(se.ErrorMessage, "signature expired") {
				t.Errorf("error_msg %q, want the gateway's signature expired", se.ErrorMessage)
			}
			if rs := a.runs(t); len(rs) != 0 {
				t.Errorf("%d runs started by an expired signature", len(rs))
			}
		})
	}
}

// The SDK's other project gets HSS.0010 from both, and scanq's own client
// (which HSS accepts) can call scanq too.
func TestAPIProjectAndScanqClient(t *testing.T) {
	t.Parallel()
	a := newAPI(t, nil)
	emu := newEmulator(t, emulator.Options{Images: 5})
	for _, url := range []string{emu.URL, a.url} {
		c, err := hss.NewClient(hss.Config{Endpoint: url, ProjectID: "another-project",
			Credentials: hss.Credentials{AK: testAK, SK: testSK}})
		if err != nil {
			t.Fatal(err)
		}
		err = c.CreateScanTask(context.Background(), &hss.CreateScanTaskRequest{Body: hss.ScanTaskBody{IsAll: new(true)}})
		if hss.ErrorCodeFor(err) != "HSS.0010" {
			t.Errorf("%s: other project: %v, want HSS.0010", url, err)
		}
	}
	c, err := hss.NewClient(hss.Config{Endpoint: a.url, ProjectID: testProject, Region: "cn-north-4",
		Credentials: hss.Credentials{AK: testAK, SK: testSK}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateScanTask(context.Background(), &hss.CreateScanTaskRequest{Body: hss.ScanTaskBody{IsAll: new(true)}}); err != nil {
		t.Fatalf("scanq's client against scanq: %v", err)
	}
	if rs := a.runs(t); len(rs) != 1 || rs[0].Request.Region != "cn-north-4" {
		t.Errorf("runs %+v, want one with region cn-north-4", rs)
	}
}
