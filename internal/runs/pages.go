package runs

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
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

// Snapshot returns the saved result of page p, if any.
func (s *Store) Snapshot(ctx context.Context, id string, p int) ([]byte, bool, error) {
	b, err := s.rdb.Get(ctx, s.snapKey(id, p)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading page %d of run %s: %w", p, id, err)
	}
	return b, true, nil
}

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
		b, _, err := s.Snapshot(ctx, id, p)
		return b, err
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
