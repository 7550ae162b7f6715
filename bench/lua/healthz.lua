-- GET /healthz: the process's bare HTTP cost (no auth, no I/O), the baseline of scenario 1.
package.path = (os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/?.lua;" .. package.path
local common = require("common")

setup = common.setup
response = common.response
done = common.done

local req

function init(args)
   req = wrk.format("GET", "/healthz", common.headers())
end

function request()
   return req
end
