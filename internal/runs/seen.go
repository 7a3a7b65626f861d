package runs

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The run's seen-set. Every image a run lists is marked in one run-wide
// set, so that an image is counted and submitted once however far apart it
// is listed again (offsets shift while a registry changes), and so that a
// reconciliation pass can tell the images the passes before it missed.
//
// A 2M-image run must not cost Redis more than a few tens of MB, which a
// plain set of the images' keys (about 60 bytes a member in a hash table)
// cannot do. So an image is marked by an integer made of 51 bits of its
// key's digest, in one of seenBuckets small sets chosen by 13 other bits:
// Redis keeps a set of at most set-max-intset-entries (512 by default)
// integers as an intset, a sorted array of 8-byte integers. 2M images make
// about 244 a bucket, 16 MB in all. Two images of a bucket whose 51 bits
// agree count as one: for a 2M-image run the odds are about 1 in 10^7.
//
// The mark's last two decimal digits are the pass that listed the image
// last: a pass moves the marks of what it lists to its own number, so that
// it can tell an image it listed already (the overlap between its pages, a
// shift) from one only an earlier pass listed (found again), and from one
// nobody listed (new). The number is written in decimal so that Lua, whose
// numbers are doubles, builds a mark by appending digits, not by adding.

// DefaultSeenBuckets is the number of sets a run's marks are spread over:
// enough for a run at the list APIs' reach (2M images, about 244 a bucket
// and rarely above 330) to stay under Redis's default intset limit of 512.
// A run keeps the number it was created with (Options.SeenBuckets).
const DefaultSeenBuckets = 1 << 13

// seenTTLms is the least time a bucket of a run's seen-set is kept after
// its last mark (7 days, in ms), whatever scan.retention: a bucket may go
// unmarked for many pages of a slow run. The run's end drops its buckets.
const seenTTLms = "604800000"

// MaxPasses bounds the passes a run's seen-set tells apart (two decimal
// digits of the mark, and a lookup that tries each pass).
const MaxPasses = 10

// Sight is what a run's seen-set knows of an image.
type Sight uint8

const (
	Unseen      Sight = iota // no pass listed it
	EarlierPass              // an earlier pass listed it, this one not yet
	ThisPass                 // this pass listed it already
)

func (s *Store) seenBucket(id string, b uint64) string {
	return s.key(id) + ":marks:" + strconv.FormatUint(b, 10)
}

// bucketsOr is a run's bucket count: a record written before runs kept
// theirs has the default.
func bucketsOr(n int) int {
	if n <= 0 || n > DefaultSeenBuckets {
		return DefaultSeenBuckets
	}
	return n
}

// marks returns, for each digest, its bucket's key (of buckets) and its
// mark's base, to which Lua appends the pass in two digits.
func (s *Store) marks(id string, buckets int, digests []string) (keys []string, args []any) {
	return markArgs(func(b uint64) string { return s.seenBucket(id, b) }, buckets, digests)
}

// markArgs is marks for the buckets bucket names (the seen-set's, or the
// verification set's).
func markArgs(bucket func(uint64) string, buckets int, digests []string) (keys []string, args []any) {
	nb := uint64(bucketsOr(buckets))
	keys = make([]string, len(digests))
	args = make([]any, len(digests))
	for i, d := range digests {
		var b [8]byte
		copy(b[:], d)
		u := binary.BigEndian.Uint64(b[:])
		keys[i] = bucket(u >> 51 % nb)
		// 51 bits of the digest, and bit 55 set so that every base has 17
		// digits: no leading zero (Redis keeps "007" as a string, not as
		// an integer), and base*100+99 fits in an int64.
		base := u&(1<<51-1) | 1<<55
		args[i] = strconv.FormatUint(base, 10)
	}
	return keys, args
}

// Seen reports what run id's seen-set (of buckets, the run's SeenBuckets)
// knows of each image key digest, for pass (1 is the first); and whether
// this pass listed one of head, the digests of the first items a page
// lists before scanq's own filters (see SaveSnapshot's tail): a page that
// follows on from the one before it shares images with it.
func (s *Store) Seen(ctx context.Context, id string, buckets, pass int, digests, head []string) (sights []Sight, headSeen bool, err error) {
	out := make([]Sight, len(digests))
	if len(digests)+len(head) == 0 {
		return out, false, nil
	}
	if pass < 1 || pass > MaxPasses {
		return nil, false, fmt.Errorf("run %s: pass %d: passes are 1..%d", id, pass, MaxPasses)
	}
	keys, args := s.marks(id, buckets, append(digests[:len(digests):len(digests)], head...))
	vals, err := seenScript.Run(ctx, s.rdb, keys, seenArgs{pass: pass, lookups: len(digests), bases: args}.argv()...).Int64Slice()
	if err != nil {
		return nil, false, fmt.Errorf("looking up run %s's seen images: %w", id, err)
	}
	for i, v := range vals {
		switch {
		case i < len(out):
			out[i] = Sight(v)
		case v == 1:
			headSeen = true
		}
	}
	return out, headSeen, nil
}

