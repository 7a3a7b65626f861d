package hss

import (
	"bytes"
	"io"
)

// ReadBody reads r to its end, at most limit bytes. size is the length the
// sender declared (Content-Length; -1 when unknown): reading into a buffer
// of that size once costs a fraction of io.ReadAll's doubling, which
// allocates about three times a large body (list pages are ~100 KiB).
func ReadBody(r io.Reader, size, limit int64) ([]byte, error) {
	if size < 0 || size > limit {
		size = 0
	}
	// bytes.Buffer reads in steps of at least MinRead: room for the last,
	// empty read, so that a body of exactly size needs no second buffer.
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	_, err := buf.ReadFrom(io.LimitReader(r, limit))
	return buf.Bytes(), err
}
