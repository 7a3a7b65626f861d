package runs

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// Verification of a run (docs/DESIGN.md, "Verification"). Each image a
// verified run submits is marked in the run's verification set, in the
// same script that records its batch: an integer of 51 bits of the digest
// of its identity (VerifyIdentities), spread over buckets as the seen-set
// spreads its marks (seen.go), so a 2M-image run costs Redis some 16 MB.
// After the run, each listed image with a final scan newer than the run
// takes its mark out and is counted scanned or failed, once however often
// it is listed again; what marks are left are the images not yet verified.
// The set goes when verification ends.

// Fields of the run hash that verification keeps.
const (
	fieldVerifyState    = "verify_state"
	fieldVerifyMarked   = "verify_marked" // distinct marks added
	fieldVerifyScanned  = "verify_scanned"
	fieldVerifyFailed   = "verify_failed"
	fieldVerifyRounds   = "verify_rounds"
	fieldVerifyDeadline = "verify_deadline" // ms
	fieldVerifyEnded    = "verify_ended_at" // ms
	fieldVerifyLeft     = "verify_unverified"
	fieldVerifyUnmarked = "verify_unmarked" // submitted images with no identity
	fieldVerifyGroups   = "verify_groups"   // failure groups kept
	fieldVerifyTouched  = "verify_touched"  // ms: when a round last listed
	// verifyFailPrefix + code + "\n" + desc counts the images whose scan
	// failed so.
	verifyFailPrefix = "vfail:"
)

// MaxFailureGroups bounds the failure reasons a run keeps apart: images
// failed for reasons beyond them count under the code "other".
const MaxFailureGroups = 50

func (s *Store) verifyBucket(id string, b uint64) string {
	return s.key(id) + ":verify:" + strconv.FormatUint(b, 10)
}

// VerifyIdentities are the digests an image is known by to verification,
// most exact first: for a registry image its id, then its namespace, name
// and version, then its digest; for a local image its name and version,
// then its digest (one scan covers the image on every host). A submitted
// image is marked by the first of them it has; a listed one is looked up
// by each it has, so that an image_info entry that names an image by its
// name finds the listing's item, which has every field.
func VerifyIdentities(imageType string, i hss.ImageInfo) []string {
	var ids []string
	if imageType == hss.ImageTypeLocal {
		if i.ImageName != "" {
			ids = append(ids, Digest("vl/"+i.ImageName+":"+i.ImageVersion))
		}
		if i.ImageDigest != "" {
			ids = append(ids, Digest("vl@"+i.ImageDigest))
		}
		return ids
	}
	if i.ID != 0 {
		ids = append(ids, Digest("v#"+strconv.FormatInt(i.ID, 10)))
	}
	if i.Namespace != "" && i.ImageName != "" && i.ImageVersion != "" {
		ids = append(ids, Digest("v/"+i.Namespace+"/"+i.ImageName+":"+i.ImageVersion))
	}
	if i.ImageDigest != "" {
		ids = append(ids, Digest("v@"+i.ImageDigest))
	}
	return ids
}

// VerifyMarks are the digests that mark the images of a submitted batch:
// the first identity of each that has one; unmarked counts those that have
// none, which no listing can be matched to.
func VerifyMarks(imageType string, imgs []hss.ImageInfo) (marks []string, unmarked int) {
	marks = make([]string, 0, len(imgs))
	for _, img := range imgs {
		if ids := VerifyIdentities(imageType, img); len(ids) > 0 {
			marks = append(marks, ids[0])
		} else {
			unmarked++
		}
	}
	return marks, unmarked
}

