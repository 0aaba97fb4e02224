import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import pg from 'pg';
import { isPostgresUrl } from '../../../src/store/open-store';
import { freshPkiDir, validateAnswer } from '../../support/server';
import { dropTestDb, journalRows, newTestDb, queryRows } from '../../support/stores';
import { listeningPort, logLines, sendBatch, spawnServe, type Answer, type Spawned } from '../../support/spawned';

/** Shared pieces of the PostgreSQL-only integration tests (several processes, the database going away). */

export const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

export type Reply = Exclude<Answer, { error: Error }>;

/** A fresh database on the suite's PostgreSQL: what these tests show has no SQLite counterpart. */
export function postgresTestDb(): string {
  const db = newTestDb('');
  if (!isPostgresUrl(db)) throw new Error('test/integration/postgres runs in the jest project "postgres" only (--selectProjects postgres)');
  return db;
}

/**
 * A describe block's dev PKI and fresh database, made before its tests; afterwards the servers
 * it started (pushed to `servers`) are stopped and both are removed.
 */
export function sharedDatabase(): { readonly pki: string; readonly db: string; readonly servers: Spawned[] } {
  const suite = { pki: '', db: '', servers: [] as Spawned[] };
  beforeAll(() => {
    suite.pki = freshPkiDir();
    suite.db = postgresTestDb();
  });
  afterAll(async () => {
    await Promise.all(suite.servers.splice(0).map((s) => stopServer(s)));
    dropTestDb(suite.db);
    rmSync(suite.pki, { recursive: true, force: true });
  });
  return suite;
}

/** The answer of a request, or a failure that says the server did not answer in time (a hang) or cut the connection. */
export async function answered(answer: Promise<Answer>, what: string, timeoutMs = 60_000): Promise<Reply> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms (the server hangs)`)), timeoutMs);
  });
  try {
    const res = await Promise.race([answer, deadline]);
    if ('error' in res) throw new Error(`${what}: the connection failed without an answer: ${res.error.message}`);
    return res;
  } finally {
    clearTimeout(timer);
  }
}

/** PUT /admin/batch with the dev client, awaited; the answer is checked against the schemas (results and error envelopes). */
export async function putBatch(port: number, certs: string, body: string, what = 'PUT /admin/batch'): Promise<Reply> {
  const res = await answered(sendBatch(port, certs, body).answer, what);
  validateAnswer('PUT', '/admin/batch', res);
  return res;
}

/** A GET with the dev client (also for /status.json, which needs none). */
export function getPath(port: number, certs: string, path: string): Promise<Reply> {
  const answer = new Promise<Answer>((done) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port,
        method: 'GET',
        path,
        agent: false,
        ca: readFileSync(join(certs, 'ca.pem')),
        cert: readFileSync(join(certs, 'client.pem')),
        key: readFileSync(join(certs, 'client-key.pem')),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (error) => done({ error }));
      },
    );
    req.on('error', (error) => done({ error }));
    req.end();
  });
  return answered(answer, `GET ${path}`);
}

/** The Flexi error envelope (SPEC §3) of a non-200 XML answer, its message. */
export function envelopeMessage(res: Reply): string {
  expect(String(res.headers['content-type'])).toContain('application/xml');
  const m = /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<winstrom version="1\.0"><success>false<\/success><message>([^<]+)<\/message><\/winstrom>\n$/.exec(res.body);
  if (!m) throw new Error(`not the Flexi error envelope (${res.status}):\n${res.body}`);
  return m[1];
}

/** Polls `condition` until it holds; fails with `what` (and `detail()`) after `timeoutMs`. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000, detail: () => string = () => ''): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}${detail() ? `\n${detail()}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Lock counts of the test database, from pg_locks: what a batch transaction is doing right now. */
export function lockState(db: string): { advisoryGranted: number; advisoryWaiting: number; journalWaiting: number } {
  const [row] = queryRows(
    db,
    `SELECT
       (SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.database = d.oid) AS advisory_granted,
       (SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND NOT l.granted AND l.database = d.oid) AS advisory_waiting,
       (SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
         WHERE l.database = d.oid AND c.relname = 'batch_journal' AND NOT l.granted) AS journal_waiting
     FROM pg_database d WHERE d.datname = current_database()`,
  );
  return { advisoryGranted: Number(row.advisory_granted), advisoryWaiting: Number(row.advisory_waiting), journalWaiting: Number(row.journal_waiting) };
}

/**
 * Holds `LOCK TABLE batch_journal IN EXCLUSIVE MODE` in an open transaction of its own: reads of
 * the journal go on, but a batch blocks at its journal insert — after all its other writes, in
 * its transaction, holding its claim and the batch lock — until `release()`. That makes "a batch
 * is certainly running right now" a state the test waits for, not a moment it guesses.
 */
export async function holdJournal(db: string): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: db });
  // The test may stop PostgreSQL under this connection; its error must not end the test process.
  client.on('error', () => undefined);
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE batch_journal IN EXCLUSIVE MODE');
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      try {
        await client.query('COMMIT');
      } catch {
        // The connection is gone (PostgreSQL was stopped); the lock went with it.
      }
      await client.end().catch(() => undefined);
    },
  };
}

/** A `serve` process on `db` with the dev PKI in `certs`, and its port. */
export async function serve(db: string, certs: string, servers: Spawned[], env: Record<string, string> = {}): Promise<{ server: Spawned; port: number }> {
  const server = spawnServe({ db, certs, env: { FLEXI_LOG_LEVEL: 'info', FLEXI_DB_POOL: '4', ...env } });
  servers.push(server);
  return { server, port: await listeningPort(server, 30_000) };
}

/** SIGTERM and the exit; SIGKILL to the group when it does not exit within the shutdown time. */
export async function stopServer(server: Spawned, timeoutMs = 40_000): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'killed'> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return server.exited;
  server.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'killed'>((resolve) => (timer = setTimeout(() => resolve('killed'), timeoutMs)));
  const result = await Promise.race([server.exited, late]);
  clearTimeout(timer);
  if (result === 'killed') server.killGroup();
  return result;
}

/** The log lines of a server that answered a 5xx other than 503, and its error lines ("unexpected error": a 500). */
export function serverFaults(server: Spawned): Array<Record<string, unknown>> {
  return logLines(server).filter((l) => (typeof l.status === 'number' && l.status >= 500 && l.status !== 503) || l.level === 'error');
}

export interface Execution {
  batchId: string;
  sha: string;
  body: string;
  resultXml: string;
}

/** Every journalled execution in commit order, with its body; every journalled body must be one the test sent. */
export function executions(db: string, bodies: ReadonlyMap<string, string>): Execution[] {
  return journalRows(db).map((j) => {
    const body = bodies.get(j.body_sha256);
    if (body === undefined) throw new Error(`the journal holds a body the test never sent: ${j.batch_id} ${j.body_sha256}`);
    return { batchId: j.batch_id, sha: j.body_sha256, body, resultXml: j.result_xml };
  });
}

/**
 * Replays `order` one batch at a time through `port` (a server on a fresh database): the
 * executions whose serial answer differs from the answer journalled by the concurrent run.
 */
export async function replay(order: readonly Execution[], port: number, certs: string): Promise<string[]> {
  const differences: string[] = [];
  for (const [i, { sha, body, resultXml }] of order.entries()) {
    const res = await putBatch(port, certs, body, `replay #${i}`);
    if (res.status !== 200 || res.body !== resultXml) {
      differences.push(`#${i} (${sha.slice(0, 12)}): journalled answer\n${resultXml}\nserial answer (${res.status})\n${res.body}`);
    }
  }
  return differences;
}
