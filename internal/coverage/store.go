package coverage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys, under Options.Prefix (default "scanq:"), each target's under
// its own hash tag:
//
//	coverage:{T}                  hash: the refresh in progress (cur, cur_at,
//	                              cur_touch, cur_pages), the last tick begun
//	                              (tick), the published listing's times and
//	                              pages, the last failure
//	coverage:{T}:figures          hash: the published counts (see fields)
//	coverage:{T}:r:<id>           hash: refresh id's counts so far
//	coverage:{T}:r:<id>:pages     bitmap: refresh id's pages counted
//
// A refresh's keys expire RefreshTTL after its last page was counted, so an
// abandoned refresh leaves nothing behind; the published figures stay.

// RefreshTTL is how long an unfinished refresh's counts outlive its last
// progress.
const RefreshTTL = 7 * 24 * time.Hour

// StaleAfter is how long a refresh may make no progress before a newer
// one replaces it: a listing at the lowest priority may wait behind a
// target's submissions for hours, but not for a day.
const StaleAfter = 24 * time.Hour

// Store keeps the coverage figures of targets in Redis.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a store on rdb; prefix "" is "scanq:".
func New(rdb redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = "scanq:"
	}
	return &Store{rdb: rdb, prefix: prefix}
}

func (s *Store) key(target string) string { return s.prefix + "coverage:{" + target + "}" }

func (s *Store) refreshKeys(target string, id int64) (counts, pages string) {
	k := s.key(target) + ":r:" + strconv.FormatInt(id, 10)
	return k, k + ":pages"
}

// beginScript begins refresh id of a target, unless a refresh at or after
// id was begun, or one is in progress and has made progress within the
// stale time.
//
// KEYS[1] -> coverage:{T}
// ARGV[1] -> refresh id; ARGV[2] -> now (ms); ARGV[3] -> stale after (ms)
// ARGV[4] -> "1": replace a refresh in progress however recent its progress
// (an operator's forced refresh: the old chain finds itself no longer
// current and stops)
//
// Output: the start time (ms) of refresh id when it is (now) the refresh
// in progress, else 0.
var beginScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'cur')
if cur == ARGV[1] then
  return tonumber(redis.call('HGET', KEYS[1], 'cur_at'))
end
local id, now = tonumber(ARGV[1]), tonumber(ARGV[2])
if id <= tonumber(redis.call('HGET', KEYS[1], 'tick') or '0') then
  return 0
end
if cur and ARGV[4] ~= '1' and now - tonumber(redis.call('HGET', KEYS[1], 'cur_touch') or '0') < tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'tick', ARGV[1], 'cur', ARGV[1], 'cur_at', ARGV[2], 'cur_touch', ARGV[2], 'cur_pages', 0)
return now
`)

// Begin makes refresh id the target's refresh in progress, as of now, and
// returns its start time: the reference time of its scan ages. ok is false
// when the refresh is not to run: a refresh at or after id began already
// (another scheduler replica's task for the same tick, or a tick after a
// manual refresh), or a refresh in progress is not stale. A refresh that
// is in progress already is begun again with its own start time.
//
// force begins id even while another refresh makes progress: that one
// stops at its next page (Page says it is no longer current).
func (s *Store) Begin(ctx context.Context, target string, id int64, now time.Time, force bool) (start time.Time, ok bool, err error) {
	ms, err := beginScript.Run(ctx, s.rdb, []string{s.key(target)}, id, now.UnixMilli(), StaleAfter.Milliseconds(), flag(force)).Int64()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("coverage: beginning refresh %d of target %q: %w", id, target, err)
	}
	return time.UnixMilli(ms), ms != 0, nil
}

// Progress is where a refresh stands for one of its pages.
type Progress struct {
	Current bool      // the refresh is the target's refresh in progress
	Start   time.Time // its start: the reference time of its scan ages
	Counted bool      // the page was counted
}

// Page reads whether refresh id is in progress and whether page p of it
// was counted.
func (s *Store) Page(ctx context.Context, target string, id int64, p int) (Progress, error) {
	_, pages := s.refreshKeys(target, id)
	pipe := s.rdb.Pipeline()
	cur := pipe.HMGet(ctx, s.key(target), "cur", "cur_at")
	bit := pipe.GetBit(ctx, pages, int64(p))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Progress{}, fmt.Errorf("coverage: reading refresh %d of target %q: %w", id, target, err)
	}
	v := cur.Val()
	if len(v) != 2 || v[0] != strconv.FormatInt(id, 10) {
		return Progress{}, nil
	}
	at, _ := strconv.ParseInt(fmt.Sprint(v[1]), 10, 64)
	return Progress{Current: true, Start: time.UnixMilli(at), Counted: bit.Val() == 1}, nil
}

// countScript adds one page's counts to a refresh, once, and publishes the
// refresh when the page is its last.
//
// KEYS[1] -> coverage:{T}; KEYS[2] -> its :r:<id>; KEYS[3] -> its
// :r:<id>:pages; KEYS[4] -> coverage:{T}:figures
// ARGV[1] -> refresh id; ARGV[2] -> page; ARGV[3] -> now (ms); ARGV[4] ->
// "1" when the page is the last; ARGV[5] -> "1" when the listing stopped
// short of the registry's end; ARGV[6] -> RefreshTTL (s); ARGV[7..] ->
// field, increment pairs
// Output: 0 the refresh is not in progress (nothing done), 1 counted, 2
// counted before.
var countScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'cur') ~= ARGV[1] then
  return 0
end
if redis.call('SETBIT', KEYS[3], ARGV[2], 1) == 1 then
  return 2
end
for i = 7, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
end
local pages = redis.call('HINCRBY', KEYS[1], 'cur_pages', 1)
if ARGV[4] ~= '1' then
  redis.call('HSET', KEYS[1], 'cur_touch', ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
  return 1
end
redis.call('HSETNX', KEYS[2], 'images', 0)
redis.call('RENAME', KEYS[2], KEYS[4])
redis.call('PERSIST', KEYS[4])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'started_at', redis.call('HGET', KEYS[1], 'cur_at'), 'listed_at', ARGV[3],
  'pages', pages, 'truncated', ARGV[5])
redis.call('HDEL', KEYS[1], 'cur', 'cur_at', 'cur_touch', 'cur_pages', 'err', 'err_at')
return 1
`)

