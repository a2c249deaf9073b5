-- LuaSocket's socket.http, unchanged, over the loop: GET and POST of
-- 1 MiB, chunked request and response bodies.  socket.http runs its work
-- inside socket.protect (a C pcall), so every wait parks in place; the
-- server on 127.0.0.1 (httpd.lua) runs on the loop itself.
local socketloop = require'socketloop'
local H = require'helpers'
local socket = require'socket'
local http = require'socket.http'
local ltn12 = require'ltn12'
local loop = socketloop()

local D = require'httpd'
local MiB = 1024 * 1024
local big = D.big

local served = 0
local server, port = H.listen(loop, function(c)
	D.handle(c, loop.sleep, 1)
	served = served + 1
end)

local base = 'http://127.0.0.1:' .. port
local function create() return loop.wrap(socket.tcp()) end
local done = {}

loop.newthread(function()
	-- GET of 1 MiB.
	local t = {}
	local r, code, h = http.request{url = base .. '/big', create = create,
		sink = ltn12.sink.table(t)}
	assert(r == 1 and code == 200, tostring(code))
	assert(h['x-method'] == 'GET')
	assert(table.concat(t) == big, 'GET body differs')
	done[#done + 1] = 'get'

	-- POST of 1 MiB with a length.
	t = {}
	r, code, h = http.request{url = base .. '/echo', method = 'POST',
		create = create, source = ltn12.source.string(big),
		headers = {['content-length'] = tostring(#big)},
		sink = ltn12.sink.table(t)}
	assert(r == 1 and code == 200, tostring(code))
	assert(h['x-got'] == tostring(MiB))
	assert(table.concat(t) == big, 'POST body differs')
	done[#done + 1] = 'post'

	-- POST without a length: socket.http sends the body chunked.
	t = {}
	r, code, h = http.request{url = base .. '/echo', method = 'POST',
		create = create, source = ltn12.source.string(big),
		sink = ltn12.sink.table(t)}
	assert(r == 1 and code == 200, tostring(code))
	assert(h['x-got'] == tostring(MiB), h['x-got'])
	assert(table.concat(t) == big, 'chunked POST body differs')
	done[#done + 1] = 'post-chunked'

	-- A chunked response.
	t = {}
	r, code = http.request{url = base .. '/chunked', create = create,
		sink = ltn12.sink.table(t)}
	assert(r == 1 and code == 200, tostring(code))
	assert(table.concat(t) == big, 'chunked response differs')
	done[#done + 1] = 'get-chunked'

	-- The simple form, from a user coroutine (an iterator of bodies).
	local bodies = coroutine.wrap(function()
		for _ = 1, 2 do
			local body, c2 = http.request{url = base .. '/echo', method = 'POST',
				create = create, source = ltn12.source.string'ping',
				headers = {['content-length'] = '4'}}
			assert(body == 1 and c2 == 200)
			coroutine.yield(c2)
		end
	end)
	assert(bodies() == 200 and bodies() == 200)
	done[#done + 1] = 'coroutine'

	-- A refused connection comes back as LuaSocket's nil, err.
	local r2, err = http.request{url = 'http://127.0.0.1:' .. H.free_port() .. '/',
		create = create}
	assert(r2 == nil and err == 'connection refused', tostring(err))
	done[#done + 1] = 'refused'
	server:close()
end)
H.run(loop, 60)
assert(#done == 6, table.concat(done, ' '))
assert(served == 6, 'requests served: ' .. served)
print(table.concat(done, ' ') .. ' ok')
