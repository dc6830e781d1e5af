-- PUT /kv/<key> of one fixed key with a 3-byte value, as redis-benchmark's SET does (no pipelining).
-- The key is the first script argument.
local path = "/kv/key"
local headers = { ["Content-Type"] = "text/plain" }

function init(args)
  path = "/kv/" .. (args[1] or "key")
end

function request()
  return wrk.format("PUT", path, headers, "xxx")
end
