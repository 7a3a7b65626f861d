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

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
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
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 30},
			webhook: worker.Webhook{URL: srv.URL + "/hooks/scanq", Secret: rc.secret, MaxRetry: 5}})
		var ids []string
		for range 2 {
			r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{BatchSize: 10})
			e.wait(r.ID, 10*time.Second)
			ids = append(ids, r.ID)
		}
		// Once each run's webhook task is completed (kept, so a second
		// enqueue of it is refused), no delivery of it can come.
		for _, id := range ids {
			testkit.Eventually(t, 20*time.Second, func() bool { return e.taskState(jobs.QueueDefault, jobs.NotifyTaskID(id)) == asynq.TaskStateCompleted },
				"the webhook task of run %s to complete", id)
		}
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

// heldReceiver is a webhook endpoint that holds every delivery until
// released, and says which run each is for as it arrives.
type heldReceiver struct {
	arrived chan string
	release chan struct{}
}

func (h *heldReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev worker.RunEvent
	_ = json.NewDecoder(r.Body).Decode(&ev)
	h.arrived <- ev.ID
	select {
	case <-h.release:
	case <-r.Context().Done():
	}
}

// TestWebhookDeliveryDoesNotBlockThePipeline: while the receiver holds a
// run's delivery, the task that finished the run is done (the delivery is
// a task of its own), and the next run goes from start to end.
func TestWebhookDeliveryDoesNotBlockThePipeline(t *testing.T) {
	h := &heldReceiver{arrived: make(chan string, 10), release: make(chan struct{})}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	// No client timeout: a delivery is held for as long as the receiver
	// holds it.
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 20},
		webhook: worker.Webhook{URL: srv.URL, Secret: "s", MaxRetry: 3, Client: &http.Client{}}})
	var once sync.Once
	release := func() { once.Do(func() { close(h.release) }) }
	t.Cleanup(release) // before the worker shuts down

	held := func(want string) {
		t.Helper()
		select {
		case id := <-h.arrived:
			if id != want {
				t.Fatalf("delivery for run %s, want %s", id, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no delivery for run %s", want)
		}
	}
	opts := jobs.Options{Priority: jobs.QueueCritical} // the webhook's queue is another
	r1 := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, opts)
	if r := e.wait(r1.ID, 10*time.Second); r.State != jobs.StateSucceeded {
		t.Fatal(r.State)
	}
	held(r1.ID)
	// The receiver holds run 1's delivery now.
	testkit.Eventually(t, 10*time.Second, func() bool { return e.drained(r1.Queue) },
		"every task of run 1 to be done while its webhook is held")
	if st := e.taskState(jobs.QueueDefault, jobs.NotifyTaskID(r1.ID)); st != asynq.TaskStateActive {
		t.Fatalf("run 1's webhook task is %v while the receiver holds it, want active", st)
	}
	r2 := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, opts)
	if r := e.wait(r2.ID, 10*time.Second); r.State != jobs.StateSucceeded {
		t.Fatalf("run 2 while run 1's webhook is held: %s", r.State)
	}
	held(r2.ID)
	release()
	for _, id := range []string{r1.ID, r2.ID} {
		testkit.Eventually(t, 10*time.Second, func() bool { return e.taskState(jobs.QueueDefault, jobs.NotifyTaskID(id)) == asynq.TaskStateCompleted },
			"the webhook task of run %s to complete once released", id)
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
	task, err := jobs.NewNotifyTask(r.ID, r.Target, 0)
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
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 5},
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
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 5}, webhook: worker.Webhook{URL: srv.URL, MaxRetry: 0}})
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

// TestRunLinesNameTheirTarget: on a target other than the default, every
// log line of a run (start, pages, batches, end, verification) names the
// target, and the run's webhook goes on that target's default queue, so
// that a slow receiver holds only that target's slots.
func TestRunLinesNameTheirTarget(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		var logs testkit.Buffer
		rc := &receiver{secret: "whsec-t1"}
		srv := httptest.NewServer(rc)
		t.Cleanup(srv.Close)
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 120, ScanDelay: 50 * time.Millisecond}, log: &logs,
			cfg:     worker.Config{VerifyPollMin: 20 * time.Millisecond, VerifyPollMax: 50 * time.Millisecond, VerifyTimeout: time.Minute},
			target:  worker.Target{Name: "t1", RequestRate: 200, RequestBurst: 20},
			webhook: worker.Webhook{URL: srv.URL, Secret: rc.secret, MaxRetry: 3}})
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{Target: "t1", Verify: true, BatchSize: 50})
		e.wait(r.ID, 20*time.Second)
		e.waitVerified(r.ID, 20*time.Second)
		testkit.Eventually(t, 20*time.Second, func() bool {
			return e.taskState(jobs.TaskQueue(jobs.QueueDefault, "t1"), jobs.NotifyTaskID(r.ID)) == asynq.TaskStateCompleted
		}, "the webhook task on queue %s", jobs.TaskQueue(jobs.QueueDefault, "t1"))
		lines, named := 0, map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			if rec["run_id"] != r.ID {
				continue
			}
			lines++
			if rec["target"] != "t1" {
				t.Errorf("a line of run %s does not name its target: %s", r.ID, line)
			}
			named[rec["msg"].(string)] = true
		}
		for _, msg := range []string{"run started", "run finished", "verification begun", "verification ended"} {
			if !named[msg] {
				t.Errorf("no %q line among the run's %d: %v", msg, lines, named)
			}
		}
	})
}
