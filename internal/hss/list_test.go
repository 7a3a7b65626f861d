package hss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestListRegistryImagesRequestValidate(t *testing.T) {
	t.Parallel()
	base := func(mut func(*ListRegistryImagesRequest)) ListRegistryImagesRequest {
		r := ListRegistryImagesRequest{ProjectID: "p", Limit: 10}
		mut(&r)
		return r
	}
	tests := []struct {
		name      string
		req       ListRegistryImagesRequest
		wantField string
	}{
		{"minimal", base(func(*ListRegistryImagesRequest) {}), ""},
		{"no project", base(func(r *ListRegistryImagesRequest) { r.ProjectID = "" }), "project_id"},
		{"limit 1", base(func(r *ListRegistryImagesRequest) { r.Limit = 1 }), ""},
		{"limit 200", base(func(r *ListRegistryImagesRequest) { r.Limit = 200 }), ""},
		{"limit 0", base(func(r *ListRegistryImagesRequest) { r.Limit = 0 }), "limit"},
		{"limit 201", base(func(r *ListRegistryImagesRequest) { r.Limit = 201 }), "limit"},
		{"offset 2000000", base(func(r *ListRegistryImagesRequest) { r.Offset = 2000000 }), ""},
		{"offset 2000001", base(func(r *ListRegistryImagesRequest) { r.Offset = 2000001 }), "offset"},
		{"offset -1", base(func(r *ListRegistryImagesRequest) { r.Offset = -1 }), "offset"},
		{"namespace 128", base(func(r *ListRegistryImagesRequest) { r.Namespace = strings.Repeat("n", 128) }), ""},
		{"namespace 129", base(func(r *ListRegistryImagesRequest) { r.Namespace = strings.Repeat("n", 129) }), "namespace"},
		{"image_name 129", base(func(r *ListRegistryImagesRequest) { r.ImageName = strings.Repeat("n", 129) }), "image_name"},
		{"image_version 64", base(func(r *ListRegistryImagesRequest) { r.ImageVersion = strings.Repeat("v", 64) }), ""},
		{"image_version 65", base(func(r *ListRegistryImagesRequest) { r.ImageVersion = strings.Repeat("v", 65) }), "image_version"},
		{"registry_name 129", base(func(r *ListRegistryImagesRequest) { r.RegistryName = strings.Repeat("r", 129) }), "registry_name"},
		{"enterprise_project_id 257", base(func(r *ListRegistryImagesRequest) { r.EnterpriseProjectID = strings.Repeat("e", 257) }), "enterprise_project_id"},
		{"region 129", base(func(r *ListRegistryImagesRequest) { r.Region = strings.Repeat("r", 129) }), "region"},
		{"image_type ok", base(func(r *ListRegistryImagesRequest) { r.ImageType = "harbor" }), ""},
		{"image_type bad", base(func(r *ListRegistryImagesRequest) { r.ImageType = "Harbor" }), "image_type"},
		{"scan_status waiting", base(func(r *ListRegistryImagesRequest) { r.ScanStatus = "waiting_for_scan" }), ""},
		{"scan_status create-only", base(func(r *ListRegistryImagesRequest) { r.ScanStatus = "image_oversized" }), "scan_status"},
		{"sort_key ok", base(func(r *ListRegistryImagesRequest) { r.SortKey = "latest_scan_time" }), ""},
		{"sort_key bad", base(func(r *ListRegistryImagesRequest) { r.SortKey = "name" }), "sort_key"},
		{"sort_dir ok", base(func(r *ListRegistryImagesRequest) { r.SortDir = "desc" }), ""},
		{"sort_dir bad", base(func(r *ListRegistryImagesRequest) { r.SortDir = "down" }), "sort_dir"},
		{"image_size 0", base(func(r *ListRegistryImagesRequest) { r.ImageSize = new(int64(0)) }), ""},
		{"image_size -1", base(func(r *ListRegistryImagesRequest) { r.ImageSize = new(int64(-1)) }), "image_size"},
		{"end_latest_scan_time -1", base(func(r *ListRegistryImagesRequest) { r.EndLatestScanTime = new(int64(-1)) }), "end_latest_scan_time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkValidation(t, tt.req.Validate(), tt.wantField, "")
		})
	}
}

