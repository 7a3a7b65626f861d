package hss

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	return DecodeScanTaskBodyMax(data, 0)
}

// DecodeScanTaskBodyMax is DecodeScanTaskBody with at most maxImages
// image_info entries (0 = no limit): a longer list is a *TooManyItemsError
// found before anything is decoded.
func DecodeScanTaskBodyMax(data []byte, maxImages int) (*ScanTaskBody, error) {
	var b ScanTaskBody
	if err := DecodeStrictMax(data, &b, false, maxImages); err != nil {
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
	shown := e.Fields[:min(len(e.Fields), maxNamedFields)]
	quoted := make([]string, len(shown))
	for i, f := range shown {
		quoted[i] = strconv.Quote(Clip(f))
	}
	word := "field"
	if len(e.Fields) > 1 {
		word = "fields"
	}
	msg := "unknown " + word + " " + strings.Join(quoted, ", ")
	if more := len(e.Fields) - len(shown); more > 0 {
		msg += " and " + strconv.Itoa(more) + " more"
	}
	return msg
}

// maxNamedFields is how many unknown fields an error names.
const maxNamedFields = 10

// DecodeStrict decodes the single JSON object data into the struct v points
// to, field by field, so that every error names its field by the full path
// ("query_info.pod_id", "image_info[2].registry_type"):
//
//   - anything but exactly one JSON object is a *ParseError, and so is one
//     nested deeper than MaxDepth;
//   - a name given twice in one object, and a string with a control
//     character, a lone surrogate or bytes that are not UTF-8, are a
//     *ValidationError naming the field (checkMembers);
//   - with rejectUnknown, fields the struct does not have are an
//     *UnknownFieldsError naming all of that object's; otherwise ignored;
//   - a value of the wrong JSON type or outside its Go type's range is a
//     *ValidationError;
//   - names match exactly; null means "not sent"; an empty array of objects
//     is none; untagged embedded structs are flattened as encoding/json does,
//     and types with their own UnmarshalJSON decode themselves.
func DecodeStrict(data []byte, v any, rejectUnknown bool) error {
	return DecodeStrictMax(data, v, rejectUnknown, 0)
}

// DecodeStrictMax is DecodeStrict with at most maxItems items in any array
// (0 = no limit): a longer one is a *TooManyItemsError, found before
// anything is decoded.
func DecodeStrictMax(data []byte, v any, rejectUnknown bool, maxItems int) error {
	obj, err := wellFormed(data)
	if err != nil {
		return err
	}
	if err := checkMembers(obj, maxItems); err != nil {
		return err
	}
	d := strictDecoder{rejectUnknown: rejectUnknown}
	_, err = d.object("", obj, reflect.ValueOf(v).Elem())
	return err
}

type strictDecoder struct{ rejectUnknown bool }

// structFields is what the decoder needs of a struct type: its JSON names
// and, for each, the field's index path, whether it decodes itself, and its
// rank among the names in sorted order.
type structFields struct {
	byName map[string]fieldInfo
	sorted []fieldInfo // by name
}

type fieldInfo struct {
	name        string
	index       []int
	unmarshaler bool // *T implements json.Unmarshaler
	rank        int  // position in sorted
}

var fieldCache sync.Map // reflect.Type -> *structFields

// jsonFields maps the JSON names of struct type t to its fields, flattening
// untagged embedded structs. Computed once per type.
func jsonFields(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	byName := map[string]fieldInfo{}
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
			byName[name] = fieldInfo{name: name, index: idx, unmarshaler: reflect.PointerTo(f.Type).Implements(unmarshalerType)}
		}
	}
	walk(t, nil)
	out := &structFields{byName: byName}
	for _, f := range byName {
		out.sorted = append(out.sorted, f)
	}
	slices.SortFunc(out.sorted, func(a, b fieldInfo) int { return strings.Compare(a.name, b.name) })
	for i, f := range out.sorted {
		f.rank = i
		out.sorted[i], byName[f.name] = f, f
	}
	fieldCache.Store(t, out)
	return out
}

