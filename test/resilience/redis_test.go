package resilience

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server of the test's own, with AOF persistence
// fsynced on every write, that the test can stop and start again on the
// same port and directory.
type redisServer struct {
	t    *testing.T
	path string
	port int
	dir  string
	cur  *proc
	gen  int
	// requirepass, when set, is the password the server demands.
	requirepass string
}

// startRedis starts redis-server from PATH. .ci/run installs it, so its
// absence is a failure, not a reason to skip. A requirepass makes the
// server demand that password.
func startRedis(t *testing.T, requirepass ...string) *redisServer {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not on PATH: the Redis-restart scenario needs its own server (.ci/run installs redis-server): %v", err)
	}
	s := &redisServer{t: t, path: path, port: freePort(t), dir: t.TempDir()}
	if len(requirepass) > 0 {
		s.requirepass = requirepass[0]
	}
	// Registered before the fleet's cleanup, so it runs after it: the
	// fleet shuts down gracefully with its Redis still there.
	t.Cleanup(func() {
		if s.cur != nil {
			s.cur.stop()
		}
	})
	s.start()
	return s
}

// URL is the redis:// URL of the server's database 0.
func (s *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.gen++
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"}
	if s.requirepass != "" {
		args = append(args, "--requirepass", s.requirepass)
	}
	s.cur = spawn(s.t, "redis-server#"+strconv.Itoa(s.gen), os.Environ(), s.path, args...)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.port), Password: s.requirepass, MaxRetries: -1})
	defer c.Close()
	waitFor(s.t, 10*time.Second, fmt.Sprintf("redis-server on port %d to answer PING", s.port), func() error {
		s.t.Helper()
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return nil
		}
		if !s.cur.alive() {
			s.t.Fatalf("redis-server on port %d exited (%s): %v\n%s", s.port, s.cur.exitText(), err, s.cur.tail(30))
		}
		return fmt.Errorf("%v\n%s", err, s.cur.tail(30))
	})
}

// stop shuts the server down with SIGTERM (it writes and fsyncs the AOF)
// and waits for it to exit.
func (s *redisServer) stop() {
	s.t.Helper()
	s.cur.signal(s.t, syscall.SIGTERM)
	if code, _ := s.cur.waitExit(s.t, 15*time.Second); code != 0 {
		s.t.Fatalf("redis-server exited %d on SIGTERM\n%s", code, s.cur.tail(30))
	}
}
