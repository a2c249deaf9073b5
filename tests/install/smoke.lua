-- The installed Lua module: require'socketloop' through the interpreter's
-- own module path (no build tree), then one echo round trip on a free
-- loopback port.  Bounded: the loop is given 10 s at most.
local loop = require'socketloop'
assert(require'socketloop.coro', 'socketloop.coro is not installed')

local got
local server = assert(loop.newserver('127.0.0.1', 0, function(client)
	local line = client:receive'*l'
	client:send(line:reverse() .. '\n')
	client:close()
end))
local _, port = server:getsockname()
loop.newthread(function()
	local c = assert(loop.connect('127.0.0.1', port))
	assert(c:send'hello\n')
	got = c:receive'*l'
	c:close()
	server:close()
end)
local t0 = loop.now()
while loop.dispatch(0.05) do
	assert(loop.now() - t0 < 10, 'the round trip did not finish in 10 s')
end
assert(got == 'olleh', 'echo round trip gave ' .. tostring(got))
print(('socketloop on %s: ok'):format(type(jit) == 'table' and jit.version or _VERSION))
