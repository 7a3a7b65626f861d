package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// TriggerAPI is the trigger kind of runs started through /api/v1.
const TriggerAPI = "api"

// RunRequest is the body of POST /api/v1/runs: the scan request flattened
// as in jobs.ScanRequest (global_image_type, enterprise_project_id, region,
// scan_scope, rate_limit, is_all, query_info, image_info), the target, and
// scanq's run options (batch_size, dry_run, skip_scanned_within, priority,
// forward, include_unscannable).
type RunRequest struct {
	jobs.ScanRequest
	jobs.Options
}

// RunView is a run as /api/v1 shows it: jobs.RunView, the one shape of a
// run that the CLI's --json and the webhook share.
type RunView = jobs.RunView

// runCreated answers a create, a replay and a trigger.
type runCreated struct {
	RunID string     `json:"run_id"`
	State jobs.State `json:"state"`
}

const (
	maxRunsLimit     = 500
	defaultRunsLimit = 50
	maxIdemKeyLen    = 255
)

func (h *Handler) view(r *jobs.Run) RunView {
	return jobs.NewRunView(r, h.now(), h.opts.RatePeriod)
}

// checkTarget accepts one of the Starter's targets, none when it has one,
// and with all "all".
func (h *Handler) checkTarget(t string, all bool) *requestError {
	if all && t == jobs.AllTargets {
		return nil
	}
	if _, err := h.opts.Starter.Target(t); err != nil {
		return validationError(err)
	}
	return nil
}

// idemClaim is one key under which a create is remembered.
type idemClaim struct {
	scope, key string
	ttl        time.Duration
}

func (h *Handler) createRun(w http.ResponseWriter, r *http.Request) {
	body, rerr := h.readJSON(w, r)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	var req RunRequest
	if rerr := h.decodeStrict(body, &req); rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if rerr := h.checkTarget(req.Options.Target, true); rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if err := req.ScanRequest.Validate(); err != nil {
		writeRequestError(w, validationError(err))
		return
	}
	if err := req.Options.Validate(); err != nil {
		writeRequestError(w, validationError(err))
		return
	}

	// The claims that make repeats return the first run: the client's
	// Idempotency-Key, and for a signed request its signature (a replay of
	// it within the signature's validity, with or without a key added,
	// since the key header is not signed).
	var claims []idemClaim
	if sig := signatureOf(r); sig != "" {
		claims = append(claims, idemClaim{scope: "runs-sig", key: sig, ttl: ReplayWindow})
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if rerr := checkIdempotencyKey(key); rerr != nil {
			writeRequestError(w, rerr)
			return
		}
		claims = append(claims, idemClaim{scope: "runs", key: key, ttl: h.opts.IdempotencyTTL})
	}
	id := runs.NewID(h.now())
	var hash string
	if len(claims) > 0 {
		// The hash is over the decoded request, so that a retry that only
		// re-orders fields or changes whitespace is the same request.
		canon, err := json.Marshal(req)
		if err != nil {
			h.log.Error("api: encoding run request", "request_id", requestID(r), "err", err)
			h.writeInternal(w, r)
			return
		}
		sum := sha256.Sum256(canon)
		hash = hex.EncodeToString(sum[:])
	}
	release := func(claimed []idemClaim) {
		for _, c := range claimed {
			if rerr := h.idem.release(r.Context(), c.scope, c.key, hash, id); rerr != nil {
				h.log.Warn("api: releasing idempotency key", "request_id", requestID(r), "err", rerr)
			}
		}
	}
	for i, c := range claims {
		prev, err := h.idem.claimFor(r.Context(), c.scope, c.key, hash, id, c.ttl)
		if err != nil {
			release(claims[:i])
			h.log.Error("api: idempotency key", "request_id", requestID(r), "err", err)
			h.writeInternal(w, r)
			return
		}
		if prev != nil {
			// Nothing starts under the claims taken before this one.
			release(claims[:i])
			h.replay(w, r, prev, hash)
			return
		}
	}

	var run *jobs.Run
	var err error
	if req.Options.Target == jobs.AllTargets {
		var started []*jobs.Run
		if started, err = h.opts.Starter.StartGroup(r.Context(), id, nil, req.ScanRequest, req.Options, jobs.Trigger{Kind: TriggerAPI}); err == nil {
			// The group answers for its runs: its id, pending as they are.
			run = &jobs.Run{ID: id, Target: jobs.AllTargets, State: jobs.GroupStateOf(started)}
		}
	} else {
		run, err = h.opts.Starter.StartWithID(r.Context(), id, req.ScanRequest, req.Options, jobs.Trigger{Kind: TriggerAPI})
	}
	if err != nil {
		// Nothing was started under the claims: free them for a retry.
		release(claims)
		if _, ok := isValidation(err); ok {
			writeRequestError(w, validationError(err))
			return
		}
		h.log.Error("api: starting run", "request_id", requestID(r), "err", err)
		h.writeInternal(w, r)
		return
	}
	h.log.Info("api: run started", "request_id", requestID(r), "run_id", run.ID, "trigger", TriggerAPI, "source", run.Source)
	w.Header().Set("Location", "/api/v1/runs/"+run.ID)
	writeJSON(w, http.StatusAccepted, runCreated{RunID: run.ID, State: run.State})
}

