// accuracy.js: a Node loop with a known lag pattern that measures itself with perf_hooks,
// for comparing loopscope's numbers with Node's own in the same process and window.
//
//   node accuracy.js [--http] [--max-s S]
//
// Default workload: every 100 ms a timer blocks the loop for 0, 5, 10, 20, 40 ms in turn
// (a 500 ms cycle); nothing else runs, so the loop idles in epoll between the blocks.
// --http: instead, an HTTP server on 127.0.0.1 (any free port, printed as
// "listening PORT") whose requests each do ~50 us of JS; the caller drives the load. Each SIGUSR2 closes the window opened by the previous one and prints
//   {"window_s", "elu", "eld": {"count","min_s","mean_s","p50_s","p99_s","max_s"}, "resolution_s"}
// (the first SIGUSR2 only opens a window). ELU is performance.eventLoopUtilization()
// over the window; eld is perf_hooks.monitorEventLoopDelay({resolution: 1}), reset at
// each window start. Prints "ready PID" first; exits after --max-s (default 120).
'use strict';
const { performance, monitorEventLoopDelay } = require('perf_hooks');

const i = process.argv.indexOf('--max-s');
const maxS = i >= 0 ? +process.argv[i + 1] : 120;
const RES_MS = 1;
const blocks = [0, 5, 10, 20, 40];

if (process.argv.includes('--http')) {
  const server = require('http').createServer((req, res) => {
    const end = performance.now() + 0.05;
    while (performance.now() < end);
    res.end('ok\n');
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
} else {
  let k = 0;
  setInterval(() => {
    const ms = blocks[k++ % blocks.length];
    const end = performance.now() + ms;
    while (performance.now() < end);
  }, 100);
}

const h = monitorEventLoopDelay({ resolution: RES_MS });
h.enable();
let elu0 = null;
let t0 = 0n;

process.on('SIGUSR2', () => {
  const t = process.hrtime.bigint();
  if (elu0 !== null) {
    const elu = performance.eventLoopUtilization(elu0);
    const s = (ns) => ns / 1e9;
    process.stdout.write(JSON.stringify({
      window_s: Number(t - t0) / 1e9,
      elu: elu.utilization,
      eld: { count: h.count, min_s: s(h.min), mean_s: s(h.mean), p50_s: s(h.percentile(50)),
             p99_s: s(h.percentile(99)), max_s: s(h.max) },
      resolution_s: RES_MS / 1e3,
    }) + '\n');
  }
  h.reset();
  elu0 = performance.eventLoopUtilization();
  t0 = t;
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
setTimeout(() => process.exit(0), maxS * 1000).unref();
process.stdout.write(`ready ${process.pid}\n`);
