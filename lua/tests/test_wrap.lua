-- loop.wrap takes real LuaSocket TCP objects: the descriptor moves over
-- with whatever LuaSocket had already buffered, and never blocks.
local socket = require'socket'
local socketloop = require'socketloop'
local H = require'helpers'
local loop = socketloop()

local srv = assert(socket.bind('127.0.0.1', 0))
local _, port = srv:getsockname()
local raw_client = assert(socket.connect('127.0.0.1', port))
local raw_server = assert(srv:accept())
srv:close()

-- Make LuaSocket read ahead: two lines arrive, one is taken with *l.
assert(raw_client:send'first\nsecond\nthird')
assert(raw_server:receive'*l' == 'first')
assert(raw_server:dirty(), 'LuaSocket should have buffered the rest')

local a = loop.wrap(raw_server)
assert(a.socket == raw_server)
assert(raw_server:getfd() == -1, 'the descriptor moved to the asocket')
assert(a:dirty())

local b = loop.wrap(raw_client)
local got = {}
loop.newthread(function()
	got[1] = a:receive'*l'
	b:send'!\n'
	got[2] = a:receive'*l'
	-- a wrapped master connects later, as the original allowed
	local m = loop.wrap(socket.tcp())
	local probe = loop.newserver('127.0.0.1', 0, function(c) c:send'hi\n'; c:close() end)
	local _, p2 = probe:getsockname()
	assert(m:connect('127.0.0.1', p2) == m)
	got[3] = m:receive'*l'
	m:close()
	probe:close()
	a:close()
	b:close()
end)
H.run(loop, 10)
assert(got[1] == 'second', got[1])
assert(got[2] == 'third!', got[2])
assert(got[3] == 'hi', got[3])
print('ok')
