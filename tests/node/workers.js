// workers.js: the main thread blocks 5 ms and a worker_thread 30 ms every 100 ms, so
// the two loops have clearly different utilization. Prints "ready" once the worker runs.
'use strict';
const { Worker } = require('worker_threads');
const w = new Worker(`
  const { parentPort } = require('worker_threads');
  setInterval(() => { const t = Date.now(); while (Date.now() - t < 30); }, 100);
  parentPort.postMessage('up');
`, { eval: true });
w.on('message', () => console.log('ready'));
setInterval(() => { const t = Date.now(); while (Date.now() - t < 5); }, 100);
