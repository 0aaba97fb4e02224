'use strict';
// The worker side of test/support/sync-call.ts: runs the named async function of the module
// and posts { ok, value } or { ok: false, message, code } before waking the caller.
const { parentPort, workerData } = require('node:worker_threads');

const mod = require(workerData.module);
const port = workerData.port;

parentPort.on('message', async ({ fn, args, signal }) => {
  let answer;
  try {
    if (typeof mod[fn] !== 'function') throw new Error(`no function ${fn} in ${workerData.module}`);
    answer = { ok: true, value: await mod[fn](...args) };
  } catch (err) {
    answer = { ok: false, message: err && err.message ? err.message : String(err), code: err && err.code ? String(err.code) : undefined };
  }
  port.postMessage(answer);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
});
