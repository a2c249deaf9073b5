-- Long lines, prefixes that cover the count, and polling with timeout 0.
local socketloop = require'socketloop'
local socket = require'socket'
local H = require'helpers'
local loop = socketloop()

local function check(got, want, what)
	for i = 1, math.max(#got, #want) do
		if got[i] ~= want[i] then
			error(('%s: result %d is %s, want %s'):format(what, i,
				tostring(got[i]), tostring(want[i])), 2)
		end
	end
end

local function pack(...) return {n = select('#', ...), ...} end

-- Over-long lines: the limit's worth and an error, then the next line.
H.pair(loop, function(a, b)
	loop.newthread(function()
		a:send('0123456789ABCDEFGHIJ\n12345678\n')
		a:send(('L'):rep(1536 * 1024) .. '\nnext\n')
		a:close()
	end)
	assert(b:setmaxline(8) == 1)
	check(pack(b:receive()), {nil, 'line too long', '01234567'}, 'limit 8')
	check(pack(b:receive()), {'12345678'}, 'after the long line')
	assert(b:setmaxline(1024 * 1024) == 1)
	local r = pack(b:receive())
	assert(r[1] == nil and r[2] == 'line too long', tostring(r[2]))
	assert(#r[3] == 1024 * 1024 and not r[3]:find'[^L]')
	check(pack(b:receive()), {'next'}, 'after the 1.5 MiB line')
	check(pack(b:receive()), {nil, 'closed', ''}, 'the end')
	assert(not pcall(b.setmaxline, b, 0))
	b:close()
end)
H.run(loop, 30)

-- A prefix that covers the count returns at once, as in LuaSocket,
-- whether the socket is open (with nothing to read) or closed.
local ref = {}
do
	local srv = assert(socket.bind('127.0.0.1', 0))
	local host, port = srv:getsockname()
	local c = assert(socket.connect(host, port))
	local s = assert(srv:accept())
	s:settimeout(1)
	ref.open = {pack(s:receive(3, 'abcd')), pack(s:receive(0, 'pp'))}
	s:close()
	ref.closed = {pack(s:receive(1, 'p')), pack(s:receive()),
		pack(s:receive(5, 'ab')), pack(s:receive('*a'))}
	c:close()
	srv:close()
end
H.pair(loop, function(a, b)
	b:settimeout(1)
	local t0 = loop.now()
	local got = {pack(b:receive(3, 'abcd')), pack(b:receive(0, 'pp'))}
	assert(loop.now() - t0 < 0.5, 'a covered count waited for data')
	b:close()
	for i, r in ipairs(ref.open) do check(got[i], r, 'open #' .. i) end
	got = {pack(b:receive(1, 'p')), pack(b:receive()), pack(b:receive(5, 'ab')),
		pack(b:receive('*a'))}
	for i, r in ipairs(ref.closed) do check(got[i], r, 'closed #' .. i) end
	a:close()
end)
H.run(loop, 10)

-- Polling: timeout 0 and a sleep between tries must see every piece of a
-- stream that comes in pieces, long after the socket first waited.
H.pair(loop, function(a, b)
	local pieces, want = 20, {}
	for i = 1, pieces do want[i] = ('piece %d;'):format(i) end
	loop.newthread(function()
		for i = 1, pieces do
			assert(a:send(want[i]))
			loop.sleep(0.005)
		end
		a:close()
	end)
	b:settimeout(0)
	local got, tries = {}, 0
	while true do
		tries = tries + 1
		assert(tries < 20000, 'polling never saw the stream end')
		local data, err, partial = b:receive(64, nil, true)
		data = data or partial
		if data and #data > 0 then got[#got + 1] = data end
		if err == 'closed' then break end
		assert(data or err == 'timeout', err)
		loop.sleep(0.001)
	end
	assert(table.concat(got) == table.concat(want), table.concat(got))
	b:close()
end)
H.run(loop, 30)

-- Polling send: a peer that reads slowly fills the socket; sends with
-- timeout 0 go on once it has read.
H.pair(loop, function(a, b)
	local total, chunk = 1024 * 1024, ('x'):rep(65536)
	local received = 0
	assert(a:setoption('send-buffer-size', 16384))
	assert(b:setoption('recv-buffer-size', 16384))
	loop.newthread(function()
		while received < total do
			local d, err, p = b:receive(16384, nil, true)
			d = d or p
			received = received + #d
			if err then break end
			loop.sleep(0.002)
		end
	end)
	a:settimeout(0)
	local sent, tries, full = 0, 0, false
	while sent < total do
		tries = tries + 1
		assert(tries < 100000, 'polling sends never finished')
		local last, err, partial = a:send(chunk, 1, math.min(#chunk, total - sent))
		local n = last or partial
		sent = sent + n
		if err == 'timeout' then full = true else assert(last, err) end
		loop.sleep(0.001)
	end
	assert(full, 'the socket never filled')
	while received < total do loop.sleep(0.01) end
	a:close()
	b:close()
end)
H.run(loop, 60)
print('ok')
