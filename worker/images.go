package worker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// aggregate is asynq's GroupAggregator: the scan:image tasks of one group
// (same target and scan params) become one scan:image-batch. The batch id is
// derived from its tickets, so each ticket can name the batch that carried it.
func aggregate(group string, tasks []*asynq.Task) *asynq.Task {
	b := jobs.ImageBatchPayload{}
	h := sha256.New()
	for _, t := range tasks {
		var p jobs.ImagePayload
		if json.Unmarshal(t.Payload(), &p) != nil {
			continue // undecodable: nothing to submit, nothing to settle
		}
		b.Params = p.Params
		b.Items = append(b.Items, p)
		h.Write([]byte(p.Ticket))
	}
	b.BatchID = "imgbatch-" + hex.EncodeToString(h.Sum(nil)[:8])
	data, _ := json.Marshal(b)
	return asynq.NewTask(jobs.TypeImageBatch, data)
}

// handleImage handles an ad-hoc image that reached a worker on its own
// (a server without the aggregator): a batch of one.
func (h *Handlers) handleImage(ctx context.Context, p jobs.ImagePayload) error {
	sum := sha256.Sum256([]byte(p.Ticket))
	return h.handleImageBatch(ctx, jobs.ImageBatchPayload{BatchID: "imgbatch-" + hex.EncodeToString(sum[:8]), Params: p.Params, Items: []jobs.ImagePayload{p}})
}

// handleImageBatch submits aggregated ad-hoc images, in calls no larger
// than one minute of their rate_limit budget, and settles each image's
// ticket with the outcome. Tickets already settled (a batch delivered twice)
// are not submitted again.
func (h *Handlers) handleImageBatch(ctx context.Context, b jobs.ImageBatchPayload) error {
	ids := make([]string, len(b.Items))
	for i, it := range b.Items {
		ids[i] = it.Ticket
	}
	states, err := h.runs.TicketStates(ctx, ids)
	if err != nil {
		return err
	}
	var pending []jobs.ImagePayload
	for i, it := range b.Items {
		if states[i] == jobs.TicketQueued {
			pending = append(pending, it)
		}
	}
	rate := 0
	if b.Params.RateLimit != nil {
		rate = int(*b.Params.RateLimit)
	}
	size := jobs.EffectiveBatchSize(len(pending), len(pending), 0, rate)
	log := h.log.With("batch", b.BatchID, "target", b.Params.TargetName())
	t, err := h.target(b.Params.Target)
	if err != nil {
		log.ErrorContext(ctx, "image batch failed", "err", err)
		_, serr := h.runs.SettleTickets(ctx, ids, b.BatchID, jobs.TicketFailed, runErr(b.BatchID, len(ids), err, h.now()))
		return cmp.Or(serr, fmt.Errorf("%w: %w", err, asynq.SkipRetry))
	}
	for _, items := range chunk(pending, max(size, 1)) {
		if err := h.waitImageLimits(ctx, t, b, rate, len(items)); err != nil {
			rest := b
			rest.Items = pendingFrom(pending, items)
			return later(err, rest)
		}
		infos := make([]hss.ImageInfo, len(items))
		tickets := make([]string, len(items))
		for i, it := range items {
			infos[i], tickets[i] = it.Image, it.Ticket
		}
		req := b.Params.Request(infos)
		err := t.HSS.CreateScanTask(ctx, t.scanTask(&req))
		if err == nil {
			if _, err := h.runs.SettleTickets(ctx, tickets, b.BatchID, jobs.TicketSubmitted, nil); err != nil {
				return err
			}
			continue
		}
		if h.submitFailed(ctx, log, t, "image batch", err, b.Failures) {
			return err
		}
		log.WarnContext(ctx, "image batch failed", "err", err)
		// This chunk is settled as failed; the others still go.
		if _, serr := h.runs.SettleTickets(ctx, tickets, b.BatchID, jobs.TicketFailed, runErr(b.BatchID, len(items), err, h.now())); serr != nil {
			return serr
		}
	}
	return nil
}

// pendingFrom returns the items of all from the first of chunk on.
func pendingFrom(all, chunk []jobs.ImagePayload) []jobs.ImagePayload {
	for i := range all {
		if all[i].Ticket == chunk[0].Ticket {
			return all[i:]
		}
	}
	return nil
}
