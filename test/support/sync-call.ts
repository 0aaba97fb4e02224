import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { join } from 'node:path';

/**
 * Calls an async function of a worker module synchronously: the test stays a plain call (the
 * store dumps and schema checks are used in hundreds of places, often inside loops), while the
 * work runs in a worker thread with an event loop of its own — a PostgreSQL connection kept
 * open across calls, or libxml2 compiled to WebAssembly. The caller blocks on Atomics.wait until
 * the worker has posted the answer.
 *
 * The worker modules are plain CommonJS in test/support/workers/ (a worker thread loads them
 * with Node itself, outside jest's transform); each exports async functions by name.
 */
interface Bridge {
  worker: Worker;
  port: MessagePort;
}

const bridges = new Map<string, Bridge>();

function bridgeOf(module: string): Bridge {
  let bridge = bridges.get(module);
  if (!bridge) {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(join(__dirname, 'workers', 'host.js'), {
      workerData: { module: join(__dirname, 'workers', module), port: port2 },
      transferList: [port2],
    });
    // The worker must not keep a test process alive, nor die silently with a caller waiting.
    worker.unref();
    port1.unref();
    bridge = { worker, port: port1 };
    bridges.set(module, bridge);
  }
  return bridge;
}

/** Runs `fn(...args)` of test/support/workers/`module` and answers its result; its error is thrown here with the same message. */
export function callSync<T>(module: string, fn: string, ...args: unknown[]): T {
  const { worker, port } = bridgeOf(module);
  const signal = new Int32Array(new SharedArrayBuffer(4));
  worker.postMessage({ fn, args, signal });
  // A worker that died never signals; the timeout turns that into an error instead of a hang.
  if (Atomics.wait(signal, 0, 0, 120_000) === 'timed-out') throw new Error(`${module}: ${fn} did not answer within 120 s`);
  const received = receiveMessageOnPort(port);
  if (!received) throw new Error(`${module}: ${fn} signalled but posted no answer`);
  const answer = received.message as { ok: true; value: T } | { ok: false; message: string; code?: string };
  if (answer.ok) return answer.value;
  const error = new Error(answer.message) as NodeJS.ErrnoException;
  if (answer.code) error.code = answer.code;
  throw error;
}

/**
 * Ends every worker this test file started, with the connections they keep. Jest gives each test
 * file a module registry of its own but runs many files in one process: without this, every file
 * left a worker behind holding its PostgreSQL connections, and a full run reached the server's
 * max_connections (53300, "too many clients") by the end. Run after each file (jest.config.js).
 */
export async function closeBridges(): Promise<void> {
  const open = [...bridges.values()];
  bridges.clear();
  for (const { port } of open) port.close();
  await Promise.all(open.map(({ worker }) => worker.terminate()));
}
