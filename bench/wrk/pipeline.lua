-- GET / pipelined: init builds <depth> requests (first script argument, default 16) into one string
-- and request() hands it out whole. wrk counts answers, so req/s is answers per second; its latency
-- is recorded once per batch (write of 16 → the 16th answer), and its coordinated-omission correction
-- (expected interval = run time / answers per connection) is then 16× too eager: the upper
-- percentiles of a pipelined run are not meaningful (wrk prints 0 for p99).
local batch

function init(args)
  local depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format("GET", "/")
  end
  batch = table.concat(r)
end

function request()
  return batch
end

