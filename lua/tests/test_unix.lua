-- loop.wrap of LuaSocket's Unix-domain stream objects (socket.unix):
-- the same steps on LuaSocket's blocking object and on the wrapped one
-- give the same results (classes, tostring, bind, listen, connect,
-- accept, send, receive, close, options, errors); then an async server
-- and async clients talk through a path and through an abstract name,
-- several at once, without blocking the loop.
local socket = require'socket'
local unix = require'socket.unix'
local socketloop = require'socketloop'
local H = require'helpers'
local loop = socketloop()

local stream = unix.stream or unix -- a table with stream() in 3.x
local checks = 0
local function check(c, msg)
	if not c then error(msg or 'check failed', 2) end
	checks = checks + 1
end
local function pack(...) return {n = select('#', ...), ...} end

-- Socket paths of our own, removed at the end (and before, in case).
local paths = {}
local function new_path(tag)
	local p = os.tmpname() -- a fresh name in /tmp; the file it made goes
	os.remove(p)
	p = p .. '-' .. tag
	paths[#paths + 1] = p
	return p
end

-- A result as text: its own path reads PATH, addresses read 0x.  As in
-- the TCP tests, numbers compare by value (LuaSocket pushes floats, 1.0
-- on Lua 5.3+, where the module pushes integers) and trailing nils
-- (LuaSocket's send and receive add two) are not counted.
local function show(r, path)
	local out = {}
	local n = r.n
	while n > 0 and r[n] == nil do n = n - 1 end
	for i = 1, n do
		local v = r[i]
		if type(v) == 'string' then
			if path then v = v:gsub(path:gsub('%p', '%%%0'), 'PATH') end
			v = v:gsub('0x%x+', '0x'):gsub(': %(nil%)', ': 0x')
			out[i] = ('%q'):format(v)
		elseif type(v) == 'table' then
			local keys = {}
			for k, x in pairs(v) do keys[#keys + 1] = k .. '=' .. tostring(x) end
			table.sort(keys)
			out[i] = '{' .. table.concat(keys, ',') .. '}'
		elseif type(v) == 'userdata' then
			out[i] = 'userdata'
		elseif type(v) == 'number' and v == math.floor(v) then
			out[i] = ('%d'):format(v)
		else
			out[i] = tostring(v)
		end
	end
	return table.concat(out, ', ')
end

-- The argument error's message without the position and function name.
local function argmsg(err)
	return tostring(err):match'%((.*)%)$' or tostring(err)
end

-- Runs each step on both objects (each with its own path) and compares.
local function same_steps(what, ls, ours, lpath, opath, steps)
	for i, step in ipairs(steps) do
		local r = pack(pcall(step, ls, lpath))
		local o = pack(pcall(step, ours, opath))
		if not r[1] then r[2] = argmsg(r[2]) end
		if not o[1] then o[2] = argmsg(o[2]) end
		local a, b = show(r, lpath), show(o, opath)
		check(a == b, ('%s step %d: LuaSocket {%s} socketloop {%s}')
			:format(what, i, a, b))
	end
end

local long = '/tmp/' .. ('x'):rep(120)
local master_steps = {
	function(s) return s.class, tostring(s):match'^[^:]+' end,
	function(s) return s:getfd() >= 0 end,
	function(s) return s:setoption('keepalive', true) end,
	function(s) return s:setoption('reuseaddr', true) end,
	function(s) return s:setoption('linger', {on = true, timeout = 2}) end,
	function(s) return s:setoption('tcp-nodelay', true) end,
	function(s) return s:setoption('keepalive', 1) end,
	function(s) return s:accept() end,
	function(s) return s:receive() end,
	function(s) return s:bind(long) end, -- too long: keeps the socket
	function(s) return s:getfd() >= 0 end,
	function(s) return s:connect(long) end,
	function(s) return s:getsockname() end,
	function(s) return s:connect('/nonexistent-dir/x') end, -- loses it
	function(s) return s:getfd(), s.class end,
	function(s) return s:connect('/nonexistent-dir/x') end,
	function(s) return s:bind('/nonexistent-dir/x') end,
	function(s) return s:listen() end,
	function(s) return s:close() end,
}

local function differential()
	-- A fresh master each: the steps above.
	local ls, ours = stream(), loop.wrap(stream())
	same_steps('master', ls, ours, nil, nil, master_steps)
	ls:close()
	ours:close()

	-- bind, listen, a refused connect to a path nobody listens on.
	ls, ours = stream(), loop.wrap(stream())
	local lp, op = new_path'dl', new_path'do'
	same_steps('server', ls, ours, lp, op, {
		function(s, p) return s:bind(p) end,
		function(s) return s:getsockname() end,
		function(s, p) return s:bind(p) end, -- bound already: loses it
		function(s) return s:getfd(), s.class end,
	})
	ls:close()
	ours:close()
	local lr, orf = stream(), loop.wrap(stream())
	same_steps('refused', lr, orf, lp, op, {
		function(s, p) return s:connect(p) end, -- a file, nobody listens
		function(s) return s:getfd(), s.class end,
	})
	os.remove(lp)
	os.remove(op)

	-- A listening server, a client that connects, what each one sees.
	ls, ours = stream(), loop.wrap(stream())
	same_steps('listen', ls, ours, lp, op, {
		function(s, p) return s:bind(p) end,
		function(s) return s:listen(4) end,
		function(s) return s.class, tostring(s):match'^[^:]+' end,
		function(s) return s:send'x' end,
		function(s) return s:connect'/x' end,
		function(s) return s:setoption('reuseaddr', true) end,
	})
	local lc, oc = stream(), loop.wrap(stream())
	same_steps('client', lc, oc, lp, op, {
		function(s, p) return s:connect(p) end,
		function(s) return s.class, tostring(s):match'^[^:]+' end,
		function(s) return s:getsockname() end,
		function(s) return s:send('hello\nworld', 1, 6) end,
		function(s) return s:listen() end,
	})
	local la = ls:accept()
	ours:settimeout(5)
	local oa = ours:accept()
	check(oa, 'accepted')
	same_steps('accepted', la, oa, lp, op, {
		function(s) return s.class, tostring(s):match'^[^:]+' end,
		function(s) return s:getsockname() end,
		function(s) return s:receive() end,
		function(s) return s:send'back\n' end,
		function(s) return s:getstats() ~= nil end,
		function(s) return s:setoption('linger', {on = false, timeout = 0}) end,
		function(s) return s:shutdown'send' end,
	})
	same_steps('client reads', lc, oc, lp, op, {
		function(s) return s:receive() end,
		function(s) return s:receive() end, -- the peer shut its side
		function(s) return s:receive'*a' end,
		function(s) return s:close() end,
		function(s) return s:receive() end,
		function(s) return s:send'x' end,
	})
	same_steps('after the client left', la, oa, lp, op, {
		function(s) return s:receive() end,
		function(s) return s:close() end,
	})
	ls:close()
	ours:close()
end

-- Async: a server on a path and clients in loop threads, all at once;
-- then the same through an abstract name ("\0name").
local function async(path, n)
	local m = loop.wrap(stream())
	check(m:bind(path) == 1, 'bind ' .. show(pack(path)))
	check(m:listen(n) == 1)
	check(m.class == 'unixstream{server}')
	local served, answered = 0, 0
	loop.newthread(function()
		for _ = 1, n do
			local c = assert(m:accept())
			check(c.class == 'unixstream{client}')
			loop.newthread(function()
				local line = assert(c:receive())
				assert(c:send(line:upper() .. '\n'))
				c:close()
				served = served + 1
			end)
		end
		m:close()
	end)
	for i = 1, n do
		loop.newthread(function()
			local c = loop.wrap(stream())
			c:settimeout(5)
			check(c:connect(path) == 1)
			check(c:getpeername() == path)
			assert(c:send('client ' .. i .. '\n'))
			check(c:receive() == 'CLIENT ' .. i)
			local r, e = c:receive()
			check(r == nil and e == 'closed', e)
			c:close()
			answered = answered + 1
		end)
	end
	H.run(loop, 60)
	check(served == n and answered == n, ('%d %d'):format(served, answered))
end

loop.newthread(differential) -- our calls wait in a loop thread
H.run(loop, 60)
local p = new_path'async'
async(p, 8)
os.remove(p)
async('\0socketloop-lua-' .. tostring(os.time()) .. '-' .. tostring({}):match'%x+$', 8)
for _, q in ipairs(paths) do os.remove(q) end
print('ok', checks)
