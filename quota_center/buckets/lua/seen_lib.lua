-- seen_lib.lua: the request ids served in the last days, in a compact form (prepended to the
-- scripts that use it; docs/center.md#request-ids). Redis keeps a request's claim and record
-- only for a short window; after it, a retry is recognised by these filters and answered from
-- the spend log in PostgreSQL, which keeps every served request for the whole retention.
--
-- Per shard of ids and per day: a counter "<prefix>:<day>" of the ids added that day and Bloom
-- filters "<prefix>:<day>:<j>" (bitmaps), the j-th holding SEEN_BASE * SEEN_GROWTH^j ids at
-- SEEN_BITS bits each, so memory follows the traffic: a quiet day has one small bitmap. An id
-- is tested at SEEN_K bits (h1 + i*h2) of each bitmap of each day kept. A filter answers "maybe"
-- for an id it never held only rarely (and then the spend log says no); it never forgets one
-- while its day is kept, so a served id is never mistaken for a new one.
--
-- The parameters come from the caller (quota_center/buckets/seen.py), as ARGV from position p:
--   p+0 key prefix of the id's shard     p+1 today (days since 1970-01-01, UTC)
--   p+2 days kept, today included        p+3 h1    p+4 h2
--   p+5 K    p+6 BASE    p+7 GROWTH    p+8 BITS    p+9 the largest bitmap, bits
--   p+10 seconds a day's keys live
local function seen_args(p)
  local a = {}
  for i = 0, 10 do
    a[i + 1] = ARGV[p + i]
  end
  return {
    prefix = a[1], today = tonumber(a[2]), days = tonumber(a[3]), h1 = tonumber(a[4]),
    h2 = tonumber(a[5]), k = tonumber(a[6]), base = tonumber(a[7]), growth = tonumber(a[8]),
    bits = tonumber(a[9]), most = tonumber(a[10]), ttl = a[11],
  }
end

-- The bitmaps a day with n ids has, and the capacity of the last.
local function seen_filters(s, n)
  if n <= 0 then
    return 0, 0
  end
  local j, cap, cum = 1, s.base, s.base
  while n > cum and cap * s.growth * s.bits <= s.most do
    cap = cap * s.growth
    cum = cum + cap
    j = j + 1
  end
  return j, cap
end

local function seen_bit(s, i, cap)
  return (s.h1 + i * s.h2) % (cap * s.bits)
end

-- 0 if the id was not added in any of the days kept, 1 if it may have been, 2 if the shard's
-- mark "<prefix>:since" is missing (Redis lost the shard's keys, or it is the first use: the
-- caller sets it, quota_center/buckets/seen.py). The mark holds the day from which on the
-- shard's filters hold every id served (0: always; that day itself only in part); until that day
-- has left the days kept, every id is a "maybe", so a shard Redis lost cannot pass an old id off
-- as new.
local function seen_maybe(s)
  local names = {}
  for day = s.today - s.days + 1, s.today do
    names[#names + 1] = s.prefix .. ":" .. string.format("%d", day)
  end
  names[#names + 1] = s.prefix .. ":since"
  local counts = redis.call("MGET", unpack(names))
  local since = counts[#names]
  if not since then
    return 2
  end
  if tonumber(since) >= s.today - s.days + 1 then
    return 1
  end
  for d = 1, #names - 1 do
    local name = names[d]
    local count = seen_filters(s, tonumber(counts[d] or "0"))
    local cap = s.base
    for j = 0, count - 1 do
      local ops = {name .. ":" .. string.format("%d", j)}
      for i = 0, s.k - 1 do
        ops[#ops + 1] = "GET"
        ops[#ops + 1] = "u1"
        ops[#ops + 1] = string.format("%d", seen_bit(s, i, cap))
      end
      local got = redis.call("BITFIELD_RO", unpack(ops))
      local all = true
      for i = 1, #got do
        if got[i] == 0 then
          all = false
          break
        end
      end
      if all then
        return 1
      end
      if cap * s.growth * s.bits <= s.most then
        cap = cap * s.growth
      end
    end
  end
  return 0
end

-- Add the id to today's newest bitmap.
local function seen_add(s)
  local name = s.prefix .. ":" .. string.format("%d", s.today)
  local n = redis.call("INCR", name)
  if n == 1 then
    redis.call("EXPIRE", name, s.ttl)
  end
  local count, cap = seen_filters(s, n)
  local filter = name .. ":" .. string.format("%d", count - 1)
  local ops = {filter}
  for i = 0, s.k - 1 do
    ops[#ops + 1] = "SET"
    ops[#ops + 1] = "u1"
    ops[#ops + 1] = string.format("%d", seen_bit(s, i, cap))
    ops[#ops + 1] = "1"
  end
  redis.call("BITFIELD", unpack(ops))
  if redis.call("TTL", filter) < 0 then
    redis.call("EXPIRE", filter, s.ttl)
  end
end
