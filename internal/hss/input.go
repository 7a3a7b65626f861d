package hss

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"unicode"
	"unicode/utf8"

	fastjson "github.com/segmentio/encoding/json"
)

// MaxDepth is how deeply JSON from outside (a request body, an HSS
// response) may nest objects and arrays. No body scanq or HSS exchanges
// nests deeper than 4 (query_info in a body, items in a list page); 32
// leaves room and stops a body of a million brackets before any recursive
// decoder sees it: the fast validator and decoder recurse once per level and
// a deep enough body overflows the goroutine stack, a fatal error no
// recover catches.
const MaxDepth = 32

// CheckDepth returns a *ParseError when data nests objects and arrays
// deeper than maxDepth. It reads data once, without recursion, and judges
// nothing else: data need not be valid JSON.
func CheckDepth(data []byte, maxDepth int) error {
	depth := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			i = skipString(data, i) - 1
		case '{', '[':
			if depth++; depth > maxDepth {
				return &ParseError{Reason: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// wellFormed returns the single JSON object data holds, without surrounding
// space: nested at most MaxDepth deep, valid, nothing after it. Anything
// else is a *ParseError.
func wellFormed(data []byte) ([]byte, error) {
	if err := CheckDepth(data, MaxDepth); err != nil {
		return nil, err
	}
	// The common case, one valid object, checked by a fast validator; any
	// other body takes encoding/json's way, for its errors.
	if obj := bytes.Trim(data, " \t\r\n"); len(obj) > 0 && obj[0] == '{' && fastjson.Valid(obj) {
		return obj, nil
	}
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
	return raw, nil
}

// checkMembers refuses what valid JSON allows but no request should carry,
// as a *ValidationError naming the field:
//
//   - a member name given twice in one object (encoding/json would keep the
//     last, so two readers of one body could disagree on what it asks);
//   - a string with a control character (C0, DEL or C1, escaped or not),
//     an invisible formatting character (invisible), a lone UTF-16
//     surrogate escape, or bytes that are not UTF-8: none belongs in an
//     image name or an id, and each would be forwarded to HSS and shown to
//     operators as it came.
//
// data is one valid JSON value (wellFormed's); the walk is iterative.
//
// With maxItems > 0, an array of more than maxItems items is a
// *TooManyItemsError, found before anything is decoded: a 12 MiB body of
// two million nulls would otherwise become a slice of two million structs.
func checkMembers(data []byte, maxItems int) error {
	var (
		stack [MaxDepth]memberFrame // wellFormed bounds the depth
		top   = -1
		// names holds the member names of every open object, each
		// object's after its parent's: a name is compared where it stands
		// in data, and nothing is allocated per object.
		names [][]byte
	)
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			top++
			stack[top] = memberFrame{expectKey: true, names: len(names)}
		case '[':
			top++
			stack[top] = memberFrame{array: true}
		case '}', ']':
			if !stack[top].array {
				names = names[:stack[top].names]
			}
			top--
		case ',':
			if f := &stack[top]; f.array {
				if f.index++; maxItems > 0 && f.index >= maxItems {
					return &TooManyItemsError{Field: memberPath(stack[:top]), Max: maxItems}
				}
			} else {
				f.expectKey = true
			}
		case '"':
			end := skipString(data, i)
			body := data[i+1 : end-1]
			if top < 0 { // a bare string, not in an object or array
				if reason := badString(body); reason != "" {
					return &ValidationError{memberPath(nil), reason}
				}
				i = end - 1
				continue
			}
			f := &stack[top]
			if !f.array && f.expectKey {
				f.expectKey = false
				if reason := badString(body); reason != "" {
					return &ValidationError{memberPath(stack[:top]), "has a member name that " + reason}
				}
				name := body
				if bytes.IndexByte(body, '\\') >= 0 {
					n, _ := unquote(data[i:end])
					name = []byte(n)
				}
				f.key = name
				if f.seen(names, name) {
					return &ValidationError{memberPath(stack[:top+1]), "is given more than once"}
				}
				names = append(names, name)
			} else if reason := badString(body); reason != "" {
				return &ValidationError{memberPath(stack[:top+1]), reason}
			}
			i = end - 1
		}
	}
	return nil
}

// memberFrame is one open object or array of checkMembers' walk.
type memberFrame struct {
	array     bool
	index     int    // array: the current item
	key       []byte // object: the current member's name
	expectKey bool
	names     int                 // object: where its names start in checkMembers' names
	set       map[string]struct{} // object: its names, once it has many
}

// manyNames is how many member names an object may have before they are
// kept in a map: an object of a few names compares them in place, and a
// hostile one of a hundred thousand stays linear.
const manyNames = 16

// seen reports whether name is among the object's names so far (names
// from f.names on).
func (f *memberFrame) seen(names [][]byte, name []byte) bool {
	if f.set != nil {
		if _, ok := f.set[string(name)]; ok {
			return true
		}
		f.set[string(name)] = struct{}{}
		return false
	}
	mine := names[f.names:]
	for _, k := range mine {
		if bytes.Equal(k, name) {
			return true
		}
	}
	if len(mine) == manyNames {
		f.set = make(map[string]struct{}, 4*manyNames)
		for _, k := range mine {
			f.set[string(k)] = struct{}{}
		}
		f.set[string(name)] = struct{}{}
	}
	return false
}

// memberPath names the member or item the frames lead to:
// "image_info[2].id"; "request body" for none.
func memberPath(frames []memberFrame) string {
	var b []byte
	for _, f := range frames {
		if f.array {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(f.index), 10)
			b = append(b, ']')
			continue
		}
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, Clip(string(f.key))...)
	}
	if len(b) == 0 {
		return "request body"
	}
	return string(b)
}

