// Package runs keeps run records in Redis: creation, state, counters,
// cancellation, listing and retention, plus the small amount of per-run
// bookkeeping that makes at-least-once task delivery count every image once
// (bitmaps of finished pages and batches, the de-duplication window, page
// snapshots).
//
// Every key of a run carries the run id as a Redis Cluster hash tag, so the
// Lua scripts that update several of them stay on one slot.
package runs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"

	fastjson "github.com/segmentio/encoding/json"
)

// Errors for control flow.
var (
	ErrNotFound = errors.New("run not found")
	ErrFinal    = errors.New("run already finished")
	ErrExists   = errors.New("run already exists")
)

// Options configure a Store.
type Options struct {
	// Prefix of every key; default "scanq:".
	Prefix string
	// Retention is how long a finished run's record is kept; default
	// DefaultRetention.
	Retention time.Duration
	// PendingTTL is how long a run that never starts (its scan:run task is
	// never picked up) is kept; default PendingTTLDefault. A run that has
	// started is kept until it is final, and then for Retention.
	PendingTTL time.Duration
	// NoStateIndex leaves out the index of runs by state, which a Redis
	// Cluster cannot keep: the index is one key, on a slot of its own, and
	// the scripts that move a run's state touch only the run's slot. New
	// sets it for a *redis.ClusterClient. CountByState then fails.
	NoStateIndex bool
	// MaxErrors is how many of the last errors a run keeps; default 10.
	MaxErrors int
	// SeenBuckets is how many sets the seen-set of a run created by this
	// store is spread over, 1..DefaultSeenBuckets (the default). Every
	// process uses the number the run was created with. A small number
	// suits an embedded miniredis, whose every command walks all its keys.
	SeenBuckets int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Store is the Redis-backed run store. It is safe for concurrent use.
type Store struct {
	rdb        redis.UniversalClient
	prefix     string
	retention  time.Duration
	pendingTTL time.Duration
	indexed    bool
	maxErrors  int
	buckets    int
	now        func() time.Time
	records    recordCache
}

// DefaultRetention is how long a finished run's record is kept when
// Options.Retention is 0 (7 days).
const DefaultRetention = 7 * 24 * time.Hour

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	s := &Store{rdb: rdb, prefix: opts.Prefix, retention: opts.Retention, pendingTTL: opts.PendingTTL, maxErrors: opts.MaxErrors, now: opts.Now,
		buckets: bucketsOr(opts.SeenBuckets)}
	if s.prefix == "" {
		s.prefix = "scanq:"
	}
	if s.retention <= 0 {
		s.retention = DefaultRetention
	}
	_, cluster := rdb.(*redis.ClusterClient)
	s.indexed = !opts.NoStateIndex && !cluster
	if s.pendingTTL <= 0 {
		s.pendingTTL = PendingTTLDefault
	}
	if s.maxErrors <= 0 {
		s.maxErrors = 10
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

func (s *Store) key(id string) string        { return s.prefix + "run:{" + id + "}" }
func (s *Store) pagesKey(id string) string   { return s.key(id) + ":pages" }
func (s *Store) batchesKey(id string) string { return s.key(id) + ":batches" }
func (s *Store) errorsKey(id string) string  { return s.key(id) + ":errors" }
func (s *Store) imagesKey(id string) string  { return s.key(id) + ":images" }
func (s *Store) snapKey(id string, page int) string {
	return s.key(id) + ":snap:" + strconv.Itoa(page)
}
func (s *Store) indexKey() string  { return s.prefix + "runs" }
func (s *Store) statesKey() string { return s.prefix + "runs:states" }

// PendingTTLDefault is how long a run that never starts is kept.
const PendingTTLDefault = 24 * time.Hour

// allKeys are the keys a run owns, apart from its page-numbered sets, and
// then the state index (the run's own key again when there is none): the
// first six keys of every script that moves a run's state (finalLua).
func (s *Store) allKeys(id string) []string {
	states := s.statesKey()
	if !s.indexed {
		states = s.key(id)
	}
	return []string{s.key(id), s.pagesKey(id), s.batchesKey(id), s.errorsKey(id), s.imagesKey(id), states}
}

// record is the immutable part of a run, stored as JSON in field "rec". It
// holds the request without its image_info, which can run to megabytes and
// is kept in a list of its own (Images), read a page at a time; ImageCount
// says how long that list is.
type record struct {
	ID         string           `json:"run_id"`
	Trigger    jobs.Trigger     `json:"trigger"`
	Target     string           `json:"target"`
	Request    jobs.ScanRequest `json:"request"`
	ImageCount int              `json:"image_count,omitempty"`
	Options    jobs.Options     `json:"options"`
	Queue      string           `json:"queue"`
	Source     jobs.Source      `json:"source"`
	BatchSize  int              `json:"batch_size"`
	Resolution *jobs.Resolution `json:"resolution,omitempty"`
	CreatedAt  time.Time        `json:"created_at"`
	// SeenBuckets is the run's seen-set's bucket count (0 in a record
	// written before runs kept theirs: DefaultSeenBuckets).
	SeenBuckets int `json:"seen_buckets,omitempty"`
}

// Create stores a new run in state pending, which expires after the
// pending TTL unless the run starts. It fails with ErrExists when the id is
// taken. The request's image_info goes to the run's image list, not to its
// record: r.Request.ImageInfo is cleared and r.ImageCount set.
func (s *Store) Create(ctx context.Context, r *jobs.Run) error {
	if r.ID == "" {
		return errors.New("creating run: empty id")
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now().UTC()
	}
	r.State = jobs.StatePending
	// The caller's run takes the shape a run read back has (decode).
	if r.Counters.ImagesSkipped == nil {
		r.Counters.ImagesSkipped = map[string]int64{}
	}
	if r.Source.Listed() && r.Drift == nil {
		r.Drift = &jobs.Drift{Passes: 1}
	}
	images := r.Request.ImageInfo
	r.Request.ImageInfo, r.ImageCount = nil, len(images)
	r.SeenBuckets = s.buckets
	if r.Source == jobs.SourceImages {
		// A fixed list: a bucket for every 256 of its images is enough.
		r.SeenBuckets = min(s.buckets, max(1, (r.ImageCount+255)/256))
	}
	rec, err := json.Marshal(record{
		ID: r.ID, Trigger: r.Trigger, Target: r.Target, Request: r.Request, ImageCount: r.ImageCount, Options: r.Options,
		Queue: r.Queue, Source: r.Source, BatchSize: r.BatchSize, Resolution: r.Resolution, CreatedAt: r.CreatedAt,
		SeenBuckets: r.SeenBuckets,
	})
	if err != nil {
		return fmt.Errorf("encoding run %s: %w", r.ID, err)
	}
	items := make([]any, len(images))
	for i := range images {
		b, err := json.Marshal(images[i])
		if err != nil {
			return fmt.Errorf("encoding run %s: image_info[%d]: %w", r.ID, i, err)
		}
		items[i] = b
	}
	// The list does not pass through Lua (large arguments cost Lua a copy
	// each, and unpack has a limit): it is written under a new name in the
	// same round trip, and the script renames it into place or drops it.
	newList := s.imagesKey(r.ID) + ":new:" + strconv.FormatUint(mrand.Uint64(), 36)
	keys := append(s.allKeys(r.ID), newList)
	args := createArgs{rec: rec, pendingTTL: s.pendingTTL.Milliseconds(), now: s.now().UnixMilli(), dryRun: r.Options.DryRun}.argv()
	create := func() (*redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		if len(items) > 0 {
			pipe.Del(ctx, newList) // a retry after NOSCRIPT writes the list again
		}
		for chunk := items; len(chunk) > 0; {
			n := min(len(chunk), 1000)
			pipe.RPush(ctx, newList, chunk[:n]...)
			chunk = chunk[n:]
		}
		if len(items) > 0 {
			pipe.PExpire(ctx, newList, newKeyTTL)
		}
		cmd := createScript.EvalSha(ctx, pipe, keys, args...)
		pipe.ZAddNX(ctx, s.indexKey(), redis.Z{Score: float64(r.CreatedAt.UnixMilli()), Member: r.ID})
		_, err := pipe.Exec(ctx)
		return cmd, err
	}
	cmd, err := create()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = createScript.Load(ctx, s.rdb).Err(); err == nil {
			cmd, err = create()
		}
	}
	if err != nil {
		return fmt.Errorf("creating run %s: %w", r.ID, err)
	}
	if out, _, _ := scriptCode(cmd); out == codeAlready {
		return fmt.Errorf("creating run %s: %w", r.ID, ErrExists)
	}
	return nil
}

// createScript stores a new run in state pending, to expire after the
// pending TTL unless it starts, and moves the request's image list, just
// written under a new name, into place; unless the id is taken.
//
// Input:
// KEYS[1..6] -> Store.allKeys, of which it uses:
// KEYS[1] -> run:{<id>} (the run hash)
// KEYS[5] -> run:{<id>}:images (the request's image list)
// KEYS[6] -> runs:states (the state index), or run:{<id>} again without one
// KEYS[7] -> run:{<id>}:images:new:<nonce> (the image list just written;
// absent when the request names no images)
// --
// ARGV[1] -> the record (JSON, field "rec")
// ARGV[2] -> the pending TTL (ms)
// ARGV[3] -> now (ms)
// ARGV[4] -> "1" for a dry run (field "dry_run"), else "0"
//
// Output:
// DONE (1): the run is created
// ALREADY (0): the id is taken; KEYS[7] is dropped, nothing else changes
var createScript = redis.NewScript(codesLua + finalLua + `
if redis.call("EXISTS", KEYS[1]) == 1 then
  redis.call("DEL", KEYS[7])
  return ALREADY
end
local ttl, now = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call("HSET", KEYS[1], "rec", ARGV[1], "state", "pending")
if ARGV[4] == "1" then redis.call("HSET", KEYS[1], "dry_run", 1) end
redis.call("PEXPIRE", KEYS[1], ttl)
if redis.call("EXISTS", KEYS[7]) == 1 then
  redis.call("RENAME", KEYS[7], KEYS[5])
  redis.call("PEXPIRE", KEYS[5], ttl)
end
trim_states(now)
index_state("pending", now + ttl)
return DONE`)

// createArgs are createScript's ARGV.
type createArgs struct {
	rec        []byte
	pendingTTL int64 // ms
	now        int64 // ms
	dryRun     bool
}

func (a createArgs) argv() []any {
	return []any{
		a.rec,             // ARGV[1]
		a.pendingTTL,      // ARGV[2]
		a.now,             // ARGV[3]
		boolInt(a.dryRun), // ARGV[4]
	}
}

// Images returns up to n of run id's request images (its image_info) from
// the offset-th on: the page loop's source for an image_info run.
func (s *Store) Images(ctx context.Context, id string, offset, n int) ([]hss.ImageInfo, error) {
	if n <= 0 {
		return nil, nil
	}
	raw, err := s.rdb.LRange(ctx, s.imagesKey(id), int64(offset), int64(offset+n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading images %d..%d of run %s: %w", offset, offset+n-1, id, err)
	}
	out := make([]hss.ImageInfo, len(raw))
	for i, item := range raw {
		if err := fastjson.Unmarshal([]byte(item), &out[i]); err != nil {
			return nil, fmt.Errorf("run %s: corrupt image %d: %w", id, offset+i, err)
		}
	}
	return out, nil
}

// CountByState returns how many runs are in each state, in one command
// whatever their number: the scripts that move a run's state keep an index
// of runs by state (finalLua), scored by when the run's keys expire, and
// the entries of expired runs are dropped before counting.
func (s *Store) CountByState(ctx context.Context) (map[jobs.State]int64, error) {
	if !s.indexed {
		return nil, ErrNoStateIndex
	}
	vals, err := countScript.Run(ctx, s.rdb, []string{s.statesKey()}, s.now().UnixMilli() /* ARGV[1] */).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("counting runs by state: %w", err)
	}
	out := make(map[jobs.State]int64, len(indexedStates))
	for i, st := range indexedStates {
		if i < len(vals) {
			out[st] = vals[i]
		}
	}
	return out, nil
}

// ErrNoStateIndex is CountByState's answer when the store keeps no index
// of runs by state (Redis Cluster).
var ErrNoStateIndex = errors.New("runs are not indexed by state on a Redis Cluster")

// indexedStates are the states of the state index, in the order of its
// bands (stateLua's band_of).
var indexedStates = jobs.States

// countScript counts the runs in each state, once it has dropped the
// entries of runs that expired (stateLua's trim).
//
// Input:
// KEYS[1] -> runs:states (the state index)
// --
// ARGV[1] -> now (ms)
//
// Output: an array of the number of runs in each state, in the order of
// STATES (indexedStates)
var countScript = redis.NewScript(stateLua + `
local now = tonumber(ARGV[1])
trim(KEYS[1], now)
local out = {}
for i, st in ipairs(STATES) do
  local lo = band_of[st] * BAND
  out[i] = redis.call("ZCOUNT", KEYS[1], lo, lo + BAND - 1)
end
return out`)

// Get reads run id.
func (s *Store) Get(ctx context.Context, id string) (*jobs.Run, error) {
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, s.key(id))
	e := pipe.LRange(ctx, s.errorsKey(id), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading run %s: %w", id, err)
	}
	if len(h.Val()) == 0 {
		return nil, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	return decode(id, h.Val(), e.Val())
}

// decode makes a run of its hash h (all its fields) and its errors.
func decode(id string, h runHash, errs []string) (*jobs.Run, error) {
	r, err := decodeRecord(id, h[fieldRec])
	if err != nil {
		return nil, err
	}
	r.State, r.StopReason = jobs.State(h[fieldState]), h[fieldStopReason]
	n := h.int
	c := &r.Counters
	c.ImagesTotal, c.ImagesSubmitted, c.ImagesFailed = n(fieldImagesTotal), n(fieldImagesSubmitted), n(fieldImagesFailed)
	c.BatchesTotal, c.BatchesSubmitted, c.BatchesFailed, c.BatchesSkipped = n(fieldBatchesTotal), n(fieldBatchesSubmitted), n(fieldBatchesFailed), n(fieldBatchesSkipped)
	c.PagesDone, c.ImagesExpected = n(fieldPagesDone), n(fieldImagesExpected)
	c.ImagesSkipped = map[string]int64{}
	for f := range h {
		if reason, ok := strings.CutPrefix(f, skipPrefix); ok {
			c.ImagesSkipped[reason] = n(f)
		}
	}
	if r.Source.Listed() {
		r.Drift = &jobs.Drift{Passes: h.pass(), Found: n(fieldFound), Disappeared: n(fieldDisappeared), Gaps: n(fieldGaps)}
	}
	if ms := n(fieldStartedAt); ms > 0 {
		t := time.UnixMilli(ms).UTC()
		r.StartedAt = &t
	}
	if ms := n(fieldFinishedAt); ms > 0 {
		t := time.UnixMilli(ms).UTC()
		r.FinishedAt = &t
	}
	r.Verification = decodeVerification(r, h)
	for _, raw := range errs {
		var e jobs.RunError
		if json.Unmarshal([]byte(raw), &e) == nil {
			r.Errors = append(r.Errors, e)
		}
	}
	return r, nil
}

// decodeRecord makes a run of its record (fieldRec): the immutable part,
// without state, counters or errors.
func decodeRecord(id, raw string) (*jobs.Run, error) {
	var rec record
	if err := fastjson.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("run %s: corrupt record: %w", id, err)
	}
	if n := len(rec.Request.ImageInfo); n > 0 {
		// A record written before image lists were kept apart: its images
		// stay where they are (Images does not find them), and count.
		rec.ImageCount = n
	}
	return &jobs.Run{
		ID: rec.ID, Trigger: rec.Trigger, Target: rec.Target, Request: rec.Request, ImageCount: rec.ImageCount, Options: rec.Options,
		Queue: rec.Queue, Source: rec.Source, BatchSize: rec.BatchSize, Resolution: rec.Resolution, CreatedAt: rec.CreatedAt,
		SeenBuckets: bucketsOr(rec.SeenBuckets),
	}, nil
}

