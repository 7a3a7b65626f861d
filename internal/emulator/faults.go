package emulator

import (
	"encoding/json"
	"fmt"
	"github.com/scanq/scanq/internal/hss"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Faults are injected into API calls (never into /emulator routes) before
// authentication and validation, as a gateway or backend fault would be.
type Faults struct {
	// FailRate is the fraction of API calls answered with a 5xx.
	FailRate float64
	// ThrottleRate is the fraction answered with 429 APIGW.0308.
	ThrottleRate float64
	// Latency delays every API response.
	Latency time.Duration
}

// Validate checks that the rates are fractions that add up to at most 1.
func (f Faults) Validate() error {
	switch {
	case !(f.FailRate >= 0 && f.FailRate <= 1):
		return fmt.Errorf("fail_rate %v is outside 0..1", f.FailRate)
	case !(f.ThrottleRate >= 0 && f.ThrottleRate <= 1):
		return fmt.Errorf("throttle_rate %v is outside 0..1", f.ThrottleRate)
	case f.FailRate+f.ThrottleRate > 1:
		return fmt.Errorf("fail_rate + throttle_rate %v exceeds 1", f.FailRate+f.ThrottleRate)
	case f.Latency < 0:
		return fmt.Errorf("latency %s is negative", f.Latency)
	}
	return nil
}

type faultsJSON struct {
	FailRate     float64 `json:"fail_rate"`
	ThrottleRate float64 `json:"throttle_rate"`
	Latency      string  `json:"latency"`
}

// MarshalJSON writes Latency as a Go duration string ("250ms").
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{f.FailRate, f.ThrottleRate, f.Latency.String()})
}

// injected is one fault to answer with.
type injected struct {
	status int
	code   string
	msg    string
}

// serverFaults are what FailRate draws from: a backend error and the
// gateway's two upstream failures.
var serverFaults = []injected{
	{http.StatusInternalServerError, "HSS.1000", "System error."},
	{http.StatusBadGateway, "APIGW.0202", "Backend unavailable."},
	{http.StatusGatewayTimeout, "APIGW.0203", "Backend timeout."},
}

// defaultMessages fill in error_msg for FailNext.
var defaultMessages = map[string]string{
	"APIGW.0301": hss.MsgBadSignature,
	"APIGW.0308": "", // built from the rate
	"APIGW.0202": "Backend unavailable.",
	"APIGW.0203": "Backend timeout.",
	"APIGW.0201": "Request entity too large.",
	"HSS.0001":   "Invalid parameter.",
	"HSS.0002":   "Failed to parse the request.",
	"HSS.0010":   "Access denied.",
	"HSS.0011":   "Resource not found.",
	"HSS.0013":   "Insufficient permissions.",
	"HSS.1000":   "System error.",
	"HSS.1002":   "Insufficient quota.",
}

func defaultCode(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "APIGW.0308"
	case status == http.StatusUnauthorized:
		return "APIGW.0301"
	case status == http.StatusRequestEntityTooLarge:
		return "APIGW.0201"
	case status >= 500:
		return "HSS.1000"
	}
	return "HSS.0001"
}

// throttleMessage is the gateway's 429 text.
func throttleMessage(limit float64) string {
	return "The throttling threshold has been reached: policy user over ratelimit,limit:" +
		strconv.FormatFloat(limit, 'f', -1, 64) + ",time:1 second"
}

// defaultThrottleLimit is the limit a ThrottleRate 429 reports when no
// APIRate is configured.
const defaultThrottleLimit = 50

// faultState is the runtime-adjustable fault configuration with its
// deterministic random source.
type faultState struct {
	mu       sync.Mutex
	f        Faults
	rng      *rand.Rand
	failNext []injected // consumed front first
	apiRate  float64
	bucket   tokenBucket
}

func newFaultState(seed int64, f Faults, apiRate float64) *faultState {
	return &faultState{
		f:       f,
		rng:     rand.New(rand.NewPCG(uint64(seed), 0x68737374)), // "hsst"
		apiRate: apiRate,
		bucket:  newTokenBucket(apiRate),
	}
}

func (s *faultState) set(f Faults) {
	s.mu.Lock()
	s.f = f
	s.mu.Unlock()
}

func (s *faultState) get() (Faults, float64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f, s.apiRate, len(s.failNext)
}

func (s *faultState) setAPIRate(r float64) {
	s.mu.Lock()
	s.apiRate = r
	s.bucket = newTokenBucket(r)
	s.mu.Unlock()
}

func (s *faultState) addFailNext(k, status int, code string) {
	if code == "" {
		code = defaultCode(status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := defaultMessages[code]
	if code == "APIGW.0308" {
		msg = throttleMessage(s.limitLocked())
	}
	if msg == "" {
		msg = "Injected fault."
	}
	for range k {
		s.failNext = append(s.failNext, injected{status, code, msg})
	}
}

func (s *faultState) limitLocked() float64 {
	if s.apiRate > 0 {
		return s.apiRate
	}
	return defaultThrottleLimit
}

// take returns the fault for this call, if any, and the latency to add.
func (s *faultState) take() (inj injected, ok bool, latency time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	latency = s.f.Latency
	if len(s.failNext) > 0 {
		inj, s.failNext = s.failNext[0], s.failNext[1:]
		return inj, true, latency
	}
	if s.f.FailRate <= 0 && s.f.ThrottleRate <= 0 {
		return inj, false, latency
	}
	u := s.rng.Float64()
	switch {
	case u < s.f.FailRate:
		return serverFaults[s.rng.IntN(len(serverFaults))], true, latency
	case u < s.f.FailRate+s.f.ThrottleRate:
		return injected{http.StatusTooManyRequests, "APIGW.0308", throttleMessage(s.limitLocked())}, true, latency
	}
	return inj, false, latency
}

// allow applies the API request rate; it returns the limit when refused.
func (s *faultState) allow(now time.Time) (limit float64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apiRate <= 0 {
		return 0, true
	}
	return s.apiRate, s.bucket.allow(now)
}

// tokenBucket is a request-rate limiter on the emulator's clock (so tests
// can drive it with a fake Now). Its burst is the rate rounded up: the
// gateway counts requests per second.
type tokenBucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64) tokenBucket {
	burst := math.Max(1, math.Ceil(rate))
	return tokenBucket{rate: rate, burst: burst, tokens: burst}
}

func (b *tokenBucket) allow(now time.Time) bool {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