// replay answers a create whose Idempotency-Key was seen before.
func (h *Handler) replay(w http.ResponseWriter, r *http.Request, prev *idemRecord, hash string) {
	if prev.Hash != hash {
		writeError(w, http.StatusConflict, codeIdempotencyReused,
			"this Idempotency-Key was used with a different request body; use a new key for a new request")
		return
	}
	st, err := h.opts.Runs.StateOf(r.Context(), prev.RunID) // a run's, or a group's
	if errors.Is(err, runs.ErrNotFound) {
		// The first request is still creating its run (or the record has
		// expired): the client should retry shortly.
		writeError(w, http.StatusConflict, codeIdempotencyInFlight,
			"a request with this Idempotency-Key is still being processed; retry shortly")
		return
	}
	if err != nil {
		h.log.Error("api: reading replayed run", "request_id", requestID(r), "run_id", prev.RunID, "err", err)
		h.writeInternal(w, r)
		return
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.Header().Set("Location", "/api/v1/runs/"+prev.RunID)
	writeJSON(w, http.StatusOK, runCreated{RunID: prev.RunID, State: st})
}

func checkIdempotencyKey(k string) *requestError {
	if len(k) > maxIdemKeyLen {
		return &requestError{status: http.StatusBadRequest, code: codeInvalidHeader, field: "Idempotency-Key",
			msg: fmt.Sprintf("Idempotency-Key is %d bytes, at most %d", len(k), maxIdemKeyLen)}
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c > 0x7e {
			return &requestError{status: http.StatusBadRequest, code: codeInvalidHeader, field: "Idempotency-Key",
				msg: "Idempotency-Key must be printable ASCII"}
		}
	}
	return nil
}

// ListRunsResponse is the body of GET /api/v1/runs (jobs.RunList, as
// `scanq runs list --json` prints it): a page of runs, newest first,
// without their image lists (a run shows image_count instead), and the
// cursor of the next page ("" or absent when there is none). A page can be
// shorter than limit and still have a next one: a page looks at a bounded
// number of runs, whatever the state filter matches.
type ListRunsResponse = jobs.RunList

func (h *Handler) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var state jobs.State
	if s := q.Get("state"); s != "" {
		state = jobs.State(s)
		if !validState(state) {
			writeFieldError(w, http.StatusBadRequest, codeInvalidQuery, "state",
				fmt.Sprintf("state %q is not one of %s", hss.Clip(s), strings.Join(stateNames(), ", ")))
			return
		}
	}
	limit := defaultRunsLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxRunsLimit {
			writeFieldError(w, http.StatusBadRequest, codeInvalidQuery, "limit",
				fmt.Sprintf("limit must be an integer in 1..%d", maxRunsLimit))
			return
		}
		limit = n
	}
	target := q.Get("target")
	if target == jobs.AllTargets {
		target = "" // every target's runs
	}
	if target != "" {
		if _, err := h.opts.Starter.Target(target); err != nil {
			writeFieldError(w, http.StatusBadRequest, codeInvalidQuery, "target", err.Error())
			return
		}
	}
	page, err := h.opts.Runs.ListPage(r.Context(), runs.ListQuery{Limit: limit, State: state, Target: target, Cursor: q.Get("cursor")})
	if errors.Is(err, runs.ErrBadCursor) {
		writeFieldError(w, http.StatusBadRequest, codeInvalidQuery, "cursor",
			"cursor is not one this API handed out: pass next_cursor of the previous page as it is")
		return
	}
	if err != nil {
		h.log.Error("api: listing runs", "request_id", requestID(r), "err", err)
		h.writeInternal(w, r)
		return
	}
	out := ListRunsResponse{Runs: make([]RunView, 0, len(page.Runs)), NextCursor: page.Next}
	for _, run := range page.Runs {
		out.Runs = append(out.Runs, h.view(run))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validRunID(id) {
		writeRunNotFound(w, id)
		return
	}
	run, err := h.opts.Runs.Get(r.Context(), id)
	if errors.Is(err, runs.ErrNotFound) {
		h.getGroup(w, r, id)
		return
	}
	if err != nil {
		h.log.Error("api: reading run", "request_id", requestID(r), "run_id", id, "err", err)
		h.writeInternal(w, r)
		return
	}
	writeJSON(w, http.StatusOK, h.view(run))
}

