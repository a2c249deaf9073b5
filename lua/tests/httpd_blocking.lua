-- The HTTP test server (httpd.lua) on plain blocking LuaSocket, one
-- connection at a time, in a process of its own: prints its port, then
-- serves until a request for /quit, or until nobody has come for 60 s.
local socket = require'socket'
local D = require'httpd'
local server = assert(socket.bind('127.0.0.1', 0))
server:settimeout(60)
local _, port = server:getsockname()
io.stdout:write(port, '\n')
io.stdout:flush()
while true do
	local c = server:accept()
	if not c then break end
	c:settimeout(10)
	local ok, path = pcall(D.handle, c, socket.sleep, 1)
	c:close()
	if ok and path == '/quit' then break end
end
server:close()
