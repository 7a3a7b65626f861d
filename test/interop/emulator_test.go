package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	hssv5 "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/hss/v5"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/hss/v5/model"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
)

// The official SDK as the real client of the HSS emulator: whatever the SDK
// sends must be accepted and recorded as sent, whatever the emulator answers
// must decode with the SDK's own models and error handling.

func newEmulator(t *testing.T, opts emulator.Options) *emulator.Server {
	t.Helper()
	opts.ProjectID = testProject
	if opts.Credentials == nil {
		opts.Credentials = map[string]string{testAK: testSK}
	}
	srv := emulator.NewServer(opts)
	t.Cleanup(srv.Close)
	return srv
}

// rawCreateRequest stands in for model.CreateManualImageScanTaskRequest with
// a body the SDK sends verbatim (a string body is written as it is). It is
// the only way to get a wrong JSON type onto the wire through the SDK's own
// request building, signing and error handling.
type rawCreateRequest struct {
	Region string `json:"region,omitempty"`
	Body   string `json:"body"`
}

func createRaw(c *hssv5.HssClient, body string) error {
	_, err := c.HcClient.Sync(&rawCreateRequest{Body: body}, hssv5.GenReqDefForCreateManualImageScanTask())
	return err
}

// sdkImageInfo maps a listed registry image onto an image_info entry, as a
// user of the SDK would.
func sdkImageInfo(it model.RegistryImagesInfo) model.CreateManualImageScanTaskReqInfoImageInfo {
	return model.CreateManualImageScanTaskReqInfoImageInfo{
		Id: it.Id, ImageId: it.ImageId, ImageDigest: it.ImageDigest, RegistryId: it.RegistryId,
		RegistryName: it.RegistryName, ImageName: it.ImageName, ImageVersion: it.ImageVersion,
		Namespace: it.Namespace, InstanceId: it.InstanceId, InstanceUrl: it.InstanceUrl,
		RegistryType: it.RegistryType,
	}
}

// fullQueryInfo sets every query_info field, with strings that need JSON
// care (HTML characters the SDK does not escape, quotes, non-ASCII).
func fullQueryInfo() *model.CreateManualImageScanTaskReqInfoQueryInfo {
	return &model.CreateManualImageScanTaskReqInfoQueryInfo{
		LocalImageType: new("swr_image"), HostId: new("host-<1>"), HostName: new("web & db"),
		PublicIp: new("203.0.113.7"), PrivateIp: new("10.0.0.7"), ClusterId: new("cluster-1"),
		ContainerId: new("c0ffee"), ContainerName: new(`say "hi"`), PodId: new("pod-1"),
		PodName: new("pod/1"), AppName: new("应用"), HasVul: new(false), Namespace: new("team-a"),
		ImageName: new("nginx"), ImageVersion: new("1.27"), ImageType: new("private_image"),
		ScanStatus: new("success"), ImageSize: new(int64(0)),
		StartLatestUpdateTime: new(int64(1)), EndLatestUpdateTime: new(int64(1 << 62)),
		StartLatestScanTime: new(int64(0)), EndLatestScanTime: new(int64(9223372036854775807)),
	}
}