// BeginVerify starts the verification of run id once it is final, once: its deadline is timeout from now, and the run's keys are kept that
// much longer than the retention. begun reports that this call began it;
// ended, that there was nothing to verify (no image marked), so that it
// ended at once.
func (s *Store) BeginVerify(ctx context.Context, id string, buckets int, timeout time.Duration) (begun, ended bool, err error) {
	now := s.now().UnixMilli()
	out, _, err := scriptCode(beginVerifyScript.Run(ctx, s.rdb, s.allKeys(id), now, timeout.Milliseconds(), s.retention.Milliseconds(), bucketsOr(buckets)))
	if err != nil {
		return false, false, fmt.Errorf("beginning the verification of run %s: %w", id, err)
	}
	if out == codeGone {
		return false, false, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	return out >= codeDone, out == codeEnded, nil
}

// beginVerifyScript begins a final run's verification unless it has begun.
//
// Input:
// KEYS[1..6] -> Store.allKeys (finalLua)
// --
// ARGV[1] -> now (ms)
// ARGV[2] -> the timeout (ms)
// ARGV[3] -> the retention (ms)
// ARGV[4] -> the run's buckets (its verification set's, run:{<id>}:verify:<b>)
//
// Output:
// DONE (1): verification began
// ENDED (2): it began and ended at once: no image was marked
// ALREADY (0): it had begun, or the run is not final; nothing changes
// GONE (-1): there is no such run
var beginVerifyScript = redis.NewScript(codesLua + finalLua + `
local h = KEYS[1]
local st = redis.call("HGET", h, "state")
if not st then return GONE end
if not is_final(st) or redis.call("HEXISTS", h, "verify_state") == 1 then return ALREADY end
local now, timeout, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tonumber(redis.call("HGET", h, "verify_marked") or "0") == 0 then
  local unmarked = tonumber(redis.call("HGET", h, "verify_unmarked") or "0")
  local st = "verified"
  if unmarked > 0 then st = "unverifiable" end
  redis.call("HSET", h, "verify_state", st, "verify_ended_at", ARGV[1], "verify_unverified", unmarked)
  return ENDED
end
redis.call("HSET", h, "verify_state", "verifying", "verify_deadline", num(now + timeout), "verify_touched", ARGV[1])
expire_all(st, ARGV[1], timeout + ttl)
-- The marks are kept until the deadline and a while after, however long
-- ago the run marked them.
for b = 0, tonumber(ARGV[4]) - 1 do redis.call("PEXPIRE", h .. ":verify:" .. b, num(timeout + 3600000)) end
return DONE`)

// Listed is one image a verification round listed with a final scan newer
// than the run: its identities (VerifyIdentities), and for a failed scan
// (any final status but success) HSS's reason.
type Listed struct {
	IDs    []string
	Failed bool
	Code   string
	Desc   string
}

// Verified counts the images of a verification page: each listed image
// whose mark the run holds is counted once, scanned or failed, and its
// mark taken out. round is the page's round (kept as the rounds done). It
// returns the run's images not yet verified, and false when verification
// is not under way (ended, or never begun).
func (s *Store) Verified(ctx context.Context, id string, buckets, round int, items []Listed) (left int64, verifying bool, err error) {
	var digests []string
	var pairs []any // per image: its identities, its failure group
	for _, it := range items {
		if len(it.IDs) == 0 {
			continue
		}
		digests = append(digests, it.IDs...)
		group := ""
		if it.Failed {
			// The code may not hold the separator; both are bounded, as
			// HSS's strings are not.
			group = verifyFailPrefix + printable(it.Code, 128) + "\n" + printable(it.Desc, 512)
		}
		pairs = append(pairs, len(it.IDs), group)
	}
	keys, bases := markArgs(func(b uint64) string { return s.verifyBucket(id, b) }, buckets, digests)
	argv := append(append([]any{round, MaxFailureGroups, s.now().UnixMilli(), len(pairs) / 2}, pairs...), bases...)
	res, err := verifiedScript.Run(ctx, s.rdb, append([]string{s.key(id)}, keys...), argv...).Int64()
	if err != nil {
		return 0, false, fmt.Errorf("counting verified images of run %s: %w", id, err)
	}
	return max(res, 0), res >= 0, nil
}

// verifiedScript takes out the marks of listed images and counts them.
//
// Input:
// KEYS[1] -> run:{<id>}
// KEYS[2..] -> the bucket of each identity, in ARGV's order
// --
// ARGV[1] -> the round
// ARGV[2] -> the failure groups kept at most
// ARGV[3] -> now (ms)
// ARGV[4] -> the images, n
// ARGV[5..4+2n] -> in pairs, one per image: how many identities it has,
// and its failure group field ("" for a scan that succeeded)
// ARGV[5+2n..] -> the bases of every identity, in order
//
// Output: the images not yet verified, or -1 when verification is not
// under way.
var verifiedScript = redis.NewScript(`
local h = KEYS[1]
if redis.call("HGET", h, "verify_state") ~= "verifying" then return -1 end
local round, max_groups, images = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
if tonumber(redis.call("HGET", h, "verify_rounds") or "0") < round then redis.call("HSET", h, "verify_rounds", round) end
redis.call("HSET", h, "verify_touched", ARGV[3])
local key, base = 2, 5 + 2 * images
for i = 0, images - 1 do
  local k, group = tonumber(ARGV[5 + 2 * i]), ARGV[6 + 2 * i]
  local hit = false
  for j = 0, k - 1 do
    if not hit and redis.call("SREM", KEYS[key + j], ARGV[base + j]) == 1 then hit = true end
  end
  key, base = key + k, base + k
  if hit and group == "" then
    redis.call("HINCRBY", h, "verify_scanned", 1)
  elseif hit then
    redis.call("HINCRBY", h, "verify_failed", 1)
    if redis.call("HEXISTS", h, group) == 0 then
      if tonumber(redis.call("HGET", h, "verify_groups") or "0") >= max_groups then
        group = "vfail:other\n"
      else
        redis.call("HINCRBY", h, "verify_groups", 1)
      end
    end
    redis.call("HINCRBY", h, group, 1)
  end
end
local v = redis.call("HMGET", h, "verify_marked", "verify_scanned", "verify_failed")
return tonumber(v[1] or "0") - tonumber(v[2] or "0") - tonumber(v[3] or "0")`)

// EndVerify ends run id's verification at now: verified when every
// marked image was verified, else timed out (or cancelled, when cancel),
// the rest counted unverified. Its set goes, and the run's keys expire
// after the retention from now. ended reports that this call ended it.
func (s *Store) EndVerify(ctx context.Context, id string, buckets int, cancel bool) (ended bool, err error) {
	out, _, err := scriptCode(endVerifyScript.Run(ctx, s.rdb, s.allKeys(id), s.now().UnixMilli(), s.retention.Milliseconds(), bucketsOr(buckets), boolInt(cancel)))
	if err != nil {
		return false, fmt.Errorf("ending the verification of run %s: %w", id, err)
	}
	return out == codeDone, nil
}

// endVerifyScript ends a run's verification.
//
// Input:
// KEYS[1..6] -> Store.allKeys (finalLua)
// --
// ARGV[1] -> now (ms)
// ARGV[2] -> the retention (ms)
// ARGV[3] -> the run's buckets
// ARGV[4] -> "1" when it is cancelled, else "0"
//
// Output:
// DONE (1): this call ended it
// ALREADY (0): it was not under way
var endVerifyScript = redis.NewScript(codesLua + finalLua + `
local h = KEYS[1]
if redis.call("HGET", h, "verify_state") ~= "verifying" then return ALREADY end
local v = redis.call("HMGET", h, "verify_marked", "verify_scanned", "verify_failed", "verify_unmarked")
local left = math.max(tonumber(v[1] or "0") - tonumber(v[2] or "0") - tonumber(v[3] or "0"), 0) + tonumber(v[4] or "0")
local st = "verified"
if ARGV[4] == "1" then st = "cancelled" elseif left > 0 then st = "timed_out" end
redis.call("HSET", h, "verify_state", st, "verify_unverified", left, "verify_ended_at", ARGV[1])
drop_buckets(":verify:", ARGV[3])
expire_all(redis.call("HGET", h, "state"), ARGV[1], tonumber(ARGV[2]))
return DONE`)

// printable is s, an HSS string, as scanq keeps it: control characters
// (the separator of a failure group's field among them) as spaces, at
// most n bytes.
func printable(s string, n int) string {
	return hss.ClipTo(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s), n)
}

