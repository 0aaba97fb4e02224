import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchExecutor } from '../../src/batch/execute';
import { DEFAULTS } from '../../src/config';
import { decodeRun } from '../../src/domain/events';
import { openStore } from '../../src/store/open-store';
import { dropTestDb, dumpStore, integrityCheck, journalSummary, newTestDb, queryRows } from '../support/stores';
import { Rng } from '../support/batch-generator';
import { entries, freshPkiDir, validateAnswer } from '../support/server';
import { listeningPort, sendBatch, spawnServe, type Answer, type Spawned } from '../support/spawned';

/**
 * SPEC §5.3 under repeated crashes: a `serve` process is SIGKILLed at a random moment while it
 * receives, queues, executes or has just answered batches, and restarted on the same store, round
 * after round. After every restart the store passes its integrity check (SQLite's
 * `PRAGMA integrity_check`; on PostgreSQL no dangling references), every batch is
 * wholly there or wholly absent (its rows, its journal entry and the shared fields it last
 * wrote agree), and an answered batch is there. At the end, re-sending every batch converges to
 * the state of applying each once to a fresh store.
 */
const ROUNDS = 24;
const USERS = 700;
const COMPANIES = 500;
const GRANTS = 800;
/** The batch's own operations; each batch also writes two shared, counter-like fields and one shared grant. */
const OWN_OPERATIONS = USERS + COMPANIES + GRANTS;
const OPERATIONS = OWN_OPERATIONS + 3;
const SHARED_USER = 'shared.counter';
const SHARED_COMPANY = 'shared_counter';

const pad = (n: number): string => String(n).padStart(3, '0');
const batchId = (k: number): string => `round-${pad(k)}`;
const userName = (k: number, i: number): string => `r${pad(k)}.u${pad(i)}`;
const companyId = (k: number, i: number): string => `r${pad(k)}_c${pad(i)}`;
const counterValue = (k: number): string => `after batch ${pad(k)}`;

/**
 * Batch k: the shared user's familyName set to "after batch k" first, then N users, companies
 * (each with its admin) and grants, all prefixed r<k>, a grant of the shared user to the
 * batch's first company, and last the shared company's name, also set to "after batch k".
 */
function roundBatch(k: number): string {
  const parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', `<flexibee-batch id="${batchId(k)}">\n`];
  parts.push(`  <user><username>${SHARED_USER}</username><familyName>${counterValue(k)}</familyName></user>\n`);
  for (let i = 0; i < USERS; i++) {
    parts.push(`  <user><username>${userName(k, i)}</username><email>u${i}@r${k}.example</email><givenName>Round ${k}</givenName><familyName>User ${i}</familyName></user>\n`);
  }
  for (let i = 0; i < COMPANIES; i++) {
    parts.push(`  <company><id>${companyId(k, i)}</id><name>Round ${k} company ${i}</name><country>CZ</country><adminUser>${userName(k, i)}</adminUser></company>\n`);
  }
  for (let g = 0; g < GRANTS; g++) {
    const company = g % COMPANIES;
    const user = (company + 1 + Math.floor(g / COMPANIES)) % USERS;
    parts.push(`  <access user="${userName(k, user)}" role="UCETNI">${companyId(k, company)}</access>\n`);
  }
  parts.push(`  <access user="${SHARED_USER}" role="UZIVATEL">${companyId(k, 0)}</access>\n`);
  parts.push(`  <company><id>${SHARED_COMPANY}</id><name>${counterValue(k)}</name><country>CZ</country><adminUser>${SHARED_USER}</adminUser></company>\n`);
  parts.push('</flexibee-batch>\n');
  return parts.join('');
}

/** Each batch's rows by prefix; the batch's own grants and the shared user's grant to its company. */
const PRESENT = { users: USERS, companies: COMPANIES, grants: COMPANIES + GRANTS + 1 };
const ABSENT = { users: 0, companies: 0, grants: 0 };

