-- Scenario 2: GET /v1/{project_id}/jobs/{job_id}, cycling over the job ids in BENCH_IDS.
package.path = (os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/?.lua;" .. package.path
local common = require("common")

setup = common.setup
response = common.response
done = common.done

local reqs, n

function init(args)
   local prefix = "/v1/" .. os.getenv("BENCH_PROJECT") .. "/jobs/"
   local headers = common.headers()
   reqs = {}
   for _, id in ipairs(common.load_ids()) do
      reqs[#reqs + 1] = wrk.format("GET", prefix .. id, headers)
   end
   n = 0
end

function request()
   n = n % #reqs + 1
   return reqs[n]
end
