// spin.js: a Node event loop doing nothing but iterating, for pricing probes per
// loop iteration. Each setImmediate callback schedules the next, so every callback
// is exactly one uv_run iteration (the check phase runs one immediate, poll does a
// zero-timeout epoll_pwait, and round again).
//
//   node spin.js [--rate N] [--window-ms MS] [--max-s S]
//
// Without --rate it runs flat out; with --rate N each callback busy-waits until its
// slot (start + i/N s), so the loop does N iterations/s and stays on the CPU.
// Every --window-ms (default 200) it prints one line:
//   win ITERATIONS WALL_NS CPU_NS
// for the window just ended, so a caller can tell traced from untraced windows in
// one process. CPU_NS is the main (loop) thread's own CPU time from its schedstat
// (probe hits handled in its context count; time another process held the CPU does
// not; V8's helper threads are left out). The first line is "ready PID". Exits after --max-s (default 120) or on
// SIGTERM/SIGINT.
'use strict';

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? +process.argv[i + 1] : def;
}
const rate = arg('--rate', 0);
const windowNs = BigInt(Math.round(arg('--window-ms', 200) * 1e6));
const maxNs = BigInt(Math.round(arg('--max-s', 120) * 1e9));
const fs = require('fs');
const now = process.hrtime.bigint;
const schedstat = `/proc/self/task/${process.pid}/schedstat`;
const loopCpu = () => BigInt(fs.readFileSync(schedstat, 'utf8').split(' ')[0]);

const t0 = now();
let winStart = t0;
let winCpu = loopCpu();
let winIters = 0;
let total = 0;
const periodNs = rate > 0 ? 1e9 / rate : 0;

function flush(t) {
  const cpu = loopCpu();
  process.stdout.write(`win ${winIters} ${t - winStart} ${cpu - winCpu}\n`);
  winCpu = cpu;
  winStart = t;
  winIters = 0;
  if (t - t0 >= maxNs) process.exit(0);
}

function tight() {
  winIters++;
  // Reading the clock costs ~30 ns; every 1,024 iterations keeps it out of the figure.
  if ((winIters & 1023) === 0) {
    const t = now();
    if (t - winStart >= windowNs) flush(t);
  }
  setImmediate(tight);
}

function paced() {
  winIters++;
  total++;
  const due = Number(t0 - winStart) + total * periodNs; // relative to winStart
  let t;
  do { t = now(); } while (Number(t - winStart) < due);
  if (t - winStart >= windowNs) flush(t);
  setImmediate(paced);
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
process.stdout.write(`ready ${process.pid}\n`);
setImmediate(rate > 0 ? paced : tight);
