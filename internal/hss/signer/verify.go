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
// DefaultMaxSkew. It is Parse with the SDK's own rules (UNSIGNED-PAYLOAD
// allowed for bodies the SDK does not hash) followed by Check.
func Verify(req *http.Request, body []byte, lookup func(ak string) (sk string, ok bool), now time.Time, maxSkew time.Duration) (string, error) {
	p, err := Parse(req, lookup, Policy{MaxSkew: maxSkew})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(body)
	if err := p.Check(sum[:], now); err != nil {
		return "", err
	}
	return p.AccessKey(), nil
}

// Policy is what a server asks of a signature beyond its being right.
type Policy struct {
	// MaxSkew is how far X-Sdk-Date may be from the server's clock; <= 0
	// means DefaultMaxSkew.
	MaxSkew time.Duration
	// SignedPayload refuses UNSIGNED-PAYLOAD, so that the signature always
	// covers the body. The SDK hashes every JSON and BSON body.
	SignedPayload bool
	// SignedIfPresent lists header names (lower case) that must be signed
	// whenever the request carries them: the headers the server acts on.
	// x-sdk-date is always required.
	SignedIfPresent []string
}

// Pending is a signature whose header part checked out (Parse) and that
// waits for its body (Check), so that a server can refuse a request from its
// headers before it reads the body, and hash the body as it arrives.
type Pending struct {
	req      *http.Request
	auth     authorization
	date     string
	signedAt time.Time
	sk       string
	maxSkew  time.Duration
}

// Parse checks everything of a signed request but its body: the
// Authorization header, X-Sdk-Date, what the policy demands of the signed
// headers and payload, and that the access key is known (lookup).
func Parse(req *http.Request, lookup func(ak string) (sk string, ok bool), p Policy) (*Pending, error) {
	if p.MaxSkew <= 0 {
		p.MaxSkew = DefaultMaxSkew
	}
	auth := strings.TrimSpace(req.Header.Get(HeaderAuthorization))
	if auth == "" {
		return nil, fmt.Errorf("verify: no %s header: %w", HeaderAuthorization, ErrMissing)
	}
	a, err := parseAuthorization(auth)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	date := req.Header.Get(HeaderDate)
	signedAt, err := time.Parse(DateLayout, date)
	if err != nil {
		return nil, fmt.Errorf("verify: %s %q is not in the form %s: %w", HeaderDate, date, DateLayout, ErrMalformed)
	}
	if err := checkUnsignedPayload(req.Header, p.SignedPayload); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	for _, name := range p.SignedIfPresent {
		present := len(headerValues(req.Header, name)) > 0 || (name == "host" && req.Host != "")
		if present && !slices.Contains(a.signedHeaders, name) {
			return nil, fmt.Errorf("verify: header %s is sent but not signed: %w", name, ErrMalformed)
		}
	}
	sk, ok := lookup(a.access)
	if !ok {
		return nil, fmt.Errorf("verify: %w", ErrUnknownKey)
	}
	return &Pending{req: req, auth: a, date: date, signedAt: signedAt, sk: sk, maxSkew: p.MaxSkew}, nil
}

// AccessKey is the request's access key.
func (p *Pending) AccessKey() string { return p.auth.access }

// Signature is the request's signature (hex): two requests with one
// signature are one request, since it covers the method, target, date,
// signed headers and (under Policy.SignedPayload) the body.
func (p *Pending) Signature() string { return p.auth.signature }

// SignedAt is the request's X-Sdk-Date.
func (p *Pending) SignedAt() time.Time { return p.signedAt }

// Check verifies the signature given the SHA-256 of the body (32 bytes),
// then the clock. The signature is checked before the clock, so
// ErrClockSkew only reaches a caller who holds the key: that is where a
// clock problem can be fixed.
func (p *Pending) Check(bodySHA256 []byte, now time.Time) error {
	bodyHex := hex.EncodeToString(bodySHA256)
	if vs := headerValues(p.req.Header, HeaderContentSHA256); len(vs) > 0 && vs[0] != UnsignedPayload &&
		!hmac.Equal([]byte(vs[0]), []byte(bodyHex)) {
		return fmt.Errorf("verify: %s is not the body's SHA-256: %w", HeaderContentSHA256, ErrBadSignature)
	}
	want, err := signature(p.req, payloadHash(p.req.Header, bodyHex), p.auth.signedHeaders, p.date, p.sk)
	if err != nil {
		return fmt.Errorf("verify: %v: %w", err, ErrMalformed)
	}
	if !hmac.Equal([]byte(want), []byte(p.auth.signature)) {
		return fmt.Errorf("verify: signed headers %s: %w", strings.Join(p.auth.signedHeaders, ";"), ErrBadSignature)
	}
	if skew := now.Sub(p.signedAt).Abs(); skew > p.maxSkew {
		return fmt.Errorf("verify: %s %s is %s from server time, limit %s: %w",
			HeaderDate, p.date, skew.Round(time.Second), p.maxSkew, ErrClockSkew)
	}
	return nil
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

// checkUnsignedPayload accepts X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD only
// as the SDK sends it, for a body it does not hash (neither JSON nor BSON),
// and not at all when the payload must be signed. Any other value must be
// the body's hash, which Check compares.
func checkUnsignedPayload(h http.Header, mustSign bool) error {
	vs := headerValues(h, HeaderContentSHA256)
	if len(vs) == 0 || vs[0] != UnsignedPayload {
		return nil
	}
	if mustSign {
		return fmt.Errorf("%s %s: the body must be signed: %w", HeaderContentSHA256, UnsignedPayload, ErrMalformed)
	}
	if ct, ok := contentType(h); ok && signsPayload(ct) {
		return fmt.Errorf("%s %s with a JSON or BSON Content-Type: %w", HeaderContentSHA256, UnsignedPayload, ErrMalformed)
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