// ListQuery selects a page of runs.
type ListQuery struct {
	// Limit is the most runs the page holds; default 50.
	Limit int
	// State keeps only runs in this state; "" keeps all.
	State jobs.State
	// Target keeps only runs on this target; "" keeps all.
	Target string
	// Cursor continues after the page that returned it; "" starts at the
	// newest run.
	Cursor string
}

// Page is a page of runs, newest first.
type Page struct {
	Runs []*jobs.Run
	// Next is the cursor of the next page, "" when there is none. A page
	// can be short (even empty) and still have a next one: see ListPage.
	Next string
}

// ErrBadCursor is a cursor ListPage did not hand out.
var ErrBadCursor = errors.New("invalid cursor")

// listScanMax bounds the runs of the index one page looks at, so that a
// state filter that matches few runs costs bounded work per page: the page
// then ends short, with a cursor that goes on from where it stopped.
const listScanMax = 1000

// ListPage returns a page of runs, newest first. Runs carry no image list
// (their records hold none). Index entries of expired runs are removed on
// the way.
//
// The cursor is the creation time and id of the last run looked at,
// encoded: opaque to clients, and stable while runs are created (new runs
// sort before it) or expire.
func (s *Store) ListPage(ctx context.Context, q ListQuery) (Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	maxScore, afterID := "+inf", ""
	if q.Cursor != "" {
		score, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		maxScore, afterID = strconv.FormatInt(score, 10), id
	}
	var page Page
	scanned := 0
	// Each read goes on from the last entry looked at, so that runs created
	// meanwhile (they sort first) shift nothing. Entries of the position's
	// own millisecond sort by id, descending: those up to its id were seen.
	// skip steps over them when a millisecond holds more than a read.
	var skip int64
	for {
		zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, s.indexKey(), &redis.ZRangeBy{
			Max: maxScore, Min: "-inf", Offset: skip, Count: listChunk}).Result()
		if err != nil {
			return Page{}, fmt.Errorf("listing runs: %w", err)
		}
		var fresh []redis.Z
		ids := make([]string, 0, len(zs))
		for _, z := range zs {
			id, _ := z.Member.(string)
			if afterID != "" && strconv.FormatInt(int64(z.Score), 10) == maxScore && id >= afterID {
				continue
			}
			fresh, ids = append(fresh, z), append(ids, id)
		}
		if len(fresh) == 0 && len(zs) == listChunk {
			skip += listChunk
			continue
		}
		want := limit - len(page.Runs)
		if q.Target != "" {
			want = len(ids) // which of them match is known only once read
		}
		runs, err := s.getMany(ctx, ids, q.State, want)
		if err != nil {
			return Page{}, err
		}
		for _, z := range fresh {
			id, _ := z.Member.(string)
			maxScore, afterID, skip = strconv.FormatInt(int64(z.Score), 10), id, 0
			scanned++
			if r, ok := runs[id]; ok && (q.Target == "" || r.Target == q.Target) {
				page.Runs = append(page.Runs, r)
			}
			if len(page.Runs) == limit || scanned == listScanMax {
				page.Next = encodeCursor(int64(z.Score), id)
				return page, nil
			}
		}
		if len(zs) < listChunk {
			return page, nil
		}
	}
}

