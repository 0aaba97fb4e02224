import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropTestDb, dumpStore, newTestDb } from '../support/stores';
import { entries, freshPkiDir, httpsCall, validateAnswer, type Response } from '../support/server';
import { listeningPort, spawnServe, type Spawned } from '../support/spawned';

/**
 * SPEC §9: no body may make the server use unbounded memory. A real `serve` process (default
 * limits: 32 MiB body, 100 000 operations) receives attack bodies at and over the limit; after
 * each, its resident memory (VmRSS) and its peak so far (VmHWM) are read from /proc and must stay
 * under RSS_BOUND, and the server must still answer.
 *
 * Why 1 GiB: one 32 MiB body is held at most three times at once (the received chunks, the
 * joined Buffer and the decoded string, one byte per character), the element tree is capped at
 * 2 000 000 nodes (MAX_NODES in src/xml/reader.ts, about 100 bytes each), and the answer to
 * 100 000 operations is some 20 MB of XML kept once more in the journal: a few hundred MB in
 * all, over a baseline of about 100 MB. 1 GiB leaves room for V8's heap growth and still
 * catches a parser that keeps a node per character or per element unbounded (the previous
 * parser needed 1.2 GB for one 30 MiB text node and 3.5 GB for 8 million `<a/>`).
 * This bounds memory, not time: there is no timing threshold here.
 */
const MiB = 1024 * 1024;
const BODY_LIMIT = 32 * MiB;
const RSS_BOUND = 1024 * MiB;

interface Memory {
  rss: number;
  hwm: number;
}

function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kB('VmRSS'), hwm: kB('VmHWM') };
}

const mib = (bytes: number): string => `${(bytes / MiB).toFixed(0)} MiB`;

/** `<flexibee-batch id="…">` + `unit` repeated to just under `size` bytes + `</flexibee-batch>`. */
function filled(id: string, open: string, unit: string, close: string, size: number): Buffer {
  const head = `<flexibee-batch id="${id}">${open}`;
  const tail = `${close}</flexibee-batch>`;
  const count = Math.floor((size - head.length - tail.length) / unit.length);
  const body = Buffer.alloc(head.length + count * unit.length + tail.length);
  const at = body.write(head);
  body.fill(unit, at, at + count * unit.length);
  body.write(tail, at + count * unit.length);
  return body;
}

/** 100 000 operations (the default limit), each a user with an unknown element padded so that the body is just under 32 MiB. */
function hundredThousandOperations(): Buffer {
  const n = 100_000;
  const skeleton = (i: number, pad: string): string => `<user><username>mem.u${i}</username><x>${pad}</x></user>`;
  const padLength = Math.floor((BODY_LIMIT - 1024) / n) - skeleton(n, '').length;
  const pad = 'p'.repeat(padLength);
  const parts = ['<flexibee-batch id="mem-100k">'];
  for (let i = 0; i < n; i++) parts.push(skeleton(i, pad));
  parts.push('</flexibee-batch>');
  return Buffer.from(parts.join(''));
}

