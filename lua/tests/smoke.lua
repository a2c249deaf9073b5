local socketloop = require'socketloop'
local loop = socketloop
local server = loop.newserver('127.0.0.1', 0, function(c)
  while true do
    local line, err = c:receive'*l'
    if not line then break end
    c:send(line:reverse() .. '\n')
  end
  c:close()
end)
local _, port = server:getsockname()
print('port', port, loop.poller())
local done = 0
for i = 1, 5 do
  loop.newthread(function()
    local c = assert(loop.connect('127.0.0.1', port))
    for j = 1, 10 do
      assert(c:send('hello' .. j .. '\r\n'))
      local l = assert(c:receive())
      assert(l == ('hello' .. j):reverse(), l)
    end
    c:close()
    done = done + 1
    if done == 5 then server:close() end
  end)
end
loop.start(1)
print('done', done)
assert(done == 5)
