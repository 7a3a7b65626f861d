package runs

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/jobs"
)

// Page bookkeeping. A page is listed once per run: its result (after
// filtering) is saved as a snapshot before any of its batches is enqueued,
// so a page task that runs again after a crash re-enqueues the same batches
// instead of listing a registry that may have changed. The snapshot is
// dropped once the page is recorded, which keeps a run's footprint in Redis
// bounded by the pages in flight.
//
// De-duplication: offset pagination over a changing registry shifts items
// across page boundaries, so the same image can come back on the next page.
// Each page's image keys are kept in a set for the next `window` pages and
// an image already seen there is skipped as a duplicate. The window bounds
// memory (window × page size keys per run) instead of remembering every
// image of a 2M-image run; an image that moves further than window pages
// within one run is not caught.

// SaveSnapshot stores the result of page p and the keys of the images it
// lists, unless a result is already stored; it returns the stored result,
// which is the caller's unless another worker got there first.
func (s *Store) SaveSnapshot(ctx context.Context, id string, p int, data []byte, keys []string) ([]byte, error) {
	ttl := s.retention
	ok, err := s.rdb.SetNX(ctx, s.snapKey(id, p), data, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("saving page %d of run %s: %w", p, id, err)
	}
	if !ok {
		b, err := s.rdb.Get(ctx, s.snapKey(id, p)).Bytes()
		if err != nil {
			return nil, fmt.Errorf("reading page %d of run %s: %w", p, id, err)
		}
		return b, nil
	}
	if len(keys) > 0 {
		members := make([]any, len(keys))
		for i, k := range keys {
			members[i] = k
		}
		pipe := s.rdb.Pipeline()
		pipe.SAdd(ctx, s.seenKey(id, p), members...)
		pipe.PExpire(ctx, s.seenKey(id, p), ttl)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("saving keys of page %d of run %s: %w", p, id, err)
		}
	}
	return data, nil
}

// Seen reports, for each key, whether one of the window pages before p
// listed it.
func (s *Store) Seen(ctx context.Context, id string, p, window int, keys []string) ([]bool, error) {
	out := make([]bool, len(keys))
	if len(keys) == 0 || window <= 0 || p == 0 {
		return out, nil
	}
	members := make([]any, len(keys))
	for i, k := range keys {
		members[i] = k
	}
	pipe := s.rdb.Pipeline()
	var cmds []*redis.BoolSliceCmd
	for q := max(0, p-window); q < p; q++ {
		cmds = append(cmds, pipe.SMIsMember(ctx, s.seenKey(id, q), members...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("checking page %d of run %s for duplicates: %w", p, id, err)
	}
	for _, c := range cmds {
		for i, v := range c.Val() {
			out[i] = out[i] || v
		}
	}
	return out, nil
}

// DropPage forgets the snapshot of page p and the keys of the page that
// just left the de-duplication window.
func (s *Store) DropPage(ctx context.Context, id string, p, window int) error {
	keys := []string{s.snapKey(id, p)}
	if old := p - window; old >= 0 {
		keys = append(keys, s.seenKey(id, old))
	}
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("dropping page %d of run %s: %w", p, id, err)
	}
	return nil
}

// PageView is what a page task needs to know before it resolves page p,
// read in one round trip: the run's state, whether p is recorded, p's saved
// result, and how many of the run's batches are enqueued and unfinished.
type PageView struct {
	State    jobs.State
	Done     bool
	Snapshot []byte // nil when the page was not listed yet
	Backlog  int64
}

// ViewPage reads the PageView of page p of run id.
func (s *Store) ViewPage(ctx context.Context, id string, p int) (PageView, error) {
	pipe := s.rdb.Pipeline()
	h := pipe.HMGet(ctx, s.key(id), "state", "batches_total", "batches_submitted", "batches_failed", "batches_skipped")
	bit := pipe.GetBit(ctx, s.pagesKey(id), int64(p))
	snap := pipe.Get(ctx, s.snapKey(id, p))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return PageView{}, fmt.Errorf("reading page %d of run %s: %w", p, id, err)
	}
	vals := h.Val()
	if len(vals) == 0 || vals[0] == nil {
		return PageView{}, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	v := PageView{State: jobs.State(vals[0].(string)), Done: bit.Val() == 1}
	var n [4]int64
	for i, x := range vals[1:] {
		if str, ok := x.(string); ok {
			n[i], _ = strconv.ParseInt(str, 10, 64)
		}
	}
	v.Backlog = n[0] - n[1] - n[2] - n[3]
	if b, err := snap.Bytes(); err == nil {
		v.Snapshot = b
	}
	return v, nil
}
