-- Scenario 4: GET /v1/{project_id}/cloudservers/detail?limit=BENCH_LIMIT&offset=BENCH_PAGE
-- (offset is a PAGE number, counted from 1).
package.path = (os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/?.lua;" .. package.path
local common = require("common")

setup = common.setup
response = common.response
done = common.done

local req

function init(args)
   local path = "/v1/" .. os.getenv("BENCH_PROJECT") .. "/cloudservers/detail?limit="
                .. (os.getenv("BENCH_LIMIT") or "100") .. "&offset=" .. (os.getenv("BENCH_PAGE") or "1")
   req = wrk.format("GET", path, common.headers())
end

function request()
   return req
end
