package api

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/scanq/scanq/internal/hss"
)

// decodeStrict decodes a native route's JSON object into v with
// hss.DecodeStrict (exact names, unknown fields refused, every error naming
// its field's full path, at most Options.MaxImagesPerRequest items in an
// array) and turns its errors into this API's.
func (h *Handler) decodeStrict(data []byte, v any) *requestError {
	err := h.imageLimit(hss.DecodeStrictMax(data, v, true, h.opts.MaxImagesPerRequest))
	var pe *hss.ParseError
	var ue *hss.UnknownFieldsError
	var ve *hss.ValidationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		msg := map[string]string{
			"empty body":                 "request body is empty; send a JSON object",
			"data after the JSON object": "request body has data after the JSON object",
			"body is not a JSON object":  "request body must be a JSON object",
		}[pe.Reason]
		switch {
		case msg != "":
		case pe.Err != nil:
			msg = "request body is not valid JSON: " + pe.Err.Error()
		default:
			msg = "request body is not acceptable JSON: " + pe.Reason
		}
		return &requestError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: msg}
	case errors.As(err, &ue):
		return &requestError{status: http.StatusBadRequest, code: codeUnknownField, field: hss.Clip(ue.Fields[0]), msg: ue.Error()}
	case errors.As(err, &ve):
		return &requestError{status: http.StatusBadRequest, code: codeInvalidField, field: ve.Field, msg: ve.Error()}
	}
	return &requestError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: err.Error()}
}

// imageLimit turns the decoder's *hss.TooManyItemsError (image_info is the
// only array a request has) into the validation error that names the
// setting; other errors pass unchanged. The decoder counts the items
// before it builds any: a body of two million nulls is refused, not
// decoded.
func (h *Handler) imageLimit(err error) error {
	if te, ok := errors.AsType[*hss.TooManyItemsError](err); ok {
		return &hss.ValidationError{Field: te.Field,
			Reason: fmt.Sprintf("has more than %d images; at most %d are accepted in one request (api.max_images_per_request): split the list into several runs", te.Max, te.Max)}
	}
	return err
}

// checkJSONContentType refuses a body that is not declared JSON: 415.
// application/json and any +json type are JSON.
func checkJSONContentType(r *http.Request) *requestError {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return &requestError{status: http.StatusUnsupportedMediaType, code: codeUnsupportedMediaType,
		msg: "Content-Type must be application/json"}
}

// readNoFields reads the body of a route that takes no fields: none, or a
// JSON object with no members ({}), checked like every other body.
func (h *Handler) readNoFields(w http.ResponseWriter, r *http.Request) *requestError {
	body, rerr := h.readJSON(w, r)
	if rerr != nil || body == nil {
		return rerr
	}
	var none struct{}
	return h.decodeStrict(body, &none)
}

// readJSON reads a native route's body: within the size limit (413), and
// when there is one, declared JSON (415). An empty body is returned as nil.
func (h *Handler) readJSON(w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	if r.ContentLength > 0 {
		// Known to carry a body: refuse a wrong type before reading it.
		if rerr := checkJSONContentType(r); rerr != nil {
			return nil, rerr
		}
	}
	body, rerr := readBody(w, r, h.opts.MaxBodyBytes)
	if rerr != nil {
		return nil, rerr
	}
	if len(body) == 0 {
		return nil, nil
	}
	if rerr := checkJSONContentType(r); rerr != nil {
		return nil, rerr
	}
	return body, nil
}
