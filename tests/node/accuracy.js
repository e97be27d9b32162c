// accuracy.js: a stationary workload plus Node's own view of it, for comparing with
// loopscope from outside. Every 100 ms an interval blocks the loop for 0, 5, 10, 20,
// 40 ms in turn; every 50 ms one JSON line reports the cumulative
// performance.eventLoopUtilization() (ms) and the max of
// monitorEventLoopDelay({resolution: 1}) since the previous line (ns), stamped with
// process.hrtime (CLOCK_MONOTONIC ns, the clock loopscope uses).
'use strict';
const { monitorEventLoopDelay, performance } = require('perf_hooks');
const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
const blocks = [0, 5, 10, 20, 40];
let k = 0;
setInterval(() => {
  const ms = blocks[k++ % blocks.length];
  const t = performance.now();
  while (performance.now() - t < ms);
}, 100);
setInterval(() => {
  const e = performance.eventLoopUtilization();
  process.stdout.write(JSON.stringify({
    t: process.hrtime.bigint().toString(), idle: e.idle, active: e.active, eld_max_ns: h.max,
  }) + '\n');
  h.reset();
}, 50);
console.log(JSON.stringify({ ready: true }));
