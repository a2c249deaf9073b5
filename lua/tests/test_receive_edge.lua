-- receive and send at their edges, the same calls on a LuaSocket socket
-- and on ours, compared value by value: every pattern (numbers, numeric
-- strings, 0) x prefix (none, shorter than n, as long, longer) x socket
-- state (open with data, closed by the peer, closed here); send with i/j
-- ranges, floats, negative and out-of-range indices.  Every difference is
-- listed before the test fails.
local socket = require'socket'
local socketloop = require'socketloop'
local H = require'helpers'
local loop = socketloop()

local function pack(...) return {n = select('#', ...), ...} end
local unpack = unpack or table.unpack

local function show(t)
	local out = {}
	for i = 1, t.n do
		local v = t[i]
		out[i] = type(v) == 'string' and ('%q'):format(v) or tostring(v)
	end
	return '{' .. table.concat(out, ', ') .. '}'
end

local function argmsg(err)
	return tostring(err):match'%((.*)%)$' or tostring(err)
end

-- Same results: both raised the same argument error, or the first three
-- values are equal (LuaSocket pads its results with nils to three).
local function same(r, o)
	if r[1] ~= o[1] then return false end
	if not r[1] then return argmsg(r[2]) == argmsg(o[2]) end
	for k = 2, 4 do
		if r[k] ~= o[k] then return false end
	end
	return true
end

local listener = assert(socket.bind('127.0.0.1', 0))
local _, port = listener:getsockname()
listener:settimeout(5)

-- A connected pair of LuaSocket sockets: the peer and the one tested.
local function pair()
	local peer = assert(socket.connect('127.0.0.1', port))
	local s = assert(listener:accept())
	peer:settimeout(5)
	return peer, s
end

local DATA = 'abcd\r\nxy'
local WAIT = 0.05 -- bounds a receive that would wait for more

local states = {
	open = function(peer) assert(peer:send(DATA)) end,
	peer_closed = function(peer) assert(peer:send(DATA)); peer:close() end,
	closed = function(peer, s) assert(peer:send(DATA)); s:close() end,
}
local state_names = {'open', 'peer_closed', 'closed'}
local patterns = {'*l', '*a', 3, '3', ' 3', '3.7', 3.0, 0, '0', '*line',
	'*all', 'l', 'a', -1, '-1', true}
local prefixes = {false, 'p', 'ppp', 'pppppp', 12}

local failures, cases = {}, 0
local function record(what, r, o)
	cases = cases + 1
	if not same(r, o) then
		failures[#failures + 1] = ('%s: LuaSocket %s socketloop %s')
			:format(what, show(r), show(o))
	end
end

-- Runs calls(s) on a LuaSocket socket and on ours (the same kind of
-- socket, wrapped) set up by setup(peer, s); returns both result lists.
local function both(setup, calls)
	local peer, s = pair()
	s:settimeout(WAIT)
	setup(peer, s)
	local ref = calls(s, peer)
	if s.getfd then s:close() end
	peer:close()

	peer, s = pair()
	local a = loop.wrap(s)
	a:settimeout(WAIT)
	setup(peer, a)
	local got = calls(a, peer)
	a:close()
	peer:close()
	return ref, got
end

local function receive_cases()
	for _, st in ipairs(state_names) do
		for _, pat in ipairs(patterns) do
			for _, pre in ipairs(prefixes) do
				local ref, got = both(states[st], function(s)
					local first
					if pre then
						first = pack(pcall(s.receive, s, pat, pre))
					else
						first = pack(pcall(s.receive, s, pat))
					end
					-- and what the socket gives next
					return {first, pack(pcall(s.receive, s, '*l'))}
				end)
				local what = ('%s receive(%s%s)'):format(st, show(pack(pat)),
					pre and (', ' .. show(pack(pre))) or '')
				record(what, ref[1], got[1])
				record(what .. ' then *l', ref[2], got[2])
			end
		end
		-- arguments of the wrong type, which raise
		for _, args in ipairs{{{}}, {'*l', {}}, {{}, {}}, {3, true}} do
			local ref, got = both(states[st], function(s)
				return {pack(pcall(s.receive, s, args[1], args[2]))}
			end)
			record(('%s receive(%s, %s)'):format(st, type(args[1]),
				type(args[2])), ref[1], got[1])
		end
	end
end

local sends = {{'abcdef'}, {'abcdef', 2, 4}, {'abcdef', -2}, {'abcdef', 0, 100},
	{'abcdef', 5, 2}, {'abcdef', '2', '3'}, {'abcdef', 2.0, 3.0},
	{'abcdef', 2.5}, {'abcdef', 2, 3.9}, {'abcdef', -100, -3}, {'abcdef', 7},
	{'abcdef', 10}, {'abcdef', -1, -1}, {'abcdef', 3, -10}, {'abcdef', 0},
	{'abcdef', ' 2', '0x4'}, {1.0}, {12}, {2^53}, {0.5}, {''}, {'', 5},
	{'abcdef', 'x'}, {{}}, {'abcdef', 1, {}}, {}}

local function send_cases()
	for _, st in ipairs{'open', 'closed'} do
		for _, args in ipairs(sends) do
			local setup = st == 'closed' and function(_, s) s:close() end
				or function() end
			local ref, got = both(setup, function(s, peer)
				local r = pack(pcall(s.send, s, unpack(args, 1, 3)))
				local arrived = ''
				if st == 'open' then
					s:shutdown'send'
					arrived = peer:receive'*a' or ''
				end
				return {r, pack(arrived)}
			end)
			local shown = {}
			for i = 1, 3 do shown[i] = tostring(args[i]) end
			local what = ('%s send(%s)'):format(st, table.concat(shown, ', '))
			record(what, ref[1], got[1])
			record(what .. ' arrived', ref[2], got[2])
		end
	end
end


loop.newthread(function()
	receive_cases()
	send_cases()
end)
H.run(loop, 300)
listener:close()
for _, f in ipairs(failures) do print('DIFFERS ' .. f) end
assert(#failures == 0, ('%d of %d cases differ from LuaSocket')
	:format(#failures, cases))
print('ok', cases)
