import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchExecutor } from '../../src/batch/execute';
import { DEFAULTS, hashPolicyOf } from '../../src/config';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { localDate } from '../../src/tasks/runner';
import { runCli } from '../support/cli';
import { freshPkiDir, httpsCall, statuses } from '../support/server';
import { CLI_JS, listeningPort, REPO_ROOT, spawnProcess, spawnServe, type Spawned } from '../support/spawned';
import { dropTestDb, newTestDb, queryRows } from '../support/stores';

/**
 * The task runner (SPEC §10.4, issue 12 point 4) as operators run it: inside `serve` or alone as
 * `flexi-admin tasks`, `tasks run-once`, one runner per store by a lease — several of them on one
 * SQLite file or one PostgreSQL database fire each date action once, and a runner killed with
 * SIGKILL is replaced within --task-lease. The tests wait for what the runners do, never for time.
 */

/** A time of day twelve hours away: no runner's daily round falls inside a test. */
function farTimeOfDay(): string {
  const at = new Date(Date.now() + 12 * 3_600_000);
  return `${String(at.getHours()).padStart(2, '0')}:${String(at.getMinutes()).padStart(2, '0')}`;
}

const RUNNER_ENV = { FLEXI_TASK_LEASE: '2s', FLEXI_TASK_TIME: farTimeOfDay(), FLEXI_LOG_LEVEL: 'info' };

