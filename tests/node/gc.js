// gc.js [MS] [DELAY_MS]: after DELAY_MS (default 1500, time to attach; 0 = on SIGUSR2,
// so a test can start it once the agent is attached) allocate for
// MS ms (default 2000) in 5 ms slices from a timer: short-lived garbage plus a
// rotating retained set, so both scavenges and mark-compacts happen. Then prints
// "gc_done" and exits 300 ms later. Run with --trace-gc to get V8's own pauses.
'use strict';
const ms = +process.argv[2] || 2000;
const delay = +process.argv[3] || 1500;
const keep = new Array(64).fill(null);
let k = 0;
function run() {
  console.log('gc_start');
  const t0 = Date.now();
  const iv = setInterval(() => {
    const t = Date.now();
    while (Date.now() - t < 5) {
      const a = [];
      for (let i = 0; i < 1000; i++) a.push({ i, s: 'x' + i });
      keep[k++ % keep.length] = a;
    }
    if (Date.now() - t0 >= ms) {
      clearInterval(iv);
      console.log('gc_done');
      setTimeout(() => process.exit(0), 300);
    }
  }, 1);
}
if (process.argv[3] === '0') {
  setInterval(() => {}, 1000);   // keep the loop alive until the signal
  process.on('SIGUSR2', run);
  console.log('ready');
} else {
  setTimeout(run, delay);
}
