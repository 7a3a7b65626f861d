package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
)

// decodeStrict decodes the JSON object data into the struct v points to,
// field by field, so that every error names the field by its full path
// ("query_info.pod_id", "image_info[2].registry_type"):
//
//   - anything but one JSON object is invalid_json;
//   - a field the struct does not have is unknown_field, naming every
//     unknown field of that object;
//   - a value of the wrong JSON type or outside its Go type's range is
//     invalid_field;
//   - names match exactly (encoding/json alone would take "Rate_Limit");
//     null means "not sent", and an empty array of objects is none, as
//     for HSS.
//
// Embedded structs without a JSON name are flattened, as encoding/json does,
// so jobs.ScanRequest (which embeds hss.ScanTaskBody) reads flat.
func decodeStrict(data []byte, v any) *requestError {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return &requestError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: "request body is empty; send a JSON object"}
		}
		return &requestError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: "request body is not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &requestError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: "request body has data after the JSON object"}
	}
	if raw[0] != '{' {
		return &requestError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: "request body must be a JSON object"}
	}
	return decodeObject("", raw, reflect.ValueOf(v).Elem())
}

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

func decodeObject(path string, data []byte, v reflect.Value) *requestError {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return fieldError(strings.TrimSuffix(path, "."), "must be an object, got "+describe(data))
	}
	known := jsonFields(v.Type())
	var unknown []string
	for name := range fields {
		if _, ok := known[name]; !ok {
			unknown = append(unknown, path+name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		quoted := make([]string, len(unknown))
		for i, u := range unknown {
			quoted[i] = fmt.Sprintf("%q", u)
		}
		word := "field"
		if len(unknown) > 1 {
			word = "fields"
		}
		return &requestError{status: http.StatusBadRequest, code: codeUnknownField, field: unknown[0],
			msg: fmt.Sprintf("unknown %s %s", word, strings.Join(quoted, ", "))}
	}
	// Decode in a fixed order so that the first error is always the same.
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		raw := fields[name]
		if string(raw) == "null" {
			continue
		}
		if err := decodeValue(path+name, raw, v.FieldByIndex(known[name])); err != nil {
			return err
		}
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func decodeValue(path string, data []byte, v reflect.Value) *requestError {
	if v.Addr().Type().Implements(unmarshalerType) {
		if err := json.Unmarshal(data, v.Addr().Interface()); err != nil {
			return fieldError(path, err.Error())
		}
		return nil
	}
	switch {
	case v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct:
		v.Set(reflect.New(v.Type().Elem()))
		return decodeObject(path+".", data, v.Elem())
	case v.Kind() == reflect.Struct:
		return decodeObject(path+".", data, v)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return fieldError(path, "must be an array, got "+describe(data))
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
		return fieldError(path, fmt.Sprintf("must be %s, got %s", jsonKind(v.Type()), describe(data)))
	}
	return nil
}

func fieldError(field, reason string) *requestError {
	return &requestError{status: http.StatusBadRequest, code: codeInvalidField, field: field,
		msg: "invalid parameter " + field + ": " + reason}
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

// checkJSONContentType refuses a body that is not declared JSON: 415.
// application/json and any +json type are JSON.
func checkJSONContentType(r *http.Request) *requestError {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return &requestError{status: http.StatusUnsupportedMediaType, code: codeUnsupportedMediaType,
		msg: "Content-Type must be application/json"}
}

// readJSON reads a native route's body: within the size limit (413), and
// when there is one, declared JSON (415). An empty body is returned as nil.
func (h *Handler) readJSON(w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	if r.ContentLength > 0 {
		// Known to carry a body: refuse a wrong type before reading it.
		if rerr := checkJSONContentType(r); rerr != nil {
			return nil, rerr
		}
	}
	body, rerr := readBody(w, r, h.opts.MaxBodyBytes)
	if rerr != nil {
		return nil, rerr
	}
	if len(body) == 0 {
		return nil, nil
	}
	if rerr := checkJSONContentType(r); rerr != nil {
		return nil, rerr
	}
	return body, nil
}
