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
// its field's full path) and turns its errors into this API's.
func decodeStrict(data []byte, v any) *requestError {
	err := hss.DecodeStrict(data, v, true)
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
		return &requestError{status: http.StatusBadRequest, code: codeUnknownField, field: ue.Fields[0], msg: ue.Error()}
	case errors.As(err, &ve):
		return &requestError{status: http.StatusBadRequest, code: codeInvalidField, field: ve.Field, msg: ve.Error()}
	}
	return &requestError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: err.Error()}
}

// checkImageCount refuses a request naming more images than
// Options.MaxImagesPerRequest.
func (h *Handler) checkImageCount(images []hss.ImageInfo) error {
	if n, limit := len(images), h.opts.MaxImagesPerRequest; n > limit {
		return &hss.ValidationError{Field: "image_info",
			Reason: fmt.Sprintf("has %d images; at most %d are accepted in one request (api.max_images_per_request): split the list into several runs", n, limit)}
	}
	return nil
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