// TooManyItemsError is an array with more items than its decoder accepts:
// HSS's 400 HSS.0001, like a *ValidationError.
type TooManyItemsError struct {
	Field string // the array's path
	Max   int
}

func (e *TooManyItemsError) Error() string {
	return fmt.Sprintf("invalid parameter %s: more than %d items", e.Field, e.Max)
}

// clipLen is how much of an outside value an error message repeats.
const clipLen = 64

// Clip shortens an outside value (a name, a field value) for an error
// message: at most 64 bytes of it, cut at a character boundary, and how
// long it was. A message never repeats a megabyte the client sent.
func Clip(s string) string { return ClipTo(s, clipLen) }

// ClipTo is Clip at n bytes.
func ClipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// badString says what is wrong with the body of a valid JSON string
// literal, or "" when nothing is: see checkMembers.
func badString(body []byte) string {
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c == '\\':
			if body[i+1] != 'u' {
				switch body[i+1] {
				case '"', '\\', '/':
					i += 2
					continue
				}
				return "contains a control character (escaped \\" + string(body[i+1]) + ")"
			}
			r := hex4(body[i+2 : i+6])
			i += 6
			switch {
			case utf16IsHigh(r):
				if i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' && utf16IsLow(hex4(body[i+2:i+6])) {
					i += 6
					continue
				}
				return fmt.Sprintf("contains a lone surrogate (\\u%04x)", r)
			case utf16IsLow(r):
				return fmt.Sprintf("contains a lone surrogate (\\u%04x)", r)
			case unicode.IsControl(r):
				return fmt.Sprintf("contains a control character (U+%04X)", r)
			case invisible(r):
				return fmt.Sprintf("contains an invisible formatting character (U+%04X)", r)
			}
		case c < utf8.RuneSelf:
			if c < 0x20 || c == 0x7f {
				return fmt.Sprintf("contains a control character (U+%04X)", c)
			}
			i++
		default:
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size == 1 {
				return "is not valid UTF-8"
			}
			if unicode.IsControl(r) {
				return fmt.Sprintf("contains a control character (U+%04X)", r)
			}
			if invisible(r) {
				return fmt.Sprintf("contains an invisible formatting character (U+%04X)", r)
			}
			i += size
		}
	}
	return ""
}

// invisible reports the characters that change how a name reads without
// being seen: format characters (bidi overrides such as U+202E, zero-width
// spaces and joiners, the byte order mark) and the line and paragraph
// separators. No image, registry or namespace name has one; in a name
// shown to an operator each can disguise it.
func invisible(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

func utf16IsHigh(r rune) bool { return r >= 0xd800 && r < 0xdc00 }
func utf16IsLow(r rune) bool  { return r >= 0xdc00 && r < 0xe000 }

// hex4 decodes the four hex digits of a valid \u escape.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// CreateRequestOf is what a server reads of a CreateManualImageScanTask
// call to project before its body: the query's enterprise_project_id and
// global_image_type, and the region header. Validate checks them.
func CreateRequestOf(r *http.Request, project string) CreateScanTaskRequest {
	q := r.URL.Query()
	return CreateScanTaskRequest{
		ProjectID:           project,
		EnterpriseProjectID: q.Get("enterprise_project_id"),
		GlobalImageType:     q.Get("global_image_type"),
		Region:              r.Header.Get("Region"),
	}
}
