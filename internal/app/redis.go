package app

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Redis is one Redis deployment as both asynq and go-redis reach it.
type Redis struct {
	Opt    asynq.RedisConnOpt
	Client redis.UniversalClient
	// Mini is the in-process server of the embedded mode, nil otherwise.
	Mini *miniredis.Miniredis
}

// Close closes the client and stops an embedded server.
func (r *Redis) Close() {
	_ = r.Client.Close()
	if r.Mini != nil {
		r.Mini.Close()
	}
}

// OpenRedis connects to the Redis named by raw:
//
//	embedded                                   an in-process miniredis (demo: nothing survives)
//	redis://[user:pass@]host:port/db           a server
//	rediss://...                               a server over TLS
//	redis-sentinel://[:pass@]h1:26379,h2:26379/db?master=NAME   Sentinel failover
//	redis-cluster://[:pass@]h1:6379,h2:6379    a Redis Cluster
//
// Nothing is dialled yet: go-redis connects lazily and reconnects with
// backoff by itself, so a Redis that is briefly away never crashes a role.
func OpenRedis(raw string, dialTimeout time.Duration) (*Redis, error) {
	if raw == "embedded" {
		m := miniredis.NewMiniRedis()
		// Without ClockTTL miniredis never expires keys, and asynq's leases,
		// the limiter and run retention all depend on expiry.
		m.ClockTTL(true)
		if err := m.Start(); err != nil {
			return nil, fmt.Errorf("starting embedded Redis: %w", err)
		}
		opt := asynq.RedisClientOpt{Addr: m.Addr()}
		return &Redis{Opt: opt, Client: redis.NewClient(&redis.Options{Addr: m.Addr()}), Mini: m}, nil
	}
	opt, err := ParseRedisURL(raw)
	if err != nil {
		return nil, err
	}
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		o.DialTimeout = dialTimeout
		opt = o
	case asynq.RedisFailoverClientOpt:
		o.DialTimeout = dialTimeout
		opt = o
	case asynq.RedisClusterClientOpt:
		o.DialTimeout = dialTimeout
		opt = o
	}
	c, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("redis.url: unsupported client for %s", redact(raw))
	}
	return &Redis{Opt: opt, Client: c}, nil
}

// ParseRedisURL turns a redis.url into asynq's connection option. Errors
// never repeat the password.
func ParseRedisURL(raw string) (asynq.RedisConnOpt, error) {
	if rest, ok := strings.CutPrefix(raw, "redis-cluster://"); ok {
		u, err := url.Parse("redis://" + rest)
		if err != nil {
			return nil, fmt.Errorf("redis.url %s: %v", redact(raw), stripURL(err))
		}
		if u.Host == "" {
			return nil, fmt.Errorf("redis.url %s: no cluster nodes", redact(raw))
		}
		opt := asynq.RedisClusterClientOpt{Addrs: strings.Split(u.Host, ",")}
		if u.User != nil {
			opt.Username = u.User.Username()
			opt.Password, _ = u.User.Password()
		}
		return opt, nil
	}
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		return nil, fmt.Errorf("redis.url %s: %v", redact(raw), stripURL(err))
	}
	return opt, nil
}

// redact hides the password of a Redis URL.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "(unparseable URL)"
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user := rest[:at]
		if name, _, has := strings.Cut(user, ":"); has {
			user = name + ":xxxxx"
		}
		rest = user + "@" + rest[at+1:]
	}
	return scheme + "://" + rest
}

// stripURL drops the URL that url.Error repeats, password and all.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
