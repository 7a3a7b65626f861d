package app_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
)

func TestConnOptForEveryKindOfRedisURL(t *testing.T) {
	cases := []struct {
		url   string
		check func(t *testing.T, o asynq.RedisConnOpt)
	}{
		{"redis://user:pw@cache:6380/3", func(t *testing.T, o asynq.RedisConnOpt) {
			c := o.(asynq.RedisClientOpt)
			if c.Addr != "cache:6380" || c.Username != "user" || c.Password != "pw" || c.DB != 3 || c.TLSConfig != nil {
				t.Fatalf("%+v", c)
			}
		}},
		{"rediss://cache/1", func(t *testing.T, o asynq.RedisConnOpt) {
			c := o.(asynq.RedisClientOpt)
			if c.Addr != "cache:6379" || c.DB != 1 || c.TLSConfig == nil {
				t.Fatalf("TLS not on: %+v", c)
			}
		}},
		{"redis-sentinel://:pw@s1:26379,s2/2?master=main", func(t *testing.T, o asynq.RedisConnOpt) {
			c := o.(asynq.RedisFailoverClientOpt)
			if c.MasterName != "main" || len(c.SentinelAddrs) != 2 || c.SentinelAddrs[1] != "s2:26379" || c.DB != 2 || c.Password != "pw" {
				t.Fatalf("%+v", c)
			}
		}},
		{"redis-cluster://n1:7000,n2:7001", func(t *testing.T, o asynq.RedisConnOpt) {
			c := o.(asynq.RedisClusterClientOpt)
			if len(c.Addrs) != 2 || c.Addrs[0] != "n1:7000" {
				t.Fatalf("%+v", c)
			}
		}},
	}
	for _, c := range cases {
		target, err := configs.ParseRedisURL(c.url)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		opt, err := app.ConnOpt(target, time.Second)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		c.check(t, opt)
	}
}

func TestOpenRedisErrorsHideThePassword(t *testing.T) {
	for _, u := range []string{"redis://u:hunter2@h:notaport/0", "redis-sentinel://:hunter2@h/0", "mysql://u:hunter2@h"} {
		_, err := app.OpenRedis(u, time.Second)
		if err == nil {
			t.Fatalf("%s: no error", u)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("%s: error shows the password: %v", u, err)
		}
	}
}

func TestOpenRedisConnectsToEmbeddedAndReal(t *testing.T) {
	urls := []string{"embedded"}
	if os.Getenv(redistest.EnvURL) != "" {
		urls = append(urls, redistest.Real(t).URL)
	}
	for _, u := range urls {
		r, err := app.OpenRedis(u, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Client.Ping(context.Background()).Err(); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if u == "embedded" {
			// miniredis must expire keys on the wall clock.
			r.Client.Set(context.Background(), "k", "v", 50*time.Millisecond)
			testkit.Eventually(t, 5*time.Second, func() bool { return r.Client.Exists(context.Background(), "k").Val() == 0 },
				"embedded Redis to expire a key (is ClockTTL off?)")
		}
		r.Close()
	}
}

// passwordRedis starts a redis-server of the test's own that requires
// password pw. Without redis-server on PATH it skips on a machine with only
// Go (miniredis's RequireAuth covers the same ground then) and fails where
// the real-Redis tests run (SCANQ_TEST_REDIS_URL set): .ci/run installs it.
func passwordRedis(t *testing.T, pw string) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(redistest.EnvURL) != "" {
			t.Fatalf("redis-server is not on PATH, and %s is set: the real-Redis tests need it (.ci/run installs it)", redistest.EnvURL)
		}
		t.Skip("redis-server is not on PATH (and no real-Redis tests run: " + redistest.EnvURL + " is not set)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--requirepass", pw,
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := redis.NewClient(&redis.Options{Addr: addr, Password: pw, MaxRetries: -1})
	defer c.Close()
	testkit.Eventually(t, 10*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil }, "redis-server to come up")
	return addr
}

// TestNewFailsWhenRedisRefuses: a wrong password (real redis-server and
// miniredis) or an unreachable server is an error at start naming the URL
// without its password, not a role that runs and logs WRONGPASS forever.
func TestNewFailsWhenRedisRefuses(t *testing.T) {
	const pw, wrong = "right-Pa55", "wrong-S3CRET"
	mini := miniredis.RunT(t)
	mini.RequireAuth(pw)
	cases := map[string]struct {
		url  func(t *testing.T) string
		want string
	}{
		"miniredis wrong password": {func(*testing.T) string { return "redis://:" + wrong + "@" + mini.Addr() + "/0" }, "WRONGPASS"},
		"miniredis lone userinfo":  {func(*testing.T) string { return "redis://" + wrong + "@" + mini.Addr() + "/0" }, "WRONGPASS"},
		"miniredis no password":    {func(*testing.T) string { return "redis://" + mini.Addr() + "/0" }, "NOAUTH"},
		"redis-server wrong password": {func(t *testing.T) string {
			return "redis://:" + wrong + "@" + passwordRedis(t, pw) + "/0"
		}, "WRONGPASS"},
		"unreachable": {func(t *testing.T) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			return "redis://:" + wrong + "@" + addr + "/0"
		}, "refused"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			u := c.url(t)
			cfg := configs.Default()
			cfg.Redis.URL = u
			cfg.Redis.DialTimeout = time.Second
			a, err := app.New(cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				a.Close()
				t.Fatalf("%s: New succeeded", u)
			}
			msg := err.Error()
			if strings.Contains(msg, wrong) || !strings.Contains(msg, configs.RedactURL(u)) || !strings.Contains(msg, c.want) {
				t.Fatalf("error %q: want the URL without its password (%s) and %q", msg, configs.RedactURL(u), c.want)
			}
		})
	}
	t.Run("right password", func(t *testing.T) {
		cfg := configs.Default()
		cfg.Redis.URL = "redis://" + pw + "@" + mini.Addr() + "/0"
		a, err := app.New(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
	})
}

// TestEmbeddedRedisExpiresKeys: the embedded Redis ages its keys on a
// clock of its own (not on every command), so a key set to expire goes,
// and one with no expiry stays.
func TestEmbeddedRedisExpiresKeys(t *testing.T) {
	r, err := app.OpenRedis("embedded", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := t.Context()
	if err := r.Client.Set(ctx, "short", "x", 150*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Set(ctx, "kept", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Client.Exists(ctx, "short").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a key set to expire in 150ms is still there after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.Client.Exists(ctx, "kept").Val() != 1 {
		t.Fatal("a key with no expiry went")
	}
}
