package hss

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
//   - a string with a control character (C0, DEL or C1, escaped or not), a
//     lone UTF-16 surrogate escape, or bytes that are not UTF-8: none
//     belongs in an image name or an id, and each would be forwarded to HSS
//     and shown to operators as it came.
//
// data is one valid JSON value (wellFormed's); the walk is iterative.
func checkMembers(data []byte) error {
	var stack []memberFrame
	// path names the member or item being read: "image_info[2].id".
	path := func(stack []memberFrame) string {
		var b []byte
		for _, f := range stack {
			if f.array {
				b = append(b, '[')
				b = strconv.AppendInt(b, int64(f.index), 10)
				b = append(b, ']')
				continue
			}
			if len(b) > 0 {
				b = append(b, '.')
			}
			b = append(b, f.key...)
		}
		if len(b) == 0 {
			return "request body"
		}
		return string(b)
	}
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			stack = append(stack, memberFrame{expectKey: true})
		case '[':
			stack = append(stack, memberFrame{array: true})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if top := &stack[len(stack)-1]; top.array {
				top.index++
			} else {
				top.expectKey = true
			}
		case '"':
			end := skipString(data, i)
			lit := data[i:end]
			i = end - 1
			if len(stack) > 0 && !stack[len(stack)-1].array && stack[len(stack)-1].expectKey {
				top := &stack[len(stack)-1]
				top.expectKey = false
				if reason := badString(lit[1 : len(lit)-1]); reason != "" {
					return &ValidationError{path(stack[:len(stack)-1]), "has a member name that " + reason}
				}
				name, _ := unquote(lit)
				top.key = name
				if top.seen(name) {
					return &ValidationError{path(stack), "is given more than once"}
				}
				continue
			}
			if reason := badString(lit[1 : len(lit)-1]); reason != "" {
				return &ValidationError{path(stack), reason}
			}
		}
	}
	return nil
}

// memberFrame is one open object or array of checkMembers' walk.
type memberFrame struct {
	array     bool
	index     int    // array: the current item
	key       string // object: the current member's name
	expectKey bool
	keys      []string            // object: the names so far, while few
	keySet    map[string]struct{} // ... and all of them once there are many
}

// seen records name among the object's member names and reports whether it
// was there already. A few names are compared in a slice; a hostile object
// with many members moves them to a map, so the check stays linear.
func (f *memberFrame) seen(name string) bool {
	if f.keySet != nil {
		if _, ok := f.keySet[name]; ok {
			return true
		}
		f.keySet[name] = struct{}{}
		return false
	}
	for _, k := range f.keys {
		if k == name {
			return true
		}
	}
	f.keys = append(f.keys, name)
	if len(f.keys) > 16 {
		f.keySet = make(map[string]struct{}, 2*len(f.keys))
		for _, k := range f.keys {
			f.keySet[k] = struct{}{}
		}
		f.keys = nil
	}
	return false
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
			i += size
		}
	}
	return ""
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
