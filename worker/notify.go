package worker

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// Webhook is where finished runs are reported. URL "" turns it off.
type Webhook struct {
	URL string
	// Secret is the HMAC-SHA256 key of the signature header; "" sends no
	// signature header at all.
	Secret string
	// MaxRetry is how often a failed delivery is retried, with backoff.
	MaxRetry int
	Client   *http.Client
}

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" keyed with the webhook secret>", and is sent only when a
// secret is configured. The timestamp is signed so a
// captured delivery cannot be replayed later as a new one.
const SignatureHeader = "X-Scanq-Signature"

// Sign computes the signature header value of body at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks a SignatureHeader value against body, as a
// webhook receiver does: the HMAC must match and its timestamp be within
// tolerance of now.
func VerifySignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, mac, ok := strings.Cut(header, ",v1=")
	ts, ok2 := strings.CutPrefix(ts, "t=")
	if !ok || !ok2 {
		return errors.New("webhook signature: malformed header")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhook signature: malformed timestamp")
	}
	at := time.Unix(sec, 0)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return errors.New("webhook signature: timestamp outside tolerance")
	}
	want := Sign(secret, at, body)
	if !hmac.Equal([]byte(want), []byte("t="+ts+",v1="+mac)) {
		return errors.New("webhook signature: mismatch")
	}
	return nil
}

// RunEvent is the body of a webhook delivery: the finished run in the one
// shape every output of scanq shows (jobs.RunView, as GET
// /api/v1/runs/{id} answers), and the event's name beside its fields.
type RunEvent struct {
	Event string `json:"event"` // jobs.EventFinished or jobs.EventVerified
	jobs.RunView
}

// Notify enqueues the webhook delivery of run id, once per run. It never
// blocks the pipeline: the delivery is a task of its own, retried with
// backoff while the receiver fails.
func (h *Handlers) Notify(ctx context.Context, id, target string) {
	h.notify(ctx, id, target, jobs.EventFinished)
}

// notify enqueues the webhook delivery of event of run id on target,
// once.
func (h *Handlers) notify(ctx context.Context, id, target, event string) {
	if h.webhook.URL == "" {
		return
	}
	t, err := jobs.NewNotifyTask(id, target, h.webhook.MaxRetry)
	if event == jobs.EventVerified {
		t, err = jobs.NewVerifiedNotifyTask(id, target, h.webhook.MaxRetry)
	}
	if err == nil {
		_, err = h.enq.EnqueueContext(ctx, t)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		h.log.WarnContext(ctx, "enqueueing the run's webhook", "run_id", id, "err", err)
	}
}

// handleNotify posts the finished run to the webhook; any answer but 2xx is
// retried with backoff.
func (h *Handlers) handleNotify(ctx context.Context, p jobs.NotifyPayload) error {
	if h.webhook.URL == "" {
		return nil
	}
	r, err := h.runs.Get(ctx, p.RunID)
	if errors.Is(err, runs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	body, err := json.Marshal(RunEvent{Event: cmp.Or(p.Event, jobs.EventFinished), RunView: jobs.NewRunView(r, h.now(), h.cfg.RatePeriod)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.webhook.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %v: %w", redactErr(err), asynq.SkipRetry)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "scanq-webhook")
	if h.webhook.Secret != "" { // an HMAC keyed with "" proves nothing
		req.Header.Set(SignatureHeader, Sign(h.webhook.Secret, h.now(), body))
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if h.webhook.Client != nil {
		c := *h.webhook.Client
		client = &c
	}
	// Redirects are never followed: following one re-posts the body and its
	// signature to wherever the receiver (or whoever took over its name)
	// points. A 3xx is a failed delivery, retried like any other.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook delivery of run %s: %v", r.ID, redactErr(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
			return fmt.Errorf("webhook delivery of run %s: receiver answered %d, a redirect, which is not followed: set webhook.url to the final URL", r.ID, resp.StatusCode)
		}
		return fmt.Errorf("webhook delivery of run %s: receiver answered %d", r.ID, resp.StatusCode)
	}
	h.log.InfoContext(ctx, "webhook delivered", "run_id", r.ID, "target", r.TargetName(), "state", r.State)
	return nil
}

// redactErr drops the URL that net/http errors repeat: webhook URLs often
// carry a token in their path or query.
func redactErr(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
