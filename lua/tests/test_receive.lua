-- Every receive pattern against blocking LuaSocket on the same byte
-- streams, ours split at many points: the results must agree.
local socketloop = require'socketloop'
local socket = require'socket'
local H = require'helpers'
local loop = socketloop()

local bin = {}
for i = 0, 40 do bin[#bin + 1] = string.char((i * 37) % 256) end
bin = table.concat(bin)
local streams = {
	'abc\r\nde\rf\n\nxyz',
	'line1\nline2\r\n\r\n' .. bin,
	'no newline at all',
	'\n\n\r\n',
	'',
}
local sequences = {
	{'*l', '*l', '*l', '*l', '*a', '*a'},
	{3, '*l', 5, '*a'},
	{'*l', {2, 'pre'}, {'*l', 'p:'}, '*a'},
	{{4, '87654321'}, '*l', 0, 1, '*a'},
	{'*a', '*l', 3},
	{100},
}

local function unpack_pat(p)
	if type(p) == 'table' then return p[1], p[2] end
	return p
end

local function reference(stream, seq)
	local srv = assert(socket.bind('127.0.0.1', 0))
	local _, port = srv:getsockname()
	local c = assert(socket.connect('127.0.0.1', port))
	local s = assert(srv:accept())
	srv:close()
	assert(c:send(stream) == #stream)
	c:shutdown'send'
	s:settimeout(5)
	local out = {}
	for _, p in ipairs(seq) do
		local a, b, d = s:receive(unpack_pat(p))
		out[#out + 1] = {a, b, d}
	end
	c:close()
	s:close()
	return out
end

local function ours(stream, seq, cuts)
	local out = {}
	H.pair(loop, function(a, b)
		loop.newthread(function()
			local prev = 1
			for _, k in ipairs(cuts) do
				a:send(stream:sub(prev, k))
				prev = k + 1
				loop.sleep(0.001)
			end
			a:send(stream:sub(prev))
			a:shutdown'send'
		end)
		for _, p in ipairs(seq) do
			local x, y, z = b:receive(unpack_pat(p))
			out[#out + 1] = {x, y, z}
		end
		a:close()
		b:close()
	end)
	H.run(loop, 20)
	return out
end

local function same(r, o, what)
	for i = 1, #r do
		for k = 1, 3 do
			if r[i][k] ~= o[i][k] then
				error(('%s: call %d value %d: LuaSocket %q, socketloop %q')
					:format(what, i, k, tostring(r[i][k]), tostring(o[i][k])))
			end
		end
	end
end

local cases = 0
local step = H.under_valgrind and 5 or 1
for si, stream in ipairs(streams) do
	for qi, seq in ipairs(sequences) do
		local ref = reference(stream, seq)
		for k = 0, #stream, step do
			same(ref, ours(stream, seq, k > 0 and {k} or {}),
				('stream %d seq %d split %d'):format(si, qi, k))
			cases = cases + 1
		end
		if #stream > 4 then -- a few three-way splits
			for k = 1, #stream - 2, 3 * step do
				same(ref, ours(stream, seq, {k, k + 2}),
					('stream %d seq %d splits %d,%d'):format(si, qi, k, k + 2))
				cases = cases + 1
			end
		end
	end
end
print('ok', cases)
