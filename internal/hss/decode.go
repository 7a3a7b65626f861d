package hss

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// ParseError is a body that is not one JSON object: HSS's 400 HSS.0002.
type ParseError struct {
	Reason string
	Err    error // the decoder's error, if any
}

func (e *ParseError) Error() string {
	if e.Err != nil {
		return "cannot parse request body: " + e.Reason + ": " + e.Err.Error()
	}
	return "cannot parse request body: " + e.Reason
}

func (e *ParseError) Unwrap() error { return e.Err }

// DecodeScanTaskBody decodes and validates a CreateManualImageScanTask body
// the way HSS does, so the emulator and scanq's HSS-compatible endpoint
// accept the same bodies:
//
//   - anything but exactly one JSON object is a *ParseError (HSS.0002),
//     including trailing data after the object;
//   - a field of the wrong JSON type, or a number outside its type's range,
//     is a *ValidationError naming the field (HSS.0001), as is any rule
//     Validate checks;
//   - field names match exactly (encoding/json alone would also take
//     "Rate_Limit"); unknown fields are ignored, as HSS ignores them;
//   - null means "not sent", and an empty image_info array is the same as
//     none.
func DecodeScanTaskBody(data []byte) (*ScanTaskBody, error) {
	var b ScanTaskBody
	if err := DecodeStrict(data, &b, false); err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

// UnknownFieldsError names the fields of an object that its type does not
// have, each by its full path, sorted.
type UnknownFieldsError struct{ Fields []string }

func (e *UnknownFieldsError) Error() string {
	quoted := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		quoted[i] = strconv.Quote(f)
	}
	word := "field"
	if len(e.Fields) > 1 {
		word = "fields"
	}
	return "unknown " + word + " " + strings.Join(quoted, ", ")
}

// DecodeStrict decodes the single JSON object data into the struct v points
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
func DecodeStrict(data []byte, v any, rejectUnknown bool) error {
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
	d := strictDecoder{rejectUnknown: rejectUnknown}
	return d.object("", raw, reflect.ValueOf(v).Elem())
}

type strictDecoder struct{ rejectUnknown bool }

// jsonFields maps the JSON names of struct type t to field index paths,
// flattening untagged embedded structs.
func jsonFields(t reflect.Type) map[string][]int {
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

func (d strictDecoder) object(path string, data []byte, v reflect.Value) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return &ValidationError{strings.TrimSuffix(path, "."), "must be an object, got " + describe(data)}
	}
	known := jsonFields(v.Type())
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

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func (d strictDecoder) value(path string, data []byte, v reflect.Value) error {
	if v.Addr().Type().Implements(unmarshalerType) {
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

func jsonKind(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int32:
		return "an integer in int32 range"
	case reflect.Int64:
		return "an integer in int64 range"
	case reflect.Int:
		return "an integer"
	}
	return "a " + t.String()
}

// describe names a JSON value for an error message without echoing a long
// or hostile input back.
func describe(data []byte) string {
	switch data[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	if len(data) > 32 {
		return "a number"
	}
	return string(data)
}