func TestEmulatorCreateScanTask(t *testing.T) {
	t.Parallel()
	const images = 300
	// image_info entries straight from the emulator's inventory, through the SDK.
	lister := newEmulator(t, emulator.Options{Images: images, Seed: 7})
	c, _ := newSDK(t, lister.URL, testAK, testSK)
	listed, err := c.ListRegistryImages(&model.ListRegistryImagesRequest{Limit: new(int32(200))})
	if err != nil {
		t.Fatalf("ListRegistryImages: %v", err)
	}
	var infos []model.CreateManualImageScanTaskReqInfoImageInfo
	for _, it := range (*listed.DataList)[:150] {
		infos = append(infos, sdkImageInfo(it))
	}

	tests := []struct {
		name      string
		req       model.CreateManualImageScanTaskRequest
		imageType string // global_image_type as recorded
		images    int    // images the task covers
	}{
		{"image_info with every field", model.CreateManualImageScanTaskRequest{
			Region: new("cn-north-4"), EnterpriseProjectId: new("0"), GlobalImageType: new("registry"),
			Body: &model.CreateManualImageScanTaskReqInfo{ScanScope: new(int32(0x7fffffff)), RateLimit: new(int32(600)), ImageInfo: &infos},
		}, "registry", 150},
		{"is_all with rate_limit 0 (sent, no limit)", model.CreateManualImageScanTaskRequest{
			Body: &model.CreateManualImageScanTaskReqInfo{IsAll: new(true), RateLimit: new(int32(0)), ScanScope: new(int32(0x000f0000))},
		}, "registry", images},
		{"rate_limit at its maximum 1000", model.CreateManualImageScanTaskRequest{
			EnterpriseProjectId: new("all_granted_eps"),
			Body:                &model.CreateManualImageScanTaskReqInfo{IsAll: new(true), RateLimit: new(int32(1000)), ScanScope: new(int32(0))},
		}, "registry", images},
		{"query_info with every field, local", model.CreateManualImageScanTaskRequest{
			GlobalImageType: new("local"),
			Body:            &model.CreateManualImageScanTaskReqInfo{IsAll: new(false), QueryInfo: fullQueryInfo()},
		}, "local", -1},
		{"global_image_type local_image (the English page's spelling)", model.CreateManualImageScanTaskRequest{
			GlobalImageType: new("local_image"),
			Body:            &model.CreateManualImageScanTaskReqInfo{IsAll: new(true)},
		}, "local", -1},
		{"empty body object", model.CreateManualImageScanTaskRequest{
			Body: &model.CreateManualImageScanTaskReqInfo{},
		}, "registry", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newEmulator(t, emulator.Options{Images: images, LocalImages: 40, Seed: 7})
			c, rec := newSDK(t, srv.URL, testAK, testSK)
			resp, err := c.CreateManualImageScanTask(&tt.req)
			if err != nil {
				t.Fatalf("CreateManualImageScanTask: %v", err)
			}
			if resp.HttpStatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.HttpStatusCode)
			}
			wire := rec.Last(t)

			subs := srv.Submissions()
			if len(subs) != 1 {
				t.Fatalf("%d submissions recorded, want 1", len(subs))
			}
			s := subs[0]
			// The recorded body is the SDK's body, field for field: decode the
			// SDK model's own JSON with plain encoding/json and compare.
			sdkJSON, err := json.Marshal(tt.req.Body)
			if err != nil {
				t.Fatal(err)
			}
			var want hss.ScanTaskBody
			if err := json.Unmarshal(sdkJSON, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Body, want) {
				got, _ := json.Marshal(s.Body)
				t.Errorf("recorded body\n got %s\nwant %s", got, sdkJSON)
			}
			// scanq's model writes the SDK's wire bytes exactly (field order,
			// no HTML escaping, trailing newline), so scanq's own calls look
			// like the SDK's.
			var again bytes.Buffer
			enc := json.NewEncoder(&again)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(s.Body); err != nil {
				t.Fatal(err)
			}
			if again.String() != string(wire.Body) {
				t.Errorf("scanq re-encodes the body differently\n sdk %q\nours %q", wire.Body, again.String())
			}

			if s.ProjectID != testProject || s.GlobalImageType != tt.imageType ||
				s.Region != deref(tt.req.Region) || s.EnterpriseProjectID != deref(tt.req.EnterpriseProjectId) {
				t.Errorf("submission project %q type %q region %q eps %q, want %q %q %q %q",
					s.ProjectID, s.GlobalImageType, s.Region, s.EnterpriseProjectID,
					testProject, tt.imageType, deref(tt.req.Region), deref(tt.req.EnterpriseProjectId))
			}
			if got := s.Query.Get("global_image_type"); got != deref(tt.req.GlobalImageType) {
				t.Errorf("query global_image_type %q, want the SDK's %q", got, deref(tt.req.GlobalImageType))
			}
			if tt.images >= 0 && s.Images != tt.images {
				t.Errorf("task covers %d images, want %d", s.Images, tt.images)
			}
			if !requestIDRe.MatchString(s.RequestID) {
				t.Errorf("request id %q", s.RequestID)
			}

			// ListImageScanTask shows the accepted scan as a manual task.
			tasks, err := c.ListImageScanTask(&model.ListImageScanTaskRequest{Type: "image_scan", Limit: new(int32(10))})
			if err != nil {
				t.Fatalf("ListImageScanTask: %v", err)
			}
			if tasks.TotalNum == nil || *tasks.TotalNum != 1 || tasks.DataList == nil || len(*tasks.DataList) != 1 {
				t.Fatalf("ListImageScanTask: %v", tasks)
			}
			tk := (*tasks.DataList)[0]
			wantScope := int32(hss.ScanScopeAll)
			if want.ScanScope != nil {
				wantScope = *want.ScanScope
			}
			if deref(tk.TaskId) != s.TaskID || deref(tk.TaskType) != "manual" || deref(tk.ImageType) != tt.imageType ||
				int(deref(tk.TotalNum)) != s.Images || deref(tk.ScanScope) != wantScope ||
				deref(tk.RateLimit) != deref(want.RateLimit) || deref(tk.IsAll) != deref(want.IsAll) {
				t.Errorf("task %v\nfor submission %+v", tk, s)
			}
			if st := deref(tk.TaskStatus); st < 0 || st > 100 {
				t.Errorf("task_status %d outside 0..100", st)
			}
			// The type filter is honoured: no sync tasks exist.
			sync, err := c.ListImageScanTask(&model.ListImageScanTaskRequest{Type: "image_sync"})
			if err != nil || deref(sync.TotalNum) != 0 {
				t.Errorf("ListImageScanTask type=image_sync: %v %v, want none", sync, err)
			}
		})
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// TestEmulatorRejects sends what HSS refuses, through the SDK, and checks the
// SDK sees HSS's errors: status, error_code, error_msg naming the field, and
// a request id. Nothing refused is recorded.
func TestEmulatorRejects(t *testing.T) {
	t.Parallel()
	body := func(b model.CreateManualImageScanTaskReqInfo) *model.CreateManualImageScanTaskRequest {
		return &model.CreateManualImageScanTaskRequest{Body: &b}
	}
	create := func(r *model.CreateManualImageScanTaskRequest) func(c *hssv5.HssClient) error {
		return func(c *hssv5.HssClient) error { _, err := c.CreateManualImageScanTask(r); return err }
	}
	raw := func(b string) func(c *hssv5.HssClient) error {
		return func(c *hssv5.HssClient) error { return createRaw(c, b) }
	}
	tests := []struct {
		name   string
		ak, sk string // "" = the good keys
		call   func(c *hssv5.HssClient) error
		status int
		code   string
		msg    string // exact error_msg, or
		field  string // a field error_msg must name
	}{
		{name: "wrong SK", sk: "not-the-secret", call: create(body(model.CreateManualImageScanTaskReqInfo{IsAll: new(true)})),
			status: 401, code: "APIGW.0301", msg: msgBadSignature},
		{name: "wrong SK on a list call", sk: "not-the-secret",
			call: func(c *hssv5.HssClient) error {
				_, err := c.ListRegistryImages(&model.ListRegistryImagesRequest{})
				return err
			},
			status: 401, code: "APIGW.0301", msg: msgBadSignature},
		{name: "unknown AK", ak: "NOSUCHAK", call: create(body(model.CreateManualImageScanTaskReqInfo{IsAll: new(true)})),
			status: 401, code: "APIGW.0301", msg: "Incorrect IAM authentication information: Get secretKey failed,ak:******,err:ak not exist"},
		{name: "rate_limit 1001", call: create(body(model.CreateManualImageScanTaskReqInfo{IsAll: new(true), RateLimit: new(int32(1001))})),
			status: 400, code: "HSS.0001", field: "rate_limit"},
		{name: "rate_limit -1", call: create(body(model.CreateManualImageScanTaskReqInfo{RateLimit: new(int32(-1))})),
			status: 400, code: "HSS.0001", field: "rate_limit"},
		{name: "scan_scope negative", call: create(body(model.CreateManualImageScanTaskReqInfo{ScanScope: new(int32(-1))})),
			status: 400, code: "HSS.0001", field: "scan_scope"},
		{name: "registry_type not in the enum", call: create(body(model.CreateManualImageScanTaskReqInfo{
			ImageInfo: &[]model.CreateManualImageScanTaskReqInfoImageInfo{{ImageName: new("nginx"), RegistryType: new("Quay")}}})),
			status: 400, code: "HSS.0001", field: "registry_type"},
		{name: "query_info.image_type not in the enum", call: create(body(model.CreateManualImageScanTaskReqInfo{
			QueryInfo: &model.CreateManualImageScanTaskReqInfoQueryInfo{ImageType: new("public_image")}})),
			status: 400, code: "HSS.0001", field: "image_type"},
		{name: "global_image_type not in the enum", call: create(&model.CreateManualImageScanTaskRequest{
			GlobalImageType: new("cloud"), Body: &model.CreateManualImageScanTaskReqInfo{IsAll: new(true)}}),
			status: 400, code: "HSS.0001", field: "global_image_type"},
		{name: "region longer than 128", call: create(&model.CreateManualImageScanTaskRequest{
			Region: new(strings.Repeat("r", 129)), Body: &model.CreateManualImageScanTaskReqInfo{IsAll: new(true)}}),
			status: 400, code: "HSS.0001", field: "region"},
		{name: "rate_limit of the wrong type", call: raw(`{"rate_limit":"fast"}`), status: 400, code: "HSS.0001", field: "rate_limit"},
		{name: "is_all of the wrong type", call: raw(`{"is_all":"yes"}`), status: 400, code: "HSS.0001", field: "is_all"},
		{name: "image_info an object", call: raw(`{"image_info":{"id":1}}`), status: 400, code: "HSS.0001", field: "image_info"},
		{name: "scan_scope beyond int32", call: raw(`{"scan_scope":2147483648}`), status: 400, code: "HSS.0001", field: "scan_scope"},
		{name: "image_info[].id of the wrong type", call: raw(`{"image_info":[{"id":"7"}]}`), status: 400, code: "HSS.0001", field: "id"},
		{name: "malformed JSON", call: raw(`{"rate_limit":`), status: 400, code: "HSS.0002"},
		{name: "list limit 201",
			call: func(c *hssv5.HssClient) error {
				_, err := c.ListRegistryImages(&model.ListRegistryImagesRequest{Limit: new(int32(201))})
				return err
			},
			status: 400, code: "HSS.0001", field: "limit"},
		{name: "local list limit 9",
			call: func(c *hssv5.HssClient) error {
				_, err := c.ListImageLocal(&model.ListImageLocalRequest{Limit: new(int32(9))})
				return err
			},
			status: 400, code: "HSS.0001", field: "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newEmulator(t, emulator.Options{Images: 5, Seed: 1})
			ak, sk := testAK, testSK
			if tt.ak != "" {
				ak = tt.ak
			}
			if tt.sk != "" {
				sk = tt.sk
			}
			c, _ := newSDK(t, srv.URL, ak, sk)
			se := sdkError(t, tt.call(c), tt.status, tt.code)
			if !requestIDRe.MatchString(se.RequestId) {
				t.Errorf("request id %q is not 32 hex digits", se.RequestId)
			}
			if tt.msg != "" && se.ErrorMessage != tt.msg {
				t.Errorf("error_msg %q, want %q", se.ErrorMessage, tt.msg)
			}
			if tt.field != "" && !strings.Contains(se.ErrorMessage, tt.field) {
				t.Errorf("error_msg %q does not name %s", se.ErrorMessage, tt.field)
			}
			assertNoSecret(t, "error", se.Error())
			if n := len(srv.Submissions()); n != 0 {
				t.Errorf("%d submissions recorded for a refused request", n)
			}
		})
	}
}

