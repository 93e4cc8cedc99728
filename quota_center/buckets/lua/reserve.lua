-- reserve.lua: set an amount aside on one sub-bucket until it is confirmed,
-- cancelled or expires, at most once per request id.
--
-- KEYS[1]  sub-bucket hash (fields bal, consumed, reserved, gen, state)
-- KEYS[2]  request record of this reservation (same hash tag)
-- KEYS[3]  the sub-bucket's expiry set (sorted set: reservation id -> expires_at_ms)
-- ARGV[1]  amount, integer 1..2^53-1
-- ARGV[2]  expires_at_ms, unix milliseconds on the center's clock
-- ARGV[3]  the reservation's request id (its member in the expiry set)
-- ARGV[4]  generation the caller believes the sub-bucket is in; "0" accepts any. A mismatch
--          means the budget was rebuilt (or is being rebuilt) after a Redis loss: a reservation
--          made in a generation about to be reset would vanish with it
--
-- Returns {status, amount, expires_at_ms}:
--   {"OK", amount, expires}      reserved now: bal -= amount, reserved += amount
--   {"EXISTS", amount, expires}  this request id already reserved this amount here: the
--                                original answer, whatever became of the reservation since
--   {"CONFLICT", 0, 0}           this request id was used for something else here
--   {"PAUSED", 0, 0} / {"CLOSED", 0, 0}
--   {"SHORT", balance, 0}        the sub-bucket holds less than amount; nothing changed
--   {"STALE", 0, gen}            the sub-bucket is in generation gen, not ARGV[4]
--   {"LOST", 0, 0}               the sub-bucket does not exist (Redis lost it)
--
-- Record fields: kind=reserve, amount, reserved (the amount set aside, kept for
-- good), expires, state=held, gen (the bucket's generation: a rebuild after a
-- Redis loss resets the bucket's reserved field, and the reservation with it).
-- A held record has no TTL: it is bucket state the expiry sweep must find. It
-- gets the request records' retention when the reservation ends.
-- Every check happens before the first write: Redis does not roll back.
local amount = tonumber(ARGV[1])
local rec = redis.call("HMGET", KEYS[2], "kind", "reserved", "expires")
if rec[1] then
  if rec[2] and tonumber(rec[2]) == amount then
    return {"EXISTS", amount, tonumber(rec[3])}
  end
  return {"CONFLICT", 0, 0}
end
local b = redis.call("HMGET", KEYS[1], "bal", "state", "gen")
if not b[1] then
  return {"LOST", 0, 0}
end
local gen = b[3] or "0"
local want = tonumber(ARGV[4] or "0")
if want ~= 0 and want ~= tonumber(gen) then
  return {"STALE", 0, tonumber(gen)}
end
if b[2] == "paused" then
  return {"PAUSED", 0, 0}
end
if b[2] == "closed" then
  return {"CLOSED", 0, 0}
end
local bal = tonumber(b[1])
if bal < amount then
  return {"SHORT", bal, 0}
end
local n = string.format("%d", amount)
redis.call("HINCRBY", KEYS[1], "bal", "-" .. n)
redis.call("HINCRBY", KEYS[1], "reserved", n)
redis.call(
  "HSET", KEYS[2], "kind", "reserve", "amount", n, "reserved", n, "expires", ARGV[2], "state", "held", "gen", gen
)
redis.call("ZADD", KEYS[3], ARGV[2], ARGV[3])
return {"OK", amount, tonumber(ARGV[2])}
