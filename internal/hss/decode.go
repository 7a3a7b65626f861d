package hss

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
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
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ParseError{Reason: "empty body"}
		}
		return nil, &ParseError{Reason: "invalid JSON", Err: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &ParseError{Reason: "data after the JSON object"}
	}
	if raw[0] != '{' {
		return nil, &ParseError{Reason: "body is not a JSON object"}
	}
	var b ScanTaskBody
	if err := decodeObject("", raw, reflect.ValueOf(&b).Elem()); err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

// decodeObject decodes a JSON object into the struct v field by field, so
// that an error can name the field with its full path.
func decodeObject(path string, data []byte, v reflect.Value) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return &ValidationError{strings.TrimSuffix(path, "."), "must be an object"}
	}
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := decodeValue(path+name, raw, v.Field(i)); err != nil {
			return err
		}
	}
	return nil
}

func decodeValue(path string, data []byte, v reflect.Value) error {
	switch {
	case v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct:
		v.Set(reflect.New(v.Type().Elem()))
		return decodeObject(path+".", data, v.Elem())
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return &ValidationError{path, "must be an array"}
		}
		if len(items) == 0 {
			return nil
		}
		v.Set(reflect.MakeSlice(v.Type(), len(items), len(items)))
		for i, item := range items {
			if err := decodeObject(fmt.Sprintf("%s[%d].", path, i), item, v.Index(i)); err != nil {
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
	}
	if len(data) > 32 {
		return "a number"
	}
	return string(data)
}
