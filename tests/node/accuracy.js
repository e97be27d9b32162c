// accuracy.js: a stationary workload plus Node's own view of it, for comparing with
// loopscope from outside. Every 100 ms an interval blocks the loop for 0, 5, 10, 20,
// 40 ms in turn; every 50 ms one JSON line reports the cumulative
// performance.eventLoopUtilization() (ms) and the max of
// monitorEventLoopDelay({resolution: 1}) since the previous line (ns), stamped with
// process.hrtime (CLOCK_MONOTONIC ns, the clock loopscope uses). A block's start and
// end write a line too (without eld_max_ns), so that between two lines the loop is
// either blocked or idle throughout and a test interpolating the cumulative figures to
// a window's edges is exact to a few microseconds (lines 50 ms apart could put a block
// of up to 40 ms on the wrong side of an edge).
'use strict';
const { monitorEventLoopDelay, performance } = require('perf_hooks');
const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
const blocks = [0, 5, 10, 20, 40];
let k = 0;
function line(eld) {
  const e = performance.eventLoopUtilization();
  const o = { t: process.hrtime.bigint().toString(), idle: e.idle, active: e.active };
  if (eld) {
    o.eld_max_ns = h.max;
    h.reset();
  }
  process.stdout.write(JSON.stringify(o) + '\n');
}
setInterval(() => {
  const ms = blocks[k++ % blocks.length];
  line(false);
  const t = performance.now();
  while (performance.now() - t < ms);
  line(false);
}, 100);
setInterval(() => line(true), 50);
console.log(JSON.stringify({ ready: true }));
