package hss

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// refDecodeStrict is DecodeStrict as first written: simple and slow (every
// nesting level re-parses its part of the body through encoding/json). It
// is kept as the oracle the faster DecodeStrict must agree with.
//
// It decodes the single JSON object data into the struct v points
// to, field by field, so that every error names its field by the full path
// ("query_info.pod_id", "image_info[2].registry_type"):
//
//   - anything but exactly one JSON object is a *ParseError;
//   - with rejectUnknown, fields the struct does not have are an
//     *UnknownFieldsError naming all of that object's; otherwise ignored;
//   - a value of the wrong JSON type or outside its Go type's range is a
//     *ValidationError;
//   - names match exactly; null means "not sent"; an empty array of objects
//     is none; untagged embedded structs are flattened as encoding/json does,
//     and types with their own UnmarshalJSON decode themselves.
func refDecodeStrict(data []byte, v any, rejectUnknown bool) error {
	if err := CheckDepth(data, MaxDepth); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return &ParseError{Reason: "empty body"}
		}
		return &ParseError{Reason: "invalid JSON", Err: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &ParseError{Reason: "data after the JSON object"}
	}
	if raw[0] != '{' {
		return &ParseError{Reason: "body is not a JSON object"}
	}
	// The member checks are DecodeStrict's own (FuzzCheckMembers tests
	// them); this oracle is for the decoding.
	if err := checkMembers(raw, 0); err != nil {
		return err
	}
	d := refDecoder{rejectUnknown: rejectUnknown}
	return d.object("", raw, reflect.ValueOf(v).Elem())
}

type refDecoder struct{ rejectUnknown bool }

// refJSONFields maps the JSON names of struct type t to field index paths,
// flattening untagged embedded structs.
func refJSONFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			idx := append(slices.Clone(prefix), i)
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if name == "" {
				name = f.Name
			}
			out[name] = idx
		}
	}
	walk(t, nil)
	return out
}

func (d refDecoder) object(path string, data []byte, v reflect.Value) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return &ValidationError{strings.TrimSuffix(path, "."), "must be an object, got " + describe(data)}
	}
	known := refJSONFields(v.Type())
	if d.rejectUnknown {
		var unknown []string
		for name := range fields {
			if _, ok := known[name]; !ok {
				unknown = append(unknown, path+name)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			return &UnknownFieldsError{Fields: unknown}
		}
	}
	// Decode in a fixed order so that the first error is always the same.
	names := make([]string, 0, len(fields))
	for name := range fields {
		if _, ok := known[name]; ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		raw := fields[name]
		if string(raw) == "null" {
			continue
		}
		if err := d.value(path+name, raw, v.FieldByIndex(known[name])); err != nil {
			return err
		}
	}
	return nil
}

var refUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func (d refDecoder) value(path string, data []byte, v reflect.Value) error {
	if v.Addr().Type().Implements(refUnmarshalerType) {
		if err := json.Unmarshal(data, v.Addr().Interface()); err != nil {
			return &ValidationError{path, err.Error()}
		}
		return nil
	}
	switch {
	case v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct:
		v.Set(reflect.New(v.Type().Elem()))
		return d.object(path+".", data, v.Elem())
	case v.Kind() == reflect.Struct:
		return d.object(path+".", data, v)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return &ValidationError{path, "must be an array, got " + describe(data)}
		}
		if len(items) == 0 {
			return nil
		}
		v.Set(reflect.MakeSlice(v.Type(), len(items), len(items)))
		for i, item := range items {
			if err := d.object(fmt.Sprintf("%s[%d].", path, i), item, v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := json.Unmarshal(data, v.Addr().Interface()); err != nil {
		return &ValidationError{path, fmt.Sprintf("must be %s, got %s", jsonKind(v.Type()), describe(data))}
	}
	return nil
}

// FuzzDecodeStrictMatchesReference: the single-pass DecodeStrict decodes
// every input to the same value, or fails with the same error, as the
// reference decoder, with and without rejecting unknown fields.
func FuzzDecodeStrictMatchesReference(f *testing.F) {
	for _, seed := range []string{
		`{}`, `null`, `{"is_all":true,"rate_limit":1000,"scan_scope":2147483647}`,
		`{"query_info":{"pod_id":"x","image_size":0,"has_vul":true,"scan_status":"failed"}}`,
		`{"image_info":[{"id":1,"registry_type":"SwrShared","image_name":"a<b>&"}, null]}`,
		`{"image_info":[]}`, `{"query_info":{}}`, `{} x`, `[1]`, `{"rate_limit":"1"}`, "{\"image_name\":\"\xff\"}",
		`{"rate_limit":1,"rate_limit":2,"r\u0061te_limit":3}`, `{"x":1,"x":2,"y":{"a":[1,{"b":"}"}]}}`,
		` { "image_info" : [ { "id" : -0 , "image_version" : "v\"1" } ] , "is_all" : false } `,
		`{"rate_limit":1e2}`, `{"rate_limit":-2147483649}`, `{"query_info":{"image_size":9223372036854775807}}`,
		`{"image_info":[1]}`, `{"image_info":{}}`, `{"query_info":[]}`, `{"is_all":"true"}`, `{"Is_All":true}`,
	} {
		f.Add([]byte(seed))
	}
	for _, seed := range hostileSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, reject := range []bool{false, true} {
			var got, want ScanTaskBody
			gotErr := DecodeStrict(data, &got, reject)
			wantErr := refDecodeStrict(data, &want, reject)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Fatalf("reject unknown %v: error %v, reference %v", reject, gotErr, wantErr)
			}
			if fmt.Sprintf("%T", gotErr) != fmt.Sprintf("%T", wantErr) {
				t.Fatalf("reject unknown %v: error type %T, reference %T", reject, gotErr, wantErr)
			}
			if gotErr == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("reject unknown %v: decoded %+v, reference %+v", reject, got, want)
			}
		}
	})
}

// BenchmarkDecodeStrict decodes a CreateManualImageScanTask body of 100
// images (the default batch), as the emulator and scanq's HSS-compatible
// endpoint do for every call, against the reference decoder in the same run.
func BenchmarkDecodeStrict(b *testing.B) {
	body := ScanTaskBody{RateLimit: new(int32(0))}
	for i := range 100 {
		body.ImageInfo = append(body.ImageInfo, ImageInfo{
			ID: int64(i + 1), ImageID: fmt.Sprintf("sha256:%064x", i), ImageName: fmt.Sprintf("team-a/service-%d", i),
			ImageVersion: "v1.2.3", Namespace: "team-a", InstanceID: "instance-0001", RegistryType: "SwrPrivate",
		})
	}
	data, err := json.Marshal(body)
	if err != nil {
		b.Fatal(err)
	}
	for _, bench := range []struct {
		name   string
		decode func([]byte, any, bool) error
	}{{"single-pass", DecodeStrict}, {"reference", refDecodeStrict}} {
		b.Run(bench.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var got ScanTaskBody
				if err := bench.decode(data, &got, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
