package runs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/jobs"
)

// GetForBatch reads what a batch task needs, in one round trip: the run
// (its record and state; not its counters or errors) and whether batch seq
// is recorded. A run's record never changes once created, so each process
// keeps the records it read for a minute, and then reads only the state.
//
// also adds the caller's own commands to the same round trip (a rate
// limiter's step, say); it is given the run as cached, or nil, and reads
// its own results once GetForBatch returns.
func (s *Store) GetForBatch(ctx context.Context, id string, seq int64, also func(cached *jobs.Run, pipe redis.Pipeliner)) (r *jobs.Run, done bool, err error) {
	now := s.now()
	cached := s.records.get(id, now)
	pipe := s.rdb.Pipeline()
	if also != nil {
		also(cached, pipe)
	}
	var state *redis.StringCmd
	var all *redis.MapStringStringCmd
	if cached != nil {
		state = pipe.HGet(ctx, s.key(id), "state")
	} else {
		all = pipe.HGetAll(ctx, s.key(id))
	}
	bit := pipe.GetBit(ctx, s.batchesKey(id), seq)
	_, _ = pipe.Exec(ctx) // each command's error is looked at on its own
	if err := bit.Err(); err != nil {
		return nil, false, fmt.Errorf("reading run %s: %w", id, err)
	}
	if cached != nil {
		st, err := state.Result()
		switch {
		case errors.Is(err, redis.Nil):
			s.records.drop(id)
			return nil, false, fmt.Errorf("run %s: %w", id, ErrNotFound)
		case err != nil:
			return nil, false, fmt.Errorf("reading run %s: %w", id, err)
		}
		r := *cached
		r.State = jobs.State(st)
		return &r, bit.Val() == 1, nil
	}
	h, err := all.Result()
	if err != nil {
		return nil, false, fmt.Errorf("reading run %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, false, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	full, err := decode(id, h, nil)
	if err != nil {
		return nil, false, err
	}
	r = &jobs.Run{ID: full.ID, Trigger: full.Trigger, Target: full.Target, Request: full.Request, Options: full.Options,
		Queue: full.Queue, Source: full.Source, BatchSize: full.BatchSize, CreatedAt: full.CreatedAt}
	s.records.put(id, r, now)
	c := *r
	c.State = full.State
	return &c, bit.Val() == 1, nil
}

// recordCache holds the records of the runs a process works on, each for
// recordTTL, at most maxRecords of them.
type recordCache struct {
	mu sync.Mutex
	m  map[string]cachedRecord
}

type cachedRecord struct {
	run *jobs.Run // the record's fields only; no state
	at  time.Time
}

const (
	recordTTL  = time.Minute
	maxRecords = 1024
)

func (c *recordCache) get(id string, now time.Time) *jobs.Run {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || now.Sub(e.at) >= recordTTL {
		return nil
	}
	return e.run
}

func (c *recordCache) put(id string, r *jobs.Run, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]cachedRecord)
	}
	if len(c.m) >= maxRecords {
		for k, e := range c.m {
			if now.Sub(e.at) >= recordTTL {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxRecords {
			clear(c.m)
		}
	}
	c.m[id] = cachedRecord{run: r, at: now}
}

func (c *recordCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}
