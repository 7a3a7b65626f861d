package api

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBodyMemory is Options.MaxBodyMemory when it is 0: the bytes of
// request bodies held at once, all requests together. A body of
// MaxBodyBytes needs up to twice its size while its buffer grows, so the
// default lets two of the largest bodies (12 MiB) be read at once, or
// hundreds of ordinary ones.
const DefaultMaxBodyMemory = 48 << 20

// MinBodyMemory is the smallest body budget that can read a body of
// maxBodyBytes: while its buffer grows, the old buffer (less than the new
// one) and the new one (at most maxBodyBytes+1) are both held.
func MinBodyMemory(maxBodyBytes int64) int64 { return 2*maxBodyBytes + 2 }

// DefaultBodyStallTimeout is Options.BodyStallTimeout when it is 0: a body
// that makes no progress for this long is cut off. A working link, however
// slow, delivers something every few seconds.
const DefaultBodyStallTimeout = 15 * time.Second

// initialBodyBuffer is the first buffer of a body: most bodies fit.
const initialBodyBuffer = 16 << 10

// busyRetryAfter is the Retry-After of a request refused because the body
// budget is spent: bodies in flight are read within the server's read
// timeout, so room comes back soon.
const busyRetryAfter = 2

// bodyBudget bounds the memory of request bodies being read and held: a
// request reserves a buffer's size before it allocates it and returns the
// reservation when the request ends. A request that finds the budget spent
// is refused at once (errBusy) rather than queued: waiting would let slow
// clients hold connections and memory for everyone else.
type bodyBudget struct {
	max int64

	mu         sync.Mutex
	used, peak int64
	// refused counts the requests a lease of this budget refused (its
	// own, or the unverified budget's), for tests.
	refused atomic.Int64
}

func (b *bodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// inUse and highWater report the budget, for tests.
func (b *bodyBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func (b *bodyBudget) refusals() int64 { return b.refused.Load() }

func (b *bodyBudget) highWater() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// unverifiedBudget bounds the bodies read only to check their signature.
// The access key travels in clear in every signed request, so whoever
// knows it, without the secret key, can make the server read bodies it
// will refuse: those may hold half the budget in all, and one client
// address at most one largest body, so that they cannot spend the memory
// of requests authenticated from their headers (a token) or of signed
// requests from elsewhere.
type unverifiedBudget struct {
	total   bodyBudget
	perAddr int64

	mu     sync.Mutex
	byAddr map[string]int64
}

func newUnverifiedBudget(all, perAddr int64) *unverifiedBudget {
	return &unverifiedBudget{total: bodyBudget{max: all}, perAddr: perAddr, byAddr: map[string]int64{}}
}

func (u *unverifiedBudget) take(addr string, n int64) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.byAddr[addr]+n > u.perAddr || !u.total.take(n) {
		return false
	}
	u.byAddr[addr] += n
	return true
}

func (u *unverifiedBudget) give(addr string, n int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.total.give(n)
	if u.byAddr[addr] -= n; u.byAddr[addr] <= 0 {
		delete(u.byAddr, addr)
	}
}

// bodyLease is one request's share of the budget. ServeHTTP gives every
// request one and returns it when the request ends, so a body's memory is
// counted for as long as a handler may use it.
type bodyLease struct {
	budget *bodyBudget
	n      int64
	// stall cuts off a body that makes no progress for this long; 0: never.
	stall time.Duration
	// While a signature is unchecked, its body is counted in unverified
	// too, under addr (see unverifiedBudget).
	unverified *unverifiedBudget
	addr       string
	un         int64
}

// unchecked counts the body read from now on as one whose signature is not
// checked yet, under the client's address, until checked is called.
func (l *bodyLease) unchecked(u *unverifiedBudget, remoteAddr string) {
	if l == nil {
		return
	}
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		remoteAddr = host
	}
	l.unverified, l.addr = u, remoteAddr
}

// checked ends unchecked: the signature is verified (or refused, and the
// request ends).
func (l *bodyLease) checked() {
	if l == nil || l.unverified == nil {
		return
	}
	if l.un > 0 {
		l.unverified.give(l.addr, l.un)
		l.un = 0
	}
	l.unverified = nil
}

// take reserves n more bytes of the budget (and of the unverified one
// while the signature is unchecked).
func (l *bodyLease) take(n int64) bool {
	if l.unverified != nil && !l.unverified.take(l.addr, n) {
		l.budget.refused.Add(1)
		return false
	}
	if !l.budget.take(n) {
		if l.unverified != nil {
			l.unverified.give(l.addr, n)
		}
		l.budget.refused.Add(1)
		return false
	}
	l.n += n
	if l.unverified != nil {
		l.un += n
	}
	return true
}

