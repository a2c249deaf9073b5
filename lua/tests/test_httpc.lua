-- loop.http.request against the loop's own server and against a blocking
-- LuaSocket server in another process (httpd_blocking.lua): GET and POST
-- of 1 MiB, chunked both ways, redirects (Location with and without a
-- scheme, the caller's table without one), timeouts, a refused connect.
-- With the server in the same loop, a hop that blocked would hang.
local socketloop = require'socketloop'
local H = require'helpers'
local ltn12 = require'ltn12'
local D = require'httpd'
local big = D.big

local loop = socketloop()
local server, port = H.listen(loop, function(c) D.handle(c, loop.sleep, 1) end)

-- The other process, started with this interpreter.
local i = -1
while arg[i - 1] do i = i - 1 end
local here = debug.getinfo(1, 'S').source:match'^@(.*/)' or './'
local proc = assert(io.popen(('LUA_PATH=%q %q %q'):format(here .. '?.lua;' ..
	(os.getenv'LUA_PATH' or ';;'), arg[i], here .. 'httpd_blocking.lua'), 'r'))
local other = assert(tonumber(proc:read'*l'), 'no port from the other server')

local done = {}
local function suite(base, name)
	local http = loop.http
	-- Simple form: GET, then POST of 1 MiB.
	local body, code, h = http.request(base .. '/big')
	assert(code == 200 and body == big, tostring(code))
	body, code, h = http.request(base .. '/echo', big)
	assert(code == 200 and h['x-method'] == 'POST' and body == big)
	-- Generic form: chunked request body (no length), chunked response.
	local t = {}
	local r
	r, code, h = http.request{url = base .. '/echo', method = 'POST',
		source = ltn12.source.string(big), sink = ltn12.sink.table(t)}
	assert(r == 1 and code == 200 and h["x-got"] == tostring(#big), tostring(code) .. " " .. tostring(h and h["x-got"]))
	assert(table.concat(t) == big, 'chunked POST differs')
	t = {}
	r, code, h = http.request{url = base .. '/chunked', sink = ltn12.sink.table(t)}
	assert(r == 1 and code == 200 and table.concat(t) == big, 'chunked GET differs')
	-- Redirects: a Location without a scheme, then one with it; the hops
	-- stay on the loop (LuaSocket's would connect with a blocking socket).
	for _, path in ipairs{'/rel', '/abs'} do
		body, code, h = http.request(base .. path)
		assert(code == 200 and body == big, path .. ' ' .. tostring(code))
		assert(h.location, 'the redirect is told')
	end
	t = {}
	r, code = http.request{url = base .. '/rel', redirect = false,
		sink = ltn12.sink.table(t)}
	assert(r == 1 and code == 302 and table.concat(t) == 'moved')
	-- maxredirects bounds a loop of redirects: the last answer comes back.
	body, code = http.request{url = base .. '/loop', maxredirects = 3}
	assert(body == 1 and code == 302, tostring(code))
	-- A server too slow for the timeout.
	r, code = http.request{url = base .. '/slow', timeout = 0.2}
	assert(r == nil and code == 'timeout', tostring(code))
	done[#done + 1] = name
end

loop.newthread(function()
	-- Another loop thread keeps running while requests wait.
	local ticks, stop = 0, false
	loop.newthread(function()
		while not stop do ticks = ticks + 1; loop.sleep(0.01) end
	end)
	suite('http://127.0.0.1:' .. port, 'in-loop')
	suite('http://127.0.0.1:' .. other, 'blocking-process')
	local r, err = loop.http.request('http://127.0.0.1:' .. H.free_port() .. '/')
	assert(r == nil and err == 'connection refused', tostring(err))
	done[#done + 1] = 'refused'
	-- The scheme hook: a create of the caller's, on every hop.
	local made = 0
	r = loop.http.request{url = 'http://127.0.0.1:' .. port .. '/rel',
		sink = ltn12.sink.null(),
		create = function() made = made + 1; return loop.tcp() end}
	assert(r == 1 and made == 2, made)
	done[#done + 1] = 'create'
	loop.http.request('http://127.0.0.1:' .. other .. '/quit')
	stop = true
	assert(ticks > 0)
	server:close()
end)
H.run(loop, 90)
proc:close()
assert(#done == 4, table.concat(done, ' '))
print(table.concat(done, ' ') .. ' ok')
