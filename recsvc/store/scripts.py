"""The service's Lua scripts: each runs atomically inside Redis, in one round trip.

Every script declares its keys: one per user (`Keys.user`, the prefix of that user's keys,
which names the user's slot), or the stream. The keys it touches are built from those, as
recsvc.contract.keys spells them, and each shares the slot of the declared key it is built
from. Redis
Cluster routes a script by its declared keys (they must share one slot) and refuses a key of
another slot, so a batch that spans users is sent as one call per slot
(recsvc.store.client.run_per_slot); to a single Redis, as one call. A test over the real
service checks that state written through Keys is what the scripts read.
"""

# Appends a batch of validated events and updates each user's recent items and purchases.
# ARGV: mode, prefix, max stream length, dedup TTL, recent limit, purchased limit, event
# count, then 10 fields per event: the 9 of recsvc.contract.domain.EVENT_COLUMNS and `holdable` ('1'
# when a purchase's product is in the catalogue). A purchase enters the user's purchased set
# only when holdable and while the set is under the limit (SCARD checked and SADD done in one
# step); else it is counted as not applied (the stream keeps it: the nightly job learns from
# it). One user's state stays bounded, so reading it stays fast. Modes:
# - 'all' (a single Redis), KEYS: the stream, then each event's user (Keys.user): one atomic
#   step. Refuses the whole batch when the stream has no room (never trims accepted events
#   away), skips events already accepted (the marker Keys.event_accepted), and updates the
#   users' state for the new ones. Returns {accepted, duplicates, purchases of products not
#   in the catalogue, purchases past the limit}, or {-1, 0, 0, 0} when refused.
# - 'append' (Cluster, the stream's slot), KEYS: the stream: the same, users' state aside
#   (the last two counts are 0).
# - 'apply' (Cluster, one user slot), KEYS: each event's user: updates the state for every
#   event not yet applied (the marker Keys.event_applied), so that running it again after a
#   failure half-way (a retry of the batch) applies each event once. Returns {applied,
#   unknown products, past the limit}, counted over the events it applied.
INGEST_SCRIPT = """
local mode, prefix, maxlen, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local keep, most, n = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local unknown, full = 0, 0
local function apply(user, item_type, item, action, ratio, holdable)
  redis.call('LPUSH', user .. ':recent', item_type .. '|' .. item .. '|' .. action .. '|' .. ratio)
  redis.call('LTRIM', user .. ':recent', 0, keep - 1)
  if action ~= 'purchase' then return end
  local bought = user .. ':purchased'
  if holdable ~= '1' then
    unknown = unknown + 1
  elseif redis.call('SCARD', bought) < most or redis.call('SISMEMBER', bought, item) == 1 then
    redis.call('SADD', bought, item)
  else
    full = full + 1
  end
end
if mode == 'apply' then
  local applied = 0
  for i = 0, n - 1 do
    local o = 7 + i * 10
    local user = KEYS[i + 1]
    if redis.call('SET', user .. ':ev:' .. ARGV[o + 1], '1', 'NX', 'EX', ttl) then
      apply(user, ARGV[o + 5], ARGV[o + 4], ARGV[o + 6], ARGV[o + 7], ARGV[o + 10])
      applied = applied + 1
    end
  end
  return {applied, unknown, full}
end
local stream = KEYS[1]
if redis.call('XLEN', stream) + n > maxlen then return {-1, 0, 0, 0} end
local accepted, duplicates = 0, 0
for i = 0, n - 1 do
  local o = 7 + i * 10
  local event_id, ts, user, item = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4]
  local item_type, action, ratio = ARGV[o + 5], ARGV[o + 6], ARGV[o + 7]
  -- Keys.event_accepted: the user id with its length, as ids may contain ':'
  local marker = prefix .. ':ev:{' .. stream .. '}:' .. #user .. '/' .. user .. ':' .. event_id
  if redis.call('SET', marker, '1', 'NX', 'EX', ttl) then
    redis.call('XADD', stream, '*', 'event_id', event_id, 'ts', ts, 'user_id', user,
      'item_id', item, 'item_type', item_type, 'action', action, 'watch_ratio', ratio,
      'request_id', ARGV[o + 8], 'amount', ARGV[o + 9])
    if mode == 'all' then apply(KEYS[i + 2], item_type, item, action, ratio, ARGV[o + 10]) end
    accepted = accepted + 1
  else
    duplicates = duplicates + 1
  end
end
return {accepted, duplicates, unknown, full}
"""


