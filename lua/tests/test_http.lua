-- LuaSocket's socket.http, unchanged, over the loop: GET and POST of
-- 1 MiB, chunked request and response bodies.  socket.http runs its work
-- inside socket.protect (a C pcall), so every wait parks in place; the
-- server on 127.0.0.1 is written with the loop itself.
local socketloop = require'socketloop'
local H = require'helpers'
local socket = require'socket'
local http = require'socket.http'
local ltn12 = require'ltn12'
local loop = socketloop()

local MiB = 1024 * 1024
-- 1 MiB that is not one byte repeated: a misplaced block shows.
local parts = {}
for i = 1, MiB / 16 do parts[i] = ('%015x\n'):format(i * 2654435761 % 2^32) end
local big = table.concat(parts)
assert(#big == MiB)

-- Reads a chunked body (RFC 9112 7.1), trailers and all.
local function read_chunked(c)
	local t = {}
	while true do
		local size = tonumber(assert(c:receive'*l'):match'^(%x+)', 16)
		if size == 0 then break end
		t[#t + 1] = assert(c:receive(size))
		assert(c:receive'*l' == '')
	end
	repeat local l = assert(c:receive'*l') until l == ''
	return table.concat(t)
end

local served = 0
local server, port = H.listen(loop, function(c)
	local method, path = assert(c:receive'*l'):match'^(%u+) (%S+) HTTP/1%.[01]$'
	assert(method, 'bad request line')
	local headers = {}
	while true do
		local l = assert(c:receive'*l')
		if l == '' then break end
		local k, v = l:match'^([^:]+):%s*(.-)%s*$'
		headers[k:lower()] = v
	end
	local body = ''
	if headers['content-length'] then
		body = assert(c:receive(tonumber(headers['content-length'])))
	elseif (headers['transfer-encoding'] or ''):lower():find'chunked' then
		body = read_chunked(c)
	end
	served = served + 1
	if path == '/chunked' then
		-- The response in chunks of uneven sizes.
		c:send'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
		local i, n = 1, 1
		while i <= #big do
			local piece = big:sub(i, i + n - 1)
			c:send(('%x\r\n'):format(#piece) .. piece .. '\r\n')
			i, n = i + #piece, n * 3 + 1
		end
		c:send'0\r\nX-Trailer: yes\r\n\r\n'
	else
		local reply = path == '/big' and big or body
		c:send(('HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Method: %s\r\n'
			.. 'X-Got: %d\r\nConnection: close\r\n\r\n'):format(#reply, method, #body))
		c:send(reply)
	end
	c:close()
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
