import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropTestDb, dumpStore, integrityCheck, journalSummary, newTestDb, queryRows, STORE_KIND } from '../support/stores';
import { entries, freshPkiDir, validateAnswer } from '../support/server';
import { listeningPort, sendBatch, spawnServe, type Spawned } from '../support/spawned';

/**
 * SPEC §5.3: a kill at any moment leaves the store either without the batch or with all of
 * it, so an unanswered batch can always be re-sent. A real `serve` process is SIGKILLed while
 * it receives, executes or has just answered a large batch, then restarted on the same store
 * (a SQLite file, or a PostgreSQL database: there the killed connection's open transaction is
 * rolled back by the database, and the same expectations hold).
 */
const USERS = 8000;
const COMPANIES = 4000;
const GRANTS = 8000;
const OPERATIONS = USERS + COMPANIES + GRANTS;
const BATCH_ID = 'crash-20000';

const pad = (n: number): string => String(n).padStart(5, '0');
const userName = (i: number): string => `crash.u${pad(i)}`;
const companyId = (i: number): string => `crash_c${pad(i)}`;

/** Users with pre-hashed passwords (no hashing time), companies each with its admin, and two more grants per company. */
function largeBatch(): string {
  const parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', `<flexibee-batch id="${BATCH_ID}">\n`];
  for (let i = 0; i < USERS; i++) {
    const digest = createHash('sha256').update(`s${i}:secret ${i}`).digest('hex');
    parts.push(
      `  <user><username>${userName(i)}</username><password hash="sha256" salt="s${i}">${digest}</password>` +
        `<email>u${i}@crash.example</email><givenName>User</givenName><familyName>Number ${i}</familyName></user>\n`,
    );
  }
  for (let i = 0; i < COMPANIES; i++) {
    parts.push(`  <company><id>${companyId(i)}</id><name>Crash ${i} s.r.o.</name><country>CZ</country><adminUser>${userName(i)}</adminUser></company>\n`);
  }
  // Grant g goes to company g % COMPANIES for a user other than its admin, each pair once.
  for (let g = 0; g < GRANTS; g++) {
    const company = g % COMPANIES;
    const user = (company + 1 + Math.floor(g / COMPANIES)) % USERS;
    parts.push(`  <access user="${userName(user)}" role="UCETNI">${companyId(company)}</access>\n`);
  }
  parts.push('</flexibee-batch>\n');
  return parts.join('');
}

interface BatchState {
  users: number;
  companies: number;
  grants: number;
  journal: number;
}

const ABSENT: BatchState = { users: 0, companies: 0, grants: 0, journal: 0 };
// Each company's admin grant plus the two explicit ones.
const PRESENT: BatchState = { users: USERS, companies: COMPANIES, grants: COMPANIES + GRANTS, journal: 1 };

function batchState(db: string): BatchState {
  const dump = dumpStore(db) as Record<string, Array<Record<string, unknown>>>;
  return {
    users: dump.users.filter((u) => String(u.key).startsWith('crash.u')).length,
    companies: dump.companies.filter((c) => String(c.id).startsWith('crash_c')).length,
    grants: dump.access.filter((a) => String(a.company_id).startsWith('crash_c')).length,
    journal: journalSummary(db).filter((j) => j.batch_id === BATCH_ID).length,
  };
}

