package hss

import (
	"bytes"
	"io"
)

// maxPrealloc bounds the buffer ReadBody allocates on the sender's word
// before anything has arrived: Content-Length is the sender's to choose,
// and a sender that declares 12 MiB and sends two bytes must not cost
// 12 MiB. HSS's list pages (~100 KiB) fit.
const maxPrealloc = 256 << 10

// ReadBody reads r to its end, at most limit bytes. size is the length the
// sender declared (Content-Length; -1 when unknown): reading into a buffer
// of that size once costs a fraction of io.ReadAll's doubling, which
// allocates about three times a large body (list pages are ~100 KiB). Up to
// maxPrealloc is allocated on that word; beyond it the buffer grows with
// what arrives.
func ReadBody(r io.Reader, size, limit int64) ([]byte, error) {
	if size < 0 || size > limit {
		size = 0
	}
	size = min(size, maxPrealloc)
	// bytes.Buffer reads in steps of at least MinRead: room for the last,
	// empty read, so that a body of exactly size needs no second buffer.
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	_, err := buf.ReadFrom(io.LimitReader(r, limit))
	return buf.Bytes(), err
}
