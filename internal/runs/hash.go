package runs

import (
	"slices"
	"strconv"
)

// The run hash (key run:{id}, KEYS[1] of every script that works on a run):
// the names of the fields Go reads or hands to a script, the lists of them
// that are read together, and their decoding. The scripts write the
// fields by name; the lists they read are generated from these
// (luaStrings), so that a list is written once.

// Fields of the run hash.
const (
	fieldRec        = "rec" // the record (JSON)
	fieldState      = "state"
	fieldStopReason = "stop_reason"
	fieldStartedAt  = "started_at"  // ms
	fieldFinishedAt = "finished_at" // ms

	fieldImagesTotal     = "images_total"
	fieldImagesSubmitted = "images_submitted"
	fieldImagesFailed    = "images_failed"
	fieldImagesExpected  = "images_expected"
	// skipPrefix + reason counts the images skipped for reason.
	skipPrefix = "skip:"

	fieldBatchesTotal     = "batches_total"
	fieldBatchesSubmitted = "batches_submitted"
	fieldBatchesFailed    = "batches_failed"
	fieldBatchesSkipped   = "batches_skipped"
	fieldPagesDone        = "pages_done"

	fieldPass      = "pass"      // the listing pass the run is in; absent: 1
	fieldPassBase  = "pass_base" // the pass's first page
	fieldPageSize  = "page_size" // the run's Geometry, from Start
	fieldOverlap   = "overlap"
	fieldMaxPasses = "max_passes"

	fieldFound       = "found" // Drift
	fieldDisappeared = "disappeared"
	fieldGaps        = "gaps"
)

// batchFields are the batch counters: the batches counted, then the
// counters that account for a batch once it ends. What those leave of the
// first is the run's backlog (runHash.backlog, and backlogLua's backlog).
var batchFields = []string{fieldBatchesTotal, fieldBatchesSubmitted, fieldBatchesFailed, fieldBatchesSkipped}

// viewFields are the fields a PageView is made of: ViewPage and
// saveSnapshotScript read them. The state comes first (saveSnapshotScript
// reads it as view[1]).
var viewFields = slices.Concat([]string{fieldState}, batchFields,
	[]string{fieldPass, fieldPassBase, fieldPageSize, fieldOverlap, fieldMaxPasses})

// runHash is what a read fetched of a run's hash, by field name (HGETALL's
// answer, or hmgetHash of an HMGET's).
type runHash map[string]string

// hmgetHash is the runHash of an HMGET of fields: vals[i] is the value of
// fields[i], nil when the field is absent.
func hmgetHash(fields []string, vals []any) runHash {
	h := make(runHash, len(fields))
	for i, x := range vals {
		if s, ok := x.(string); ok && i < len(fields) {
			h[fields[i]] = s
		}
	}
	return h
}

// int is integer field f, 0 when absent.
func (h runHash) int(f string) int64 {
	v, _ := strconv.ParseInt(h[f], 10, 64)
	return v
}

// backlog is the number of the run's batches enqueued and not yet finished
// (of batchFields).
func (h runHash) backlog() int64 {
	n := h.int(batchFields[0])
	for _, f := range batchFields[1:] {
		n -= h.int(f)
	}
	return n
}

// pass is the listing pass the run is in (1 for the first).
func (h runHash) pass() int64 { return max(h.int(fieldPass), 1) }

// backlogLua: backlog(h) is the backlog of the run of hash h, counted as
// runHash.backlog counts it. It reads no KEYS or ARGV of its own.
var backlogLua = `
local BATCH_FIELDS = {` + luaStrings(batchFields) + `}
local function backlog(h)
  local v = redis.call("HMGET", h, unpack(BATCH_FIELDS))
  local n = tonumber(v[1] or "0")
  for i = 2, #v do n = n - tonumber(v[i] or "0") end
  return n
end
`
