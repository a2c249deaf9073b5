-- Shared by the Lua tests: a watchdog and a few small tools.
local H = {}
H.jit = type(jit) == 'table'
H.version = H.jit and 'jit' or _VERSION:match'%d+%.%d+'
H.under_valgrind = os.getenv'SL_UNDER_VALGRIND' == '1'

-- Runs `loop.start` with a bound: fails if the loop has not finished
-- within `seconds`.
function H.run(loop, seconds)
	local t0 = loop.now()
	while loop.dispatch(0.05) do
		assert(loop.now() - t0 < seconds, 'test timed out')
	end
end

function H.listen(loop, handler)
	local server = loop.newserver('127.0.0.1', 0, handler)
	local _, port = server:getsockname()
	return server, port
end

-- A pair of connected asockets in loop threads: calls f(a, b) in a loop
-- thread, with a the client side and b the server side.
function H.pair(loop, f)
	local server, port
	server, port = H.listen(loop, function(b)
		server:close()
		while not H.client do loop.sleep(0.001) end
		local a = H.client
		H.client = nil
		f(a, b)
	end)
	loop.newthread(function()
		H.client = assert(loop.connect('127.0.0.1', port))
	end)
end

-- A port on 127.0.0.1 that nobody listens on (bound, then closed).
function H.free_port()
	local socket = require'socket'
	local s = assert(socket.bind('127.0.0.1', 0))
	local _, port = s:getsockname()
	s:close()
	return tonumber(port)
end

return H
