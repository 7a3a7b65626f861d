package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// LocalServe is what a `scanq serve` on the embedded Redis records for the
// CLI of the same user on the same machine: where its Redis listens and
// the password that opens it. The record is the credential: it is written
// 0600 in a 0700 directory, and the embedded Redis refuses every
// connection that does not AUTH with its password.
type LocalServe struct {
	PID           int    `json:"pid"`
	RedisAddr     string `json:"redis_addr"`
	RedisPassword string `json:"redis_password"`
	APIAddr       string `json:"api_addr,omitempty"`
	DemoSchedule  bool   `json:"demo_schedule,omitempty"`
	// Targets are the serve's targets: a CLI configured with others would
	// start runs its workers cannot do, and says so (TargetsDiffer).
	Targets   []string  `json:"targets,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// TargetsDiffer says, when targets (a CLI's) are not the recorded serve's,
// what to do about it; "" when they are the same, or the record predates
// the field.
func (l *LocalServe) TargetsDiffer(targets []string) string {
	if len(l.Targets) == 0 || slices.Equal(slices.Sorted(slices.Values(targets)), slices.Sorted(slices.Values(l.Targets))) {
		return ""
	}
	return fmt.Sprintf("this command is configured with targets %s, but the scanq serve it reaches (pid %d) has %s: "+
		"runs it starts would fail and its lists would mislead; pass the serve's configuration (--config FILE or SCANQ_CONFIG)",
		strings.Join(targets, ", "), l.PID, strings.Join(l.Targets, ", "))
}

// RedisURL is the redis.url that reaches the recorded serve's Redis.
func (l *LocalServe) RedisURL() string {
	u := url.URL{Scheme: "redis", User: url.UserPassword("", l.RedisPassword), Host: l.RedisAddr, Path: "/0"}
	return u.String()
}

// ErrNoLocalServe is returned by FindLocalServe when no `scanq serve` of
// this user is running on this machine.
var ErrNoLocalServe = errors.New("no scanq serve is running on this machine")

// LocalServePath is where `scanq serve` records its embedded Redis:
// $XDG_RUNTIME_DIR/scanq/serve.json (per user, cleared at logout), else
// the user's cache directory (~/.cache/scanq/serve.json on Linux).
func LocalServePath() (string, error) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "scanq", "serve.json"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding where scanq serve records its Redis: %w", err)
	}
	return filepath.Join(d, "scanq", "serve.json"), nil
}

// writeLocalServe records l at path, replacing a record atomically.
func writeLocalServe(path string, l *LocalServe) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("recording the embedded Redis for the CLI: %w", err)
	}
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".serve-*.json")
	if err != nil {
		return fmt.Errorf("recording the embedded Redis for the CLI: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("recording the embedded Redis for the CLI in %s: %w", path, werr)
	}
	return nil
}

// readLocalServe reads the record at path; a missing record is
// ErrNoLocalServe.
func readLocalServe(path string) (*LocalServe, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (no record in %s)", ErrNoLocalServe, path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var l LocalServe
	if err := json.Unmarshal(data, &l); err != nil || l.RedisAddr == "" {
		return nil, fmt.Errorf("%w (%s is not a serve record; remove it)", ErrNoLocalServe, path)
	}
	return &l, nil
}

// removeLocalServe removes the record at path if it is still the one of
// the Redis at addr: a serve started later may have replaced it.
func removeLocalServe(path, addr string) {
	if l, err := readLocalServe(path); err == nil && l.RedisAddr == addr {
		_ = os.Remove(path)
	}
}

// FindLocalServe returns the running `scanq serve` recorded at path. A
// record whose Redis does not answer, or does not take its password, is
// stale (its serve was killed before it could remove it): it is removed,
// and the error (ErrNoLocalServe) says so.
func FindLocalServe(ctx context.Context, path string) (*LocalServe, error) {
	l, err := readLocalServe(path)
	if err != nil {
		return nil, err
	}
	c := redis.NewClient(&redis.Options{Addr: l.RedisAddr, Password: l.RedisPassword, MaxRetries: -1, DialTimeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		removeLocalServe(path, l.RedisAddr)
		return nil, fmt.Errorf("%w (removed the stale record %s of serve pid %d: its Redis %s: %v)",
			ErrNoLocalServe, path, l.PID, l.RedisAddr, err)
	}
	return l, nil
}

// randomPassword is the embedded Redis's password: it stops other users
// of the machine from reaching a Redis that listens on loopback.
func randomPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