describe('a server killed during a large batch', () => {
  const body = largeBatch();
  let pki: string;
  let dir: string;
  let db: string;
  const servers: Spawned[] = [];
  /** Milliseconds from the body being sent to the answer in an undisturbed run, measured by the first test. */
  let executionMs = 2000;

  beforeAll(() => {
    pki = freshPkiDir();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flexi-crash-'));
    db = newTestDb(dir);
  });
  afterEach(() => {
    for (const s of servers.splice(0)) s.killGroup();
    dropTestDb(db);
    rmSync(dir, { recursive: true, force: true });
  });
  afterAll(() => rmSync(pki, { recursive: true, force: true }));

  async function serve(): Promise<{ server: Spawned; port: number }> {
    const server = spawnServe({ db, certs: pki, env: { FLEXI_LOG_LEVEL: 'warn' } });
    servers.push(server);
    return { server, port: await listeningPort(server) };
  }

  async function kill(server: Spawned): Promise<void> {
    server.child.kill('SIGKILL');
    expect(await server.exited).toEqual({ code: null, signal: 'SIGKILL' });
  }

  /** Restart on the same store: the batch is wholly there or wholly absent; re-sending it gives the full answer. */
  async function restartAndResend(answeredBeforeKill: boolean): Promise<'absent' | 'present'> {
    const { server, port } = await serve();
    expect(integrityCheck(db)).toBe('ok');
    const state = batchState(db);
    expect([ABSENT, PRESENT]).toContainEqual(state);
    const found = state.journal === 0 ? 'absent' : 'present';
    // A batch that was answered was committed durably before the answer.
    if (answeredBeforeKill) expect(found).toBe('present');

    const res = await sendBatch(port, pki, body).answer;
    if ('error' in res) throw res.error;
    expect(res.status).toBe(200);
    validateAnswer('PUT', '/admin/batch', res);
    const result = entries(res.body);
    expect(result).toHaveLength(OPERATIONS);
    const expected = found === 'absent' ? 'CREATED' : 'SKIPPED';
    expect(result.filter((e) => e.status !== expected)).toEqual([]);
    expect(result[0]).toMatchObject({ type: 'USER', id: userName(0) });
    expect(result[OPERATIONS - 1]).toMatchObject({ type: 'ACCESS_LIST', id: `${userName(COMPANIES + 1)}@${companyId(COMPANIES - 1)}` });
    expect(batchState(db)).toEqual({ ...PRESENT, journal: found === 'absent' ? 1 : 2 });

    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(integrityCheck(db)).toBe('ok');
    return found;
  }

  test(`when it is killed right after answering a batch of ${OPERATIONS} operations, then after a restart the batch is wholly there and a re-send is all SKIPPED`, async () => {
    const { server, port } = await serve();
    const sent = sendBatch(port, pki, body);
    await sent.written;
    const written = Date.now();
    const res = await sent.answer;
    executionMs = Date.now() - written;
    if ('error' in res) throw res.error;
    expect(res.status).toBe(200);
    await kill(server);
    expect(await restartAndResend(true)).toBe('present');
  });

  test('when it is killed as soon as the batch is sent, then after a restart the batch is wholly absent or wholly there, and a re-send completes it', async () => {
    const { server, port } = await serve();
    const sent = sendBatch(port, pki, body);
    await sent.written;
    await kill(server);
    const answer = await sent.answer;
    if (!('error' in answer)) expect(answer.status).toBe(200);
    await restartAndResend(!('error' in answer));
  });

  /**
   * How far the store has got writing the batch. SQLite: the size of the write-ahead log file
   * beside the database. PostgreSQL: the cluster's WAL insert position, and whether a session of
   * the server holds a transaction id, which a transaction takes with its first written row
   * (reading the snapshot and waiting for the batch lock take none).
   */
  function writeProgress(): { wal: number; writing: boolean } {
    if (STORE_KIND === 'sqlite') return { wal: statSync(`${db}-wal`, { throwIfNoEntry: false })?.size ?? 0, writing: true };
    const [row] = queryRows(
      db,
      `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0') AS wal,
              EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()) AS writing`,
    );
    return { wal: Number(row.wal), writing: row.writing === true };
  }

  test('when it is killed while the store writes the batch (its write-ahead log starts growing), then after a restart the batch is wholly absent or wholly there, and a re-send completes it', async () => {
    const { server, port } = await serve();
    const before = writeProgress().wal;
    const sent = sendBatch(port, pki, body);
    let answered = false;
    void sent.answer.then(() => (answered = true));
    await sent.written;
    // The batch's pages reach the log only once it is executed; a few pages already mean it is being
    // written (on PostgreSQL, whose log is shared by all databases, while the batch's transaction writes).
    let progress = writeProgress();
    while (!answered && !(progress.writing && progress.wal >= before + 64 * 1024)) {
      await new Promise((r) => setImmediate(r));
      progress = writeProgress();
    }
    await kill(server);
    const answer = await sent.answer;
    if (!('error' in answer)) expect(answer.status).toBe(200);
    const found = await restartAndResend(!('error' in answer));
    if (process.env.CRASH_TEST_DEBUG) {
      process.stderr.write(`crash with the log at ${progress.wal} bytes (from ${before}): ${'error' in answer ? 'unanswered' : 'answered'}, batch ${found}\n`);
    }
  });

  // Parsing takes about the first two thirds of the time, then planning, writing (about the
  // last tenth before the answer) and the commit.
  test.each([0.6, 0.9])(
    'when it is killed at a random moment around %s of the execution time, then after a restart the batch is wholly absent or wholly there, and a re-send completes it',
    async (fraction) => {
      const { server, port } = await serve();
      const sent = sendBatch(port, pki, body);
      await sent.written;
      // Around the given point of an undisturbed run (±5 %).
      const delay = Math.round(executionMs * (fraction + (Math.random() - 0.5) * 0.1));
      await new Promise((r) => setTimeout(r, delay));
      await kill(server);
      const answer = await sent.answer;
      if (!('error' in answer)) expect(answer.status).toBe(200);
      const found = await restartAndResend(!('error' in answer));
      if (process.env.CRASH_TEST_DEBUG) process.stderr.write(`crash at ${delay} ms of ${executionMs}: ${'error' in answer ? 'unanswered' : 'answered'}, batch ${found}\n`);
    },
  );
});
