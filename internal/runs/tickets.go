package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// Tickets: each image added ad hoc gets a ticket, kept for the retention,
// that says which batch carried it and how that ended.

func (s *Store) ticketKey(id string) string { return s.prefix + "image:{" + id + "}" }

// ErrTicketNotFound is returned for an unknown or expired ticket.
var ErrTicketNotFound = errors.New("image ticket not found")

func (s *Store) putTicket(ctx context.Context, t *jobs.ImageTicket) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return s.rdb.Set(ctx, s.ticketKey(t.Ticket), b, s.retention).Err()
}

// Ticket reads ticket id.
func (s *Store) Ticket(ctx context.Context, id string) (*jobs.ImageTicket, error) {
	b, err := s.rdb.Get(ctx, s.ticketKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ticket %s: %w", id, ErrTicketNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading ticket %s: %w", id, err)
	}
	var t jobs.ImageTicket
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("ticket %s: corrupt record: %w", id, err)
	}
	return &t, nil
}

// SettleTickets records the outcome of a batch for each of its tickets
// still queued; tickets already settled (a batch that runs twice) are left
// alone. It returns how many it settled.
func (s *Store) SettleTickets(ctx context.Context, ids []string, batchID, state string, e *jobs.RunError) (int, error) {
	n := 0
	for _, id := range ids {
		t, err := s.Ticket(ctx, id)
		if errors.Is(err, ErrTicketNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if t.State != jobs.TicketQueued {
			continue
		}
		t.State, t.BatchID, t.Error, t.UpdatedAt = state, batchID, e, s.now().UTC()
		if err := s.putTicket(ctx, t); err != nil {
			return n, fmt.Errorf("settling ticket %s: %w", id, err)
		}
		n++
	}
	return n, nil
}

// TicketStates returns the state of each ticket ("" when unknown).
func (s *Store) TicketStates(ctx context.Context, ids []string) ([]string, error) {
	out := make([]string, len(ids))
	for i, id := range ids {
		t, err := s.Ticket(ctx, id)
		if errors.Is(err, ErrTicketNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[i] = t.State
	}
	return out, nil
}

// AddImage validates one image and its scan params like the API does,
// records a ticket and enqueues it; asynq aggregates it with the other
// images of the same params into one call.
func (s *Starter) AddImage(ctx context.Context, img hss.ImageInfo, p jobs.ImageParams) (*jobs.ImageTicket, error) {
	target, err := s.Target(p.Target)
	if err != nil {
		return nil, err
	}
	p.Target = target.Name
	req := p.Request([]hss.ImageInfo{img})
	if err := req.Validate(); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	t := &jobs.ImageTicket{Ticket: "img-" + NewID(now), Image: img, Params: p, State: jobs.TicketQueued, CreatedAt: now, UpdatedAt: now}
	if err := s.Store.putTicket(ctx, t); err != nil {
		return nil, fmt.Errorf("recording image ticket: %w", err)
	}
	task, err := jobs.NewImageTask(jobs.ImagePayload{Ticket: t.Ticket, Image: img, Params: p}, jobs.QueueCritical)
	if err == nil {
		_, err = s.Client.EnqueueContext(ctx, task)
	}
	if err != nil {
		return nil, fmt.Errorf("enqueueing image %s: %w", t.Ticket, err)
	}
	return t, nil
}
