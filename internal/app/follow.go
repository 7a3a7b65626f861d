package app

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/jobs"
)

// Follow reads run id every interval, calling fn with each reading, until
// the run is final, and its verification over when it asked for one, or
// ctx is done. A run that this process's own worker
// ends (`scanq scan`) is read again at once when it ends, so following adds
// no polling interval to its wall time; a run another process ends is seen
// at the next reading.
func (a *App) Follow(ctx context.Context, id string, interval time.Duration, fn func(*jobs.Run)) (*jobs.Run, error) {
	ended, stop := a.ends.wait(id)
	defer stop()
	t := time.NewTicker(interval)
	defer t.Stop()
	var last *jobs.Run
	for {
		r, err := a.Runs.Get(ctx, id)
		if err != nil && ctx.Err() != nil && last != nil {
			// Interrupted while reading: the last reading, as when
			// interrupted between two.
			return last, ctx.Err()
		}
		if err != nil {
			return nil, err
		}
		last = r
		fn(r)
		if r.State.Final() && (r.Verification == nil || r.Verification.Ended()) {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-t.C:
		case <-ended:
			ended = nil // read once more; a closed channel would spin
		}
	}
}

// runEnds tells the runs followed in this process that this process's
// worker ended them (worker.Deps.Finished). The zero value is ready.
type runEnds struct {
	mu      sync.Mutex
	waiters map[string][]chan struct{}
}

// wait returns a channel closed when run id ends in this process, and a
// function that stops waiting.
func (e *runEnds) wait(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.waiters == nil {
		e.waiters = map[string][]chan struct{}{}
	}
	e.waiters[id] = append(e.waiters[id], ch)
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		list := e.waiters[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(e.waiters, id)
		} else {
			e.waiters[id] = list
		}
	}
}

// ended wakes every follower of run id.
func (e *runEnds) ended(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.waiters[id] {
		close(c)
	}
	delete(e.waiters, id)
}

// Workers counts the worker processes (asynq servers with a live
// heartbeat) that fetch from queue.
func (a *App) Workers(queue string) (int, error) {
	servers, err := asynq.NewInspectorFromRedisClient(a.Redis.Client).Servers()
	if err != nil {
		return 0, fmt.Errorf("listing the workers: %w", err)
	}
	n := 0
	for _, s := range servers {
		if s.Queues[queue] > 0 && s.Status == "active" {
			n++
		}
	}
	return n, nil
}

// Progress renders a run's progress: a bar redrawn in place on a terminal,
// a plain line at most every LineEvery otherwise. Logs of the same process
// go through LogWriter, so that they never land on the bar's line.
type Progress struct {
	W          io.Writer
	TTY        bool
	LineEvery  time.Duration
	RatePeriod time.Duration
	Now        func() time.Time

	mu    sync.Mutex
	last  time.Time
	drawn bool
	bar   string // the bar as last drawn
}

// LogWriter is where the process's logs go while the progress is shown:
// on a terminal each log line clears the bar, takes its line, and the bar
// is drawn again below it.
func (p *Progress) LogWriter() io.Writer { return progressLog{p} }

type progressLog struct{ p *Progress }

func (l progressLog) Write(b []byte) (int, error) {
	p := l.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.drawn {
		return p.W.Write(b)
	}
	if _, err := io.WriteString(p.W, "\r\033[K"); err != nil {
		return 0, err
	}
	n, err := p.W.Write(b)
	if err != nil {
		return n, err
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		_, _ = io.WriteString(p.W, "\n")
	}
	_, err = io.WriteString(p.W, p.bar)
	return n, err
}