// decodeVerification is the run's verification of its hash, nil for a run
// that was not asked to verify.
func decodeVerification(r *jobs.Run, h runHash) *jobs.Verification {
	st := h[fieldVerifyState]
	if st == "" && !r.Options.Verify {
		return nil
	}
	n := h.int
	v := &jobs.Verification{State: st, Scanned: n(fieldVerifyScanned), ScanFailed: n(fieldVerifyFailed), Rounds: n(fieldVerifyRounds)}
	switch {
	case st == "" && r.Source == jobs.SourceForward:
		v.State, v.Note = jobs.VerifyUnverifiable, "the request was forwarded unexpanded: HSS chose its images, so scanq cannot follow them"
	case st == "" && r.State == jobs.StateCancelled:
		v.State, v.Note = jobs.VerifyUnverifiable, "the run was cancelled"
	case st == "":
		v.State = jobs.VerifyPending
	}
	if v.Ended() && st != "" {
		v.Unverified = n(fieldVerifyLeft)
	} else {
		v.Unverified = max(n(fieldVerifyMarked)-v.Scanned-v.ScanFailed, 0) + n(fieldVerifyUnmarked)
	}
	if u := n(fieldVerifyUnmarked); u > 0 && v.Note == "" {
		v.Note = fmt.Sprintf("%d submitted images were named by no field a listing can be matched by (id, namespace/name/version, digest): they count unverified", u)
	}
	if ms := n(fieldVerifyDeadline); ms > 0 {
		t := time.UnixMilli(ms).UTC()
		v.Deadline = &t
	}
	if ms := n(fieldVerifyTouched); ms > 0 {
		v.Touched = time.UnixMilli(ms).UTC()
	}
	if ms := n(fieldVerifyEnded); ms > 0 {
		t := time.UnixMilli(ms).UTC()
		v.EndedAt = &t
	}
	for f := range h {
		if g, ok := strings.CutPrefix(f, verifyFailPrefix); ok {
			code, desc, _ := strings.Cut(g, "\n")
			v.Failures = append(v.Failures, jobs.ScanFailure{Code: code, Desc: desc, Images: n(f)})
		}
	}
	sort.Slice(v.Failures, func(i, j int) bool {
		a, b := v.Failures[i], v.Failures[j]
		if a.Images != b.Images {
			return a.Images > b.Images
		}
		return a.Code+a.Desc < b.Code+b.Desc
	})
	return v
}
