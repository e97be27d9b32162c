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

// a closure's locals, more than a few of them: V8 keeps their names in the
// function's ScopeInfo, before the name and positions read from it
function tallyOrders(ms) { // BEGIN tallyOrders
  let v0 = 0; let v1 = 1; let v2 = 2; let v3 = 3; let v4 = 4; let v5 = 5; let v6 = 6; let v7 = 7;
  let v8 = 8; let v9 = 9; let v10 = 10; let v11 = 11;
  const peek = () =>
    v0 + v1 + v2 + v3 + v4 + v5 + v6 + v7 + v8 + v9 + v10 + v11;
  let s = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (let i = 0; i < 3000; i++) s = (s + i * 7) % 10007;
  }
  return s + peek();
} // END tallyOrders

// so many (75 or more) that V8 keeps their names in a hash table instead
function auditLedger(ms) { // BEGIN auditLedger
  let v0 = 0; let v1 = 1; let v2 = 2; let v3 = 3; let v4 = 4; let v5 = 5; let v6 = 6; let v7 = 7;
  let v8 = 8; let v9 = 9; let v10 = 10; let v11 = 11; let v12 = 12; let v13 = 13; let v14 = 14;
  let v15 = 15; let v16 = 16; let v17 = 17; let v18 = 18; let v19 = 19; let v20 = 20;
  let v21 = 21; let v22 = 22; let v23 = 23; let v24 = 24; let v25 = 25; let v26 = 26;
  let v27 = 27; let v28 = 28; let v29 = 29; let v30 = 30; let v31 = 31; let v32 = 32;
  let v33 = 33; let v34 = 34; let v35 = 35; let v36 = 36; let v37 = 37; let v38 = 38;
  let v39 = 39; let v40 = 40; let v41 = 41; let v42 = 42; let v43 = 43; let v44 = 44;
  let v45 = 45; let v46 = 46; let v47 = 47; let v48 = 48; let v49 = 49; let v50 = 50;
  let v51 = 51; let v52 = 52; let v53 = 53; let v54 = 54; let v55 = 55; let v56 = 56;
  let v57 = 57; let v58 = 58; let v59 = 59; let v60 = 60; let v61 = 61; let v62 = 62;
  let v63 = 63; let v64 = 64; let v65 = 65; let v66 = 66; let v67 = 67; let v68 = 68;
  let v69 = 69; let v70 = 70; let v71 = 71; let v72 = 72; let v73 = 73; let v74 = 74;
  let v75 = 75; let v76 = 76; let v77 = 77; let v78 = 78; let v79 = 79; let v80 = 80;
  let v81 = 81; let v82 = 82; let v83 = 83; let v84 = 84; let v85 = 85; let v86 = 86;
  let v87 = 87; let v88 = 88; let v89 = 89;
  const peek = () =>
    v0 + v1 + v2 + v3 + v4 + v5 + v6 + v7 + v8 + v9 + v10 + v11 + v12 + v13 + v14 + v15 + v16 + +
    v17 + v18 + v19 + v20 + v21 + v22 + v23 + v24 + v25 + v26 + v27 + v28 + v29 + v30 + v31 + +
    v32 + v33 + v34 + v35 + v36 + v37 + v38 + v39 + v40 + v41 + v42 + v43 + v44 + v45 + v46 + +
    v47 + v48 + v49 + v50 + v51 + v52 + v53 + v54 + v55 + v56 + v57 + v58 + v59 + v60 + v61 + +
    v62 + v63 + v64 + v65 + v66 + v67 + v68 + v69 + v70 + v71 + v72 + v73 + v74 + v75 + v76 + +
    v77 + v78 + v79 + v80 + v81 + v82 + v83 + v84 + v85 + v86 + v87 + v88 + v89;
  let s = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (let i = 0; i < 3000; i++) s = (s + i * 7) % 10007;
  }
  return s + peek();
} // END auditLedger

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
    ['tallyOrders', () => tallyOrders(BLOCK_MS)],
    ['auditLedger', () => auditLedger(BLOCK_MS)],
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
