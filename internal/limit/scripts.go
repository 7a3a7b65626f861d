package limit

import "github.com/redis/go-redis/v9"

// The scripts share one shape: read the server clock in integer
// microseconds, decide, write only when allowing, and reply
// {allowed, retry_after_us, now_us}. A key's TTL is the time until its TAT,
// after which a missing key means the same as the stored one.
//
// GCRA step for a key holding TAT, an increment inc and a tolerance tol:
// tat' = max(tat, now) + inc; allowed iff tat' - tol <= now; else retry after
// tat' - tol - now.

// gcraScript: KEYS[1] the TAT key; ARGV inc, tol (µs).
var gcraScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local inc = tonumber(ARGV[1])
local tol = tonumber(ARGV[2])
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + inc
local wait = new - tol - now
if wait > 0 then
  return {0, wait, now}
end
redis.call("SET", KEYS[1], new, "PX", math.ceil((new - now) / 1000))
return {1, 0, now}
`)

// requestScript: KEYS rate, slow, throttle; ARGV inc, tol, slow_inc,
// slow_tol (µs; inc == 0: no rate limit, only the throttle block applies).
// The throttle hash has fields "until" (no request before) and "cool" (half
// rate before). Tokens are spent only when every key allows.
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

// throttleScript: KEYS[1] the throttle hash; ARGV block, cooldown (µs).
// Extends an existing throttle, never shortens it.
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

// reserveScript: KEYS[1] the TAT key; ARGV inc, tol, max_wait (µs). Like
// gcraScript, but a grant whose slot opens within max_wait is taken now for
// that future instant: {1, wait_us, now} says how long to wait for it.
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
