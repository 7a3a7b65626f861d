package hsstest

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	hssv5 "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/hss/v5"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/hss/v5/model"
)

// The official SDK must not be able to tell the emulator from HSS: it signs
// with AK/SK, sends its own query encoding and decodes our answers with its
// own models and error handling.

func sdkClient(t *testing.T, url, ak, sk string) *hssv5.HssClient {
	t.Helper()
	cred, err := basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(testProject).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := hssv5.HssClientBuilder().WithEndpoints([]string{url}).WithCredential(cred).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	return hssv5.NewHssClient(hc)
}

func TestOfficialSDK(t *testing.T) {
	t.Parallel()
	srv := NewServer(Options{
		Images: 450, LocalImages: 60, Seed: 1, ProjectID: testProject,
		Credentials: map[string]string{testAK: testSK},
	})
	t.Cleanup(srv.Close)
	c := sdkClient(t, srv.URL, testAK, testSK)

	// ListRegistryImages, every page.
	var listed []model.RegistryImagesInfo
	for offset := int32(0); ; offset += 200 {
		resp, err := c.ListRegistryImages(&model.ListRegistryImagesRequest{Offset: ptr(offset), Limit: ptr[int32](200)})
		if err != nil {
			t.Fatalf("ListRegistryImages: %v", err)
		}
		if resp.HttpStatusCode != 200 || resp.TotalNum == nil || *resp.TotalNum != 450 || resp.DataList == nil {
			t.Fatalf("ListRegistryImages: %+v", resp)
		}
		listed = append(listed, *resp.DataList...)
		if len(*resp.DataList) < 200 {
			break
		}
	}
	want := srv.RegistryImages()
	if len(listed) != len(want) {
		t.Fatalf("SDK listed %d images, want %d", len(listed), len(want))
	}
	for i, got := range listed {
		w := want[i]
		if *got.Id != w.ID || *got.ImageDigest != w.ImageDigest || *got.Namespace != w.Namespace ||
			*got.ImageName != w.ImageName || *got.ImageVersion != w.ImageVersion || *got.RegistryType != w.RegistryType ||
			*got.ScanStatus != w.ScanStatus || *got.LatestScanTime != w.LatestScanTime || *got.ImageType != w.ImageType {
			t.Fatalf("image %d as the SDK sees it: %v, want %+v", i, got, w)
		}
	}

	// A filtered listing with the SDK's query encoding.
	ns := want[0].Namespace
	f, err := c.ListRegistryImages(&model.ListRegistryImagesRequest{
		Namespace: &ns, HasVul: ptr(false), SortKey: ptr("latest_scan_time"), SortDir: ptr("desc"), Limit: ptr[int32](200),
	})
	if err != nil || f.TotalNum == nil || *f.TotalNum == 0 {
		t.Fatalf("filtered ListRegistryImages: %v %v", f, err)
	}
	for _, it := range *f.DataList {
		if *it.Namespace != ns || *it.VulNum != 0 {
			t.Errorf("filter namespace=%s has_vul=false returned %v", ns, it)
		}
	}

	// ListImageLocal.
	loc, err := c.ListImageLocal(&model.ListImageLocalRequest{Limit: ptr[int32](50), ScanStatus: ptr("success")})
	if err != nil || loc.TotalNum == nil || loc.DataList == nil || len(*loc.DataList) == 0 {
		t.Fatalf("ListImageLocal: %v %v", loc, err)
	}
	for _, it := range *loc.DataList {
		if *it.ScanStatus != "success" || it.HostId == nil || it.ImageDigest == nil {
			t.Errorf("local item %v", it)
		}
	}

	// CreateManualImageScanTask with image_info from the listing.
	var infos []model.CreateManualImageScanTaskReqInfoImageInfo
	for _, it := range listed[:100] {
		infos = append(infos, model.CreateManualImageScanTaskReqInfoImageInfo{
			Id: it.Id, ImageId: it.ImageId, ImageDigest: it.ImageDigest, RegistryId: it.RegistryId,
			RegistryName: it.RegistryName, ImageName: it.ImageName, ImageVersion: it.ImageVersion,
			Namespace: it.Namespace, InstanceId: it.InstanceId, InstanceUrl: it.InstanceUrl,
			RegistryType: it.RegistryType,
		})
	}
	cr, err := c.CreateManualImageScanTask(&model.CreateManualImageScanTaskRequest{
		Region:              ptr("cn-north-4"),
		EnterpriseProjectId: ptr("0"),
		GlobalImageType:     ptr("registry"),
		Body:                &model.CreateManualImageScanTaskReqInfo{ScanScope: ptr[int32](0x7fffffff), RateLimit: ptr[int32](600), ImageInfo: &infos},
	})
	if err != nil || cr.HttpStatusCode != 200 {
		t.Fatalf("CreateManualImageScanTask: %v %v", cr, err)
	}
	subs := srv.Submissions()
	if len(subs) != 1 || len(subs[0].Body.ImageInfo) != 100 || subs[0].Region != "cn-north-4" ||
		subs[0].Body.ImageInfo[99].ImageDigest != want[99].ImageDigest || *subs[0].Body.RateLimit != 600 {
		t.Fatalf("submission %+v", subs)
	}

	// ListImageScanTask shows it.
	tasks, err := c.ListImageScanTask(&model.ListImageScanTaskRequest{Type: "image_scan", Limit: ptr[int32](10)})
	if err != nil || tasks.TotalNum == nil || *tasks.TotalNum != 1 {
		t.Fatalf("ListImageScanTask: %v %v", tasks, err)
	}
	if tk := (*tasks.DataList)[0]; *tk.TaskId != subs[0].TaskID || *tk.TotalNum != 100 || *tk.TaskType != "manual" || *tk.RateLimit != 600 {
		t.Errorf("task %v", tk)
	}

	// Errors reach the SDK as ServiceResponseErrors with code, message and request id.
	srv.FailNext(1, 429, "")
	_, err = c.ListRegistryImages(&model.ListRegistryImagesRequest{})
	assertSDKError(t, err, 429, "APIGW.0308", "The throttling threshold has been reached: policy user over ratelimit,limit:50,time:1 second")
	_, err = c.ListRegistryImages(&model.ListRegistryImagesRequest{Limit: ptr[int32](0)})
	assertSDKError(t, err, 400, "HSS.0001", "invalid parameter limit: 0 is outside 1..200")
	_, err = c.CreateManualImageScanTask(&model.CreateManualImageScanTaskRequest{
		Body: &model.CreateManualImageScanTaskReqInfo{RateLimit: ptr[int32](5000)},
	})
	assertSDKError(t, err, 400, "HSS.0001", "invalid parameter rate_limit: 5000 is outside 0..1000")
	_, err = sdkClient(t, srv.URL, testAK, "wrong").ListImageLocal(&model.ListImageLocalRequest{})
	assertSDKError(t, err, 401, "APIGW.0301", msgBadSignature)
	if st := srv.Stats(); st.BadSignatures != 1 || st.Creates != 1 {
		t.Errorf("stats %+v", st)
	}
}

func assertSDKError(t *testing.T, err error, status int, code, msg string) {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T), want a ServiceResponseError", err, err)
	}
	if se.StatusCode != status || se.ErrorCode != code || se.ErrorMessage != msg || !requestIDRe.MatchString(se.RequestId) {
		t.Errorf("SDK error %+v, want %d %s %q with a request id", se, status, code, msg)
	}
}

// The SDK's signature is checked against the emulator's clock.
func TestOfficialSDKClockSkew(t *testing.T) {
	t.Parallel()
	srv := NewServer(Options{Credentials: map[string]string{testAK: testSK}, Now: func() time.Time { return time.Now().Add(20 * time.Minute) }})
	t.Cleanup(srv.Close)
	_, err := sdkClient(t, srv.URL, testAK, testSK).ListRegistryImages(&model.ListRegistryImagesRequest{})
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized || se.ErrorCode != "APIGW.0301" {
		t.Errorf("skewed clock: %v, want 401 APIGW.0301", err)
	}
}