// The SDK's signature is checked against the emulator's clock: more than 15
// minutes apart is 401 APIGW.0301 with the gateway's "signature expired".
func TestEmulatorClockSkew(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		skew time.Duration
		ok   bool
	}{{14 * time.Minute, true}, {-14 * time.Minute, true}, {16 * time.Minute, false}, {-16 * time.Minute, false}} {
		t.Run(tt.skew.String(), func(t *testing.T) {
			t.Parallel()
			srv := newEmulator(t, emulator.Options{Images: 3, Now: func() time.Time { return time.Now().Add(tt.skew) }})
			c, _ := newSDK(t, srv.URL, testAK, testSK)
			_, err := c.ListRegistryImages(&model.ListRegistryImagesRequest{})
			if tt.ok {
				if err != nil {
					t.Fatalf("clock %s off: %v", tt.skew, err)
				}
				return
			}
			se := sdkError(t, err, 401, "APIGW.0301")
			if !strings.Contains(se.ErrorMessage, "signature expired") {
				t.Errorf("error_msg %q, want the gateway's signature expired", se.ErrorMessage)
			}
		})
	}
}

// TestEmulatorListRegistryImagesPaging pages through the whole inventory the
// way a user of the SDK would (limit 200, offset += 200) and gets every image
// exactly once, as the emulator holds it, with total_num right on every page.
func TestEmulatorListRegistryImagesPaging(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 200, 1001} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			srv := newEmulator(t, emulator.Options{Images: n, Seed: int64(n)})
			c, _ := newSDK(t, srv.URL, testAK, testSK)
			var listed []model.RegistryImagesInfo
			pages := 0
			for offset := int32(0); ; offset += 200 {
				resp, err := c.ListRegistryImages(&model.ListRegistryImagesRequest{Offset: new(offset), Limit: new(int32(200))})
				if err != nil {
					t.Fatalf("ListRegistryImages offset %d: %v", offset, err)
				}
				pages++
				if resp.HttpStatusCode != 200 || resp.TotalNum == nil || int(*resp.TotalNum) != n || resp.DataList == nil {
					t.Fatalf("offset %d: status %d total_num %v data_list nil=%v, want total %d",
						offset, resp.HttpStatusCode, resp.TotalNum, resp.DataList == nil, n)
				}
				page := *resp.DataList
				if want := min(200, max(0, n-int(offset))); len(page) != want {
					t.Fatalf("offset %d: %d items, want %d", offset, len(page), want)
				}
				listed = append(listed, page...)
				if len(page) < 200 {
					break
				}
			}
			if want := n/200 + 1; pages != want {
				t.Errorf("%d pages, want %d", pages, want)
			}
			want := srv.RegistryImages()
			if len(listed) != len(want) {
				t.Fatalf("listed %d images, want %d", len(listed), len(want))
			}
			seen := map[int64]bool{}
			for i, got := range listed {
				if got.Id == nil || seen[*got.Id] {
					t.Fatalf("item %d: id %v missing or listed twice", i, got.Id)
				}
				seen[*got.Id] = true
				if g, w := fromSDKRegistry(got), want[i]; !reflect.DeepEqual(g, w) {
					t.Fatalf("item %d as the SDK decodes it\n got %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

// fromSDKRegistry maps the SDK's RegistryImagesInfo onto scanq's model.
func fromSDKRegistry(it model.RegistryImagesInfo) hss.RegistryImage {
	return hss.RegistryImage{
		ID: deref(it.Id), ImageID: deref(it.ImageId), ImageDigest: deref(it.ImageDigest),
		RegistryID: deref(it.RegistryId), RegistryName: deref(it.RegistryName), ImageName: deref(it.ImageName),
		ImageVersion: deref(it.ImageVersion), Namespace: deref(it.Namespace), InstanceID: deref(it.InstanceId),
		InstanceURL: deref(it.InstanceUrl), RegistryType: deref(it.RegistryType), ImageType: deref(it.ImageType),
		ScanStatus: deref(it.ScanStatus), ScanFailedCode: deref(it.ScanFailedCode), ScanFailedDesc: deref(it.ScanFailedDesc),
		LatestScanTime: deref(it.LatestScanTime), LatestUpdateTime: deref(it.LatestUpdateTime),
		ImageSize: deref(it.ImageSize), VulNum: deref(it.VulNum), Scannable: it.Scannable,
	}
}

// fromSDKLocal maps the SDK's ImageLocalInfo onto scanq's model.
func fromSDKLocal(it model.ImageLocalInfo) hss.LocalImage {
	return hss.LocalImage{
		ImageName: deref(it.ImageName), ImageVersion: deref(it.ImageVersion), ImageID: deref(it.ImageId),
		ImageDigest: deref(it.ImageDigest), LocalImageType: deref(it.LocalImageType), HostID: deref(it.HostId),
		HostName: deref(it.HostName), ScanStatus: deref(it.ScanStatus), ScanFailedDesc: deref(it.ScanFailedDesc),
		NonScanReason: deref(it.NonScanReason), LatestScanTime: deref(it.LatestScanTime),
		LatestUpdateTime: deref(it.LatestUpdateTime), ImageSize: deref(it.ImageSize), VulNum: deref(it.VulNum),
		HostNum: deref(it.HostNum), ContainerNum: deref(it.ContainerNum),
	}
}

// TestEmulatorListImageLocalPaging does the same for images on hosts.
func TestEmulatorListImageLocalPaging(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 10, 437} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			srv := newEmulator(t, emulator.Options{LocalImages: n, Seed: int64(n) + 1})
			c, _ := newSDK(t, srv.URL, testAK, testSK)
			var listed []model.ImageLocalInfo
			for offset := int32(0); ; offset += 200 {
				resp, err := c.ListImageLocal(&model.ListImageLocalRequest{Offset: new(offset), Limit: new(int32(200))})
				if err != nil {
					t.Fatalf("ListImageLocal offset %d: %v", offset, err)
				}
				if resp.TotalNum == nil || int(*resp.TotalNum) != n || resp.DataList == nil {
					t.Fatalf("offset %d: total_num %v data_list nil=%v, want total %d", offset, resp.TotalNum, resp.DataList == nil, n)
				}
				page := *resp.DataList
				if want := min(200, max(0, n-int(offset))); len(page) != want {
					t.Fatalf("offset %d: %d items, want %d", offset, len(page), want)
				}
				listed = append(listed, page...)
				if len(page) < 200 {
					break
				}
			}
			want := srv.LocalImages()
			if len(listed) != len(want) {
				t.Fatalf("listed %d local images, want %d", len(listed), len(want))
			}
			seen := map[string]bool{}
			for i, got := range listed {
				key := deref(got.HostId) + "/" + deref(got.ImageId) + "/" + deref(got.ImageName) + ":" + deref(got.ImageVersion)
				if seen[key] {
					t.Fatalf("item %d (%s) listed twice", i, key)
				}
				seen[key] = true
				if g, w := fromSDKLocal(got), want[i]; !reflect.DeepEqual(g, w) {
					t.Fatalf("item %d as the SDK decodes it\n got %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

// TestEmulatorListFilters: the SDK's query encoding of the list filters
// reaches the emulator intact and selects what the filters say.
func TestEmulatorListFilters(t *testing.T) {
	t.Parallel()
	srv := newEmulator(t, emulator.Options{Images: 400, LocalImages: 120, Seed: 11})
	c, _ := newSDK(t, srv.URL, testAK, testSK)
	all := srv.RegistryImages()

	ns := all[0].Namespace
	var want []hss.RegistryImage
	for _, img := range all {
		if img.Namespace == ns && img.VulNum == 0 {
			want = append(want, img)
		}
	}
	resp, err := c.ListRegistryImages(&model.ListRegistryImagesRequest{
		Namespace: &ns, HasVul: new(false), SortKey: new("latest_scan_time"), SortDir: new("desc"), Limit: new(int32(200)),
	})
	if err != nil {
		t.Fatalf("filtered ListRegistryImages: %v", err)
	}
	if len(want) == 0 || int(deref(resp.TotalNum)) != len(want) || len(*resp.DataList) != len(want) {
		t.Fatalf("namespace=%s has_vul=false: total_num %d, %d items, want %d", ns, deref(resp.TotalNum), len(*resp.DataList), len(want))
	}
	for i, it := range *resp.DataList {
		if deref(it.Namespace) != ns || deref(it.VulNum) != 0 {
			t.Errorf("item %d does not match the filter: %v", i, it)
		}
		if i > 0 && deref(it.LatestScanTime) > deref((*resp.DataList)[i-1].LatestScanTime) {
			t.Errorf("item %d: latest_scan_time not descending", i)
		}
	}

	loc, err := c.ListImageLocal(&model.ListImageLocalRequest{ScanStatus: new("success"), Limit: new(int32(200))})
	if err != nil {
		t.Fatalf("ListImageLocal scan_status=success: %v", err)
	}
	wantLocal := 0
	for _, img := range srv.LocalImages() {
		if img.ScanStatus == "success" {
			wantLocal++
		}
	}
	if wantLocal == 0 || int(deref(loc.TotalNum)) != wantLocal || len(*loc.DataList) != wantLocal {
		t.Fatalf("scan_status=success: total_num %d, %d items, want %d", deref(loc.TotalNum), len(*loc.DataList), wantLocal)
	}
	for i, it := range *loc.DataList {
		if deref(it.ScanStatus) != "success" || deref(it.HostId) == "" || deref(it.ImageDigest) == "" {
			t.Errorf("local item %d: %v", i, it)
		}
	}
}

// TestEmulatorFaults: injected faults and the API rate limit reach the SDK
// as HSS's errors, with the gateway's throttling message, and the stats count
// what happened.
func TestEmulatorFaults(t *testing.T) {
	t.Parallel()
	list := func(c *hssv5.HssClient) error {
		_, err := c.ListRegistryImages(&model.ListRegistryImagesRequest{})
		return err
	}
	t.Run("FailNext", func(t *testing.T) {
		t.Parallel()
		srv := newEmulator(t, emulator.Options{Images: 3})
		c, _ := newSDK(t, srv.URL, testAK, testSK)
		for _, tt := range []struct {
			status            int
			code              string // "" lets the emulator pick the usual one
			wantCode, wantMsg string
		}{
			{429, "", "APIGW.0308", "The throttling threshold has been reached: policy user over ratelimit,limit:50,time:1 second"},
			{500, "", "HSS.1000", "System error."},
			{503, "APIGW.0202", "APIGW.0202", "Backend unavailable."},
		} {
			srv.FailNext(1, tt.status, tt.code)
			se := sdkError(t, list(c), tt.status, tt.wantCode)
			if se.ErrorMessage != tt.wantMsg {
				t.Errorf("%d: error_msg %q, want %q", tt.status, se.ErrorMessage, tt.wantMsg)
			}
			if err := list(c); err != nil {
				t.Errorf("the call after the injected %d: %v", tt.status, err)
			}
		}
		if st := srv.Stats(); st.Injected != 3 || st.Requests[200] != 3 {
			t.Errorf("stats: injected %d, 200s %d; want 3 and 3", st.Injected, st.Requests[200])
		}
	})
	t.Run("APIRate", func(t *testing.T) {
		t.Parallel()
		// A clock that stands still: the second call in the same second is
		// over a rate of 1/s however slow the machine is.
		at := time.Now()
		srv := newEmulator(t, emulator.Options{Images: 3, APIRate: 1, Now: func() time.Time { return at }})
		c, _ := newSDK(t, srv.URL, testAK, testSK)
		if err := list(c); err != nil {
			t.Fatalf("first call: %v", err)
		}
		se := sdkError(t, list(c), http.StatusTooManyRequests, "APIGW.0308")
		if want := "The throttling threshold has been reached: policy user over ratelimit,limit:1,time:1 second"; se.ErrorMessage != want {
			t.Errorf("error_msg %q, want %q", se.ErrorMessage, want)
		}
		// A wrong key is refused before the rate limit counts it.
		bad, _ := newSDK(t, srv.URL, testAK, "not-the-secret")
		sdkError(t, list(bad), http.StatusUnauthorized, "APIGW.0301")
		if st := srv.Stats(); st.Throttled != 1 || st.BadSignatures != 1 || st.AuthFailures != 1 {
			t.Errorf("stats: throttled %d, bad signatures %d, auth failures %d; want 1, 1, 1", st.Throttled, st.BadSignatures, st.AuthFailures)
		}
	})
}
