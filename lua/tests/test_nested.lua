-- Blocking from places a yield cannot leave: a user coroutine (an
-- iterator), pcall on Lua 5.1, a metamethod, a string.gsub callback.  The
-- green thread under the Lua thread parks in place, on every Lua
-- (test_torture.lua does the same under load, with the JIT at work).
local socketloop = require'socketloop'
local H = require'helpers'
local loop = socketloop()
local results = {}

local function expect(name, ok, err)
	assert(ok, name .. ': ' .. tostring(err))
	results[name] = 'ok'
end

H.pair(loop, function(a, b)
	loop.newthread(function()
		for i = 1, 5 do
			a:send(('line %d\n'):format(i))
			loop.sleep(0.002)
		end
	end)

	-- 1. An iterator made with coroutine.wrap that reads lines.
	local lines = coroutine.wrap(function()
		for _ = 1, 2 do coroutine.yield(assert(b:receive'*l')) end
	end)
	expect('coroutine.wrap', pcall(function()
		assert(lines() == 'line 1')
		assert(lines() == 'line 2')
	end))

	-- 2. Inside pcall (a C-call boundary for yields on Lua 5.1).
	expect('pcall', pcall(function()
		local ok, l = pcall(b.receive, b, '*l')
		assert(ok and l:match'^line %d$', l)
	end))

	-- 3. A metamethod.
	local proxy = setmetatable({}, {__index = function(_, k)
		return assert(b:receive'*l') .. k
	end})
	expect('metamethod', pcall(function()
		assert(proxy.x:match'^line %dx$')
	end))

	-- 4. A string.gsub callback.
	expect('gsub', pcall(function()
		local s = ('@'):gsub('@', function() return assert(b:receive'*l') end)
		assert(s:match'^line %d$', s)
	end))
	a:close()
	b:close()
end)
H.run(loop, 10)
for _, k in ipairs{'coroutine.wrap', 'pcall', 'metamethod', 'gsub'} do
	assert(results[k], k .. ' did not run')
	io.write(k, '=', results[k], ' ')
end
print('ok')
