package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/scanq/scanq/internal/hss"
)

// Error codes of the {"error":{"code","message"}} body of /api/v1 and the
// other native routes. They are a contract: scripts switch on them.
const (
	codeInvalidJSON          = "invalid_json"           // not one JSON object
	codeUnknownField         = "unknown_field"          // a field the route does not take
	codeInvalidField         = "invalid_field"          // wrong type, out of range, bad enum
	codeInvalidQuery         = "invalid_query"          // a bad query parameter
	codeInvalidHeader        = "invalid_header"         // a bad Idempotency-Key
	codeUnauthorized         = "unauthorized"           // missing or wrong credentials
	codeForbidden            = "forbidden"              // a cross-origin browser request
	codeNotFound             = "not_found"              // no such route
	codeRunNotFound          = "run_not_found"          // no such run
	codeScheduleNotFound     = "schedule_not_found"     // no such schedule
	codeTicketNotFound       = "ticket_not_found"       // no such image ticket
	codeMethodNotAllowed     = "method_not_allowed"     // see the Allow header
	codeRunFinal             = "run_final"              // cancel of a finished run
	codeIdempotencyReused    = "idempotency_key_reused" // same key, different request
	codeIdempotencyInFlight  = "idempotency_key_in_progress"
	codeTooManyRequests      = "too_many_requests"   // over api.create_rate; see Retry-After
	codeScheduleRunActive    = "schedule_run_active" // trigger while the last run goes on (overlap: skip)
	codeBodyTooLarge         = "body_too_large"
	codeUnsupportedMediaType = "unsupported_media_type"
	codeNotImplemented       = "not_implemented"
	codeBusy                 = "busy"             // too many bodies being read; see Retry-After
	codeRequestTimeout       = "request_timeout"  // the body stalled or came too slowly
	codeSignatureReused      = "signature_reused" // a signed request sent again
	codeInternal             = "internal"
)

// apiError is the native error body.
type apiError struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the offending request field, when there is one.
	Field string `json:"field,omitempty"`
}

// requestError is a client error found while reading a request.
type requestError struct {
	status int
	code   string
	field  string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// hssContentType is what HSS answers with.
const hssContentType = "application/json;charset=UTF-8"

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONAs(w, status, "application/json", v)
}

func writeJSONAs(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{errorBody{Code: code, Message: msg}})
}

func writeFieldError(w http.ResponseWriter, status int, code, field, msg string) {
	writeJSON(w, status, apiError{errorBody{Code: code, Message: msg, Field: field}})
}

func writeRequestError(w http.ResponseWriter, e *requestError) {
	writeFieldError(w, e.status, e.code, e.field, e.msg)
}

// writeInternal answers a server fault without its details, which go to
// the log with the request id.
func (h *Handler) writeInternal(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusInternalServerError, codeInternal, "internal error; see the server log for request id "+requestID(r))
}

// validationError turns a validation failure into a 400 naming the field:
// a *hss.ValidationError carries it, and jobs.Options errors read
// "field: reason".
func validationError(err error) *requestError {
	if ve, ok := errors.AsType[*hss.ValidationError](err); ok {
		return &requestError{http.StatusBadRequest, codeInvalidField, ve.Field, ve.Error()}
	}
	msg := err.Error()
	field, _, _ := strings.Cut(msg, ":")
	if strings.ContainsAny(field, " \n") {
		field = ""
	}
	return &requestError{http.StatusBadRequest, codeInvalidField, field, msg}
}

// ---- the HSS error format ----

// Wire messages of Huawei's API gateway (APIGW), as the emulator sends them.
const (
	msgSystemError          = "System error."
	msgUnsupportedMediaType = "Unsupported Media Type: Content-Type must be application/json"
	msgBusy                 = "The throttling threshold has been reached: too many request bodies being read, retry later"
)

func writeHSSError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	writeJSONAs(w, status, hssContentType, hss.ErrorBody{ErrorCode: code, ErrorMsg: msg, RequestID: requestID(r)})
}

func isHSSPath(p string) bool { return strings.HasPrefix(p, "/v5/") }

func isValidation(err error) (*hss.ValidationError, bool) {
	return errors.AsType[*hss.ValidationError](err)
}
