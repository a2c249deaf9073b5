-- A socket collected at lua_close while a thread is parked in place on it
-- (its accept runs in a gsub callback, which cannot yield on any Lua) and
-- the loop was ended by an error: closing the socket wakes that thread
-- before its call's memory goes.  The Valgrind twin catches a use after
-- free there.
local loop = require'socketloop'
local socket = require'socket'
local srv = loop.wrap(assert(socket.bind('127.0.0.1', 0)))
loop.newthread(function()
	('x'):gsub('x', function() srv:accept() end)
end)
loop.newthread(function() loop.sleep(0.01); error('end of test', 0) end)
local ok, err = pcall(loop.start)
assert(not ok and tostring(err):find('end of test', 1, true), tostring(err))
print('ok')
