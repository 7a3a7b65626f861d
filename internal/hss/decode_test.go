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
		// Hostile input (issue 10): refused before any recursive work, or
		// as the field it is in.
		{"nested two million deep", `{"x":` + strings.Repeat("[", 2_100_000), "HSS.0002", "nested deeper than 32 levels"},
		{"nested a million deep, closed", `{"x":` + strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000) + `}`, "HSS.0002", "nested deeper than 32 levels"},
		{"nested 33 deep in an ignored field", `{"x":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, "HSS.0002", "nested deeper than 32 levels"},
		{"brackets in strings do not nest", `{"x":"` + strings.Repeat("[", 100) + `"}`, "", ""},
		{"duplicate key", `{"rate_limit":1,"rate_limit":2}`, "HSS.0001", "invalid parameter rate_limit: is given more than once"},
		{"duplicate key, escaped", `{"rate_limit":1,"r\u0061te_limit":2}`, "HSS.0001", "invalid parameter rate_limit: is given more than once"},
		{"duplicate key in an item", `{"image_info":[{"id":1},{"id":2,"id":3}]}`, "HSS.0001", "invalid parameter image_info[1].id: is given more than once"},
		{"duplicate unknown key", `{"x":1,"x":2}`, "HSS.0001", "invalid parameter x: is given more than once"},
		{"NUL in a name", `{"image_info":[{"image_name":"a\u0000b"}]}`, "HSS.0001", "invalid parameter image_info[0].image_name: contains a control character (U+0000)"},
		{"ESC in a name", `{"image_info":[{"image_name":"\u001b[31m"}]}`, "HSS.0001", "image_info[0].image_name: contains a control character (U+001B)"},
		{"newline in a name", `{"query_info":{"image_name":"a\nb"}}`, "HSS.0001", `query_info.image_name: contains a control character (escaped \n)`},
		{"DEL in a name", "{\"query_info\":{\"namespace\":\"a\x7f\"}}", "HSS.0001", "query_info.namespace: contains a control character (U+007F)"},
		{"C1 control in a name", "{\"query_info\":{\"namespace\":\"a\u0085\"}}", "HSS.0001", "query_info.namespace: contains a control character (U+0085)"},
		{"lone high surrogate", `{"image_info":[{"image_name":"\ud800"}]}`, "HSS.0001", `image_info[0].image_name: contains a lone surrogate (\ud800)`},
		{"lone low surrogate", `{"image_info":[{"image_name":"a\udc00"}]}`, "HSS.0001", `contains a lone surrogate (\udc00)`},
		{"surrogate pair", `{"image_info":[{"image_name":"\ud83d\ude00"}]}`, "", ""},
		{"invalid UTF-8", "{\"image_info\":[{\"image_name\":\"a\xffb\"}]}", "HSS.0001", "image_info[0].image_name: is not valid UTF-8"},
		{"control character in a member name", `{"a\u0000":1}`, "HSS.0001", "invalid parameter request body: has a member name that contains a control character (U+0000)"},
		{"non-ASCII names are fine", `{"image_info":[{"image_name":"образ-镜像"}]}`, "", ""},
		{"right-to-left override", `{"image_info":[{"image_name":"evil\u202egnp.exe"}]}`, "HSS.0001", "image_info[0].image_name: contains an invisible formatting character (U+202E)"},
		{"zero-width space, raw", "{\"query_info\":{\"namespace\":\"team\u200b-a\"}}", "HSS.0001", "query_info.namespace: contains an invisible formatting character (U+200B)"},
		{"byte order mark", `{"image_info":[{"namespace":"\ufeffteam"}]}`, "HSS.0001", "(U+FEFF)"},
		{"line separator", `{"image_info":[{"image_name":"a\u2028b"}]}`, "HSS.0001", "(U+2028)"},
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
		"query_info":{"image_name":"nginx","has_vul":false,"end_latest_scan_time":1700000000000}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &ScanTaskBody{
		ScanScope: new(ScanScopeVuln),
		RateLimit: new(int32(0)),
		IsAll:     new(false),
		QueryInfo: &QueryInfo{ImageName: new("nginx"), HasVul: new(false), EndLatestScanTime: new(int64(1700000000000))},
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
	for _, seed := range hostileSeeds {
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
