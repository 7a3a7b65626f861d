// Package redistest gives tests a Redis to talk to: a real server (a dedicated
// database, cleared for each test) when SCANQ_TEST_REDIS_URL is set, and an
// in-process miniredis. Tests that must hold on both run under Each.
//
// Packages run their tests in parallel processes, so a real database is
// leased: the test takes a lock key in one database of a small pool and clears
// every other key in it; the lease is released when the test ends. No test
// ever touches a database it has not leased.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// EnvURL names the variable holding the real Redis used by tests, for
// example redis://127.0.0.1:6379/8. Its database index is the first of the
// pool; the pool runs up to database 15.
const EnvURL = "SCANQ_TEST_REDIS_URL"

const lockKey = "scanq:test:lease"

// Backend is one Redis for a test.
type Backend struct {
	Name   string // "redis" or "miniredis"
	URL    string // redis://host:port/db
	Client *redis.Client
	Mini   *miniredis.Miniredis // nil for a real server
}

// Each runs f as a subtest once on miniredis and once on real Redis. Without
// SCANQ_TEST_REDIS_URL the real-Redis subtest is skipped and says why.
func Each(t *testing.T, f func(t *testing.T, b *Backend)) {
	t.Helper()
	t.Run("miniredis", func(t *testing.T) { f(t, Mini(t)) })
	t.Run("redis", func(t *testing.T) { f(t, Real(t)) })
}

// Mini starts a miniredis for the test. TTLs follow the wall clock
// (ClockTTL), as they do on a real server.
func Mini(t testing.TB) *Backend {
	t.Helper()
	m := miniredis.RunT(t)
	m.ClockTTL(true)
	u := "redis://" + m.Addr() + "/0"
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return &Backend{Name: "miniredis", URL: u, Client: c, Mini: m}
}

// Real leases a cleared database on the server named by SCANQ_TEST_REDIS_URL,
// or skips the test when the variable is unset (CI always sets it).
func Real(t testing.TB) *Backend {
	t.Helper()
	raw := os.Getenv(EnvURL)
	if raw == "" {
		t.Skipf("%s is not set: no real Redis for this test (.ci/run sets it)", EnvURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	first := 0
	if p := u.Path; len(p) > 1 {
		if first, err = strconv.Atoi(p[1:]); err != nil {
			t.Fatalf("%s: database index %q: %v", EnvURL, p[1:], err)
		}
	}
	token := randomToken()
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		for db := first; db <= 15; db++ {
			opt, err := redis.ParseURL(raw)
			if err != nil {
				t.Fatalf("%s: %v", EnvURL, err)
			}
			opt.DB = db
			c := redis.NewClient(opt)
			ok, err := c.SetNX(ctx, lockKey, token, 15*time.Minute).Result()
			if err != nil {
				_ = c.Close()
				t.Fatalf("real Redis at %s: %v", raw, err)
			}
			if !ok {
				_ = c.Close()
				continue
			}
			if err := clear(ctx, c); err != nil {
				t.Fatalf("clearing database %d: %v", db, err)
			}
			t.Cleanup(func() {
				_ = release.Run(context.Background(), c, []string{lockKey}, token).Err()
				_ = c.Close()
			})
			lu := *u
			lu.Path = "/" + strconv.Itoa(db)
			return &Backend{Name: "redis", URL: lu.String(), Client: c}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no free test database in %d..15 after 5m", first)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clear deletes every key of the leased database but the lease.
func clear(ctx context.Context, c *redis.Client) error {
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		if k := iter.Val(); k != lockKey {
			keys = append(keys, k)
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

var release = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// String describes the backend without credentials, for test logs.
func (b *Backend) String() string { return fmt.Sprintf("%s(%s)", b.Name, redactURL(b.URL)) }

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "redis"
	}
	return u.Redacted()
}
