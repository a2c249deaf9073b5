-- Parking in place under load: hundreds of loop threads run the same hot
-- loop (JIT-compiled on LuaJIT, and entered and left through trace exits)
-- and, from inside it, make socket round trips from every place a yield
-- cannot leave: a string.gsub callback, a table.sort comparator, user
-- coroutines (coroutine.wrap and coroutine.resume), __tostring reached
-- through string.format('%s') and tostring, a require'd chunk, and
-- LuaSocket's socket.protect/newtry (a C pcall); and from pcall and
-- __index, which yield on LuaJIT and 5.3+ and park on 5.1 and 5.2.
-- Errors are thrown through those frames after a park, threads force full
-- collections while others are parked, and on LuaJIT traces are recorded
-- while others are parked.  Each thread's arithmetic is checked against
-- the same loop run without I/O: a coroutine restored into the wrong
-- stack (a wrong global_State.cur_L on LuaJIT) shows up as a wrong sum or
-- a crash.  Bounded: every thread does a fixed number of rounds.
local socketloop = require'socketloop'
local H = require'helpers'
local ok_socket, socket = pcall(require, 'socket')
if not ok_socket then socket = nil end
local loop = socketloop()
local N = H.under_valgrind and 24 or 300
local ROUNDS = H.under_valgrind and 6 or 24
local STEPS = 400

local parked = 0 -- threads inside a call that parks in place
local count = {} -- place -> round trips made from it
local st = {starts = 0, starts_parked = 0, stops = 0, exits = 0, gcs = 0,
	gcs_parked = 0, caught = 0, done = 0}
if H.jit then
	-- Compile early, and take every exit through the exit handler (a
	-- snapshot's exit count is 8 bits: it never reaches 1000, so no side
	-- trace replaces the exit), which restores the snapshot into the
	-- coroutine that the VM takes for the running one.
	require'jit.opt'.start('hotloop=3', 'hotexit=1000')
	jit.attach(function(what)
		if what == 'start' then
			st.starts = st.starts + 1
			if parked > 0 then st.starts_parked = st.starts_parked + 1 end
		elseif what == 'stop' then
			st.stops = st.stops + 1
		end
	end, 'trace')
	jit.attach(function() st.exits = st.exits + 1 end, 'texit')
end

local server, port = H.listen(loop, function(c)
	while true do
		local l = c:receive'*l'
		if not l then break end
		c:send(l .. '\n')
	end
	c:close()
end)

-- One round trip on c; parks says whether the caller's place parks.
local nrt = 0
local function rt(c, place, msg, parks)
	nrt = nrt + 1
	-- Now and then a full collection, while other threads are parked.
	if parked > 0 and nrt % 53 == 0 then
		collectgarbage()
		st.gcs_parked = st.gcs_parked + 1
	end
	if parks then parked = parked + 1 end
	assert(c:send(msg .. '\n'))
	local l, err = c:receive'*l'
	if parks then parked = parked - 1 end
	assert(l == msg, place .. ': ' .. tostring(l) .. ' ' .. tostring(err))
	count[place] = (count[place] or 0) + 1
	return l
end

-- On LuaJIT and 5.3+ pcall and metamethods called by the VM yield.
local yields = H.jit or tonumber(H.version) >= 5.3

