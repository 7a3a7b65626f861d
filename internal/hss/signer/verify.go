package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// DefaultMaxSkew is how far X-Sdk-Date may be from the server's clock before
// Huawei's API gateway refuses a request.
const DefaultMaxSkew = 15 * time.Minute

// Verify failures. Errors returned by Verify wrap exactly one of them, with
// context that never includes the secret key, the access key or the
// expected signature.
var (
	ErrMissing      = errors.New("request is not signed")
	ErrMalformed    = errors.New("malformed signature")
	ErrUnknownKey   = errors.New("unknown access key")
	ErrBadSignature = errors.New("signature does not match")
	ErrClockSkew    = errors.New("request date outside the allowed clock skew")
)

// Verify checks an SDK-HMAC-SHA256 signed request and returns its access
// key. lookup returns the secret key of an access key. maxSkew <= 0 means
// DefaultMaxSkew.
//
// The signature is checked before the clock, so ErrClockSkew only reaches a
// caller who holds the key: that is where a clock problem can be fixed.
// A request must sign x-sdk-date (otherwise it could be replayed forever),
// and UNSIGNED-PAYLOAD is refused for JSON and BSON bodies, which the SDK
// always hashes.
func Verify(req *http.Request, body []byte, lookup func(ak string) (sk string, ok bool), now time.Time, maxSkew time.Duration) (string, error) {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	auth := strings.TrimSpace(req.Header.Get(HeaderAuthorization))
	if auth == "" {
		return "", fmt.Errorf("verify: no %s header: %w", HeaderAuthorization, ErrMissing)
	}
	a, err := parseAuthorization(auth)
	if err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	date := req.Header.Get(HeaderDate)
	signedAt, err := time.Parse(DateLayout, date)
	if err != nil {
		return "", fmt.Errorf("verify: %s %q is not in the form %s: %w", HeaderDate, date, DateLayout, ErrMalformed)
	}
	if err := checkPayloadHeader(req.Header, body); err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	sk, ok := lookup(a.access)
	if !ok {
		return "", fmt.Errorf("verify: %w", ErrUnknownKey)
	}
	want, err := signature(req, body, a.signedHeaders, date, sk)
	if err != nil {
		return "", fmt.Errorf("verify: %v: %w", err, ErrMalformed)
	}
	if !hmac.Equal([]byte(want), []byte(a.signature)) {
		return "", fmt.Errorf("verify: signed headers %s: %w", strings.Join(a.signedHeaders, ";"), ErrBadSignature)
	}
	if skew := now.Sub(signedAt).Abs(); skew > maxSkew {
		return "", fmt.Errorf("verify: %s %s is %s from server time, limit %s: %w",
			HeaderDate, date, skew.Round(time.Second), maxSkew, ErrClockSkew)
	}
	return a.access, nil
}

type authorization struct {
	access        string
	signedHeaders []string
	signature     string
}

// parseAuthorization reads
// "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex".
func parseAuthorization(v string) (authorization, error) {
	var a authorization
	rest, ok := strings.CutPrefix(v, Algorithm+" ")
	if !ok {
		return a, fmt.Errorf("authorization scheme is not %s: %w", Algorithm, ErrMalformed)
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(rest, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[key] {
			return a, fmt.Errorf("authorization parameters must be Access, SignedHeaders and Signature, once each: %w", ErrMalformed)
		}
		seen[key] = true
		switch key {
		case "Access":
			a.access = val
		case "SignedHeaders":
			a.signedHeaders = strings.Split(val, ";")
		case "Signature":
			a.signature = val
		default:
			return a, fmt.Errorf("unknown authorization parameter %q: %w", key, ErrMalformed)
		}
	}
	switch {
	case a.access == "":
		return a, fmt.Errorf("no access key in authorization: %w", ErrMalformed)
	case len(a.signature) != sha256.Size*2 || !isLowerHex(a.signature):
		return a, fmt.Errorf("signature is not %d lower-case hex digits: %w", sha256.Size*2, ErrMalformed)
	case !slices.Contains(a.signedHeaders, "x-sdk-date"):
		return a, fmt.Errorf("signed headers must include x-sdk-date: %w", ErrMalformed)
	}
	for _, h := range a.signedHeaders {
		if h == "" || h != strings.ToLower(h) || h == "authorization" {
			return a, fmt.Errorf("signed header %q is not a lower-case header name other than authorization: %w", h, ErrMalformed)
		}
	}
	return a, nil
}

// checkPayloadHeader accepts X-Sdk-Content-Sha256 only as the SDK sends it:
// UNSIGNED-PAYLOAD for bodies it does not hash, or the body's real hash.
func checkPayloadHeader(h http.Header, body []byte) error {
	vs := headerValues(h, HeaderContentSHA256)
	if len(vs) == 0 {
		return nil
	}
	if vs[0] == UnsignedPayload {
		if ct, ok := contentType(h); !ok || !signsPayload(ct) {
			return nil
		}
		return fmt.Errorf("%s %s with a JSON or BSON Content-Type: %w", HeaderContentSHA256, UnsignedPayload, ErrMalformed)
	}
	sum := sha256.Sum256(body)
	if !hmac.Equal([]byte(vs[0]), []byte(hex.EncodeToString(sum[:]))) {
		return fmt.Errorf("%s is not the body's SHA-256: %w", HeaderContentSHA256, ErrBadSignature)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
