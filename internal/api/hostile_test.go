package api

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss/signer"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
)

// stalledRequest writes r's head with a Content-Length of declared bytes
// and then only the first part of the body, and leaves the connection open:
// a client on a stalled link.
func stalledRequest(t testing.TB, addr string, r *http.Request, declared int, part []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := writeStalled(conn, addr, r, declared, part); err != nil {
		t.Fatal(err)
	}
	return conn
}

// signedHead is a request signed with the test keys over a body the client
// will never finish sending: its signature is right for the whole body.
func signedHead(t testing.TB, method, path string, keys *keys, body []byte, hdr map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://scanq"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if keys != nil {
		if err := signer.Sign(req, body, keys.ak, keys.sk, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return req
}

// A request whose credentials can be judged from its headers is answered
// 401 without its body being read: the client below declares 12 MiB, sends
// 1 KiB and stalls, and still gets its answer.
func TestCredentialsDecidedBeforeBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}}))
	addr := strings.TrimPrefix(e.url, "http://")
	const declared = 12 << 20
	part := []byte(`{"is_all":true,"image_info":[` + strings.Repeat(" ", 1000))
	full := append(part, make([]byte, declared-len(part))...)
	fake := map[string]string{"Content-Type": "application/json",
		"Authorization": "SDK-HMAC-SHA256 Access=NOTAKEY, SignedHeaders=x-sdk-date, Signature=" + strings.Repeat("0", 64),
		"X-Sdk-Date":    time.Now().UTC().Format(signer.DateLayout)}
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int // 0: 401
	}{
		{"hss: no credentials", signedHead(t, "POST", createPath, nil, nil, jsonCT), 0},
		{"hss: wrong X-Auth-Token", signedHead(t, "POST", createPath, nil, nil, map[string]string{"Content-Type": "application/json", "X-Auth-Token": "wrong"}), 0},
		{"hss: unknown access key", signedHead(t, "POST", createPath, &keys{"OTHERAK", testSK}, full, jsonCT), 0},
		{"hss: fake signature", signedHead(t, "POST", createPath, nil, nil, fake), 0},
		{"v1 POST: wrong bearer token", signedHead(t, "POST", "/api/v1/runs", nil, nil, bearer("wrong")), 0},
		{"v1 GET: fake signature", signedHead(t, "GET", "/api/v1/runs", nil, nil, fake), 0},
		{"v1 GET: unknown access key", signedHead(t, "GET", "/api/v1/runs", &keys{"OTHERAK", testSK}, full, jsonCT), 0},
		// The right key and a signature over the body: a GET takes no
		// body, so it is not read to check the signature either.
		{"v1 GET: known access key", signedHead(t, "GET", "/api/v1/runs", goodKeys, full, jsonCT), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn := stalledRequest(t, addr, tc.req, declared, part)
			// A failure here would otherwise hang until the server gives up.
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(conn), tc.req)
			if err != nil {
				t.Fatalf("no answer while the body is incomplete: %v", err)
			}
			defer res.Body.Close()
			want := cmp.Or(tc.status, http.StatusUnauthorized)
			if res.StatusCode != want {
				t.Errorf("status %d, want %d", res.StatusCode, want)
			}
		})
	}
}

// Slow and stalled clients are cut off after the read timeout, however
// many there are, and the bodies being read for them stay within the body
// budget. Each client signs a 12 MiB body with the right keys (so the
// server must read it to check the signature), sends 256 KiB of it and
// stalls: 200 of them would hold 100 MiB of buffers. Every connection must
// be closed by the server, some clients must have been refused for the
// budget (429, at once; counted by the server), and the budget's
// high-water mark must stay within it.
func TestSlowClientsAreCutOff(t *testing.T) {
	t.Parallel()
	const budget = 2*DefaultMaxBodyBytes + 2
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}, MaxBodyMemory: budget}))
	// A read timeout long enough for the 200 stalled clients to overlap
	// even on a loaded machine, so that their buffers outgrow the budget.
	addr := serve(t, e.h, ServerOptions{
		ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 3 * time.Second,
		IdleTimeout: time.Second,
	})

	const clients, declared = 200, 12 << 20
	body := make([]byte, declared)
	copy(body, `{"is_all":true}`)
	req := signedHead(t, "POST", createPath, goodKeys, body, jsonCT)
	part := body[:256<<10]

	var wg sync.WaitGroup
	var mu sync.Mutex
	open, busy := 0, 0
	for range clients {
		wg.Go(func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			// The deadline only ends the test should the server never
			// close the connection.
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			if err := writeStalled(conn, addr, req, declared, part); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					mu.Lock()
					open++
					mu.Unlock()
				}
				return // the server closed the connection: what we want
			}
			// Whatever the server answers (429 when the budget is spent,
			// an error or nothing at the timeout), it must then close:
			// read to EOF.
			got, err := io.ReadAll(conn)
			mu.Lock()
			defer mu.Unlock()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open++
			}
			if bytes.HasPrefix(got, []byte("HTTP/1.1 429 ")) {
				busy++
			}
		})
	}
	wg.Wait()
	if open > 0 {
		t.Errorf("%d of %d stalled connections were still open", open, clients)
	}
	// Counted where the server refuses: a client still writing when the
	// server answers and closes may see its connection reset before it
	// reads the 429 (a loaded machine), so the clients' count may be 0.
	if e.h.bodies.refusals() == 0 {
		t.Error("no client was refused for the body budget")
	}
	if hw := e.h.bodies.highWater(); hw > budget {
		t.Errorf("bodies held %d bytes at once, budget %d", hw, budget)
	}
	if n := e.h.bodies.inUse(); n != 0 {
		t.Errorf("%d body bytes still reserved after every connection closed", n)
	}
	t.Logf("%d clients: %d refused at once (%d saw the 429), body high-water %d of %d bytes", clients, e.h.bodies.refusals(), busy, e.h.bodies.highWater(), budget)
}

