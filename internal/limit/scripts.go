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
// reserveScript replies {granted, wait_us, now_us[, tat_us]} and
// requestScript {granted, wait_us, now_us, throttled}, which decision
// reads.

// reserveScript takes a run's next slot for a batch of images, if it opens
// within max_wait (ReserveImages). With tol == inc the slot is
// max(tat, now): the batch goes once earlier ones are paid for.
//
// KEYS[1] -> the run's TAT key (images:<run>)
// ARGV[1] -> inc, µs
// ARGV[2] -> tol, µs
// ARGV[3] -> max_wait, µs
//
// Output: {1, wait_us, now_us, tat_us} when the slot is reserved (it opens
// in wait_us, 0 if it is open; tat_us is the run's TAT now, which
// UnreserveImages needs); {0, wait_us, now_us} when it opens later than
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
return {1, wait, now, new}
`)

// forgetLua is the Lua function forget(queue, state, id, score) shared by
// requestScript and leaveScript: it takes waiter id (its score as the
// queue holds it) out of the target's queue and, when its tag was the last
// its run was given, gives that tag back, so that a run whose waiters
// leave (they went back to their task queue, or crashed) does not fall
// behind the other runs by tags it never used. It also defines place(prio),
// a priority's band and the tags a turn costs in it (see requestScript).
const forgetLua = `
local span = 1099511627776 -- 2^40: score = band * span + tag
local function place(prio)
  if prio < 3 then return 0, ({1, 2, 6})[prio + 1] end
  return prio, 1
end
local function forget(queue, state, id, score)
  local info = redis.call("HMGET", state, "o:" .. id, "k:" .. id)
  local run, cost = info[1], tonumber(info[2] or "1")
  redis.call("ZREM", queue, id)
  redis.call("HDEL", state, "d:" .. id, "o:" .. id, "k:" .. id)
  if not run then return end
  local tag = tonumber(score) % span
  local field = "r:" .. run
  if tonumber(redis.call("HGET", state, field) or "0") == tag then
    if tag - cost > tonumber(redis.call("HGET", state, "v") or "0") then
      redis.call("HSET", state, field, tag - cost)
    else
      redis.call("HDEL", state, field)
    end
  end
end
`

// requestScript takes one request token of a target (AllowRequest,
// Request, RequestStep). The throttle hash has fields "until" (no request
// before) and "cool" (half rate before). Tokens are spent only when every
// key allows; a token granted for a later send time moves every key on
// from that time, so the rate (and the half rate) holds at the sends.
//
// A caller with a waiter id takes turns: the target's queue of waiters is
// a sorted set whose score is band·2^40 + tag, and only the first waiter
// may take a token, reserving it once it opens within the window (one
// increment, at most max_wait): it is granted with the wait until then.
// Runs take turns by start-time fair queueing, weighted: a waiter's tag is
// the larger of v, the tag of the last grant, and the last tag its run was
// given, plus what a turn costs at its priority: 1 for priority 0 (jobs'
// critical), 2 for 1 (default), 6 for 2 (bulk). These three share band 0:
// while all three keep waiting, they get tokens 6 : 3 : 1, as asynq's
// default queue weights share slots, and none starves; a run that starts
// while others have many waiters takes one of the next turns (a critical
// one the next but one). Priorities from 3 on (background listings) are
// bands of their own, served strictly after. A caller whose turn is
// further than max_wait does not join: it is told how far its turn is, and
// comes back. The state hash holds "v", "r:<run>" (the run's last tag
// while it has waiters), and per waiter "d:<id>" (its deadline: a waiter
// that stops asking, it crashed, is dropped once it is first and past it),
// "o:<id>" (its run) and "k:<id>" (its turn's cost, when not 1). A waiter
// asking again keeps its place; a denied waiter is told to ask again once
// its token is in the window, should the waiters ahead take theirs.
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
// ARGV[5] -> waiter id; "": no turn, and a token only when no waiter of
// its priority's band (ARGV[7]) or a more urgent one waits
// ARGV[6] -> the waiter's run
// ARGV[7] -> the waiter's priority, 0 first
// ARGV[8] -> lease, µs: how long past its wait a waiter keeps its place
// ARGV[9] -> max_wait, µs: the furthest turn a waiter joins for; 0 = any
//
// Output: {1, wait_us, now_us, 0} when the token is taken (wait_us > 0
// only for a waiter: its token opens then); {0, wait_us, now_us,
// throttled} when not: ask again in wait_us (a waiter that did not join:
// its turn is that far), or the target is blocked after a 429 for wait_us
// (throttled 1; a waiter is not queued, one queued before keeps its place
// until it leaves). Nothing is written but the waiter's place.
var requestScript = redis.NewScript(forgetLua + `
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local id, run = ARGV[5], ARGV[6]
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
local function tatOf(key)
  local tat = tonumber(redis.call("GET", key) or now)
  if tat < now then tat = now end
  return tat
end
local fast = tatOf(KEYS[1])
local wait = fast + inc - tonumber(ARGV[2]) - now
local slow, slowInc = nil, tonumber(ARGV[3])
if now < cool then
  slow = tatOf(KEYS[2])
  local w = slow + slowInc - tonumber(ARGV[4]) - now
  if w > wait then wait = w end