func TestListImageLocalRequestValidate(t *testing.T) {
	t.Parallel()
	base := func(mut func(*ListImageLocalRequest)) ListImageLocalRequest {
		r := ListImageLocalRequest{ProjectID: "p", Limit: 10}
		mut(&r)
		return r
	}
	tests := []struct {
		name      string
		req       ListImageLocalRequest
		wantField string
	}{
		{"minimal", base(func(*ListImageLocalRequest) {}), ""},
		{"no project", base(func(r *ListImageLocalRequest) { r.ProjectID = "" }), "project_id"},
		{"limit 9", base(func(r *ListImageLocalRequest) { r.Limit = 9 }), "limit"},
		{"limit 200", base(func(r *ListImageLocalRequest) { r.Limit = 200 }), ""},
		{"limit 201", base(func(r *ListImageLocalRequest) { r.Limit = 201 }), "limit"},
		{"offset 2000001", base(func(r *ListImageLocalRequest) { r.Offset = 2000001 }), "offset"},
		{"image_name 256", base(func(r *ListImageLocalRequest) { r.ImageName = strings.Repeat("n", 256) }), ""},
		{"image_name 257", base(func(r *ListImageLocalRequest) { r.ImageName = strings.Repeat("n", 257) }), "image_name"},
		{"image_version 129", base(func(r *ListImageLocalRequest) { r.ImageVersion = strings.Repeat("v", 129) }), "image_version"},
		{"host_name 65", base(func(r *ListImageLocalRequest) { r.HostName = strings.Repeat("h", 65) }), "host_name"},
		{"host_id 65", base(func(r *ListImageLocalRequest) { r.HostID = strings.Repeat("h", 65) }), "host_id"},
		{"host_ip 129", base(func(r *ListImageLocalRequest) { r.HostIP = strings.Repeat("1", 129) }), "host_ip"},
		{"container_id 65", base(func(r *ListImageLocalRequest) { r.ContainerID = strings.Repeat("c", 65) }), "container_id"},
		{"container_name 65", base(func(r *ListImageLocalRequest) { r.ContainerName = strings.Repeat("c", 65) }), "container_name"},
		{"pod_id 65", base(func(r *ListImageLocalRequest) { r.PodID = strings.Repeat("p", 65) }), "pod_id"},
		{"pod_name 63", base(func(r *ListImageLocalRequest) { r.PodName = strings.Repeat("p", 63) }), ""},
		{"pod_name 64", base(func(r *ListImageLocalRequest) { r.PodName = strings.Repeat("p", 64) }), "pod_name"},
		{"app_name 65", base(func(r *ListImageLocalRequest) { r.AppName = strings.Repeat("a", 65) }), "app_name"},
		{"scan_status ok", base(func(r *ListImageLocalRequest) { r.ScanStatus = "success" }), ""},
		{"scan_status bad", base(func(r *ListImageLocalRequest) { r.ScanStatus = "download_failed" }), "scan_status"},
		{"local_image_type ok", base(func(r *ListImageLocalRequest) { r.LocalImageType = "swr_image" }), ""},
		{"local_image_type bad", base(func(r *ListImageLocalRequest) { r.LocalImageType = "swr" }), "local_image_type"},
		{"image_size -1", base(func(r *ListImageLocalRequest) { r.ImageSize = new(int64(-1)) }), "image_size"},
		{"start_latest_update_time -1", base(func(r *ListImageLocalRequest) { r.StartLatestUpdateTime = new(int64(-1)) }), "start_latest_update_time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkValidation(t, tt.req.Validate(), tt.wantField, "")
		})
	}
}

// imageServer serves n registry images and n local images from memory,
// honouring offset and limit, and records the queries it saw.
func imageServer(t *testing.T, n int) (*Client, func() []captured) {
	t.Helper()
	srv, requests := recorder(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		offset, _ := strconv.Atoi(q.Get("offset"))
		limit, _ := strconv.Atoi(q.Get("limit"))
		end := min(offset+limit, n)
		var data []any
		for i := offset; i < end; i++ {
			if strings.HasSuffix(r.URL.Path, "/registries/images") {
				data = append(data, RegistryImage{ID: int64(i), RegistryID: "reg", Namespace: "ns", ImageName: fmt.Sprintf("img%d", i),
					ImageVersion: "v1", ImageDigest: "sha256:" + strconv.Itoa(i), RegistryType: "SwrPrivate", ScanStatus: "unscan", LatestScanTime: int64(i)})
			} else {
				data = append(data, LocalImage{ImageName: fmt.Sprintf("local%d", i), ImageVersion: "latest", ImageID: "id" + strconv.Itoa(i),
					ScanStatus: "success", LatestScanTime: 5})
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"total_num": n, "data_list": data})
	})
	return newTestClient(t, srv.URL, nil), requests
}

