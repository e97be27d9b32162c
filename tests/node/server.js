// server.js [PORT]: a plain HTTP server on 127.0.0.1 doing a little JS work per
// request, with a 1 s background interval. Prints "listening PORT" when ready.
'use strict';
const http = require('http');
const port = +process.argv[2] || 0;
const srv = http.createServer((req, res) => {
  let s = 0;
  for (let i = 0; i < 2000; i++) s += i;
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('ok ' + s + '\n');
});
srv.listen(port, '127.0.0.1', () => console.log('listening', srv.address().port));
setInterval(() => {}, 1000);
