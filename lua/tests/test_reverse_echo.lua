-- A port of the original socketloop test: a reverse-echo server, many
-- clients, each with several threads exchanging lines; in coroutine mode
-- and in coro (symmetric) mode.
local socketloop = require'socketloop'
local H = require'helpers'

local function run(loop, label)
	local CLIENTS, THREADS, LINES = 10, 5, 30
	if H.under_valgrind then CLIENTS, THREADS, LINES = 3, 3, 10 end
	local served, answered = 0, 0
	local server, port = H.listen(loop, function(c)
		while true do
			local line = c:receive'*l'
			if not line or line == 'close' then break end
			c:send(line:reverse() .. '\n')
			served = served + 1
		end
		c:close()
	end)
	local left = CLIENTS * THREADS
	for i = 1, CLIENTS do
		for j = 1, THREADS do
			loop.newthread(function()
				local c = assert(loop.connect('127.0.0.1', port))
				for k = 1, LINES do
					local msg = ('client %d thread %d line %d'):format(i, j, k)
					assert(c:send(msg .. '\n'))
					local back = assert(c:receive'*l')
					assert(back == msg:reverse(), back)
					answered = answered + 1
				end
				c:send'close\n'
				c:close()
				left = left - 1
				if left == 0 then server:close() end
			end)
		end
	end
	H.run(loop, 60)
	assert(served == CLIENTS * THREADS * LINES and answered == served)
	print(label, served)
end

run(socketloop(), 'coroutines')
run(socketloop(require'socketloop.coro'), 'coro')
print('ok')
