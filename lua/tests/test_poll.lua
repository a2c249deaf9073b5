-- A polling client: settimeout(0) and loop.sleep between polls.  Each
-- try-once call must try, so the poller sees a stream that the peer
-- sends in pieces with pauses, and its sends go on once the peer has
-- drained a full socket buffer.
local socketloop = require'socketloop'
local H = require'helpers'
local loop = socketloop()

local PIECES, PIECE = 20, 'piece of the stream\n'
local got, polls_r, timeouts_r = {}, 0, 0
local sent_all, polls_w, timeouts_w, drained = false, 0, 0, 0
local BIG = ("x"):rep(256 * 1024)

H.pair(loop, function(a, b)
	-- a sends in pieces, with pauses; b polls for them
	loop.newthread(function()
		for _ = 0, PIECES do
			loop.sleep(0.02)
			a:send(PIECE)
		end
		a:shutdown'send'
	end)
	-- The first piece with a wait on the loop: polls come after one.
	assert(b:receive'*l' .. '\n' == PIECE)
	b:settimeout(0)
	local partial = ''
	while polls_r < 500 do
		polls_r = polls_r + 1
		local data, err, part = b:receive(#PIECE, partial)
		if data then
			got[#got + 1] = data
			partial = ''
		elseif err == 'timeout' then
			timeouts_r = timeouts_r + 1
			partial = part
			loop.sleep(0.01)
		else
			break -- 'closed': the stream is over
		end
	end

	-- b polls to send more than the socket buffers hold; a drains it in
	-- pieces, with pauses
	b:setoption('send-buffer-size', 4096)
	a:setoption('recv-buffer-size', 4096)
	loop.newthread(function()
		a:settimeout(5)
		while drained < 2 * #BIG do
			local data, err, part = a:receive(65536)
			data = data or part
			drained = drained + #data
			if err == 'closed' then break end
			loop.sleep(0.01)
		end
	end)
	-- The first copy with waits on the loop, the second by polling.
	b:settimeout(-1)
	assert(b:send(BIG) == #BIG)
	b:settimeout(0)
	local i = 1
	while polls_w < 5000 do
		polls_w = polls_w + 1
		local last, err, partial_last = b:send(BIG, i)
		if last then
			sent_all = true
			break
		end
		assert(err == 'timeout', err)
		timeouts_w = timeouts_w + 1
		i = partial_last + 1
		loop.sleep(0.01)
	end
	while drained < 2 * #BIG and polls_w < 5000 do
		polls_w = polls_w + 1
		loop.sleep(0.01)
	end
	a:close()
	b:close()
end)
H.run(loop, 100)
local failed = {}
local function expect(c, msg)
	if not c then failed[#failed + 1] = msg; print('FAILED ' .. msg) end
end
local ok_pieces = #got == PIECES
for i = 1, #got do ok_pieces = ok_pieces and got[i] == PIECE end
expect(ok_pieces, ('receive: polled %d of %d pieces in %d polls')
	:format(#got, PIECES, polls_r))
expect(timeouts_r > 0, 'receive: the poller should have found nothing some time')
expect(sent_all, ('send: sent only part of the data in %d polls'):format(polls_w))
expect(timeouts_w > 0, 'send: the send buffer should have filled')
expect(drained == 2 * #BIG, ('send: %d of %d bytes arrived'):format(drained, 2 * #BIG))
assert(#failed == 0, table.concat(failed, '; '))
print('ok', polls_r, polls_w)