// seenScript reports what the run's seen-set knows of images, and whether
// the pass listed the items of a page's head. It changes nothing.
//
// Input:
// KEYS[i] -> run:{<id>}:marks:<bucket>, the seen-set bucket of item i: the
// images looked up, then the head items (Store.marks)
// --
// ARGV[1] -> the pass (1..MaxPasses)
// ARGV[2] -> n, how many of the items (the first ones) are images looked up
// for a Sight
// ARGV[i+2] -> the mark base of item i
//
// Output: an array of an integer an item:
// for an image (i <= n), its Sight: UNSEEN (0), no pass listed it;
// EARLIER_PASS (1), an earlier pass listed it, this one not yet;
// THIS_PASS (2), this pass listed it already
// for a head item (i > n), 1 when this pass listed it, as an image or as a
// tail item, else 0
var seenScript = redis.NewScript(sightLua + markLua + `
local pass, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
  local base = ARGV[i+2]
  if i <= n then
    local got = last_pass(KEYS[i], base, pass)
    if got == pass then out[i] = THIS_PASS elseif got > 0 then out[i] = EARLIER_PASS else out[i] = UNSEEN end
  elseif redis.call("SISMEMBER", KEYS[i], mark_of(base, pass)) == 1 or
      redis.call("SISMEMBER", KEYS[i], mark_of(base, TAIL + pass)) == 1 then
    out[i] = 1
  else
    out[i] = 0
  end
end
return out`)

// sightLua names the Sights in Lua as Go names them. It reads no KEYS or
// ARGV.
var sightLua = fmt.Sprintf(`
local UNSEEN, EARLIER_PASS, THIS_PASS = %d, %d, %d
`, Unseen, EarlierPass, ThisPass)

// seenArgs are seenScript's ARGV.
type seenArgs struct {
	pass    int
	lookups int   // how many of bases (the first ones) are images looked up for a Sight
	bases   []any // mark bases (Store.marks), in the order of KEYS
}

func (a seenArgs) argv() []any {
	return append([]any{
		a.pass,    // ARGV[1]
		a.lookups, // ARGV[2]
	}, a.bases...) // ARGV[3..]
}

// markLua looks up and marks images in the seen-set:
//
// last_pass(key, base, pass) is the pass that listed the image of mark base
// (in bucket key) last, 0 when none did, trying the passes from pass down.
//
// mark_seen(k0, a0, pass, ttl, buckets, tails) marks in pass the items of
// KEYS[k0..] / ARGV[a0..], moving the marks of earlier passes, and keeps
// each bucket for ttl ms (renewing its expiry on about one mark in five);
// the last tails of them are tail items, marked by mark_tail. It then sets
// the run's field "seen" to buckets, when it marked anything.
//
// mark_tail(key, base, pass) marks a page's last item as listed by the
// pass (TAIL + pass: a mark of its own, which counts for telling a page
// that follows on, not as an image listed).
//
// Input, for mark_seen:
// KEYS[1] -> run:{<id>} (the run hash)
// KEYS[k0..] -> run:{<id>}:marks:<bucket>, the bucket of each item
// --
// ARGV[a0..] -> the mark base of each item (Store.marks), in the order of
// KEYS[k0..]
//
// A run's buckets are dropped when it ends (finalLua's expire_all).
const markLua = `
local SEEN_TTL = ` + seenTTLms + `
local TAIL = 50
local function mark_of(base, pass) return base .. string.format("%02d", pass) end
local function last_pass(key, base, pass)
  for j = pass, 1, -1 do
    if redis.call("SISMEMBER", key, mark_of(base, j)) == 1 then return j end
  end
  return 0
end
local function mark_tail(key, base, pass)
  if redis.call("SADD", key, mark_of(base, TAIL + pass)) == 1 then
    for j = pass - 1, 1, -1 do
      if redis.call("SREM", key, mark_of(base, TAIL + j)) == 1 then break end
    end
  end
end
local function mark_seen(k0, a0, pass, ttl, buckets, tails)
  local n, kept = 0, {}
  for i = k0, #KEYS do
    local base = ARGV[a0 + i - k0]
    if i > #KEYS - tails then
      mark_tail(KEYS[i], base, pass)
    elseif redis.call("SADD", KEYS[i], mark_of(base, pass)) == 1 then
      for j = pass - 1, 1, -1 do
        if redis.call("SREM", KEYS[i], mark_of(base, j)) == 1 then break end
      end
    end
    -- A bucket's expiry is renewed by about one mark in five (those whose
    -- base ends in 0 or 8), not by every one: a call per image is a
    -- fifth of the marking's cost, and a bucket of a 2M-image run takes
    -- some 244 marks.
    local last = string.byte(base, -1)
    if (last == 48 or last == 56) and not kept[KEYS[i]] then
      redis.call("PEXPIRE", KEYS[i], ttl)
      kept[KEYS[i]] = true
    end
    n = n + 1
  end
  if n > 0 then redis.call("HSET", KEYS[1], "seen", buckets) end
end
`
