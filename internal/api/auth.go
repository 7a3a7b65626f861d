package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

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

// hssSignedIfPresent are the headers the HSS-compatible endpoint acts on
// besides the path, query and body: a signature must cover them when they
// are sent. The SDK signs every header it sends but Content-Type (see
// signer.Policy), so it always covers these; Content-Type needs no
// signature, because only JSON is taken and the JSON body is always hashed.
var hssSignedIfPresent = []string{"region", "x-project-id"}

// ReplayWindow is how long a signature is remembered to recognise a
// repeat: X-Sdk-Date may be up to signer.DefaultMaxSkew either side of the
// server's clock, so a signature stays acceptable for twice that.
const ReplayWindow = 2 * signer.DefaultMaxSkew

// authenticate judges r's credentials from its headers alone: a token
// (X-Auth-Token, Bearer, Basic) is decided here, before any body is read.
// For an AK/SK signature it checks everything but the body and returns the
// pending signature, which checkSignature completes once the body has been
// read and hashed. hssOnly restricts the accepted forms to HSS's own:
// X-Auth-Token and AK/SK signatures, the latter bound to the headers the
// endpoint uses.
func (h *Handler) authenticate(r *http.Request, hssOnly bool) (authResult, *signer.Pending) {
	if !h.authEnabled() {
		return authOK, nil
	}
	if isSigned(r) {
		return h.parseSignature(r, hssOnly)
	}
	if !hssOnly {
		if auth := strings.TrimSpace(r.Header.Get("Authorization")); auth != "" {
			scheme, cred, _ := strings.Cut(auth, " ")
			switch {
			case strings.EqualFold(scheme, "Bearer"):
				return h.checkToken(strings.TrimSpace(cred)), nil
			case strings.EqualFold(scheme, "Basic"):
				user, pass, ok := r.BasicAuth()
				if !ok {
					return authBadToken, nil
				}
				if h.opts.Token != "" && secretEqual(pass, h.opts.Token) {
					return authOK, nil
				}
				// Basic with the key pair: a browser cannot sign requests.
				if h.opts.AK != "" && secretEqual(user, h.opts.AK) && secretEqual(pass, h.opts.SK) {
					return authOK, nil
				}
				return authBadToken, nil
			default:
				return authUnsupported, nil
			}
		}
	}
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		return h.checkToken(tok), nil
	}
	return authMissing, nil
}

// presentedToken is the token r carries as "Authorization: Bearer T" or,
// failing that, as X-Auth-Token; "" for none.
func presentedToken(r *http.Request) string {
	if scheme, cred, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(cred)
	}
	return r.Header.Get("X-Auth-Token")
}

func (h *Handler) checkToken(tok string) authResult {
	if h.opts.Token != "" && secretEqual(tok, h.opts.Token) {
		return authOK
	}
	return authBadToken
}

// parseSignature checks a signature's header part. The body must always be
// signed (UNSIGNED-PAYLOAD is refused): the routes that take bodies take
// JSON, which the SDK hashes anyway.
func (h *Handler) parseSignature(r *http.Request, hssOnly bool) (authResult, *signer.Pending) {
	lookup := func(ak string) (string, bool) {
		if h.opts.AK == "" || !secretEqual(ak, h.opts.AK) {
			return "", false
		}
		return h.opts.SK, true
	}
	policy := signer.Policy{MaxSkew: signer.DefaultMaxSkew, SignedPayload: true}
	if hssOnly {
		policy.SignedIfPresent = hssSignedIfPresent
	}
	p, err := signer.Parse(r, lookup, policy)
	if err != nil {
		return signatureResult(err), nil
	}
	return authOK, p
}

// checkSignature completes a pending signature with the body's SHA-256.
func (h *Handler) checkSignature(p *signer.Pending, bodySHA256 []byte) authResult {
	return signatureResult(p.Check(bodySHA256, h.now()))
}

