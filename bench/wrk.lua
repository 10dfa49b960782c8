-- Request generator for bench/run (wrk 4.x). The first script argument picks the load:
--
--   register <prefix> <csrf cookie> <csrf token>
--       POST / with the form's CSRF token and cookie (one pair, reused: a double-submit token is
--       valid for 24 h) and a unique address per request: <prefix>-<thread>-<n>@example.com
--   confirm <tokens file> <thread count>
--       GET /confirm/<token>; thread t takes lines t, t+T, t+2T, ... of the file, each once
--   get
--       GET /
--
-- At the end one line `BENCH {json}` gives the counts and latency percentiles (microseconds).

local threads = {}
local counter = 0

function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    mode = args[1]
    n = 0
    exhausted = 0
    if mode == "register" then
        prefix, cookie, token = args[2], args[3], args[4]
        wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
        wrk.headers["Cookie"] = "csrf=" .. cookie
    elseif mode == "confirm" then
        local nthreads = tonumber(args[3])
        mine = {}
        local i = 0
        for line in io.lines(args[2]) do
            if i % nthreads == tid then
                mine[#mine + 1] = line
            end
            i = i + 1
        end
    end
end

function request()
    n = n + 1
    if mode == "register" then
        local body = "csrf_token=" .. token .. "&email=" .. prefix .. "-" .. tid .. "-" .. n
            .. "%40example.com&website="
        return wrk.format("POST", "/", nil, body)
    elseif mode == "confirm" then
        local t = mine[n]
        if t == nil then
            -- Out of tokens: repeat the last one (no longer a first-time confirmation); the
            -- harness reports the run as invalid when this happens.
            exhausted = exhausted + 1
            t = mine[#mine]
        end
        return wrk.format("GET", "/confirm/" .. t)
    end
    return wrk.format("GET", "/")
end

function done(summary, latency, requests)
    local ex = 0
    for _, t in ipairs(threads) do
        ex = ex + (tonumber(t:get("exhausted")) or 0)
    end
    local e = summary.errors
    io.write(string.format(
        'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,'
            .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,'
            .. '"p99_us":%d,"max_us":%d,"mean_us":%.1f,"exhausted":%d}\n',
        summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
        e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.max, latency.mean, ex))
end
