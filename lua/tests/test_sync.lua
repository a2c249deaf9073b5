-- Timers, queues, semaphores, locks and pause/wakeup (socketloop/sync.lua
-- over lsync.c), in the coroutine mode and the socketloop.coro mode, and
-- from places that park in place (a user coroutine, a gsub callback).
local socketloop = require'socketloop'
local coro = require'socketloop.coro'
local H = require'helpers'

-- Threads blocked on one queue at once.  Lua 5.1 and 5.2 park every one
-- in place, on a green thread of its own: under Valgrind 10,000 of those
-- take minutes, so there 2,000 do.
local parks = H.version == '5.1' or H.version == '5.2'
local MANY = (H.under_valgrind and parks) and 2000 or 10000

local function check(loop, mode)
	local log = {}
	local function note(s) log[#log + 1] = s end

	-- Queues: FIFO, timeouts, hand-off, bounded pushes.
	loop.newthread(function()
		local q = loop.queue.new()
		for i = 1, 3 do assert(q:push(i)) end
		assert(q:get_size() == 3)
		for i = 1, 3 do assert(q:pop() == i) end
		local v, err = q:pop(0.01)
		assert(v == nil and err == 'timeout', tostring(err))
		v, err = q:pop(0)
		assert(v == nil and err == 'timeout')

		local b = loop.queue.new{max = 2}
		assert(b:push'a' and b:push'b')
		v, err = b:push('c', 0.01)
		assert(v == nil and err == 'timeout')
		-- A pusher waits; a pop makes room for it, in order.
		loop.newthread(function() assert(b:push'c') end)
		assert(b:pop() == 'a' and b:pop() == 'b' and b:pop() == 'c')
		note'queue'
	end)

	-- FIFO fairness: waiters are served in the order they came.
	loop.newthread(function()
		local q, got = loop.queue.new(), {}
		for i = 1, 5 do
			loop.newthread(function()
				local v = q:pop()
				got[#got + 1] = i .. ':' .. v
			end)
		end
		for i = 1, 5 do q:push(i) end
		loop.sleep(0)
		assert(table.concat(got, ' ') == '1:1 2:2 3:3 4:4 5:5', table.concat(got, ' '))
		note'fifo'
	end)

	-- close with waiters on both sides: every one gets nil, 'closed'.
	loop.newthread(function()
		local empty, full = loop.queue.new(), loop.queue.new{max = 1}
		full:push'x'
		local woken = 0
		for _ = 1, 3 do
			loop.newthread(function()
				local v, err = empty:pop()
				assert(v == nil and err == 'closed')
				woken = woken + 1
			end)
			loop.newthread(function()
				local v, err = full:push'y'
				assert(v == nil and err == 'closed')
				woken = woken + 1
			end)
		end
		empty:close()
		full:close()
		loop.sleep(0)
		assert(woken == 6, woken)
		-- The item left still comes out, then 'closed'.
		assert(full:pop() == 'x')
		assert(select(2, full:pop()) == 'closed')
		assert(select(2, full:push'z') == 'closed')
		note'close'
	end)

	-- MANY threads blocked on one queue, each gets one item.
	loop.newthread(function()
		local q, sum = loop.queue.new(), 0
		for _ = 1, MANY do
			loop.newthread(function()
				local v = q:pop()
				sum = sum + v
			end)
		end
		for i = 1, MANY do q:push(i) end
		local w = loop.queue.new()
		loop.sleep(0)
		while sum < MANY * (MANY + 1) / 2 do w:pop(0.001) end
		note'many'
	end)

	-- select over several queues; workers; finish.
	loop.newthread(function()
		local a, b = loop.queue.new(), loop.queue.new()
		b:push'now'
		local q, v = loop.queue.select({a, b})
		assert(q == b and v == 'now')
		loop.newthread(function() loop.sleep(0.005); a:push'later' end)
		q, v = loop.queue.select({a, b}, 600)
		assert(q == a and v == 'later')
		local r, err = loop.queue.select({a, b}, 0.01)
		assert(r == nil and err == 'timeout')
		loop.newthread(function() b:close() end)
		local cq, item, cerr = loop.queue.select({a, b})
		assert(cq == b and item == nil and cerr == 'closed')
		assert(#a.selectors == 0, 'select leaves nothing behind')

		local jobs, seen = loop.queue.new(), 0
		jobs:add_worker(function(n) seen = seen + n end)
		assert(#jobs:get_workers() == 1)
		for i = 1, 4 do jobs:push(i) end
		assert(jobs:finish(600))
		loop.sleep(0)
		assert(seen == 10 and #jobs:get_workers() == 0)
		note'select'
	end)

	-- Semaphores: counts, timeouts, order, destroy.
	loop.newthread(function()
		local s = loop.semaphore.new(10, 2)
		assert(s:take(2) and s:get_count() == 0)
		local r, err = s:take(1, 0.01)
		assert(r == nil and err == 'timeout')
		assert(select(2, s:take(11)) == 'too many')
		local order = {}
		for i = 1, 3 do
			loop.newthread(function()
				assert(s:take(i))
				order[#order + 1] = i
			end)
		end
		assert(s:get_wait() == 6)
		s:give(1) -- serves the first (1)
		s:give(1) -- not enough for the second (2)
		loop.sleep(0)
		assert(table.concat(order) == '1')
		s:give(4)
		loop.sleep(0)
		assert(table.concat(order) == '123', table.concat(order))
		assert(select(2, s:give(100)) == 'too many' and s:get_count() == 10)
		local d = loop.semaphore.new(1)
		loop.newthread(function() assert(select(2, d:take()) == 'destroyed') end)
		d:destroy()
		loop.sleep(0)
		note'semaphore'
	end)

	-- Locks: re-entry, timeouts, hand-off in order, destroy.
	loop.newthread(function()
		local l = loop.lock.new()
		assert(l:get() == 0 and l:get() == 0) -- re-entrant
		local order, timed_out = {}, false
		loop.newthread(function()
			local r, err = l:get(0.01)
			assert(r == nil and err == 'timeout')
			assert(select(2, l:release()) == 'cannot release a lock not owned')
			timed_out = true
		end)
		while not timed_out do loop.sleep(0.001) end
		for i = 1, 3 do
			loop.newthread(function()
				assert(l:get())
				order[#order + 1] = i
				loop.sleep(0.001)
				assert(l:release())
			end)
		end
		assert(l:release() and #order == 0)
		assert(l:release())
		while #order < 3 do loop.sleep(0.001) end
		assert(table.concat(order) == '123', table.concat(order))
		local n = loop.lock.new(nil, true)
		assert(n:get())
		assert(select(2, n:get()) == 'lock is not re-entrant')
		loop.newthread(function() assert(select(2, n:get()) == 'destroyed') end)
		n:destroy()
		note'lock'
	end)

	-- pause / wakeup.
	loop.newthread(function()
		local woke = false
		local sleeper = loop.newthread(function()
			loop.pause(600)
			note'woken'
			woke = true
			loop.pauseforever()
			note'woken again'
		end)
		assert(loop.wakeup(sleeper))
		assert(not loop.wakeup(sleeper), 'woken already, not pausing yet')
		while not woke do loop.sleep(0.001) end
		assert(loop.wakeup(sleeper))
		assert(loop.pause(0.001) and loop.pause())
		note'pause'
	end)

	-- Timers: one-shot with params, cancel, re-arm, recurring.
	loop.newthread(function()
		local fired = {}
		local t = loop.timer.new{delay = 0.005, params = 'p',
			callback = function(tm, p) fired[#fired + 1] = p; assert(tm.name) end}
		assert(select(2, t:arm()) == 'already armed')
		while #fired < 1 do loop.sleep(0.001) end
		assert(fired[1] == 'p')
		assert(select(2, t:cancel()) == 'not armed')
		local never = loop.timer.new{delay = 0.01, callback = function() error'cancelled' end}
		assert(never:cancel())
		assert(t:arm(0))
		while #fired < 2 do loop.sleep(0.001) end
		loop.sleep(0.02)
		assert(#fired == 2, 'a one-shot timer fires once')
		-- Recurring, with a callback that takes half a period: the due
		-- times stay on the grid, so 20 rounds end well before 20 periods
		-- plus 20 callbacks.
		local d, rounds, last = 0.03, 0, nil
		local start = loop.now()
		local r
		r = loop.timer.new{delay = d, recurring = true, callback = function()
			rounds = rounds + 1
			last = loop.now()
			assert(last >= start + rounds * d - 0.002, 'fired early')
			loop.sleep(d / 2)
			if rounds == 20 then r:cancel() end
		end}
		while rounds < 20 do loop.sleep(0.01) end
		-- The bound is loose (10 periods) but still timing: not under
		-- Valgrind, where 10,000 other threads run meanwhile.
		assert(H.under_valgrind or last - start < 20 * 1.5 * d,
			('drift: %.3f s'):format(last - start))
		note'timer'
	end)

	-- Parking in place: a pop inside a user coroutine and a gsub callback.
	loop.newthread(function()
		local q = loop.queue.new()
		loop.newthread(function() loop.sleep(0.002); q:push'a'; q:push'b' end)
		local inner = coroutine.wrap(function() return q:pop(600) end)
		assert(inner() == 'a')
		local s = ('x'):gsub('x', function() return q:pop(600) end)
		assert(s == 'b')
		assert(select(2, ('x'):gsub('x', function() return select(2, q:pop(0.01)) end)) == 1)
		note'parked'
	end)

	H.run(loop, H.under_valgrind and 500 or 60)
	table.sort(log)
	local want = 'close fifo lock many parked pause queue select semaphore timer woken woken again'
	assert(table.concat(log, ' ') == want, mode .. ': ' .. table.concat(log, ' '))
end

check(socketloop(), 'coroutines')
check(socketloop(coro), 'coro')

-- A timer callback that raises is reported as a thread error.
local loop = socketloop()
local errs = {}
loop.onerror = function(err) errs[#errs + 1] = err end
local bad = loop.timer.new{delay = 0, recurring = true, callback = function() error('boom', 0) end}
H.run(loop, 10)
assert(#errs == 1 and errs[1]:find'^boom', tostring(errs[1]))
assert(not bad.armed, 'the failed timer is disarmed')
loop = socketloop()
loop.timer.new{delay = 0, callback = function() error('raised', 0) end}
local ok, err = pcall(loop.start)
assert(not ok and err:find'^raised', tostring(err))

-- Many one-shot timers due at once: callbacks that return hand their
-- coroutine on to the next one, so a callback that raises, one that waits
-- (and so keeps its coroutine) and the ones after them must each still
-- run once, with their own params, in a coroutine nobody else is using.
loop = socketloop()
errs = {}
loop.onerror = function(e) errs[#errs + 1] = e end
local runs, waited, running, seen, nseen = {}, 0, {}, {}, 0
local function cb(_, i)
	local co = coroutine.running()
	if not seen[co] then seen[co], nseen = true, nseen + 1 end
	assert(not running[co], 'a coroutine runs two callbacks at once')
	running[co] = true
	runs[i] = (runs[i] or 0) + 1
	if i % 97 == 0 then running[co] = nil; error('raised ' .. i, 0) end
	if i % 89 == 0 then loop.sleep(0.001); waited = waited + 1 end
	running[co] = nil
end
local NT = 2000
for i = 1, NT do loop.timer.new{delay = 0, params = i, callback = cb} end
H.run(loop, H.under_valgrind and 120 or 20)
for i = 1, NT do assert(runs[i] == 1, ('timer %d ran %s times'):format(i, runs[i])) end
local fl = math.floor
assert(waited == fl(NT / 89) - fl(NT / (89 * 97)), waited)
assert(#errs == fl(NT / 97), #errs)
for _, e in ipairs(errs) do assert(e:find'^raised %d+', e) end
assert(nseen < NT / 10, 'callbacks that returned left their coroutine to the next: ' .. nseen)

-- A wake from outside the loop threads (the main code).
local q = loop.queue.new()
local got
loop.newthread(function() got = q:pop() end)
q:push(42)
H.run(loop, 10)
assert(got == 42)
print('ok')
