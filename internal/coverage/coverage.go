package coverage

import (
	"strconv"
	"time"
)

// Coverage is what is known of one target's registry: the figures of its
// last finished listing, with their times, and the refresh under way.
type Coverage struct {
	Target string `json:"target"`
	// State is "listed" once a listing finished, else "never".
	State string `json:"state"`
	// StartedAt is when the listing of the figures began: their scan ages
	// are as of then. ListedAt is when it ended, and AgeSeconds how long
	// ago that was when read.
	StartedAt  *time.Time `json:"started_at,omitempty"`
	ListedAt   *time.Time `json:"listed_at,omitempty"`
	AgeSeconds *float64   `json:"age_seconds,omitempty"`
	// Pages is the number of list calls the listing made; Truncated says
	// it stopped at the list API's largest offset, before the registry's
	// end.
	Pages     int      `json:"pages,omitempty"`
	Truncated bool     `json:"truncated,omitempty"`
	Figures   *Figures `json:"figures,omitempty"`
	// Refreshing is the listing under way, if any.
	Refreshing *Refresh `json:"refreshing,omitempty"`
	// LastError is why the last refresh failed, when it did and no
	// listing finished since.
	LastError *Failure `json:"last_error,omitempty"`
}

// Coverage states.
const (
	StateNever  = "never"
	StateListed = "listed"
)

// Refresh is a listing under way.
type Refresh struct {
	ID        int64     `json:"id"`
	StartedAt time.Time `json:"started_at"`
	Pages     int       `json:"pages"` // counted so far
}

// Failure is a refresh's failure.
type Failure struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// view builds a target's Coverage from its state hash and its published
// counts.
func view(target string, st, counts map[string]string, now time.Time) Coverage {
	c := Coverage{Target: target, State: StateNever}
	num := func(k string) int64 { n, _ := strconv.ParseInt(st[k], 10, 64); return n }
	at := func(k string) *time.Time {
		if st[k] == "" {
			return nil
		}
		t := time.UnixMilli(num(k)).UTC()
		return &t
	}
	if st["id"] != "" {
		c.State = StateListed
		c.StartedAt, c.ListedAt = at("started_at"), at("listed_at")
		age := max(now.Sub(*c.ListedAt), 0).Seconds()
		c.AgeSeconds = &age
		c.Pages, c.Truncated = int(num("pages")), st["truncated"] == "1"
		f := parseFields(counts)
		c.Figures = &f
	}
	if st["cur"] != "" {
		c.Refreshing = &Refresh{ID: num("cur"), StartedAt: *at("cur_at"), Pages: int(num("cur_pages"))}
	}
	if st["err"] != "" {
		c.LastError = &Failure{At: *at("err_at"), Message: st["err"]}
	}
	return c
}
