package runs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

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

// Digest is what a page's set holds for image key k, and what the page
// loop compares: 16 bytes of its SHA-256, so that the sets cost the same
// whatever the keys' length (registry keys run to a hundred bytes or more),
// in Redis and on the wire. SaveSnapshot and Seen take digests.
func Digest(k string) string {
	sum := sha256.Sum256([]byte(k))
	return string(sum[:16])
}

// SaveOutcome is what SaveSnapshot did.
type SaveOutcome int

const (
	// Stored: the caller's result is page p's, and its keys are in.
	Stored SaveOutcome = iota
	// Existing: a result was stored already (by another worker, or by this
	// task before a crash); it stands and Saved.Snapshot carries it.
	Existing
	// Recorded: page p is recorded already; nothing was stored.
	Recorded
	// Ended: the run is over or gone; nothing was stored.
	Ended
)

// Saved is the answer of SaveSnapshot.
type Saved struct {
	Outcome  SaveOutcome
	Snapshot []byte // the stored result, when Existing
	// View is the run's state and backlog as the same step read them,
	// before page p's batches (State is empty when the run is gone).
	View PageView
}

// SaveSnapshot stores the result of page p and the keys of the images it
// lists, unless a result is stored already, the page is recorded, or the
// run is over, in one step; and it reads what the page loop needs next (the
// run's state and backlog), so that a page costs one round trip before its
// batches are enqueued.
//
// The result (tens of KB) and the keys do not pass through Lua, whose
// copies of large arguments cost several times the commands themselves:
// the same round trip writes them to keys of their own first, and the
// script renames those into place if the page is the caller's to save, or
// drops them.
func (s *Store) SaveSnapshot(ctx context.Context, id string, p int, data []byte, digests []string) (Saved, error) {
	members := make([]any, len(digests))
	for i, d := range digests {
		members[i] = d
	}
	snapKey := s.snapKey(id, p)
	nonce := ":new:" + strconv.FormatUint(rand.Uint64(), 36)
	scriptKeys := []string{s.key(id), s.pagesKey(id), snapKey, s.seenKey(id, p), snapKey + nonce, s.seenKey(id, p) + nonce}
	save := func() (*redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		pipe.Set(ctx, scriptKeys[4], data, newKeyTTL)
		if len(members) > 0 {
			pipe.SAdd(ctx, scriptKeys[5], members...)
			pipe.PExpire(ctx, scriptKeys[5], newKeyTTL)
		}
		cmd := saveSnapshotScript.EvalSha(ctx, pipe, scriptKeys, s.retention.Milliseconds(), p)
		_, err := pipe.Exec(ctx)
		return cmd, err
	}
	cmd, err := save()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis lost its scripts (a restart, SCRIPT FLUSH): load it, once.
		if err = saveSnapshotScript.Load(ctx, s.rdb).Err(); err == nil {
			cmd, err = save()
		}
	}
	if err != nil {
		return Saved{}, fmt.Errorf("saving page %d of run %s: %w", p, id, err)
	}
	vals, err := cmd.Slice()
	if err != nil {
		return Saved{}, fmt.Errorf("saving page %d of run %s: %w", p, id, err)
	}
	out, _ := vals[0].(int64)
	fields, _ := vals[1].([]any)
	saved := Saved{View: pageView(fields, out == 0, "", false)}
	switch out {
	case 1:
		saved.Outcome = Stored
	case 2:
		saved.Outcome = Existing
		if len(vals) > 2 {
			theirs, _ := vals[2].(string)
			saved.Snapshot = []byte(theirs)
		}
	case 0:
		saved.Outcome = Recorded
	default:
		saved.Outcome = Ended
	}
	return saved, nil
}

// newKeyTTL bounds the life of a result written for SaveSnapshot's script,
// should the script not run (the connection dropped between the two).
const newKeyTTL = 5 * time.Minute

// saveSnapshotScript: KEYS are the run, its page bitmap, page p's snapshot
// and key set, and the same two as just written under new names. It
// returns {outcome, the run's view fields[, stored snapshot]}: 1 stored,
// 2 existing, 0 recorded, -1 run over or gone.
var saveSnapshotScript = redis.NewScript(finalLua + `
local view = redis.call("HMGET", KEYS[1], "state", "batches_total", "batches_submitted", "batches_failed", "batches_skipped")
local function drop() redis.call("DEL", KEYS[5], KEYS[6]) end
if not view[1] or is_final(view[1]) then drop() return {-1, view} end
if redis.call("GETBIT", KEYS[2], tonumber(ARGV[2])) == 1 then drop() return {0, view} end
if redis.call("RENAMENX", KEYS[5], KEYS[3]) == 0 then
  drop()
  return {2, view, redis.call("GET", KEYS[3])}
end
local ttl = tonumber(ARGV[1])
redis.call("PEXPIRE", KEYS[3], ttl)
if redis.call("EXISTS", KEYS[6]) == 1 then
  redis.call("RENAME", KEYS[6], KEYS[4])
  redis.call("PEXPIRE", KEYS[4], ttl)
end
return {1, view}`)

// Seen reports, for each image key digest, whether one of the pages
// from..to-1 listed it (pages before 0 listed nothing).
func (s *Store) Seen(ctx context.Context, id string, from, to int, digests []string) ([]bool, error) {
	out := make([]bool, len(digests))
	from = max(from, 0)
	if len(digests) == 0 || from >= to {
		return out, nil
	}
	members := make([]any, len(digests))
	for i, d := range digests {
		members[i] = d
	}
	pipe := s.rdb.Pipeline()
	var cmds []*redis.BoolSliceCmd
	for q := from; q < to; q++ {
		cmds = append(cmds, pipe.SMIsMember(ctx, s.seenKey(id, q), members...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("checking pages %d..%d of run %s for duplicates: %w", from, to-1, id, err)
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

// viewFields are the run fields a PageView is made of (saveSnapshotScript reads
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
