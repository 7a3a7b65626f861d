package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// ImageRequest is the body of POST /api/v1/images: one image, as an
// image_info entry (id, image_id, image_digest, registry_id, registry_name,
// image_name, image_version, namespace, instance_id, instance_url,
// registry_type), the parameters of the scan request it will be batched
// into with the other images that share them (global_image_type,
// enterprise_project_id, region, scan_scope, rate_limit), and the target.
type ImageRequest struct {
	hss.ImageInfo
	jobs.ImageParams
}

// ScanRequest is the one-image scan request the image stands for.
func (r *ImageRequest) ScanRequest() jobs.ScanRequest {
	return r.ImageParams.Request([]hss.ImageInfo{r.ImageInfo})
}

// Validate applies HSS's rules to the image and its parameters, naming the
// field as the request spells it.
func (r *ImageRequest) Validate() error {
	i := r.ImageInfo
	if i.ID == 0 && i.ImageID == "" && i.ImageDigest == "" && i.ImageName == "" {
		return &hss.ValidationError{Field: "image_name", Reason: "is required unless id, image_id or image_digest names the image"}
	}
	sr := r.ScanRequest()
	if err := sr.Validate(); err != nil {
		if ve, ok := isValidation(err); ok {
			// The one entry of image_info is the request's top level here.
			return &hss.ValidationError{Field: strings.TrimPrefix(ve.Field, "image_info[0]."), Reason: ve.Reason}
		}
		return err
	}
	return nil
}

// StarterImages is the ImageAdder of runs.Starter.AddImage: each image gets
// a ticket (answered with 202) and a scan:image task that asynq aggregates
// with the other images of the same parameters.
func StarterImages(s *runs.Starter) ImageAdder { return starterImages{s} }

type starterImages struct{ s *runs.Starter }

func (a starterImages) AddImage(ctx context.Context, req ImageRequest) (any, error) {
	return a.s.AddImage(ctx, req.ImageInfo, req.ImageParams)
}

func (h *Handler) addImage(w http.ResponseWriter, r *http.Request) {
	if h.opts.Images == nil {
		writeError(w, http.StatusNotImplemented, codeNotImplemented, "adding single images is not enabled on this server")
		return
	}
	body, rerr := h.readJSON(w, r)
	if rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	var req ImageRequest
	if rerr := h.decodeStrict(body, &req); rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if rerr := h.checkTarget(req.ImageParams.Target, false); rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	if err := req.Validate(); err != nil {
		writeRequestError(w, validationError(err))
		return
	}
	res, err := h.opts.Images.AddImage(r.Context(), req)
	if err != nil {
		if _, ok := isValidation(err); ok {
			writeRequestError(w, validationError(err))
			return
		}
		h.log.Error("api: adding image", "request_id", requestID(r), "err", err)
		h.writeInternal(w, r)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}

// getImage is GET /api/v1/images/{ticket}: the ticket of an image added
// ad hoc, saying which batch carried it and how that ended.
func (h *Handler) getImage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("ticket")
	if !validRunID(id) {
		writeTicketNotFound(w, id)
		return
	}
	t, err := h.opts.Runs.Ticket(r.Context(), id)
	if errors.Is(err, runs.ErrTicketNotFound) {
		writeTicketNotFound(w, id)
		return
	}
	if err != nil {
		h.log.Error("api: reading image ticket", "request_id", requestID(r), "ticket", id, "err", err)
		h.writeInternal(w, r)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func writeTicketNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, codeTicketNotFound, fmt.Sprintf("image ticket %q not found", hss.Clip(id)))
}

// ---- schedules ----

// SchedulesFunc adapts a scheduler's typed methods to SchedulesProvider;
// unknown is its error for a schedule name it does not know
// (scheduler.ErrUnknownSchedule), answered with 404:
//
//	api.SchedulesFunc(s.Status, s.Trigger, scheduler.ErrUnknownSchedule)
func SchedulesFunc[S any](status func(context.Context) (S, error), trigger func(context.Context, string, bool) (*jobs.Run, error), unknown error) SchedulesProvider {
	return schedulesFunc[S]{status, trigger, unknown}
}

type schedulesFunc[S any] struct {
	status  func(context.Context) (S, error)
	trigger func(context.Context, string, bool) (*jobs.Run, error)
	unknown error
}

func (f schedulesFunc[S]) Status(ctx context.Context) (any, error) { return f.status(ctx) }

func (f schedulesFunc[S]) Trigger(ctx context.Context, name string, force bool) (*jobs.Run, error) {
	r, err := f.trigger(ctx, name, force)
	if err != nil && f.unknown != nil && errors.Is(err, f.unknown) {
		return nil, fmt.Errorf("%w: %w", ErrUnknownSchedule, err)
	}
	return r, err
}

// SchedulesResponse is the body of GET /api/v1/schedules.
type SchedulesResponse struct {
	Schedules any `json:"schedules"`
}

func (h *Handler) listSchedules(w http.ResponseWriter, r *http.Request) {
	if h.opts.Schedules == nil {
		writeJSON(w, http.StatusOK, SchedulesResponse{Schedules: []any{}})
		return
	}
	st, err := h.opts.Schedules.Status(r.Context())
	if err != nil {
		h.log.Error("api: reading schedules", "request_id", requestID(r), "err", err)
		h.writeInternal(w, r)
		return
	}
	writeJSON(w, http.StatusOK, SchedulesResponse{Schedules: st})
}

func (h *Handler) triggerSchedule(w http.ResponseWriter, r *http.Request) {
	if rerr := h.readNoFields(w, r); rerr != nil {
		writeRequestError(w, rerr)
		return
	}
	name := r.PathValue("name")
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		f, err := strconv.ParseBool(v)
		if err != nil {
			writeFieldError(w, http.StatusBadRequest, codeInvalidQuery, "force", "force must be true or false")
			return
		}
		force = f
	}
	if h.opts.Schedules == nil {
		writeScheduleNotFound(w, name)
		return
	}
	run, err := h.opts.Schedules.Trigger(r.Context(), name, force)
	var active runActive
	switch {
	case errors.Is(err, ErrUnknownSchedule):
		writeScheduleNotFound(w, name)
		return
	case errors.As(err, &active):
		msg := fmt.Sprintf("schedule %q is starting a run right now and its overlap is skip; retry, or add ?force=true to start another", name)
		if id := active.ActiveRunID(); id != "" {
			msg = fmt.Sprintf("schedule %q has a run that has not finished, %s, and its overlap is skip: wait for it, or add ?force=true to start another", name, id)
		}
		writeError(w, http.StatusConflict, codeScheduleRunActive, msg)
		return
	case err != nil:
		if _, ok := isValidation(err); ok {
			writeRequestError(w, validationError(err))
			return
		}
		h.log.Error("api: triggering schedule", "request_id", requestID(r), "schedule", name, "err", err)
		h.writeInternal(w, r)
		return
	}
	h.log.Info("api: schedule triggered", "request_id", requestID(r), "schedule", name, "run_id", run.ID)
	w.Header().Set("Location", "/api/v1/runs/"+run.ID)
	writeJSON(w, http.StatusAccepted, runCreated{RunID: run.ID, State: run.State})
}

// runActive is a trigger error refused by the schedule's overlap policy
// (scheduler.RunActiveError): 409, naming the run still going.
type runActive interface {
	error
	ActiveRunID() string
}

func writeScheduleNotFound(w http.ResponseWriter, name string) {
	writeError(w, http.StatusNotFound, codeScheduleNotFound, fmt.Sprintf("schedule %q is not configured", hss.Clip(name)))
}
