// profile.js: a server-like loop for `loopscope profile` tests. Every 20 ms a timer
// calls handle(), which alternates between settle() (crypto.pbkdf2Sync) and
// Report#build() (a large JSON.stringify). Prints "ready" once the timer runs.
'use strict';
const crypto = require('crypto');

function settle(i) {
  return crypto.pbkdf2Sync('pw' + i, 'salt', 100000, 32, 'sha256');
}

class Report {
  build(n) {
    return JSON.stringify(Array.from({ length: n }, (_, i) => ({ i, s: 'x'.repeat(20) })));
  }
}

function handle(i) {
  return i % 2 ? settle(i) : new Report().build(50000).length;
}

let i = 0;
setInterval(function tick() { handle(i++); }, 20);
setTimeout(() => console.log('ready'), 100);
