import { rmSync } from 'node:fs';
import { entries, freshPkiDir } from '../../support/server';
import { logLines, sendBatch, type Spawned } from '../../support/spawned';
import { clientBatch, comparableDump, isGenerated, plainPasswordsOf } from '../../support/contested';
import { dropTestDb, dumpStore, queryRows } from '../../support/stores';
import {
  answered,
  envelopeMessage,
  executions,
  getPath,
  holdJournal,
  postgresTestDb,
  lockState,
  putBatch,
  replay,
  serve,
  serverFaults,
  sha256,
  stopServer,
  waitUntil,
  type Reply,
} from './helpers';

/**
 * SPEC §5.4 and §8 with two stateless `serve` processes on one PostgreSQL database, as behind a
 * load balancer: batches sent to either process give the result of one serial order (the
 * journal's), and the same batch sent to both at once runs once (the other gets 409), while a
 * different batch with the same id waits its turn. Both processes use one certificate folder
 * and register its dev client — the same fingerprint — once between them.
 */
const CLIENTS = 8;
const BATCHES_PER_CLIENT = 20;

/** Seeds of this suite's batches, apart from concurrency.test.ts's. */
const SEEDS = { generated: 7000, rng: 17 };
const PLAIN_PASSWORDS = plainPasswordsOf(CLIENTS);

const pad = (n: number): string => String(n).padStart(5, '0');

/**
 * A large batch of users (pre-hashed passwords: no hashing time), companies each with its admin,
 * and two more grants per company — and, last, the company `same_c` named `sharedName`.
 */
function largeBatch(id: string, prefix: string, users: number, sharedName: string): string {
  const companies = users / 2;
  const grants = users;
  const user = (i: number): string => `${prefix}.u${pad(i)}`;
  const company = (i: number): string => `${prefix}_c${pad(i)}`;
  const parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', `<flexibee-batch id="${id}">\n`];
  for (let i = 0; i < users; i++) {
    parts.push(
      `  <user><username>${user(i)}</username><password hash="sha256" salt="s${i}">${sha256(`s${i}:secret ${i}`)}</password>` +
        `<email>u${i}@${prefix}.example</email><familyName>Number ${i}</familyName></user>\n`,
    );
  }
  for (let i = 0; i < companies; i++) parts.push(`  <company><id>${company(i)}</id><name>${prefix} ${i} s.r.o.</name><country>CZ</country><adminUser>${user(i)}</adminUser></company>\n`);
  for (let g = 0; g < grants; g++) {
    const c = g % companies;
    parts.push(`  <access user="${user((c + 1 + Math.floor(g / companies)) % users)}" role="UCETNI">${company(c)}</access>\n`);
  }
  parts.push(`  <company><id>same_c</id><name>${sharedName}</name><country>CZ</country><adminUser>${user(0)}</adminUser></company>\n`);
  parts.push('</flexibee-batch>\n');
  return parts.join('');
}