// listChunk is how many index entries ListPage reads at a time.
const listChunk = 100

// getMany reads the runs ids that are in state (any when ""), at most
// limit of them in the order of ids, in two round trips: their states,
// then the records of those that match. Runs that are gone are dropped
// from the index.
func (s *Store) getMany(ctx context.Context, ids []string, state jobs.State, limit int) (map[string]*jobs.Run, error) {
	if len(ids) == 0 || limit <= 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	states := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		states[i] = pipe.HGet(ctx, s.key(id), fieldState)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("listing runs: %w", err)
	}
	var want, gone []string
	for i, id := range ids {
		st, err := states[i].Result()
		switch {
		case errors.Is(err, redis.Nil):
			gone = append(gone, id)
		case state == "" || jobs.State(st) == state:
			if len(want) < limit {
				want = append(want, id)
			}
		}
	}
	if len(gone) > 0 {
		s.rdb.ZRem(ctx, s.indexKey(), toAny(gone)...)
	}
	pipe = s.rdb.Pipeline()
	hs := make([]*redis.MapStringStringCmd, len(want))
	es := make([]*redis.StringSliceCmd, len(want))
	for i, id := range want {
		hs[i], es[i] = pipe.HGetAll(ctx, s.key(id)), pipe.LRange(ctx, s.errorsKey(id), 0, -1)
	}
	if len(want) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("listing runs: %w", err)
		}
	}
	out := make(map[string]*jobs.Run, len(want))
	for i, id := range want {
		h := hs[i].Val()
		if len(h) == 0 {
			continue // expired between the two reads
		}
		r, err := decode(id, h, es[i].Val())
		if err != nil {
			return nil, err
		}
		if state == "" || r.State == state {
			out[id] = r
		}
	}
	return out, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func encodeCursor(score int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(score, 10) + ":" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	ms, id, ok := strings.Cut(string(b), ":")
	score, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", ErrBadCursor
	}
	return score, id, nil
}