/**
 * Row counts per batch prefix ("r007"), as a map: the rows whose `column` starts with "r", three
 * digits and `separator` (SQLite's GLOB 'r[0-9][0-9][0-9].*', written so that it means the same on
 * PostgreSQL: case-sensitive, and no LIKE whose `_` would match any character).
 */
function countsByBatch(db: string, table: string, column: string, separator: '.' | '_'): Map<string, number> {
  const rows = queryRows(
    db,
    `SELECT substr(${column}, 1, 4) AS batch, count(*) AS n FROM ${table}
      WHERE substr(${column}, 1, 1) = 'r' AND ltrim(substr(${column}, 2, 3), '0123456789') = '' AND substr(${column}, 5, 1) = ?
      GROUP BY 1`,
    separator,
  );
  return new Map(rows.map((r) => [r.batch as string, r.n as number]));
}

/** Checks the store after a restart; returns which of the batches sent so far are there. */
function checkStore(db: string, sent: number): boolean[] {
  expect(integrityCheck(db)).toBe('ok');
  const users = countsByBatch(db, 'users', 'key', '.');
  const companies = countsByBatch(db, 'companies', 'id', '_');
  const grants = countsByBatch(db, 'access', 'company_id', '_');
  const journal = journalSummary(db);
  const present: boolean[] = [];
  for (let k = 0; k < sent; k++) {
    const prefix = `r${pad(k)}`;
    const rows = { users: users.get(prefix) ?? 0, companies: companies.get(prefix) ?? 0, grants: grants.get(prefix) ?? 0 };
    const journalled = journal.some((j) => j.batch_id === batchId(k));
    // Wholly there (with its journal entry) or wholly absent (without one): never half.
    expect({ batch: k, rows, journalled }).toEqual({ batch: k, rows: journalled ? PRESENT : ABSENT, journalled });
    present.push(journalled);
  }
  // The shared fields were written by the batch that committed last, both of them.
  const last = journal.at(-1);
  const shared = [
    queryRows(db, 'SELECT family_name AS v FROM users WHERE key = ?', SHARED_USER)[0]?.v,
    queryRows(db, 'SELECT name AS v FROM companies WHERE id = ?', SHARED_COMPANY)[0]?.v,
  ];
  const expected = last === undefined ? undefined : counterValue(Number(last.batch_id.slice('round-'.length)));
  expect(shared).toEqual([expected, expected]);
  return present;
}

/**
 * The events each batch makes (SPEC §10.1), by type: the shared user's familyName, the batch's users,
 * its companies with their admins' grants, its grants and the shared user's grant, and the shared
 * company's name. Batch 0 creates the shared user and company (and the shared user's admin grant).
 */
function expectedEvents(k: number): Record<string, number> {
  return k === 0
    ? { USER_CREATED: USERS + 1, COMPANY_CREATED: COMPANIES + 1, ACCESS_GRANTED: COMPANIES + GRANTS + 2 }
    : { USER_UPDATED: 1, USER_CREATED: USERS, COMPANY_CREATED: COMPANIES, ACCESS_GRANTED: COMPANIES + GRANTS + 1, COMPANY_UPDATED: 1 };
}

/**
 * The outbox after a crash: reads the events committed since the last look and checks that seq
 * only grows (across restarts too) and that the counter the next seq comes from is the last one;
 * returns the events per batch id and type, accumulated in `seen`.
 */
function readNewEvents(db: string, seen: { lastSeq: number; byBatch: Map<string, Record<string, number>> }): void {
  const rows = queryRows(db, 'SELECT r.seq, r.last_seq, r.data, c.batch_id FROM event_runs r JOIN event_commits c ON c.first_seq = r.commit_seq WHERE r.seq > ? ORDER BY r.seq', seen.lastSeq);
  for (const row of rows) {
    const [seq, last] = [Number(row.seq), Number(row.last_seq)];
    // Runs follow each other without a gap or an overlap, and each holds one event per seq.
    expect(seq).toBe(seen.lastSeq + 1);
    const events = decodeRun(row.data as string);
    expect(events).toHaveLength(last - seq + 1);
    seen.lastSeq = last;
    const batch = row.batch_id as string;
    const counts = seen.byBatch.get(batch) ?? {};
    for (const { type } of events) counts[type] = (counts[type] ?? 0) + 1;
    seen.byBatch.set(batch, counts);
  }
  expect(Number(queryRows(db, "SELECT value FROM counters WHERE name = 'event_seq'")[0].value)).toBe(seen.lastSeq);
}

