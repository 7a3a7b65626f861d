package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/configs"
)

// Redis is one Redis deployment as both asynq and go-redis reach it.
type Redis struct {
	Opt    asynq.RedisConnOpt
	Client redis.UniversalClient
	// Mini is the in-process server of the embedded mode, nil otherwise.
	// It listens on a loopback port and requires MiniPassword, so that the
	// CLI of the same user (who reads it from the serve record) can reach
	// it, and nobody else.
	Mini         *miniredis.Miniredis
	MiniPassword string
	stopClock    func() // stops the embedded server's expiry clock
}

// Close closes the client and stops an embedded server.
func (r *Redis) Close() {
	_ = r.Client.Close()
	if r.Mini != nil {
		r.stopClock()
		r.Mini.Close()
	}
}

// expiryTick is how often the embedded server's keys age: TTLs there run
// in steps of this much.
const expiryTick = 100 * time.Millisecond

// runExpiry ages the keys of mini by the wall-clock time elapsed, every
// expiryTick, until stop is called. miniredis's own ClockTTL does that on
// every command by walking (and sorting) every key, which made a command
// cost milliseconds once a serve held some thousands of keys: a 5,000-image
// run took 90 s under serve against 10 s under scan.
func runExpiry(mini *miniredis.Miniredis) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(expiryTick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mini.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() { close(done); <-finished }
}

// OpenRedis connects to the Redis named by a redis.url (see
// configs.ParseRedisURL): embedded (an in-process miniredis), one server
// (redis://, rediss:// with TLS), Sentinel or Cluster.
//
// Nothing is dialled yet (New checks the connection once with Check):
// go-redis connects lazily and reconnects with backoff by itself, so a Redis
// that goes briefly away after the start never crashes a role.
func OpenRedis(raw string, dialTimeout time.Duration) (*Redis, error) {
	t, err := configs.ParseRedisURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	opt, err := ConnOpt(t, dialTimeout)
	if err != nil {
		return nil, err
	}
	var mini *miniredis.Miniredis
	var pw string
	if t.Kind == configs.RedisEmbedded {
		mini = miniredis.NewMiniRedis()
		pw = randomPassword()
		mini.RequireAuth(pw)
		if err := mini.Start(); err != nil {
			return nil, fmt.Errorf("starting embedded Redis: %w", err)
		}
		opt = asynq.RedisClientOpt{Addr: mini.Addr(), Password: pw}
	}
	c, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		if mini != nil {
			mini.Close()
		}
		return nil, fmt.Errorf("redis.url: no go-redis client for %s", t)
	}
	r := &Redis{Opt: opt, Client: c, Mini: mini, MiniPassword: pw}
	if mini != nil {
		// Left alone, miniredis never expires keys, and asynq's leases, the
		// limiter and run retention all depend on expiry.
		r.stopClock = runExpiry(mini)
	}
	return r, nil
}

// ConnOpt turns a parsed redis.url into asynq's connection option.
func ConnOpt(t *configs.RedisTarget, dialTimeout time.Duration) (asynq.RedisConnOpt, error) {
	var tc *tls.Config
	if t.TLS {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	switch t.Kind {
	case configs.RedisEmbedded:
		return nil, nil // OpenRedis starts the server
	case configs.RedisSingle:
		return asynq.RedisClientOpt{Addr: t.Addrs[0], Username: t.Username, Password: t.Password, DB: t.DB,
			DialTimeout: dialTimeout, TLSConfig: tc}, nil
	case configs.RedisSentinel:
		return asynq.RedisFailoverClientOpt{MasterName: t.Master, SentinelAddrs: t.Addrs, Username: t.Username,
			Password: t.Password, DB: t.DB, DialTimeout: dialTimeout, TLSConfig: tc}, nil
	case configs.RedisCluster:
		return asynq.RedisClusterClientOpt{Addrs: t.Addrs, Username: t.Username, Password: t.Password,
			DialTimeout: dialTimeout, TLSConfig: tc}, nil
	}
	return nil, fmt.Errorf("redis.url: unknown kind %q", t.Kind)
}

// Check sends one PING, so that a role whose Redis refuses it (unreachable,
// a wrong or missing password, an unknown database) stops at start with an
// error that says so, instead of reporting itself ready while every call
// fails. shown names the Redis in the error: the URL without its password.
func (r *Redis) Check(ctx context.Context, shown string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := r.Client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis.url %s: Redis refused the connection check (PING): %w", shown, err)
	}
	return nil
}
