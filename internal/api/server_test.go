package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/redistest"
)

// Every stage of a connection has a finite limit, and the write timeout
// outlasts the read timeout (it runs from the end of the headers, across
// the body).
func TestNewServerLimits(t *testing.T) {
	t.Parallel()
	s := NewServer(http.NotFoundHandler(), ServerOptions{})
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Errorf("unbounded: %+v", s)
	}
	if s.WriteTimeout <= s.ReadTimeout {
		t.Errorf("write timeout %s does not outlast read timeout %s", s.WriteTimeout, s.ReadTimeout)
	}
	// The largest body fits the read timeout on a 0.95 Mbit/s link.
	bits := float64(DefaultMaxBodyBytes * 8)
	if need := time.Duration(bits / 0.95e6 * float64(time.Second)); s.ReadTimeout < need {
		t.Errorf("read timeout %s: a %d-byte body needs %s at 0.95 Mbit/s", s.ReadTimeout, DefaultMaxBodyBytes, need)
	}
	s = NewServer(http.NotFoundHandler(), ServerOptions{ReadTimeout: time.Second, MaxHeaderBytes: 8192})
	if s.ReadTimeout != time.Second || s.MaxHeaderBytes != 8192 || s.WriteTimeout != DefaultWriteTimeout {
		t.Errorf("options not applied: %+v", s)
	}
}

// HSS's largest X-Auth-Token (32,768 bytes) fits the header limit; a
// header block far beyond it is refused (431) before any handler runs.
func TestServerHeaderLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}}))
	addr := serve(t, e.h, ServerOptions{})
	for _, tc := range []struct {
		size int
		want int
	}{{32768, http.StatusUnauthorized}, {256 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+createPath, strings.NewReader(`{"is_all":true}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Auth-Token", strings.Repeat("t", tc.size))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d-byte token: %v", tc.size, err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("%d-byte token: status %d, want %d", tc.size, res.StatusCode, tc.want)
		}
	}
}
