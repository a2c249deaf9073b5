-- redis-lua (Debian's lua-redis), unchanged, over the loop, against a
-- redis-server this test starts on 127.0.0.1: commands, transactions
-- (redis-lua runs the block in a coroutine of its own) and pub/sub (read
-- through a coroutine.wrap iterator), from several loop threads at once;
-- afterwards each connection must still be in step (PING, GET).
local H = require'helpers'
local ok_redis, redis = pcall(require, 'redis')
if not ok_redis then
	-- Debian's lua-redis has no Lua 5.4 directory.
	print('skipped: redis-lua (Debian: lua-redis) is not installed for ' .. _VERSION)
	return
end
-- os.execute: true on 5.2+, 0 on 5.1 and LuaJIT, when the command succeeded.
local function sh(cmd)
	local r = os.execute(cmd)
	return r == true or r == 0
end
if not sh'command -v redis-server >/dev/null 2>&1' then
	print('skipped: redis-server (Debian: redis-server) is not installed')
	return
end
local socketloop = require'socketloop'
local loop = socketloop()

local port = H.free_port()
local dir = os.tmpname()
os.remove(dir)
assert(sh('mkdir ' .. dir))
local pidfile = dir .. '/redis.pid'
assert(sh(('redis-server --port %d --bind 127.0.0.1 --save "" '
	.. '--appendonly no --daemonize yes --pidfile %s --dir %s --logfile %s/log')
	:format(port, pidfile, dir, dir)))

local function connect()
	return redis.connect{socket = assert(loop.connect('127.0.0.1', port))}
end

local THREADS = 8
local done = {}
local function body()
	loop.newthread(function()
		-- Wait until the server accepts (bounded).
		for _ = 1, 500 do
			local c = loop.connect('127.0.0.1', port)
			if c then c:close() break end
			loop.sleep(0.01)
		end
		local r = connect()
		assert(r:ping())
		r:del('counter', 'cas')

		-- Transactions from several threads at once, each on its own
		-- connection.
		local finished = 0
		for t = 1, THREADS do
			loop.newthread(function()
				local c = connect()
				for i = 1, 20 do
					local replies = c:transaction(function(tx)
						tx:incrby('counter', t)
						tx:get('counter')
					end)
					assert(type(replies) == 'table' and #replies == 2, 'tx ' .. i)
				end
				-- Check and set, retried when another thread got in first.
				for _ = 1, 5 do
					c:transaction({watch = 'cas', cas = true, retry = 100}, function(tx)
						local v = tonumber(tx:get('cas') or 0)
						tx:multi()
						tx:set('cas', v + 1)
					end)
				end
				assert(c:ping() and tonumber(c:get('counter')) >= 20 * t)
				c:quit()
				finished = finished + 1
			end)
		end
		while finished < THREADS do loop.sleep(0.01) end
		local sum = 0
		for t = 1, THREADS do sum = sum + 20 * t end
		assert(tonumber(r:get('counter')) == sum, r:get('counter'))
		assert(tonumber(r:get('cas')) == 5 * THREADS, r:get('cas'))
		done[#done + 1] = 'transactions'

		-- Pub/sub: a subscriber iterates, a publisher sends once it is
		-- subscribed.
		local got = {}
		local sub_ready, sub_done = false, false
		loop.newthread(function()
			local s = connect()
			-- A channel and a pattern: redis-lua's abort unsubscribes from
			-- both and reads until no subscription is left, so both
			-- replies are read (with a channel alone, the reply to its
			-- PUNSUBSCRIBE would be left unread, on any socket).
			local acks = 0
			for msg, abort in s:pubsub({subscribe = {'news'}, psubscribe = {'old.*'}}) do
				if msg.kind == 'subscribe' or msg.kind == 'psubscribe' then
					acks = acks + 1
					sub_ready = acks == 2
				elseif msg.kind == 'message' then
					got[#got + 1] = msg.payload
					if #got == 3 then abort() end
				end
			end
			-- In step again after the subscription ended.
			assert(s:ping())
			assert(s:set('after', 'pubsub') and s:get('after') == 'pubsub')
			s:quit()
			sub_done = true
		end)
		while not sub_ready do loop.sleep(0.005) end
		for i = 1, 3 do assert(r:publish('news', 'item ' .. i) == 1) end
		while not sub_done do loop.sleep(0.005) end
		assert(table.concat(got, ',') == 'item 1,item 2,item 3', table.concat(got, ','))
		done[#done + 1] = 'pubsub'

		-- And the first connection is in step too.
		assert(r:ping() and r:get('after') == 'pubsub')
		r:quit()
		done[#done + 1] = 'in-step'
	end)
	H.run(loop, 60)
end
local ok, err = pcall(body)
sh(('kill $(cat %s) 2>/dev/null; rm -rf %s'):format(pidfile, dir))
assert(ok, err)
assert(#done == 3, table.concat(done, ' '))
print(table.concat(done, ' ') .. ' ok')
