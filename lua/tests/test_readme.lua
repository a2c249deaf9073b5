-- The README's example, kept runnable.
local loop = require'socketloop'   -- a default loop; socketloop([coro]) makes more

local server = loop.newserver('127.0.0.1', 7000, function(client)
  for line in function() return client:receive'*l' end do
    client:send(line:reverse() .. '\n')
  end
  client:close()
end)

loop.newthread(function()
  local c = assert(loop.connect('127.0.0.1', 7000))
  c:send'hello\n'
  print(c:receive'*l')                 --> olleh
  c:close()
  server:close()                       -- nothing waits any more: start returns
end)
loop.start()

-- The README's example of timers and queues.
do
local loop = require'socketloop'
local q = loop.queue.new{max = 100}          -- bounded; new() is unbounded
loop.newthread(function()
  for i = 1, 3 do q:push(i) end              -- waits while full
  q:close()                                  -- pops drain it, then 'closed'
end)
q:add_worker(function(item) print('got', item) end)
local t = loop.timer.new{delay = 0.5, recurring = true, params = 'tick',
  callback = function(timer, params) print(params) end}
loop.newthread(function() loop.pause(2); t:cancel() end)
loop.start()
end
