-- connect on a master that has a descriptor of its own: the options and
-- the local address set before it stick, and the descriptor is the same.
local socketloop = require'socketloop'
local socket = require'socket'
local H = require'helpers'
local loop = socketloop()

local accepted = {}
local server, port = H.listen(loop, function(c)
	accepted[#accepted + 1] = {c:getpeername()}
	c:receive'*a'
	c:close()
end)

loop.newthread(function()
	-- A wrapped tcp4() master, options set first.
	local m = loop.wrap(socket.tcp4())
	assert(m.class == 'tcp{master}', m.class)
	local fd = m:getfd()
	assert(fd >= 0)
	assert(m:setoption('keepalive', true) == 1)
	assert(m:setoption('tcp-nodelay', true) == 1)
	assert(m:bind('127.0.0.1', 0) == 1)
	local _, lport = m:getsockname()
	local c = assert(m:connect('127.0.0.1', port))
	assert(c == m and m.class == 'tcp{client}', m.class)
	assert(m:getfd() == fd, 'the descriptor changed')
	assert(m:getoption'keepalive' == true)
	assert(m:getoption'tcp-nodelay' == true)
	local _, lport2 = m:getsockname()
	assert(tostring(lport2) == tostring(lport), 'the local address changed')
	m:close()
	-- A master of our own without a descriptor gets one on connect.
	local m2 = loop.wrap(socket.tcp())
	local c2 = assert(m2:connect('127.0.0.1', port))
	assert(c2.class == 'tcp{client}')
	c2:close()
	-- A refused connect on a master with a descriptor: an error, and the
	-- socket is a client, as in LuaSocket.
	local m3 = loop.wrap(socket.tcp4())
	local ok, err = m3:connect('127.0.0.1', H.free_port())
	assert(ok == nil and err == 'connection refused', tostring(err))
	assert(m3.class == 'tcp{client}')
	m3:close()
	while #accepted < 2 do loop.sleep(0.005) end
	server:close()
end)
H.run(loop, 20)
assert(#accepted == 2)
print('ok')
