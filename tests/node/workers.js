// workers.js: the main thread blocks 5 ms and a worker_thread 30 ms every 100 ms, so
// the two loops have clearly different utilization. A first worker exits at once, so
// the busy one's threadId (2) is not the order of the threads still running. Prints
// "ready THREADID" once the busy worker runs.
'use strict';
const { Worker } = require('worker_threads');
new Worker('', { eval: true }).on('exit', () => {
  const w = new Worker(`
    const { parentPort, threadId } = require('worker_threads');
    setInterval(() => { const t = Date.now(); while (Date.now() - t < 30); }, 100);
    parentPort.postMessage(threadId);
  `, { eval: true });
  w.on('message', (id) => console.log('ready', id));
});
setInterval(() => { const t = Date.now(); while (Date.now() - t < 5); }, 100);
