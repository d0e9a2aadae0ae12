-- wrk script for scripts/bench: every request is the same ~1 KB JSON body with a unique
-- X-Webhook-Id and the hex HMAC-SHA256 of "{id}.{body}" in X-Signature, so the server verifies,
-- maps, encodes and publishes every one as a new event (an id the signature does not cover would
-- not be trusted as the dedup key). bench.py precomputes the ids and signatures
-- (BENCH_POOL_FILE): fixed-width records of a 20-character id, a space, 64 hex digits and a
-- newline, read as one string, so wrk does no signing and its garbage collector has one object
-- to look at, not a million. Thread t of T takes records t, t+T, ...; BENCH_POOL_FROM_END=1 walks
-- from the end (the warm-up), BENCH_POOL_OFFSET starts elsewhere (a second replica's load).
-- Also BENCH_BODY_FILE, BENCH_PATH.

local RECORD = 86
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  thread:set("threads", 0)
end

local function slurp(name)
  local f = assert(io.open(os.getenv(name), "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function init(args)
  payload = slurp("BENCH_BODY_FILE")
  pool = slurp("BENCH_POOL_FILE")
  records = math.floor(#pool / RECORD)
  path = os.getenv("BENCH_PATH")
  reverse = os.getenv("BENCH_POOL_FROM_END") == "1"
  offset = tonumber(os.getenv("BENCH_POOL_OFFSET") or "0")
  n = 0
  -- The request is written out by hand around the two varying headers: wrk.format would rebuild
  -- it from a table for every request, which costs wrk more CPU than the server's ceiling does.
  head = "POST " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
    "Content-Type: application/json\r\nContent-Length: " .. #payload .. "\r\nX-Webhook-Id: "
  tail = "\r\n\r\n" .. payload
end

function request()
  -- Two threads (scripts/bench runs wrk -t2): this one takes every other record.
  local k = (offset + n * 2 + tid) % records
  if reverse then
    k = records - 1 - k
  end
  n = n + 1
  local at = k * RECORD + 1
  return head .. pool:sub(at, at + 19) .. "\r\nX-Signature: " .. pool:sub(at + 21, at + 84) .. tail
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
