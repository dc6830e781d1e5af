-- POST /create with a key no request has used before: <run>-<thread>-<counter>: v<counter>.
-- The run id (first script argument) keeps keys unique across rounds against the same server.
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
  return wrk.format("POST", "/create", headers, prefix .. counter .. ": v" .. counter)
end