// List returns up to limit runs, newest first, optionally only in one
// state: ListPage's pages, read until limit runs are in or none is left.
func (s *Store) List(ctx context.Context, limit int, state jobs.State) ([]*jobs.Run, error) {
	if limit <= 0 {
		limit = 50
	}
	var out []*jobs.Run
	q := ListQuery{Limit: min(limit, 500), State: state}
	for len(out) < limit {
		q.Limit = min(q.Limit, limit-len(out))
		p, err := s.ListPage(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Runs...)
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	return out, nil
}

// Start moves a pending run to resolving and stamps started_at. It returns
// the run's state afterwards; a run already past pending is left alone.
//
// The first start fixes g, how the run lists its source (PageView.Pass).
func (s *Store) Start(ctx context.Context, id string, g Geometry) (jobs.State, error) {
	st, err := startScript.Run(ctx, s.rdb, s.allKeys(id), startArgs{now: s.now().UnixMilli(), geometry: g}.argv()...).Text()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("starting run %s: %w", id, err)
	}
	return jobs.State(st), nil
}

// startScript moves a pending run to resolving, stamps started_at and
// fixes the run's Geometry. A started run no longer expires: the pending
// TTL is for runs that never start, and a run in progress is kept until it
// is final.
//
// Input:
// KEYS[1..6] -> Store.allKeys, of which it uses:
// KEYS[1] -> run:{<id>} (the run hash)
// KEYS[5] -> run:{<id>}:images (the request's image list)
// KEYS[6] -> runs:states (the state index), or run:{<id>} again without one
// --
// ARGV[1] -> now (ms, field "started_at")
// ARGV[2] -> the page size (field "page_size")
// ARGV[3] -> the overlap of consecutive pages (field "overlap")
// ARGV[4] -> passes at most (field "max_passes")
//
// Output: the run's state afterwards ("resolving" when this call started
// it, else as it was); nil when there is no such run
var startScript = redis.NewScript(finalLua + `
local st = redis.call("HGET", KEYS[1], "state")
if not st then return nil end
if st == "pending" then
  redis.call("HSET", KEYS[1], "state", "resolving", "started_at", ARGV[1],
    "page_size", ARGV[2], "overlap", ARGV[3], "max_passes", ARGV[4])
  redis.call("PERSIST", KEYS[1])
  redis.call("PERSIST", KEYS[5])
  index_state("resolving", nil)
  return "resolving"
end
return st`)

// startArgs are startScript's ARGV.
type startArgs struct {
	now      int64 // ms
	geometry Geometry
}

func (a startArgs) argv() []any {
	return []any{
		a.now,                // ARGV[1]
		a.geometry.PageSize,  // ARGV[2]
		a.geometry.Overlap,   // ARGV[3]
		a.geometry.MaxPasses, // ARGV[4]
	}
}

// Stop ends a run early in state (cancelled, or failed when HSS refuses the
// credentials), keeping what was done so far. Work still queued drains
// without reaching HSS. It returns ErrFinal when the run had already ended.
//
// The images listed and not yet accounted for are settled at once: skipped
// (cancelled) for a cancel, failed otherwise, so that images_total =
// submitted + skipped + failed holds from this moment on. What was in
// flight and ends later moves its images out of that counter into its own.
func (s *Store) Stop(ctx context.Context, id string, state jobs.State, reason string) error {
	settle, settleBatches := fieldImagesFailed, fieldBatchesFailed
	if state == jobs.StateCancelled {
		settle, settleBatches = skipPrefix+jobs.SkipCancelled, fieldBatchesSkipped
	}
	out, _, err := scriptCode(stopScript.Run(ctx, s.rdb, s.allKeys(id), stopArgs{state: state, reason: reason,
		now: s.now().UnixMilli(), retention: s.retention.Milliseconds(), settle: settle, settleBatches: settleBatches}.argv()...))
	if err != nil {
		return fmt.Errorf("stopping run %s: %w", id, err)
	}
	switch out {
	case codeGone:
		return fmt.Errorf("run %s: %w", id, ErrNotFound)
	case codeAlready:
		return fmt.Errorf("run %s: %w", id, ErrFinal)
	}
	return nil
}

