package limit

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scanq/scanq/internal/redistest"
)

func TestImagesValidation(t *testing.T) {
	t.Parallel()
	b := redistest.Mini(t)
	l := New(b.Client, Options{})
	tests := []struct {
		name    string
		rate    int
		period  time.Duration
		n       int
		wantErr string // empty: granted
	}{
		{"valid", 600, time.Hour, 10, ""},
		{"negative rate", -1, time.Hour, 1, "rate_limit must be >= 0"},
		{"zero period", 600, 0, 1, "period must be"},
		{"sub-microsecond period", 600, time.Nanosecond, 1, "period must be"},
		{"zero n", 600, time.Hour, 0, "n must be >= 1"},
		{"n of one minute", 600, time.Hour, 10, ""},
		{"n above one minute", 600, time.Hour, 11, "exceeds one minute of budget (10)"},
		{"unlimited ignores n", 0, 0, 1000, ""},
		{"longest period", 60, time.Duration(math.MaxInt64), 1, ""},
		{"largest rate and batch", math.MaxInt, time.Duration(math.MaxInt64), math.MaxInt/60 + 1, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := l.allowImages(context.Background(), "run-"+string(rune('a'+i)), tt.rate, tt.period, tt.n)
			if tt.wantErr == "" {
				if err != nil || !d.Granted {
					t.Fatalf("allowImages = %+v, %v; want granted", d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("allowImages error = %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "run-") {
				t.Errorf("error %q does not name the run", err)
			}
		})
	}
}

func TestAllowRequestValidation(t *testing.T) {
	t.Parallel()
	b := redistest.Mini(t)
	l := New(b.Client, Options{})
	tests := []struct {
		name      string
		perSecond float64
		burst     int
		wantErr   string
	}{
		{"valid", 10, 1, ""},
		{"fractional rate", 0.5, 1, ""},
		{"no rate limit ignores burst", 0, 0, ""},
		{"negative rate", -1, 1, "requests per second must be"},
		{"NaN rate", math.NaN(), 1, "requests per second must be"},
		{"infinite rate", math.Inf(1), 1, "requests per second must be"},
		{"zero burst", 10, 0, "burst must be >= 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := l.AllowRequest(context.Background(), "target-"+tt.name, tt.perSecond, tt.burst)
			if tt.wantErr == "" {
				if err != nil || !d.Granted {
					t.Fatalf("AllowRequest = %+v, %v; want granted", d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("AllowRequest error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if err := l.Throttled(context.Background(), "t", time.Second, -time.Second); err == nil || !strings.Contains(err.Error(), "cooldown must be >= 0") {
		t.Errorf("Throttled with negative cooldown: error = %v, want one naming cooldown", err)
	}
	if err := l.Throttled(context.Background(), "t", time.Second, 0); err != nil {
		t.Errorf("Throttled with zero cooldown: %v", err)
	}
}

// TestUnlimitedImagesNeedNoRedis points the limiter at a Redis that is gone:
// R == 0 must still be granted, so it cannot have made a call.
func TestUnlimitedImagesNeedNoRedis(t *testing.T) {
	t.Parallel()
	b := redistest.Mini(t)
	c := redis.NewClient(&redis.Options{Addr: b.Mini.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	b.Mini.Close()
	now := time.Unix(1_700_000_000, 0)
	l := New(c, Options{Now: func() time.Time { return now }})
	d, err := l.allowImages(context.Background(), "run", 0, time.Hour, 100)
	if err != nil || !d.Granted || !d.At.Equal(now) {
		t.Fatalf("allowImages(R=0) = %+v, %v; want granted at %s without Redis", d, err, now)
	}
	// The same limiter with a limit does need Redis, and says so.
	if _, err := l.allowImages(context.Background(), "run", 600, time.Hour, 1); err == nil || !strings.Contains(err.Error(), "redis") {
		t.Fatalf("allowImages(R=600) on a closed Redis: error = %v, want a redis error", err)
	}
}

// clock is a miniredis whose TIME (and TTLs) the test moves by hand.
type clock struct {
	t   *testing.T
	b   *redistest.Backend
	now time.Time
}

func newClock(t *testing.T) *clock {
	b := redistest.Mini(t)
	c := &clock{t: t, b: b, now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	b.Mini.SetTime(c.now)
	return c
}

func (c *clock) advance(d time.Duration) {
	c.now = c.now.Add(d)
	c.b.Mini.SetTime(c.now)
}

// expect checks one decision against the granted flag and the exact wait.
func (c *clock) expect(what string, d Decision, err error, granted bool, wait time.Duration) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
	if d.Granted != granted || d.Wait != wait || !d.At.Equal(c.now) {
		c.t.Fatalf("%s at +%s: got %+v, want granted=%v wait=%s at=%s", what, c.now.Sub(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)), d, granted, wait, c.now)
	}
}

func TestImagesOnAControlledClock(t *testing.T) {
	t.Parallel()
	c := newClock(t)
	ctx := context.Background()
	l := New(c.b.Client, Options{})
	const rate, period = 600, 6 * time.Second // one image every 10ms
	allow := func(n int) (Decision, error) { return l.allowImages(ctx, "run-1", rate, period, n) }

	d, err := allow(10)
	c.expect("first batch", d, err, true, 0)
	d, err = allow(1)
	c.expect("one more at once", d, err, false, 100*time.Millisecond)
	if ttl := c.b.Mini.TTL(DefaultPrefix + "images:run-1"); ttl != 100*time.Millisecond {
		t.Errorf("TTL after a batch of 10 = %s, want 100ms (the time it pays for)", ttl)
	}
	c.advance(100*time.Millisecond - time.Microsecond)
	d, err = allow(10)
	c.expect("1µs early", d, err, false, time.Microsecond)
	c.advance(time.Microsecond)
	d, err = allow(3)
	c.expect("paid for", d, err, true, 0)
	d, err = allow(3)
	c.expect("second small batch", d, err, false, 30*time.Millisecond)
	// Late arrivals do not bank budget: after a long pause the next batch
	// still has to wait for its own interval before another follows.
	c.advance(time.Hour)
	d, err = allow(10)
	c.expect("after a pause", d, err, true, 0)
	d, err = allow(10)
	c.expect("no banked budget", d, err, false, 100*time.Millisecond)
	// Runs do not share budgets.
	d, err = l.allowImages(ctx, "run-2", rate, period, 10)
	c.expect("another run", d, err, true, 0)
	// Keys expire once paid for.
	c.advance(100 * time.Millisecond)
	if keys := c.b.Mini.Keys(); len(keys) != 0 {
		t.Errorf("keys left after every batch was paid for: %v", keys)
	}
}

func TestImagesGuard(t *testing.T) {
	t.Parallel()
	c := newClock(t)
	l := New(c.b.Client, Options{Guard: 5 * time.Millisecond, Prefix: "other:"})
	d, err := l.allowImages(context.Background(), "run", 600, 6*time.Second, 10)
	c.expect("first batch", d, err, true, 0)
	d, err = l.allowImages(context.Background(), "run", 600, 6*time.Second, 10)
	c.expect("second batch", d, err, false, 105*time.Millisecond)
	if !c.b.Mini.Exists("other:images:run") {
		t.Errorf("key other:images:run missing; keys: %v", c.b.Mini.Keys())
	}
}

func TestRequestsOnAControlledClock(t *testing.T) {
	t.Parallel()
	c := newClock(t)
	ctx := context.Background()
	l := New(c.b.Client, Options{})
	const target = "hss-cn-north-4"
	// 10/s: one token every 100ms; burst 4; half rate: every 200ms, burst 2.
	allow := func() (Decision, error) { return l.AllowRequest(ctx, target, 10, 4) }

	for i := range 4 {
		d, err := allow()
		c.expect("burst "+string(rune('1'+i)), d, err, true, 0)
	}
	d, err := allow()
	c.expect("beyond the burst", d, err, false, 100*time.Millisecond)

	if err := l.Throttled(ctx, target, 3*time.Second, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// A second, shorter 429 does not shorten the first.
	if err := l.Throttled(ctx, target, time.Second, time.Second); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Second)
	d, err = allow()
	c.expect("blocked", d, err, false, 2*time.Second)
	c.advance(2*time.Second - time.Microsecond)
	d, err = allow()
	c.expect("blocked until the end", d, err, false, time.Microsecond)
	c.advance(time.Microsecond)

	// Cooldown: both keys consulted, the half-rate one is stricter.
	d, err = allow()
	c.expect("cooldown 1", d, err, true, 0)
	d, err = allow()
	c.expect("cooldown 2", d, err, true, 0)
	d, err = allow()
	c.expect("cooldown beyond half burst", d, err, false, 200*time.Millisecond)
	// Denied by the slow key only: the full-rate key was not charged, so a
	// denial burns no token.
	c.advance(200 * time.Millisecond)
	d, err = allow()
	c.expect("cooldown, one half-rate interval later", d, err, true, 0)
	d, err = allow()
	c.expect("cooldown, then again", d, err, false, 200*time.Millisecond)

	// Recovered: the throttle has expired and the full burst is back.
	c.advance(10 * time.Second)
	if c.b.Mini.Exists(DefaultPrefix + "req:{" + target + "}:throttle") {
		t.Errorf("throttle record still there after the cooldown")
	}
	for i := range 4 {
		d, err := allow()
		c.expect("recovered burst "+string(rune('1'+i)), d, err, true, 0)
	}
	d, err = allow()
	c.expect("recovered, beyond the burst", d, err, false, 100*time.Millisecond)

	// A 429 with no Retry-After blocks for the default.
	if err := l.Throttled(ctx, target, 0, 0); err != nil {
		t.Fatal(err)
	}
	d, err = allow()
	c.expect("default block", d, err, false, DefaultRetryAfter)
	// Without a rate limit the block still holds, and nothing else does.
	d, err = l.AllowRequest(ctx, target, 0, 0)
	c.expect("no rate, blocked", d, err, false, DefaultRetryAfter)
	c.advance(DefaultRetryAfter)
	for range 10 {
		d, err = l.AllowRequest(ctx, target, 0, 0)
		c.expect("no rate", d, err, true, 0)
	}
	c.advance(time.Second)
	if keys := c.b.Mini.Keys(); len(keys) != 0 {
		t.Errorf("keys left after recovery: %v", keys)
	}
}

// reqModel is the request limiter's semantics in Go, a reference the Lua
// must agree with to the microsecond on the server clock.
type reqModel struct{ tat, slow, until, cool int64 }

func gcraStep(tat, now, inc, tol int64) (next, wait int64) {
	next = max(tat, now) + inc
	return next, next - tol - now
}

func (m *reqModel) allow(now int64, perSecond float64, burst int) (bool, int64) {
	if now < m.until {
		return false, m.until - now
	}
	inc := int64(math.Ceil(1e6 / perSecond))
	next, wait := gcraStep(m.tat, now, inc, inc*int64(burst))
	var slow int64
	cooling := now < m.cool
	if cooling {
		var w int64
		slow, w = gcraStep(m.slow, now, 2*inc, 2*inc*int64(max(1, burst/2)))
		wait = max(wait, w)
	}
	if wait > 0 {
		return false, wait
	}
	m.tat = next
	if cooling {
		m.slow = slow
	}
	return true, 0
}

// TestRequestsAgainstModel runs on the real clock (and real Redis) through
// every phase: normal, blocked, cooldown, recovered, and checks each
// decision against reqModel at the decision's own server time, so the
// test does not depend on how fast the machine is.
func TestRequestsAgainstModel(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		t.Parallel()
		ctx := context.Background()
		l := New(b.Client, Options{})
		const target, perSecond, burst = "model", 20.0, 3 // 50ms a token
		block, cooldown := 200*time.Millisecond, 500*time.Millisecond
		var m reqModel
		phases := map[string]int{}
		// check asks the limiter, names the phase by the decision's server
		// time and compares with the model.
		check := func() string {
			t.Helper()
			d, err := l.AllowRequest(ctx, target, perSecond, burst)
			if err != nil {
				t.Fatal(err)
			}
			now := d.At.UnixMicro()
			phase := "normal"
			switch {
			case m.cool == 0:
			case now >= m.cool:
				phase = "recovered"
			case now >= m.until:
				phase = "cooldown"
			default:
				phase = "blocked"
			}
			ok, wait := m.allow(now, perSecond, burst)
			if d.Granted != ok || d.Wait != time.Duration(wait)*time.Microsecond {
				t.Fatalf("%s: limiter said %+v, model says allowed=%v retry=%dµs", phase, d, ok, wait)
			}
			if d.Granted {
				phases[phase]++
			}
			return phase
		}
		for range 6 {
			check()
			time.Sleep(10 * time.Millisecond)
		}
		if err := l.Throttled(ctx, target, block, cooldown); err != nil {
			t.Fatal(err)
		}
		th, err := b.Client.HMGet(ctx, DefaultPrefix+"req:{"+target+"}:throttle", "until", "cool").Result()
		if err != nil {
			t.Fatal(err)
		}
		m.until, m.cool = atoi(t, th[0]), atoi(t, th[1])
		if got := m.cool - m.until; got != cooldown.Microseconds() {
			t.Fatalf("cooldown recorded as %dµs, want %dµs", got, cooldown.Microseconds())
		}
		for check() != "recovered" || phases["recovered"] < 3 {
			time.Sleep(7 * time.Millisecond)
		}
		if phases["normal"] == 0 || phases["blocked"] != 0 || phases["cooldown"] == 0 {
			t.Fatalf("grants by phase %v: want some before the 429, none while blocked, some in the cooldown", phases)
		}
		t.Logf("grants by phase: %v", phases)
	})
}

func atoi(t *testing.T, v any) int64 {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("throttle field %v is not a string", v)
	}
	var n int64
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("throttle field %q is not an integer", s)
		}
		n = n*10 + int64(r-'0')
	}
	return n
}

// TestKeysExpire checks that every key the limiter writes carries a TTL no
// longer than the state it holds, so nothing outlives a run.
func TestKeysExpire(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		t.Parallel()
		ctx := context.Background()
		l := New(b.Client, Options{})
		for i := range 5 {
			if _, err := l.allowImages(ctx, "run", 3600, time.Hour, 60); err != nil {
				t.Fatal(err)
			}
			if _, err := l.AllowRequest(ctx, "target", 0.1, 2); err != nil {
				t.Fatal(err)
			}
			if i == 2 {
				if err := l.Throttled(ctx, "target", 0, 3*time.Second); err != nil {
					t.Fatal(err)
				}
			}
		}
		keys, err := b.Client.Keys(ctx, DefaultPrefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		// The images key holds one batch of 60 at 3600/h: one minute.
		want := map[string]time.Duration{
			DefaultPrefix + "images:run":            time.Minute,
			DefaultPrefix + "req:{target}:rate":     20 * time.Second, // 2 grants of 10s before the throttle
			DefaultPrefix + "req:{target}:throttle": DefaultRetryAfter + 3*time.Second,
		}
		if len(keys) != len(want) {
			t.Fatalf("keys = %v, want %d of them", keys, len(want))
		}
		for _, k := range keys {
			limit, ok := want[k]
			if !ok {
				t.Fatalf("unexpected key %q", k)
			}
			ttl, err := b.Client.PTTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ttl <= 0 || ttl > limit {
				t.Errorf("TTL of %s = %s, want in (0, %s]", k, ttl, limit)
			}
		}
	})
}

func benchBackends(b *testing.B, f func(b *testing.B, l *Limiter)) {
	b.Run("miniredis", func(b *testing.B) { f(b, New(redistest.Mini(b).Client, Options{})) })
	b.Run("redis", func(b *testing.B) { f(b, New(redistest.Real(b).Client, Options{})) })
}

// BenchmarkReserveImages measures one decision: a Redis round trip and the
// script. The rate is high enough that every call is granted at once.
func BenchmarkReserveImages(b *testing.B) {
	benchBackends(b, func(b *testing.B, l *Limiter) {
		ctx := context.Background()
		for b.Loop() {
			if _, err := l.allowImages(ctx, "bench", 1<<40, time.Hour, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAllowRequest measures one request decision, which reads the
// throttle record and writes the rate key.
func BenchmarkAllowRequest(b *testing.B) {
	benchBackends(b, func(b *testing.B, l *Limiter) {
		ctx := context.Background()
		for b.Loop() {
			if _, err := l.AllowRequest(ctx, "bench", 1e6, 1000); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRequestStep: the step queued on another store's pipeline decides as
// AllowRequest does (one token, then a denial with a wait), shares its
// state, validates the same way, says so when it was never queued, and
// reports a script Redis lost, which AllowRequest then loads.
func TestRequestStep(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		l := New(b.Client, Options{})
		in := func(perSecond float64, burst int) (Decision, error) {
			t.Helper()
			step := l.RequestStep("t", perSecond, burst, 0)
			pipe := b.Client.Pipeline()
			get := pipe.Get(ctx, "other") // the other store's own command
			step.Queue(ctx, pipe)
			_, _ = pipe.Exec(ctx)
			if !errors.Is(get.Err(), redis.Nil) {
				t.Fatalf("the pipeline's other command: %v", get.Err())
			}
			return step.Decision()
		}
		if _, err := l.AllowRequest(ctx, "t", 1, 1); err != nil { // loads the script
			t.Fatal(err)
		}
		if d, err := in(1, 1); err != nil || d.Granted || d.Wait <= 0 {
			t.Fatalf("second token at 1/s: %+v, %v; want denied with a wait", d, err)
		}
		if d, err := in(0, 0); err != nil || !d.Granted || d.Wait != 0 {
			t.Fatalf("no rate limit: %+v, %v; want granted at once", d, err)
		}
		if _, err := in(-1, 1); err == nil || !strings.Contains(err.Error(), "requests per second must be") {
			t.Fatalf("negative rate: %v", err)
		}
		if _, err := l.RequestStep("t", 0, 0, 0).Decision(); err == nil || !strings.Contains(err.Error(), "never queued") {
			t.Fatalf("a step never queued: %v", err)
		}
		if err := b.Client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := in(0, 0); err == nil || !strings.Contains(err.Error(), "NOSCRIPT") {
			t.Fatalf("after SCRIPT FLUSH: %v, want NOSCRIPT", err)
		}
		if d, err := l.AllowRequest(ctx, "t", 0, 0); err != nil || !d.Granted {
			t.Fatalf("AllowRequest after SCRIPT FLUSH: %+v, %v", d, err)
		}
		if d, err := in(0, 0); err != nil || !d.Granted {
			t.Fatalf("once loaded again: %+v, %v", d, err)
		}
	})
}
