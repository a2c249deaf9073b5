-- socketloop.sync: timers, queues, semaphores, locks and pause/wakeup for
-- a loop's threads, with Copas 4's names.  Each is Lua code over the C
-- core's wait queues (lua/lsync.c): wq:wait([timeout [, tag [, deadline]]])
-- blocks the calling thread, first come first served, until wq:wake(...)
-- hands it values, or returns nil, 'timeout'.  Waiting works wherever a
-- socket call does: in loop threads, in socketloop.coro threads, and
-- parked in place (user coroutines, metamethods, Lua 5.1).
--
-- Hand-off keeps the waiters' order: a push gives its item straight to
-- the first waiting pop, a release gives the lock to the first waiter,
-- a give serves waiters in order; nobody arriving meanwhile jumps ahead.
local unpack = unpack or table.unpack
local running = coroutine.running

local function pack(...) return {n = select('#', ...), ...} end

return function(loop, L)
	-- The wait queue's methods, called as functions on the hot paths.
	local wqm = getmetatable(L:wq()).__index
	local wait, wake = wqm.wait, wqm.wake
	-- --- pause / wakeup ------------------------------------------------
	local pausing = setmetatable({}, {__mode = 'k'}) -- thread -> its wq
	local function pause_wq(co)
		local q = pausing[co]
		if not q then
			q = L:wq()
			pausing[co] = q
		end
		return q
	end

	-- Pauses the calling thread for `seconds` (none or 0: lets the others
	-- run once; negative: until woken), or until loop.wakeup(thread).
	-- Returns true.
	function loop.pause(seconds)
		if seconds == nil or seconds == 0 then return loop.sleep(0) end
		pause_wq(running()):wait(seconds > 0 and seconds or nil)
		return true
	end

	function loop.pauseforever()
		pause_wq(running()):wait()
		return true
	end

	-- Ends the pause of `thread` (as coroutine.running() names it inside):
	-- true if it was pausing.
	function loop.wakeup(thread)
		local q = pausing[thread]
		return q ~= nil and q:wake(true)
	end

	-- --- timers ---------------------------------------------------------
	local timer = {}
	timer.__index = timer
	local ntimers, arms = 0, 0
	local fire -- set below round, which it runs

	-- Each due time of an armed timer runs this in a loop thread (the C
	-- timer starts it as it fires: an armed timer holds no coroutine).
	-- t.armed is the number of the arming it belongs to (false when not
	-- armed), so that a callback that cancels or re-arms its timer ends
	-- that arming's rounds.  Due times are absolute, each the previous
	-- one plus the delay, so a recurring timer keeps its period and does
	-- not drift.  An error in the callback disarms the timer and is
	-- reported as any loop thread's.
	local function round(t)
		local token = t.armed
		if not token then return end
		if not t.recurring then t.armed = false end
		local ok, err = pcall(t.callback, t, t.params)
		if not ok then
			if t.armed == token then t.armed = false end
			error(err, 0)
		end
		if t.armed ~= token then return end
		local now, due = loop.now(), t.due + t.delay
		if due <= now then -- a slow callback: skip the missed rounds
			due = t.delay > 0 and
				due + math.ceil((now - due) / t.delay + 1e-9) * t.delay or now
		end
		t.due = due
		t.c:start(due, fire, t)
	end
	-- One function for every timer, given the timer (no closure per
	-- arming); in socketloop.coro each round is a coro thread, as every
	-- loop thread there.
	if loop.coro then
		fire = function(t) loop.newthread(round, t) end
	else
		fire = round
	end

	function timer:arm(initial_delay)
		assert(initial_delay == nil or initial_delay >= 0,
			'delay must be greater than or equal to 0')
		if self.armed then return nil, 'already armed' end
		arms = arms + 1
		self.armed = arms
		self.due = loop.now() + (initial_delay or self.delay)
		if not self.c then self.c = L:timer() end
		self.c:start(self.due, fire, self)
		return self
	end

	-- A callback that is running goes on to its end; the timer does not
	-- come back.
	function timer:cancel()
		if not self.armed then return nil, 'not armed' end
		self.armed = false
		self.c:stop()
		return self
	end

	loop.timer = {}
	-- {delay =, callback = function(timer, params), recurring =, params =,
	--  initial_delay =, name =} -> an armed timer.
	function loop.timer.new(opts)
		assert((opts.delay or -1) >= 0, 'delay must be greater than or equal to 0')
		assert(type(opts.callback) == 'function', 'expected callback to be a function')
		ntimers = ntimers + 1
		-- Every field the timer will have, set here: the table is made
		-- at its full size once.
		return setmetatable({
			name = opts.name or 'timer_' .. ntimers,
			delay = opts.delay,
			callback = opts.callback,
			recurring = not not opts.recurring,
			params = opts.params,
			armed = false,
			due = 0,
			c = L:timer(),
		}, timer):arm(opts.initial_delay)
	end

	-- --- queues ---------------------------------------------------------
	local queue = {}
	queue.__index = queue
	local nqueues = 0

	-- Gives item to the first select() still waiting on q, if any.
	local function to_selector(q, item)
		local sel = q.selectors
		while sel[1] do
			local e = table.remove(sel, 1)
			if not e.done then
				e.done = true
				e.wq:wake(q, item)
				return true
			end
		end
		return false
	end

	-- push(item [, timeout]) -> true | nil, 'timeout' | nil, 'closed'.
	-- Only a bounded queue (new{max = n}) ever waits.
	function queue:push(item, timeout)
		if self.closed then return nil, 'closed' end
		if wake(self.poppers, item) then return true end
		if self.selectors[1] and to_selector(self, item) then return true end
		local max = self.max
		if max and self.tail - self.head + self.reserved >= max then
			local ok, err = self.pushers:wait(timeout)
			if not ok then return nil, err end
			-- The pop that woke us kept a place for us.
			self.reserved = self.reserved - 1
			if self.poppers:wake(item) then return true end
		end
		self.items[self.tail] = item
		self.tail = self.tail + 1
		return true
	end

	-- pop([timeout]) -> item | nil, 'timeout' | nil, 'closed' (the items
	-- left when the queue was closed still come out first).
	function queue:pop(timeout)
		local head = self.head
		if head < self.tail then
			local item = self.items[head]
			self.items[head] = nil
			self.head = head + 1
			if self.max and self.pushers:wake(true) then
				self.reserved = self.reserved + 1
			end
			if head + 1 == self.tail then
				self.head, self.tail = 1, 1
				if self.closed then self.drained:wakeall(true) end
			end
			return item
		end
		if self.closed then return nil, 'closed' end
		return wait(self.poppers, timeout)
	end

	function queue:get_size() return self.tail - self.head end

	-- No more pushes: every waiter wakes with nil, 'closed' (pops once the
	-- items left have gone).
	function queue:close()
		if self.closed then return true end
		self.closed = true
		self.poppers:wakeall(nil, 'closed')
		self.pushers:wakeall(nil, 'closed')
		for _, e in ipairs(self.selectors) do
			if not e.done then
				e.done = true
				e.wq:wake(self, nil, 'closed')
			end
		end
		self.selectors = {}
		if self.head == self.tail then self.drained:wakeall(true) end
		return true
	end
	queue.stop = queue.close

	-- Closes, then waits until the items left are popped: true |
	-- nil, 'timeout' (and the items are dropped, unless keep_on_timeout).
	function queue:finish(timeout, keep_on_timeout)
		self:close()
		if self.head == self.tail then return true end
		local ok, err = self.drained:wait(timeout)
		if ok then return true end
		if not keep_on_timeout then self:destroy() end
		return nil, err
	end

	-- Closes and drops the items left.
	function queue:destroy()
		self:close()
		self.items, self.head, self.tail = {}, 1, 1
		self.drained:wakeall(true)
		return true
	end

	-- A loop thread that calls worker(item) for each item, until the queue
	-- is closed and empty.  Returns the thread.
	function queue:add_worker(worker)
		assert(type(worker) == 'function', 'expected worker to be a function')
		local co, over
		co = loop.newthread(function()
			while true do
				local item, err = self:pop()
				if err then break end
				worker(item)
			end
			over = true
			if co then self.workers[co] = nil end
		end)
		if not over then self.workers[co] = true end
		return co
	end

	function queue:get_workers()
		local list = {}
		for co in pairs(self.workers) do list[#list + 1] = co end
		return list
	end

	loop.queue = {}
	-- {max = n (bounded; default unbounded), name =} -> a queue.
	function loop.queue.new(opts)
		opts = opts or {}
		assert(opts.max == nil or opts.max >= 1, 'max must be at least 1')
		nqueues = nqueues + 1
		return setmetatable({
			name = opts.name or 'queue_' .. nqueues,
			max = opts.max,
			items = {}, head = 1, tail = 1, -- items[head .. tail - 1]
			reserved = 0, -- places kept for pushers woken, not yet run
			poppers = L:wq(), pushers = L:wq(), drained = L:wq(),
			selectors = {}, -- select() calls waiting, first come first
			workers = setmetatable({}, {__mode = 'k'}),
			closed = false,
		}, queue)
	end

	-- select(queues [, timeout]) -> q, item | q, nil, 'closed' |
	-- nil, 'timeout': pops from the first of `queues` that has an item or
	-- is closed, waiting for one if none does.  Waiting pops of a queue are
	-- served before waiting selects.
	local selecting = setmetatable({}, {__mode = 'k'}) -- thread -> wq
	function loop.queue.select(queues, timeout)
		for _, q in ipairs(queues) do
			if q.head < q.tail or q.closed then return q, q:pop(0) end
		end
		local co = running()
		local wq = selecting[co]
		if not wq then
			wq = L:wq()
			selecting[co] = wq
		end
		local e = {wq = wq}
		for _, q in ipairs(queues) do
			q.selectors[#q.selectors + 1] = e
		end
		local r = pack(wq:wait(timeout))
		e.done = true
		for _, q in ipairs(queues) do
			local sel = q.selectors
			for i = 1, #sel do
				if sel[i] == e then
					table.remove(sel, i)
					break
				end
			end
		end
		if r[1] == nil then return nil, r[2] end
		return unpack(r, 1, r.n)
	end

	-- --- semaphores -----------------------------------------------------
	local sema = {}
	sema.__index = sema

	-- Serves the waiters in order while the first one's request fits.
	local function serve(s)
		while true do
			local want = s.waiting:first()
			if not want or want > s.count then return end
			s.count = s.count - want
			s.waiting:wake(true)
		end
	end

	-- give([n]) -> true | nil, 'too many' (the count stops at max).
	function sema:give(n)
		n = n or 1
		if n < 0 or n ~= n or n == math.huge then
			error('expected a finite number of resources >= 0, got: ' .. tostring(n), 2)
		end
		local count, err = self.count + n, nil
		if count > self.max then count, err = self.max, 'too many' end
		self.count = count
		serve(self)
		if err then return nil, err end
		return true
	end

	-- take([n [, timeout]]) -> true | nil, 'timeout' | nil, 'too many' |
	-- nil, 'destroyed'.
	function sema:take(n, timeout)
		n = n or 1
		if self.destroyed then return nil, 'destroyed' end
		if self.count >= n and self.waiting:count() == 0 then
			self.count = self.count - n
			return true
		end
		if n > self.max then return nil, 'too many' end
		local ok, err = self.waiting:wait(timeout or self.timeout, n)
		if ok then return true end
		if err == 'timeout' then serve(self) end -- the head may have left
		return nil, err
	end

	function sema:get_count() return self.count end
	-- What the waiters lack in all.
	function sema:get_wait() return self.waiting:tags() - self.count end

	function sema:destroy()
		self.destroyed = true
		self.waiting:wakeall(nil, 'destroyed')
		return true
	end

	loop.semaphore = {}
	-- new(max [, start [, timeout]]): timeout is take's default (none:
	-- wait for ever).
	function loop.semaphore.new(max, start, timeout)
		if type(max) ~= 'number' or max < 1 then
			error('expected max resources to be a number greater than 0, got: ' .. tostring(max), 2)
		end
		return setmetatable({max = max, count = start or 0, timeout = timeout,
			waiting = L:wq()}, sema)
	end

	-- --- locks ----------------------------------------------------------
	local lock = {}
	lock.__index = lock
	local HANDOFF = {} -- the owner while the lock passes to a woken waiter

	-- get([timeout]) -> seconds waited | nil, err, seconds waited; err is
	-- 'timeout', 'destroyed' or 'lock is not re-entrant'.
	function lock:get(timeout)
		local co = running()
		if self.destroyed then return nil, 'destroyed', 0 end
		if self.owner == nil then
			self.owner, self.depth = co, 1
			return 0
		end
		if self.owner == co then
			if self.not_reentrant then return nil, 'lock is not re-entrant', 0 end
			self.depth = self.depth + 1
			return 0
		end
		local t0 = loop.now()
		local ok, err = self.waiting:wait(timeout or self.timeout)
		if not ok then return nil, err, loop.now() - t0 end
		self.owner, self.depth = co, 1
		return loop.now() - t0
	end

	-- release() -> true | nil, 'cannot release a lock not owned'.
	function lock:release()
		if self.owner ~= running() or self.owner == nil then
			return nil, 'cannot release a lock not owned'
		end
		self.depth = self.depth - 1
		if self.depth > 0 then return true end
		if self.waiting:wake(true) then
			self.owner = HANDOFF
		else
			self.owner = nil
		end
		return true
	end

	function lock:destroy()
		self.destroyed = true
		self.waiting:wakeall(nil, 'destroyed')
		return true
	end

	loop.lock = {}
	-- new([timeout [, not_reentrant]]): timeout is get's default (none:
	-- wait for ever).
	function loop.lock.new(timeout, not_reentrant)
		return setmetatable({timeout = timeout, not_reentrant = not_reentrant,
			waiting = L:wq()}, lock)
	end
end
