-- GET /, GET /, then PUT /update of one of the preloaded keys (k0 … k<keys-1>), over and over: a
-- write between every two listings, so a server cannot answer the GETs from one cached rendering.
-- Script arguments: the number of preloaded keys.
local counter = 0
local keys = 100000
local headers = { ["Content-Type"] = "text/plain" }

function init(args)
  keys = tonumber(args[1] or "100000")
end

function request()
  counter = counter + 1
  if counter % 3 == 0 then
    return wrk.format("PUT", "/update", headers, "k" .. (counter % keys) .. ": w" .. counter)
  end
  return wrk.format("GET", "/")
end