// stateLua keeps the state index: one sorted set of run keys, whose
// score is the band of the run's state (band_of × BAND) plus the time (ms)
// the run's keys expire, or BAND-1 while they do not. A state's runs are
// one score range, and within it the runs already expired score below now,
// so trimming them takes one ZREMRANGEBYSCORE per state and counting one
// ZCOUNT, whatever the number of runs. Scores stay below 2^53 (7·BAND), and
// are written with %.0f, as Lua would print them with 14 digits.
// STATES is jobs.States (TestLuaStatesAreJobsStates).
//
// It defines BAND, STATES, band_of (a state's band, 0..7), num (a score as
// Redis is given it) and trim(key, now), which drops from the index at key
// the entries of runs whose keys expired before now (ms). It reads no KEYS
// or ARGV itself: trim's caller names the index.
const stateLua = `
local BAND = 1e14
local STATES = {"pending", "resolving", "running", "succeeded", "partially_failed", "failed", "cancelled", "resolved"}
local band_of = {}
for i, st in ipairs(STATES) do band_of[st] = i - 1 end
local function num(x) return string.format("%.0f", x) end
local function trim(key, now)
  for i = 0, #STATES - 1 do
    redis.call("ZREMRANGEBYSCORE", key, num(i * BAND), "(" .. num(i * BAND + now))
  end
end
`

// finalLua is shared by the scripts that move a run's state. Their first
// six keys are allKeys: the run's five own keys and the state index, or
// the run's key again when there is none (Options.NoStateIndex). Once a run
// is final, each of its keys expires after the retention.
//
// It defines (on top of stateLua's) INDEXED, whether KEYS[6] is an index;
// is_final(state); index_state(state, expires_at), which files the run
// under state in the index; trim_states(now), stateLua's trim of the
// index; drop_buckets(set, n), which deletes the run's n buckets of a
// set (seen.go, verify.go); and expire_all(state, now, ttl), which has the run's five keys
// expire after ttl ms, indexes it so, and drops its seen-set (the buckets
// field "seen" counts, run:{<id>}:marks:0.. ).
//
// Input:
// KEYS[1] -> run:{<id>} (the run hash)
// KEYS[2] -> run:{<id>}:pages (the bitmap of recorded pages)
// KEYS[3] -> run:{<id>}:batches (the bitmap of recorded batches)
// KEYS[4] -> run:{<id>}:errors (the run's last errors, newest first)
// KEYS[5] -> run:{<id>}:images (the request's image list)
// KEYS[6] -> runs:states (the state index), or run:{<id>} again without one
// --
// It reads no ARGV: its functions take what they need as arguments.
const finalLua = stateLua + `
local INDEXED = KEYS[6] ~= KEYS[1]
local function is_final(st)
  return st == "succeeded" or st == "partially_failed" or st == "failed" or st == "cancelled" or st == "resolved"
end
-- Indexes the run (KEYS[1]) in state st, expiring at expires_at (ms), or
-- never when expires_at is nil.
local function index_state(st, expires_at)
  if not INDEXED then return end
  redis.call("ZADD", KEYS[6], num(band_of[st] * BAND + (expires_at or BAND - 1)), KEYS[1])
end
local function trim_states(now)
  if INDEXED then trim(KEYS[6], tonumber(now)) end
end
-- Deletes the n buckets run:{<id>}<set><b> (set ":marks:" or ":verify:").
local function drop_buckets(set, n)
  local batch = {}
  for b = 0, tonumber(n) - 1 do
    batch[#batch + 1] = KEYS[1] .. set .. b
    if #batch == 512 then redis.call("DEL", unpack(batch)) batch = {} end
  end
  if #batch > 0 then redis.call("DEL", unpack(batch)) end
end
-- A script may pass page keys after the first six, which keep their own
-- expiry.
local function expire_all(st, now, ttl)
  for i = 1, 5 do redis.call("PEXPIRE", KEYS[i], ttl) end
  index_state(st, tonumber(now) + ttl)
  -- A final run lists nothing more: its seen-set goes (runs/seen.go).
  local buckets = redis.call("HGET", KEYS[1], "seen")
  if buckets then
    redis.call("HDEL", KEYS[1], "seen")
    drop_buckets(":marks:", buckets)
    -- A cancelled run is not verified: its verification set goes too.
    if st == "cancelled" then drop_buckets(":verify:", buckets) end
  end
end
`

// settleLua keeps images_total = submitted + skipped + failed (and the
// same of batches) for a run stopped early: its fields "settled" and
// "settled_batches" name the counters that took, at the stop, the images
// and batches not yet accounted for.
//
// It defines count_settled(h, settled_field, f, n), which counts n in field
// f of run hash h. It reads no KEYS or ARGV.
const settleLua = `
-- Counts n in field f of run h, where settled_field names the counter
-- that took what was unaccounted for at the stop: what is counted after
-- it in another counter moves from the settled one to f.
local function count_settled(h, settled_field, f, n)
  local settled = redis.call("HGET", h, settled_field)
  if settled == f then return end
  redis.call("HINCRBY", h, f, n)
  if settled then
    local have = tonumber(redis.call("HGET", h, settled) or "0")
    redis.call("HINCRBY", h, settled, -math.min(n, have))
  end
end
`

