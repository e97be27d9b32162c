// block.js MODE [MS] [DELAY_MS] [GAP_MS]: after DELAY_MS (default 1500, time to attach;
// 0 = on SIGUSR2, so a test can start it once the agent is attached), keep the event
// loop from polling for MS milliseconds (default 600) in one of three ways, then idle
// with a 50 ms interval until killed:
//   tick  - recursive process.nextTick (the nextTick queue never empties)
//   micro - recursive promise reactions (V8's microtask queue never empties)
//   sync  - one long synchronous callback (a busy loop)
//   seq   - tick, micro and sync in turn, each GAP_MS (default 300) after the previous
//           one ended (the 2nd and 3rd from a timer; the gap lets the loop poll between
//           them: node, run at nice -20, is back on a CPU in far less)
// Prints "blocked MODE N" when done (N = callbacks run), "blocked seq" after all three.
'use strict';
const mode = process.argv[2];
const ms = +process.argv[3] || 600;
const delay = process.argv[4] === undefined ? 1500 : +process.argv[4];
const gap = process.argv[5] === undefined ? 300 : +process.argv[5];
if (!['tick', 'micro', 'sync', 'seq'].includes(mode)) {
  console.error('usage: block.js tick|micro|sync|seq [MS] [DELAY_MS] [GAP_MS]');
  process.exit(2);
}
setInterval(() => {}, 50);
function block(how = mode, then) {
  if (how === 'seq') {
    block('tick', () => setTimeout(() => block('micro', () => setTimeout(() => {
      block('sync');
      console.log('blocked seq');
    }, gap)), gap));
    return;
  }
  const t0 = Date.now();
  let n = 0;
  const done = () => { console.log('blocked', how, n); if (then) then(); };
  if (how === 'tick') {
    (function again() { n++; if (Date.now() - t0 < ms) process.nextTick(again); else done(); })();
  } else if (how === 'micro') {
    (function again() { n++; if (Date.now() - t0 < ms) Promise.resolve().then(again); else done(); })();
  } else {
    while (Date.now() - t0 < ms) n++;
    done();
  }
}
if (delay > 0) setTimeout(block, delay);
else process.once('SIGUSR2', () => block());
console.log('ready');
