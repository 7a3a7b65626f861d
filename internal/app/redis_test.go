package app_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/redistest"
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
			time.Sleep(150 * time.Millisecond)
			if n := r.Client.Exists(context.Background(), "k").Val(); n != 0 {
				t.Fatal("embedded Redis does not expire keys: ClockTTL is off")
			}
		}
		r.Close()
	}
}
