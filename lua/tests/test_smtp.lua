-- LuaSocket's socket.smtp, unchanged, over the loop: a multipart message
-- (a text part and a base64 attachment of 256 KiB) to a small SMTP server
-- on 127.0.0.1 written with the loop itself.  socket.smtp runs inside
-- socket.protect and reads through socket.tp, so its waits park in place.
local socketloop = require'socketloop'
local H = require'helpers'
local socket = require'socket'
local smtp = require'socket.smtp'
local mime = require'mime'
local ltn12 = require'ltn12'
local loop = socketloop()

local bytes = {}
for i = 1, 256 * 1024 do bytes[i] = string.char(i * 7 % 256) end
local binary = table.concat(bytes)

local got = {commands = {}}
local server, port
server, port = H.listen(loop, function(c)
	c:send'220 localhost ready\r\n'
	while true do
		local l = c:receive'*l'
		if not l then break end
		local verb = l:match'^(%u+)'
		got.commands[#got.commands + 1] = verb
		if verb == 'EHLO' or verb == 'HELO' then
			c:send'250-localhost\r\n250 8BITMIME\r\n'
		elseif verb == 'MAIL' then
			got.from = l:match'<(.-)>'
			c:send'250 OK\r\n'
		elseif verb == 'RCPT' then
			got.rcpt = got.rcpt or {}
			got.rcpt[#got.rcpt + 1] = l:match'<(.-)>'
			c:send'250 OK\r\n'
		elseif verb == 'DATA' then
			c:send'354 go on\r\n'
			local t = {}
			while true do
				local d = assert(c:receive'*l')
				if d == '.' then break end
				t[#t + 1] = d:gsub('^%.', '') -- undo dot-stuffing
			end
			got.data = table.concat(t, '\n')
			c:send'250 queued\r\n'
		elseif verb == 'QUIT' then
			c:send'221 bye\r\n'
			break
		else
			c:send'502 no\r\n'
		end
	end
	c:close()
	server:close()
end)

local sent, err
loop.newthread(function()
	local msg = smtp.message{
		headers = {to = '<b@example.test>', subject = 'socketloop test'},
		body = {
			preamble = 'A multipart message.',
			[1] = {headers = {['content-type'] = 'text/plain'},
				body = 'part one\r\n.a line that starts with a dot'},
			[2] = {
				headers = {['content-type'] = 'application/octet-stream',
					['content-transfer-encoding'] = 'BASE64'},
				body = ltn12.source.chain(ltn12.source.string(binary),
					ltn12.filter.chain(mime.encode'base64', mime.wrap())),
			},
		},
	}
	sent, err = smtp.send{from = '<a@example.test>',
		rcpt = {'<b@example.test>', '<c@example.test>'}, source = msg,
		server = '127.0.0.1', port = port, domain = 'localhost',
		create = function() return loop.wrap(socket.tcp()) end}
end)
H.run(loop, 60)
assert(sent == 1, tostring(err))
assert(got.from == 'a@example.test')
assert(#got.rcpt == 2 and got.rcpt[2] == 'c@example.test')
assert(table.concat(got.commands, ' ') == 'EHLO MAIL RCPT RCPT DATA QUIT',
	table.concat(got.commands, ' '))
local data = got.data
local boundary = data:match'Content%-Type: multipart/mixed; boundary="([^"]+)"'
assert(boundary, 'no multipart boundary')
local _, marks = data:gsub('\n%-%-' .. boundary:gsub('%p', '%%%0'), '')
assert(marks == 3, 'boundaries: ' .. marks) -- two parts and the end
assert(data:find('part one\n.a line that starts with a dot', 1, true),
	'text part missing')
-- The attachment's body: after the blank line that ends its headers.
local at = assert(data:find('Content-Transfer-Encoding: BASE64', 1, true))
local b64 = data:match('\n\n(.-)\n%-%-', at)
assert(b64, 'attachment missing')
assert(mime.unb64((b64:gsub('%s', ''))) == binary, 'attachment differs')
print(('parts=%d bytes=%d ok'):format(marks - 1, #data))
