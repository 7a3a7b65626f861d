// Package signer implements Huawei Cloud's SDK-HMAC-SHA256 request signing,
// byte for byte as the official Go SDK (core/auth/signer) does it, for both
// sides: Sign for scanq's own HSS calls and Verify for the HSS emulator and
// scanq's HSS-compatible endpoint.
//
// The canonical request is
//
//	METHOD \n URI \n QUERY \n HEADERS \n SIGNEDHEADERS \n PAYLOADHASH
//
// and the signature is hex(HMAC-SHA256(SK, "SDK-HMAC-SHA256\n" + date + "\n" +
// hex(sha256(canonical request)))). See /work/shared/HSS-API.md.
package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Wire names and formats of the algorithm.
const (
	Algorithm           = "SDK-HMAC-SHA256"
	HeaderDate          = "X-Sdk-Date"
	HeaderContentSHA256 = "X-Sdk-Content-Sha256"
	HeaderAuthorization = "Authorization"
	DateLayout          = "20060102T150405Z"
	// UnsignedPayload replaces the body hash when Content-Type is neither
	// JSON nor BSON, as the SDK does for streams and forms.
	UnsignedPayload = "UNSIGNED-PAYLOAD"
)

// Sign signs req as the Huawei Cloud SDK would: it sets X-Sdk-Date (from now)
// and Authorization, and X-Sdk-Content-Sha256 for non-JSON bodies. Every
// header already on req is signed except Content-Type and names containing
// "_", so the caller sets X-Project-Id, region, X-Security-Token and
// User-Agent first. body must be exactly the bytes req will send.
func Sign(req *http.Request, body []byte, ak, sk string, now time.Time) error {
	if ak == "" || sk == "" {
		return errors.New("sign request: access key and secret key are required")
	}
	req.Header.Del(HeaderAuthorization)
	date := now.UTC().Format(DateLayout)
	req.Header.Set(HeaderDate, date)
	if ct, ok := contentType(req.Header); ok && !signsPayload(ct) {
		req.Header.Set(HeaderContentSHA256, UnsignedPayload)
	}
	signed := signedHeaders(req.Header)
	sig, err := signature(req, payloadHash(req.Header, bodyHash(body)), signed, date, sk)
	if err != nil {
		return fmt.Errorf("sign request: %w", err)
	}
	req.Header.Set(HeaderAuthorization, fmt.Sprintf("%s Access=%s, SignedHeaders=%s, Signature=%s",
		Algorithm, ak, strings.Join(signed, ";"), sig))
	return nil
}

// signature returns hex(HMAC-SHA256(sk, string to sign)). payload is the
// canonical request's last line: the body's hex SHA-256 or UNSIGNED-PAYLOAD.
func signature(req *http.Request, payload string, signed []string, date, sk string) (string, error) {
	cr, err := canonicalRequest(req, payload, signed)
	if err != nil {
		return "", err
	}
	crHash := sha256.Sum256([]byte(cr))
	sts := Algorithm + "\n" + date + "\n" + hex.EncodeToString(crHash[:])
	mac := hmac.New(sha256.New, []byte(sk))
	mac.Write([]byte(sts))
	return hex.EncodeToString(mac.Sum(nil)), nil
}

func canonicalRequest(req *http.Request, payload string, signed []string) (string, error) {
	query, err := canonicalQuery(req.URL.RawQuery)
	if err != nil {
		return "", err
	}
	return strings.Join([]string{
		req.Method,
		canonicalURI(req.URL.Path),
		query,
		canonicalHeaders(req, signed),
		strings.Join(signed, ";"),
		payload,
	}, "\n"), nil
}

// canonicalURI escapes each segment of the decoded path and always ends in
// "/", even for "/v5/x/image/tasks" (the SDK's rule, not RFC 3986's).
func canonicalURI(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = escape(s)
	}
	uri := strings.Join(segs, "/")
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	return uri
}

// canonicalQuery sorts keys, then the values of each key, both unescaped,
// and joins escape(k)=escape(v) with "&". A key without "=" has value "".
func canonicalQuery(raw string) (string, error) {
	values, err := url.ParseQuery(raw)
	if err != nil {
		return "", fmt.Errorf("parse query: %w", err)
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(values)) {
		vs := slices.Clone(values[k])
		slices.Sort(vs)
		for _, v := range vs {
			parts = append(parts, escape(k)+"="+escape(v))
		}
	}
	return strings.Join(parts, "&"), nil
}

// canonicalHeaders writes "name:trimmed value\n" for every value of every
// signed header, values sorted. A server sees Host in req.Host, not in the
// header map, so "host" falls back to it.
func canonicalHeaders(req *http.Request, signed []string) string {
	var b strings.Builder
	for _, name := range signed {
		vs := headerValues(req.Header, name)
		if name == "host" && len(vs) == 0 && req.Host != "" {
			vs = []string{req.Host}
		}
		slices.Sort(vs)
		for _, v := range vs {
			b.WriteString(name)
			b.WriteByte(':')
			b.WriteString(strings.TrimSpace(v))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// headerValues collects the values of name under any spelling of the key:
// http.Header canonicalises keys set through its methods, but not keys
// assigned directly.
func headerValues(h http.Header, name string) []string {
	var vs []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			vs = append(vs, v...)
		}
	}
	return vs
}

// signedHeaders lists the header names the SDK signs: all of them, lower
// case, sorted, except those starting with "content-type" and those
// containing "_" (which some proxies drop).
func signedHeaders(h http.Header) []string {
	var names []string
	for k := range h {
		name := strings.ToLower(k)
		if strings.HasPrefix(name, "content-type") || strings.Contains(name, "_") {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// payloadHash is X-Sdk-Content-Sha256 when present (the SDK trusts it as
// given), else the body's hex SHA-256.
func payloadHash(h http.Header, bodySHA256 string) string {
	if vs := headerValues(h, HeaderContentSHA256); len(vs) > 0 {
		return vs[0]
	}
	return bodySHA256
}

func bodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

func contentType(h http.Header) (string, bool) {
	vs := headerValues(h, "Content-Type")
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// signsPayload reports whether the SDK hashes a body of this content type.
func signsPayload(ct string) bool {
	return strings.Contains(ct, "application/json") || strings.Contains(ct, "application/bson")
}

func shouldEscape(c byte) bool {
	return !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || c == '~' || c == '.')
}

// escape keeps A-Z a-z 0-9 _ - ~ . and writes every other byte as %XX.
func escape(s string) string {
	const hexUpper = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if shouldEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hexUpper[c>>4])
			b.WriteByte(hexUpper[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
