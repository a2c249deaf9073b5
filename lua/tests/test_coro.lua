-- socketloop.coro: luapower coro's API, and socket calls from coro threads.
local coro = require'socketloop.coro'
local socketloop = require'socketloop'
local H = require'helpers'

-- transfer between two threads, values both ways
local log = {}
local a, b
a = coro.create(function(x)
	log[#log + 1] = 'a' .. x
	local y = coro.transfer(b, x + 1)
	log[#log + 1] = 'a' .. y
	return 'a done'
end)
b = coro.create(function(x)
	log[#log + 1] = 'b' .. x
	coro.transfer(a, x + 1)
	error('b must not resume')
end)
assert(coro.transfer(a, 1) == 'a done')
assert(table.concat(log, ' ') == 'a1 b2 a3', table.concat(log, ' '))
assert(coro.status(a) == 'dead' and coro.status(b) == 'suspended')
local main, is_main = coro.running()
assert(is_main and main == coro.main)

-- resume / yield / wrap
local gen = coro.wrap(function()
	for i = 1, 3 do coro.yield(i) end
	return 'end'
end)
assert(gen() == 1 and gen() == 2 and gen() == 3 and gen() == 'end')
local t = coro.create(function() error('oops') end)
local ok, err = coro.resume(t)
assert(not ok and err:find'oops')

-- a loop in coro mode: threads are coro threads and may transfer
local loop = socketloop(coro)
local got
H.pair(loop, function(x, y)
	assert(select(2, coro.running()) == false)
	local me = coro.running()
	-- a socket call from a coro thread that was transferred to
	local helper = coro.create(function(v)
		x:send(v .. '\n')
		coro.transfer(me, 'sent')
	end)
	assert(coro.transfer(helper, 'ping') == 'sent')
	got = y:receive'*l'
	x:close()
	y:close()
end)
H.run(loop, 10)
assert(got == 'ping', got)
print('ok')
