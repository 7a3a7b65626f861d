package hss

import "strings"

// hostileSeeds are the request bodies of issue 10's reproductions, shrunk
// where the original was megabytes (a fuzz seed is mutated and re-run many
// times): deep nesting, duplicate names, control characters, lone
// surrogates and bytes that are not UTF-8. The fuzz targets of every
// decoder of outside input start from them.
var hostileSeeds = []string{
	`{"x":` + strings.Repeat("[", 50_000),
	`{"x":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat("}", 40) + `}`,
	`{"image_info":` + strings.Repeat("[", 33) + strings.Repeat("]", 33) + `}`,
	`{"rate_limit":1,"rate_limit":2}`,
	`{"image_info":[{"id":1},{"id":2,"id":3}]}`,
	`{"image_info":[{"image_name":"a\u0000b"}]}`,
	`{"image_info":[{"image_name":"\u001b[31mred"}]}`,
	`{"image_info":[{"image_name":"\ud800"}]}`,
	"{\"image_info\":[{\"image_name\":\"a\xffb\"}]}",
	`{"query_info":{"image_name":"` + strings.Repeat("x", 300) + `"}}`,
}
