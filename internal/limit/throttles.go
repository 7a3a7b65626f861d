package limit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Throttle is a target's slow-down after a 429 (Throttled) as the fleet's
// limiter holds it, measured on the Redis server's clock.
type Throttle struct {
	// Blocked is how much longer no request of the target may go; 0 when
	// none is blocked.
	Blocked time.Duration
	// Slowed is how much longer the slow-down lasts: the block, then the
	// half rate of the cooldown; 0 once the target is back to its full rate.
	Slowed time.Duration
}

// Throttles reads the slow-down of each of targets, in that order, in one
// round trip and without changing it: what a metrics scrape reports.
func (l *Limiter) Throttles(ctx context.Context, targets []string) ([]Throttle, error) {
	pipe := l.rdb.Pipeline()
	now := pipe.Time(ctx)
	reads := make([]*redis.SliceCmd, len(targets))
	for i, t := range targets {
		reads[i] = pipe.HMGet(ctx, l.targetKeys(t)[2], "until", "cool")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("limit: reading throttles: redis: %w", err)
	}
	nowUS := now.Val().UnixMicro()
	out := make([]Throttle, len(targets))
	for i, r := range reads {
		var at [2]int64 // until, cool: µs
		for j, v := range r.Val() {
			s, ok := v.(string)
			if !ok {
				continue // no throttle recorded
			}
			// Written by Lua, a number may come in float notation.
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("limit: reading the throttle of target %q: %w", targets[i], err)
			}
			at[j] = int64(f)
		}
		out[i] = Throttle{
			Blocked: time.Duration(max(0, at[0]-nowUS)) * time.Microsecond,
			Slowed:  time.Duration(max(0, at[0]-nowUS, at[1]-nowUS)) * time.Microsecond,
		}
	}
	return out, nil
}
