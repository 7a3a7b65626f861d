package api

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// readBounded reads what arrives, however it arrives, within the limit and
// the budget; its buffer is sized by what arrived, never by the declared
// length; the hash is the body's; and every byte reserved is accounted for.
func FuzzReadBounded(f *testing.F) {
	f.Add([]byte(`{"is_all":true}`), int64(15), int64(64), int64(1<<20), uint8(0))
	f.Add([]byte(`{}`), int64(1<<20), int64(1<<20), int64(2<<20+2), uint8(1)) // issue 10: declares the limit, sends 2 bytes
	f.Add(bytes.Repeat([]byte("x"), 70000), int64(-1), int64(65536), int64(1<<20), uint8(2))
	f.Add(bytes.Repeat([]byte("y"), 40000), int64(-1), int64(1<<20), int64(50000), uint8(3)) // over budget
	f.Fuzz(func(t *testing.T, body []byte, declared, limit, budget int64, mode uint8) {
		if limit < 1 || limit > 1<<20 || budget < 0 || budget > 1<<22 {
			return
		}
		if declared >= 0 && declared != int64(len(body)) && declared <= int64(len(body)) {
			body = body[:declared] // a body reader stops at Content-Length
		}
		var src io.Reader = bytes.NewReader(body)
		switch mode % 3 {
		case 1:
			src = iotest.OneByteReader(src)
		case 2:
			src = iotest.HalfReader(src)
		}
		src = io.LimitReader(src, limit+1) // what MaxBytesReader lets through
		b := &bodyBudget{max: budget}
		lease := &bodyLease{budget: b}
		sum := sha256.New()
		got, err := readBounded(src, declared, limit, lease, sum, nil)
		switch {
		case errors.Is(err, errBusy):
		case err != nil:
			if int64(len(body)) <= limit && (declared < 0 || declared >= int64(len(body))) {
				t.Fatalf("%d-byte body (declared %d, limit %d): %v", len(body), declared, limit, err)
			}
		default:
			if !bytes.Equal(got, body) {
				t.Fatalf("read %d bytes of %d", len(got), len(body))
			}
			if want := sha256.Sum256(body); !bytes.Equal(sum.Sum(nil), want[:]) {
				t.Fatal("hash is not the body's")
			}
			if c := int64(cap(got)); c > max(2*int64(len(body)), initialBodyBuffer) {
				t.Fatalf("%d-byte body in a %d-byte buffer", len(got), c)
			}
		}
		if b.highWater() > budget {
			t.Fatalf("high-water %d over budget %d", b.highWater(), budget)
		}
		if b.inUse() != lease.n {
			t.Fatalf("budget in use %d, lease %d", b.inUse(), lease.n)
		}
		lease.release()
		if b.inUse() != 0 {
			t.Fatalf("%d bytes still reserved after release", b.inUse())
		}
	})
}