// stopScript ends a run early in a final state, unless it is final
// already: the images and batches not yet accounted for are settled at
// once, counted in ARGV[5] and ARGV[6], which fields "settled" and
// "settled_batches" then name (settleLua).
//
// Input:
// KEYS[1..6] -> Store.allKeys (finalLua); it reads and writes KEYS[1], and
// expire_all has KEYS[1..5] expire and indexes the run in KEYS[6]
// --
// ARGV[1] -> the final state
// ARGV[2] -> the stop reason (field "stop_reason")
// ARGV[3] -> now (ms, field "finished_at")
// ARGV[4] -> the retention (ms)
// ARGV[5] -> the counter that takes the images not yet accounted for
// (skip:cancelled, images_failed)
// ARGV[6] -> the counter that takes the batches not yet accounted for
// (batches_skipped, batches_failed)
//
// Output:
// DONE (1): the run is stopped
// ALREADY (0): the run was final already; nothing changes
// GONE (-1): there is no such run
var stopScript = redis.NewScript(codesLua + finalLua + backlogLua + `
local h = KEYS[1]
local st = redis.call("HGET", h, "state")
if not st then return GONE end
if is_final(st) then return ALREADY end
local v = redis.call("HMGET", h, "images_total", "images_submitted", "images_failed")
local left = tonumber(v[1] or "0") - tonumber(v[2] or "0") - tonumber(v[3] or "0")
local all = redis.call("HGETALL", h)
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 5) == "skip:" then left = left - tonumber(all[i + 1]) end
end
if left > 0 then redis.call("HINCRBY", h, ARGV[5], left) end
local bleft = backlog(h)
if bleft > 0 then redis.call("HINCRBY", h, ARGV[6], bleft) end
redis.call("HSET", h, "state", ARGV[1], "stop_reason", ARGV[2], "finished_at", ARGV[3], "settled", ARGV[5], "settled_batches", ARGV[6])
expire_all(ARGV[1], ARGV[3], tonumber(ARGV[4]))
return DONE`)

// stopArgs are stopScript's ARGV.
type stopArgs struct {
	state                 jobs.State
	reason                string
	now, retention        int64  // ms
	settle, settleBatches string // the fields that take what is not yet accounted for
}

func (a stopArgs) argv() []any {
	return []any{
		string(a.state), // ARGV[1]
		a.reason,        // ARGV[2]
		a.now,           // ARGV[3]
		a.retention,     // ARGV[4]
		a.settle,        // ARGV[5]
		a.settleBatches, // ARGV[6]
	}
}

// PageResult is what resolving one page produced.
type PageResult struct {
	Listed   int            // images on the page, skipped ones included
	Skipped  map[string]int // images skipped, by reason
	Batches  int            // batches enqueued for the page
	Last     bool           // no page follows
	Expected int64          // the list API's total_num, 0 when unknown
	// BatchesSkipped are batches counted but never enqueued (a dry run).
	BatchesSkipped int
	// Failed marks a listing that could not go on: the run ends with what
	// was resolved, and cannot succeed.
	Failed bool

	// New are the page's images no pass listed before; Relisted, those an
	// earlier pass listed (and this one not yet). Gap says the page may
	// have missed images before it (the listing shifted further than the
	// pages' overlap).
	New, Relisted int
	Gap           bool
	// MaxPasses is how many passes the run lists its source in at most:
	// on the last page of a pass, another pass starts when this allows and
	// the pass is the first, or it found images or gaps. 1: no
	// reconciliation.
	MaxPasses int
}

// PageRecord is what PageDone did.
type PageRecord struct {
	Newly    bool // this call recorded the page
	Finished bool // this call ended the run
	// NextPass: this call ended a pass and started another, at page p+1.
	NextPass bool
}

// PageDone records page p of run id once; a second call for the same page
// changes nothing. Either way p's snapshot is dropped.
func (s *Store) PageDone(ctx context.Context, id string, p int, res PageResult) (PageRecord, error) {
	args := pageDoneArgs{page: p, res: res, now: s.now().UnixMilli(), retention: s.retention.Milliseconds()}.argv()
	keys := append(s.allKeys(id), s.snapKey(id, p))
	out, _, err := scriptCode(pageDoneScript.Run(ctx, s.rdb, keys, args...))
	if err != nil {
		return PageRecord{}, fmt.Errorf("recording page %d of run %s: %w", p, id, err)
	}
	return PageRecord{Newly: out >= codeDone, Finished: out == codeEnded, NextPass: out == codeNextPass}, nil
}

// completeLua ends a running run whose pages and batches are all accounted
// for. It goes after finalLua and backlogLua, whose functions it calls.
//
// It defines try_complete(now, ttl), which, unless the run is final, its
// last page (field "pages_total") is not known or not all its pages are
// recorded, or its backlog is not 0, moves it to its final state
// (succeeded, resolved for a dry run, failed or partially_failed when
// images or batches failed or the listing broke off), stamps finished_at
// with now (ms) and has its keys expire after ttl ms (expire_all).
//
// Input:
// KEYS[1..6] -> Store.allKeys (finalLua); it reads and writes KEYS[1]
// --
// It reads no ARGV.
//
// Output (of try_complete): 1 when it ended the run, else 0.
const completeLua = `
local function try_complete(now, ttl)
  local h = KEYS[1]
  local st = redis.call("HGET", h, "state")
  if is_final(st) then return 0 end
  local pt = redis.call("HGET", h, "pages_total")
  if not pt then return 0 end
  local v = redis.call("HMGET", h, "pages_done", "batches_failed", "images_submitted", "images_failed")
  local n = {}
  for i = 1, #v do n[i] = tonumber(v[i] or "0") end
  local pages_done, batches_failed, images_submitted, images_failed = n[1], n[2], n[3], n[4]
  if pages_done < tonumber(pt) then return 0 end
  if backlog(h) > 0 then return 0 end
  local final = "succeeded"
  if redis.call("HEXISTS", h, "dry_run") == 1 then final = "resolved" end
  if images_failed > 0 or batches_failed > 0 or redis.call("HEXISTS", h, "listing_failed") == 1 then
    if images_submitted > 0 then final = "partially_failed" else final = "failed" end
  end
  redis.call("HSET", h, "state", final, "finished_at", now)
  expire_all(final, now, ttl)
  return 1
end
`

