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
	newSnap := snapKey + nonce
	scriptKeys := append([]string{s.key(id), s.pagesKey(id), snapKey, newSnap}, bucketKeys...)
	args := saveSnapshotArgs{retention: s.retention.Milliseconds(), page: p, pass: pass, buckets: bucketsOr(buckets),
		tails: len(tail), bases: marks}.argv()
	save := func() (*redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		pipe.Set(ctx, newSnap, data, newKeyTTL)
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
	out, rest, err := scriptCode(cmd)
	if err != nil {
		return Saved{}, fmt.Errorf("saving page %d of run %s: %w", p, id, err)
	}
	var fields []any
	if len(rest) > 0 {
		fields, _ = rest[0].([]any)
	}
	saved := Saved{View: pageView(fields, out == codeAlready, "", false)}
	switch out {
	case codeDone:
		saved.Outcome = Stored
	case codeExisting:
		saved.Outcome = Existing
		if len(rest) > 1 {
			theirs, _ := rest[1].(string)
			saved.Snapshot = []byte(theirs)
		}
	case codeAlready:
		saved.Outcome = Recorded
	default:
		saved.Outcome = Ended
	}
	return saved, nil
}

// newKeyTTL bounds the life of a result written for SaveSnapshot's script,
// should the script not run (the connection dropped between the two).
const newKeyTTL = 5 * time.Minute

// saveSnapshotScript stores the result of page p and marks the images it
// lists in the run's seen-set (markLua's mark_seen), unless the run is over
// or gone, p is recorded, or a result of p is stored already; and reads
// the run's view fields either way, before it changes anything.
//
// Input:
// KEYS[1] -> run:{<id>} (the run hash)
// KEYS[2] -> run:{<id>}:pages (the bitmap of recorded pages)
// KEYS[3] -> run:{<id>}:snap:<p> (page p's stored result)
// KEYS[4] -> run:{<id>}:snap:<p>:new:<nonce> (the caller's result, written
// just before; renamed to KEYS[3] or dropped)
// KEYS[5..] -> run:{<id>}:marks:<bucket>, the seen-set bucket of each image
// the page lists, then of each of its tail items (Store.marks)
// --
// ARGV[1] -> the retention (ms): KEYS[3]'s expiry, and the buckets' when
// longer than SEEN_TTL
// ARGV[2] -> p
// ARGV[3] -> the pass (1..MaxPasses)
// ARGV[4] -> the run's seen-set bucket count (kept in field "seen")
// ARGV[5] -> how many of KEYS[5..] are tail items (the last ones)
// ARGV[6..] -> the mark base of each image, then of each tail item, in the
// order of KEYS[5..]
//
// Output: {code, view[, stored result]}, view the values of viewFields:
// {DONE, view}: the caller's result is stored (KEYS[4] renamed to KEYS[3])
// and the images and tail items marked
// {EXISTING, view, stored result}: a result was stored already; the
// caller's is dropped
// {ALREADY, view}: page p is recorded (its bit in KEYS[2] is set); the
// caller's result is dropped
// {GONE, view}: the run is gone or final; the caller's result is dropped
var saveSnapshotScript = redis.NewScript(codesLua + finalLua + markLua + `
local view = redis.call("HMGET", KEYS[1], ` + luaStrings(viewFields) + `)
local function drop() redis.call("DEL", KEYS[4]) end
if not view[1] or is_final(view[1]) then drop() return {GONE, view} end
if redis.call("GETBIT", KEYS[2], tonumber(ARGV[2])) == 1 then drop() return {ALREADY, view} end
if redis.call("RENAMENX", KEYS[4], KEYS[3]) == 0 then
  drop()
  return {EXISTING, view, redis.call("GET", KEYS[3])}
end
local ttl = tonumber(ARGV[1])
redis.call("PEXPIRE", KEYS[3], ttl)
mark_seen(5, 6, tonumber(ARGV[3]), math.max(ttl, SEEN_TTL), ARGV[4], tonumber(ARGV[5]))
return {DONE, view}`)

// saveSnapshotArgs are saveSnapshotScript's ARGV.
type saveSnapshotArgs struct {
	retention  int64 // ms
	page, pass int
	buckets    int   // the run's seen-set bucket count
	tails      int   // how many of bases (the last ones) are tail items'
	bases      []any // mark bases (Store.marks), in the order of KEYS[5..]
}

func (a saveSnapshotArgs) argv() []any {
	return append([]any{
		a.retention, // ARGV[1]
		a.page,      // ARGV[2]
		a.pass,      // ARGV[3]
		a.buckets,   // ARGV[4]
		a.tails,     // ARGV[5]
	}, a.bases...) // ARGV[6..]
}

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

// pageView makes a PageView of the values of viewFields, the page's bit,
// and its snapshot if there is one.
func pageView(fields []any, done bool, snap string, hasSnap bool) PageView {
	if len(fields) != len(viewFields) {
		return PageView{}
	}
	h := hmgetHash(viewFields, fields)
	v := PageView{State: jobs.State(h[fieldState]), Done: done, Backlog: h.backlog(), Pass: Pass{
		N: int(h.pass()), Base: int(h.int(fieldPassBase)),
		Geometry: Geometry{PageSize: int(h.int(fieldPageSize)), Overlap: int(h.int(fieldOverlap)), MaxPasses: int(h.int(fieldMaxPasses))},
	}}
	if hasSnap {
		v.Snapshot = []byte(snap)
	}
	return v
}
