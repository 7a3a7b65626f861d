package runs

import (
	"context"
	"crypto/sha256"
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

// member is what a page's set holds for image key k: 16 bytes of its
// SHA-256, so that the sets cost the same whatever the keys' length
// (registry keys run to a hundred bytes or more), in Redis and on the wire.
func member(k string) string {
	sum := sha256.Sum256([]byte(k))
	return string(sum[:16])
}

// SaveSnapshot stores the result of page p and the keys of the images it
// lists, unless a result is already stored, in one step. It returns the
// stored result and whether that is the caller's (ours); otherwise another
// worker got there first and its result stands.
func (s *Store) SaveSnapshot(ctx context.Context, id string, p int, data []byte, keys []string) (stored []byte, ours bool, err error) {
	args := make([]any, 0, 2+len(keys))
	args = append(args, data, s.retention.Milliseconds())
	for _, k := range keys {
		args = append(args, member(k))
	}
	res, err := saveSnapshotScript.Run(ctx, s.rdb, []string{s.snapKey(id, p), s.seenKey(id, p)}, args...).Result()
	if err != nil {
		return nil, false, fmt.Errorf("saving page %d of run %s: %w", p, id, err)
	}
	if theirs, ok := res.(string); ok {
		return []byte(theirs), false, nil
	}
	return data, true, nil
}

var saveSnapshotScript = redis.NewScript(`
local ttl = tonumber(ARGV[2])
if not redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ttl) then
  return redis.call("GET", KEYS[1])
end
if #ARGV > 2 then
  redis.call("SADD", KEYS[2], unpack(ARGV, 3))
  redis.call("PEXPIRE", KEYS[2], ttl)
end
return 1`)

// Seen reports, for each key, whether one of the window pages before p
// listed it.
func (s *Store) Seen(ctx context.Context, id string, p, window int, keys []string) ([]bool, error) {
	out := make([]bool, len(keys))
	if len(keys) == 0 || window <= 0 || p == 0 {
		return out, nil
	}
	members := make([]any, len(keys))
	for i, k := range keys {
		members[i] = member(k)
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
	h := pipe.HMGet(ctx, s.key(id), viewFields...)
	bit := pipe.GetBit(ctx, s.pagesKey(id), int64(p))
	snap := pipe.Get(ctx, s.snapKey(id, p))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return PageView{}, fmt.Errorf("reading page %d of run %s: %w", p, id, err)
	}
	v := pageView(h.Val(), bit.Val() == 1, snap.Val(), snap.Err() == nil)
	if v.State == "" {
		return PageView{}, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	return v, nil
}

// viewFields are the run fields a PageView is made of (pageDoneScript reads
// the same, in this order).
var viewFields = []string{"state", "batches_total", "batches_submitted", "batches_failed", "batches_skipped"}

// pageView makes a PageView of the values of viewFields, the page's bit,
// and its snapshot if there is one.
func pageView(fields []any, done bool, snap string, hasSnap bool) PageView {
	if len(fields) != len(viewFields) {
		return PageView{}
	}
	st, _ := fields[0].(string)
	v := PageView{State: jobs.State(st), Done: done}
	var n [4]int64
	for i, x := range fields[1:] {
		if str, ok := x.(string); ok {
			n[i], _ = strconv.ParseInt(str, 10, 64)
		}
	}
	v.Backlog = n[0] - n[1] - n[2] - n[3]
	if hasSnap {
		v.Snapshot = []byte(snap)
	}
	return v
}
