-- The module's API and return conventions.
local socketloop = require'socketloop'
local H = require'helpers'

-- The module is callable and is itself a loop.
assert(type(socketloop.newthread) == 'function')
assert(socketloop.step == socketloop.dispatch)
local loop = socketloop()
assert(loop ~= socketloop and loop.step == loop.dispatch)

-- dispatch with nothing waiting: false at once.
assert(loop.dispatch(10) == false)

-- newthread runs at once, up to the first wait, and returns the thread.
local order = {}
local th = loop.newthread(function(a, b)
	order[#order + 1] = 'start ' .. a .. b
	loop.sleep(0.01)
	order[#order + 1] = 'end'
end, 1, 2)
assert(type(th) == 'thread')
assert(order[1] == 'start 12' and #order == 1)
assert(loop.dispatch() == true or true)
H.run(loop, 5)
assert(order[2] == 'end')

-- stop() ends start(); a later start() runs again (the stop is cleared).
local ticks = 0
loop.newthread(function()
	for i = 1, 3 do
		loop.sleep(0.005)
		ticks = ticks + 1
		if i == 1 then loop.stop() end
	end
end)
loop.start(1)
assert(ticks == 1, ticks)
loop.start(1)
assert(ticks == 3, ticks)

-- A handler error is raised out of dispatch/start with its traceback;
-- the loop stays usable.
loop.newthread(function()
	loop.sleep(0.001)
	error('boom')
end)
local ok, err = pcall(loop.start, 1)
assert(not ok and err:find'boom' and err:find'traceback', err)
local later = false
loop.newthread(function() loop.sleep(0.001); later = true end)
loop.start(1)
assert(later)

-- An error before the first wait comes out of newthread itself.
local ok2, err2 = pcall(loop.newthread, function() error('early') end)
assert(not ok2 and err2:find'early', err2)

-- With an error handler, the loop logs and goes on.
local seen = {}
loop.onerror = function(e, thread)
	assert(type(thread) == 'thread')
	seen[#seen + 1] = e
end
for i = 1, 3 do
	loop.newthread(function() loop.sleep(0.001 * i); error('fail' .. i) end)
end
local survivor = false
loop.newthread(function() loop.sleep(0.01); survivor = true end)
loop.start(1)
assert(#seen == 3 and survivor, #seen)

-- Threads that fail in the same round: every error reaches onerror before
-- start returns, though no thread is left.
seen = {}
for i = 1, 3 do
	loop.newthread(function() loop.sleep(0.02); error('same' .. i) end)
end
loop.start(5)
assert(#seen == 3, #seen)
loop.onerror = nil

-- A loop thread that yields outside a socket call is an error, not a hang.
-- On a slow machine the sleep may end before newthread returns, and the
-- error comes from newthread instead of start.
local ok3, err3 = pcall(function()
	loop.newthread(function() loop.sleep(0.001); coroutine.yield() end)
	loop.start(1)
end)
assert(not ok3 and err3:find'yielded outside a socket call', err3)

-- Socket calls outside loop threads raise.
local ok4, err4 = pcall(loop.connect, '127.0.0.1', 1)
assert(not ok4 and err4:find'outside a loop thread' or err4:find'cannot', err4)
print('ok')
