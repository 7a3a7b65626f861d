package hss

import (
	"errors"
	"strings"
	"testing"
)

func TestScanTaskBodyValidate(t *testing.T) {
	t.Parallel()
	long := func(n int) *string { return new(strings.Repeat("é", n)) } // multi-byte: lengths count characters
	type tc struct {
		name      string
		body      ScanTaskBody
		wantField string // "" = valid
		wantMsg   string
	}
	tests := []tc{
		{"empty", ScanTaskBody{}, "", ""},
		{"scan_scope all", ScanTaskBody{ScanScope: new(ScanScopeAll)}, "", ""},
		{"scan_scope none", ScanTaskBody{ScanScope: new(ScanScopeNone)}, "", ""},
		{"scan_scope or-ed groups", ScanTaskBody{ScanScope: new(ScanScopeVuln | ScanScopeMalicious)}, "", ""},
		{"scan_scope negative", ScanTaskBody{ScanScope: new(int32(-1))}, "scan_scope", "-1 is negative"},
		{"rate_limit 0", ScanTaskBody{RateLimit: new(int32(0))}, "", ""},
		{"rate_limit 1000", ScanTaskBody{RateLimit: new(int32(1000))}, "", ""},
		{"rate_limit 1001", ScanTaskBody{RateLimit: new(int32(1001))}, "rate_limit", "1001 is outside 0..1000"},
		{"rate_limit -1", ScanTaskBody{RateLimit: new(int32(-1))}, "rate_limit", "-1 is outside 0..1000"},
		{"image_info registry_type ok", ScanTaskBody{ImageInfo: []ImageInfo{{RegistryType: "SwrPrivate"}, {RegistryType: "Other"}, {}}}, "", ""},
		{"image_info registry_type bad", ScanTaskBody{ImageInfo: []ImageInfo{{}, {}, {}, {RegistryType: "swrprivate"}}}, "image_info[3].registry_type", `"swrprivate" is not one of`},
		{"image_info image_name 256", ScanTaskBody{ImageInfo: []ImageInfo{{ImageName: *long(256)}}}, "", ""},
		{"image_info image_name 257", ScanTaskBody{ImageInfo: []ImageInfo{{}, {ImageName: *long(257)}}}, "image_info[1].image_name", "length 257 exceeds 256"},
		{"image_info image_name 11 MB", ScanTaskBody{ImageInfo: []ImageInfo{{ImageName: strings.Repeat("a", 11<<20)}}}, "image_info[0].image_name", "exceeds 256"},
		{"image_info namespace 257", ScanTaskBody{ImageInfo: []ImageInfo{{Namespace: *long(257)}}}, "image_info[0].namespace", "exceeds 256"},
		{"image_info image_digest 257", ScanTaskBody{ImageInfo: []ImageInfo{{ImageDigest: *long(257)}}}, "image_info[0].image_digest", "exceeds 256"},
		{"image_info instance_url 2048", ScanTaskBody{ImageInfo: []ImageInfo{{InstanceURL: *long(2048)}}}, "", ""},
		{"image_info instance_url 2049", ScanTaskBody{ImageInfo: []ImageInfo{{InstanceURL: *long(2049)}}}, "image_info[0].instance_url", "exceeds 2048"},
	}
	strFields := []struct {
		name string
		set  func(*QueryInfo, *string)
		max  int
	}{
		{"host_id", func(q *QueryInfo, v *string) { q.HostID = v }, 128},
		{"host_name", func(q *QueryInfo, v *string) { q.HostName = v }, 128},
		{"public_ip", func(q *QueryInfo, v *string) { q.PublicIP = v }, 128},
		{"private_ip", func(q *QueryInfo, v *string) { q.PrivateIP = v }, 128},
		{"cluster_id", func(q *QueryInfo, v *string) { q.ClusterID = v }, 128},
		{"container_id", func(q *QueryInfo, v *string) { q.ContainerID = v }, 128},
		{"container_name", func(q *QueryInfo, v *string) { q.ContainerName = v }, 128},
		{"pod_id", func(q *QueryInfo, v *string) { q.PodID = v }, 64},
		{"pod_name", func(q *QueryInfo, v *string) { q.PodName = v }, 512},
		{"app_name", func(q *QueryInfo, v *string) { q.AppName = v }, 256},
		{"namespace", func(q *QueryInfo, v *string) { q.Namespace = v }, 256},
		{"image_name", func(q *QueryInfo, v *string) { q.ImageName = v }, 256},
		{"image_version", func(q *QueryInfo, v *string) { q.ImageVersion = v }, 256},
	}
	for _, f := range strFields {
		atMax, over, empty := &QueryInfo{}, &QueryInfo{}, &QueryInfo{}
		f.set(atMax, long(f.max))
		f.set(over, long(f.max+1))
		f.set(empty, new(""))
		tests = append(tests,
			tc{f.name + " at max", ScanTaskBody{QueryInfo: atMax}, "", ""},
			tc{f.name + " empty", ScanTaskBody{QueryInfo: empty}, "", ""},
			tc{f.name + " too long", ScanTaskBody{QueryInfo: over}, "query_info." + f.name, "exceeds"},
		)
	}
	enumFields := []struct {
		name    string
		set     func(*QueryInfo, *string)
		allowed []string
	}{
		{"local_image_type", func(q *QueryInfo, v *string) { q.LocalImageType = v }, LocalImageTypes},
		{"image_type", func(q *QueryInfo, v *string) { q.ImageType = v }, ImageTypes},
		{"scan_status", func(q *QueryInfo, v *string) { q.ScanStatus = v }, ScanStatuses},
	}
	for _, f := range enumFields {
		for _, v := range f.allowed {
			q := &QueryInfo{}
			f.set(q, new(v))
			tests = append(tests, tc{f.name + "=" + v, ScanTaskBody{QueryInfo: q}, "", ""})
		}
		for _, v := range []string{"", "bogus", strings.ToUpper(f.allowed[0])} {
			q := &QueryInfo{}
			f.set(q, new(v))
			tests = append(tests, tc{f.name + " invalid " + v, ScanTaskBody{QueryInfo: q}, "query_info." + f.name, "is not one of"})
		}
	}
	intFields := []struct {
		name string
		set  func(*QueryInfo, *int64)
	}{
		{"image_size", func(q *QueryInfo, v *int64) { q.ImageSize = v }},
		{"start_latest_update_time", func(q *QueryInfo, v *int64) { q.StartLatestUpdateTime = v }},
		{"end_latest_update_time", func(q *QueryInfo, v *int64) { q.EndLatestUpdateTime = v }},
		{"start_latest_scan_time", func(q *QueryInfo, v *int64) { q.StartLatestScanTime = v }},
		{"end_latest_scan_time", func(q *QueryInfo, v *int64) { q.EndLatestScanTime = v }},
	}
	for _, f := range intFields {
		ok, bad := &QueryInfo{}, &QueryInfo{}
		f.set(ok, new(int64(0)))
		f.set(bad, new(int64(-1)))
		tests = append(tests,
			tc{f.name + " 0", ScanTaskBody{QueryInfo: ok}, "", ""},
			tc{f.name + " -1", ScanTaskBody{QueryInfo: bad}, "query_info." + f.name, "-1 is negative"})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkValidation(t, tt.body.Validate(), tt.wantField, tt.wantMsg)
		})
	}
}

