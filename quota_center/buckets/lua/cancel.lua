-- cancel.lua: release all of a held reservation back to the sub-bucket's balance,
-- at most once per reservation.
--
-- KEYS[1]  sub-bucket hash (fields bal, consumed, reserved, gen, state)
-- KEYS[2]  the reservation's request record (same hash tag)
-- KEYS[3]  the sub-bucket's expiry set
-- ARGV[1]  now, unix milliseconds on the center's clock (the clock expires_at_ms came from)
-- ARGV[2]  the reservation's request id (its member in the expiry set)
-- ARGV[3]  retention of the record once the reservation has ended, seconds
--
-- Returns {status, released}:
--   {"OK", released}      cancelled now: reserved -= amount, bal += amount
--   {"EXISTS", released}  already cancelled (the original answer)
--   {"CONFIRMED", 0}      the reservation was confirmed
--   {"EXPIRED", released} its TTL has passed (now >= expires); released is what this call
--                         released (the whole reservation, once), 0 if an earlier call or
--                         the expiry sweep did
--   {"UNKNOWN", 0}        no reservation under this id here
--   {"DROPPED", 0}        the bucket was rebuilt after a Redis loss since the reservation
--                         was made: its amount is in doubt, not held
--   {"LOST", 0}           the sub-bucket does not exist (Redis lost it)
-- Every check happens before the first write: Redis does not roll back.
local r = redis.call("HMGET", KEYS[2], "reserved", "expires", "state", "gen")
if not r[1] then
  return {"UNKNOWN", 0}
end
local reserved = tonumber(r[1])
local state = r[3]
if state == "cancelled" then
  return {"EXISTS", reserved}
end
if state == "confirmed" then
  return {"CONFIRMED", 0}
end
if state == "expired" then
  return {"EXPIRED", 0}
end
if state == "dropped" then
  return {"DROPPED", 0}
end
local g = redis.call("HGET", KEYS[1], "gen")
if not g then
  return {"LOST", 0}
end
if g ~= r[4] then
  -- The rebuild reset this bucket's reserved field; the old generation's share is in doubt.
  redis.call("HSET", KEYS[2], "state", "dropped")
  redis.call("ZREM", KEYS[3], ARGV[2])
  redis.call("EXPIRE", KEYS[2], ARGV[3])
  return {"DROPPED", 0}
end
local held = string.format("%d", reserved)
local ending = "cancelled"
if tonumber(ARGV[1]) >= tonumber(r[2]) then
  ending = "expired"
end
redis.call("HINCRBY", KEYS[1], "reserved", "-" .. held)
redis.call("HINCRBY", KEYS[1], "bal", held)
redis.call("HSET", KEYS[2], "state", ending)
redis.call("ZREM", KEYS[3], ARGV[2])
redis.call("EXPIRE", KEYS[2], ARGV[3])
if ending == "expired" then
  return {"EXPIRED", reserved}
end
return {"OK", reserved}
