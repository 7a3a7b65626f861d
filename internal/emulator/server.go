package emulator

import "net/http/httptest"

// Server is an Emulator listening on a loopback port, like httptest.Server;
// the Emulator's methods are promoted.
type Server struct {
	*Emulator
	// URL is the base URL, http://127.0.0.1:PORT, with no trailing slash.
	URL string
	srv *httptest.Server
}

// NewServer starts an emulator on a loopback port. It panics if opts are
// invalid or it cannot listen, as httptest.NewServer does. Close it when done.
func NewServer(opts Options) *Server {
	e := NewHandler(opts)
	srv := httptest.NewServer(e)
	return &Server{Emulator: e, URL: srv.URL, srv: srv}
}

// Close shuts the server down, waiting for requests in flight; injected
// latencies end at once (Emulator.EndLatencies).
func (s *Server) Close() {
	s.EndLatencies()
	s.srv.Close()
}
