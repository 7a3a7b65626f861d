package api

import (
	"crypto/sha256"
	"errors"
	"hash"
	"net/http"
	"strings"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/hss/signer"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// TriggerHSSAPI is the trigger kind of runs started through the
// HSS-compatible endpoint.
const TriggerHSSAPI = "hss-api"

// hssCreate is POST /v5/{project_id}/image/image-scan/tasks: HSS's
// CreateManualImageScanTask, checked in HSS's order (body size, media type,
// credentials, project, query and headers, body) with internal/hss's validation, the
// same code the emulator runs. The only difference a client sees is the
// answer: a run id, where HSS returns nothing.
//
// Everything that can be judged from the headers is judged before the body
// is read: the declared size, the Content-Type (JSON only: 415 otherwise),
// a token, the header part of a signature. A signed body is hashed as it
// arrives and the signature checked once it is in.
//
// A signed request is remembered by its signature for ReplayWindow: the
// same request again (a replay, or the SDK's retry after a lost answer)
// returns the first run instead of starting another.
func (h *Handler) hssCreate(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > h.opts.MaxBodyBytes {
		closeAfter(w)
		writeHSSError(w, r, http.StatusRequestEntityTooLarge, "APIGW.0201", hss.MsgTooLarge)
		return
	}
	if checkJSONContentType(r) != nil {
		closeAfter(w)
		writeHSSError(w, r, http.StatusUnsupportedMediaType, "APIGW.0201", msgUnsupportedMediaType)
		return
	}
	res, pending := h.authenticate(r, true)
	if res != authOK {
		h.hssAuthFailed(w, r, res)
		return
	}
	var sum hash.Hash
	lease := leaseOf(r.Context())
	if pending != nil {
		sum = sha256.New()
		lease.unchecked(h.unverified, r.RemoteAddr)
	}
	body, rerr := readBodyHashing(w, r, h.opts.MaxBodyBytes, sum)
	if rerr != nil {
		switch rerr.status {
		case http.StatusRequestEntityTooLarge:
			writeHSSError(w, r, http.StatusRequestEntityTooLarge, "APIGW.0201", hss.MsgTooLarge)
		case http.StatusServiceUnavailable:
			// The gateway's throttling answer, which HSS clients retry.
			writeHSSError(w, r, http.StatusTooManyRequests, "APIGW.0308", msgBusy)
		case http.StatusRequestTimeout:
			writeHSSError(w, r, http.StatusRequestTimeout, "APIGW.0201", "API request error: the request body stalled.")
		default:
			writeHSSError(w, r, http.StatusBadRequest, "APIGW.0201", "API request error.")
		}
		return
	}
	if pending != nil {
		res := h.checkSignature(pending, sum.Sum(nil))
		lease.checked()
		if res != authOK {
			h.hssAuthFailed(w, r, res)
			return
		}
	}
	// The client is known now (its verified AK or token, or its address
	// without authentication): one budget per AK, whatever address it
	// comes from.
	if !h.allowCreate(w, r, true) {
		return
	}
	project := r.PathValue("project_id")
	target, msg := h.route(project, r.Header.Get("Region"))
	if msg != "" {
		writeHSSError(w, r, http.StatusBadRequest, "HSS.0010", msg)
		return
	}
	// The SDK adds X-Project-Id to what it signs; it must agree with the path.
	if p := r.Header.Get("X-Project-Id"); p != "" && p != project {
		writeHSSError(w, r, http.StatusBadRequest, "HSS.0010", "Access denied: X-Project-Id does not match the project_id in the path")
		return
	}
	req := hss.CreateRequestOf(r, project)
	if err := req.Validate(); err != nil { // path, query and header; the body is checked next
		h.writeHSSValidation(w, r, err)
		return
	}
	b, err := hss.DecodeScanTaskBodyMax(body, h.opts.MaxImagesPerRequest)
	if err != nil {
		err = h.imageLimit(err)
		h.writeHSSValidation(w, r, err)
		return
	}
	sr := jobs.ScanRequest{
		GlobalImageType:     req.GlobalImageType,
		EnterpriseProjectID: req.EnterpriseProjectID,
		Region:              req.Region,
		ScanTaskBody:        *b,
	}
	id := runs.NewID(h.now())
	if pending != nil {
		prev, err := h.idem.claimFor(r.Context(), "hss-sig", pending.Signature(), "-", id, ReplayWindow)
		if err != nil {
			h.log.Error("api: hss endpoint: recording signature", "request_id", requestID(r), "err", err)
			writeHSSError(w, r, http.StatusInternalServerError, "HSS.1000", msgSystemError)
			return
		}
		if prev != nil {
			h.hssRepeat(w, r, prev.RunID)
			return
		}
	}
	run, err := h.opts.Starter.StartWithID(r.Context(), id, sr, jobs.Options{Target: target}, jobs.Trigger{Kind: TriggerHSSAPI})
	if err != nil {
		if pending != nil {
			// Nothing started under the signature: a retry may start it.
			if rerr := h.idem.release(r.Context(), "hss-sig", pending.Signature(), "-", id); rerr != nil {
				h.log.Warn("api: hss endpoint: releasing signature", "request_id", requestID(r), "err", rerr)
			}
		}
		h.writeHSSValidation(w, r, err)
		return
	}
	h.log.Info("api: run started", "request_id", requestID(r), "run_id", run.ID, "trigger", TriggerHSSAPI, "source", run.Source)
	w.Header().Set("Location", "/api/v1/runs/"+run.ID)
	writeJSONAs(w, http.StatusOK, hssContentType, struct {
		RunID string `json:"run_id"`
	}{run.ID})
}

// hssRepeat answers a signed request seen before with the run it started.
// While the first is still starting its run, the repeat is told to retry
// (the gateway's 429, which HSS clients retry).
func (h *Handler) hssRepeat(w http.ResponseWriter, r *http.Request, runID string) {
	if _, err := h.opts.Runs.Get(r.Context(), runID); err != nil {
		if !errors.Is(err, runs.ErrNotFound) {
			h.log.Error("api: hss endpoint: reading repeated run", "request_id", requestID(r), "run_id", runID, "err", err)
			writeHSSError(w, r, http.StatusInternalServerError, "HSS.1000", msgSystemError)
			return
		}
		w.Header().Set("Retry-After", "1")
		writeHSSError(w, r, http.StatusTooManyRequests, "APIGW.0308", msgBusy)
		return
	}
	h.log.Info("api: hss endpoint: repeated request", "request_id", requestID(r), "run_id", runID)
	w.Header().Set("Idempotent-Replayed", "true")
	w.Header().Set("Location", "/api/v1/runs/"+runID)
	writeJSONAs(w, http.StatusOK, hssContentType, struct {
		RunID string `json:"run_id"`
	}{runID})
}

// hssAuthFailed answers a refused credential as the gateway does. The body
// may be unread: the connection is closed after the answer.
func (h *Handler) hssAuthFailed(w http.ResponseWriter, r *http.Request, res authResult) {
	closeAfter(w)
	h.log.Info("api: hss endpoint: authentication failed", "request_id", requestID(r), "reason", res.String())
	writeHSSError(w, r, http.StatusUnauthorized, "APIGW.0301", h.hssAuthMessage(r, res))
}

// writeHSSValidation answers a validation or parse error as HSS does (400
// with HSS.0001 or HSS.0002) and anything else as HSS's system error.
func (h *Handler) writeHSSValidation(w http.ResponseWriter, r *http.Request, err error) {
	code := hss.ErrorCodeFor(err)
	if code != "HSS.0001" && code != "HSS.0002" {
		h.log.Error("api: hss endpoint failed", "request_id", requestID(r), "err", err)
		writeHSSError(w, r, http.StatusInternalServerError, "HSS.1000", msgSystemError)
		return
	}
	writeHSSError(w, r, http.StatusBadRequest, code, err.Error())
}

// hssAuthMessage is the gateway's message for each refusal.
func (h *Handler) hssAuthMessage(r *http.Request, res authResult) string {
	switch res {
	case authMissing:
		return hss.MsgNoToken
	case authBadToken, authUnsupported:
		return hss.MsgBadToken
	case authUnknownKey:
		return hss.MsgUnknownAK
	case authClockSkew:
		return hss.MsgSignatureExpired(r.Header.Get(signer.HeaderDate), h.now().UTC().Format(signer.DateLayout))
	}
	return hss.MsgBadSignature
}

// Project is a project the HSS-compatible endpoint answers for: the
// {project_id} of the path, with the region of its target, routed to that
// target.
type Project struct {
	ProjectID, Region, Target string
}

// route finds the target of a request to project with the region header
// region: the one target of that project (a region header, when given,
// must be its region), or where two targets share the project id, the one
// of that region. msg, when not "", is the HSS error
// message of a project this scanq does not serve.
func (h *Handler) route(project, region string) (target, msg string) {
	if len(h.opts.Projects) == 0 {
		return "", ""
	}
	var match []Project
	for _, p := range h.opts.Projects {
		if p.ProjectID == project {
			match = append(match, p)
		}
	}
	switch {
	case len(match) == 0:
		return "", "Access denied: the project_id in the path is not the project of these credentials " +
			"(this scanq serves the project_id of each of its targets; scanq config show prints them)"
	case len(match) == 1:
		if p := match[0]; region != "" && p.Region != "" && region != p.Region {
			// The call would reach the target with a region it is not in.
			return "", "Access denied: this project_id is served in region " + p.Region + ", not the region header's " + hss.Clip(region)
		}
		return match[0].Target, ""
	}
	for _, p := range match {
		if p.Region == region {
			return p.Target, ""
		}
	}
	regions := make([]string, len(match))
	for i, p := range match {
		regions[i] = p.Region
	}
	return "", "Access denied: this project_id is served in several regions (" + strings.Join(regions, ", ") + "): the region header must name one of them"
}