// Count outcomes.
const (
	NotCurrent = iota // the refresh is not in progress: nothing was done
	Counted
	CountedBefore
)

// Count adds page p's figures to refresh id, once; the last page (last)
// publishes the refresh as the target's coverage, listed at now.
// truncated says that the listing stopped before the registry's end.
func (s *Store) Count(ctx context.Context, target string, id int64, p int, f Figures, last, truncated bool, now time.Time) (int, error) {
	counts, pages := s.refreshKeys(target, id)
	args := append([]any{id, p, now.UnixMilli(), flag(last), flag(truncated), int64(RefreshTTL / time.Second)}, f.fields()...)
	n, err := countScript.Run(ctx, s.rdb, []string{s.key(target), counts, pages, s.key(target) + ":figures"}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("coverage: counting page %d of refresh %d of target %q: %w", p, id, target, err)
	}
	return n, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// failScript ends a refresh that failed for good: the published figures
// stay, and the failure is kept beside them.
//
// KEYS[1] -> coverage:{T}; KEYS[2], KEYS[3] -> the refresh's counts and pages
// ARGV[1] -> refresh id; ARGV[2] -> now (ms); ARGV[3] -> the error
// Output: 1 ended, 0 the refresh was not in progress
var failScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'cur') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[1], 'cur', 'cur_at', 'cur_touch', 'cur_pages')
redis.call('HSET', KEYS[1], 'err', ARGV[3], 'err_at', ARGV[2])
return 1
`)

// Fail ends refresh id, which failed with cause at now.
func (s *Store) Fail(ctx context.Context, target string, id int64, cause error, now time.Time) error {
	counts, pages := s.refreshKeys(target, id)
	msg := cause.Error()
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	if err := failScript.Run(ctx, s.rdb, []string{s.key(target), counts, pages}, id, now.UnixMilli(), msg).Err(); err != nil {
		return fmt.Errorf("coverage: ending refresh %d of target %q: %w", id, target, err)
	}
	return nil
}

// Get reads the coverage of each of targets, its age as of now.
func (s *Store) Get(ctx context.Context, targets []string, now time.Time) ([]Coverage, error) {
	pipe := s.rdb.Pipeline()
	state := make([]*redis.MapStringStringCmd, len(targets))
	figures := make([]*redis.MapStringStringCmd, len(targets))
	for i, t := range targets {
		state[i] = pipe.HGetAll(ctx, s.key(t))
		figures[i] = pipe.HGetAll(ctx, s.key(t)+":figures")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("coverage: reading: %w", err)
	}
	out := make([]Coverage, len(targets))
	for i, t := range targets {
		out[i] = view(t, state[i].Val(), figures[i].Val(), now)
	}
	return out, nil
}