func signatureResult(err error) authResult {
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

// replayPolicy says what a native route does with a signed request sent
// again.
type replayPolicy int

const (
	// replaySafe: GET and HEAD routes; a repeat does no harm.
	replaySafe replayPolicy = iota
	// replayOnce: a signature is accepted once within ReplayWindow; a
	// repeat is 409.
	replayOnce
	// replayHandled: the handler answers a repeat itself (POST
	// /api/v1/runs returns the first run, as for an Idempotency-Key).
	replayHandled
	// replayOnceUnsafe: replayOnce for methods other than GET and HEAD
	// (asynqmon, whose routes are of every method).
	replayOnceUnsafe
)

type signatureKey struct{}

// signatureOf is the signature r was accepted with, "" when it was not
// signed.
func signatureOf(r *http.Request) string {
	s, _ := r.Context().Value(signatureKey{}).(string)
	return s
}

// requireAuth guards a native route. Credentials in headers are judged
// before the body is read; an AK/SK-signed request's body is then read
// (within the size limit and the body budget) and hashed as it arrives, so
// that the signature can cover it, and handed on. browser routes offer
// basic auth in their 401, so that a browser asks for it.
func (h *Handler) requireAuth(next http.Handler, browser bool, replay replayPolicy) http.Handler {
	if !h.authEnabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, pending := h.authenticate(r, false)
		if res == authOK && pending != nil && safe(r.Method) && r.ContentLength != 0 {
			// A GET's body means nothing here: it is not read to check a
			// signature over it.
			closeAfter(w)
			writeError(w, http.StatusRequestEntityTooLarge, codeBodyTooLarge, r.Method+" requests take no body")
			return
		}
		if res == authOK && pending != nil {
			sum := sha256.New()
			lease := leaseOf(r.Context())
			lease.unchecked(h.unverified, r.RemoteAddr)
			body, rerr := readBodyHashing(w, r, h.opts.MaxBodyBytes, sum)
			if rerr != nil {
				writeRequestError(w, rerr)
				return
			}
			res = h.checkSignature(pending, sum.Sum(nil))
			lease.checked()
			if res == authOK {
				r = withBody(r, body)
				r = r.WithContext(context.WithValue(r.Context(), signatureKey{}, pending.Signature()))
				if (replay == replayOnce || replay == replayOnceUnsafe && !safe(r.Method)) && !h.firstUse(w, r, pending.Signature()) {
					return
				}
			}
		}
		if res == authOK {
			next.ServeHTTP(w, r)
			return
		}
		closeAfter(w)
		h.log.Info("api: authentication failed", "request_id", requestID(r), "path", r.URL.Path, "reason", res.String())
		if browser {
			w.Header().Set("WWW-Authenticate", `Basic realm="scanq", charset="UTF-8"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scanq"`)
		}
		writeError(w, http.StatusUnauthorized, codeUnauthorized, v1AuthMessage(res))
	})
}

func safe(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// firstUse records a signature of an unsafe request for ReplayWindow and
// answers 409 when it was used before.
func (h *Handler) firstUse(w http.ResponseWriter, r *http.Request, sig string) bool {
	prev, err := h.idem.claimFor(r.Context(), "sig-once", sig, "-", requestID(r), ReplayWindow)
	if err != nil {
		h.log.Error("api: recording signature", "request_id", requestID(r), "err", err)
		h.writeInternal(w, r)
		return false
	}
	if prev != nil {
		writeError(w, http.StatusConflict, codeSignatureReused,
			"this signed request was received before; sign a new request to repeat it")
		return false
	}
	return true
}

// metricsHandler guards /metrics: open, behind the API's authentication
// (ProtectMetrics), behind the metrics token, or behind either of the two.
// Scrapes cost Redis work, so an open /metrics is for private networks.
func (h *Handler) metricsHandler() http.Handler {
	next := h.metrics.Handler()
	var viaAPI http.Handler
	if h.opts.ProtectMetrics && h.authEnabled() {
		viaAPI = h.requireAuth(next, false, replaySafe)
	}
	if h.opts.MetricsToken == "" {
		if viaAPI != nil {
			return viaAPI
		}
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := presentedToken(r)
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
