-- expire.lua: release reservations of one sub-bucket whose TTL has passed, each at
-- most once (a confirm or cancel racing with it finds the reservation ended).
--
-- KEYS[1]    sub-bucket hash (fields bal, consumed, reserved, gen, state)
-- KEYS[2]    the sub-bucket's expiry set (sorted set: reservation id -> expires_at_ms)
-- KEYS[3..]  request records of the reservations to look at: the caller read their ids
--            from the expiry set (score <= now, a bounded batch), so every key a script
--            touches is declared, as Redis Cluster wants
-- ARGV[1]    now, unix milliseconds on the center's clock (the clock expires_at_ms came from)
-- ARGV[2]    retention of a record once its reservation has ended, seconds
-- ARGV[3..]  the reservations' ids, in the order of KEYS[3..]
--
-- Returns {status, released, units, removed}:
--   {"OK", released, units, removed}  released reservations now held by nobody else;
--                                     units their total; removed the ids taken off the set
--                                     (released, already ended, or dropped)
--   {"LOST", 0, 0, 0}                 the sub-bucket does not exist: the rebuild owns it
-- A reservation made before a rebuild (older generation) is dropped, not released: the
-- rebuild reset the bucket's reserved field and its amount is in doubt.
-- Every check on an entry happens before that entry's writes: Redis does not roll back.
local g = redis.call("HGET", KEYS[1], "gen")
if not g then
  return {"LOST", 0, 0, 0}
end
local now = tonumber(ARGV[1])
local released, units, removed = 0, 0, 0
for i = 3, #KEYS do
  local id = ARGV[i]
  local r = redis.call("HMGET", KEYS[i], "reserved", "expires", "state", "gen")
  if not r[1] or r[3] ~= "held" then
    -- Ended by a confirm or cancel between the caller's read and now (or a stray entry).
    removed = removed + redis.call("ZREM", KEYS[2], id)
  elseif tonumber(r[2]) <= now then
    if r[4] ~= g then
      redis.call("HSET", KEYS[i], "state", "dropped")
    else
      local held = string.format("%d", tonumber(r[1]))
      redis.call("HINCRBY", KEYS[1], "reserved", "-" .. held)
      redis.call("HINCRBY", KEYS[1], "bal", held)
      redis.call("HSET", KEYS[i], "state", "expired")
      released = released + 1
      units = units + tonumber(r[1])
    end
    redis.call("EXPIRE", KEYS[i], ARGV[2])
    removed = removed + redis.call("ZREM", KEYS[2], id)
  end
end
return {"OK", released, units, removed}
