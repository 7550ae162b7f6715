-- Shared by the bench scripts (wrk 4, LuaJIT). Each wrk thread runs its own Lua state:
--   setup(thread)  main state, once per thread: number the threads (tid 1..n)
--   init(args)     thread state: load this thread's share of an id list
--   response()     thread state: count 2xx / non-2xx / status codes / bad bodies
--   done()         main state: gather the threads' counters, print one JSON line for bench/run.py
--
-- Environment: BENCH_THREADS (wrk -t), BENCH_TOKEN (X-Auth-Token), BENCH_IDS (a file, one id a line),
-- BENCH_PROJECT (project id), BENCH_EXPECT (a string every accepted 2xx body must contain).

local M = {}

local threads = {}

function M.setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
   thread:set("nthreads", tonumber(os.getenv("BENCH_THREADS") or "1"))
end

-- This thread's share of the ids in BENCH_IDS: lines i with i % nthreads == tid - 1, so that no
-- two threads (and no two requests, while the list lasts) ever use the same id.
function M.load_ids()
   local path = os.getenv("BENCH_IDS")
   local ids = {}
   if not path then return ids end
   local fh = assert(io.open(path, "r"))
   local i = 0
   for line in fh:lines() do
      if line ~= "" then
         if i % nthreads == tid - 1 then ids[#ids + 1] = line end
         i = i + 1
      end
   end
   fh:close()
   return ids
end

function M.headers(extra)
   local h = {}
   local token = os.getenv("BENCH_TOKEN")
   if token then h["X-Auth-Token"] = token end
   for k, v in pairs(extra or {}) do h[k] = v end
   return h
end

-- per-thread counters (globals of the thread's state, read by done() through thread:get)
ok = 0          -- 2xx whose body holds BENCH_EXPECT
bad = 0         -- 2xx without it
non2xx = 0
wrapped = 0     -- requests made after the id list was used up (they repeat ids)
statuses = {}
local expect = os.getenv("BENCH_EXPECT")

function M.response(status, headers, body)
   if status >= 200 and status < 300 then
      if expect == nil or (body and string.find(body, expect, 1, true)) then
         ok = ok + 1
      else
         bad = bad + 1
      end
   else
      non2xx = non2xx + 1
   end
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
end

local function encode(v)
   local t = type(v)
   if t == "table" then
      local parts = {}
      for k, x in pairs(v) do
         parts[#parts + 1] = string.format("%q:%s", tostring(k), encode(x))
      end
      return "{" .. table.concat(parts, ",") .. "}"
   elseif t == "string" then
      return string.format("%q", v)
   elseif t == "number" then
      return string.format("%.6f", v)
   elseif t == "boolean" then
      return tostring(v)
   end
   return "null"
end

function M.done(summary, latency, requests)
   local out = {
      requests = summary.requests, duration_us = summary.duration, bytes = summary.bytes,
      errors = {connect = summary.errors.connect, read = summary.errors.read, write = summary.errors.write,
                status = summary.errors.status, timeout = summary.errors.timeout},
      latency_us = {min = latency.min, max = latency.max, mean = latency.mean, stdev = latency.stdev,
                    p50 = latency:percentile(50), p90 = latency:percentile(90),
                    p99 = latency:percentile(99), p999 = latency:percentile(99.9)},
      ok = 0, bad = 0, non2xx = 0, wrapped = 0, statuses = {},
   }
   for _, t in ipairs(threads) do
      out.ok = out.ok + (t:get("ok") or 0)
      out.bad = out.bad + (t:get("bad") or 0)
      out.non2xx = out.non2xx + (t:get("non2xx") or 0)
      out.wrapped = out.wrapped + (t:get("wrapped") or 0)
      for k, n in pairs(t:get("statuses") or {}) do
         out.statuses[k] = (out.statuses[k] or 0) + n
      end
   end
   io.write("BENCH_RESULT " .. encode(out) .. "\n")
end

return M
