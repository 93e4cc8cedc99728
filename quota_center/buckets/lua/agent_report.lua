-- agent_report.lua: apply a region agent's usage report to its holding of a budget, and
-- renew its lease. Reports are cumulative (see docs/agents.md), so a repeated or older one
-- (seq not above the applied one) changes nothing.
--
-- KEYS[1]  the agent's holding hash (bal, consumed, reserved, gen, ver, lease, lost, a_seq,
--          a_consumed, a_returned, a_reserved, a_released)
-- KEYS[2]  its pending-transfer hash (same hash tag)
-- ARGV[1]  generation the caller expects (a missing hash is created in it)
-- ARGV[2]  seq of the report
-- ARGV[3]  consumed, cumulative
-- ARGV[4]  returned, cumulative
-- ARGV[5]  reserved now
-- ARGV[6]  released, cumulative
-- ARGV[7]  lease until, unix ms on the center's clock (0: no renewal)
-- ARGV[8]  transfer id for what the report releases to main
-- ARGV[9]  now, unix ms
--
-- The caller checked the report alone (quota_rules.usage.check_usage): every counter and
-- consumed + reserved + released within 0..2^53-1, returned <= consumed. So every sum below
-- stays within the integers a double holds exactly.
--
-- A refund gives the holding back only what the holding itself consumed (its ``consumed``
-- never goes below 0): a return of a deduction made under an earlier holding (one a rebuild
-- replaced) stays consumed, and so does any return an agent reports without the deduction.
-- That part is ``unbacked``: applied to the counters, not to the balance, and answered so
-- that the caller can count it. The agent takes its balance from the center, so it follows.
--
-- Returns {status, ver, bal, a_seq, a_consumed, a_returned, a_reserved, a_released, released,
-- unbacked}:
--   "OK"        applied (or nothing to apply); released > 0: that much is now pending to main
--               under ARGV[8], to be ledgered and credited by the caller
--   "OPENED"    the hash did not exist: created with the report as its baseline, bal 0
--   "STALE"     the hash is of another generation (ver holds that generation)
--   "LOST"      the lease ran out and the balance went in doubt: nothing applied, nothing
--               renewed (bal holds the amount in doubt)
--   "BACKWARDS" a cumulative counter went down, or reserved is negative: nothing applied
--   "OVERSPENT" the report spends more than the holding has (bal; released holds the
--               report's net): nothing applied
-- Every check happens before the first write: Redis does not roll back.
local seq = tonumber(ARGV[2])
local c, r, res, rel = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local lease = tonumber(ARGV[7])
local h = redis.call("HMGET", KEYS[1], "gen", "bal", "ver", "lost", "a_seq", "a_consumed", "a_returned",
  "a_reserved", "a_released", "lease", "lost_amount", "consumed")
if not h[1] then
  redis.call("HSET", KEYS[1], "gen", ARGV[1], "bal", 0, "consumed", 0, "reserved", 0, "ver", 1, "lost", 0,
    "lease", lease, "a_seq", seq, "a_consumed", c, "a_returned", r, "a_reserved", res, "a_released", rel)
  -- The report is the baseline: what the agent did before (under an earlier holding) is not
  -- this holding's. Changes of reservations made before are applied as changes, so a
  -- reservation confirmed later adds to consumed here and takes as much off reserved.
  return {"OPENED", 1, 0, seq, c, r, res, rel, 0, 0}
end
local ver = tonumber(h[3])
if h[1] ~= ARGV[1] then
  return {"STALE", tonumber(h[1]), 0, 0, 0, 0, 0, 0, 0, 0}
end
local bal = tonumber(h[2])
local aseq, ac, ar, ares, arel = tonumber(h[5]), tonumber(h[6]), tonumber(h[7]), tonumber(h[8]), tonumber(h[9])
if h[4] == "1" then
  return {"LOST", ver, tonumber(h[11] or "0"), aseq, ac, ar, ares, arel, 0, 0}
end
local released, unbacked = 0, 0
if seq > aseq then
  if c < ac or r < ar or rel < arel or res < 0 then
    return {"BACKWARDS", ver, bal, aseq, ac, ar, ares, arel, 0, 0}
  end
  local dc, dr = c - ac, r - ar
  local owned = tonumber(h[12] or "0") + dc
  if owned < dr then
    unbacked = dr - owned
  end
  local refunded = dr - unbacked
  local delta = (dc + (res - ares) + (rel - arel)) - refunded
  if delta > bal then
    return {"OVERSPENT", ver, bal, aseq, ac, ar, ares, arel, delta, 0}
  end
  released = rel - arel
  bal = bal - delta
  ver = ver + 1
  redis.call("HSET", KEYS[1], "bal", string.format("%d", bal), "ver", ver, "a_seq", ARGV[2], "a_consumed", ARGV[3],
    "a_returned", ARGV[4], "a_reserved", ARGV[5], "a_released", ARGV[6])
  redis.call("HINCRBY", KEYS[1], "consumed", string.format("%d", dc - refunded))
  redis.call("HINCRBY", KEYS[1], "reserved", string.format("%d", res - ares))
  if unbacked > 0 then
    redis.call("HINCRBY", KEYS[1], "unbacked", string.format("%d", unbacked))
  end
  if released > 0 then
    redis.call("HSET", KEYS[2], ARGV[8],
      string.format("%d", released) .. "|main|" .. ARGV[1] .. "|" .. ARGV[9])
  end
  aseq, ac, ar, ares, arel = seq, c, r, res, rel
end
if lease > tonumber(h[10] or "0") then
  redis.call("HSET", KEYS[1], "lease", ARGV[7])
end
return {"OK", ver, bal, aseq, ac, ar, ares, arel, released, unbacked}
