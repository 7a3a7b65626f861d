package hss

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	fastjson "github.com/segmentio/encoding/json"
)

func TestCheckDepth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		ok   bool
		name string
	}{
		{`{}`, true, "flat"},
		{strings.Repeat("[", 32) + strings.Repeat("]", 32), true, "at the limit"},
		{strings.Repeat("[", 33), false, "beyond, unclosed"},
		{strings.Repeat("{\"a\":", 33) + "1" + strings.Repeat("}", 33), false, "objects beyond"},
		{`"` + strings.Repeat("[", 100) + `"`, true, "brackets in a string"},
		{`"\"` + strings.Repeat("[", 100) + `"`, true, "brackets after an escaped quote"},
		{`"\\"` + strings.Repeat("[", 33), false, "brackets after an escaped backslash"},
		{`"` + strings.Repeat("[", 100), true, "unterminated string"},
		{strings.Repeat("]", 100) + strings.Repeat("[", 32), true, "unbalanced closers count down"},
	}
	for _, tt := range tests {
		err := CheckDepth([]byte(tt.in), MaxDepth)
		if (err == nil) != tt.ok {
			t.Errorf("%s: CheckDepth = %v, want ok %v", tt.name, err, tt.ok)
		}
		if err != nil {
			if _, ok := errors.AsType[*ParseError](err); !ok {
				t.Errorf("%s: error %T, want *ParseError", tt.name, err)
			}
		}
	}
}

