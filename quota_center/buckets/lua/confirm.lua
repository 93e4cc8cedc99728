-- confirm.lua: take part or all of a held reservation; the rest goes back to the
-- sub-bucket's balance. At most once per reservation.
--
-- KEYS[1]  sub-bucket hash (fields bal, consumed, draws, reserved, gen, state)
-- KEYS[2]  the reservation's request record (same hash tag)
-- KEYS[3]  the sub-bucket's expiry set
-- ARGV[1]  amount to take, integer 1..2^53-1
-- ARGV[2]  now, unix milliseconds on the center's clock (the clock expires_at_ms came from)
-- ARGV[3]  the reservation's request id (its member in the expiry set)
-- ARGV[4]  retention of the record once the reservation has ended, seconds
--
-- Returns {status, amount, released, gen}; gen (OK and EXISTS only, else 0) is the generation
-- the reservation was made and confirmed in, which the write-behind spend log records:
--   {"OK", amount, released}      confirmed now: consumed += amount, reserved -= reserved
--                                 amount, bal += released (= reserved amount - amount); the
--                                 record becomes a deduction (kind=deduct, returned=0), so a
--                                 Return can refund it by the reservation id
--   {"EXISTS", amount, released}  already confirmed with this amount (the original answer)
--   {"CONFLICT", confirmed, 0}    already confirmed with another amount
--   {"CANCELLED", 0, 0}           the reservation was cancelled
--   {"EXPIRED", 0, released}      its TTL has passed (now >= expires); released is what this
--                                 call released (the whole reservation, once), 0 if an earlier
--                                 call or the expiry sweep did
--   {"EXCEEDS", 0, reserved}      amount is more than was reserved; nothing changed
--   {"UNKNOWN", 0, 0}             no reservation under this id here (never made, a plain
--                                 deduction, or past retention)
--   {"DROPPED", 0, 0}             the bucket was rebuilt after a Redis loss since the
--                                 reservation was made: its amount is in doubt, not held
--   {"LOST", 0, 0}                the sub-bucket does not exist (Redis lost it)
-- Every check happens before the first write: Redis does not roll back.
local amount = tonumber(ARGV[1])
local r = redis.call("HMGET", KEYS[2], "amount", "reserved", "expires", "state", "gen")
if not r[2] then
  return {"UNKNOWN", 0, 0}
end
local reserved = tonumber(r[2])
local state = r[4]
if state == "confirmed" then
  local confirmed = tonumber(r[1])
  if confirmed == amount then
    return {"EXISTS", amount, reserved - amount, tonumber(r[5])}
  end
  return {"CONFLICT", confirmed, 0}
end
if state == "cancelled" then
  return {"CANCELLED", 0, 0}
end
if state == "expired" then
  return {"EXPIRED", 0, 0}
end
if state == "dropped" then
  return {"DROPPED", 0, 0}
end
local g = redis.call("HGET", KEYS[1], "gen")
if not g then
  return {"LOST", 0, 0}
end
if g ~= r[5] then
  -- The rebuild reset this bucket's reserved field; the old generation's share is in doubt.
  redis.call("HSET", KEYS[2], "state", "dropped")
  redis.call("ZREM", KEYS[3], ARGV[3])
  redis.call("EXPIRE", KEYS[2], ARGV[4])
  return {"DROPPED", 0, 0}
end
local held = string.format("%d", reserved)
if tonumber(ARGV[2]) >= tonumber(r[3]) then
  redis.call("HINCRBY", KEYS[1], "reserved", "-" .. held)
  redis.call("HINCRBY", KEYS[1], "bal", held)
  redis.call("HSET", KEYS[2], "state", "expired")
  redis.call("ZREM", KEYS[3], ARGV[3])
  redis.call("EXPIRE", KEYS[2], ARGV[4])
  return {"EXPIRED", 0, reserved}
end
if amount > reserved then
  return {"EXCEEDS", 0, reserved}
end
local n = string.format("%d", amount)
local rest = string.format("%d", reserved - amount)
redis.call("HINCRBY", KEYS[1], "reserved", "-" .. held)
redis.call("HINCRBY", KEYS[1], "consumed", n)
redis.call("HINCRBY", KEYS[1], "draws", 1)
redis.call("HINCRBY", KEYS[1], "bal", rest)
redis.call("HSET", KEYS[2], "kind", "deduct", "amount", n, "returned", "0", "state", "confirmed", "released", rest)
redis.call("ZREM", KEYS[3], ARGV[3])
redis.call("EXPIRE", KEYS[2], ARGV[4])
return {"OK", amount, reserved - amount, tonumber(g)}
