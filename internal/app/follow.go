package app

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/scanq/scanq/jobs"
)

// Follow polls run id every interval, calling fn with each reading, until
// the run is final or ctx is done.
func (a *App) Follow(ctx context.Context, id string, interval time.Duration, fn func(*jobs.Run)) (*jobs.Run, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r, err := a.Runs.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		fn(r)
		if r.State.Final() {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-t.C:
		}
	}
}

// Progress renders a run's progress: a bar redrawn in place on a terminal,
// a plain line at most every LineEvery otherwise.
type Progress struct {
	W          io.Writer
	TTY        bool
	LineEvery  time.Duration
	RatePeriod time.Duration
	Now        func() time.Time
	last       time.Time
	drawn      bool
}

// Update shows one reading.
func (p *Progress) Update(r *jobs.Run) {
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
	eta := r.ETA(now, p.RatePeriod).Round(time.Second)
	if p.TTY {
		const width = 30
		fill := 0
		if total > 0 {
			fill = int(min(done, total) * width / total)
		}
		fmt.Fprintf(p.W, "\r\033[K%s [%s%s] %d/%d images  %.1f img/s  ETA %s",
			r.State, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total, rate, eta)
		p.drawn = true
		return
	}
	if !r.State.Final() && !p.last.IsZero() && now.Sub(p.last) < p.LineEvery {
		return
	}
	p.last = now
	fmt.Fprintf(p.W, "run %s %s: %d/%d images done (%d submitted, %d skipped, %d failed), %.1f img/s, ETA %s\n",
		r.ID, r.State, done, total, c.ImagesSubmitted, c.Skipped(), c.ImagesFailed, rate, eta)
}

// Summary prints the end of a run.
func (p *Progress) Summary(r *jobs.Run) {
	if p.drawn {
		fmt.Fprintln(p.W)
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

// Summary is the --json shape of a finished run (DESIGN.md contract).
type Summary struct {
	RunID           string  `json:"run_id"`
	State           string  `json:"state"`
	ImagesTotal     int64   `json:"images_total"`
	ImagesSubmitted int64   `json:"images_submitted"`
	ImagesSkipped   int64   `json:"images_skipped"`
	ImagesFailed    int64   `json:"images_failed"`
	Batches         int64   `json:"batches"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Beyond the contract: the reasons, and the errors.
	SkippedBy map[string]int64 `json:"images_skipped_by_reason,omitempty"`
	Errors    []jobs.RunError  `json:"errors,omitempty"`
	// Resolution says how the query was resolved (widened, forwarded).
	Resolution *jobs.Resolution `json:"resolution,omitempty"`
}

// SummaryOf builds the --json summary of r.
func SummaryOf(r *jobs.Run) Summary {
	c := r.Counters
	return Summary{RunID: r.ID, State: string(r.State), ImagesTotal: c.ImagesTotal, ImagesSubmitted: c.ImagesSubmitted,
		ImagesSkipped: c.Skipped(), ImagesFailed: c.ImagesFailed, Batches: c.BatchesTotal,
		DurationSeconds: Duration(r).Seconds(), SkippedBy: c.ImagesSkipped, Errors: r.Errors, Resolution: r.Resolution}
}
