package api

import (
	"net/http"

	"github.com/scanq/scanq/internal/coverage"
)

// CoverageResponse is the body of GET /api/v1/coverage: each target's
// coverage, in configuration order.
type CoverageResponse struct {
	Targets []coverage.Coverage `json:"targets"`
}

func (h *Handler) getCoverage(w http.ResponseWriter, r *http.Request) {
	out := CoverageResponse{Targets: []coverage.Coverage{}}
	if h.opts.Coverage != nil && len(h.opts.CoverageTargets) > 0 {
		all, err := h.opts.Coverage.Get(r.Context(), h.opts.CoverageTargets, h.now())
		if err != nil {
			h.log.Error("api: reading coverage", "request_id", requestID(r), "err", err)
			h.writeInternal(w, r)
			return
		}
		out.Targets = all
	}
	writeJSON(w, http.StatusOK, out)
}
