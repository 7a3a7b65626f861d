package scheduler

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Leader election. One key holds the lease: SET NX PX with this instance's
// token, renewed every lease/3 by a compare-and-pexpire script and deleted
// by compare-and-del on shutdown. A second key, "covered", remembers until
// when some leader was responsible for firing (its lease's expiry, or the
// moment it let go). A new leader reads it when it takes over: ticks up to
// that time fell in a predecessor's lease (a leader died, or paused), and
// are fired late, each once; ticks after it fell in a time no scheduler held
// the lease, and are misfires (see Scheduler.runSchedule).

// term is one continuous period of leadership.
type term struct {
	prev  time.Time // the previous leaders' "covered" time when this term began
	start time.Time // when this term began
}

var acquireScript = redis.NewScript(`
local cur = redis.call("GET", KEYS[1])
if cur and cur ~= ARGV[1] then
  return {0, tostring(redis.call("PTTL", KEYS[1]))}
end
local prev = redis.call("GET", KEYS[2]) or "0"
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
local upto = tonumber(ARGV[3]) + tonumber(ARGV[2])
if upto > tonumber(prev) then redis.call("SET", KEYS[2], tostring(upto)) end
return {1, prev}`)

var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("PEXPIRE", KEYS[1], ARGV[2])
local upto = tonumber(ARGV[3]) + tonumber(ARGV[2])
if upto > tonumber(redis.call("GET", KEYS[2]) or "0") then redis.call("SET", KEYS[2], tostring(upto)) end
return 1`)

var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("DEL", KEYS[1])
redis.call("SET", KEYS[2], ARGV[2])
return 1`)

func (s *Scheduler) leaseKeys() []string { return []string{s.leaseKey(), s.coveredKey()} }

// acquire tries to take the lease at now. When another instance holds it,
// wait says how long its lease still runs (0 when unknown).
func (s *Scheduler) acquire(ctx context.Context, now time.Time) (ok bool, prev time.Time, wait time.Duration, err error) {
	res, err := acquireScript.Run(ctx, s.rdb, s.leaseKeys(), s.token, s.lease.Milliseconds(), now.UnixMilli()).Slice()
	if err != nil {
		return false, time.Time{}, 0, err
	}
	if len(res) != 2 {
		return false, time.Time{}, 0, errors.New("acquire: unexpected reply")
	}
	got, _ := res[0].(int64)
	val, _ := res[1].(string)
	n, _ := strconv.ParseInt(val, 10, 64)
	if got != 1 {
		return false, time.Time{}, time.Duration(max(n, 0)) * time.Millisecond, nil
	}
	if n > 0 {
		prev = time.UnixMilli(n)
	}
	return true, prev, 0, nil
}

func (s *Scheduler) renew(ctx context.Context, now time.Time) (bool, error) {
	n, err := renewScript.Run(ctx, s.rdb, s.leaseKeys(), s.token, s.lease.Milliseconds(), now.UnixMilli()).Int()
	return n == 1, err
}

func (s *Scheduler) release(ctx context.Context) error {
	return releaseScript.Run(ctx, s.rdb, s.leaseKeys(), s.token, s.clock.Now().UnixMilli()).Err()
}

// elect holds or seeks the lease until ctx ends, then lets go of it.
func (s *Scheduler) elect(ctx context.Context) {
	every := s.lease / 3
	defer func() {
		if !s.holding() || s.noRelease {
			return
		}
		s.lose("shutting down")
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := s.release(rctx); err != nil {
			s.log.Warn("could not release the leader lease; another replica takes over when it expires", "err", err, "lease", s.lease)
		}
	}()
	for {
		now := s.clock.Now()
		wait := every
		if s.holding() {
			ok, err := s.renew(ctx, now)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				if !s.leading(s.clock.Now()) {
					s.lose("lease could not be renewed: " + err.Error())
				} else {
					s.log.Warn("renewing the leader lease", "err", err)
				}
				wait = every / 2
			case !ok:
				s.lose("lease expired and was taken by another instance")
				wait = 0
			default:
				s.extend(now)
			}
		} else {
			ok, prev, held, err := s.acquire(ctx, now)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				s.log.Warn("trying to take the leader lease", "err", err)
			case ok:
				s.gain(now, prev)
			default:
				// Come back just after the holder's lease would run out,
				// so that failover costs little more than the lease, and
				// at least every second, so that a lease released by a
				// leader that shut down is taken over at once.
				wait = min(max(held+2*time.Millisecond, 2*time.Millisecond), every, time.Second)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.clock.At(now.Add(wait)):
		}
	}
}

// validity is how long after sending a successful acquire or renew this
// instance still counts itself leader. It is shorter than the lease so that
// a leader stops firing before Redis can hand the lease to someone else.
func (s *Scheduler) validity() time.Duration { return s.lease * 9 / 10 }

func (s *Scheduler) gain(now, prev time.Time) {
	s.mu.Lock()
	s.held = true
	s.validUntil = now.Add(s.validity())
	s.term = term{prev: prev, start: now}
	s.mu.Unlock()
	if prev.IsZero() {
		s.log.Info("became leader", "instance", s.token)
	} else {
		s.log.Info("became leader", "instance", s.token, "predecessors_covered_until", prev)
	}
	s.metrics.Leader(true)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) extend(now time.Time) {
	s.mu.Lock()
	s.validUntil = now.Add(s.validity())
	s.mu.Unlock()
}

func (s *Scheduler) lose(why string) {
	s.mu.Lock()
	was := s.held
	s.held = false
	s.mu.Unlock()
	if was {
		s.log.Warn("no longer leader", "instance", s.token, "reason", why)
		s.metrics.Leader(false)
	}
}

func (s *Scheduler) holding() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// currentTerm reports whether this instance may fire at now, and in which
// term.
func (s *Scheduler) currentTerm(now time.Time) (term, bool) {
	if s.forced != nil {
		return *s.forced, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.term, s.held && now.Before(s.validUntil)
}

func (s *Scheduler) leading(now time.Time) bool {
	_, ok := s.currentTerm(now)
	return ok
}
