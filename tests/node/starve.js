// starve.js MODE ORIGIN [SECONDS] [usr2] [PERIOD_MS]: a busy but healthy program that,
// every PERIOD_MS (default 1300), keeps the event loop from polling for 250 ms by
// starving it:
//   tick  - a recursive process.nextTick
//   micro - a recursive promise chain (V8's microtask queue never empties)
//   mix   - tick and micro bursts in turn
//   none  - no burst (the healthy baseline)
// ORIGIN says where each burst starts: timer (a setInterval callback), io (a socket's
// data callback), immediate (a setImmediate callback), or mix: each in turn, changing
// every second burst (with MODE mix, six bursts cover every pair). All the while other timers fire
// (1, 7 and 20 ms intervals, a setTimeout chain) and a loopback TCP client and echo
// server exchange a message every 5 ms. Prints "ready" once the sockets talk, then one
// JSON line per burst: {"burst": MODE, "t0": ns, "t1": ns} (process.hrtime, the
// CLOCK_MONOTONIC loopscope stamps episodes with). Exits after SECONDS (default 60).
// With usr2 the bursts begin on SIGUSR2 (a test sends it once its agent is attached).
'use strict';
const net = require('net');
const [mode, origin] = process.argv.slice(2, 4);
const secs = +process.argv[4] || 60;
const onSignal = process.argv[5] === 'usr2';
const period = +process.argv[6] || 1300;
const ORIGINS = ['timer', 'io', 'immediate'];
if (!['tick', 'micro', 'mix', 'none'].includes(mode) || ![...ORIGINS, 'mix'].includes(origin)) {
  console.error('usage: starve.js tick|micro|mix|none timer|io|immediate|mix [SECONDS] [usr2] [PERIOD_MS]');
  process.exit(2);
}
const BURST_MS = 250;
const now = () => process.hrtime.bigint();

let nburst = 0;
function burst(kind, from) {
  const t0 = now();
  const end = t0 + BigInt(BURST_MS) * 1000000n;
  const done = () => console.log(JSON.stringify({ burst: kind, origin: from, t0: String(t0), t1: String(now()) }));
  let n = 0;
  if (kind === 'tick') {
    (function again() { n++; if (now() < end) process.nextTick(again); else done(); })();
  } else {
    (function again() { n++; if (now() < end) Promise.resolve(n).then(again); else done(); })();
  }
}

// the background: timers of several durations, some due together with the burst's
let sink = 0;
const work = (k) => { for (let i = 0; i < k; i++) sink += i; };
setInterval(() => work(200), 1);
setInterval(() => work(2000), 7);
setInterval(() => work(5000), 20);
(function chain() { work(500); setTimeout(chain, 3); })();

// loopback socket I/O: an echo server and a client writing every 5 ms
let pending = null;	// the burst the next data callback starts
const srv = net.createServer((s) => s.on('data', (d) => s.write(d)));
srv.listen(0, '127.0.0.1', () => {
  const c = net.connect(srv.address().port, '127.0.0.1');
  let told = false;
  c.on('data', (d) => {
    if (!told) { told = true; console.log('ready'); }
    if (pending) { const b = pending; pending = null; burst(b.kind, 'io'); }
  });
  setInterval(() => c.write('ping ' + sink + '\n'), 5);
  const start = () => setInterval(() => {
    const k = nburst++;
    if (mode === 'none') return;
    const kind = mode === 'mix' ? ['tick', 'micro'][k % 2] : mode;
    const from = origin === 'mix' ? ORIGINS[Math.floor(k / 2) % 3] : origin;
    if (from === 'timer') burst(kind, from);
    else if (from === 'io') pending = { kind };
    else setImmediate(() => burst(kind, from));
  }, period);
  if (onSignal) process.once('SIGUSR2', start);
  else start();
  setTimeout(() => process.exit(0), secs * 1000);
});