-- The places.  Each makes one round trip (or more) and returns a number
-- derived from what came back, so that the caller's sum depends on it.
local places = {}
local function place(name, f) places[#places + 1] = {name, f} end

place('plain', function(c, msg) return #rt(c, 'plain', msg) end)
place('pcall', function(c, msg)
	local ok, l = pcall(rt, c, 'pcall', msg, not yields)
	assert(ok, l)
	return #l
end)
place('gsub', function(c, msg)
	local s = ('@'):gsub('@', function() return rt(c, 'gsub', msg, true) end)
	return #s
end)
place('sort', function(c, msg)
	local t, n = {3, 1, 2}, 0
	table.sort(t, function(a, b)
		if n == 0 then n = #rt(c, 'sort', msg, true) end
		return a < b
	end)
	assert(t[1] == 1 and t[3] == 3)
	return n
end)
place('wrap', function(c, msg)
	local gen = coroutine.wrap(function()
		coroutine.yield(rt(c, 'wrap', msg, true))
		coroutine.yield(rt(c, 'wrap', msg, true))
	end)
	return #gen() + #gen() - #msg
end)
place('resume', function(c, msg)
	local co = coroutine.create(function(m) return rt(c, 'resume', m, true) end)
	local ok, l = coroutine.resume(co, msg)
	assert(ok, l)
	return #l
end)
local Obj = {}
Obj.__tostring = function(o) return rt(o.c, o.place, o.msg, true) end
-- PUC Lua 5.1's string.format does not call __tostring for '%s'.
if H.jit or tonumber(H.version) >= 5.2 then
	place('format', function(c, msg)
		local o = setmetatable({c = c, place = 'format', msg = msg}, Obj)
		return #('%s'):format(o)
	end)
end
place('tostring', function(c, msg)
	return #tostring(setmetatable({c = c, place = 'tostring', msg = msg}, Obj))
end)
place('index', function(c, msg)
	local p = setmetatable({}, {__index = function(_, k)
		return rt(c, 'index', msg, not yields) .. k
	end})
	return #p.x - 1
end)
local nmod = 0
place('require', function(c, msg)
	nmod = nmod + 1
	local name = 'torture_mod_' .. nmod
	package.preload[name] = function() return rt(c, 'require', msg, true) end
	local l = require(name)
	package.loaded[name] = nil
	package.preload[name] = nil
	return #l
end)
-- Errors thrown through the frames after a park: from Lua in a gsub
-- callback, and from C in a table.sort comparator (error with a table).
place('gsub-error', function(c, msg)
	local ok, err = pcall(string.gsub, '@', '@', function()
		rt(c, 'gsub-error', msg, true)
		error('boom ' .. msg, 0)
	end)
	assert(not ok and err == 'boom ' .. msg, tostring(err))
	st.caught = st.caught + 1
	return #msg
end)
place('sort-error', function(c, msg)
	local ok, err = pcall(table.sort, {2, 1}, function()
		rt(c, 'sort-error', msg, true)
		error({msg})
	end)
	assert(not ok and err[1] == msg)
	st.caught = st.caught + 1
	return #msg
end)
if socket then
	-- LuaSocket's own error handling, as socket.http uses it: a C pcall
	-- (socket.protect) around code that raises through socket.newtry.
	place('protect', function(c, msg)
		local n = socket.protect(function()
			local try = socket.newtry(function() end)
			local l = try(rt(c, 'protect', msg, true))
			try(nil, 'raised after a park')
			return #l
		end)
		local r, err = n()
		assert(r == nil and err == 'raised after a park', tostring(err))
		st.caught = st.caught + 1
		return #msg
	end)
end

-- The hot loop.  Every 100th step calls a place: a trace exit on LuaJIT,
-- and a park or a yield; the loop's trace is entered again after it.
local function work(c, id, round)
	local acc = id
	for i = 1, STEPS do
		acc = (acc * 31 + i) % 1000003
		if i % 100 == 0 then
			local k = (id + round + math.floor(i / 100)) % #places + 1
			local msg = ('%d.%d.%d'):format(id, round, i)
			local n = places[k][2](c, msg)
			assert(n == #msg, places[k][1] .. ': ' .. n)
			acc = (acc + n) % 1000003
		end
	end
	return acc
end
-- The same arithmetic, without I/O.
local function expected(id, round)
	local acc = id
	for i = 1, STEPS do
		acc = (acc * 31 + i) % 1000003
		if i % 100 == 0 then
			acc = (acc + #('%d.%d.%d'):format(id, round, i)) % 1000003
		end
	end
	return acc
end

for id = 1, N do
	loop.newthread(function()
		local c = assert(loop.connect('127.0.0.1', port))
		for round = 1, ROUNDS do
			assert(work(c, id, round) == expected(id, round), 'thread ' .. id)
			-- And between rounds, whoever is parked.
			if (id + round) % 37 == 0 then
				collectgarbage()
				st.gcs = st.gcs + 1
			end
		end
		c:close()
		st.done = st.done + 1
		if st.done == N then server:close() end
	end)
end
H.run(loop, H.under_valgrind and 600 or 120)

assert(st.done == N, 'threads finished: ' .. st.done)
for _, p in ipairs(places) do
	assert((count[p[1]] or 0) > 0, p[1] .. ': never ran')
end
assert(st.gcs_parked > 0, 'no collection ran while a thread was parked')
assert(st.caught > 0)
io.write(('threads=%d rounds=%d places=%d gcs=%d+%d (during parks) caught=%d'):format(
	N, ROUNDS, #places, st.gcs, st.gcs_parked, st.caught))
if H.jit then
	assert(jit.status(), 'the JIT is off')
	-- Traces were compiled, entered (their exits were taken), and some
	-- were recorded while other threads were parked in place.
	assert(st.stops > 0, 'no trace was compiled')
	assert(st.exits > 0, 'no trace was entered')
	assert(st.starts_parked > 0, 'no trace was recorded during a park')
	io.write((' traces=%d exits=%d recorded-while-parked=%d'):format(
		st.stops, st.exits, st.starts_parked))
end
print(' ok')
