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
