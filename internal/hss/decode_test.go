package hss

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeScanTaskBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		wantCode string // "" = accepted
		wantMsg  string
	}{
		{"empty object", `{}`, "", ""},
		{"full", `{"scan_scope":2147483647,"rate_limit":0,"is_all":false,
			"query_info":{"image_name":"nginx","has_vul":true,"image_size":0,"scan_status":"unscan"},
			"image_info":[{"id":7,"image_name":"a","registry_type":"Harbor"}]}`, "", ""},
		{"whitespace around", " \n{\"is_all\":true}\n\t", "", ""},
		{"nulls are unset", `{"rate_limit":null,"query_info":null,"image_info":null}`, "", ""},
		{"unknown fields ignored", `{"is_all":true,"future_field":{"x":[1,2]}}`, "", ""},
		{"names are case-sensitive", `{"RATE_LIMIT":"x","Rate_Limit":99999}`, "", ""},
		{"empty", ``, "HSS.0002", "empty body"},
		{"only spaces", `   `, "HSS.0002", "empty body"},
		{"syntax error", `{"is_all":tru}`, "HSS.0002", "invalid JSON"},
		{"unterminated", `{"is_all":true`, "HSS.0002", "invalid JSON"},
		{"trailing object", `{}{}`, "HSS.0002", "data after the JSON object"},
		{"trailing garbage", `{"is_all":true} x`, "HSS.0002", "data after the JSON object"},
		{"array body", `[{"is_all":true}]`, "HSS.0002", "not a JSON object"},
		{"null body", `null`, "HSS.0002", "not a JSON object"},
		{"number body", `42`, "HSS.0002", "not a JSON object"},
		{"rate_limit as string", `{"rate_limit":"10"}`, "HSS.0001", "invalid parameter rate_limit: must be an integer in int32 range, got a string"},
		{"rate_limit fraction", `{"rate_limit":1.5}`, "HSS.0001", "invalid parameter rate_limit: must be an integer in int32 range, got 1.5"},
		{"scan_scope beyond int32", `{"scan_scope":4294967295}`, "HSS.0001", "invalid parameter scan_scope: must be an integer in int32 range"},
		{"is_all as string", `{"is_all":"true"}`, "HSS.0001", "invalid parameter is_all: must be a boolean, got a string"},
		{"query_info as array", `{"query_info":[]}`, "HSS.0001", "invalid parameter query_info: must be an object"},
		{"query_info field type", `{"query_info":{"pod_id":5}}`, "HSS.0001", "invalid parameter query_info.pod_id: must be a string, got 5"},
		{"query_info int64 overflow", `{"query_info":{"image_size":9223372036854775808}}`, "HSS.0001", "invalid parameter query_info.image_size: must be an integer in int64 range"},
		{"image_info as object", `{"image_info":{}}`, "HSS.0001", "invalid parameter image_info: must be an array"},
		{"image_info element type", `{"image_info":[{},{},"x"]}`, "HSS.0001", "invalid parameter image_info[2]: must be an object"},
		{"image_info field type", `{"image_info":[{},{"id":"7"}]}`, "HSS.0001", "invalid parameter image_info[1].id: must be an integer in int64 range, got a string"},
		{"validated after decoding", `{"query_info":{"pod_id":"` + strings.Repeat("x", 65) + `"}}`, "HSS.0001", "invalid parameter query_info.pod_id: length 65 exceeds 64"},
		{"registry_type checked", `{"image_info":[{"registry_type":"Docker"}]}`, "HSS.0001", "invalid parameter image_info[0].registry_type"},
		{"long number not echoed", `{"rate_limit":` + strings.Repeat("9", 100) + `}`, "HSS.0001", "got a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := DecodeScanTaskBody([]byte(tt.in))
			if tt.wantCode == "" {
				if err != nil || b == nil {
					t.Fatalf("DecodeScanTaskBody = %v, %v", b, err)
				}
				return
			}
			if got := ErrorCodeFor(err); got != tt.wantCode {
				t.Fatalf("error %v has code %q, want %q", err, got, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestDecodeScanTaskBodyValues(t *testing.T) {
	t.Parallel()
	b, err := DecodeScanTaskBody([]byte(`{"scan_scope":983040,"rate_limit":0,"is_all":false,"image_info":[],
		"query_info":{"image_name":"nginx","has_vul":false,"end_latest_scan_time":1700000000000},"rate_limit":5}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &ScanTaskBody{
		ScanScope: ptr(ScanScopeVuln),
		RateLimit: ptr(int32(5)), // the last duplicate wins, as in encoding/json
		IsAll:     ptr(false),
		QueryInfo: &QueryInfo{ImageName: ptr("nginx"), HasVul: ptr(false), EndLatestScanTime: ptr(int64(1700000000000))},
	}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("decoded %+v\nwant    %+v", b, want)
	}
}

func TestErrorCodeFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("boom"), ""},
		{&ValidationError{"rate_limit", "x"}, "HSS.0001"},
		{&ParseError{Reason: "x"}, "HSS.0002"},
		{&APIError{StatusCode: 400, Code: "HSS.1002"}, "HSS.1002"},
	}
	for _, tt := range tests {
		if got := ErrorCodeFor(tt.err); got != tt.want {
			t.Errorf("ErrorCodeFor(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// FuzzDecodeScanTaskBody: DecodeScanTaskBody never panics, and whatever it
// accepts encodes (as the SDK would send it) to a body that decodes to the
// same value.
func FuzzDecodeScanTaskBody(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"is_all":true,"rate_limit":1000,"scan_scope":2147483647}`,
		`{"query_info":{"pod_id":"x","image_size":0,"has_vul":true,"scan_status":"failed"}}`,
		`{"image_info":[{"id":1,"registry_type":"SwrShared","image_name":"a\u2028<b>&"}]}`,
		`{"image_info":[]}`, `{"query_info":{}}`, `{} x`, `[1]`, `{"rate_limit":"1"}`, "{\"image_name\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeScanTaskBody(data)
		if err != nil {
			if code := ErrorCodeFor(err); code != "HSS.0001" && code != "HSS.0002" {
				t.Fatalf("error %v maps to %q", err, code)
			}
			return
		}
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(b); err != nil {
			t.Fatalf("encode accepted body: %v", err)
		}
		again, err := DecodeScanTaskBody([]byte(buf.String()))
		if err != nil {
			t.Fatalf("re-decoding %s: %v", buf.String(), err)
		}
		if !reflect.DeepEqual(b, again) {
			t.Fatalf("round trip changed the body:\n%+v\n%+v", b, again)
		}
	})
}
