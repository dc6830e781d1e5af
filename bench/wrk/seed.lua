-- A GET in the seed dialect, byte for byte what the seed's client sends: target `/`, the path in the
-- Host header (`127.0.0.1/`), the header block ended by `\r\n\n`. Used against tcpkv only.
local req = "GET / HTTP/1.1\r\nHost: 127.0.0.1/\r\nContent-Type: text/html\r\nConnection: keep-alive\r\n" ..
  "Content-Length: 0\r\n\n"

function request()
  return req
end
