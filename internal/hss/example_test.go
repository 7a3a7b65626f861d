package hss_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

func ExampleClient_CreateScanTask() {
	// Against Huawei Cloud: Region alone selects the endpoint, and the keys
	// come from the variables Huawei's samples use.
	client, err := hss.NewClient(hss.Config{
		Region:    "cn-north-4",
		ProjectID: "0123456789abcdef0123456789abcdef",
		Credentials: hss.Credentials{
			AK: os.Getenv("CLOUD_SDK_AK"),
			SK: os.Getenv("CLOUD_SDK_SK"),
		},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	rateLimit := int32(600)
	err = client.CreateScanTask(context.Background(), &hss.CreateScanTaskRequest{
		GlobalImageType: hss.ImageTypeRegistry,
		Body: hss.ScanTaskBody{
			RateLimit: &rateLimit,
			ImageInfo: []hss.ImageInfo{{Namespace: "team", ImageName: "nginx", ImageVersion: "1.27", RegistryType: "SwrPrivate"}},
		},
	})
	switch {
	case hss.Retryable(err):
		delay, _ := hss.RetryAfter(err)
		fmt.Println("retry later", delay, err)
	case err != nil:
		fmt.Println("failed for good:", err)
	}
}

func ExampleClient_ListImages() {
	// A stand-in for HSS that lists two registry images.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"total_num":2,"data_list":[
			{"id":1,"registry_id":"reg1","namespace":"team","image_name":"nginx","image_version":"1.27","image_digest":"sha256:aa","registry_type":"SwrPrivate","scan_status":"unscan"},
			{"id":2,"registry_id":"reg1","namespace":"team","image_name":"redis","image_version":"7","image_digest":"sha256:bb","registry_type":"SwrPrivate","scan_status":"success"}]}`)
	}))
	defer srv.Close()

	client, err := hss.NewClient(hss.Config{Endpoint: srv.URL, ProjectID: "p", Credentials: hss.Credentials{AuthToken: "token"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	page, err := client.ListImages(context.Background(), hss.ListQuery{
		GlobalImageType: hss.ImageTypeRegistry,
		Query:           &hss.QueryInfo{Namespace: new("team"), ScanStatus: new("unscan")},
	}, 0, 200)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("total", page.Total)
	for _, img := range page.Images {
		fmt.Println(img.Key, img.ScanStatus)
	}
	// Output:
	// total 2
	// r#1@sha256%3Aaa unscan
	// r#2@sha256%3Abb success
}

func ExampleDecodeScanTaskBody() {
	for _, body := range []string{
		`{"is_all":true,"rate_limit":100}`,
		`{"rate_limit":"100"}`,
		`{"query_info":{"scan_status":"done"}}`,
		`{"is_all":true}{}`,
	} {
		b, err := hss.DecodeScanTaskBody([]byte(body))
		if err != nil {
			fmt.Println(hss.ErrorCodeFor(err), err)
			continue
		}
		fmt.Println("ok: is_all", *b.IsAll, "rate_limit", *b.RateLimit)
	}
	// Output:
	// ok: is_all true rate_limit 100
	// HSS.0001 invalid parameter rate_limit: must be an integer in int32 range, got a string
	// HSS.0001 invalid parameter query_info.scan_status: "done" is not one of unscan, success, scanning, failed, download_failed, image_oversized
	// HSS.0002 cannot parse request body: data after the JSON object
}

func ExamplePlanQuery() {
	q := &hss.QueryInfo{ImageName: new("nginx"), ClusterID: new("c-1"), PrivateIP: new("10.0.0.7"), ScanStatus: new("download_failed")}
	p, _ := hss.PlanQuery(hss.ImageTypeLocal, q)
	fmt.Println("image_name:", p.Local.ImageName, "host_ip:", p.Local.HostIP)
	fmt.Println("list:", p.Names(hss.ByList), "scanq:", p.Names(hss.ByScanq), "unlisted:", p.Names(hss.Unlisted))
	// Output:
	// image_name: nginx host_ip: 10.0.0.7
	// list: [private_ip image_name] scanq: [scan_status] unlisted: [cluster_id]
}

func ExampleRetryable() {
	err := fmt.Errorf("submit batch: %w", &hss.APIError{StatusCode: 429, Code: "APIGW.0308", Op: "CreateManualImageScanTask"})
	fmt.Println(hss.Retryable(err), hss.IsAuth(err))
	fmt.Println(hss.Retryable(context.Canceled), errors.Is(err, hss.ErrTimeout))
	// Output:
	// true false
	// false false
}
