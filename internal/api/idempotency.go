package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// idempotency remembers Idempotency-Keys in Redis: key -> "hash run_id",
// claimed with SET NX so that of two concurrent requests with one key
// exactly one starts a run. The run id is chosen before the claim, so the
// loser learns it at once.
type idempotency struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// idemRecord is what a claimed key maps to.
type idemRecord struct {
	Hash  string // sha256 of the canonical request
	RunID string
}

// redisKey hashes the client's key: it is arbitrary client text, and may be
// long.
func (s *idempotency) redisKey(scope, key string) string {
	sum := sha256.Sum256([]byte(key))
	return s.prefix + scope + ":" + hex.EncodeToString(sum[:])
}

// claimFor stores key -> (hash, runID) for ttl unless key is taken, and
// returns the record that holds it when it is.
func (s *idempotency) claimFor(ctx context.Context, scope, key, hash, runID string, ttl time.Duration) (*idemRecord, error) {
	k := s.redisKey(scope, key)
	// The loop only repeats when the holder expired between SET NX and GET.
	for range 3 {
		ok, err := s.rdb.SetNX(ctx, k, hash+" "+runID, ttl).Result()
		if err != nil {
			return nil, fmt.Errorf("claiming idempotency key: %w", err)
		}
		if ok {
			return nil, nil
		}
		v, err := s.rdb.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading idempotency key: %w", err)
		}
		h, id, _ := strings.Cut(v, " ")
		return &idemRecord{Hash: h, RunID: id}, nil
	}
	return nil, errors.New("claiming idempotency key: it keeps expiring")
}

// release frees a key this request claimed, when its run could not start.
func (s *idempotency) release(ctx context.Context, scope, key, hash, runID string) error {
	return releaseScript.Run(context.WithoutCancel(ctx), s.rdb, []string{s.redisKey(scope, key)}, hash+" "+runID).Err()
}

var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`)
