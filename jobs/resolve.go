package jobs

import (
	"fmt"
	"strings"

	"github.com/scanq/scanq/internal/hss"
)

// Resolution says how a run resolves its query_info (and is_all) into
// images. Fields are query_info names, in query_info order.
type Resolution struct {
	// ListAPI is the list API the run pages through: ListRegistryImages or
	// ListImageLocal; empty when the request is forwarded.
	ListAPI string `json:"list_api,omitempty"`
	// ListFilters are passed to the list API, which evaluates them as
	// query_info means them.
	ListFilters []string `json:"list_filters,omitempty"`
	// ScanqFilters are applied by scanq to the listed items: the list API
	// cannot filter them, or not with query_info's meaning (a scan status
	// it does not know, a one-sided time bound, image_version without
	// image_name on the local list).
	ScanqFilters []string `json:"scanq_filters,omitempty"`
	// Unlisted are fields no list API can evaluate for the request's image
	// type (host, container, pod, cluster fields on registry images).
	Unlisted []string `json:"unlisted,omitempty"`
	// Widened: the run was asked to widen, and lists without Unlisted, so
	// it covers more images than the query selects.
	Widened bool `json:"widened,omitempty"`
	// Forwarded: the request goes to HSS unexpanded, which evaluates the
	// query itself (because of Unlisted, or because the run asked to).
	Forwarded bool `json:"forwarded,omitempty"`
	// Note says in words what was done (is_all with query_info, widening,
	// forwarding).
	Note string `json:"note,omitempty"`
}

// Resolve decides how a request is resolved into images, and refuses at
// once what its resolution cannot do: a query value the list API would
// refuse, a query field no list can evaluate when the run must be expanded
// (expand, dry_run), widen on a forwarded request. The request must be
// valid (Validate). The Resolution is nil for image_info and a plain
// is_all.
//
// A query with fields no list API can evaluate for its image type is
// forwarded to HSS unexpanded by default: HSS evaluates it, and no image
// outside it is scanned. Only Widen lists it without those fields.
//
// is_all with query_info: the query narrows "all". The run lists with the
// query, and a forwarded request carries both, as HSS received it.
func Resolve(r *ScanRequest, o Options) (Source, *Resolution, error) {
	src := SourceOf(r, o.Forward)
	isAll := r.IsAll != nil && *r.IsAll
	switch {
	case src == SourceForward && r.QueryInfo != nil:
		res := &Resolution{Forwarded: true, Note: "forwarded unexpanded: HSS evaluates query_info"}
		if isAll {
			res.Note += "; is_all is sent with it"
		}
		return src, res, nil
	case src == SourceForward && o.Verify:
		return "", nil, &hss.ValidationError{Field: "verify", Reason: "a request that selects no images (no is_all, query_info or image_info) goes to HSS as it is, so scanq cannot follow its images; select them, or drop verify"}
	case src != SourceQuery:
		return src, nil, nil
	}
	plan, err := hss.PlanQuery(r.ImageType(), r.QueryInfo)
	if err != nil {
		return "", nil, err
	}
	res := &Resolution{ListAPI: plan.API, ListFilters: plan.Names(hss.ByList), ScanqFilters: plan.Names(hss.ByScanq), Unlisted: plan.Names(hss.Unlisted)}
	var notes []string
	if isAll {
		notes = append(notes, "is_all with query_info: the query narrows all images")
	}
	if changing := scanChanged(plan.Names(hss.ByList)); len(changing) > 0 {
		notes = append(notes, fmt.Sprintf("%s changes as HSS scans: the images this run submits leave the source as HSS starts scanning them, and a reconciliation pass counts them as disappeared", strings.Join(changing, ", ")))
	}
	if len(res.Unlisted) > 0 {
		fields := strings.Join(res.Unlisted, ", ")
		switch {
		case o.Widen:
			res.Widened = true
			notes = append(notes, fmt.Sprintf("widened: %s cannot be evaluated from %s and is not applied, so the run covers more images than the query selects", fields, plan.API))
		case o.Expand || o.DryRun:
			return "", nil, &hss.ValidationError{Field: "query_info." + res.Unlisted[0], Reason: fmt.Sprintf(
				"cannot be evaluated from %s for %s images; leave the request unexpanded (no expand or dry_run: HSS evaluates it), or set widen to list without it", plan.API, plan.ImageType)}
		case o.Verify:
			return "", nil, &hss.ValidationError{Field: "verify", Reason: fmt.Sprintf(
				"query_info.%s cannot be evaluated from %s for %s images, so the request would be forwarded to HSS unexpanded and scanq could not follow its images; drop verify, or set widen to list without it", res.Unlisted[0], plan.API, plan.ImageType)}
		default:
			src, res.Forwarded, res.ListAPI = SourceForward, true, ""
			res.ListFilters, res.ScanqFilters = nil, nil
			notes = append(notes, fmt.Sprintf("forwarded unexpanded: %s cannot be evaluated from %s, so HSS evaluates the query", fields, plan.API))
		}
	}
	res.Note = strings.Join(notes, "; ")
	return src, res, nil
}

// String describes the resolution in one line, for `runs show` and the
// CLI's summary.
func (r *Resolution) String() string {
	if r == nil {
		return ""
	}
	var parts []string
	if r.ListAPI != "" {
		parts = append(parts, "listed with "+r.ListAPI)
	}
	if len(r.ListFilters) > 0 {
		parts = append(parts, "list filters "+strings.Join(r.ListFilters, ","))
	}
	if len(r.ScanqFilters) > 0 {
		parts = append(parts, "applied by scanq "+strings.Join(r.ScanqFilters, ","))
	}
	if len(r.Unlisted) > 0 {
		parts = append(parts, "no list evaluates "+strings.Join(r.Unlisted, ","))
	}
	if r.Widened {
		parts = append(parts, "WIDENED")
	}
	if r.Forwarded {
		parts = append(parts, "forwarded unexpanded")
	}
	if r.Note != "" {
		parts = append(parts, r.Note)
	}
	return strings.Join(parts, "; ")
}

// scanChanged are the fields of names whose value a scan changes
// (scan_status, has_vul, the scan-time bounds): a source filtered by them
// by the list API shrinks as the run's own images are scanned.
func scanChanged(names []string) []string {
	var out []string
	for _, n := range names {
		switch n {
		case "scan_status", "has_vul", "start_latest_scan_time", "end_latest_scan_time":
			out = append(out, n)
		}
	}
	return out
}
