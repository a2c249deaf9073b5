-- The luv (libuv for Lua) echo server the Lua echo benchmark compares
-- against: lua5.1 tools/echo-luv.lua PORT (Debian's lua-luv).
local uv = require'luv'
local port = tonumber(arg[1] or 0)
local server = uv.new_tcp()
assert(server:bind('127.0.0.1', port))
assert(server:listen(16384, function(err)
	assert(not err, err)
	local c = uv.new_tcp()
	server:accept(c)
	c:read_start(function(rerr, data)
		if rerr or not data then
			c:close()
		else
			c:write(data)
		end
	end)
end))
print(('listening on 127.0.0.1:%d'):format(server:getsockname().port))
io.stdout:flush()
uv.run()