// getGroup answers GET /api/v1/runs/{id} for a run group: the group
// summarised, and each of its runs.
func (h *Handler) getGroup(w http.ResponseWriter, r *http.Request, id string) {
	g, err := h.opts.Runs.GroupView(r.Context(), id, h.opts.RatePeriod)
	if errors.Is(err, runs.ErrNotFound) {
		writeRunNotFound(w, id)
		return
	}
	if err != nil {
		h.log.Error("api: reading run group", "request_id", requestID(r), "run_id", id, "err", err)
		h.writeInternal(w, r)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (h *Handler) cancelRun(w http.ResponseWriter, r *http.Request) {
	if rerr := h.readNoFields(w, r); rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	id := r.PathValue("id")
	if !validRunID(id) {
		writeRunNotFound(w, id)
		return
	}
	run, err := h.opts.Starter.Cancel(r.Context(), id)
	if errors.Is(err, runs.ErrNotFound) {
		if err = h.opts.Starter.CancelGroup(r.Context(), id); err == nil || errors.Is(err, runs.ErrFinal) {
			if err == nil {
				h.log.Info("api: run group cancelled", "request_id", requestID(r), "run_id", id)
			}
			h.cancelledGroup(w, r, id, err)
			return
		}
	}
	switch {
	case errors.Is(err, runs.ErrNotFound):
		writeRunNotFound(w, id)
		return
	case errors.Is(err, runs.ErrFinal):
		msg := "run " + id + " has already finished"
		if run, gerr := h.opts.Runs.Get(r.Context(), id); gerr == nil {
			msg += " in state " + string(run.State)
		}
		writeError(w, http.StatusConflict, codeRunFinal, msg)
		return
	case err != nil:
		h.log.Error("api: cancelling run", "request_id", requestID(r), "run_id", id, "err", err)
		h.writeInternal(w, r)
		return
	}
	h.log.Info("api: run cancelled", "request_id", requestID(r), "run_id", id)
	writeJSON(w, http.StatusOK, h.view(run))
}

// cancelledGroup answers the cancel of group id: its view, or 409 when
// all its runs had ended already (err ErrFinal).
func (h *Handler) cancelledGroup(w http.ResponseWriter, r *http.Request, id string, err error) {
	if err != nil {
		writeError(w, http.StatusConflict, codeRunFinal, "every run of group "+id+" has already finished")
		return
	}
	h.getGroup(w, r, id)
}

func writeRunNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, codeRunNotFound, fmt.Sprintf("run %q not found", hss.Clip(id)))
}

// validRunID keeps ids that cannot be a run's out of Redis keys: braces
// would move the key's Cluster hash tag.
func validRunID(id string) bool {
	if id == "" || len(id) > 512 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c == '{' || c == '}' || c == 0x7f {
			return false
		}
	}
	return true
}

var states = jobs.States

func validState(s jobs.State) bool { return s.Valid() }

func stateNames() []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}