# Reads the state of a batch of users in one call. KEYS: each user (Keys.user). ARGV:
# prefix, '1' when there is a vector to read, its generation, the UTC day, the daily cap. Of
# today's attach counters only the products at the cap come back. One key per user, the rest
# built here: packing each argument was most of the client's cost (bench/serve.py).
READ_SCRIPT = """
local prefix, with_vector, generation, day = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4]
local cap = tonumber(ARGV[5])
local vectors = prefix .. ':vec:' .. generation .. ':'
local out = {}
for _, user in ipairs(KEYS) do
  local vector = false
  if with_vector then
    vector = redis.call('GET', vectors .. string.sub(user, #prefix + 2))  -- '{u:<id>}'
  end
  local counts, capped = redis.call('HGETALL', user .. ':caps:' .. day), {}
  for i = 1, #counts, 2 do
    if tonumber(counts[i + 1]) >= cap then capped[#capped + 1] = counts[i] end
  end
  out[#out + 1] = {vector, redis.call('HGETALL', user .. ':profile'),
    redis.call('SUNION', user .. ':holdings', user .. ':purchased'),
    redis.call('LRANGE', user .. ':recent', 0, -1),
    capped}
end
return out
"""

# Counts attached products, each only while under the cap: check and increment are one
# step, so concurrent feeds of one user cannot both take the last slot. KEYS: the user of
# each page (Keys.user; a user may have several pages). ARGV: UTC day, TTL of the counters,
# the daily cap, then each page's products joined by ','. Returns "i=product" for each card
# refused because at the cap, i the page's position from 1: those cards are withdrawn.
COUNT_SCRIPT = """
local day, ttl, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
local refused = {}
for entry, user in ipairs(KEYS) do
  local key = user .. ':caps:' .. day
  for product in string.gmatch(ARGV[3 + entry], '[^,]+') do
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

# Creates or replaces one catalogue record keeping the stored record's status, and renews the
# catalogue's revision, in one step: concurrent PUTs never make each other retry (a WATCH on
# the hash did, for a write to any record). The caller sends the record encoded once per
# status; the script only decodes, to read the stored status (cjson.encode would turn an empty
# array into {}). A record stored without `status` is live; one that is not a JSON object, or
# has any other status, counts as retired: a record lost is never an item revived.
# KEYS: the catalogue hash, the revision key (both tagged {catalog}). ARGV: item id, the new
# revision, the record to write when none is stored or the stored one is live, the record to
# write when it is retired. With one record only (a PUT that gives its status), that one is
# written. Returns which was written: 1 or 2.
CATALOG_PUT_SCRIPT = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
local chosen = 1
if stored and ARGV[4] then
  local read, record = pcall(cjson.decode, stored)
  local status = 'retired'
  if read and type(record) == 'table' and string.match(stored, '^%s*{') then
    status = record['status']
    if status == nil then status = 'live' end
  end
  if status ~= 'live' then chosen = 2 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2 + chosen])
redis.call('SET', KEYS[2], ARGV[2])
return chosen
"""

# The status PUT: replaces one catalogue record if it is still the one read (compare and set
# on the field, not a WATCH on the whole hash: writes to other records never conflict), and
# renews the catalogue's revision. KEYS: the catalogue hash, the revision key (both tagged
# {catalog}). ARGV: item id, '1' when the record was absent, the record as read, the new
# record, the new revision. Returns 1 when written, 0 when the record changed meanwhile (read
# it again).
CATALOG_CAS_SCRIPT = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  if stored then return 0 end
elseif stored ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[5])
return 1
"""
