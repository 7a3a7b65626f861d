package api

import (
	"net/http"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/hss/signer"
	"github.com/scanq/scanq/jobs"
)

// TriggerHSSAPI is the trigger kind of runs started through the
// HSS-compatible endpoint.
const TriggerHSSAPI = "hss-api"

// hssCreate is POST /v5/{project_id}/image/image-scan/tasks: HSS's
// CreateManualImageScanTask, checked in HSS's order (body size, credentials,
// project, query and headers, body) with internal/hss's validation, the
// same code the emulator runs. The only difference a client sees is the
// answer: a run id, where HSS returns nothing.
func (h *Handler) hssCreate(w http.ResponseWriter, r *http.Request) {
	body, rerr := readBody(w, r, h.opts.MaxBodyBytes)
	if rerr != nil {
		if rerr.status == http.StatusRequestEntityTooLarge {
			writeHSSError(w, r, http.StatusRequestEntityTooLarge, "APIGW.0201", hss.MsgTooLarge)
		} else {
			writeHSSError(w, r, http.StatusBadRequest, "APIGW.0201", "API request error.")
		}
		return
	}
	if res := h.authenticate(r, body, true); res != authOK {
		h.log.Info("api: hss endpoint: authentication failed", "request_id", requestID(r), "reason", res.String())
		writeHSSError(w, r, http.StatusUnauthorized, "APIGW.0301", h.hssAuthMessage(r, res))
		return
	}
	project := r.PathValue("project_id")
	if h.opts.ProjectID != "" && project != h.opts.ProjectID {
		writeHSSError(w, r, http.StatusBadRequest, "HSS.0010", "Access denied: the project_id in the path is not the project of these credentials")
		return
	}
	// The SDK adds X-Project-Id to what it signs; it must agree with the path.
	if p := r.Header.Get("X-Project-Id"); p != "" && p != project {
		writeHSSError(w, r, http.StatusBadRequest, "HSS.0010", "Access denied: X-Project-Id does not match the project_id in the path")
		return
	}
	q := r.URL.Query()
	req := hss.CreateScanTaskRequest{
		ProjectID:           project,
		EnterpriseProjectID: q.Get("enterprise_project_id"),
		GlobalImageType:     q.Get("global_image_type"),
		Region:              r.Header.Get("Region"),
	}
	if err := req.Validate(); err != nil { // path, query and header; the body is checked next
		h.writeHSSValidation(w, r, err)
		return
	}
	b, err := hss.DecodeScanTaskBody(body)
	if err == nil {
		err = h.checkImageCount(b.ImageInfo)
	}
	if err != nil {
		h.writeHSSValidation(w, r, err)
		return
	}
	sr := jobs.ScanRequest{
		GlobalImageType:     req.GlobalImageType,
		EnterpriseProjectID: req.EnterpriseProjectID,
		Region:              req.Region,
		ScanTaskBody:        *b,
	}
	run, err := h.opts.Starter.Start(r.Context(), sr, jobs.Options{}, jobs.Trigger{Kind: TriggerHSSAPI})
	if err != nil {
		h.writeHSSValidation(w, r, err)
		return
	}
	h.log.Info("api: run started", "request_id", requestID(r), "run_id", run.ID, "trigger", TriggerHSSAPI, "source", run.Source)
	w.Header().Set("Location", "/api/v1/runs/"+run.ID)
	writeJSONAs(w, http.StatusOK, hssContentType, struct {
		RunID string `json:"run_id"`
	}{run.ID})
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
