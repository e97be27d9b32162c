// An ES module's function that blocks (tests/node/stacks/app.js imports it).
export function esmCrunch(ms) { // BEGIN esmCrunch
  let c = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (let i = 0; i < 3000; i++) c = (c + (i % 13)) | 0;
  }
  return c;
} // END esmCrunch
