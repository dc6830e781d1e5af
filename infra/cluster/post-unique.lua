-- wrk script for infra/cluster/bench.mjs: POST /create with a key no request has used before,
-- <run>-<thread>-<counter>: v. The run id (first script argument) keeps keys unique across the wrk
-- processes of one run and across runs against the same cluster.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local counter = 0
local prefix = "k"
local headers = { ["Content-Type"] = "text/plain" }

function init(args)
  prefix = (args[1] or "k") .. "-" .. tostring(tid or 0) .. "-"
end

function request()
  counter = counter + 1
  return wrk.format("POST", "/create", headers, prefix .. counter .. ": v")
end
