package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/hss/signer"
)

// authResult is the verdict on a request's credentials. The reasons are
// told apart only for the server's log and for HSS's gateway messages;
// nothing the client sent is repeated.
type authResult int

const (
	authOK authResult = iota
	authMissing
	authBadToken
	authUnsupported
	authBadSignature
	authUnknownKey
	authClockSkew
)

func (a authResult) String() string {
	return [...]string{"ok", "missing", "bad_token", "unsupported_scheme", "bad_signature", "unknown_key", "clock_skew"}[a]
}

// authEnabled: with neither a token nor an AK/SK configured the API is open
// (the demo).
func (h *Handler) authEnabled() bool { return h.opts.Token != "" || h.opts.AK != "" }

// secretEqual compares in constant time, also in the length: both sides are
// hashed first, so the comparison never returns early on a length mismatch.
func secretEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func isSigned(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get(signer.HeaderAuthorization), signer.Algorithm+" ")
}

// authenticate judges r's credentials. body is the request body, needed
// for AK/SK signatures only. hssOnly restricts the accepted forms to HSS's
// own: X-Auth-Token and AK/SK signatures.
func (h *Handler) authenticate(r *http.Request, body []byte, hssOnly bool) authResult {
	if !h.authEnabled() {
		return authOK
	}
	if isSigned(r) {
		return h.verifySignature(r, body)
	}
	if !hssOnly {
		if auth := strings.TrimSpace(r.Header.Get("Authorization")); auth != "" {
			scheme, cred, _ := strings.Cut(auth, " ")
			switch {
			case strings.EqualFold(scheme, "Bearer"):
				return h.checkToken(strings.TrimSpace(cred))
			case strings.EqualFold(scheme, "Basic"):
				user, pass, ok := r.BasicAuth()
				if !ok {
					return authBadToken
				}
				if h.opts.Token != "" && secretEqual(pass, h.opts.Token) {
					return authOK
				}
				// Basic with the key pair: a browser cannot sign requests.
				if h.opts.AK != "" && secretEqual(user, h.opts.AK) && secretEqual(pass, h.opts.SK) {
					return authOK
				}
				return authBadToken
			default:
				return authUnsupported
			}
		}
	}
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		return h.checkToken(tok)
	}
	return authMissing
}

func (h *Handler) checkToken(tok string) authResult {
	if h.opts.Token != "" && secretEqual(tok, h.opts.Token) {
		return authOK
	}
	return authBadToken
}

func (h *Handler) verifySignature(r *http.Request, body []byte) authResult {
	lookup := func(ak string) (string, bool) {
		if h.opts.AK == "" || !secretEqual(ak, h.opts.AK) {
			return "", false
		}
		return h.opts.SK, true
	}
	_, err := signer.Verify(r, body, lookup, h.now(), signer.DefaultMaxSkew)
	switch {
	case err == nil:
		return authOK
	case errors.Is(err, signer.ErrUnknownKey):
		return authUnknownKey
	case errors.Is(err, signer.ErrClockSkew):
		return authClockSkew
	}
	return authBadSignature
}

// v1AuthMessage explains a refusal without repeating what was sent.
func v1AuthMessage(a authResult) string {
	switch a {
	case authMissing:
		return "authentication required: send Authorization: Bearer <token>, X-Auth-Token, HTTP basic auth or an SDK-HMAC-SHA256 signature"
	case authUnsupported:
		return "unsupported Authorization scheme: use Bearer, Basic or SDK-HMAC-SHA256"
	case authBadSignature:
		return "invalid AK/SK signature"
	case authUnknownKey:
		return "unknown access key"
	case authClockSkew:
		return fmt.Sprintf("%s is more than %s from the server's clock", signer.HeaderDate, signer.DefaultMaxSkew)
	}
	return "invalid credentials"
}

// requireAuth guards a native route. An AK/SK-signed request's body is
// read (within the size limit) so the signature can cover it, then handed
// on. browser routes offer basic auth in their 401, so that a browser asks
// for it.
func (h *Handler) requireAuth(next http.Handler, browser bool) http.Handler {
	if !h.authEnabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if isSigned(r) && h.opts.AK != "" {
			b, rerr := readBody(w, r, h.opts.MaxBodyBytes)
			if rerr != nil {
				writeRequestError(w, rerr)
				return
			}
			body = b
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		res := h.authenticate(r, body, false)
		if res == authOK {
			next.ServeHTTP(w, r)
			return
		}
		h.log.Info("api: authentication failed", "request_id", requestID(r), "path", r.URL.Path, "reason", res.String())
		if browser {
			w.Header().Set("WWW-Authenticate", `Basic realm="scanq", charset="UTF-8"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scanq"`)
		}
		writeError(w, http.StatusUnauthorized, codeUnauthorized, v1AuthMessage(res))
	})
}

// readBody reads the whole body within limit: 413 beyond it. The reader
// stops one byte past the limit, which is where MaxBytesReader reports it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *requestError) {
	b, err := hss.ReadBody(http.MaxBytesReader(w, r.Body, limit), r.ContentLength, limit+1)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge, code: codeBodyTooLarge,
				msg: fmt.Sprintf("request body exceeds %d bytes", limit)}
		}
		return nil, &requestError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: "reading request body: " + err.Error()}
	}
	return b, nil
}

// metricsHandler guards /metrics: open, behind the API's authentication
// (ProtectMetrics), behind the metrics token, or behind either of the two.
// Scrapes cost Redis work, so an open /metrics is for private networks.
func (h *Handler) metricsHandler() http.Handler {
	next := h.metrics.Handler()
	var viaAPI http.Handler
	if h.opts.ProtectMetrics && h.authEnabled() {
		viaAPI = h.requireAuth(next, false)
	}
	if h.opts.MetricsToken == "" {
		if viaAPI != nil {
			return viaAPI
		}
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Auth-Token")
		if scheme, cred, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " "); ok && strings.EqualFold(scheme, "Bearer") {
			tok = strings.TrimSpace(cred)
		}
		if tok != "" && secretEqual(tok, h.opts.MetricsToken) {
			next.ServeHTTP(w, r)
			return
		}
		if viaAPI != nil {
			viaAPI.ServeHTTP(w, r)
			return
		}
		res := authMissing
		if tok != "" {
			res = authBadToken
		}
		h.log.Info("api: authentication failed", "request_id", requestID(r), "path", r.URL.Path, "reason", res.String())
		w.Header().Set("WWW-Authenticate", `Bearer realm="scanq-metrics"`)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "/metrics needs the metrics token: send Authorization: Bearer <token> or X-Auth-Token")
	})
}
