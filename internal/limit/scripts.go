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
// reserveScript replies {granted, wait_us, now_us} and requestScript
// {granted, wait_us, now_us, throttled}, which decision reads.

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
// Request, RequestStep). The throttle hash has fields "until" (no request
// before) and "cool" (half rate before). Tokens are spent only when every
// key allows.
//
// A caller with a waiter id joins the target's queue of waiters, a sorted
// set whose score is priority·2^40 + tag, and only the first waiter may
// take a token: the next token goes to the most urgent priority, and within
// it to runs in turn (start-time fair queueing). A waiter's tag is one more
// than the larger of v, the tag of the last grant, and the last tag its run
// was given; so a run that starts while another has many waiters queued
// takes the next turn but one, whatever the other's number. The state hash
// holds "v", "r:<run>" (the run's last tag while it has waiters) and
// "d:<waiter>" (the waiter's deadline: a waiter that stops asking, it
// crashed, is dropped once it is first and past it). A waiter asking again
// keeps its place. The first waiter reserves the next token once it opens
// within one increment: it is granted with the wait until then, so tokens
// follow each other exactly, however late the waiters ask.
//
// KEYS[1] -> the target's rate key (req:{<target>}:rate)
// KEYS[2] -> its half-rate key (req:{<target>}:slow)
// KEYS[3] -> its throttle hash (req:{<target>}:throttle)
// KEYS[4] -> its waiters (req:{<target>}:queue)
// KEYS[5] -> its queue state hash (req:{<target>}:fair)
// ARGV[1] -> inc, µs; 0: no rate limit, only the throttle block applies
// ARGV[2] -> tol, µs
// ARGV[3] -> slow_inc, µs (the half rate)
// ARGV[4] -> slow_tol, µs
// ARGV[5] -> waiter id; "": no place in the queue, and a token only when
//
//	no waiter is queued
//
// ARGV[6] -> the waiter's run
// ARGV[7] -> the waiter's priority, 0 first
// ARGV[8] -> lease, µs: how long past its wait a waiter keeps its place
//
//	without asking again
//
// Output: {1, wait_us, now_us, 0} when the token is taken (wait_us > 0 only
// for a waiter: its token opens then); {0, wait_us, now_us, throttled} when
// not (throttled 1: the target is blocked after a 429, and
// the waiter left the queue), nothing written but the waiter's place.
var requestScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local id = ARGV[5]
local th = redis.call("HMGET", KEYS[3], "until", "cool")
local blocked = th[1] and tonumber(th[1]) or 0
local cool = th[2] and tonumber(th[2]) or 0
if now < blocked then
  return {0, blocked - now, now, 1}
end
local inc = tonumber(ARGV[1])
if inc == 0 then
  return {1, 0, now, 0}
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
local rank, tag, run = 0, 0, ARGV[6]
if id == "" then
  local queued = redis.call("ZCARD", KEYS[4])
  if queued > 0 then
    if wait < 0 then wait = 0 end
    return {0, wait + queued * inc, now, 0}
  end
else
  local span = 1099511627776 -- 2^40
  local score = redis.call("ZSCORE", KEYS[4], id)
  if score then
    tag = tonumber(score) % span
  else
    local v = tonumber(redis.call("HGET", KEYS[5], "v") or "0")
    local last = tonumber(redis.call("HGET", KEYS[5], "r:" .. run) or "0")
    tag = math.max(v, last) + 1
    redis.call("HSET", KEYS[5], "r:" .. run, tag)
    redis.call("ZADD", KEYS[4], tonumber(ARGV[7]) * span + tag, id)
  end
  while true do
    local head = redis.call("ZRANGE", KEYS[4], 0, 0)[1]
    if head == nil or head == id then break end
    local dl = tonumber(redis.call("HGET", KEYS[5], "d:" .. head) or "0")
    if dl >= now then break end
    redis.call("ZREM", KEYS[4], head)
    redis.call("HDEL", KEYS[5], "d:" .. head)
  end
  rank = redis.call("ZRANK", KEYS[4], id)
  if wait < 0 then wait = 0 end
  wait = wait + rank * inc
  redis.call("HSET", KEYS[5], "d:" .. id, now + wait + tonumber(ARGV[8]))
  local ttl = math.ceil((wait + tonumber(ARGV[8])) / 1000) + 60000
  if redis.call("PTTL", KEYS[4]) < ttl then
    redis.call("PEXPIRE", KEYS[4], ttl)
    redis.call("PEXPIRE", KEYS[5], ttl)
  end
end
local granted = wait
if id ~= "" and rank == 0 and wait <= inc then
  granted = 0 -- the first waiter reserves the token opening within one increment
end
if granted > 0 then
  return {0, wait, now, 0}
end
if wait < 0 then wait = 0 end
redis.call("SET", KEYS[1], new, "PX", math.ceil((new - now) / 1000))
if slow then
  redis.call("SET", KEYS[2], slow, "PX", math.ceil((slow - now) / 1000))
end
if id ~= "" then
  redis.call("ZREM", KEYS[4], id)
  redis.call("HDEL", KEYS[5], "d:" .. id)
  local v = tonumber(redis.call("HGET", KEYS[5], "v") or "0")
  if tag > v then redis.call("HSET", KEYS[5], "v", tag) end
  if tonumber(redis.call("HGET", KEYS[5], "r:" .. run) or "0") <= tag then
    redis.call("HDEL", KEYS[5], "r:" .. run)
  end
end
return {1, wait, now, 0}
`)

// leaveScript takes a waiter out of its target's queue (Leave): it stopped
// waiting for a token (it went back to its task queue). When its tag was
// the last its run was given, the run's next waiter takes that tag again,
// so that a run whose waiters keep going back to their task queue does not
// fall behind the others by the tags they never used.
//
// KEYS[1] -> the target's waiters (req:{<target>}:queue)
// KEYS[2] -> its queue state hash (req:{<target>}:fair)
// ARGV[1] -> waiter id
// ARGV[2] -> the waiter's run
var leaveScript = redis.NewScript(`
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
redis.call("HDEL", KEYS[2], "d:" .. ARGV[1])
if not score then
  return 0
end
redis.call("ZREM", KEYS[1], ARGV[1])
local tag = tonumber(score) % 1099511627776
local field = "r:" .. ARGV[2]
if tonumber(redis.call("HGET", KEYS[2], field) or "0") == tag then
  if tag - 1 > tonumber(redis.call("HGET", KEYS[2], "v") or "0") then
    redis.call("HSET", KEYS[2], field, tag - 1)
  else
    redis.call("HDEL", KEYS[2], field)
  end
end
return 1
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
