package configs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Redis deployment kinds.
const (
	RedisEmbedded = "embedded"
	RedisSingle   = "single"
	RedisSentinel = "sentinel"
	RedisCluster  = "cluster"
)

// RedisTarget is a parsed redis.url, ready to become go-redis options.
type RedisTarget struct {
	Kind     string   // RedisEmbedded, RedisSingle, RedisSentinel or RedisCluster
	TLS      bool     // rediss://
	Addrs    []string // host:port; one for RedisSingle, the sentinels or seed nodes otherwise
	Username string
	Password string // secret
	DB       int    // always 0 for RedisCluster
	Master   string // the Sentinel master name
}

// String never shows the password.
func (t RedisTarget) String() string {
	if t.Password != "" {
		t.Password = redacted
	}
	return fmt.Sprintf("%s %v db=%d master=%q tls=%v", t.Kind, t.Addrs, t.DB, t.Master, t.TLS)
}

// splitURL splits scheme://userinfo@hosts/rest by hand: net/url refuses the
// comma-separated host lists of Sentinel and Cluster URLs when they hold
// IPv6 addresses, and redaction must work on URLs that do not parse.
//
// The userinfo ends at the last '@' of the whole text, not at the first
// '/', '?' or '#': a password written with an unescaped '/' must still be
// recognised as userinfo, or redaction and error messages would show the
// part of it after the '/'. The price is that an '@' in a path or query
// must be written %40, which ParseRedisURL says when it matters.
func splitURL(s string) (scheme, userinfo, hosts, rest string, ok bool) {
	scheme, after, ok := strings.Cut(s, "://")
	if !ok {
		return "", "", "", "", false
	}
	if i := strings.LastIndex(after, "@"); i >= 0 {
		userinfo, after = after[:i], after[i+1:]
	}
	hosts = after
	if i := strings.IndexAny(after, "/?#"); i >= 0 {
		hosts, rest = after[:i], after[i:]
	}
	return scheme, userinfo, hosts, rest, true
}

// RedactURL returns s with the password of its userinfo replaced by
// REDACTED (the whole userinfo when it has no ':'), for messages that name
// a Redis or webhook URL.
func RedactURL(s string) string { return redactURL(s, false) }

// ParseRedisURL parses a redis.url value. Errors never contain the
// password.
func ParseRedisURL(s string) (*RedisTarget, error) {
	if s == Embedded {
		return &RedisTarget{Kind: RedisEmbedded}, nil
	}
	scheme, userinfo, hosts, rest, ok := splitURL(s)
	if !ok {
		return nil, errors.New(`want "embedded" or a redis://, rediss://, redis-sentinel:// or redis-cluster:// URL`)
	}
	t := &RedisTarget{}
	defPort := "6379"
	switch scheme {
	case "redis":
		t.Kind = RedisSingle
	case "rediss":
		t.Kind, t.TLS = RedisSingle, true
	case "redis-sentinel":
		t.Kind, defPort = RedisSentinel, "26379"
	case "redis-cluster":
		t.Kind = RedisCluster
	default:
		return nil, fmt.Errorf("unsupported scheme %q: want redis, rediss, redis-sentinel or redis-cluster", scheme)
	}

	// The rest (path, query) parsed against a placeholder authority; the
	// userinfo is unescaped the same way net/url would.
	u, err := url.Parse("x://h" + rest)
	if err != nil {
		return nil, errors.New("malformed path or query")
	}
	if u.Fragment != "" {
		return nil, errors.New("unexpected #fragment")
	}
	if userinfo != "" {
		// Nothing of the userinfo is ever quoted in an error.
		if strings.ContainsAny(userinfo, "/?#") {
			return nil, errors.New(`user:password holds '/', '?' or '#': percent-encode them (%2F, %3F, %23), and write an '@' of the path or query as %40`)
		}
		ui, err := url.Parse("x://" + userinfo + "@h")
		if err != nil || ui.User == nil {
			return nil, errors.New("malformed user:password (percent-encode special characters)")
		}
		// A userinfo without ':' is the password, as redis-cli reads
		// redis://secret@host (go-redis's own ParseURL would send it as a
		// user name); redaction hides it as a password too.
		if pw, ok := ui.User.Password(); ok {
			t.Username, t.Password = ui.User.Username(), pw
		} else {
			t.Password = ui.User.Username()
		}
	}

	for _, h := range strings.Split(hosts, ",") {
		addr, err := hostPort(h, defPort)
		if err != nil {
			return nil, err
		}
		t.Addrs = append(t.Addrs, addr)
	}
	if t.Kind == RedisSingle && len(t.Addrs) > 1 {
		return nil, errors.New("several hosts: use redis-sentinel:// or redis-cluster://")
	}

	switch p := strings.TrimPrefix(u.Path, "/"); {
	case p == "":
	case t.Kind == RedisCluster:
		return nil, errors.New("a Redis Cluster has only database 0; remove the /db path")
	default:
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			return nil, fmt.Errorf("database must be a number >= 0, got %q", p)
		}
		t.DB = db
	}

	q := u.Query()
	if t.Kind == RedisSentinel {
		t.Master = q.Get("master")
		if t.Master == "" {
			return nil, errors.New("redis-sentinel:// needs ?master=NAME, the name Sentinel monitors")
		}
		q.Del("master")
	}
	for k := range q {
		return nil, fmt.Errorf("unsupported parameter %q", k)
	}
	return t, nil
}

// hostPort checks one host[:port] and adds the default port.
func hostPort(h, defPort string) (string, error) {
	if h == "" {
		return "", errors.New("missing host")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port: "host", or a bare IPv6 address in brackets.
		host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defPort
		if strings.ContainsAny(host, "[]/ ") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
			return "", fmt.Errorf("bad host %q", h)
		}
	}
	if host == "" {
		return "", fmt.Errorf("missing host in %q", h)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("bad port in %q", h)
	}
	return net.JoinHostPort(host, port), nil
}
