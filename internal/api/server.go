package api

import (
	"cmp"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Connection limits of the API's http.Server. A client has
// DefaultReadTimeout to send its whole request: a body of
// DefaultMaxBodyBytes (12 MiB) then needs ~105 KiB/s (~0.9 Mbit/s), a slow
// link, and a client that stalls is cut off after it, whatever it
// declared. WriteTimeout runs from the end of the request's headers, so it
// covers reading the body, the handler and the answer; it is the read
// timeout plus time for the handler. Headers get 64 KiB: HSS's
// X-Auth-Token may be 32,768 bytes.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 2 * time.Minute
	DefaultWriteTimeout      = DefaultReadTimeout + 30*time.Second
	DefaultIdleTimeout       = time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
	// DefaultMaxConnections is how many connections are served at once;
	// each may hold up to MaxHeaderBytes of headers (and a goroutine)
	// before anything about it is known, so 3,000 clients trickling 60 KB
	// of headers took 250 MB. At 512 that is ~40 MB.
	DefaultMaxConnections = 512
)

// LimitConnections returns ln, serving at most max connections at once
// (DefaultMaxConnections for 0); more wait in the kernel's accept queue
// until one closes, which every timeout above guarantees.
func LimitConnections(ln net.Listener, max int) net.Listener {
	return netutil.LimitListener(ln, cmp.Or(max, DefaultMaxConnections))
}

// ServerOptions size the http.Server that carries the API; zero fields
// take the Default… constants.
type ServerOptions struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
}

// NewServer returns the http.Server for h, with finite timeouts for every
// stage of a connection, so that slow or stalled clients cannot hold
// connections (or the bodies being read for them) beyond ReadTimeout.
func NewServer(h http.Handler, o ServerOptions) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cmp.Or(o.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       cmp.Or(o.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      cmp.Or(o.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       cmp.Or(o.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    cmp.Or(o.MaxHeaderBytes, DefaultMaxHeaderBytes),
	}
}
