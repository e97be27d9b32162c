// idle.js: a loop with nothing to do for a minute: one 60 s interval, so the main
// thread sits in epoll_wait. Prints "ready" from its first timer (the loop runs and
// keeps idle time by then); exits by itself after 60 s.
'use strict';
setTimeout(() => console.log('ready'), 0);
const t = setInterval(() => {}, 60000);
setTimeout(() => clearInterval(t), 60500);
