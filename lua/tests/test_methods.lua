-- The async socket against Debian's LuaSocket object in the same state:
-- every method and field of LuaSocket's master, client and server
-- (enumerated from the real objects) exists on ours and behaves the same
-- when called on the wrong class; then bind, listen, setfd, tostring,
-- the timeouts and every option, differentially.
local socket = require'socket'
local socketloop = require'socketloop'
local H = require'helpers'
local loop = socketloop()

-- Members of LuaSocket's objects that ours lacks on purpose: name -> why.
-- (README.md, "The Lua module", has the whole table.)
local exceptions = {}

local checks = 0
local function check(c, msg)
	if not c then error(msg or 'check failed', 2) end
	checks = checks + 1
end

local function show(t, n)
	local out = {}
	for i = 1, n do
		local v = t[i]
		out[i] = type(v) == 'string' and ('%q'):format(v) or tostring(v)
	end
	return table.concat(out, ', ')
end

local unpack = unpack or table.unpack
local function pack(...) return {n = select('#', ...), ...} end
-- Results of pcall(f, ...) as a table: {ok, ...} and the count.
local function call(f, ...) return pack(pcall(f, ...)) end

-- The message inside an argument error's parentheses, without the
-- position and the function's name, which differ with how it is called.
local function argmsg(err)
	return tostring(err):match'%((.*)%)$' or tostring(err)
end

-- LuaSocket's objects in each state, and ours, both made fresh.
local ls_server = assert(socket.bind('127.0.0.1', 0))
local _, ls_port = ls_server:getsockname()
local ls_peers = {} -- accepted, kept open until the end
local our_server, our_port, done
our_server = loop.newserver('127.0.0.1', 0, function(c)
	while not done do loop.sleep(0.01) end
	c:close()
end)
_, our_port = our_server:getsockname()

