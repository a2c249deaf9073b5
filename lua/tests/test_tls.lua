-- TLS on the loop: asocket:starttls with LuaSec's parameters against
-- openssl s_server (and its errors), a LuaSec connection object driven by
-- the loop (loop.wrap), and HTTPS through socket.http, unchanged, with
-- loop.tls_create: a GET of 1 MiB from s_server -WWW and a POST of 1 MiB
-- to a TLS server written with the loop.  Certificates are made at test
-- time by tests/tls/make-certs.sh.
local socketloop = require'socketloop'
local H = require'helpers'
local socket = require'socket'
local http = require'socket.http'
local ltn12 = require'ltn12'
local loop = socketloop()

local here = debug.getinfo(1, 'S').source:match'^@(.*)/[^/]*$' or '.'
local dir = os.tmpname()
os.remove(dir)
assert(os.execute('mkdir ' .. dir))
local function sh(cmd) local r = os.execute(cmd); return r == true or r == 0 end
assert(sh(('sh %s/../../tests/tls/make-certs.sh %s'):format(here, dir)))
local function path(name) return dir .. '/' .. name end

local MiB = 1024 * 1024
local parts = {}
for i = 1, MiB / 16 do parts[i] = ('%015x\n'):format(i * 2654435761 % 2^32) end
local big = table.concat(parts)
local f = assert(io.open(path'big.txt', 'wb'))
f:write(big)
f:close()

-- openssl s_server in the background: -rev reverses lines, -WWW serves
-- files from its directory.
local function s_server(port, ...)
	local pidfile = path('pid' .. port)
	assert(sh(('cd %s && openssl s_server -accept 127.0.0.1:%d -cert ec.pem ' ..
		'-key ec.key %s >/dev/null 2>&1 & echo $! > %s')
		:format(dir, port, table.concat({...}, ' '), pidfile)))
	local p = assert(io.open(pidfile))
	local pid = p:read'*l'
	p:close()
	return pid
end

local function connect(port)
	for _ = 1, 250 do
		local c = loop.connect('127.0.0.1', port)
		if c then return c end
		loop.sleep(0.02)
	end
	error('nothing listens on ' .. port)
end

local client_params = {mode = 'client', protocol = 'tlsv1_3', verify = 'peer',
	cafile = path'ca.pem', servername = 'localhost', options = 'all',
	alpn = {'h2', 'http/1.1'}}

-- s_server serves one connection at a time: one each for starttls, the
-- LuaSec object and socket.http.
local rev_port, sec_port, www_port = H.free_port(), H.free_port(), H.free_port()
local pids = {s_server(rev_port, '-rev -alpn http/1.1'), s_server(sec_port, '-rev'),
	s_server(www_port, '-WWW')}
local wait = H.under_valgrind and 60 or 10
local done = {}

-- starttls, every method after it, and verification errors.
loop.newthread(function()
	local c = connect(rev_port)
	c:settimeout(wait)
	assert(c:starttls(client_params) == c)
	assert(c:info().protocol == 'TLSv1.3')
	assert(c:info().alpn == 'http/1.1')
	assert(c:send'hello\n' == 6)
	assert(c:receive'*l' == 'olleh')
	c:close()

	local p = {}
	for k, v in pairs(client_params) do p[k] = v end
	p.servername = 'example.com'
	c = connect(rev_port)
	local ok, err = c:starttls(p)
	assert(ok == nil and err:find'hostname mismatch', err)
	c:close()
	p.servername, p.cafile = 'localhost', path'otherca.pem'
	c = connect(rev_port)
	ok, err = c:starttls(p)
	assert(ok == nil and err:find'certificate verify failed', err)
	c:close()
	c = connect(rev_port)
	ok, err = c:starttls{mode = 'sideways'}
	assert(ok == nil and err == 'invalid mode', err)
	c:close()
	done.starttls = true
end)

-- A LuaSec object, its handshake and I/O parked on the loop.
local ssl = require'ssl'
loop.newthread(function()
	local t
	for _ = 1, 250 do
		t = socket.connect('127.0.0.1', sec_port)
		if t then break end
		loop.sleep(0.02)
	end
	local conn = assert(ssl.wrap(assert(t), {mode = 'client',
		protocol = 'tlsv1_2', verify = 'peer', cafile = path'ca.pem'}))
	local w = loop.wrap(conn)
	w:settimeout(wait)
	assert(w:dohandshake())
	assert(w:send('abc\n'))
	assert(w:receive'*l' == 'cba')
	w:close()
	done.luasec = true
end)

-- HTTPS with socket.http: GET from s_server, POST to our own server.
local server, post_port
server, post_port = H.listen(loop, function(c)
	server:close()
	c:settimeout(wait)
	assert(c:starttls{mode = 'server', protocol = 'any',
		certificate = path'ec.pem', key = path'ec.key'})
	local n
	while true do
		local l = assert(c:receive'*l')
		if l == '' then break end
		n = n or tonumber(l:lower():match'^content%-length:%s*(%d+)')
	end
	local body = assert(c:receive(n))
	local reply = body == big and 'same' or 'different'
	c:send(('HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n' ..
		'\r\n%s'):format(#reply, reply))
	c:close()
end)

loop.newthread(function()
	local create = loop.tls_create{mode = 'client', verify = 'peer',
		cafile = path'ca.pem'}
	for _ = 1, 250 do
		if sh(('openssl s_client -connect 127.0.0.1:%d </dev/null ' ..
			'>/dev/null 2>&1'):format(www_port)) then break end
		loop.sleep(0.02)
	end
	local got = {}
	-- Addresses, not names: the certificates hold 127.0.0.1 too, and a
	-- name would start the resolver's threads.
	local ok, code = http.request{url = ('https://127.0.0.1:%d/big.txt')
		:format(www_port), create = create, sink = ltn12.sink.table(got)}
	assert(ok == 1 and code == 200, tostring(code))
	assert(table.concat(got) == big, 'GET body differs')

	-- The loop's own client: https with the request's LuaSec parameters,
	-- and by default checked against the system's CAs, which do not
	-- know the test's CA.
	got = {}
	local body, hcode = loop.http.request{url = ('https://127.0.0.1:%d/big.txt')
		:format(www_port), tls = {mode = 'client', verify = 'peer',
		cafile = path'ca.pem'}, sink = ltn12.sink.table(got)}
	assert(body == 1 and hcode == 200, 'loop.http GET: ' .. tostring(hcode))
	assert(table.concat(got) == big, 'loop.http GET body differs')
	body, hcode = loop.http.request(('https://127.0.0.1:%d/big.txt')
		:format(www_port))
	assert(body == nil and tostring(hcode):match'certificate verify failed',
		'loop.http default verification: ' .. tostring(hcode))

	got = {}
	ok, code = http.request{url = ('https://127.0.0.1:%d/post'):format(post_port),
		method = 'POST', create = create, source = ltn12.source.string(big),
		headers = {['content-length'] = #big}, sink = ltn12.sink.table(got)}
	assert(ok == 1 and code == 200, tostring(code))
	assert(table.concat(got) == 'same')
	done.https = true
end)

local ok, err = pcall(H.run, loop, H.under_valgrind and 300 or 60)
for _, pid in ipairs(pids) do sh('kill ' .. pid) end
sh('rm -rf ' .. dir)
assert(ok, err)
assert(done.starttls and done.https and done.luasec)
print('ok')