func TestListRegistryImagesQuery(t *testing.T) {
	t.Parallel()
	c, requests := imageServer(t, 3)
	resp, err := c.ListRegistryImages(context.Background(), &ListRegistryImagesRequest{
		Namespace: "team a", ImageName: "nginx+x", ScanStatus: "waiting_for_scan", HasVul: new(false),
		ImageSize: new(int64(0)), StartLatestScanTime: new(int64(1700000000000)), SortKey: "latest_scan_time", SortDir: "asc",
		Offset: 1, Limit: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.TotalNum != 3 || len(resp.DataList) != 2 || resp.DataList[0].ImageName != "img1" {
		t.Errorf("response %+v", resp)
	}
	r := requests()[0]
	if r.verifyErr != nil {
		t.Errorf("signature: %v", r.verifyErr)
	}
	if r.method != http.MethodGet || r.path != "/v5/proj-1/image/registries/images" {
		t.Errorf("%s %s", r.method, r.path)
	}
	want := "enterprise_project_id=0&has_vul=false&image_name=nginx%2Bx&image_size=0&limit=50&namespace=team%20a&offset=1" +
		"&scan_status=waiting_for_scan&sort_dir=asc&sort_key=latest_scan_time&start_latest_scan_time=1700000000000"
	if r.rawQuery != want {
		t.Errorf("query\n got %s\nwant %s", r.rawQuery, want)
	}
	if len(r.body) != 0 || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("GET body %q, content type %q", r.body, r.header.Get("Content-Type"))
	}
}

func TestListImageLocalQuery(t *testing.T) {
	t.Parallel()
	c, requests := imageServer(t, 12)
	resp, err := c.ListImageLocal(context.Background(), &ListImageLocalRequest{
		ImageName: "web", HostIP: "10.0.0.1", PodName: "p", HasContainer: new(true), Limit: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.TotalNum != 12 || len(resp.DataList) != 10 {
		t.Errorf("response total %d, %d items", resp.TotalNum, len(resp.DataList))
	}
	r := requests()[0]
	want := "enterprise_project_id=0&has_container=true&host_ip=10.0.0.1&image_name=web&limit=10&offset=0&pod_name=p"
	if r.path != "/v5/proj-1/image/local-repositories" || r.rawQuery != want {
		t.Errorf("request %s?%s", r.path, r.rawQuery)
	}
}

func TestListImageScanTasks(t *testing.T) {
	t.Parallel()
	srv, requests := recorder(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"total_num":1,"data_list":[{"task_id":"t1","task_status":-2,"begin_time":10,"total_num":5,
			"failed_images":[{"image_name":"a","failed_reason":"oversized"}]}]}`))
	})
	c := newTestClient(t, srv.URL, nil)
	resp, err := c.ListImageScanTasks(context.Background(), "", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	task := resp.DataList[0]
	if task.TaskID != "t1" || task.TaskStatus != -2 || task.BeginTime != 10 || task.TotalNum != 5 || task.FailedImages[0].FailedReason != "oversized" {
		t.Errorf("task %+v", task)
	}
	if r := requests()[0]; r.path != "/v5/proj-1/image/tasks" || r.rawQuery != "enterprise_project_id=0&limit=10&offset=0&type=image_scan" {
		t.Errorf("request %s?%s", r.path, r.rawQuery)
	}
	for _, page := range [][2]int{{0, 9}, {0, 201}, {-1, 10}, {2000001, 10}} {
		if _, err := c.ListImageScanTasks(context.Background(), "", page[0], page[1]); ErrorCodeFor(err) != "HSS.0001" {
			t.Errorf("offset %d limit %d: %v", page[0], page[1], err)
		}
	}
}

func TestListDecodeFailure(t *testing.T) {
	t.Parallel()
	srv, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-Id", "rid")
		w.Write([]byte(`<html>maintenance</html>`))
	})
	_, err := newTestClient(t, srv.URL, nil).ListRegistryImages(context.Background(), &ListRegistryImagesRequest{Limit: 1})
	if err == nil || !strings.Contains(err.Error(), "decode response (request id rid)") || Retryable(err) {
		t.Errorf("err = %v", err)
	}
}

// TestListDeepResponse: an HSS response (or whatever answers in its place)
// nested two million deep is a decode error of that call, not a stack
// overflow that kills the worker.
func TestListDeepResponse(t *testing.T) {
	t.Parallel()
	deep := `{"total_num":1,"data_list":` + strings.Repeat("[", 2_100_000)
	for _, status := range []int{http.StatusOK, http.StatusBadRequest} {
		srv, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Request-Id", "rid")
			w.WriteHeader(status)
			w.Write([]byte(deep))
		})
		_, err := newTestClient(t, srv.URL, nil).ListRegistryImages(context.Background(), &ListRegistryImagesRequest{Limit: 1})
		if err == nil {
			t.Fatalf("status %d: a deep response was decoded", status)
		}
		if status == http.StatusOK && !strings.Contains(err.Error(), "nested deeper than 32 levels") {
			t.Errorf("status %d: err = %v", status, err)
		}
	}
}

func TestListImages(t *testing.T) {
	t.Parallel()
	c, requests := imageServer(t, 25)
	page, err := c.ListImages(context.Background(), ListQuery{
		EnterpriseProjectID: "ep", Region: "cn-east-3",
		Query: &QueryInfo{ImageName: new("img"), HostID: new("h1")},
	}, 20, 10)
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 25 || len(page.Images) != 5 {
		t.Fatalf("page total %d with %d images", page.Total, len(page.Images))
	}
	img := page.Images[0]
	want := Image{
		Info:       ImageInfo{ID: 20, ImageDigest: "sha256:20", RegistryID: "reg", ImageName: "img20", ImageVersion: "v1", Namespace: "ns", RegistryType: "SwrPrivate"},
		ScanStatus: "unscan", LatestScanTime: 20, Key: "r#20@sha256%3A20",
	}
	if !reflect.DeepEqual(img, want) {
		t.Errorf("image %+v\nwant  %+v", img, want)
	}
	r := requests()[0]
	q, _ := url.ParseQuery(r.rawQuery)
	if q.Get("image_name") != "img" || q.Get("enterprise_project_id") != "ep" || q.Has("host_id") || r.header.Get("Region") != "cn-east-3" {
		t.Errorf("request %s with region %s", r.rawQuery, r.header.Get("Region"))
	}

	local, err := c.ListImages(context.Background(), ListQuery{GlobalImageType: "local_image", Query: &QueryInfo{HostID: new("h1")}}, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(local.Images) != 10 || local.Images[3].Key != "l/local3:latest@#id3" || local.Images[3].Info.ImageID != "id3" {
		t.Errorf("local page %+v", local.Images[3])
	}
	if r := requests()[1]; !strings.HasSuffix(r.path, "/local-repositories") || !strings.Contains(r.rawQuery, "host_id=h1") {
		t.Errorf("local request %s?%s", r.path, r.rawQuery)
	}

	for _, tt := range []struct {
		q             ListQuery
		offset, limit int
		field         string
	}{
		{ListQuery{GlobalImageType: "remote"}, 0, 10, "global_image_type"},
		{ListQuery{}, 0, 0, "limit"},
		{ListQuery{GlobalImageType: "local"}, 0, 5, "limit"},
		{ListQuery{}, 0, 1<<32 + 10, "limit"}, // must not wrap into range as int32
		{ListQuery{}, -1, 10, "offset"},
		{ListQuery{Query: &QueryInfo{ImageVersion: new(strings.Repeat("v", 65))}}, 0, 10, "query_info.image_version"},
	} {
		_, err := c.ListImages(context.Background(), tt.q, tt.offset, tt.limit)
		if ve, ok := errors.AsType[*ValidationError](err); !ok || ve.Field != tt.field {
			t.Errorf("ListImages(%+v, %d, %d) = %v, want invalid %s", tt.q, tt.offset, tt.limit, err, tt.field)
		}
	}
}

func TestImageKeysAreUnambiguous(t *testing.T) {
	t.Parallel()
	a := registryKey(RegistryImage{Namespace: "a/b", ImageName: "c", ImageVersion: "1"})
	b := registryKey(RegistryImage{Namespace: "a", ImageName: "b/c", ImageVersion: "1"})
	c := registryKey(RegistryImage{Namespace: "a", ImageName: "b", ImageVersion: "c:1"})
	if a == b || b == c || a == c {
		t.Errorf("keys collide: %s %s %s", a, b, c)
	}
	if k := localKey(LocalImage{ImageName: "x", ImageDigest: "d", ImageID: "i"}); k != "l/x:@d#i" {
		t.Errorf("local key %q, want l/x:@d#i", k)
	}
}

func TestRegistryImagesIterator(t *testing.T) {
	t.Parallel()
	c, requests := imageServer(t, 450)
	var names []string
	for img, err := range c.RegistryImages(context.Background(), ListRegistryImagesRequest{ImageType: "private_image"}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, img.ImageName)
	}
	if len(names) != 450 || names[0] != "img0" || names[449] != "img449" {
		t.Fatalf("%d images, first %v", len(names), names[:1])
	}
	var offsets []string
	for _, r := range requests() {
		q, _ := url.ParseQuery(r.rawQuery)
		offsets = append(offsets, q.Get("offset")+"/"+q.Get("limit"))
	}
	if got := strings.Join(offsets, " "); got != "0/200 200/200 400/200" {
		t.Errorf("pages %s", got)
	}

	// Stopping early stops listing.
	n := 0
	for range c.RegistryImages(context.Background(), ListRegistryImagesRequest{Limit: 10}) {
		if n++; n == 15 {
			break
		}
	}
	if got := len(requests()); got != 3+2 {
		t.Errorf("%d requests after an early break, want 5", got)
	}
}

func TestRegistryImagesIteratorError(t *testing.T) {
	t.Parallel()
	srv, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	c := newTestClient(t, srv.URL, nil)
	var errs []error
	for _, err := range c.RegistryImages(context.Background(), ListRegistryImagesRequest{}) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !Retryable(errs[0]) {
		t.Errorf("errors %v", errs)
	}
}

func TestPlanQuery(t *testing.T) {
	t.Parallel()
	full := &QueryInfo{
		LocalImageType: new("swr_image"), HostID: new("hid"), HostName: new("hn"), PublicIP: new("1.1.1.1"),
		PrivateIP: new("10.0.0.1"), ClusterID: new("cl"), ContainerID: new("cid"), ContainerName: new("cn"),
		PodID: new("pid"), PodName: new("pn"), AppName: new("app"), HasVul: new(true), Namespace: new("ns"),
		ImageName: new("img"), ImageVersion: new("v"), ImageType: new("harbor"), ScanStatus: new("failed"),
		ImageSize: new(int64(1)), StartLatestUpdateTime: new(int64(2)), EndLatestUpdateTime: new(int64(3)),
		StartLatestScanTime: new(int64(4)), EndLatestScanTime: new(int64(5)),
	}
	times := func() (a, b, c, d *int64) { return new(int64(2)), new(int64(3)), new(int64(4)), new(int64(5)) }
	su, eu, ss, es := times()
	tests := []struct {
		name         string
		imageType    string
		q            *QueryInfo
		wantReg      *ListRegistryImagesRequest
		wantLocal    *ListImageLocalRequest
		wantScanq    []string
		wantUnlisted []string
	}{
		{"nil query registry", "registry", nil, &ListRegistryImagesRequest{}, nil, nil, nil},
		{"nil query local", "local", nil, nil, &ListImageLocalRequest{}, nil, nil},
		{"full registry", "registry", full, &ListRegistryImagesRequest{
			Namespace: "ns", ImageName: "img", ImageVersion: "v", ImageType: "harbor", ScanStatus: "failed", HasVul: new(true),
			ImageSize: new(int64(1)), StartLatestUpdateTime: su, EndLatestUpdateTime: eu, StartLatestScanTime: ss, EndLatestScanTime: es,
		}, nil, nil, []string{"local_image_type", "host_id", "host_name", "public_ip", "private_ip", "cluster_id", "container_id", "container_name", "pod_id", "pod_name", "app_name"}},
		{"full local", "local", full, nil, &ListImageLocalRequest{
			LocalImageType: "swr_image", HostID: "hid", HostName: "hn", HostIP: "1.1.1.1", ContainerID: "cid", ContainerName: "cn",
			PodID: "pid", PodName: "pn", AppName: "app", HasVul: new(true), ImageName: "img", ImageVersion: "v", ScanStatus: "failed",
			ImageSize: new(int64(1)), StartLatestUpdateTime: su, EndLatestUpdateTime: eu, StartLatestScanTime: ss, EndLatestScanTime: es,
		}, nil, []string{"private_ip", "cluster_id", "namespace", "image_type"}},
		{"local_image alias", "local_image", &QueryInfo{PublicIP: new("1.1.1.1")}, nil, &ListImageLocalRequest{HostIP: "1.1.1.1"}, nil, nil},
		{"equal addresses are one filter", "local", &QueryInfo{PublicIP: new("1.1.1.1"), PrivateIP: new("1.1.1.1")}, nil, &ListImageLocalRequest{HostIP: "1.1.1.1"}, nil, nil},
		{"empty strings are no filter", "local", &QueryInfo{PrivateIP: new(""), PublicIP: new("2.2.2.2"), ClusterID: new("")}, nil, &ListImageLocalRequest{HostIP: "2.2.2.2"}, nil, nil},
		{"create-only scan status", "registry", &QueryInfo{ScanStatus: new("download_failed")}, &ListRegistryImagesRequest{}, nil, []string{"scan_status"}, nil},
		{"create-only scan status local", "local", &QueryInfo{ScanStatus: new("image_oversized")}, nil, &ListImageLocalRequest{}, []string{"scan_status"}, nil},
		{"version without name, local", "local", &QueryInfo{ImageVersion: new("1")}, nil, &ListImageLocalRequest{}, []string{"image_version"}, nil},
		{"version without name, registry", "registry", &QueryInfo{ImageVersion: new("1")}, &ListRegistryImagesRequest{ImageVersion: "1"}, nil, nil, nil},
		{"one-sided bounds, local", "local", &QueryInfo{StartLatestUpdateTime: su, EndLatestScanTime: es}, nil, &ListImageLocalRequest{},
			[]string{"start_latest_update_time", "end_latest_scan_time"}, nil},
		{"equal bounds, local", "local", &QueryInfo{StartLatestUpdateTime: su, EndLatestUpdateTime: su}, nil, &ListImageLocalRequest{},
			[]string{"start_latest_update_time", "end_latest_update_time"}, nil},
		{"one-sided bounds, registry", "registry", &QueryInfo{StartLatestUpdateTime: su, EndLatestScanTime: es}, &ListRegistryImagesRequest{StartLatestUpdateTime: su, EndLatestScanTime: es}, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := PlanQuery(tt.imageType, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Registry, tt.wantReg) {
				t.Errorf("registry filters %+v\nwant %+v", p.Registry, tt.wantReg)
			}
			if !reflect.DeepEqual(p.Local, tt.wantLocal) {
				t.Errorf("local filters %+v\nwant %+v", p.Local, tt.wantLocal)
			}
			if got := p.Names(ByScanq); !reflect.DeepEqual(got, tt.wantScanq) {
				t.Errorf("applied by scanq %v, want %v", got, tt.wantScanq)
			}
			if got := p.Names(Unlisted); !reflect.DeepEqual(got, tt.wantUnlisted) {
				t.Errorf("unlisted %v, want %v", got, tt.wantUnlisted)
			}
		})
	}
}

// A listed registry image is keyed by its most specific identity, its id
// and digest: two records that share a name but not an id are two images,
// and one record listed twice is one.
func TestListedRegistryImagesAreKeyedByIDAndDigest(t *testing.T) {
	t.Parallel()
	a := RegistryImage{ID: 1, Namespace: "ns", ImageName: "n", ImageVersion: "v", ImageDigest: "sha256:d"}
	b := a
	b.ID = 2
	if registryKey(a) == registryKey(b) {
		t.Errorf("records 1 and 2 have one key %q", registryKey(a))
	}
	c := a
	c.ImageDigest = "sha256:e" // the tag pushed again
	if registryKey(a) == registryKey(c) {
		t.Errorf("digests d and e have one key %q", registryKey(a))
	}
	moved := a
	moved.RegistryName, moved.InstanceURL = "renamed", "https://x" // not identity once id is known
	if registryKey(a) != registryKey(moved) {
		t.Errorf("one record has two keys: %q, %q", registryKey(a), registryKey(moved))
	}
	la := LocalImage{ImageName: "x", ImageVersion: "1", ImageDigest: "d", ImageID: "i"}
	lb := la
	lb.ImageID = "j"
	if localKey(la) == localKey(lb) {
		t.Errorf("local images with image_id i and j have one key %q", localKey(la))
	}
}
