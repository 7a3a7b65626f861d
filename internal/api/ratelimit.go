package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scanq/scanq/internal/hss/signer"
)

// Creation limits: every route that creates a run (POST /api/v1/runs,
// POST /api/v1/images, the HSS-compatible endpoint, schedule triggers)
// spends one token of its client's budget, Options.CreateRate runs a
// minute with bursts of Options.CreateBurst: on /api/v1 before the handler
// reads the body, on the HSS endpoint once its credentials are verified.
// Over the budget the answer is 429 with Retry-After (whole seconds), as
// APIGW.0308 on the HSS endpoint, and nothing is read, stored or enqueued.
//
// The budget is internal/limit's request GCRA, in Redis, so it holds for
// the fleet of API processes together; its keys are
// <prefix>limit:req:{create:<client>}:rate and expire by themselves.
//
// A client is:
//   - without authentication: its remote address (the TCP peer; a proxy in
//     front makes every client one, which is the safe side);
//   - on /api/v1, after requireAuth has accepted the request: the
//     credential it used, the token or the AK;
//   - on the HSS endpoint, which checks credentials itself (a signature
//     covers the body, so it is verified once the body is in): the same,
//     taken after that check, so that one AK has one budget from any
//     address and a stranger who knows an AK cannot spend its owner's.
//
// Credentials never appear in the keys: they are HMACs keyed with the
// configured secret.

// limitCreates wraps a creating route that requireAuth has accepted;
// hssFormat answers as HSS's gateway.
func (h *Handler) limitCreates(next http.Handler, hssFormat bool) http.Handler {
	if h.opts.CreateRate == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.allowCreate(w, r, hssFormat) {
			next.ServeHTTP(w, r)
		}
	})
}

// allowCreate takes one creation of r's client, whose credentials were
// accepted, and reports whether it may go on; when not, it has answered
// (429 with Retry-After, or 500).
func (h *Handler) allowCreate(w http.ResponseWriter, r *http.Request, hssFormat bool) bool {
	if h.opts.CreateRate == 0 {
		return true
	}
	d, err := h.limiter.AllowRequest(r.Context(), "create:"+h.createClient(r), h.opts.CreateRate/60, h.opts.CreateBurst)
	if err != nil {
		h.log.Error("api: creation limit", "request_id", requestID(r), "err", err)
		if hssFormat {
			writeHSSError(w, r, http.StatusInternalServerError, "HSS.1000", msgSystemError)
		} else {
			h.writeInternal(w, r)
		}
		return false
	}
	if d.Granted {
		return true
	}
	secs := max(1, int(math.Ceil(d.Wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	h.log.Info("api: creation over the client's limit", "request_id", requestID(r), "path", r.URL.Path, "retry_after", time.Duration(secs)*time.Second)
	if hssFormat {
		writeHSSError(w, r, http.StatusTooManyRequests, "APIGW.0308",
			"The throttling threshold has been reached: policy user over ratelimit,limit:"+
				strconv.FormatFloat(h.opts.CreateRate, 'f', -1, 64)+",time:1 minute")
		return false
	}
	writeError(w, http.StatusTooManyRequests, codeTooManyRequests,
		"too many runs created: at most "+strconv.FormatFloat(h.opts.CreateRate, 'f', -1, 64)+
			" a minute per client; retry after "+strconv.Itoa(secs)+"s")
	return false
}

// createClient names r's client for the creation limit (see above).
func (h *Handler) createClient(r *http.Request) string {
	if !h.authEnabled() {
		addr := r.RemoteAddr
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
		return "addr:" + addr
	}
	// The request's credentials were accepted: a signature, a token
	// (Bearer, X-Auth-Token or the password of basic auth) or the key pair
	// as basic auth.
	if isSigned(r) {
		return "ak:" + h.pseudonym(accessKey(r.Header.Get(signer.HeaderAuthorization)))
	}
	if user, pass, ok := r.BasicAuth(); ok && (h.opts.Token == "" || !secretEqual(pass, h.opts.Token)) {
		return "ak:" + h.pseudonym(user)
	}
	return "token:" + h.pseudonym("")
}

// pseudonym is a stable name for a credential that does not reveal it: an
// HMAC keyed with the configured secrets, the same in every API process.
func (h *Handler) pseudonym(s string) string {
	m := hmac.New(sha256.New, []byte(h.opts.Token+"\x00"+h.opts.SK))
	m.Write([]byte("scanq create limit\x00" + s))
	return hex.EncodeToString(m.Sum(nil)[:12])
}

// accessKey is the Access= field of an SDK-HMAC-SHA256 Authorization
// header ("" when there is none).
func accessKey(auth string) string {
	_, params, _ := strings.Cut(auth, " ")
	for _, p := range strings.Split(params, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "Access="); ok {
			return v
		}
	}
	return ""
}
