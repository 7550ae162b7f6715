-- Scenario 1: POST /v1/{project_id}/cloudservers/{server_id}/changeos, each request on a DIFFERENT
-- stopped server (walks BENCH_IDS; this thread's share). Accepted = 2xx with a job_id in the body.
-- Body: change to BENCH_IMAGE with an admin password, as a client would send it.
package.path = (os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/?.lua;" .. package.path
local common = require("common")

setup = common.setup
response = common.response
done = common.done

local ids, n, prefix, body, headers

function init(args)
   ids = common.load_ids()
   n = 0
   prefix = "/v1/" .. os.getenv("BENCH_PROJECT") .. "/cloudservers/"
   body = '{"os-change":{"imageid":"' .. os.getenv("BENCH_IMAGE") .. '","adminpass":"'
          .. (os.getenv("BENCH_PASSWORD") or "Bench-2024-pass") .. '"}}'
   headers = common.headers({["Content-Type"] = "application/json"})
end

function request()
   n = n + 1
   if n > #ids then
      wrapped = wrapped + 1     -- the list is used up: this repeats a server (and will be refused)
   end
   local id = ids[(n - 1) % #ids + 1]
   return wrk.format("POST", prefix .. id .. "/changeos", headers, body)
end