func checkValidation(t *testing.T, err error, wantField, wantMsg string) {
	t.Helper()
	if wantField == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	ve, ok := errors.AsType[*ValidationError](err)
	if !ok {
		t.Fatalf("error = %v, want *ValidationError for %s", err, wantField)
	}
	if ve.Field != wantField || !strings.Contains(ve.Reason, wantMsg) {
		t.Errorf("error = %q, want field %s with %q", err, wantField, wantMsg)
	}
	if !strings.HasPrefix(err.Error(), "invalid parameter "+wantField+": ") {
		t.Errorf("message %q does not name the field first", err)
	}
}

func TestValidationErrorMessage(t *testing.T) {
	t.Parallel()
	err := (&ScanTaskBody{QueryInfo: &QueryInfo{PodID: new(strings.Repeat("p", 65))}}).Validate()
	if got, want := err.Error(), "invalid parameter query_info.pod_id: length 65 exceeds 64"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestCreateScanTaskRequestValidate(t *testing.T) {
	t.Parallel()
	ok := func(mut func(*CreateScanTaskRequest)) CreateScanTaskRequest {
		r := CreateScanTaskRequest{ProjectID: "p", Body: ScanTaskBody{IsAll: new(true)}}
		if mut != nil {
			mut(&r)
		}
		return r
	}
	tests := []struct {
		name      string
		req       CreateScanTaskRequest
		wantField string
		wantMsg   string
	}{
		{"minimal", ok(nil), "", ""},
		{"project_id missing", ok(func(r *CreateScanTaskRequest) { r.ProjectID = "" }), "project_id", "is required"},
		{"project_id 256", ok(func(r *CreateScanTaskRequest) { r.ProjectID = strings.Repeat("p", 256) }), "", ""},
		{"project_id 257", ok(func(r *CreateScanTaskRequest) { r.ProjectID = strings.Repeat("p", 257) }), "project_id", "length 257 exceeds 256"},
		{"enterprise_project_id 256", ok(func(r *CreateScanTaskRequest) { r.EnterpriseProjectID = strings.Repeat("e", 256) }), "", ""},
		{"enterprise_project_id 257", ok(func(r *CreateScanTaskRequest) { r.EnterpriseProjectID = strings.Repeat("e", 257) }), "enterprise_project_id", "exceeds 256"},
		{"global_image_type registry", ok(func(r *CreateScanTaskRequest) { r.GlobalImageType = "registry" }), "", ""},
		{"global_image_type local", ok(func(r *CreateScanTaskRequest) { r.GlobalImageType = "local" }), "", ""},
		{"global_image_type local_image", ok(func(r *CreateScanTaskRequest) { r.GlobalImageType = "local_image" }), "", ""},
		{"global_image_type bad", ok(func(r *CreateScanTaskRequest) { r.GlobalImageType = "Registry" }), "global_image_type", `"Registry" is not one of registry, local, local_image`},
		{"region 128", ok(func(r *CreateScanTaskRequest) { r.Region = strings.Repeat("r", 128) }), "", ""},
		{"region 129", ok(func(r *CreateScanTaskRequest) { r.Region = strings.Repeat("r", 129) }), "region", "exceeds 128"},
		{"body checked", ok(func(r *CreateScanTaskRequest) { r.Body.RateLimit = new(int32(5000)) }), "rate_limit", "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkValidation(t, tt.req.Validate(), tt.wantField, tt.wantMsg)
		})
	}
}

func TestNormalizeImageType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "registry", "registry": "registry", "local": "local", "local_image": "local"} {
		if got, err := NormalizeImageType(in); got != want || err != nil {
			t.Errorf("NormalizeImageType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"Local", "image", " registry"} {
		if _, err := NormalizeImageType(in); ErrorCodeFor(err) != "HSS.0001" {
			t.Errorf("NormalizeImageType(%q) = %v, want HSS.0001", in, err)
		}
	}
}