// maxItemsPrealloc bounds the items an array's slice is first made room for:
// a first item of two bytes ({}) in a 12 MiB body would otherwise ask for
// four million.
const maxItemsPrealloc = 4096

// maxStackFields is how many fields a struct may have for its object's
// values to be gathered without allocating.
const maxStackFields = 32

// object decodes the JSON object (or null) at the start of data into v and
// returns where it ends.
func (d strictDecoder) object(path string, data []byte, v reflect.Value) (end int, err error) {
	fields := jsonFields(v.Type())
	var buf [maxStackFields][]byte
	values := buf[:0]
	if len(fields.sorted) > maxStackFields {
		values = make([][]byte, len(fields.sorted))
	}
	values = values[:len(fields.sorted)]
	unknown, end, ok := d.scanObject(path, data, fields, values)
	if !ok {
		return 0, &ValidationError{strings.TrimSuffix(path, "."), "must be an object, got " + describe(data)}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return 0, &UnknownFieldsError{Fields: unknown}
	}
	// Decode in a fixed order (by name) so that the first error is always
	// the same. (No name is given twice: checkMembers refused that.)
	for i, val := range values {
		if val == nil || string(val) == "null" {
			continue
		}
		f := &fields.sorted[i]
		if err := d.value(path, f.name, val, v.FieldByIndex(f.index), f.unmarshaler); err != nil {
			return 0, err
		}
	}
	return end, nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// value decodes the value of field name of the object at path (which ends
// in "." unless empty); the field's full path is only built when needed.
func (d strictDecoder) value(path, name string, data []byte, v reflect.Value, unmarshaler bool) error {
	if unmarshaler {
		if err := json.Unmarshal(data, v.Addr().Interface()); err != nil {
			return &ValidationError{path + name, err.Error()}
		}
		return nil
	}
	switch {
	case v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct:
		v.Set(reflect.New(v.Type().Elem()))
		_, err := d.object(path+name+".", data, v.Elem())
		return err
	case v.Kind() == reflect.Struct:
		_, err := d.object(path+name+".", data, v)
		return err
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		return d.array(path+name, data, v)
	}
	if scalar(data, v) {
		return nil
	}
	if err := json.Unmarshal(data, v.Addr().Interface()); err != nil {
		return &ValidationError{path + name, fmt.Sprintf("must be %s, got %s", jsonKind(v.Type()), describe(data))}
	}
	return nil
}

// scalar sets v (a string, bool or integer, or a pointer to one) from the
// JSON literal data when that is the plain common case: a string with no
// escapes and only printable ASCII, true or false, a decimal integer in
// range. It reports whether it did; otherwise encoding/json decides, with
// its own conversions and errors.
func scalar(data []byte, v reflect.Value) bool {
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var set func(reflect.Value)
	switch t.Kind() {
	case reflect.String:
		if len(data) < 2 || data[0] != '"' {
			return false
		}
		body := data[1 : len(data)-1]
		if !plainString(body) {
			return false
		}
		set = func(e reflect.Value) { e.SetString(string(body)) }
	case reflect.Bool:
		switch string(data) {
		case "true":
			set = func(e reflect.Value) { e.SetBool(true) }
		case "false":
			set = func(e reflect.Value) { e.SetBool(false) }
		default:
			return false
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(string(data), 10, t.Bits())
		if err != nil {
			return false
		}
		set = func(e reflect.Value) { e.SetInt(n) }
	default:
		return false
	}
	if v.Kind() == reflect.Pointer {
		e := reflect.New(t).Elem()
		set(e)
		v.Set(e.Addr())
	} else {
		set(v)
	}
	return true
}

// array decodes the JSON array of objects data (valid JSON; null and [] are
// none) into the slice v, item by item as it goes: an object item's end is
// where its decoding stopped, so the array is not scanned for its items
// first.
func (d strictDecoder) array(path string, data []byte, v reflect.Value) error {
	if string(data) == "null" {
		return nil
	}
	if len(data) == 0 || data[0] != '[' {
		return &ValidationError{path, "must be an array, got " + describe(data)}
	}
	i := skipSpace(data, 1)
	if data[i] == ']' {
		return nil
	}
	// v (a struct field, so settable) grows an item at a time, and is
	// decoded into in place.
	v.Set(reflect.MakeSlice(v.Type(), 0, 1))
	for n := 0; ; n++ {
		if n == v.Cap() {
			more := reflect.MakeSlice(v.Type(), n, 2*n)
			reflect.Copy(more, v)
			v.Set(more)
		}
		v.SetLen(n + 1)
		itemPath := path + "[" + strconv.Itoa(n) + "]."
		if data[i] == '{' {
			end, err := d.object(itemPath, data[i:], v.Index(n))
			if err != nil {
				return err
			}
			if n == 0 {
				// Items of one array tend to be alike: room for as many as
				// the first one's size says the array holds.
				more := reflect.MakeSlice(v.Type(), 1, min(len(data)/(end+1)+1, maxItemsPrealloc))
				reflect.Copy(more, v)
				v.Set(more)
			}
			i += end
		} else {
			end := skipValue(data, i)
			if _, err := d.object(itemPath, data[i:end], v.Index(n)); err != nil {
				return err
			}
			i = end
		}
		i = skipSpace(data, i)
		if data[i] == ']' {
			return nil
		}
		i = skipSpace(data, i+1) // ','
	}
}

// scanObject puts the value of each member of the JSON object data whose
// name the struct has into values, at the name's rank (the last of a name
// given twice stays); data must start with valid JSON (DecodeStrict checks
// the whole body once). null is an object with no members, as encoding/json
// has it; anything else is not an object (ok false). It returns where the
// object ends and, with rejectUnknown, the full paths of the names the
// struct does not have.
func (d strictDecoder) scanObject(path string, data []byte, fields *structFields, values [][]byte) (unknown []string, end int, ok bool) {
	if len(data) >= 4 && string(data[:4]) == "null" {
		return nil, 4, true
	}
	if len(data) == 0 || data[0] != '{' {
		return nil, 0, false
	}
	i := skipSpace(data, 1)
	if data[i] == '}' {
		return nil, i + 1, true
	}
	for {
		end := skipString(data, i)
		f, known := fields.byName[string(data[i+1:end-1])]
		if !known {
			// A name with escapes may still be a known one.
			name, ok := unquote(data[i:end])
			if !ok {
				return nil, 0, false
			}
			// No name is given twice (checkMembers), so each unknown one
			// is new.
			if f, known = fields.byName[name]; !known && d.rejectUnknown {
				unknown = append(unknown, path+name)
			}
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // ':'
		vend := skipValue(data, i)
		if known {
			values[f.rank] = data[i:vend]
		}
		i = skipSpace(data, vend)
		if data[i] == '}' {
			return unknown, i + 1, true
		}
		i = skipSpace(data, i+1) // ','
	}
}

// unquote decodes a JSON string literal: directly when it is plain, else as
// encoding/json does (which also replaces invalid UTF-8).
func unquote(lit []byte) (string, bool) {
	body := lit[1 : len(lit)-1]
	if plainString(body) {
		return string(body), true
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return "", false
	}
	return s, true
}

// plainString reports whether the body of a valid JSON string literal means
// itself: printable ASCII and no escapes.
func plainString(body []byte) bool {
	for _, c := range body {
		if c < 0x20 || c > 0x7e || c == '\\' {
			return false
		}
	}
	return true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string literal starting at i:
// after the first quote not escaped by an odd run of backslashes.
func skipString(data []byte, i int) int {
	for i++; ; i++ {
		j := bytes.IndexByte(data[i:], '"')
		if j < 0 {
			return len(data)
		}
		i += j
		k := i
		for data[k-1] == '\\' {
			k--
		}
		if (i-k)%2 == 0 {
			return i + 1
		}
	}
}

// skipValue returns the index after the JSON value starting at i.
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for ; i < len(data); i++ {
			switch data[i] {
			case '"':
				i = skipString(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
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
