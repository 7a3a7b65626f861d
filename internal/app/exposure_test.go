package app_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/redistest"
)

// startAPI runs RunAPI with settings over the embedded defaults on a fresh
// Redis and returns the bound address, or RunAPI's error when it stops
// before binding, and the log.
func startAPI(t *testing.T, set map[string]string) (string, error, string) {
	t.Helper()
	b := redistest.Mini(t)
	set["redis.url"] = b.URL
	a, logs := newApp(t, set)
	t.Cleanup(a.Close)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- a.RunAPI(ctx, ready) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case addr := <-ready:
		return addr, nil, logs.String()
	case err := <-done:
		done <- err
		return "", err, logs.String()
	case <-time.After(30 * time.Second):
		t.Fatal("RunAPI neither bound nor failed")
	}
	return "", nil, ""
}

// TestUnauthenticatedAPIRefusesNonLoopback: with no credentials the API
// binds only to loopback unless api.allow_unauthenticated says otherwise,
// and says loudly (WARN) whenever it runs open.
func TestUnauthenticatedAPIRefusesNonLoopback(t *testing.T) {
	cases := []struct {
		name    string
		set     map[string]string
		refused bool
		warn    string // in a WARN line; "" = no WARN about authentication
	}{
		{"no credentials, every interface", map[string]string{"api.addr": ":0"}, true, ""},
		{"no credentials, 0.0.0.0", map[string]string{"api.addr": "0.0.0.0:0"}, true, ""},
		{"no credentials, allowed", map[string]string{"api.addr": ":0", "api.allow_unauthenticated": "true"}, false, "api.allow_unauthenticated"},
		{"no credentials, loopback", map[string]string{"api.addr": "127.0.0.1:0"}, false, "authentication is OFF"},
		{"token, every interface", map[string]string{"api.addr": ":0", "api.token": "tok-exposure"}, false, ""},
		{"ak/sk, every interface", map[string]string{"api.addr": ":0", "api.ak": "AK1", "api.sk": "SK1"}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, err, logs := startAPI(t, c.set)
			if c.refused {
				if err == nil || !strings.Contains(err.Error(), "api.allow_unauthenticated") {
					t.Fatalf("listening on %s without credentials; err = %v", addr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			warned := false
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, "level=WARN") && strings.Contains(l, "authentication") {
					warned = warned || c.warn == "" || strings.Contains(l, c.warn)
					if c.warn == "" {
						t.Errorf("WARN with authentication on: %s", l)
					}
				}
			}
			if c.warn != "" && !warned {
				t.Errorf("no WARN mentioning %q:\n%s", c.warn, logs)
			}
		})
	}
}

// TestDefaultAPIAddrIsLoopback: `scanq serve` and `scanq api` on the
// embedded defaults listen on 127.0.0.1 only (the port is left to the
// defaults' own 8080 in real use; here any free one).
func TestDefaultAPIAddrIsLoopback(t *testing.T) {
	host, port, err := net.SplitHostPort(configs.Default().API.Addr)
	if err != nil || port != "8080" {
		t.Fatalf("default api.addr %q: %v", configs.Default().API.Addr, err)
	}
	addr, err, _ := startAPI(t, map[string]string{"api.addr": net.JoinHostPort(host, "0")})
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := net.SplitHostPort(addr); !net.ParseIP(h).IsLoopback() {
		t.Fatalf("the default api.addr host %q listens on %s", host, addr)
	}
}

// TestAPIConnectionLimit: the API accepted any number of connections, and
// 3,000 clients trickling 60 KB of headers each took it to 251 MB. It now
// serves api.max_connections at once; another connection is answered only
// once one of those closes.
func TestAPIConnectionLimit(t *testing.T) {
	addr, err, logs := startAPI(t, map[string]string{"api.addr": "127.0.0.1:0", "api.max_connections": "3"})
	if err != nil {
		t.Fatalf("RunAPI: %v\n%s", err, logs)
	}
	// Three clients that send half a header block and wait.
	held := make([]net.Conn, 3)
	for i := range held {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
		held[i] = c
	}
	probe, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if _, err := probe.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// While three are held the fourth is not served. (A negative can only
	// be shown for a while; a wrongly served probe fails here at once.)
	_ = probe.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := probe.Read(make([]byte, 1)); n > 0 || err == nil {
		t.Fatal("a fourth connection was served while three were held")
	}
	held[0].Close()
	_ = probe.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := io.ReadAll(probe)
	if err != nil || !strings.HasPrefix(string(resp), "HTTP/1.1 200") {
		t.Fatalf("after one held connection closed: %q %v", resp, err)
	}
}
