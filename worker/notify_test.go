package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/hss/hsstest"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// receiver is a webhook endpoint that fails its first answers.
type receiver struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	good      []worker.RunEvent
	badSig    int
	secret    string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.calls++
	if rc.calls <= rc.failFirst {
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	var sum worker.RunEvent
	if err := json.Unmarshal(body, &sum); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if err := worker.VerifySignature(rc.secret, r.Header.Get(worker.SignatureHeader), body, time.Now(), time.Minute); err != nil {
		rc.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	rc.good = append(rc.good, sum)
}

func TestWebhookGetsOneSignedSummaryPerRunEvenAfterA500(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		rc := &receiver{failFirst: 1, secret: "whsec-test"}
		srv := httptest.NewServer(rc)
		t.Cleanup(srv.Close)
		e := newEnv(t, b, envOpts{emu: hsstest.Options{Images: 30},
			webhook: worker.Webhook{URL: srv.URL + "/hooks/scanq", Secret: rc.secret, MaxRetry: 5}})
		var ids []string
		for range 2 {
			r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{BatchSize: 10})
			e.wait(r.ID, 10*time.Second)
			ids = append(ids, r.ID)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			rc.mu.Lock()
			n := len(rc.good)
			rc.mu.Unlock()
			if n >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("webhook got %d good deliveries of 2 (%d calls, %d bad signatures)", n, rc.calls, rc.badSig)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // a duplicate would show up by now
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if len(rc.good) != 2 || rc.badSig != 0 {
			t.Fatalf("%d deliveries, %d bad signatures", len(rc.good), rc.badSig)
		}
		got := map[string]worker.RunEvent{}
		for _, s := range rc.good {
			got[s.ID] = s
		}
		for _, id := range ids {
			s, ok := got[id]
			if !ok {
				t.Fatalf("no delivery for run %s", id)
			}
			c := s.Counters
			if s.State != jobs.StateSucceeded || c.ImagesSubmitted != 30 || s.Trigger.Kind != "cli" || s.Event != "run.finished" ||
				c.ImagesTotal != c.ImagesSubmitted+c.Skipped()+c.ImagesFailed || s.FinishedAt == nil {
				t.Fatalf("delivery %+v, counters %+v", s, c)
			}
		}
		if rc.calls < 3 {
			t.Fatalf("%d calls: the first 500 was not retried", rc.calls)
		}
	})
}

func TestWebhookDeliveryDoesNotBlockThePipeline(t *testing.T) {
	// A receiver that never answers 2xx: runs still finish.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(srv.Close)
	e := newEnv(t, redistest.Mini(t), envOpts{emu: hsstest.Options{Images: 20}, webhook: worker.Webhook{URL: srv.URL, Secret: "s", MaxRetry: 3}})
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{})
	if r = e.wait(r.ID, 10*time.Second); r.State != jobs.StateSucceeded {
		t.Fatal(r.State)
	}
}

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"run_id":"r"}`)
	good := worker.Sign("k", now, body)
	cases := []struct {
		name, secret, header string
		body                 []byte
		at                   time.Time
		ok                   bool
	}{
		{"good", "k", good, body, now, true},
		{"wrong secret", "other", good, body, now, false},
		{"tampered body", "k", good, []byte(`{"run_id":"x"}`), now, false},
		{"replayed later", "k", good, body, now.Add(10 * time.Minute), false},
		{"malformed", "k", "sha256=abc", body, now, false},
		{"bad timestamp", "k", "t=x,v1=00", body, now, false},
	}
	for _, c := range cases {
		err := worker.VerifySignature(c.secret, c.header, c.body, c.at, time.Minute)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// hookLog records what reached a webhook endpoint.
type hookLog struct {
	mu    sync.Mutex
	calls int
	sigs  []string
}

func (l *hookLog) handler(answer func(w http.ResponseWriter)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		l.mu.Lock()
		l.calls++
		l.sigs = append(l.sigs, r.Header.Get(worker.SignatureHeader))
		l.mu.Unlock()
		answer(w)
	})
}

func (l *hookLog) snapshot() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls, append([]string(nil), l.sigs...)
}

// deliverNow runs the notify task of a finished run in this goroutine, so
// the test sees the delivery's outcome itself.
func deliverNow(t *testing.T, e *env) error {
	t.Helper()
	r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{})
	e.wait(r.ID, 10*time.Second)
	task, err := jobs.NewNotifyTask(r.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e.h.Mux().ProcessTask(context.Background(), task)
}

// TestWebhookDoesNotFollowRedirects: a receiver that redirects elsewhere
// does not get the body and its signature re-posted to the other host; the
// delivery fails (and is retried) instead.
func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	var other hookLog
	elsewhere := httptest.NewServer(other.handler(func(w http.ResponseWriter) {}))
	t.Cleanup(elsewhere.Close)
	var first hookLog
	redirector := httptest.NewServer(first.handler(func(w http.ResponseWriter) {
		w.Header().Set("Location", elsewhere.URL+"/stolen")
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	e := newEnv(t, redistest.Mini(t), envOpts{emu: hsstest.Options{Images: 5},
		webhook: worker.Webhook{URL: redirector.URL + "/hook", Secret: "whsec", MaxRetry: 0}})
	err := deliverNow(t, e)
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Fatalf("delivery to a redirecting receiver: err = %v, want a failure naming the 307", err)
	}
	if n, _ := other.snapshot(); n != 0 {
		t.Fatalf("the redirect target got %d deliveries", n)
	}
	if n, _ := first.snapshot(); n == 0 {
		t.Fatal("the receiver was never called")
	}
}

// TestWebhookUnsignedWithoutSecret: with an empty webhook.secret no
// signature header is sent (an HMAC keyed with "" proves nothing).
func TestWebhookUnsignedWithoutSecret(t *testing.T) {
	var got hookLog
	srv := httptest.NewServer(got.handler(func(w http.ResponseWriter) {}))
	t.Cleanup(srv.Close)
	e := newEnv(t, redistest.Mini(t), envOpts{emu: hsstest.Options{Images: 5}, webhook: worker.Webhook{URL: srv.URL, MaxRetry: 0}})
	if err := deliverNow(t, e); err != nil {
		t.Fatal(err)
	}
	n, sigs := got.snapshot()
	if n == 0 {
		t.Fatal("no delivery")
	}
	for _, s := range sigs {
		if s != "" {
			t.Fatalf("unsigned webhook sent %s: %q", worker.SignatureHeader, s)
		}
	}
}
