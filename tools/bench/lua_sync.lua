-- The Lua module's queues and timers against their references, measured
-- in the same run, interleaved, median of REPS repetitions:
--   queue ping-pong: two loop threads hand a number back and forth over
--     two loop.queue queues; the references are the same exchange between
--     two plain coroutines that a Lua scheduler resumes in turn (two
--     resume/yield pairs per round trip, as the queues need), and one
--     coroutine.resume/yield pair per round trip;
--   timers: N one-shot timers armed at once, each with a callback (arm,
--     fire, callback), against luv's uv.new_timer() + start + callback
--     (+ close, which a luv timer needs).
-- Run from the build tree:
--   LUA_PATH='build/lua/5.4/?.lua;;' LUA_CPATH='build/lua/5.4/?.so;;' \
--     lua5.4 tools/bench/lua_sync.lua [rounds [timers [reps]]]
local socketloop = require'socketloop'
local ok_luv, uv = pcall(require, 'luv')

local ROUNDS = tonumber(arg[1]) or 200000
local TIMERS = tonumber(arg[2]) or 100000
local REPS = tonumber(arg[3]) or 5
local clock = os.clock

local function queue_pingpong()
	local loop = socketloop()
	local a, b = loop.queue.new(), loop.queue.new()
	local t0 = clock()
	loop.newthread(function()
		for i = 1, ROUNDS do
			a:push(i)
			assert(b:pop() == i)
		end
	end)
	loop.newthread(function()
		for _ = 1, ROUNDS do b:push(a:pop()) end
	end)
	loop.start()
	return (clock() - t0) / ROUNDS
end

local function scheduler_pingpong()
	local box
	local ping = coroutine.create(function()
		for i = 1, ROUNDS do
			box = i
			coroutine.yield()
			assert(box == i)
		end
	end)
	local pong = coroutine.create(function()
		for _ = 1, ROUNDS do
			box = box
			coroutine.yield()
		end
	end)
	local resume, status = coroutine.resume, coroutine.status
	local t0 = clock()
	while status(ping) ~= 'dead' do
		resume(ping)
		resume(pong)
	end
	return (clock() - t0) / ROUNDS
end

local function resume_yield()
	local co = coroutine.wrap(function(x)
		while true do x = coroutine.yield(x + 1) end
	end)
	local t0, x = clock(), 0
	for _ = 1, ROUNDS do x = co(x) end
	assert(x == ROUNDS)
	return (clock() - t0) / ROUNDS
end

local function our_timers()
	local loop = socketloop()
	local fired = 0
	local function cb() fired = fired + 1 end
	local t0 = clock()
	for _ = 1, TIMERS do loop.timer.new{delay = 0.001, callback = cb} end
	loop.start()
	assert(fired == TIMERS)
	return (clock() - t0) / TIMERS
end

local function luv_timers()
	local fired = 0
	local function cb(t)
		fired = fired + 1
		t:close()
	end
	local t0 = clock()
	for _ = 1, TIMERS do
		local t = uv.new_timer()
		t:start(1, 0, function() cb(t) end)
	end
	uv.run()
	assert(fired == TIMERS)
	return (clock() - t0) / TIMERS
end

local cases = {
	{'queue ping-pong, round trip', queue_pingpong},
	{'scheduler ping-pong (2 resume/yield), round trip', scheduler_pingpong},
	{'coroutine.resume/yield, round trip', resume_yield},
	{'loop.timer one-shot, per timer', our_timers},
}
if ok_luv then
	cases[#cases + 1] = {'luv timer one-shot, per timer', luv_timers}
end

local runs = {}
for _ = 1, REPS do
	for i, c in ipairs(cases) do
		collectgarbage()
		runs[i] = runs[i] or {}
		table.insert(runs[i], c[2]())
	end
end
local function median(t)
	table.sort(t)
	return t[(#t + 1) // 2]
end
print(('%s, %d rounds, %d timers, median of %d (CPU time)'):format(_VERSION,
	ROUNDS, TIMERS, REPS))
local m = {}
for i, c in ipairs(cases) do
	m[i] = median(runs[i])
	print(('  %-52s %8.0f ns'):format(c[1], m[i] * 1e9))
end
print(('  queue / scheduler ping-pong: %.2f x;  queue / resume-yield: %.2f x')
	:format(m[1] / m[2], m[1] / m[3]))
if ok_luv then
	print(('  loop.timer / luv timer: %.2f x'):format(m[4] / m[5]))
else
	print'  luv not found (Debian: lua-luv): no timer reference'
end
