-- socketloop: TCP sockets with coroutines, on the socketloop C runtime.
-- The API of luapower socketloop; sockets behave as blocking LuaSocket
-- TCP objects inside loop threads.  See README.md, "The Lua module".
local core = require'socketloop.core'

local unpack = unpack or table.unpack

-- asocket -> the LuaSocket object it was made from (asocket.socket).
local origin = setmetatable({}, {__mode = 'k'})

local mt = core.asocket_mt
local methods = mt.__index
local class = mt.__lsl.class -- class(sock [, kind]) -> 'tcp{...}'
mt.__lsl = nil
mt.__index = function(t, k)
	local m = methods[k]
	if m ~= nil then return m end
	if k == 'socket' then return origin[t] end
	if k == 'class' then return class(t) end
end


local function new(coro)
	local L = core.new()
	local loop = {coro = coro}
	local stopped = false
	local pending = {}       -- errors of threads started by loop threads
	local conns = setmetatable({}, {__mode = 'k'}) -- thread -> its client

	-- A LuaSec connection (ssl.wrap) on the loop, the way Copas drives
	-- one: each of its calls runs with a zero timeout, and 'wantread' or
	-- 'wantwrite' parks the loop thread on its descriptor (loop:waitfd)
	-- for at most the timeout set on the wrapper.  Methods it does not
	-- name are the connection's own.
	local luasec = {}
	luasec.__index = function(t, k)
		local m = luasec[k]
		if m ~= nil then return m end
		local conn = rawget(t, 'conn')
		local f = conn[k]
		if type(f) ~= 'function' then return f end
		return function(_, ...) return f(conn, ...) end
	end
	local function luasec_wait(self, err)
		local ok, werr = L:waitfd(self.conn:getfd(),
			err == 'wantwrite' and 'w' or 'r', self.timeout)
		if ok then return true end
		return nil, werr
	end
	local function waits(err)
		return err == 'wantread' or err == 'wantwrite' or err == 'timeout'
	end
	function luasec:settimeout(t) self.timeout = t; return 1 end
	function luasec:dohandshake()
		while true do
			local ok, err = self.conn:dohandshake()
			if ok then return true end
			if not waits(err) then return nil, err end
			ok, err = luasec_wait(self, err)
			if not ok then return nil, err end
		end
	end
	function luasec:receive(pattern, prefix)
		while true do
			local data, err, part = self.conn:receive(pattern, prefix)
			if data then return data end
			if not waits(err) then return nil, err, part end
			prefix = part
			local ok, werr = luasec_wait(self, err)
			if not ok then return nil, werr, part end
		end
	end
	function luasec:send(data, i, j)
		local last = (i or 1) - 1
		while true do
			local n, err, at = self.conn:send(data, last + 1, j)
			if n then return n end
			last = at or last
			if not waits(err) then return nil, err, last end
			local ok, werr = luasec_wait(self, err)
			if not ok then return nil, werr, last end
		end
	end
	function luasec:close() return self.conn:close() end
	local function wrap_luasec(conn)
		conn:settimeout(0)
		return setmetatable({conn = conn}, luasec)
	end

	local function spawn(f, ...)
		if coro then
			local t = coro.create(f, coro.main) -- ends into its loop thread
			local thread, err = L:newthread(function(...)
				return coro.transfer(t, ...)
			end, ...)
			return t, err, thread
		end
		local thread, err = L:newthread(f, ...)
		return thread, err, thread
	end

	-- Runs handler(...) at once, up to its first wait; returns the thread.
	function loop.newthread(handler, ...)
		local t, err = spawn(handler, ...)
		if err ~= nil then error(err, 0) end
		return t
	end

	local function failed(thread, err)
		local c = conns[thread]
		if c then
			conns[thread] = nil
			c:close()
		end
		if loop.onerror then
			loop.onerror(err, thread)
		else
			error(err, 0)
		end
	end

	-- One round: true while this loop's threads still wait.  A thread's
	-- error is raised from here (or given to loop.onerror).
	function loop.dispatch(timeout)
		if #pending > 0 then
			local p = table.remove(pending, 1)
			failed(p[1], p[2])
			return true
		end
		local more, thread, err = L:dispatch(timeout)
		if thread ~= nil then failed(thread, err) end
		return more
	end
	loop.step = loop.dispatch

	function loop.start(timeout)
		stopped = false
		while not stopped and loop.dispatch(timeout) do end
	end

	function loop.stop()
		stopped = true
	end

	-- Wraps a LuaSocket TCP object, or a Unix-domain stream one
	-- (socket.unix), or returns an asocket as it is.  The descriptor
	-- moves to the asocket with whatever LuaSocket had read ahead, and so
	-- do the class, the timeouts and a client's counters; the object stays
	-- as asocket.socket, without a descriptor.  LuaSocket's Unix-domain
	-- objects cannot tell their timeouts, so those asockets start with
	-- none (they block), as a new unix.stream() does.
	function loop.wrap(skt)
		if getmetatable(skt) == mt then return skt end
		local name = tostring(skt)
		if name:match'^SSL connection' then return wrap_luasec(skt) end
		local kind = name:match'^tcp{(%a+)}'
		local unix = false
		if not kind then
			kind = name:match'^unixstream{(%a+)}'
			unix = kind ~= nil
		end
		assert(kind, 'socketloop.wrap: a LuaSocket TCP or unix object expected')
		local fd = skt:getfd()
		local a, err
		if kind == 'master' or fd < 0 then
			a = L:socket()
			class(a, kind, unix)
			if fd >= 0 then
				local _
				_, err = a:setfd(fd)
			end
		else
			local rest = ''
			if skt:dirty() then
				skt:settimeout(0)
				local data, _, partial = skt:receive(2^30)
				rest = data or partial or ''
			end
			a, err = L:adopt(fd, kind == 'server', rest)
			if a then class(a, kind, unix) end
		end
		if err ~= nil then return nil, err end
		if not unix then
			local block, total = skt:gettimeout()
			a:settimeout(block)
			a:settimeout(total, 't')
		end
		if kind == 'client' then a:setstats(skt:getstats()) end
		skt:setfd(-1)
		origin[a] = skt
		return a
	end

	-- A create function for socket.http (or anything that connects and
	-- then talks) over TLS: its sockets run starttls(params) once
	-- connected, with the host as the server name.  The other methods
	-- are the asocket's.
	loop.tls = methods.starttls ~= nil -- built with TLS
	function loop.tls_create(params)
		return function()
			local a = L:socket()
			local c = setmetatable({}, {__index = function(_, k)
				return function(_, ...) return a[k](a, ...) end
			end})
			function c.connect(_, host, port)
				local ok, err = a:connect(host, port)
				if not ok then return nil, err end
				local p = {}
				for k, v in pairs(params) do p[k] = v end
				p.servername = p.servername or host
				ok, err = a:starttls(p)
				if not ok then return nil, err end
				return 1
			end
			return c
		end
	end

	function loop.connect(address, port, local_address, local_port)
		return L:socket():connect(address, port, local_address, local_port)
	end

	function loop.newserver(host, port, handler)
		local server = assert(L:listen(host or '*', port or 0, 16384))
		local function serve(client) return handler(client) end
		loop.newthread(function()
			while true do
				local client, err = server:accept()
				if client then
					local t, herr, thread = spawn(serve, client)
					conns[thread] = client
					if herr ~= nil then pending[#pending + 1] = {thread, herr} end
				elseif err == 'closed' then
					break
				end
			end
		end)
		return server
	end

	-- Parks the calling loop thread for `seconds`.
	function loop.sleep(seconds) return L:sleep(seconds) end
	function loop.now() return core.now() end
	function loop.poller() return core.poller() end
	-- An unconnected asocket (LuaSocket's socket.tcp()).
	function loop.tcp() return L:socket() end
	require'socketloop.sync'(loop, L) -- timers, queues, locks, pause
	loop.http = require'socketloop.http'(loop)
	return loop
end

local M = new()
return setmetatable(M, {__call = function(_, coro) return new(coro) end})
