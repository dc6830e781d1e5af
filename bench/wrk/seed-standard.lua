-- The standard-HTTP equivalent of seed.lua's request (same headers, Host without the path, CRLF
-- throughout), for the servers that do not speak the seed dialect (node:http, the ceiling).
local req = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/html\r\nConnection: keep-alive\r\n" ..
  "Content-Length: 0\r\n\r\n"

function request()
  return req
end