describe('two serve processes on one PostgreSQL database', () => {
  let pki: string;
  const servers: Spawned[] = [];
  const dbs: string[] = [];

  beforeAll(() => {
    pki = freshPkiDir();
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => stopServer(s)));
    for (const db of dbs.splice(0)) dropTestDb(db);
  });
  afterAll(() => rmSync(pki, { recursive: true, force: true }));

  function freshDb(): string {
    const db = postgresTestDb();
    dbs.push(db);
    return db;
  }

  /** Two processes started at the same moment on one fresh database and one certificate folder. */
  async function twoServers(): Promise<{ db: string; a: { server: Spawned; port: number }; b: { server: Spawned; port: number } }> {
    const db = freshDb();
    const [a, b] = await Promise.all([serve(db, pki, servers), serve(db, pki, servers)]);
    // Both migrated the same database and registered the same dev client fingerprint: once.
    expect(queryRows(db, 'SELECT label, scope, revoked_at FROM fingerprints')).toEqual([{ label: 'dev client', scope: 'root', revoked_at: null }]);
    // (Log lines come on stdout, the listening banner on stderr: the line may still be on its way.)
    const registered = (): number[] => [a, b].map(({ server }) => logLines(server).filter((l) => l.msg === 'registered the dev client certificate').length);
    await waitUntil(() => registered().reduce((x, y) => x + y) >= 1, 'a process logged the registration of the dev client', 10_000);
    expect(registered().sort()).toEqual([0, 1]);
    return { db, a, b };
  }

  test(`when ${CLIENTS} clients send ${BATCHES_PER_CLIENT} interleaved batches each, alternately to the two processes, over the same users and companies, then every answer and the final store equal a serial replay of the journal through one process, and no update is lost`, async () => {
    const { db, a, b } = await twoServers();
    const ports = [a.port, b.port];
    const bodies = new Map<string, string>();
    const answers = new Map<string, Reply>();
    /** Where each body came from: client, batch number, server (0 = a, 1 = b). */
    const origin = new Map<string, { c: number; b: number; server: number }>();
    const inFlight = [0, 0];
    let mostInFlight = 0;
    let bothBusy = false;

    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        for (let n = 0; n < BATCHES_PER_CLIENT; n++) {
          const body = clientBatch(c, n, SEEDS);
          const sha = sha256(body);
          expect(bodies.has(sha)).toBe(false);
          bodies.set(sha, body);
          const server = (c + n) % 2;
          origin.set(sha, { c, b: n, server });
          inFlight[server]++;
          mostInFlight = Math.max(mostInFlight, inFlight[0] + inFlight[1]);
          bothBusy ||= inFlight[0] > 0 && inFlight[1] > 0;
          const res = await putBatch(ports[server], pki, body, `client ${c} batch ${n}`);
          inFlight[server]--;
          if (res.status !== 200) throw new Error(`client ${c} batch ${n}: ${res.status}\n${res.body}`);
          answers.set(sha, res);
        }
      }),
    );
    expect(mostInFlight).toBe(CLIENTS);
    expect(bothBusy).toBe(true);
    // Each process executed exactly the batches sent to it (its request log line follows the answer, so it may still be on its way).
    for (const { server } of [a, b]) {
      const executed = (): number => logLines(server).filter((l) => l.msg === 'request' && l.path === '/admin/batch' && l.status === 200).length;
      await waitUntil(() => executed() >= (CLIENTS * BATCHES_PER_CLIENT) / 2, 'each process logged its batches', 10_000);
      expect(executed()).toBe((CLIENTS * BATCHES_PER_CLIENT) / 2);
      expect(serverFaults(server)).toEqual([]);
    }

    const order = executions(db, bodies);
    // Each batch executed exactly once, and each client's answer is what the journal recorded for it.
    expect(order.map((o) => o.sha).sort()).toEqual([...bodies.keys()].sort());
    for (const o of order) expect(answers.get(o.sha)?.body).toBe(o.resultXml);
    // The serial order respects every client's own order (a client sends its next batch after the answer).
    for (let c = 0; c < CLIENTS; c++) {
      const mine = order.map((o) => origin.get(o.sha) as { c: number; b: number }).filter((o) => o.c === c);
      expect(mine.map((o) => o.b)).toEqual(Array.from({ length: BATCHES_PER_CLIENT }, (_, n) => n));
    }

    const concurrent = comparableDump(db, PLAIN_PASSWORDS);
    // No update lost: each client's counter holds its last counted batch (the generated ones do not touch it).
    const lastCounted = Math.max(...Array.from({ length: BATCHES_PER_CLIENT }, (_, n) => n).filter((n) => !isGenerated(n)));
    const counters = concurrent.users.filter((u) => String(u.key).endsWith('.counter')).map((u) => [u.key, u.family_name]);
    expect(counters).toEqual(Array.from({ length: CLIENTS }, (_, c) => [`client${c}.counter`, String(lastCounted)]));
    // The shared entities were really fought over, through both processes.
    expect(concurrent.users.filter((u) => String(u.key).startsWith('shared.')).length).toBe(3);
    const writers = order.filter((o) => o.body.includes('<username>shared.anna</username>')).map((o) => origin.get(o.sha) as { c: number; server: number });
    expect(new Set(writers.map((w) => w.c)).size).toBeGreaterThanOrEqual(CLIENTS - 1);
    expect(new Set(writers.map((w) => w.server))).toEqual(new Set([0, 1]));

    // The same batches one at a time, in the journal's order, through one process on a fresh database.
    const fresh = freshDb();
    const { port } = await serve(fresh, pki, servers);
    expect(await replay(order, port, pki)).toEqual([]);
    expect(comparableDump(fresh, PLAIN_PASSWORDS)).toEqual(concurrent);
  }, 240_000);

  test('when the same large batch (id and body) is sent to both processes at once, then one runs and the other gets 409 with Retry-After in the Flexi envelope; the 409 client then finds the result and a re-send is all SKIPPED', async () => {
    const { db, a, b } = await twoServers();
    const USERS = 8000;
    const body = largeBatch('big-1', 'big', USERS, 'Big s.r.o.');
    const operations = USERS + USERS / 2 + USERS + 1;
    expect(operations).toBeGreaterThan(20_000);

    // The first copy is made to hold at its journal insert, with all its rows written: certainly running.
    const hold = await holdJournal(db);
    let first: Reply | undefined;
    let second: Reply;
    try {
      const sentFirst = answered(sendBatch(a.port, pki, body).answer, 'the first copy, to process a', 120_000);
      void sentFirst.then((res) => (first = res), () => undefined);
      await waitUntil(
        () => {
          if (first) throw new Error(`the first copy was answered before it reached its journal insert: ${first.status}\n${first.body.slice(0, 500)}`);
          const locks = lockState(db);
          return locks.journalWaiting === 1 && locks.advisoryGranted === 2;
        },
        'the first copy holds its claim and the batch lock and waits at its journal insert',
        120_000,
        () => JSON.stringify(lockState(db)),
      );

      // The duplicate, to the other process, while the first certainly runs.
      second = await putBatch(b.port, pki, body, 'the duplicate, to process b');
      expect(first).toBeUndefined();
      expect(second.status).toBe(409);
      expect(second.headers['retry-after']).toBe('1');
      expect(envelopeMessage(second)).toContain('big-1');
      await hold.release();
      first = await sentFirst;
    } finally {
      await hold.release();
    }

    expect(first.status).toBe(200);
    const result = entries(first.body);
    expect(result).toHaveLength(operations);
    expect(result.filter((e) => e.status !== 'CREATED')).toEqual([]);
    expect(queryRows(db, 'SELECT count(*) AS n FROM batch_journal WHERE body_sha256 = ?', sha256(body))).toEqual([{ n: 1 }]);

    // The client that got 409 asks the other process for the result, then re-sends: nothing changes.
    const journalled = await getPath(b.port, pki, '/admin/batch/big-1');
    expect(journalled.status).toBe(200);
    expect(journalled.body).toBe(first.body);
    const before = dumpStore(db);
    const retry = await putBatch(b.port, pki, body, 're-send to process b');
    expect(retry.status).toBe(200);
    expect(new Set(entries(retry.body).map((e) => e.status))).toEqual(new Set(['SKIPPED']));
    expect(dumpStore(db)).toEqual(before);
    expect(queryRows(db, 'SELECT count(*) AS n FROM batch_journal WHERE body_sha256 = ?', sha256(body))).toEqual([{ n: 2 }]);
    for (const { server } of [a, b]) expect(serverFaults(server)).toEqual([]);
  }, 240_000);

  test('when two different batches with the same id are sent to the two processes at once, then the second waits its turn: both 200, executed one after the other, as a serial replay', async () => {
    const { db, a, b } = await twoServers();
    const first = largeBatch('same-id', 'firsta', 1000, 'From A s.r.o.');
    const second = largeBatch('same-id', 'secondb', 1000, 'From B s.r.o.');
    const bodies = new Map([first, second].map((x) => [sha256(x), x]));

    const hold = await holdJournal(db);
    let answerA: Reply | undefined;
    let answerB: Reply | undefined;
    try {
      const sentA = answered(sendBatch(a.port, pki, first).answer, 'the first batch, to process a', 120_000);
      void sentA.then((res) => (answerA = res), () => undefined);
      await waitUntil(() => lockState(db).journalWaiting === 1, 'the first batch waits at its journal insert', 120_000, () => JSON.stringify(lockState(db)));
      const sentB = answered(sendBatch(b.port, pki, second).answer, 'the second batch, to process b', 120_000);
      void sentB.then((res) => (answerB = res), () => undefined);
      // The second claims its own key (a different body) and queues for the batch lock: no 409.
      await waitUntil(
        () => {
          if (answerB) throw new Error(`the second batch was answered while the first held the batch lock: ${answerB.status}\n${answerB.body}`);
          return lockState(db).advisoryWaiting === 1;
        },
        'the second batch waits for the batch lock',
        120_000,
        () => JSON.stringify(lockState(db)),
      );
      expect(answerA).toBeUndefined();
      await hold.release();
      [answerA, answerB] = await Promise.all([sentA, sentB]);
    } finally {
      await hold.release();
    }

    expect([answerA.status, answerB.status]).toEqual([200, 200]);
    const order = executions(db, bodies);
    expect(order.map((o) => [o.batchId, o.sha])).toEqual([
      ['same-id', sha256(first)],
      ['same-id', sha256(second)],
    ]);
    expect(order.map((o) => o.resultXml)).toEqual([answerA.body, answerB.body]);
    // Serial: the first created the shared company, the second updated it.
    const companyStatus = (xml: string): string | undefined => entries(xml).find((e) => e.id === 'same_c')?.status;
    expect([companyStatus(answerA.body), companyStatus(answerB.body)]).toEqual(['CREATED', 'UPDATED']);
    expect(queryRows(db, 'SELECT name FROM companies WHERE id = ?', 'same_c')).toEqual([{ name: 'From B s.r.o.' }]);
    expect((await getPath(a.port, pki, '/admin/batch/same-id')).body).toBe(answerB.body);

    const fresh = freshDb();
    const { port } = await serve(fresh, pki, servers);
    expect(await replay(order, port, pki)).toEqual([]);
    expect(comparableDump(fresh, [])).toEqual(comparableDump(db, []));
    for (const { server } of [a, b]) expect(serverFaults(server)).toEqual([]);
  }, 240_000);
});