// pageDoneScript records page p of a run once: it counts the page's
// images, batches and skips (settling them at once for a run stopped
// early, settleLua), keeps the pass's drift, ends the pass on its last
// page (starting the next, or fixing pages_total), moves a resolving run
// to running, and ends the run if that was all (completeLua). Page p's
// snapshot is dropped whatever happens.
//
// Drift fields: "found" counts the images a reconciliation pass found
// (listed by no pass before it), "gaps" the pages whose listing may have
// missed images, and "disappeared", set when the last pass ends, the
// images the passes before it listed and it did not list again.
//
// Input:
// KEYS[1..6] -> Store.allKeys (finalLua); it uses KEYS[1] and
// KEYS[2] -> run:{<id>}:pages (the bitmap of recorded pages), and the rest
// through try_complete
// KEYS[7] -> run:{<id>}:snap:<p> (page p's snapshot; dropped)
// --
// ARGV[1] -> p
// ARGV[2] -> images the page listed, skipped ones included
// ARGV[3] -> batches enqueued for the page
// ARGV[4] -> "1" on the last page of a pass, else "0"
// ARGV[5] -> the list's total_num (0: unknown)
// ARGV[6] -> now (ms)
// ARGV[7] -> the retention (ms)
// ARGV[8] -> batches counted and never enqueued (a dry run)
// ARGV[9] -> "1" when the listing broke off, else "0"
// ARGV[10] -> images new to the run
// ARGV[11] -> images an earlier pass listed (relisted)
// ARGV[12] -> "1" when the page may have missed images (a gap), else "0"
// ARGV[13] -> passes at most
// ARGV[14..] -> in pairs: a skip counter (skip:<reason>), its images
//
// Output:
// DONE (1): this call recorded the page
// ENDED (2): it recorded the page, and that ended the run
// NEXT_PASS (3): it recorded the page, and that ended a pass and started
// the next, at page p+1
// ALREADY (0): the page was recorded already; nothing changes
// GONE (-1): there is no such run
var pageDoneScript = redis.NewScript(codesLua + finalLua + backlogLua + completeLua + settleLua + `
local page, listed, batches, last, expected, now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local bskipped, failed = tonumber(ARGV[8]), ARGV[9]
local new, relisted, gap, max_passes = tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12], tonumber(ARGV[13])
redis.call("DEL", unpack(KEYS, 7))
if redis.call("EXISTS", KEYS[1]) == 0 then return GONE end
if redis.call("SETBIT", KEYS[2], page, 1) == 1 then return ALREADY end
local h = KEYS[1]
redis.call("HINCRBY", h, "images_total", listed)
redis.call("HINCRBY", h, "batches_total", batches)
redis.call("HINCRBY", h, "pages_done", 1)
redis.call("HINCRBY", h, "batches_skipped", bskipped)
if failed == "1" then redis.call("HSET", h, "listing_failed", 1) end
local unsettled = listed
for i = 14, #ARGV, 2 do
  redis.call("HINCRBY", h, ARGV[i], tonumber(ARGV[i+1]))
  unsettled = unsettled - tonumber(ARGV[i+1])
end
-- A page listed while its run was stopped: its images will not be sent.
local settled = redis.call("HGET", h, "settled")
if settled and unsettled > 0 then redis.call("HINCRBY", h, settled, unsettled) end
local settled_batches = redis.call("HGET", h, "settled_batches")
if settled_batches and batches > 0 then redis.call("HINCRBY", h, settled_batches, batches) end
if expected > 0 then redis.call("HSET", h, "images_expected", expected) end
local pass = tonumber(redis.call("HGET", h, "pass") or "1")
redis.call("HINCRBY", h, "distinct", new)
local pass_new = redis.call("HINCRBY", h, "pass_new", new)
if pass > 1 then redis.call("HINCRBY", h, "found", new) end
local pass_relisted = redis.call("HINCRBY", h, "pass_relisted", relisted)
local pass_gaps = tonumber(redis.call("HGET", h, "pass_gaps") or "0")
if gap == "1" then
  pass_gaps = redis.call("HINCRBY", h, "pass_gaps", 1)
  redis.call("HINCRBY", h, "gaps", 1)
end
local next_pass = false
if last == "1" then
  if failed ~= "1" and not settled and pass < max_passes and (pass == 1 or pass_new > 0 or pass_gaps > 0) then
    redis.call("HSET", h, "pass", pass + 1, "pass_base", page + 1, "pass_new", 0, "pass_gaps", 0, "pass_relisted", 0,
      "pass_from", redis.call("HGET", h, "distinct"))
    next_pass = true
  else
    redis.call("HSET", h, "pages_total", page + 1)
    -- A pass whose listing broke off cannot tell what disappeared.
    if pass > 1 and failed ~= "1" then
      local before = tonumber(redis.call("HGET", h, "pass_from") or "0")
      redis.call("HSET", h, "disappeared", math.max(before - pass_relisted, 0))
    end
  end
end
if redis.call("HGET", h, "state") == "resolving" then
  redis.call("HSET", h, "state", "running")
  index_state("running", nil)
end
if try_complete(now, ttl) == 1 then return ENDED end
if next_pass then return NEXT_PASS end
return DONE`)

// pageDoneArgs are pageDoneScript's ARGV.
type pageDoneArgs struct {
	page           int
	res            PageResult
	now, retention int64 // ms
}

func (a pageDoneArgs) argv() []any {
	args := []any{
		a.page,                  // ARGV[1]
		a.res.Listed,            // ARGV[2]
		a.res.Batches,           // ARGV[3]
		boolInt(a.res.Last),     // ARGV[4]
		a.res.Expected,          // ARGV[5]
		a.now,                   // ARGV[6]
		a.retention,             // ARGV[7]
		a.res.BatchesSkipped,    // ARGV[8]
		boolInt(a.res.Failed),   // ARGV[9]
		a.res.New,               // ARGV[10]
		a.res.Relisted,          // ARGV[11]
		boolInt(a.res.Gap),      // ARGV[12]
		max(a.res.MaxPasses, 1), // ARGV[13]
	}
	for reason, n := range a.res.Skipped {
		if n > 0 {
			args = append(args, skipPrefix+reason, n) // ARGV[14..]
		}
	}
	return args
}

// Outcome of one batch.
type Outcome struct {
	Kind   OutcomeKind
	Images int
	Reason string         // skip reason, for Skipped
	Err    *jobs.RunError // kept among the run's last errors, for Failed
	// Marks, for a submitted batch of a verified run, are its images'
	// verification marks (VerifyMarks), added to the run's verification
	// set; Buckets is the run's SeenBuckets.
	Marks    []string
	Unmarked int
	Buckets  int
}

// OutcomeKind is how a batch ended.
type OutcomeKind string

const (
	Submitted OutcomeKind = "submitted"
	Failed    OutcomeKind = "failed"
	Skipped   OutcomeKind = "skipped"
)

