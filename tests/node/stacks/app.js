'use strict';
// tests/integration/38-node-stacks.py's target: each block below keeps the loop
// busy for BLOCK_MS in a different shape of JS function, in a fixed cycle. The
// test reads the functions' line ranges from the BEGIN/END markers.
const http = require('http');
const crypto = require('crypto');
const zlib = require('zlib');
const fs = require('fs');
const path = require('path');

const BLOCK_MS = Number(process.env.BLOCK_MS || 160);
const GAP_MS = Number(process.env.GAP_MS || 450);
const NATIVE = process.env.NATIVE === '1';

function spinFor(ms) { // BEGIN spinFor
  let x = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (let i = 0; i < 2000; i++) x += Math.sqrt(i + x);
  }
  return x;
} // END spinFor

function handleReport(req, res) { // BEGIN handleReport
  let acc = 0;
  const end = Date.now() + BLOCK_MS;
  while (Date.now() < end) {
    for (let i = 0; i < 3000; i++) acc = (acc * 31 + i) % 1000003;
  }
  res.end(String(acc));
} // END handleReport

class Ledger { // BEGIN Ledger
  reconcile(ms) { // BEGIN reconcile
    let s = 0;
    const end = Date.now() + ms;
    while (Date.now() < end) {
      for (let i = 0; i < 3000; i++) s ^= (i * 2654435761) >>> 0;
    }
    return s;
  } // END reconcile
} // END Ledger

function makeHasher(seed) { // BEGIN makeHasher
  return function hashRows(ms) { // BEGIN hashRows
    let h = seed;
    const end = Date.now() + ms;
    while (Date.now() < end) {
      for (let i = 0; i < 3000; i++) h = (h * 33 + i) | 0;
    }
    return h;
  }; // END hashRows
} // END makeHasher

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function auditAfterWait(ms) { // BEGIN auditAfterWait
  await sleep(1);
  let t = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (let i = 0; i < 3000; i++) t += i & 7;
  }
  return t;
} // END auditAfterWait

function hotPath(ms) { // BEGIN hotPath
  let v = 0;
  const end = Date.now() + ms;
  do {
    for (let i = 0; i < 4000; i++) v = (v + i * i) % 65521;
  } while (Date.now() < end);
  return v;
} // END hotPath

// a small function TurboFan inlines into its hot caller: the samples run in
// settleBatch's optimised code, and the frames it inlined must still be named
function crunchRow(n) { // BEGIN crunchRow
  let x = 0;
  for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003;
  return x;
} // END crunchRow

function settleBatch(ms, n) { // BEGIN settleBatch
  const end = Date.now() + ms;
  let t = 0;
  do t += crunchRow(n); while (Date.now() < end);
  return t;
} // END settleBatch

// native work, each repeated for BLOCK_MS (one call takes 15-80 ms here, under the
// stall threshold on a fast machine); one line each: the test reads their lines
const natives = {
  pbkdf2: () => { const end = Date.now() + BLOCK_MS; do crypto.pbkdf2Sync('secret', 'salt', 20000, 64, 'sha512'); while (Date.now() < end); },
  json: () => { const end = Date.now() + BLOCK_MS; do JSON.stringify(bigObject); while (Date.now() < end); },
  regex: () => { const end = Date.now() + BLOCK_MS; do /^(a+)+$/.test('a'.repeat(21) + 'b'); while (Date.now() < end); },
  gzip: () => { const end = Date.now() + BLOCK_MS; do zlib.gzipSync(bigBuffer); while (Date.now() < end); },
  readFile: () => { const end = Date.now() + BLOCK_MS; do fs.readFileSync(bigFile); while (Date.now() < end); },
};
let bigObject, bigBuffer, bigFile;
if (NATIVE) {
  bigObject = Array.from({ length: 60000 }, (_, i) => ({ id: i, name: 'item' + i, tags: ['a', 'b', 'c'], v: i / 3 }));
  bigBuffer = crypto.randomBytes(3 << 20);
  bigFile = path.join(require('os').tmpdir(), `ls-stacks-${process.pid}.bin`);
  fs.writeFileSync(bigFile, crypto.randomBytes(8 << 20));
  process.on('exit', () => { try { fs.unlinkSync(bigFile); } catch (e) {} });
}

const ledger = new Ledger();
const hashRows = makeHasher(7);
const server = http.createServer(handleReport);

async function main() {
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  // warm hotPath up so TurboFan optimises it before it blocks
  for (let i = 0; i < 3000; i++) hotPath(0);
  // and settleBatch, with crunchRow inlined into it
  for (let i = 0; i < 5000; i++) settleBatch(0, 50);
  const jsCycle = [
    ['handleReport', () => http.get({ host: '127.0.0.1', port, path: '/' }, (r) => r.resume())],
    ['reconcile', () => ledger.reconcile(BLOCK_MS)],
    ['hashRows', () => hashRows(BLOCK_MS)],
    ['auditAfterWait', () => { auditAfterWait(BLOCK_MS); }],
    ['hotPath', () => hotPath(BLOCK_MS)],
    ['esmCrunch', () => esm.esmCrunch(BLOCK_MS)],
    ['settleBatch', () => settleBatch(BLOCK_MS, 20000)],
  ];
  const esm = await import('./esm.mjs');
  const cycle = NATIVE ? Object.entries(natives) : jsCycle;
  let k = 0;
  // a block every BLOCK_MS + GAP_MS, and never less than GAP_MS after the previous one
  // ended (a native block takes what it takes, more on a loaded machine): the loop
  // polls between two blocks, which stay two episodes
  const next = () => { // BEGIN next
    const [name, fn] = cycle[k++ % cycle.length];
    // t: CLOCK_MONOTONIC, the clock of stat's episode start_s
    process.stdout.write(JSON.stringify({ block: name, t: Number(process.hrtime.bigint()) / 1e9 }) + '\n');
    const t = Date.now();
    fn();
    setTimeout(next, Math.max(BLOCK_MS + GAP_MS - (Date.now() - t), GAP_MS));
  }; // END next
  setTimeout(next, BLOCK_MS + GAP_MS);
  setInterval(() => spinFor(0), 50);
  process.stdout.write(JSON.stringify({ ready: true, port }) + '\n');
}
main();
