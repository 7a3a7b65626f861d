package resilience

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/redistest"
)

// TestGracefulShutdown: SIGTERM/SIGINT end every role cleanly, exit 0.
// (Workers stopped mid-run are in TestResilience, workers-sigterm-restart.)
func TestGracefulShutdown(t *testing.T) {
	needSuite(t)
	t.Run("api-drains", shutdownAPI)
	t.Run("scheduler-hands-over", shutdownScheduler)
	t.Run("serve-sigint", shutdownServe)
}

// shutdownAPI: SIGTERM reaches `scanq api` while a request is half sent;
// the API stops accepting, still answers that request, and exits 0.
func shutdownAPI(t *testing.T) {
	f := newFleet(t, fleetOptions{RedisURL: redistest.Real(t).URL, Images: 10, Rate: 10})
	row := &shutdownResult{Process: "api (request in flight)", Signal: "SIGTERM"}
	reportShutdown(t, row)

	body := `{"image_info":[{"namespace":"drain","image_name":"api","image_version":"1"}]}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.apiURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	half := len(body) / 2
	if _, err := fmt.Fprintf(conn, "POST /api/v1/runs HTTP/1.1\r\nHost: scanq\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:half]); err != nil {
		t.Fatal(err)
	}
	// The API has the request in hand once it has accepted the connection
	// (its socket has an inode) and read what was sent (the server's
	// kernel acknowledged every byte, and none waits unread).
	waitFor(t, 10*time.Second, "the API to read the half-sent request's headers", func() error {
		tx, _, _, err := tcpQueues(conn.LocalAddr(), conn.RemoteAddr())
		if err != nil {
			return err
		}
		_, rx, inode, err := tcpQueues(conn.RemoteAddr(), conn.LocalAddr())
		if err != nil {
			return err
		}
		if tx != 0 || inode == 0 || rx != 0 {
			return fmt.Errorf("%d bytes unacknowledged, %d unread, socket inode %d (0: not accepted)", tx, rx, inode)
		}
		return nil
	})
	sent := f.api.signal(t, syscall.SIGTERM)
	// Draining: no new connections, the one in flight is still served.
	waitFor(t, 5*time.Second, "the API to refuse new connections after SIGTERM", func() error {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(f.apiURL, "http://"), time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		return errors.New("it accepted one")
	})
	if !f.api.alive() {
		t.Fatalf("the API exited (%s) with a request in flight\n%s", f.api.exitText(), f.api.tail(20))
	}
	if _, err := conn.Write([]byte(body[half:])); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("the request in flight was answered %s, want 202 Accepted", resp.Status)
	}
	code, at := f.api.waitExit(t, 15*time.Second)
	row.Exit, row.Took = f.api.exitText(), at.Sub(sent)
	row.Note = "answered the half-sent request (" + resp.Status + ") after SIGTERM, refused new connections"
	if code != 0 {
		t.Errorf("api: SIGTERM: %s, want exit 0\n%s", f.api.exitText(), f.api.tail(20))
	}
}

// shutdownScheduler: SIGTERM of the leading scheduler releases the lease:
// the other replica leads well before the released lease would have
// expired, and the old leader exits 0.
func shutdownScheduler(t *testing.T) {
	b := redistest.Real(t)
	// The default lease (15s): handing over must not wait for it.
	f := newFleet(t, fleetOptions{RedisURL: b.URL, Images: 10, Rate: 10, Schedulers: 2})
	row := &shutdownResult{Process: "scheduler (leader)", Signal: "SIGTERM"}
	reportShutdown(t, row)
	leader := f.leader(b.Client, 20*time.Second)
	ctx := context.Background()
	left, err := b.Client.PTTL(ctx, leaderKey).Result()
	if err != nil || left <= 0 {
		t.Fatalf("PTTL %s: %v %v", leaderKey, left, err)
	}
	sent := leader.signal(t, syscall.SIGTERM)
	expiry := sent.Add(left)
	var takeover time.Duration
	waitFor(t, time.Until(expiry.Add(5*time.Second)), fmt.Sprintf("another scheduler to take the lease after SIGTERM (it had %s left)", left), func() error {
		tok, err := b.Client.Get(ctx, leaderKey).Result()
		if errors.Is(err, redis.Nil) {
			return errors.New("no lease")
		}
		if err != nil {
			return err
		}
		if p := f.schedulerByToken(tok); p == nil || p == leader {
			return fmt.Errorf("the lease names %q", tok)
		}
		takeover = time.Since(sent)
		return nil
	})
	code, at := leader.waitExit(t, 15*time.Second)
	row.Exit, row.Took = leader.exitText(), at.Sub(sent)
	row.Note = fmt.Sprintf("other replica led %s after SIGTERM; the lease had %s left", takeover.Round(time.Millisecond), left.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("scheduler: SIGTERM: %s, want exit 0\n%s", leader.exitText(), leader.tail(20))
	}
	if takeover >= left {
		t.Errorf("the other replica took over %s after SIGTERM, not before the lease (%s left) would have expired: the lease was not released", takeover, left)
	}
	if !strings.Contains(leader.out.String(), "no longer leader") {
		t.Errorf("the leader did not log that it gave up leadership:\n%s", leader.tail(20))
	}
}

// shutdownServe: `scanq serve` on its embedded defaults exits 0 on SIGINT.
func shutdownServe(t *testing.T) {
	row := &shutdownResult{Process: "serve (demo mode)", Signal: "SIGINT"}
	reportShutdown(t, row)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p := startProc(t, "serve", append(baseEnv(), "SCANQ_API_ADDR="+addr), bin, "serve")
	p.waitOutput(t, "API:", 30*time.Second)
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("serve's /readyz: %v\n%s", err, p.tail(20))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("serve's /readyz: %s", resp.Status)
	}
	sent := p.signal(t, syscall.SIGINT)
	code, at := p.waitExit(t, 30*time.Second)
	row.Exit, row.Took = p.exitText(), at.Sub(sent)
	if code != 0 {
		t.Errorf("serve: SIGINT: %s, want exit 0\n%s", p.exitText(), p.tail(30))
	}
	if why := p.crashed(); why != "" {
		t.Errorf("serve: %s", why)
	}
}
