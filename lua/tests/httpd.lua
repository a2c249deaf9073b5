-- A small HTTP/1.1 server's request handler, shared by the HTTP tests: it
-- runs on an asocket in a loop thread and on a blocking LuaSocket client
-- in a separate process (httpd_blocking.lua) alike.
--   /big        1 MiB
--   /chunked    the same 1 MiB as a chunked response, with a trailer
--   /echo       the request body back (sent with a length or chunked)
--   /rel        302 to /big, a Location without a scheme
--   /abs        301 to http://<Host>/big
--   /loop       302 to itself
--   /slow       waits `slow` seconds (sleep given), then 200 with nothing
-- Returns the path served.
local D = {}

local MiB = 1024 * 1024
-- 1 MiB that is not one byte repeated: a misplaced block shows.
local parts = {}
for i = 1, MiB / 16 do parts[i] = ('%015x\n'):format(i * 2654435761 % 2^32) end
D.big = table.concat(parts)
assert(#D.big == MiB)

-- Reads a chunked body (RFC 9112 7.1), trailers and all.
local function read_chunked(c)
	local t = {}
	while true do
		local size = tonumber(assert(c:receive'*l'):match'^(%x+)', 16)
		if size == 0 then break end
		t[#t + 1] = assert(c:receive(size))
		assert(c:receive'*l' == '')
	end
	repeat local l = assert(c:receive'*l') until l == ''
	return table.concat(t)
end

local function reply(c, status, extra, body)
	c:send(('HTTP/1.1 %s\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n')
		:format(status, #body, extra))
	c:send(body)
end

function D.handle(c, sleep, slow)
	local method, path = assert(c:receive'*l'):match'^(%u+) (%S+) HTTP/1%.[01]$'
	assert(method, 'bad request line')
	local headers = {}
	while true do
		local l = assert(c:receive'*l')
		if l == '' then break end
		local k, v = l:match'^([^:]+):%s*(.-)%s*$'
		headers[k:lower()] = v
	end
	local body = ''
	if headers['content-length'] then
		body = assert(c:receive(tonumber(headers['content-length'])))
	elseif (headers['transfer-encoding'] or ''):lower():find'chunked' then
		body = read_chunked(c)
	end
	if path == '/chunked' then
		-- The response in chunks of uneven sizes.
		c:send'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
		local i, n = 1, 1
		while i <= #D.big do
			local piece = D.big:sub(i, i + n - 1)
			c:send(('%x\r\n'):format(#piece) .. piece .. '\r\n')
			i, n = i + #piece, n * 3 + 1
		end
		c:send'0\r\nX-Trailer: yes\r\n\r\n'
	elseif path == '/rel' then
		reply(c, '302 Found', 'Location: /big\r\n', 'moved')
	elseif path == '/abs' then
		reply(c, '301 Moved Permanently',
			'Location: http://' .. headers.host .. '/big\r\n', 'moved')
	elseif path == '/loop' then
		reply(c, '302 Found', 'Location: /loop\r\n', '')
	elseif path == '/slow' then
		sleep(slow)
		reply(c, '200 OK', '', '')
	else
		local r = path == '/big' and D.big or body
		reply(c, '200 OK', ('X-Method: %s\r\nX-Got: %d\r\n'):format(method, #body), r)
	end
	c:close()
	return path
end

return D