// give returns n bytes of the reservation.
func (l *bodyLease) give(n int64) {
	l.budget.give(n)
	l.n -= n
	if l.unverified != nil {
		g := min(n, l.un)
		l.unverified.give(l.addr, g)
		l.un -= g
	}
}

type bodyLeaseKey struct{}

func (l *bodyLease) release() {
	l.checked()
	if l.n > 0 {
		l.budget.give(l.n)
		l.n = 0
	}
}

func leaseOf(ctx context.Context) *bodyLease {
	l, _ := ctx.Value(bodyLeaseKey{}).(*bodyLease)
	return l
}

// errBusy: the body budget is spent.
var errBusy = errors.New("too many request bodies being read at once")

// errStalled: the body made no progress for the stall timeout.
var errStalled = errors.New("request body stalled")

type readBodyKey struct{}

// withBody hands a body already read (to check its signature) to the
// handler's readBody.
func withBody(r *http.Request, body []byte) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), readBodyKey{}, body))
}

// readBody reads r's body within limit; see readBodyHashing.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *requestError) {
	return readBodyHashing(w, r, limit, nil)
}

// readBodyHashing reads r's body within limit (413 beyond it) into a buffer
// that grows with what arrives, never with what Content-Length promises,
// reserving each buffer in the request's body budget first (503 with
// Retry-After when it is spent). sum, when not nil, hashes the body as it
// streams. A body read before (withBody) is returned as it is.
func readBodyHashing(w http.ResponseWriter, r *http.Request, limit int64, sum hash.Hash) ([]byte, *requestError) {
	if b, ok := r.Context().Value(readBodyKey{}).([]byte); ok {
		if sum != nil {
			sum.Write(b)
		}
		return b, nil
	}
	if r.ContentLength > limit {
		closeAfter(w)
		return nil, tooLarge(limit)
	}
	lease := leaseOf(r.Context())
	progress := func() {}
	var stalled atomic.Bool
	if lease != nil && lease.stall > 0 {
		// Interrupt the read in progress when nothing has arrived for the
		// stall timeout; the server's own read deadline stays as it is
		// otherwise.
		rc := http.NewResponseController(w)
		t := time.AfterFunc(lease.stall, func() {
			stalled.Store(true)
			_ = rc.SetReadDeadline(time.Now())
		})
		defer t.Stop()
		progress = func() { t.Reset(lease.stall) }
	}
	b, err := readBounded(http.MaxBytesReader(w, r.Body, limit), r.ContentLength, limit, lease, sum, progress)
	if err != nil && stalled.Load() {
		err = errStalled
	}
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, errBusy):
		closeAfter(w)
		retryAfterBusy(w)
		return nil, &requestError{status: http.StatusServiceUnavailable, code: codeBusy, msg: "server busy reading other requests; retry later"}
	case errors.Is(err, errStalled), errors.Is(err, os.ErrDeadlineExceeded):
		closeAfter(w)
		return nil, &requestError{status: http.StatusRequestTimeout, code: codeRequestTimeout, msg: "request body stalled or arrived too slowly"}
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, tooLarge(limit)
	}
	return nil, &requestError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: "reading request body: " + err.Error()}
}

func tooLarge(limit int64) *requestError {
	return &requestError{status: http.StatusRequestEntityTooLarge, code: codeBodyTooLarge,
		msg: fmt.Sprintf("request body exceeds %d bytes", limit)}
}

// readBounded reads src to its end. declared is Content-Length (-1 when
// unknown): it only caps the buffer (a body that declares n bytes never
// needs more than n+1 of room), it never sizes it. lease may be nil (no
// budget).
func readBounded(src io.Reader, declared, limit int64, lease *bodyLease, sum hash.Hash, progress func()) ([]byte, error) {
	upper := limit + 1 // room to see the end of a body of exactly limit bytes
	if declared >= 0 && declared < limit {
		upper = declared + 1
	}
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			n := min(max(2*int64(cap(buf)), initialBodyBuffer), upper)
			if n <= int64(cap(buf)) {
				return nil, fmt.Errorf("body longer than declared")
			}
			if lease != nil && !lease.take(n) {
				return nil, errBusy
			}
			grown := make([]byte, len(buf), n)
			copy(grown, buf)
			if lease != nil {
				lease.give(int64(cap(buf)))
			}
			buf = grown
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		if n > 0 {
			if sum != nil {
				sum.Write(buf[len(buf) : len(buf)+n])
			}
			if progress != nil {
				progress()
			}
		}
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// closeAfter makes the server close the connection after the answer
// instead of reading the rest of a body nobody wants.
func closeAfter(w http.ResponseWriter) { w.Header().Set("Connection", "close") }

// retryAfterBusy sets Retry-After on an answer to errBusy.
func retryAfterBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(busyRetryAfter))
}
