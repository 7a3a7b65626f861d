package hss

import (
	"bytes"
	"strings"
	"testing"
)

// A sender that declares 12 MiB and sends two bytes gets a buffer sized by
// what arrived, not by what it declared: Content-Length is the client's word.
func TestReadBodyDoesNotTrustDeclaredSize(t *testing.T) {
	t.Parallel()
	got, err := ReadBody(strings.NewReader("{}"), 12<<20, 12<<20+1)
	if err != nil || string(got) != "{}" {
		t.Fatalf("read %q, %v", got, err)
	}
	if c := cap(got); c > maxPrealloc+bytes.MinRead {
		t.Errorf("a 2-byte body with Content-Length 12 MiB got a %d-byte buffer", c)
	}
}
