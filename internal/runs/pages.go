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
// bounded by the pages in flight. The images a page lists are marked in the
// run's seen-set (seen.go) in the same step that saves its result.

// Digest is what the page loop compares for image key k, and what the
// run's seen-set marks: 16 bytes of its SHA-256, so that comparing and
// marking cost the same whatever the keys' length (registry keys run to a
// hundred bytes or more). SaveSnapshot and Seen take digests.
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

// SaveSnapshot stores the result of page p of pass and marks the images it
// lists (their key digests) in the run's seen-set (of buckets sets, the
// run's SeenBuckets), and the page's tail, the digests of the last items it
// lists before scanq's own filters (those the next page shares with it), unless a result is
// stored already, the page is recorded, or the run is over, in one step;
// and it reads what the page loop needs next (the run's state and
// backlog), so that a page costs one round trip before its batches are
// enqueued.
//
// The result (tens of KB) does not pass through Lua, whose copies of large
// arguments cost several times the commands themselves: the same round
// trip writes it to a key of its own first, and the script renames that
// into place if the page is the caller's to save, or drops it.
func (s *Store) SaveSnapshot(ctx context.Context, id string, buckets, pass, p int, data []byte, digests, tail []string) (Saved, error) {
	snapKey := s.snapKey(id, p)
	nonce := ":new:" + strconv.FormatUint(rand.Uint64(), 36)
	if pass < 1 || pass > MaxPasses {
		return Saved{}, fmt.Errorf("saving page %d of run %s: pass %d: passes are 1..%d", p, id, pass, MaxPasses)
	}
	bucketKeys, marks := s.marks(id, buckets, append(digests[:len(digests):len(digests)], tail...))
	scriptKeys := append([]string{s.key(id), s.pagesKey(id), snapKey, snapKey + nonce}, bucketKeys...)
	args := append([]any{s.retention.Milliseconds(), p, pass, bucketsOr(buckets), len(tail)}, marks...)
	save := func() (*redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		pipe.Set(ctx, scriptKeys[3], data, newKeyTTL)
		cmd := saveSnapshotScript.EvalSha(ctx, pipe, scriptKeys, args...)
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

// saveSnapshotScript: KEYS are the run, its page bitmap, page p's snapshot,
// the same as just written under a new name, and then the seen-set bucket
// of each image and then of each tail item. ARGV: the retention (ms), p,
// the pass, the run's bucket count, the number of tail items, then each
// image's and tail item's mark base (markLua). It returns {outcome, the run's view fields[, stored
// snapshot]}: 1 stored, 2 existing, 0 recorded, -1 run over or gone.
var saveSnapshotScript = redis.NewScript(finalLua + markLua + `
local view = redis.call("HMGET", KEYS[1], ` + luaStrings(viewFields) + `)
local function drop() redis.call("DEL", KEYS[4]) end
if not view[1] or is_final(view[1]) then drop() return {-1, view} end
if redis.call("GETBIT", KEYS[2], tonumber(ARGV[2])) == 1 then drop() return {0, view} end
if redis.call("RENAMENX", KEYS[4], KEYS[3]) == 0 then
  drop()
  return {2, view, redis.call("GET", KEYS[3])}
end
local ttl = tonumber(ARGV[1])
redis.call("PEXPIRE", KEYS[3], ttl)
mark_seen(5, 6, tonumber(ARGV[3]), math.max(ttl, SEEN_TTL), ARGV[4], tonumber(ARGV[5]))
return {1, view}`)

// PageView is what a page task needs to know before it resolves page p,
// read in one round trip: the run's state, whether p is recorded, p's saved
// result, how many of the run's batches are enqueued and unfinished, and
// the pass the run is in.
type PageView struct {
	State    jobs.State
	Done     bool
	Snapshot []byte // nil when the page was not listed yet
	Backlog  int64
	Pass     Pass
}

// Pass is the listing pass a run is in: the first lists the run's source,
// and each one after it (a reconciliation pass) lists it again from the
// start, for what the passes before it missed. Pages are numbered across
// passes: a pass's first page is Base.
type Pass struct {
	N    int // 1 for the first pass
	Base int // the pass's first page
	Geometry
}

// Geometry is how a run lists its source, fixed when the run starts (Start)
// so that every worker pages it alike whatever its own configuration. A
// run started before runs kept it has none (PageSize 0).
type Geometry struct {
	PageSize  int // images a page
	Overlap   int // images consecutive pages share
	MaxPasses int // passes at most (1: no reconciliation)
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
var viewFields = []string{"state", "batches_total", "batches_submitted", "batches_failed", "batches_skipped", "pass", "pass_base",
	"page_size", "overlap", "max_passes"}

// luaStrings is a list of strings as Lua arguments: "a", "b".
func luaStrings(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += strconv.Quote(s)
	}
	return out
}

// pageView makes a PageView of the values of viewFields, the page's bit,
// and its snapshot if there is one.
func pageView(fields []any, done bool, snap string, hasSnap bool) PageView {
	if len(fields) != len(viewFields) {
		return PageView{}
	}
	st, _ := fields[0].(string)
	v := PageView{State: jobs.State(st), Done: done}
	var n [9]int64
	for i, x := range fields[1:] {
		if str, ok := x.(string); ok {
			n[i], _ = strconv.ParseInt(str, 10, 64)
		}
	}
	v.Backlog = n[0] - n[1] - n[2] - n[3]
	v.Pass = Pass{N: max(int(n[4]), 1), Base: int(n[5]), Geometry: Geometry{PageSize: int(n[6]), Overlap: int(n[7]), MaxPasses: int(n[8])}}
	if hasSnap {
		v.Snapshot = []byte(snap)
	}
	return v
}
