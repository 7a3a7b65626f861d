package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scanq/scanq/configs"
)

// A deployment's workers publish its estate in its Redis (PublishEstate):
// each target's name and what a CLI needs to start runs on it, never a
// credential. A CLI whose configuration lists no targets of its own takes
// them (AdoptEstate), so that `scanq enqueue --target cn` works against a
// serve or a fleet without repeating its configuration.

// estateKey holds the published estate, as JSON.
const estateKey = "scanq:estate"

// estateTTL is how long a published estate outlives the last process that
// published it: workers publish again every estateTTL/6 (RunWorker).
const estateTTL = time.Hour

// maxEstateTargets bounds the targets a CLI takes from a published estate.
const maxEstateTargets = 1000

// adoptedEndpoint is the endpoint of an adopted target: the client commands
// that adopt never call HSS, and .invalid never resolves (RFC 2606), so a
// call that should not happen fails at once. Deriving it from the region
// would refuse regions the SDK's list lacks; "embedded" would start an
// emulator per target.
const adoptedEndpoint = "https://hss.invalid"

// maxEstateBytes bounds what a CLI reads from estateKey: an estate of a
// thousand targets is well under it.
const maxEstateBytes = 1 << 20

// PublishedTarget is one target as the estate publishes it.
// Its endpoint is not published: a CLI that takes the estate never calls
// HSS, and an endpoint may carry a user and password.
type PublishedTarget struct {
	Name                string `json:"name"`
	ProjectID           string `json:"project_id"`
	Region              string `json:"region,omitempty"`
	EnterpriseProjectID string `json:"enterprise_project_id,omitempty"`
	MaxBatchSize        int    `json:"max_batch_size,omitempty"`
}

// PublishedEstate is what PublishEstate writes.
type PublishedEstate struct {
	Targets []PublishedTarget `json:"targets"`
	// By names the process that published it (host and pid), At when.
	By string    `json:"published_by"`
	At time.Time `json:"published_at"`
}

// Names are the estate's target names.
func (e *PublishedEstate) Names() []string {
	names := make([]string, len(e.Targets))
	for i, t := range e.Targets {
		names[i] = t.Name
	}
	return names
}

// PublishEstate records the estate this process runs in its Redis, for the
// CLI. The last process to start wins: a fleet runs one configuration.
func (a *App) PublishEstate(ctx context.Context) error {
	host, _ := os.Hostname()
	e := PublishedEstate{By: fmt.Sprintf("%s pid %d", host, os.Getpid()), At: time.Now().UTC().Truncate(time.Second)}
	for _, t := range a.Cfg.Estate() {
		e.Targets = append(e.Targets, PublishedTarget{Name: t.Name, ProjectID: t.ProjectID, Region: t.Region,
			EnterpriseProjectID: t.EnterpriseProjectID, MaxBatchSize: t.MaxBatchSize})
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := a.Redis.Client.Set(ctx, estateKey, data, estateTTL).Err(); err != nil {
		return fmt.Errorf("publishing the estate for the CLI: %w", err)
	}
	return nil
}

// keepEstatePublished publishes the estate again every estateTTL/6 until
// ctx is done, so that it lives as long as a worker runs it.
func (a *App) keepEstatePublished(ctx context.Context) {
	t := time.NewTicker(estateTTL / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.PublishEstate(ctx); err != nil && ctx.Err() == nil {
				a.Log.Warn("publishing the estate for the CLI", "err", err)
			}
		}
	}
}

// ReadEstate reads the estate published in the Redis rdb reaches; nil
// when none is. A record that is not an estate (too large, not JSON, no
// targets) is an error naming the key.
func ReadEstate(ctx context.Context, rdb redis.UniversalClient) (*PublishedEstate, error) {
	n, err := rdb.StrLen(ctx, estateKey).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the published estate (%s): %w", estateKey, err)
	}
	if n == 0 {
		return nil, nil
	}
	if n > maxEstateBytes {
		return nil, fmt.Errorf("the published estate (%s) is %d bytes, more than %d: not one scanq wrote", estateKey, n, maxEstateBytes)
	}
	data, err := rdb.Get(ctx, estateKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the published estate (%s): %w", estateKey, err)
	}
	var e PublishedEstate
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("the published estate (%s) is not one scanq wrote: %w", estateKey, err)
	}
	if len(e.Targets) == 0 || len(e.Targets) > maxEstateTargets {
		return nil, fmt.Errorf("the published estate (%s) has %d targets; scanq publishes 1 to %d", estateKey, len(e.Targets), maxEstateTargets)
	}
	return &e, nil
}

// AdoptEstate gives cfg, a CLI's configuration, the targets of the estate
// published in the Redis cfg reaches, when cfg lists none of its own (it
// has only the implicit target "default") and the estate's differ. The
// adopted targets keep every other key of cfg's hss section, as a listed
// target does, but not its endpoint (adoptedEndpoint): the CLI commands
// that take them never call HSS. It reports the estate adopted
// (nil: none, cfg unchanged). An estate that does not validate as targets
// is an error naming what is wrong.
func AdoptEstate(ctx context.Context, cfg *configs.Config) (*PublishedEstate, error) {
	if len(cfg.Targets) > 0 {
		return nil, nil
	}
	r, err := OpenRedis(cfg.Redis.URL, cfg.Redis.DialTimeout)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	e, err := ReadEstate(ctx, r.Client)
	if err != nil || e == nil || slices.Equal(e.Names(), cfg.TargetNames()) {
		return nil, err
	}
	adopted := *cfg
	adopted.Targets = make([]configs.TargetConfig, len(e.Targets))
	for i, t := range e.Targets {
		tc := configs.TargetConfig{Name: t.Name, ProjectID: t.ProjectID}
		if t.Region != "" {
			tc.Region = &t.Region
		}
		if t.EnterpriseProjectID != "" {
			tc.EnterpriseProjectID = &t.EnterpriseProjectID
		}
		tc.Endpoint = new(adoptedEndpoint)
		if t.MaxBatchSize > 0 {
			tc.MaxBatchSize = &t.MaxBatchSize
		}
		adopted.Targets[i] = tc
	}
	if err := adopted.Validate(); err != nil {
		return nil, fmt.Errorf("the estate published in Redis (%s, by %s): %w", estateKey, e.By, err)
	}
	*cfg = adopted
	return e, nil
}
