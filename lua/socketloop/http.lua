-- socketloop.http: socket.http's request over the loop's sockets.
--
-- loop.http.request(url [, body]) and loop.http.request{...} take and
-- return what LuaSocket's socket.http.request does (ltn12 sources and
-- sinks, step, proxy, headers, method, redirect, maxredirects), plus
-- `timeout` (seconds for each wait; default loop.http.TIMEOUT).  The
-- message exchange is LuaSocket's own (socket.http.open and the
-- connection object it returns); the hops are ours, so that every hop of a
-- redirect also runs on the loop: LuaSocket's redirect makes its new
-- request without `create` unless the caller's table names its scheme,
-- and then connects with a blocking socket.
--
-- Schemes: loop.http.schemes[name] = {port = n, create = function(reqt)
-- returning a constructor of an unconnected LuaSocket-like TCP object},
-- as socket.http's SCHEMES: 'http', and 'https' when the module has TLS
-- (its create wraps the connection in TLS; the request's `tls` table
-- holds LuaSec's parameters).  A request's own `create` is used for every
-- hop that keeps its scheme.
return function(loop)
	local M = {TIMEOUT = 60, USERAGENT = 'socketloop', MAXREDIRECTS = 5}

	-- The request's timeout stands: socket.http.open sets its module's
	-- TIMEOUT on whatever create returns, so create returns this view.
	local view = {}
	view.__index = view
	for _, m in ipairs{'connect', 'send', 'receive', 'close', 'getfd',
			'dirty', 'setoption', 'getpeername', 'getsockname', 'shutdown',
			'getstats', 'setstats'} do
		view[m] = function(v, ...)
			local s = v.sock
			local r, e, x = s[m](s, ...)
			if r == s then return v, e, x end -- connect returns the socket
			return r, e, x
		end
	end
	function view:settimeout() return 1 end

	M.schemes = {
		http = {port = 80, create = function() return loop.tcp end},
	}
	-- HTTPS where the module was built with TLS: each connection runs
	-- starttls with the request's `tls` table (LuaSec's parameters).
	-- Without one the server's chain and name are checked against the
	-- system's CAs (LuaSec's own ssl.https checks nothing unless asked).
	if loop.tls then
		M.schemes.https = {port = 443, create = function(r)
			return loop.tls_create(r.tls or
				{mode = 'client', protocol = 'any', verify = 'peer'})
		end}
	end

	local function with_timeout(make, timeout)
		return function()
			local sock, err = make()
			if not sock then return nil, err end
			sock:settimeout(timeout)
			return setmetatable({sock = sock}, view)
		end
	end

	-- One hop's request table: reqt's fields, the URL's parts, LuaSocket's
	-- default headers.
	local function adjust(reqt, u, url, mime)
		local p = url.parse(u)
		if not p or not p.host then error('invalid url: ' .. tostring(u), 0) end
		local r = {}
		for k, v in pairs(reqt) do r[k] = v end
		r.url, r.scheme, r.host, r.user, r.password =
			u, p.scheme or 'http', p.host, p.user, p.password
		local sd = M.schemes[r.scheme]
		if not sd then error('unknown scheme: ' .. r.scheme, 0) end
		r.port = tonumber(p.port) or sd.port
		r.uri = reqt.uri or url.build{path = p.path ~= '' and p.path or '/',
			params = p.params, query = p.query}
		if reqt.proxy then
			local px = url.parse(reqt.proxy)
			r.uri, r.host, r.port = u, px.host, tonumber(px.port) or 3128
		end
		local host = p.host
		if r.port ~= sd.port then host = host .. ':' .. r.port end
		local h = {['user-agent'] = M.USERAGENT, host = host,
			connection = 'close, TE', te = 'trailers'}
		if p.user and p.password then
			h.authorization = 'Basic ' ..
				mime.b64(url.unescape(p.user) .. ':' .. url.unescape(p.password))
		end
		for k, v in pairs(reqt.headers or {}) do h[string.lower(k)] = v end
		if reqt.source and not h['content-length'] and not h['transfer-encoding'] then
			h['transfer-encoding'] = 'chunked'
		end
		r.headers, r.method = h, reqt.method or 'GET'
		return r, sd
	end

	local function should_redirect(r, code, headers, url)
		local loc = headers.location
		if not loc or r.redirect == false or r.source then return false end
		local scheme = url.parse(loc).scheme
		if scheme and not M.schemes[scheme] then return false end
		if r.scheme == 'https' and scheme and scheme ~= 'https' then return false end
		return (code == 301 or code == 302 or code == 303 or code == 307 or
			code == 308) and (r.method == 'GET' or r.method == 'HEAD')
	end

	local function receives_body(r, code)
		return r.method ~= 'HEAD' and code ~= 204 and code ~= 304 and
			not (code >= 100 and code < 200)
	end

	-- One exchange; returns 1, code, headers, status, or the location of a
	-- redirect to follow as a fifth result.
	local function exchange(http, url, r, create)
		local h = http.open(r.host, r.port, create)
		h:sendrequestline(r.method, r.uri)
		h:sendheaders(r.headers)
		if r.source then h:sendbody(r.headers, r.source, r.step) end
		local code, status = h:receivestatusline()
		if not code then -- HTTP/0.9: the rest is the body
			h:receive09body(status, r.sink, r.step)
			return 1, 200
		end
		while code == 100 do
			h:receiveheaders()
			code, status = h:receivestatusline()
		end
		local headers = h:receiveheaders()
		if should_redirect(r, code, headers, url) then
			h:close()
			return 1, code, headers, status, headers.location
		end
		if receives_body(r, code) then
			h:receivebody(headers, r.sink, r.step)
		end
		h:close()
		return 1, code, headers, status
	end

	local function generic(reqt, http, url, mime)
		local u, hops, location = reqt.url, 0, nil
		local first = url.parse(u) or {}
		local max = reqt.maxredirects
		if max == nil then max = M.MAXREDIRECTS end
		while true do
			local r, sd = adjust(reqt, u, url, mime)
			local make = reqt.create
			if not make or r.scheme ~= (first.scheme or 'http') then
				make = sd.create(r)
			end
			local ok, code, headers, status, to = exchange(http, url, r,
				with_timeout(make, reqt.timeout or M.TIMEOUT))
			if not to or (max ~= false and hops >= max) then
				if headers and location then
					headers.location = headers.location or location
				end
				return ok, code, headers, status
			end
			hops, location = hops + 1, to
			u = url.absolute(u, (string.gsub(to, '%s', '')))
		end
	end

	-- request(url [, body]) -> body, code, headers, status;
	-- request(reqt) -> 1, code, headers, status; nil, err on failure.
	function M.request(reqt, body)
		local socket, http = require'socket', require'socket.http'
		local url, ltn12, mime = require'socket.url', require'ltn12', require'mime'
		local run = socket.protect(function()
			if type(reqt) ~= 'string' then return generic(reqt, http, url, mime) end
			local t = {}
			local r = {url = reqt, sink = ltn12.sink.table(t)}
			if body then
				r.source = ltn12.source.string(body)
				r.method = 'POST'
				r.headers = {['content-length'] = #body,
					['content-type'] = 'application/x-www-form-urlencoded'}
			end
			local _, code, headers, status = generic(r, http, url, mime)
			return table.concat(t), code, headers, status
		end)
		return run()
	end

	return M
end
