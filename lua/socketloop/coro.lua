-- socketloop.coro: symmetric coroutines with the API of luapower coro,
-- built on Lua coroutines.  A thread made here may call socket methods:
-- its trampoline passes the loop's yields up to the loop thread.
local core = require'socketloop.core'

local unpack = unpack or table.unpack
local function pack(...) return {n = select('#', ...), ...} end

local coro = {}
local MAIN = {}          -- the code that is not a coro thread
local TRANSFER = {}      -- yielded by transfer from inside a coro thread
local returns = setmetatable({}, {__mode = 'k'}) -- where a thread ends up

-- The running coro thread, or nil.  Asked of the VM each time, not kept in
-- a variable: loop threads interleave, each with its own trampoline.
local function current()
	local co = coroutine.running()
	if co and returns[co] then return co end
end
local resumers = setmetatable({}, {__mode = 'k'}) -- for resume/yield

coro.main = MAIN

-- A thread that runs f; when f returns, control and its results transfer
-- to ret (default: whoever was running when it was made).
function coro.create(f, ret)
	local t = coroutine.create(f)
	core.passthrough(t)
	returns[t] = ret or current() or MAIN
	return t
end

function coro.running()
	local c = current()
	if c then return c, false end
	return MAIN, true
end

function coro.status(t)
	if t == MAIN then return current() and 'normal' or 'running' end
	return coroutine.status(t)
end

-- The trampoline, run by whoever transfers from outside coro threads.
local function run(t, ...)
	local args = pack(...)
	while true do
		local r = pack(coroutine.resume(t, unpack(args, 1, args.n)))
		if not r[1] then
			error(debug.traceback(t, tostring(r[2])), 0)
		end
		if coroutine.status(t) == 'dead' then
			t, args = returns[t], pack(unpack(r, 2, r.n))
		elseif r[2] == TRANSFER then
			t, args = r[3], pack(unpack(r, 4, r.n))
		else
			-- Not a transfer (a socket call waiting): pass it up, and give
			-- the answer back to the same thread.
			args = pack(coroutine.yield(unpack(r, 2, r.n)))
		end
		if t == MAIN then return unpack(args, 1, args.n) end
	end
end

function coro.transfer(t, ...)
	local c = current()
	assert(t ~= c, 'coro.transfer: a thread cannot transfer to itself')
	if c then return coroutine.yield(TRANSFER, t, ...) end
	if t == MAIN then return ... end
	return run(t, ...)
end

-- Asymmetric use: resume runs t until it yields (or ends).
function coro.resume(t, ...)
	resumers[t] = current() or MAIN
	returns[t] = current() or MAIN
	return pcall(coro.transfer, t, ...)
end

function coro.yield(...)
	local to = resumers[current()]
	assert(to, 'coro.yield: not inside coro.resume')
	return coro.transfer(to, ...)
end

function coro.wrap(f)
	local t = coro.create(f)
	return function(...)
		local r = pack(coro.resume(t, ...))
		if not r[1] then error(r[2], 0) end
		return unpack(r, 2, r.n)
	end
end

return coro