local function accept_ls()
	ls_server:settimeout(1)
	ls_peers[#ls_peers + 1] = ls_server:accept()
end

local make = {
	master = {
		function() return socket.tcp() end,
		function() return loop.wrap(socket.tcp()) end,
	},
	master4 = {
		function() return socket.tcp4() end,
		function() return loop.wrap(socket.tcp4()) end,
	},
	client = {
		function()
			local c = assert(socket.connect('127.0.0.1', ls_port))
			accept_ls()
			return c
		end,
		function() return assert(loop.connect('127.0.0.1', our_port)) end,
	},
	server = {
		function()
			local s = socket.tcp()
			assert(s:bind('127.0.0.1', 0))
			assert(s:listen())
			return s
		end,
		function()
			-- built with our own bind and listen
			local s = loop.wrap(socket.tcp())
			assert(s:bind('127.0.0.1', 0))
			assert(s:listen())
			return s
		end,
	},
}
local states = {'master', 'master4', 'client', 'server'}
local class_of = {master = 'tcp{master}', master4 = 'tcp{master}',
	client = 'tcp{client}', server = 'tcp{server}'}

local function members(obj)
	local names = {}
	for k, v in pairs(getmetatable(obj).__index) do names[#names + 1] = k end
	table.sort(names)
	return names
end

-- Same outcome of obj:name() with no arguments: both raise the same
-- argument error (a class error says which class it wanted), or both
-- return values of the same types; texts the same where they are
-- errors or names.
local function same_call(state, name)
	local ls, ours = make[state][1](), make[state][2]()
	ls:settimeout(0)
	ours:settimeout(0)
	local r = call(ls[name], ls)
	local o = call(ours[name], ours)
	local what = ('%s:%s() LuaSocket {%s} socketloop {%s}')
		:format(state, name, show(r, r.n), show(o, o.n))
	check(r[1] == o[1], what)
	if not r[1] then
		check(argmsg(r[2]) == argmsg(o[2]), what)
	else
		for i = 2, 4 do
			check(type(r[i]) == type(o[i]), what)
		end
		if r[2] == nil and type(r[3]) == 'string' then
			check(r[3] == o[3], what) -- an error string
		end
		if type(r[2]) == 'string' and name ~= 'getsockname'
				and name ~= 'getpeername' then
			check(r[2] == o[2], what)
		end
	end
	ls:close()
	ours:close()
end

local function table_test()
	for _, state in ipairs(states) do
		local ls, ours = make[state][1](), make[state][2]()
		check(ls.class == class_of[state])
		for _, name in ipairs(members(ls)) do
			local theirs, mine = ls[name], ours[name]
			if exceptions[name] then
				print(('exception: %s (%s)'):format(name, exceptions[name]))
			else
				check(mine ~= nil, ('%s: socketloop lacks %s'):format(state, name))
				check(type(mine) == type(theirs), state .. ': type of ' .. name)
				if type(theirs) ~= 'function' then
					check(mine == theirs, ('%s.%s: %s vs %s')
						:format(state, name, tostring(theirs), tostring(mine)))
				end
			end
		end
		-- LuaSocket's tostring: tcp{class}: 0x...
		local pat = '^' .. class_of[state]:gsub('[{}]', '%%%0') .. ': 0x%x+$'
		check(tostring(ls):match(pat), tostring(ls))
		check(tostring(ours):match(pat), tostring(ours))
		ls:close()
		ours:close()
		check(tostring(ours):match(pat), 'class kept after close: ' .. tostring(ours))
		check(ours.class == class_of[state])
		for _, name in ipairs(members(ls)) do
			if type(ls[name]) == 'function' and not exceptions[name] then
				same_call(state, name)
			end
		end
	end
end

-- Runs the same steps on a LuaSocket object and on ours; each step
-- returns what it compares.
local function same_steps(what, ls, ours, steps)
	for i, step in ipairs(steps) do
		local r, o = call(step, ls), call(step, ours)
		local msg = ('%s step %d: LuaSocket {%s} socketloop {%s}')
			:format(what, i, show(r, r.n), show(o, o.n))
		check(r[1] == o[1], msg)
		if not r[1] then
			check(argmsg(r[2]) == argmsg(o[2]), msg)
		else
			for k = 2, math.max(r.n, o.n) do
				local a, b = r[k], o[k]
				if type(a) == 'table' and type(b) == 'table' then
					check(a.on == b.on and a.timeout == b.timeout, msg)
				else
					check(a == b, msg)
				end
			end
		end
	end
end

local function bind_listen()
	local probe = assert(socket.bind('127.0.0.1', 0))
	local _, busy = probe:getsockname()
	local steps = {
		function(s) return s:getfd() >= 0, s:getfamily() end,
		function(s) return s:bind('127.0.0.1', 0) end,
		function(s) return tostring(s):match'^tcp{%a+}', s:getfd() >= 0 end,
		function(s) -- the port differs, not its type
			local ip, p, f = s:getsockname()
			return ip, type(p), f
		end,
		function(s) return s:bind('127.0.0.1', 0) end, -- twice: EINVAL
		function(s) return s:listen() end,
		function(s) return tostring(s):match'^tcp{%a+}', s.class end,
		function(s) return s:listen() end, -- a server now: class error
		function(s) return s:close(), s:getfd(), s:getfamily() end,
	}
	same_steps('bind/listen', socket.tcp(), loop.wrap(socket.tcp()), steps)
	same_steps('bind/listen 4', socket.tcp4(), loop.wrap(socket.tcp4()), steps)
	local one = {
		{function(s) return s:bind('*', '0') end,
			function(s) return s:getfamily(), (s:getsockname()) end},
		{function(s) return s:bind('::1', 0) end,
			function(s) return s:getfamily(), (s:getsockname()) end},
		{function(s) return s:bind('256.1.1.1', 0) end,
			function(s) return tostring(s):match'^tcp{%a+}', s:getfd() end},
		{function(s) return s:bind('127.0.0.1', -1) end},
		{function(s) return s:bind('127.0.0.1', busy) end,
			function(s) return s:getfd() >= 0 end},
		{function(s) return s:listen() end}, -- no descriptor yet
		{function(s) return s:bind('127.0.0.1') end},
		{function(s) return s:getsockname() end,
			function(s) return s:getpeername() end},
		{function(s) return s:close(), s:bind('127.0.0.1', 0) end,
			function(s) return s:getfd() >= 0 end},
	}
	for i, steps in ipairs(one) do
		same_steps('bind ' .. i, socket.tcp(), loop.wrap(socket.tcp()), steps)
	end
	local four = {
		{function(s) return s:bind('::1', 0) end},
		{function(s) return s:getsockname() end,
			function(s) return s:getpeername() end},
		{function(s) return s:listen(), s.class end},
	}
	for i, steps in ipairs(four) do
		same_steps('tcp4 ' .. i, socket.tcp4(), loop.wrap(socket.tcp4()), steps)
	end
	same_steps('tcp6', socket.tcp6(), loop.wrap(socket.tcp6()), {
		function(s) return s:getfamily() end,
		function(s) return s:bind('127.0.0.1', 0) end,
		function(s) return s:setoption('ipv6-v6only', false) end,
		function(s) return s:bind('::', 0) end,
	})
	probe:close()

	-- our bound, listening master accepts
	local m = loop.wrap(socket.tcp())
	check(m:bind('127.0.0.1', 0) == 1 and m:listen(8) == 1)
	local _, p = m:getsockname()
	local peer = assert(socket.connect('127.0.0.1', p))
	m:settimeout(5)
	local c = assert(m:accept())
	check(c.class == 'tcp{client}')
	peer:send'over bind\n'
	check(c:receive() == 'over bind')
	c:close()
	peer:close()
	m:close()
end

local function descriptors()
	-- A wrapped tcp4() master keeps its descriptor.
	local raw = socket.tcp4()
	local fd = raw:getfd()
	local a = loop.wrap(raw)
	check(fd >= 0 and a:getfd() == fd, 'master descriptor kept')
	check(raw:getfd() == -1 and a.class == 'tcp{master}')
	check(a:setoption('reuseaddr', true) == 1 and a:getoption'reuseaddr')
	a:close()

	-- The timeouts move over with the object.
	raw = socket.tcp()
	raw:settimeout(2.5)
	raw:settimeout(7, 't')
	a = loop.wrap(raw)
	local b, t = a:gettimeout()
	check(b == 2.5 and t == 7, 'timeouts kept')
	a:close()

	-- setfd: a descriptor taken over (as LuaSec's ssl.wrap does) stays
	-- open and usable by its new owner; the asocket keeps its class.
	local c = assert(loop.connect('127.0.0.1', ls_port))
	ls_server:settimeout(5)
	local peer = assert(ls_server:accept())
	fd = c:getfd()
	check(c:setfd(-1) == nil and c:getfd() == -1 and c.class == 'tcp{client}')
	local r, e = c:receive()
	check(r == nil and e == 'closed', e)
	local other = assert(socket.connect('127.0.0.1', ls_port))
	assert(ls_server:accept()):close()
	other:close()
	other:setfd(fd) -- a closed LuaSocket client takes it over
	other:settimeout(5)
	check(other:send'taken\n' == 6)
	check(peer:receive() == 'taken')
	-- and back again, with setfd on an asocket
	other:setfd(-1)
	local d = loop.wrap(socket.tcp())
	d:setfd(fd)
	check(d:getfd() == fd and d.class == 'tcp{master}')
	local x, err = d:setfd(1000) -- not open
	check(x == nil and err, 'setfd of a non-socket')
	d:setfd(fd)
	check(d:getfd() == fd)
	d:close()
	peer:close()
	c:close()
end

local function timeouts()
	local steps = {}
	for _, args in ipairs{{1.5}, {2, 't'}, {3, 'r'}, {}, {-5}, {'2'},
			{1, 'block'}, {nil, 't'}, {'x'}, {1, 'x'}, {1, ''}, {0}} do
		steps[#steps + 1] = function(s)
			local n = select('#', s:settimeout(unpack(args)))
			return n, s:gettimeout()
		end
	end
	local function by_class(state)
		local ls, ours = make[state][1](), make[state][2]()
		same_steps('timeouts ' .. state, ls, ours, steps)
		ls:close()
		ours:close()
	end
	by_class'master'
	by_class'client'
	by_class'server'
end

local function options()
	local sets = {{'keepalive', true}, {'linger', {on = true, timeout = 3}},
		{'reuseaddr', true}, {'reuseport', true}, {'tcp-nodelay', true},
		{'tcp-keepidle', 7}, {'tcp-keepcnt', 4}, {'tcp-keepintvl', 9},
		{'tcp-defer-accept', 1}, {'tcp-fastopen', 1},
		{'tcp-fastopen-connect', 1}, {'ipv6-v6only', true},
		{'bindtodevice', 'lo'}, {'recv-buffer-size', 65536},
		{'send-buffer-size', 65536}, {'error', 1}, {'bogus', 1},
		{'keepalive', 1}, {'keepalive', 'yes'}, {'tcp-keepidle', '8'},
		{'tcp-keepidle', 8.5}, {'tcp-keepidle', true}, {'linger', 1},
		{'linger', {on = 1, timeout = 1}}, {'linger', {on = true}},
		{'linger', {on = false, timeout = '2'}},
		{('x'):rep(50), 1}}
	local gets = {'keepalive', 'linger', 'reuseaddr', 'reuseport',
		'tcp-nodelay', 'tcp-keepidle', 'tcp-keepcnt', 'tcp-keepintvl',
		'tcp-defer-accept', 'tcp-fastopen', 'tcp-fastopen-connect',
		'ipv6-v6only', 'bindtodevice', 'error', 'bogus'}
	local steps = {}
	for _, g in ipairs(gets) do
		steps[#steps + 1] = function(s) return s:getoption(g) end
	end
	for _, o in ipairs(sets) do
		steps[#steps + 1] = function(s) return s:setoption(o[1], o[2]) end
	end
	for _, g in ipairs(gets) do
		steps[#steps + 1] = function(s) return s:getoption(g) end
	end
	for _, g in ipairs{'recv-buffer-size', 'send-buffer-size'} do
		steps[#steps + 1] = function(s) return s:getoption(g) end
	end
	steps[#steps + 1] = function(s) return s:getoption() end
	steps[#steps + 1] = function(s) return s:setoption('keepalive') end
	for _, state in ipairs(states) do
		local ls, ours = make[state][1](), make[state][2]()
		same_steps('options ' .. state, ls, ours, steps)
		ls:close()
		ours:close()
		same_steps('options closed ' .. state, ls, ours, steps)
	end
	local m6a, m6b = socket.tcp6(), loop.wrap(socket.tcp6())
	same_steps('options tcp6', m6a, m6b, {
		function(s) return s:setoption('ipv6-v6only', false) end,
		function(s) return s:setoption('ipv6-v6only', true) end,
	})
	m6a:close()
	m6b:close()

	-- getoption'error' with an error pending: a refused non-blocking
	-- connect made by LuaSocket, then the same object wrapped.
	local probe = assert(socket.bind('127.0.0.1', 0))
	local _, refused = probe:getsockname()
	probe:close()
	local function refused_client()
		local s = socket.tcp4()
		s:settimeout(0)
		local r, e = s:connect('127.0.0.1', refused)
		assert(r == nil, e)
		socket.select(nil, {s}, 2) -- until the refusal has come
		return s
	end
	same_steps('pending error', refused_client(), loop.wrap(refused_client()), {
		function(s) return s.class end,
		function(s) return s:getoption'error' end,
		function(s) return s:getoption'error' end, -- taken by the first
	})
end

loop.newthread(function()
	table_test()
	bind_listen()
	descriptors()
	timeouts()
	options()
	done = true
	our_server:close()
end)
H.run(loop, 60)
for _, c in ipairs(ls_peers) do c:close() end
ls_server:close()
print('ok', checks)