/** Checks `done` again and again until it holds; a test that never sees it fails on jest's timeout, with `what` in the message. */
async function waitUntil(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const count = (text: string, pattern: RegExp): number => (text.match(new RegExp(pattern.source, 'g')) ?? []).length;

describe('the task runner (SPEC §10.4)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flexi-task-runner-'));
  const dbs: string[] = [];
  const stores: Store[] = [];
  const children: Spawned[] = [];
  const today = localDate();

  afterEach(async () => {
    for (const child of children.splice(0)) child.killGroup();
    for (const store of stores.splice(0)) await store.close();
    for (const db of dbs.splice(0)) dropTestDb(db);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A fresh store holding a remind action that is due today for `n` users: each run that fires makes n REMINDER events. */
  async function storeWithDueAction(name: string, n = 3): Promise<{ db: string; store: Store }> {
    const db = newTestDb(dir, `${name}.db`);
    dbs.push(db);
    const store = await openStore(db, { poolSize: 2 });
    stores.push(store);
    const executor = new BatchExecutor(store, { maxOperations: 1000, hashPolicy: hashPolicyOf(DEFAULTS) });
    const users = Array.from({ length: n }, (_, i) => `<user><username>tr.user.${i}</username><validUntil>${today}</validUntil></user>`).join('');
    const outcome = await executor.execute(
      `<flexibee-batch id="seed">
        <user><username>tr.boss</username></user>
        <licenseGroup><id>root</id><param name="taskUser">tr.boss</param></licenseGroup>
        ${users}
        <dateAction><id>tr-remind</id><entity>USER</entity><field>validUntil</field><do>remind</do><message>due today</message></dateAction>
      </flexibee-batch>`,
      { kind: 'cli', name: 'cli', scope: 'root' },
    );
    expect(statuses(outcome.xml).every((s) => s === 'CREATED' || s === 'UPDATED')).toBe(true);
    return { db, store };
  }

  const reminders = async (store: Store): Promise<string[]> =>
    (await store.listEvents('root', 0, 1000)).events.map((e) => JSON.parse(e) as { type: string; entity: { id: string } }).filter((e) => e.type === 'REMINDER').map((e) => e.entity.id);
  const runsJournalled = (db: string): number => Number(queryRows(db, "SELECT count(*) AS n FROM batch_journal WHERE batch_id LIKE 'tasks-%'")[0].n);

  function runner(db: string): Spawned {
    const child = spawnProcess(process.execPath, [CLI_JS, 'tasks'], { cwd: REPO_ROOT, env: { FLEXI_DB: db, ...RUNNER_ENV } });
    children.push(child);
    return child;
  }
  const holdsLease = (r: Spawned): boolean => r.stdout().includes('"msg":"task runner holds the lease"');
  const roundsDone = (r: Spawned): number => count(r.stdout(), /"msg":"date actions checked"/);

  test('when `tasks run-once` runs, then it fires what is due and exits 0; a second run fires nothing more', async () => {
    const { db, store } = await storeWithDueAction('run-once');
    const first = await runCli(['tasks', 'run-once'], { env: { FLEXI_DB: db, ...RUNNER_ENV } });
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    expect((await reminders(store)).sort()).toEqual(['tr.user.0', 'tr.user.1', 'tr.user.2']);
    const second = await runCli(['tasks', 'run-once'], { env: { FLEXI_DB: db, ...RUNNER_ENV } });
    expect(second.code).toBe(0);
    expect(await reminders(store)).toHaveLength(3);
    expect(runsJournalled(db)).toBe(1);
  });

  test('when two `tasks run-once` processes race on one store, then each object is reminded once and both exit 0', async () => {
    const { db, store } = await storeWithDueAction('race');
    const [a, b] = await Promise.all([0, 1].map(() => runCli(['tasks', 'run-once'], { env: { FLEXI_DB: db, ...RUNNER_ENV } })));
    expect([a.code, b.code]).toEqual([0, 0]);
    expect((await reminders(store)).sort()).toEqual(['tr.user.0', 'tr.user.1', 'tr.user.2']);
    expect(runsJournalled(db)).toBe(1);
  });

  test('when two `flexi-admin tasks` run on one store, then one holds the lease and fires; when it stops, the other takes over and fires nothing again', async () => {
    const { db, store } = await storeWithDueAction('two-runners');
    const [a, b] = [runner(db), runner(db)];
    await waitUntil('one runner holds the lease and has run the date actions', () => [a, b].some((r) => holdsLease(r) && roundsDone(r) === 1));
    const [holder, waiting] = holdsLease(a) ? [a, b] : [b, a];
    expect(holdsLease(waiting)).toBe(false);
    expect((await reminders(store)).sort()).toEqual(['tr.user.0', 'tr.user.1', 'tr.user.2']);

    holder.child.kill('SIGTERM');
    expect((await holder.exited).code).toBe(0);
    await waitUntil('the other runner has taken over and run the date actions', () => holdsLease(waiting) && roundsDone(waiting) === 1);
    expect(await reminders(store)).toHaveLength(3);
    expect(runsJournalled(db)).toBe(1);
    waiting.child.kill('SIGTERM');
    expect((await waiting.exited).code).toBe(0);
    expect(queryRows(db, 'SELECT count(*) AS n FROM task_leases').map((r) => Number(r.n))).toEqual([0]);
  });

  test('when the runner holding the lease is killed with SIGKILL, then a waiting runner takes over within the lease and runs what fell due', async () => {
    const db = newTestDb(dir, 'sigkill.db');
    dbs.push(db);
    const store = await openStore(db, { poolSize: 2 });
    stores.push(store);
    const first = runner(db);
    await waitUntil('the first runner holds the lease and has run the date actions', () => holdsLease(first) && roundsDone(first) === 1);
    const second = runner(db);
    await second.waitForStderr(/task runner started/, 30_000);
    // Due now, but the holder runs date actions only at its start and its daily time: it will not see these.
    const executor = new BatchExecutor(store, { maxOperations: 1000, hashPolicy: hashPolicyOf(DEFAULTS) });
    await executor.execute(
      `<flexibee-batch id="seed"><user><username>tr.boss</username></user><licenseGroup><id>root</id><param name="taskUser">tr.boss</param></licenseGroup>
        <user><username>tr.late</username><validUntil>${today}</validUntil></user>
        <dateAction><id>tr-late</id><entity>USER</entity><field>validUntil</field><do>remind</do></dateAction></flexibee-batch>`,
      { kind: 'cli', name: 'cli', scope: 'root' },
    );
    expect(holdsLease(second)).toBe(false);
    first.killGroup();
    expect((await first.exited).signal).toBe('SIGKILL');
    await waitUntil('the second runner has taken over and reminded tr.late', async () => (await reminders(store)).includes('tr.late'));
    expect(holdsLease(second)).toBe(true);
    expect(await reminders(store)).toEqual(['tr.late']);
  });

  describe('inside serve', () => {
    async function metrics(port: number, certs: string): Promise<string> {
      const res = await httpsCall(port, readFileSync(join(certs, 'ca.pem'), 'utf8'), 'GET', '/metrics', {}, {
        cert: readFileSync(join(certs, 'client.pem'), 'utf8'),
        key: readFileSync(join(certs, 'client-key.pem'), 'utf8'),
      });
      expect(res.status).toBe(200);
      return res.body;
    }

    test('when serve starts, then its runner takes the lease, fires what is due, and /metrics counts its rounds by outcome', async () => {
      const { db, store } = await storeWithDueAction('serve');
      const certs = freshPkiDir();
      const server = spawnServe({ db, certs, env: RUNNER_ENV });
      children.push(server);
      const port = await listeningPort(server);
      await waitUntil('the runner inside serve has reminded every user', async () => (await reminders(store)).length === 3);
      await waitUntil('the round is counted', async () => /flexi_task_runs_total\{task="dates",outcome="ok"\} 1/.test(await metrics(port, certs)));
      expect(queryRows(db, 'SELECT holder FROM task_leases').map((r) => String(r.holder))).toEqual([expect.stringContaining(`:${server.pid}:`)]);
      server.child.kill('SIGTERM');
      expect((await server.exited).code).toBe(0);
      rmSync(certs, { recursive: true, force: true });
    });

    test('when serve runs with --no-tasks, then it runs no runner: a separate `tasks run-once` gets the lease at once and fires, and /metrics counts no rounds', async () => {
      const { db, store } = await storeWithDueAction('no-tasks');
      const certs = freshPkiDir();
      const server = spawnProcess(process.execPath, [CLI_JS, 'serve', '--no-tasks'], {
        cwd: REPO_ROOT,
        env: { FLEXI_PORT: '0', FLEXI_HOST: '127.0.0.1', FLEXI_DB: db, FLEXI_CERTS: certs, ...RUNNER_ENV },
      });
      children.push(server);
      const port = await listeningPort(server);
      const once = await runCli(['tasks', 'run-once'], { env: { FLEXI_DB: db, ...RUNNER_ENV, FLEXI_TASK_LEASE: '1s' } });
      expect({ code: once.code, stderr: once.stderr }).toEqual({ code: 0, stderr: '' });
      expect(await reminders(store)).toHaveLength(3);
      expect(await metrics(port, certs)).not.toMatch(/^flexi_task_runs_total\{/m);
      server.child.kill('SIGTERM');
      expect((await server.exited).code).toBe(0);
      rmSync(certs, { recursive: true, force: true });
    });
  });
});
