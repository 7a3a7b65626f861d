package limit

import "github.com/redis/go-redis/v9"

// The scripts read the server clock in integer microseconds, decide, and
// write only when granting. A key's TTL is the time until its TAT, after
// which a missing key means the same as the stored one.
//
// The GCRA step for a key holding the TAT, with an increment inc and a
// tolerance tol: tat' = max(tat, now) + inc; granted iff tat' - tol <= now,
// else the wait is tat' - tol - now.
//
// reserveScript and requestScript reply {granted, wait_us, now_us}, which
// decision reads.

// reserveScript takes a run's next slot for a batch of images, if it opens
// within max_wait (ReserveImages). With tol == inc the slot is
// max(tat, now): the batch goes once earlier ones are paid for.
//
// KEYS[1] -> the run's TAT key (images:<run>)
// ARGV[1] -> inc, µs
// ARGV[2] -> tol, µs
// ARGV[3] -> max_wait, µs
//
// Output: {1, wait_us, now_us} when the slot is reserved (it opens in
// wait_us, 0 if it is open); {0, wait_us, now_us} when it opens later than
// max_wait, and nothing was written.
var reserveScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local inc = tonumber(ARGV[1])
local tol = tonumber(ARGV[2])
local maxwait = tonumber(ARGV[3])
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + inc
local wait = new - tol - now
if wait > maxwait then
  return {0, wait, now}
end
if wait < 0 then wait = 0 end
redis.call("SET", KEYS[1], new, "PX", math.ceil((new - now) / 1000))
return {1, wait, now}
`)

// requestScript takes one request token of a target (AllowRequest,
// RequestStep). The throttle hash has fields "until" (no request before) and
// "cool" (half rate before). Tokens are spent only when every key allows.
//
// KEYS[1] -> the target's rate key (req:{<target>}:rate)
// KEYS[2] -> its half-rate key (req:{<target>}:slow)
// KEYS[3] -> its throttle hash (req:{<target>}:throttle)
// ARGV[1] -> inc, µs; 0: no rate limit, only the throttle block applies
// ARGV[2] -> tol, µs
// ARGV[3] -> slow_inc, µs (the half rate)
// ARGV[4] -> slow_tol, µs
//
// Output: {1, 0, now_us} when the token is taken; {0, wait_us, now_us} when
// not, nothing written.
var requestScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local th = redis.call("HMGET", KEYS[3], "until", "cool")
local blocked = th[1] and tonumber(th[1]) or 0
local cool = th[2] and tonumber(th[2]) or 0
if now < blocked then
  return {0, blocked - now, now}
end
local inc = tonumber(ARGV[1])
if inc == 0 then
  return {1, 0, now}
end
local function step(key, inc, tol)
  local tat = tonumber(redis.call("GET", key) or now)
  if tat < now then tat = now end
  local new = tat + inc
  return new, new - tol - now
end
local new, wait = step(KEYS[1], inc, tonumber(ARGV[2]))
local slow = nil
if now < cool then
  local w
  slow, w = step(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
  if w > wait then wait = w end
end
if wait > 0 then
  return {0, wait, now}
end
redis.call("SET", KEYS[1], new, "PX", math.ceil((new - now) / 1000))
if slow then
  redis.call("SET", KEYS[2], slow, "PX", math.ceil((slow - now) / 1000))
end
return {1, 0, now}
`)

// throttleScript records a 429 of a target (Throttled). It extends a
// throttle already recorded, never shortens it.
//
// KEYS[1] -> the target's throttle hash (req:{<target>}:throttle)
// ARGV[1] -> block, µs: no request before now + block
// ARGV[2] -> cooldown, µs: half rate for that long after the block
//
// Output: {until - now, cool - now} in µs, as recorded.
var throttleScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local th = redis.call("HMGET", KEYS[1], "until", "cool")
local blocked = now + tonumber(ARGV[1])
local cool = blocked + tonumber(ARGV[2])
if th[1] and tonumber(th[1]) > blocked then blocked = tonumber(th[1]) end
if th[2] and tonumber(th[2]) > cool then cool = tonumber(th[2]) end
redis.call("HSET", KEYS[1], "until", blocked, "cool", cool)
redis.call("PEXPIRE", KEYS[1], math.ceil((cool - now) / 1000))
return {blocked - now, cool - now}
`)