// writeStalled writes r's head declaring a body of declared bytes, then part.
func writeStalled(conn net.Conn, addr string, r *http.Request, declared int, part []byte) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", r.Method, r.URL.RequestURI(), addr, declared)
	for k, vs := range r.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return err
	}
	_, err := conn.Write(part)
	return err
}

// A body that stops arriving is cut off after the stall timeout (408),
// long before the server's read timeout, and its share of the body budget
// comes back; a body that keeps arriving, however slowly, is not.
func TestStalledBodyIsCutOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}, BodyStallTimeout: 300 * time.Millisecond}))
	addr := serve(t, e.h, ServerOptions{ReadTimeout: time.Minute, WriteTimeout: time.Minute})

	body := []byte(`{"is_all":true,"image_info":[]}` + strings.Repeat(" ", 4000))
	for _, path := range []string{createPath, "/api/v1/runs"} {
		t.Run("stalled "+path, func(t *testing.T) {
			req := signedHead(t, "POST", path, goodKeys, body, jsonCT)
			conn := stalledRequest(t, addr, req, len(body), body[:1000])
			// Only ends the test should the server wait for its read timeout.
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(conn), req)
			if err != nil {
				t.Fatalf("no answer to a stalled body: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusRequestTimeout {
				t.Errorf("status %d, want 408", res.StatusCode)
			}
			if _, err := io.Copy(io.Discard, conn); err != nil {
				t.Errorf("connection not closed after the 408: %v", err)
			}
			if n := e.h.bodies.inUse(); n != 0 {
				t.Errorf("%d body bytes still reserved", n)
			}
		})
	}

	t.Run("slow but steady", func(t *testing.T) {
		// Its own server with a longer stall timeout: the pieces come much
		// closer together than that (a busy machine can pause this
		// goroutine for a few hundred milliseconds), yet the whole body
		// takes longer than it, so a timeout on the whole body would fail.
		const stall = 2 * time.Second
		e := newEnv(t, redistest.Mini(t), withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}, BodyStallTimeout: stall}))
		addr := serve(t, e.h, ServerOptions{ReadTimeout: time.Minute, WriteTimeout: time.Minute})
		req := signedHead(t, "POST", createPath, goodKeys, body, jsonCT)
		conn := stalledRequest(t, addr, req, len(body), body[:100])
		// 40 pieces over 3 s, each a fraction of the stall timeout after the last.
		tick := time.NewTicker(stall / 26)
		defer tick.Stop()
		for off := 100; off < len(body); off += 100 {
			<-tick.C
			if _, err := conn.Write(body[off:min(off+100, len(body))]); err != nil {
				t.Fatalf("writing at %d: %v", off, err)
			}
		}
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("status %d, want 200", res.StatusCode)
		}
	})
}

// TestForgedSignaturesCannotSpendTheBudget: the access key travels in
// clear, and a body must be read before its signature can be refused. 1,760
// stalled uploads with a known AK and a made-up signature held the whole
// body budget, and every authenticated request with a body got 503 for as
// long as they trickled. Bodies with an unchecked signature now hold at
// most one largest body per client address (and half the budget in all):
// a token's requests, and signed ones from elsewhere, still get through.
func TestForgedSignaturesCannotSpendTheBudget(t *testing.T) {
	t.Parallel()
	const maxBody = 64 << 10
	e := newEnv(t, redistest.Mini(t), withAuth(Options{MaxBodyBytes: maxBody, MaxBodyMemory: 8 * MinBodyMemory(maxBody)}))
	addr := serve(t, e.h, ServerOptions{})
	forged := &keys{testAK, "not-the-secret-key"}
	body := make([]byte, maxBody)
	copy(body, `{"is_all":true}`)
	for i := range body[len(`{"is_all":true}`):] {
		body[len(`{"is_all":true}`)+i] = ' '
	}
	for i := range 30 {
		before := e.h.bodies.inUse()
		req := signedHead(t, http.MethodPost, "/api/v1/runs/r"+strconv.Itoa(i)+"/cancel", forged, body, jsonCT)
		conn := stalledRequest(t, addr, req, maxBody, body[:maxBody-4<<10])
		// Wait until the server holds this body or has answered it.
		testkit.Eventually(t, 10*time.Second, func() bool {
			if e.h.bodies.inUse() > before {
				return true
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			n, _ := conn.Read(make([]byte, 1))
			return n > 0
		}, "forged upload %d to be held or answered", i)
	}
	held := e.h.bodies.inUse()
	t.Logf("bodies held by 30 forged uploads from one address: %d bytes of %d", held, e.h.opts.MaxBodyMemory)
	if held > MinBodyMemory(maxBody) {
		t.Errorf("forged uploads from one address hold %d bytes, more than one largest body (%d)", held, MinBodyMemory(maxBody))
	}
	// A token holder's request with a body still gets through.
	big := string(body[:maxBody-1])
	if r := e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: big, header: bearer(testToken)}); r.status != http.StatusAccepted {
		t.Fatalf("token request while forged uploads stall: %d %s", r.status, r.body)
	}
	// And so does a signed one from another address.
	if r := e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: big, header: jsonCT, sign: goodKeys, from: "127.0.0.2"}); r.status != http.StatusAccepted {
		t.Fatalf("signed request while forged uploads stall: %d %s", r.status, r.body)
	}
}