/** The entity tables without timestamps (the fingerprint registry differs by design: the reference store has none). */
function comparable(db: string): Record<string, unknown[]> {
  const dump = dumpStore(db) as Record<string, Array<Record<string, unknown>>>;
  return Object.fromEntries(
    ['license_groups', 'users', 'companies', 'access'].map((t) => [
      t,
      dump[t].map((row) => Object.fromEntries(Object.entries(row).filter(([column]) => !column.endsWith('_at')))),
    ]),
  );
}

describe('a server killed again and again during batches (SPEC §5.3; its events, SPEC §10.1)', () => {
  let pki: string;
  let dir: string;
  let db: string;
  let reference: string | undefined;
  const servers: Spawned[] = [];

  beforeAll(() => {
    pki = freshPkiDir();
    dir = mkdtempSync(join(tmpdir(), 'flexi-crash-rounds-'));
    db = newTestDb(dir);
  });
  afterAll(() => {
    for (const s of servers.splice(0)) s.killGroup();
    dropTestDb(db);
    if (reference !== undefined) dropTestDb(reference);
    rmSync(dir, { recursive: true, force: true });
    rmSync(pki, { recursive: true, force: true });
  });

  async function serve(): Promise<{ server: Spawned; port: number }> {
    const server = spawnServe({ db, certs: pki, env: { FLEXI_LOG_LEVEL: 'warn' } });
    servers.push(server);
    return { server, port: await listeningPort(server) };
  }

  test(`when it is SIGKILLed at a random moment in each of ${ROUNDS} rounds of ${OPERATIONS}-operation batches, then after every restart the store is intact, each batch wholly there with all its events or absent with none, seq only grows, and re-sending converges to the state of applying each batch once`, async () => {
    const seed = Number(process.env.CRASH_ROUNDS_SEED ?? Date.now() % 1_000_000);
    const rng = new Rng(seed);
    const bodies = Array.from({ length: ROUNDS + 1 }, (_, k) => roundBatch(k));
    // The round's new batch found there / absent after the kill; over all requests of the rounds:
    // answered (so there), committed but cut off before the answer, not applied.
    const figures = { killedPresent: 0, killedAbsent: 0, answered: 0, committedUnanswered: 0, notApplied: 0 };
    const context = (): string => `seed ${seed} (CRASH_ROUNDS_SEED=${seed} repeats it)`;
    const started = Date.now();

    // Round 0 runs undisturbed: batch 0 creates the shared rows, and its time calibrates the kills.
    let { server, port } = await serve();
    const first = sendBatch(port, pki, bodies[0]);
    await first.written;
    const writtenAt = Date.now();
    const firstAnswer = await first.answer;
    const executionMs = Date.now() - writtenAt;
    if ('error' in firstAnswer) throw firstAnswer.error;
    expect(firstAnswer.status).toBe(200);
    let present = [true];
    const events = { lastSeq: 0, byBatch: new Map<string, Record<string, number>>() };

    for (let round = 1; round <= ROUNDS; round++) {
      // This round's new batch, together with up to two earlier ones a kill left absent (they queue behind each other).
      const toSend = [round, ...present.flatMap((there, k) => (there ? [] : [k])).slice(0, 2)];
      const inFlight = new Map<number, Promise<Answer>>();
      for (const k of toSend) inFlight.set(k, sendBatch(port, pki, bodies[k]).answer);
      // Anywhere from before the first body is read to after the last answer. Round 0's time is
      // only an estimate (a loaded machine makes later batches slower or faster), so the last two
      // rounds take the ends of that range if one outcome has not happened yet: killed at once
      // (the new batch cannot be there), or killed after every answer (it must be).
      if (round === ROUNDS && figures.killedPresent === 0) {
        await Promise.all(inFlight.values());
      } else {
        const delay = round === ROUNDS - 1 && figures.killedAbsent === 0 ? 0 : Math.floor(rng.next() * executionMs * (toSend.length + 0.5));
        await new Promise((r) => setTimeout(r, delay));
      }
      server.child.kill('SIGKILL');
      expect(await server.exited).toEqual({ code: null, signal: 'SIGKILL' });

      const answered: number[] = [];
      for (const [k, pending] of inFlight) {
        const answer = await pending;
        if ('error' in answer) continue;
        expect({ context: context(), k, status: answer.status }).toEqual({ context: context(), k, status: 200 });
        answered.push(k);
      }

      ({ server, port } = await serve());
      present = checkStore(db, round + 1);
      // Every committed batch has all its events, and nothing that was not committed has any.
      readNewEvents(db, events);
      for (let k = 0; k <= round; k++) {
        expect({ context: context(), batch: k, events: events.byBatch.get(batchId(k)) ?? {} }).toEqual({ context: context(), batch: k, events: present[k] ? expectedEvents(k) : {} });
      }
      expect([...events.byBatch.keys()].filter((id) => !/^round-\d{3}$/.test(id))).toEqual([]);
      // An answered batch was committed before its answer.
      for (const k of answered) expect({ context: context(), answered: k, present: present[k] }).toEqual({ context: context(), answered: k, present: true });
      if (present[round]) figures.killedPresent++;
      else figures.killedAbsent++;
      for (const k of toSend) {
        if (answered.includes(k)) figures.answered++;
        else if (present[k]) figures.committedUnanswered++;
        else figures.notApplied++;
      }
    }

    // Converge: every batch once more, in order. What is there is SKIPPED (but for the shared
    // fields, which each batch sets to its own value), what is missing is CREATED.
    for (let k = 0; k <= ROUNDS; k++) {
      const answer = await sendBatch(port, pki, bodies[k]).answer;
      if ('error' in answer) throw answer.error;
      expect(answer.status).toBe(200);
      if (k === ROUNDS) validateAnswer('PUT', '/admin/batch', answer);
      const result = entries(answer.body);
      expect(result).toHaveLength(OPERATIONS);
      const own = result.slice(1, 1 + OWN_OPERATIONS).concat(result[OPERATIONS - 2]);
      expect({ k, statuses: [...new Set(own.map((e) => e.status))] }).toEqual({ k, statuses: [present[k] ? 'SKIPPED' : 'CREATED'] });
    }
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(checkStore(db, ROUNDS + 1)).toEqual(Array(ROUNDS + 1).fill(true));
    readNewEvents(db, events);
    for (let k = 0; k <= ROUNDS; k++) expect({ batch: k, created: events.byBatch.get(batchId(k))?.USER_CREATED }).toEqual({ batch: k, created: k === 0 ? USERS + 1 : USERS });

    // The reference: each batch applied once, in order, to a fresh store.
    reference = newTestDb(dir, 'reference.db');
    const store = await openStore(reference);
    try {
      const executor = new BatchExecutor(store, { maxOperations: DEFAULTS.maxOperations, hashPolicy: { algorithm: 'sha256', pbkdf2Iterations: 1 } });
      for (const body of bodies) await executor.execute(body, { kind: 'cli', name: 'cli', scope: 'root' });
    } finally {
      await store.close();
    }
    expect(comparable(db)).toEqual(comparable(reference));

    if (process.env.CRASH_TEST_DEBUG) {
      process.stderr.write(`crash rounds: ${context()}, execution ${executionMs} ms, ${JSON.stringify(figures)}, ${Date.now() - started} ms\n`);
    }
    // Both outcomes happened at least once, or the kills were not spread over the batches' lifetime.
    expect({ context: context(), both: figures.killedPresent > 0 && figures.killedAbsent > 0 }).toEqual({ context: context(), both: true });
  }, 180_000);
});
