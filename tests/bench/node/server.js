// server.js: the HTTP server every Node row of `make bench` loads (127.0.0.1 only).
//
//   PORT=N (0 = any free port; the chosen one is printed)   PROM=1: prom-client's
//   collectDefaultMetrics() in-process, with /metrics served, as users run it today.
//   EXIT_AFTER_S=N: exit by itself after N seconds (default 300), so a forgotten
//   server never outlives the bench. WORK=N: steps of the per-request JS loop (default 2000).
//
// Prints one line "listening PORT PID" when ready. Each request does a little JS work
// (a WORK-step loop, ~15 us in all per request here) so the loop has something to do
// besides the socket calls; a light handler is the worst case for per-iteration probes.
'use strict';
const http = require('http');
const WORK = +(process.env.WORK || 2000);

let register = null;
if (process.env.PROM === '1') {
  const prom = require('prom-client');
  prom.collectDefaultMetrics();
  register = prom.register;
}

const server = http.createServer((req, res) => {
  if (register && req.url === '/metrics') {
    register.metrics().then((text) => {
      res.writeHead(200, { 'content-type': register.contentType });
      res.end(text);
    });
    return;
  }
  let s = 0;
  for (let i = 0; i < WORK; i++) s += i;
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('hello ' + s + '\n');
});

server.listen(+(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port} ${process.pid}`);
});

const limit = setTimeout(() => process.exit(0), 1000 * +(process.env.EXIT_AFTER_S || 300));
limit.unref();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