// BatchDone records the outcome of batch seq of run id once; a second call
// for the same batch changes nothing. finished reports that this call ended
// the run.
func (s *Store) BatchDone(ctx context.Context, id string, seq int64, o Outcome) (newly, finished bool, err error) {
	var errJSON []byte
	if o.Err != nil {
		if errJSON, err = json.Marshal(o.Err); err != nil {
			return false, false, fmt.Errorf("encoding batch error: %w", err)
		}
	}
	var imgField, batchField string
	switch o.Kind {
	case Submitted:
		imgField, batchField = fieldImagesSubmitted, fieldBatchesSubmitted
	case Failed:
		imgField, batchField = fieldImagesFailed, fieldBatchesFailed
	case Skipped:
		imgField, batchField = skipPrefix+o.Reason, fieldBatchesSkipped
	default:
		return false, false, fmt.Errorf("batch outcome %q: unknown", o.Kind)
	}
	keys, args := s.allKeys(id), batchDoneArgs{seq: seq, imagesField: imgField, images: o.Images,
		batchesField: batchField, errJSON: errJSON, maxErrors: s.maxErrors, now: s.now().UnixMilli(), retention: s.retention.Milliseconds()}.argv()
	if o.Kind == Submitted && len(o.Marks)+o.Unmarked > 0 {
		mk, bases := markArgs(func(b uint64) string { return s.verifyBucket(id, b) }, o.Buckets, o.Marks)
		keys, args = append(keys, mk...), append(append(args, o.Unmarked), bases...)
	}
	out, _, err := scriptCode(batchDoneScript.Run(ctx, s.rdb, keys, args...))
	if err != nil {
		return false, false, fmt.Errorf("recording batch %d of run %s: %w", seq, id, err)
	}
	return out >= codeDone, out == codeEnded, nil
}

// batchDoneScript records the outcome of batch seq of a run once: it
// counts the batch and its images (settling them for a run stopped early,
// settleLua), keeps its error among the run's last ones, renews the expiry
// of a final run's keys, and ends the run if that was all (completeLua).
//
// Input:
// KEYS[1..6] -> Store.allKeys (finalLua); it uses KEYS[1] and
// KEYS[3] -> run:{<id>}:batches (the bitmap of recorded batches)
// KEYS[4] -> run:{<id>}:errors (the run's last errors, newest first)
// and the rest through expire_all and try_complete
// --
// ARGV[1] -> seq, the batch's bit in KEYS[3]
// ARGV[2] -> the counter of its images (images_submitted, images_failed,
// skip:<reason>)
// ARGV[3] -> its images
// ARGV[4] -> the counter of batches (batches_submitted, batches_failed,
// batches_skipped)
// ARGV[5] -> its error (JSON), or ""
// ARGV[6] -> how many errors the run keeps
// ARGV[7] -> now (ms)
// ARGV[8] -> the retention (ms)
// ARGV[9] -> for a submitted batch of a verified run, its images that have
// no verification mark (verify.go)
// KEYS[7..] and ARGV[10..] -> and each image's verification mark: its
// bucket and its base
//
// Output:
// DONE (1): this call recorded the batch
// ENDED (2): it recorded the batch, and that ended the run
// ALREADY (0): the batch was recorded already; nothing changes
// GONE (-1): there is no such run
var batchDoneScript = redis.NewScript(codesLua + finalLua + backlogLua + completeLua + settleLua + `
if redis.call("EXISTS", KEYS[1]) == 0 then return GONE end
if redis.call("SETBIT", KEYS[3], tonumber(ARGV[1]), 1) == 1 then return ALREADY end
local h = KEYS[1]
count_settled(h, "settled", ARGV[2], tonumber(ARGV[3]))
count_settled(h, "settled_batches", ARGV[4], 1)
if #ARGV > 8 then
  redis.call("HINCRBY", h, "verify_unmarked", tonumber(ARGV[9]))
  local added = 0
  for i = 7, #KEYS do
    added = added + redis.call("SADD", KEYS[i], ARGV[i + 3])
    redis.call("PEXPIRE", KEYS[i], ` + seenTTLms + `)
  end
  redis.call("HINCRBY", h, "verify_marked", added)
end
if ARGV[5] ~= "" then
  redis.call("LPUSH", KEYS[4], ARGV[5])
  redis.call("LTRIM", KEYS[4], 0, tonumber(ARGV[6]) - 1)
end
local st = redis.call("HGET", h, "state")
if is_final(st) then
  -- A run whose verification is under way is kept until its deadline
  -- and the retention after it.
  local ttl = tonumber(ARGV[8])
  local deadline = redis.call("HGET", h, "verify_deadline")
  if deadline and redis.call("HGET", h, "verify_state") == "verifying" then
    ttl = ttl + math.max(tonumber(deadline) - tonumber(ARGV[7]), 0)
  end
  expire_all(st, ARGV[7], ttl)
end
if try_complete(ARGV[7], tonumber(ARGV[8])) == 1 then return ENDED end
return DONE`)

// batchDoneArgs are batchDoneScript's ARGV.
type batchDoneArgs struct {
	seq            int64
	imagesField    string
	images         int
	batchesField   string
	errJSON        []byte // nil: no error
	maxErrors      int
	now, retention int64 // ms
}

func (a batchDoneArgs) argv() []any {
	return []any{
		a.seq,             // ARGV[1]
		a.imagesField,     // ARGV[2]
		a.images,          // ARGV[3]
		a.batchesField,    // ARGV[4]
		string(a.errJSON), // ARGV[5]
		a.maxErrors,       // ARGV[6]
		a.now,             // ARGV[7]
		a.retention,       // ARGV[8]
	}
}

// AddError keeps err among the run's last errors without touching counters
// (a failed listing call, say).
func (s *Store) AddError(ctx context.Context, id string, e jobs.RunError) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.LPush(ctx, s.errorsKey(id), b)
	pipe.LTrim(ctx, s.errorsKey(id), 0, int64(s.maxErrors-1))
	_, err = pipe.Exec(ctx)
	return err
}

// Backlog is the number of batches of run id enqueued and not yet finished.
func (s *Store) Backlog(ctx context.Context, id string) (int64, error) {
	v, err := s.rdb.HMGet(ctx, s.key(id), batchFields...).Result()
	if err != nil {
		return 0, fmt.Errorf("reading backlog of run %s: %w", id, err)
	}
	return hmgetHash(batchFields, v).backlog(), nil
}

// State reads only the run's state.
func (s *Store) State(ctx context.Context, id string) (jobs.State, error) {
	st, err := s.rdb.HGet(ctx, s.key(id), fieldState).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("reading state of run %s: %w", id, err)
	}
	return jobs.State(st), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
