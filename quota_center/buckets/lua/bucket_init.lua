-- bucket_init.lua: create a bucket, or reset it into a newer generation after a
-- Redis loss. A bucket already in this generation or a newer one is left alone,
-- so concurrent rebuilds converge.
--
-- KEYS[1]  bucket hash
-- KEYS[2]  its pending-transfer hash (dropped with an old generation: the ledger
--          decides those transfers, see transfer_credit/transfer_restore)
-- ARGV[1]  balance, integer 0..2^53-1
-- ARGV[2]  generation
-- ARGV[3]  state: active, paused or closed
--
-- Returns {status, gen}: {"OK", gen} created or reset; {"EXISTS", gen} left alone.
local g = redis.call("HGET", KEYS[1], "gen")
if g and tonumber(g) >= tonumber(ARGV[2]) then
  return {"EXISTS", tonumber(g)}
end
redis.call("DEL", KEYS[1], KEYS[2])
redis.call("HSET", KEYS[1], "bal", ARGV[1], "consumed", "0", "reserved", "0", "gen", ARGV[2], "state", ARGV[3])
return {"OK", tonumber(ARGV[2])}
