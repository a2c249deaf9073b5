-- Socket methods and their LuaSocket return conventions.
local socketloop = require'socketloop'
local H = require'helpers'
local loop = socketloop()
local checks = 0
local function check(c, msg)
	assert(c, msg)
	checks = checks + 1
end

-- connect refused: nil, 'connection refused'
loop.newthread(function()
	local probe = assert(require'socket'.bind('127.0.0.1', 0))
	local _, port = probe:getsockname()
	probe:close()
	local c, err = loop.connect('127.0.0.1', port)
	check(c == nil and err == 'connection refused', err)
end)
H.run(loop, 10)

H.pair(loop, function(a, b)
	-- addresses, options, fd, stats
	local ip, port, fam = a:getpeername()
	check(ip == '127.0.0.1' and type(port) == 'number' and fam == 'inet')
	check(a:setoption('tcp-nodelay', true) == 1)
	check(a:getoption('tcp-nodelay') == true)
	check(a:setoption('keepalive', true) == 1 and a:getoption'keepalive')
	check(type(a:getfd()) == 'number' and a:getfd() >= 0)
	check(a:settimeout(1) == 1 and a:settimeout(nil, 't') == 1)

	-- send(data, i, j): lastIndex, as string.sub counts
	check(a:send('0123456789', 3, 5) == 5)
	check(b:receive(3) == '234')
	check(a:send('abc', 5) == 4) -- nothing to send: i - 1
	check(a:send('') == 0)
	check(a:send('xyz', -2) == 3)
	check(b:receive(2) == 'yz')
	-- the original's receive(n, prefix, less_is_ok): what has come
	check(a:send'xy' == 2)
	check(b:receive(10, 'p', true) == 'pxy')

	-- two readers: the second gets an error at once, the first still works
	local got
	loop.newthread(function() got = {b:receive'*l'} end)
	local r, e = b:receive'*l'
	check(r == nil and e == 'Operation already in progress', e)
	a:send'line\n'
	loop.sleep(0.01)
	check(got[1] == 'line')

	-- timeouts: 'b' and 't', with the partial data
	b:settimeout(0.05)
	a:send'part'
	local d, err, partial = b:receive(10)
	check(d == nil and err == 'timeout' and partial == 'part', err)
	b:settimeout(-1)
	b:settimeout(0.05, 't')
	local t0 = loop.now()
	d, err, partial = b:receive'*l'
	check(d == nil and err == 'timeout' and partial == '')
	check(loop.now() - t0 < 1)
	b:settimeout(nil, 't')
	b:settimeout(0) -- try once
	d, err = b:receive(1)
	check(d == nil and err == 'timeout')
	b:settimeout(-1)

	-- getstats counts bytes
	local rcv, snt, age = a:getstats()
	check(snt == 16 and rcv == 0 and age >= 0, snt)

	-- a send while a receive waits on the same socket: one call per
	-- direction at once, each with its own op; then the waiting side's
	-- op serves the next calls of either direction
	local rgot
	loop.newthread(function() rgot = {b:receive(5)} end)
	check(b:send'hello' == 5)
	check(a:receive(5) == 'hello')
	check(a:send'world' == 5)
	loop.sleep(0.01)
	check(rgot[1] == 'world', rgot[2])
	check(b:send'again' == 5 and a:receive(5) == 'again')

	-- close while another thread reads: the reader wakes with 'closed'
	local res
	loop.newthread(function() res = {b:receive'*l'} end)
	b:close()
	loop.sleep(0.01)
	check(res[1] == nil and res[2] == 'closed', res[2])
	check(b:receive() == nil)
	check(b:getfd() == -1)

	-- peer closed: receive gives 'closed' with the partial data
	a:send'tail'
	a:close()
end)
H.run(loop, 10)

-- large transfer, verified
local N = H.under_valgrind and 1 or 8 -- MiB
H.pair(loop, function(a, b)
	local chunk = {}
	for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
	chunk = string.rep(table.concat(chunk), 4096) -- 1 MiB
	loop.newthread(function()
		for i = 1, N do assert(a:send(chunk) == #chunk) end
		a:close()
	end)
	local total = 0
	while true do
		local d, err, partial = b:receive(65536)
		d = d or partial
		for k = 1, #d, 4099 do
			check((total + k - 1) % 256 == d:byte(k), 'byte ' .. (total + k))
		end
		total = total + #d
		if err then check(err == 'closed', err) break end
	end
	check(total == N * 1024 * 1024, total)
	b:close()
end)
H.run(loop, 60)

-- accept returns nil, err (never raises) on a closed server
loop.newthread(function()
	local srv = loop.newserver('127.0.0.1', 0, function() end)
	srv:close()
	local c, err = srv:accept()
	check(c == nil and err == 'closed', err)
end)
H.run(loop, 10)
print('ok', checks)
