// spin.js [N] [DELAY_MS]: after DELAY_MS (default 1500, time to attach) run N loop
// iterations back to back (each setImmediate callback schedules the next one, so
// every callback is one uv_run iteration) and print "us_per_iteration X". Prints
// "spinning" when the iterations begin.
'use strict';
const n = +process.argv[2] || 200000;
const delay = +process.argv[3] || 1500;
let i = 0, t0;
function step() {
  if (++i < n) return setImmediate(step);
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  console.log('us_per_iteration', us.toFixed(3));
}
setTimeout(() => { t0 = process.hrtime.bigint(); console.log('spinning'); step(); }, delay);
