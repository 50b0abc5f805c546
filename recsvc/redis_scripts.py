"""The service's Lua scripts: each runs atomically inside Redis, in one round trip.

They build their keys from the prefix as recsvc.keys spells them (a test over the real service
checks both agree: state written through Keys is what the scripts read).
"""

# Appends a batch of validated events, atomically: refuse the whole batch when the stream
# has no room (never trim accepted events away), skip event ids already accepted, and update
# each user's recent items and purchases. ARGV: prefix, max stream length, dedup TTL, recent
# limit, event count, then 9 fields per event (EVENT_FIELDS order).
INGEST_SCRIPT = """
local prefix, maxlen, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local keep, n = tonumber(ARGV[4]), tonumber(ARGV[5])
local stream = prefix .. ':events'
if redis.call('XLEN', stream) + n > maxlen then return {-1, 0} end
local accepted, duplicates = 0, 0
for i = 0, n - 1 do
  local o = 5 + i * 9
  local event_id, ts, user, item = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4]
  local item_type, action, ratio = ARGV[o + 5], ARGV[o + 6], ARGV[o + 7]
  local tag = prefix .. ':{u:' .. user .. '}'
  if redis.call('SET', tag .. ':ev:' .. event_id, '1', 'NX', 'EX', ttl) then
    redis.call('XADD', stream, '*', 'event_id', event_id, 'ts', ts, 'user_id', user,
      'item_id', item, 'item_type', item_type, 'action', action, 'watch_ratio', ratio,
      'request_id', ARGV[o + 8], 'amount', ARGV[o + 9])
    redis.call('LPUSH', tag .. ':recent', item_type .. '|' .. item .. '|' .. action .. '|' .. ratio)
    redis.call('LTRIM', tag .. ':recent', 0, keep - 1)
    if action == 'purchase' then redis.call('SADD', tag .. ':purchased', item) end
    accepted = accepted + 1
  else
    duplicates = duplicates + 1
  end
end
return {accepted, duplicates}
"""


# Reads the state of a batch of users in one call. ARGV: prefix, '1' when there is a vector
# to read, its generation, the UTC day, the daily cap, then the user ids joined by ','. Of
# today's attach counters only the products at the cap come back. The keys are built
# here, as recsvc.keys spells them: 4 arguments instead of 5 per user, since packing each
# argument was most of the client's cost (bench/serve.py). Each user's keys share one hash
# tag, but a batch spans slots: on Redis Cluster a batch would be split by slot.
READ_SCRIPT = """
local prefix, with_vector, generation, day = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4]
local cap = tonumber(ARGV[5])
local out = {}
for user in string.gmatch(ARGV[6], '[^,]+') do
  local tag = prefix .. ':{u:' .. user .. '}'
  local vector = false
  if with_vector then
    vector = redis.call('GET', prefix .. ':vec:' .. generation .. ':{u:' .. user .. '}')
  end
  local counts, capped = redis.call('HGETALL', tag .. ':caps:' .. day), {}
  for i = 1, #counts, 2 do
    if tonumber(counts[i + 1]) >= cap then capped[#capped + 1] = counts[i] end
  end
  out[#out + 1] = {vector, redis.call('HGETALL', tag .. ':profile'),
    redis.call('SUNION', tag .. ':holdings', tag .. ':purchased'),
    redis.call('LRANGE', tag .. ':recent', 0, -1),
    capped}
end
return out
"""

# Counts attached products, each only while under the cap: check and increment are one
# step, so concurrent feeds of one user cannot both take the last slot. ARGV: prefix, UTC
# day, TTL of the counters, the daily cap, then "user=p1,p2;user2=p3" (one entry per page;
# a user may have several). Returns "i=product" for each card refused because at the cap,
# i the entry's position from 1: those cards are withdrawn from that page.
COUNT_SCRIPT = """
local prefix, day, ttl, cap = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local refused, entry = {}, 0
for user, products in string.gmatch(ARGV[5], '([^;=]+)=([^;]+)') do
  entry = entry + 1
  local key = prefix .. ':{u:' .. user .. '}:caps:' .. day
  for product in string.gmatch(products, '[^,]+') do
    if tonumber(redis.call('HGET', key, product) or '0') < cap then
      redis.call('HINCRBY', key, product, 1)
    else
      refused[#refused + 1] = entry .. '=' .. product
    end
  end
  redis.call('EXPIRE', key, ttl)
end
return refused
"""

# Appends the exposures of a batch's feeds (users in experiments only), unless the stream is
# full: then nothing is appended and the count of dropped exposures is returned negated (the
# service counts them; a full stream means the drain has stopped). ARGV: max stream length,
# exposure count, then 7 fields per exposure (EXPOSURE_FIELDS order).
EXPOSE_SCRIPT = """
local maxlen, n = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('XLEN', KEYS[1]) + n > maxlen then return -n end
for i = 0, n - 1 do
  local o = 2 + i * 7
  redis.call('XADD', KEYS[1], '*', 'request_id', ARGV[o + 1], 'ts', ARGV[o + 2],
    'user_id', ARGV[o + 3], 'experiments', ARGV[o + 4], 'model_version', ARGV[o + 5],
    'videos', ARGV[o + 6], 'products', ARGV[o + 7])
end
return n
"""
EXPOSURE_FIELDS = (
    "request_id", "ts", "user_id", "experiments", "model_version", "videos", "products"
)  # fmt: skip
