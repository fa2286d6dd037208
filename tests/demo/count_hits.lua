-- wrk script for the prefork-demo tests: GET /hit for the first SWITCH
-- seconds (script argument 1), then GET /ping until wrk stops, and count
-- the responses by kind.
--
-- Why the switch: when wrk's duration ends it drops the requests still in
-- flight, which the server may already have answered and counted. Ending
-- with /ping (not counted) means every /hit request wrk sent was answered
-- and seen by wrk before it stopped, so the server's hit counter can be
-- compared with wrk's count exactly.
--
-- done() prints one line: "DEMO hit_200=N ping_200=N status_429=N other=N".

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  switch_at = os.time() + tonumber(args[1] or "2")
  hit_request = wrk.format("GET", "/hit")
  ping_request = wrk.format("GET", "/ping")
  hit_200, ping_200, status_429, other = 0, 0, 0, 0
end

function request()
  if os.time() < switch_at then
    return hit_request
  end
  return ping_request
end

function response(status, headers, body)
  if status == 200 and string.sub(body, 1, 8) == '{"hits":' then
    hit_200 = hit_200 + 1
  elseif status == 200 and body == "pong\n" then
    ping_200 = ping_200 + 1
  elseif status == 429 then
    status_429 = status_429 + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local totals = {hit_200 = 0, ping_200 = 0, status_429 = 0, other = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  local e = summary.errors
  io.write(string.format(
      "DEMO hit_200=%d ping_200=%d status_429=%d other=%d " ..
      "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      totals.hit_200, totals.ping_200, totals.status_429, totals.other,
      e.connect, e.read, e.write, e.timeout))
end