describe('SPEC §9: memory stays bounded under attack bodies (a real serve process)', () => {
  let dir: string;
  let db = '';
  let certs: string;
  let server: Spawned;
  let port: number;
  let ca: string;
  let client: { cert: string; key: string };
  let before: ReturnType<typeof dumpStore>;
  const figures: Array<{ attack: string; bodyBytes: number; status: number; rss: string; peak: string }> = [];

  const call = (method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Response> =>
    httpsCall(port, ca, method, path, { body, headers }, client);

  /** Streams `total` bytes with Transfer-Encoding: chunked; resolves with the answer. */
  const chunked = (total: number): Promise<Response> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', servername: 'localhost', port, method: 'PUT', path: '/admin/batch', ca, ...client, agent: false, headers: { 'Transfer-Encoding': 'chunked' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      req.on('error', reject);
      const piece = Buffer.alloc(MiB, 'z');
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += piece.length;
          if (!req.write(piece)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      req.write('<flexibee-batch id="mem-chunked">');
      pump();
    });

  /** Sends one attack, checks the answer, reads the memory, and checks the server still answers. */
  async function attack(name: string, send: () => Promise<Response>, bodyBytes: number, expectAnswer: (res: Response) => void): Promise<void> {
    const res = await send();
    expectAnswer(res);
    const memory = memoryOf(server.pid);
    figures.push({ attack: name, bodyBytes, status: res.status, rss: mib(memory.rss), peak: mib(memory.hwm) });
    expect(memory.rss).toBeLessThan(RSS_BOUND);
    expect(memory.hwm).toBeLessThan(RSS_BOUND);
    const status = await call('GET', '/status.json');
    expect(status.status).toBe(200);
    expect(dumpStore(db)).toEqual(before);
  }

  const rejected = (status: number, message: RegExp) => (res: Response) => {
    expect(res.status).toBe(status);
    validateAnswer('PUT', '/admin/batch', res);
    expect(res.body).toMatch(message);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flexi-memory-'));
    certs = freshPkiDir();
    db = newTestDb(dir);
    server = spawnServe({ db, certs, env: { FLEXI_LOG_LEVEL: 'warn' } });
    port = await listeningPort(server);
    ca = readFileSync(join(certs, 'ca.pem'), 'utf8');
    client = { cert: readFileSync(join(certs, 'client.pem'), 'utf8'), key: readFileSync(join(certs, 'client-key.pem'), 'utf8') };
    const seed = await call('PUT', '/admin/batch', Buffer.from('<flexibee-batch id="mem-seed"><user><username>anna.mlada</username></user></flexibee-batch>'));
    expect(seed.status).toBe(200);
    before = dumpStore(db);
    const idle = memoryOf(server.pid);
    figures.push({ attack: 'idle after start and one batch', bodyBytes: 0, status: 200, rss: mib(idle.rss), peak: mib(idle.hwm) });
  }, 60_000);

  afterAll(async () => {
    console.log(`serve process memory (bound ${mib(RSS_BOUND)}):\n${figures.map((f) => `  ${f.attack}: body ${mib(f.bodyBytes)}, answer ${f.status}, VmRSS ${f.rss}, VmHWM ${f.peak}`).join('\n')}`);
    if (server) {
      server.child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const exited = await Promise.race([server.exited, new Promise((done) => (timer = setTimeout(() => done('timeout'), 10_000)))]);
      clearTimeout(timer);
      if (exited === 'timeout') server.killGroup();
    }
    if (db) dropTestDb(db);
    rmSync(dir, { recursive: true, force: true });
    rmSync(certs, { recursive: true, force: true });
  }, 30_000);

  test('when a body just under 32 MiB holds 8 million tiny elements, then the answer is 413 naming the node limit and memory stays bounded', async () => {
    const body = filled('mem-tiny', '<user><username>mem.tiny</username>', '<a/>', '</user>', BODY_LIMIT - 1024);
    await attack('8 million <a/> in one user', () => call('PUT', '/admin/batch', body), body.length, rejected(413, /more than 2000000 XML nodes/));
  }, 120_000);

  test('when a body just under 32 MiB holds 8 million tiny top-level elements, then the answer is 413 and memory stays bounded', async () => {
    const body = filled('mem-tiny-top', '', '<a/>', '', BODY_LIMIT - 1024);
    await attack('8 million <a/> operations', () => call('PUT', '/admin/batch', body), body.length, rejected(413, /more than 2000000 XML nodes/));
  }, 120_000);

  test('when a body just under 32 MiB holds 6 million entity references, then the answer is 413 and memory stays bounded', async () => {
    const body = filled('mem-refs', '<user><username>mem.refs</username><givenName>', '&amp;', '</givenName></user>', BODY_LIMIT - 1024);
    await attack('6.7 million &amp; in one field', () => call('PUT', '/admin/batch', body), body.length, rejected(413, /more than 2000000 XML nodes/));
  }, 120_000);

  test('when a body just under 32 MiB is one text node in a field, then that operation is FAILED naming the length limit and memory stays bounded', async () => {
    const body = filled('mem-text', '<user><username>anna.mlada</username><givenName>', 'x', '</givenName></user>', BODY_LIMIT - 1024);
    await attack('one 32 MiB text node', () => call('PUT', '/admin/batch', body), body.length, (res) => {
      expect(res.status).toBe(200);
      validateAnswer('PUT', '/admin/batch', res);
      expect(entries(res.body)).toEqual([{ type: 'USER', action: 'CREATE_UPDATE', id: 'anna.mlada', status: 'FAILED', message: '<givenName> is longer than 255 characters' }]);
    });
  }, 120_000);

  test('when a body just under 32 MiB holds 100 000 operations, then each is FAILED and memory stays bounded', async () => {
    const body = hundredThousandOperations();
    expect(body.length).toBeLessThan(BODY_LIMIT);
    await attack('100 000 operations with unknown elements', () => call('PUT', '/admin/batch', body), body.length, (res) => {
      expect(res.status).toBe(200);
      const all = entries(res.body);
      expect(all).toHaveLength(100_000);
      expect(all.every((e) => e.status === 'FAILED' && /unknown element <x> in <user>/.test(e.message ?? ''))).toBe(true);
      expect(res.body).toContain('<stats created="0" updated="0" deleted="0" skipped="0" failed="100000"/>');
    });
  }, 240_000);

  test('when a 33 MiB body is sent with Content-Length, then the answer is 413 and memory stays bounded', async () => {
    const body = filled('mem-33', '<user><username>mem.big</username></user><!--', 'x', '-->', 33 * MiB);
    await attack('33 MiB with Content-Length', () => call('PUT', '/admin/batch', body), body.length, rejected(413, new RegExp(`larger than the limit of ${BODY_LIMIT} bytes`)));
  }, 120_000);

  test('when a 33 MiB body is streamed in chunks, then the answer is 413 and memory stays bounded', async () => {
    await attack('33 MiB chunked', () => chunked(33 * MiB), 33 * MiB, rejected(413, new RegExp(`larger than the limit of ${BODY_LIMIT} bytes`)));
  }, 120_000);

  test('when the attacks are over, then the server still applies a batch', async () => {
    const res = await call('PUT', '/admin/batch', Buffer.from('<flexibee-batch id="mem-after"><user><username>anna.mlada</username></user></flexibee-batch>'));
    expect(res.status).toBe(200);
    expect(entries(res.body).map((e) => e.status)).toEqual(['SKIPPED']);
  });
});