// FuzzCheckMembers: checkMembers never panics on valid JSON, what it
// accepts is clean when read back through encoding/json's token stream (no
// name twice in an object, no control character in a string, valid UTF-8),
// and what it refuses is not.
func FuzzCheckMembers(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1,"b":[{"a":1},{"a":2}]}`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`,
		`{"x":{"a":1},"y":{"a":1}}`, `[{"a":1,"a":1}]`, `{"a":"\u0000"}`, `{"a":"\ud800"}`,
		`{"a":"\ud83d\ude00"}`, "{\"a\":\"\xff\"}", "{\"a\":\"\x7f\"}", `{"a":"\n"}`, `{"a\u001b":1}`,
		`{"a":"\\u0000"}`, `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k3":3}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if CheckDepth(data, MaxDepth) != nil || !json.Valid(data) {
			return
		}
		err := checkMembers(bytes.TrimSpace(data), 0)
		dup, badStr := tokenTruth(t, data)
		switch {
		case err == nil && (dup || badStr):
			t.Fatalf("accepted %q: duplicate %v, bad string %v", data, dup, badStr)
		case err != nil && strings.Contains(err.Error(), "more than once") && !dup:
			t.Fatalf("refused %q as a duplicate (%v); encoding/json sees none", data, err)
		case err != nil && !strings.Contains(err.Error(), "more than once") && !badStr && !strings.Contains(err.Error(), "surrogate"):
			t.Fatalf("refused %q for its strings (%v); encoding/json sees nothing wrong", data, err)
		}
	})
}

// tokenTruth reads valid JSON data through encoding/json's tokens and says
// whether an object has a name twice, and whether a string holds a control
// character or U+FFFD that data does not spell out (a replaced invalid
// byte). Lone surrogates decode to U+FFFD too; data with U+FFFD spelt out
// is judged by its bytes alone.
func tokenTruth(t *testing.T, data []byte) (dup, badStr bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		obj      bool
		keys     map[string]bool
		wantsKey bool
	}
	var stack []*frame
	spelt := bytes.Contains(data, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(data), []byte(`\ufffd`))
	if !utf8.Valid(data) {
		badStr = true
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return dup, badStr
		}
		if err != nil {
			t.Fatalf("token stream of valid JSON %q: %v", data, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &frame{obj: true, keys: map[string]bool{}, wantsKey: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].wantsKey = true
				}
			}
			continue
		case string:
			for _, r := range v {
				if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || (r == utf8.RuneError && !spelt) {
					badStr = true
				}
			}
			if top != nil && top.obj && top.wantsKey {
				if top.keys[v] {
					dup = true
				}
				top.keys[v] = true
				top.wantsKey = false
				continue
			}
		}
		if top != nil && top.obj {
			top.wantsKey = true
		}
	}
}

// BenchmarkListPageDecode decodes a 200-image ListRegistryImages page, as
// the worker does for every page it lists: with the depth check the client
// runs first, against the bare decode as its baseline, in the same run.
func BenchmarkListPageDecode(b *testing.B) {
	var page ListRegistryImagesResponse
	for i := range 200 {
		page.DataList = append(page.DataList, RegistryImage{
			ID: int64(i + 1), ImageID: fmt.Sprintf("sha256:%064x", i), ImageDigest: fmt.Sprintf("sha256:%064x", i+1),
			RegistryID: "reg-0001", RegistryName: "swr-cn-north-4", ImageName: fmt.Sprintf("team-a/service-%d", i),
			ImageVersion: "v1.2.3", Namespace: "team-a", RegistryType: "SwrPrivate", ImageType: "private_image",
			ScanStatus: "success", LatestScanTime: 1700000000000, LatestUpdateTime: 1700000000000, ImageSize: 123456789,
		})
	}
	page.TotalNum = 100_000
	data, err := json.Marshal(page)
	if err != nil {
		b.Fatal(err)
	}
	for _, bench := range []struct {
		name  string
		check bool
	}{{"with-depth-check", true}, {"baseline-decode-only", false}} {
		b.Run(bench.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if bench.check {
					if err := CheckDepth(data, MaxDepth); err != nil {
						b.Fatal(err)
					}
				}
				var got ListRegistryImagesResponse
				if err := fastjson.Unmarshal(data, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeStrictMaxBoundsMemory: a 12 MiB body of two million nulls (or
// of empty objects) in image_info took a scanq process to 561 MB: the
// decoder built the whole slice, growing it by doubling, before anyone
// counted it. With a limit the items are counted first, and decoding the
// body allocates a small multiple of its size.
func TestDecodeStrictMaxBoundsMemory(t *testing.T) {
	for _, item := range []string{"null", "{}"} {
		n := (12<<20 - 40) / (len(item) + 1)
		body := []byte(`{"image_info":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var b ScanTaskBody
		err := DecodeStrictMax(body, &b, false, 10_000)
		runtime.ReadMemStats(&after)
		te, ok := errors.AsType[*TooManyItemsError](err)
		if !ok || te.Field != "image_info" || te.Max != 10_000 {
			t.Fatalf("%d × %s: error %v, want image_info over 10000 items", n, item, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*uint64(len(body)) {
			t.Errorf("%d × %s: decoding allocated %d MiB for a %d MiB body", n, item, alloc>>20, len(body)>>20)
		}
	}
	// At the limit, a list is decoded.
	body := []byte(`{"image_info":[` + strings.TrimSuffix(strings.Repeat(`{"id":1},`, 10_000), ",") + `]}`)
	var b ScanTaskBody
	if err := DecodeStrictMax(body, &b, false, 10_000); err != nil || len(b.ImageInfo) != 10_000 {
		t.Fatalf("10000 images at a limit of 10000: %d, %v", len(b.ImageInfo), err)
	}
}

// TestErrorsRepeatLittle: errors named every unknown field and repeated
// values whole, so a 2 MB body of unknown names got a 2 MB answer (and
// took quadratic time to gather them), and a 5 MB value came back twice.
// Now at most ten names are listed, and a value or name is clipped.
func TestErrorsRepeatLittle(t *testing.T) {
	t.Parallel()
	var names strings.Builder
	names.WriteString("{")
	for i := range 100_000 {
		if i > 0 {
			names.WriteByte(',')
		}
		fmt.Fprintf(&names, `"k%d":0`, i)
	}
	names.WriteString("}")
	huge := strings.Repeat("x", 5<<20)
	for _, tc := range []struct {
		name string
		body string
		want string
	}{
		{"100,000 unknown names", names.String(), "and 99990 more"},
		{"a huge unknown name", `{"` + huge + `":1}`, "…(5242880 bytes)"},
		{"a huge duplicate name", `{"` + huge + `":1,"` + huge + `":2}`, "is given more than once"},
		{"a huge enum value", `{"image_info":[{"registry_type":"` + huge + `"}]}`, "is not one of"},
	} {
		var b ScanTaskBody
		err := DecodeStrict([]byte(tc.body), &b, true)
		if err == nil {
			err = b.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %.200v, want it to say %q", tc.name, err, tc.want)
		}
		if err != nil && len(err.Error()) > 2048 {
			t.Errorf("%s: a %d-byte error message", tc.name, len(err.Error()))
		}
	}
}
