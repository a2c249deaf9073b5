-- 5,000 concurrent connections (fewer under Valgrind), each exchanging a
-- line while all are open.
local socketloop = require'socketloop'
local H = require'helpers'
local loop = socketloop()
local N = H.under_valgrind and 200 or 5000
local open, echoed, peak = 0, 0, 0
local server, port = H.listen(loop, function(c)
	local l = c:receive'*l'
	if l then c:send(l .. '\n') end
	c:receive'*l' -- until the client closes
	c:close()
end)
local all_open = false
for i = 1, N do
	loop.newthread(function()
		local c, err = loop.connect('127.0.0.1', port)
		assert(c, err)
		open = open + 1
		if open > peak then peak = open end
		while not all_open do
			if open == N then all_open = true end
			loop.sleep(0.01)
		end
		assert(c:send(i .. '\n'))
		assert(c:receive'*l' == tostring(i))
		echoed = echoed + 1
		c:close()
		open = open - 1
		if echoed == N then server:close() end
	end)
end
H.run(loop, 120)
assert(echoed == N and peak == N, echoed .. ' ' .. peak)
print('ok', N, loop.poller())