// Update shows one reading.
func (p *Progress) Update(r *jobs.Run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	c := r.Counters
	total := max(c.ImagesExpected, c.ImagesTotal)
	done := c.Done()
	rate := 0.0
	if r.StartedAt != nil {
		if el := now.Sub(*r.StartedAt).Seconds(); el > 0 {
			rate = float64(done) / el
		}
	}
	// Until the run knows its images there is no count to show, nor an
	// ETA: "0/0 images, ETA 0s" would say it is done.
	eta := ""
	if d := r.ETA(now, p.RatePeriod).Round(time.Second); d > 0 {
		eta = "  ETA " + d.String()
	}
	if l := r.Listing(); l != "" {
		eta += "  (" + l + ")"
	}
	if v := r.Verification; r.State.Final() && v != nil && !v.Ended() {
		// The run is over; its verification goes on.
		line := fmt.Sprintf("run %s %s, verifying: %d scanned, %d scan failed, %d not yet verified (round %d; rounds back off from verify.poll_min to verify.poll_max",
			r.ID, r.State, v.Scanned, v.ScanFailed, v.Unverified, v.Rounds)
		if v.Deadline != nil {
			line += ", until " + v.Deadline.Local().Format(time.TimeOnly) + " at most"
		}
		line += ")"
		if p.TTY {
			p.bar = "\r\033[K" + line
			fmt.Fprint(p.W, p.bar)
			p.drawn = true
		} else if p.last.IsZero() || now.Sub(p.last) >= p.LineEvery {
			p.last = now
			fmt.Fprintln(p.W, line)
		}
		return
	}
	if p.TTY {
		if total == 0 && !r.State.Final() {
			p.bar = fmt.Sprintf("\r\033[K%s: finding the run's images...", r.State)
		} else {
			const width = 30
			fill := 0
			if total > 0 {
				fill = int(min(done, total) * width / total)
			}
			p.bar = fmt.Sprintf("\r\033[K%s [%s%s] %d/%d images  %.1f img/s%s",
				r.State, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total, rate, eta)
		}
		fmt.Fprint(p.W, p.bar)
		p.drawn = true
		return
	}
	if !r.State.Final() && !p.last.IsZero() && now.Sub(p.last) < p.LineEvery {
		return
	}
	p.last = now
	if total == 0 && !r.State.Final() {
		fmt.Fprintf(p.W, "run %s %s: finding its images\n", r.ID, r.State)
		return
	}
	fmt.Fprintf(p.W, "run %s %s: %d/%d images done (%d submitted, %d skipped, %d failed), %.1f img/s%s\n",
		r.ID, r.State, done, total, c.ImagesSubmitted, c.Skipped(), c.ImagesFailed, rate, strings.Replace(eta, "  ETA", ", ETA", 1))
}

// Break ends a bar drawn in place, so that what is printed next starts on
// a line of its own.
func (p *Progress) Break() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.W)
		p.drawn = false
	}
}

// Summary prints the end of a run.
func (p *Progress) Summary(r *jobs.Run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.W)
		p.drawn = false
	}
	c := r.Counters
	fmt.Fprintf(p.W, "run %s %s in %s\n", r.ID, r.State, Duration(r).Round(time.Millisecond))
	if r.Resolution != nil {
		fmt.Fprintf(p.W, "  resolution: %s\n", r.Resolution)
	}
	fmt.Fprintf(p.W, "  images: %d total, %d submitted, %d skipped, %d failed\n", c.ImagesTotal, c.ImagesSubmitted, c.Skipped(), c.ImagesFailed)
	for reason, n := range c.ImagesSkipped {
		if n > 0 {
			fmt.Fprintf(p.W, "    skipped %s: %d\n", reason, n)
		}
	}
	fmt.Fprintf(p.W, "  batches: %d total, %d submitted, %d failed, %d skipped (batch size %d)\n",
		c.BatchesTotal, c.BatchesSubmitted, c.BatchesFailed, c.BatchesSkipped, r.BatchSize)
	if r.Drift != nil {
		fmt.Fprintf(p.W, "  listing: %s\n", r.Drift)
	}
	PrintVerification(p.W, "  ", r.Verification)
	if r.Options.DryRun {
		if d := r.ExpectedDuration(c.ImagesSkipped[jobs.SkipDryRun], p.RatePeriod); d > 0 {
			fmt.Fprintf(p.W, "  dry run: submitting would take about %s at rate_limit %d/h\n", d.Round(time.Second), r.Request.ImagesPerHour())
		} else {
			fmt.Fprintln(p.W, "  dry run: nothing was submitted")
		}
	}
	if r.StopReason != "" {
		fmt.Fprintf(p.W, "  stopped: %s\n", r.StopReason)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(p.W, "  error: %s %d %s: %s (request id %s)\n", e.Batch, e.Status, e.Code, e.Message, e.RequestID)
	}
}

func (p *Progress) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Duration is how long a run ran (so far).
func Duration(r *jobs.Run) time.Duration {
	if r.StartedAt == nil {
		return 0
	}
	end := time.Now()
	if r.FinishedAt != nil {
		end = *r.FinishedAt
	}
	return end.Sub(*r.StartedAt)
}

// PrintVerification prints a run's verification, each line after indent:
// its figures, then its failures by reason.
func PrintVerification(w io.Writer, indent string, v *jobs.Verification) {
	if v == nil {
		return
	}
	fmt.Fprintf(w, "%sverification: %s", indent, v)
	switch {
	case v.Rounds == 1:
		fmt.Fprint(w, ", 1 round")
	case v.Rounds > 1:
		fmt.Fprintf(w, ", %d rounds", v.Rounds)
	}
	if v.EndedAt != nil {
		fmt.Fprintf(w, ", ended %s", v.EndedAt.Format(time.RFC3339))
	} else if v.Deadline != nil {
		fmt.Fprintf(w, ", until %s at most", v.Deadline.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	for _, f := range v.Failures {
		why := f.Code + " (" + f.Desc + ")"
		switch {
		case f.Desc == "":
			why = f.Code
		case f.Code == "":
			why = f.Desc
		}
		fmt.Fprintf(w, "%s  scan failed, %s: %d\n", indent, why, f.Images)
	}
}
