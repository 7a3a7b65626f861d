package api

import (
	"net/http"
	"testing"
	"time"
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
