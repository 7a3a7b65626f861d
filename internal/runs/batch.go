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

// A Rider is a command of another store on the same Redis that rides on
// one of this store's round trips. Queue adds it to pipe; the rider reads
// its own result once the round trip is over.
type Rider interface {
	Queue(ctx context.Context, pipe redis.Pipeliner)
}

// GetForBatch reads what a batch task needs, in one round trip: the run
// (its record and state; not its counters or errors) and whether batch seq
// is recorded. A run's record never changes once created, so each process
// keeps the records it read for a minute, and then reads only the state.
//
// along, when not nil, is given the run as cached (nil when it is not) and
// may return a Rider whose command goes in the same round trip: the
// limiter's request token (limit.RequestStep), say.
func (s *Store) GetForBatch(ctx context.Context, id string, seq int64, along func(cached *jobs.Run) Rider) (r *jobs.Run, done bool, err error) {
	now := s.now()
	cached := s.records.get(id, now)
	pipe := s.rdb.Pipeline()
	if along != nil {
		if rider := along(cached); rider != nil {
			rider.Queue(ctx, pipe)
		}
	}
	fields := []string{fieldState}
	if cached == nil {
		fields = append(fields, fieldRec)
	}
	vals := pipe.HMGet(ctx, s.key(id), fields...)
	bit := pipe.GetBit(ctx, s.batchesKey(id), seq)
	_, _ = pipe.Exec(ctx) // each command's error is looked at on its own
	if err := errors.Join(vals.Err(), bit.Err()); err != nil {
		return nil, false, fmt.Errorf("reading run %s: %w", id, err)
	}
	h := hmgetHash(fields, vals.Val())
	st, ok := h[fieldState]
	if !ok {
		s.records.drop(id)
		return nil, false, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	if cached == nil {
		if cached, err = decodeRecord(id, h[fieldRec]); err != nil {
			return nil, false, err
		}
		s.records.put(id, cached, now)
	}
	run := *cached
	run.State = jobs.State(st)
	return &run, bit.Val() == 1, nil
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
