-- wrk script of the benchmarks. With arguments (after `--`): a path template and ranges, e.g.
--   -- /ogc/collections/land_parcels/items/{fid} fid 1 200000
-- each request asks the template with every {name} replaced by a random integer in its range, so that
-- no cache (the server's, the database's) answers from the previous request. Without: the URL given.
-- After the run it prints one machine-readable line: requests/s, p50 and p95 latency (ms), errors.
local template = nil
local ranges = {}
local counter = 0

init = function(args)
  if #args > 0 then
    template = args[1]
    for i = 2, #args, 3 do
      ranges[#ranges + 1] = { args[i], tonumber(args[i + 1]), tonumber(args[i + 2]) }
    end
  end
  math.randomseed(os.time() * 1000 + counter + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

request = function()
  if template == nil then
    return wrk.format()
  end
  local path = template
  for _, r in ipairs(ranges) do
    path = path:gsub("{" .. r[1] .. "}", tostring(math.random(r[2], r[3])))
  end
  return wrk.format(nil, path)
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.1f %.2f %.2f %d %d\n", summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, errors, summary.requests))
end
