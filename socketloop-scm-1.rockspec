-- LuaRocks build of the Lua module: `luarocks make` in this directory.
package = "socketloop"
version = "scm-1"
source = {url = "git+file://."}
description = {
	summary = "TCP sockets with coroutines, on green threads",
	detailed = [[
The API of luapower socketloop (socketloop([coro]), wrap, connect,
newthread, newserver, start, stop, dispatch); sockets behave as blocking
LuaSocket TCP objects inside loop threads, on epoll, poll or select.]],
	license = "MIT",
}
dependencies = {"lua >= 5.1, < 5.5"}
local c = {
	"runtime/chan.c", "runtime/debug.c", "runtime/error.c", "runtime/heap.c",
	"runtime/sched.c", "runtime/sem.c", "runtime/stack.c", "runtime/thread.c",
	"runtime/switch_x86_64.S",
	"net/bufio.c", "net/io.c", "net/loop.c", "net/poll_epoll.c",
	"net/poll_poll.c", "net/poll_select.c", "net/resolve.c", "net/sock.c",
	"net/tcp.c",
	"lua/lcore.c", "lua/lsock.c", "lua/lmeth.c", "lua/lopt.c", "lua/lunix.c",
	"lua/lsync.c", "lua/ltimer.c",
}
build = {
	type = "builtin",
	modules = {
		["socketloop"] = "lua/socketloop.lua",
		["socketloop.coro"] = "lua/socketloop/coro.lua",
		["socketloop.sync"] = "lua/socketloop/sync.lua",
		["socketloop.http"] = "lua/socketloop/http.lua",
		["socketloop.core"] = {
			sources = c,
			incdirs = {"include", "net", "runtime", "lua"},
			libraries = {"pthread"},
		},
	},
}