end
if wait < 0 then wait = 0 end
local maxwait = tonumber(ARGV[9])
local window = inc
if maxwait > 0 and maxwait < window then window = maxwait end
local rank, tag, score = 0, 0, nil
local band, cost = place(tonumber(ARGV[7]))
if id == "" then
  local queued = redis.call("ZCOUNT", KEYS[4], "-inf", "(" .. ((band + 1) * span))
  if queued > 0 then
    return {0, wait + queued * inc, now, 0}
  end
  if wait > 0 then
    return {0, wait, now, 0}
  end
else
  score = redis.call("ZSCORE", KEYS[4], id)
  local joined = score ~= false and score ~= nil
  if joined then
    score = tonumber(score)
    tag = score % span
  else
    local v = tonumber(redis.call("HGET", KEYS[5], "v") or "0")
    local last = tonumber(redis.call("HGET", KEYS[5], "r:" .. run) or "0")
    tag = math.max(v, last) + cost
    score = band * span + tag
  end
  while true do
    local head = redis.call("ZRANGE", KEYS[4], 0, 0, "WITHSCORES")
    if head[1] == nil or head[1] == id then break end
    local dl = tonumber(redis.call("HGET", KEYS[5], "d:" .. head[1]) or "0")
    if dl >= now then break end
    forget(KEYS[4], KEYS[5], head[1], head[2])
  end
  if joined then
    rank = redis.call("ZRANK", KEYS[4], id)
  else
    rank = redis.call("ZCOUNT", KEYS[4], "-inf", score)
  end
  local turn = wait + rank * inc
  if not joined then
    if maxwait > 0 and turn > maxwait then
      return {0, turn, now, 0}
    end
    redis.call("ZADD", KEYS[4], score, id)
    redis.call("HSET", KEYS[5], "r:" .. run, tag, "o:" .. id, run)
    if cost ~= 1 then redis.call("HSET", KEYS[5], "k:" .. id, cost) end
    rank = redis.call("ZRANK", KEYS[4], id)
    turn = wait + rank * inc
  end
  if rank > 0 or wait > window then
    local again = math.max(turn - window, 1)
    redis.call("HSET", KEYS[5], "d:" .. id, now + again + tonumber(ARGV[8]))
    local ttl = math.ceil((again + tonumber(ARGV[8])) / 1000) + 60000
    if redis.call("PTTL", KEYS[4]) < ttl then
      redis.call("PEXPIRE", KEYS[4], ttl)
      redis.call("PEXPIRE", KEYS[5], ttl)
    end
    return {0, again, now, 0}
  end
end
local send = now + wait
local nf = math.max(fast, send) + inc
redis.call("SET", KEYS[1], nf, "PX", math.ceil((nf - now) / 1000))
if slow then
  local ns = math.max(slow, send) + slowInc
  redis.call("SET", KEYS[2], ns, "PX", math.ceil((ns - now) / 1000))
end
if id ~= "" then
  local v = tonumber(redis.call("HGET", KEYS[5], "v") or "0")
  if tag > v then redis.call("HSET", KEYS[5], "v", tag) end
  redis.call("ZREM", KEYS[4], id)
  redis.call("HDEL", KEYS[5], "d:" .. id, "o:" .. id, "k:" .. id)
  if tonumber(redis.call("HGET", KEYS[5], "r:" .. run) or "0") <= tag then
    redis.call("HDEL", KEYS[5], "r:" .. run)
  end
end
return {1, wait, now, 0}
`)

// leaveScript takes a waiter out of its target's queue (Leave): it stopped
// waiting for a token (it went back to its task queue). See forgetLua.
//
// KEYS[1] -> the target's waiters (req:{<target>}:queue)
// KEYS[2] -> its queue state hash (req:{<target>}:fair)
// ARGV[1] -> waiter id
//
// Output: 1 if the waiter was queued, else 0.
var leaveScript = redis.NewScript(forgetLua + `
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not score then
  redis.call("HDEL", KEYS[2], "d:" .. ARGV[1], "o:" .. ARGV[1], "k:" .. ARGV[1])
  return 0
end
forget(KEYS[1], KEYS[2], ARGV[1], score)
return 1
`)

// contendedScript reports whether a waiter of another run, alive (its
// deadline not passed), is among the first waiters of the runs' band of a
// target's queue (Contended): background listings, and waiters that
// crashed, do not count.
//
// KEYS[1] -> the target's waiters (req:{<target>}:queue)
// KEYS[2] -> its queue state hash (req:{<target>}:fair)
// ARGV[1] -> the run
// ARGV[2] -> how many waiters to look at
//
// Output: 1 if one of them is another run's, else 0.
var contendedScript = redis.NewScript(forgetLua + `
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", "(" .. span, "LIMIT", 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local info = redis.call("HMGET", KEYS[2], "o:" .. id, "d:" .. id)
  if info[1] and info[1] ~= ARGV[1] and tonumber(info[2] or "0") >= now then return 1 end
end
return 0
`)

// unreserveScript gives back a run's image slot that its caller will not
// use (UnreserveImages): when the run's TAT is still the one the
// reservation set, it moves back by the reservation's increment.
//
// KEYS[1] -> the run's TAT key (images:<run>)
// ARGV[1] -> the TAT the reservation set, µs
// ARGV[2] -> its increment, µs
//
// Output: 1 if the slot was given back, 0 if a later reservation followed.
var unreserveScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call("GET", KEYS[1]) or "0")
if tat ~= tonumber(ARGV[1]) then
  return 0
end
local back = tat - tonumber(ARGV[2])
if back > now then
  redis.call("SET", KEYS[1], back, "PX", math.ceil((back - now) / 1000))
else
  redis.call("DEL", KEYS[1])
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
