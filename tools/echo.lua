-- Echo server on the Lua module, for the echo benchmark:
--   LUA_PATH='build/lua/5.4/?.lua;;' LUA_CPATH='build/lua/5.4/?.so;;' \
--   lua5.4 tools/echo.lua PORT          (PORT 0 picks a free one)
-- or the same with build/lua/jit/ and luajit (the socketloop-luajit row).
local loop = require'socketloop'
local port = tonumber(arg[1] or 0)
local server = loop.newserver('127.0.0.1', port, function(c)
	while true do
		-- Whatever has arrived, 512 bytes at most (the original's
		-- less_is_ok receive), echoed back.
		local data = c:receive(512, nil, true)
		if not data or not c:send(data) then break end
	end
	c:close()
end)
print(('listening on 127.0.0.1:%d'):format(select(2, server:getsockname())))
io.stdout:flush()
loop.start()
