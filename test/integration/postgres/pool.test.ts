import { BATCH_LOCK } from '../../../src/store/postgres/postgres-driver';
import { startTestServer, statuses, type TestServer } from '../../support/server';
import { queryRows } from '../../support/stores';

/** --db-pool: the connections one process opens to PostgreSQL, whatever the load. */
describe('the PostgreSQL pool size (--db-pool, FLEXI_DB_POOL)', () => {
  let server: TestServer;
  const POOL = 3;

  beforeAll(async () => {
    server = await startTestServer({ dbPool: POOL });
  });
  afterAll(() => server.close());

  /** Connections to the test database but this query's own. */
  const connections = (): number =>
    Number(queryRows(server.db, 'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')[0].n);

  test('when many batches and listings arrive at once, then they are all answered and the process never holds more connections than the pool size', async () => {
    let most = 0;
    let running = true;
    const watch = (async () => {
      while (running) {
        most = Math.max(most, connections());
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const batch = (i: number): string =>
      `<flexibee-batch id="pool-${i}"><user><username>pool.u${i}</username></user><user><username>pool.v${i}</username></user></flexibee-batch>`;
    const answers = await Promise.all([
      ...Array.from({ length: 24 }, (_, i) => server.batch(batch(i))),
      ...Array.from({ length: 24 }, () => server.request('GET', '/u.xml')),
    ]);
    running = false;
    await watch;
    most = Math.max(most, connections());
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    for (const a of answers.slice(0, 24)) expect(statuses(a.body)).toEqual(['CREATED', 'CREATED']);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(POOL);
  });

  test('when a request waits longer than 5 s for a connection, because the only one is held by a batch waiting for the batch lock, then it is answered once the connection is free: the 5 s bound is for opening a connection, not for waiting in line', async () => {
    const narrow = await startTestServer({ dbPool: 1 });
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    // The batch lock, held by the test's own connection (session-level), keeps the batch waiting on the one connection.
    queryRows(narrow.db, 'SELECT pg_advisory_lock(CAST(? AS bigint))', BATCH_LOCK);
    let unlocked = false;
    try {
      const batch = narrow.batch('<flexibee-batch id="pool-held"><user><username>pool.held</username></user></flexibee-batch>');
      const waitingForLock = (): number =>
        Number(queryRows(narrow.db, "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid <> pg_backend_pid()")[0].n);
      while (waitingForLock() === 0) await sleep(50);
      const listing = narrow.request('GET', '/u.xml');
      await sleep(7000);
      queryRows(narrow.db, 'SELECT pg_advisory_unlock(CAST(? AS bigint))', BATCH_LOCK);
      unlocked = true;
      const [b, l] = await Promise.all([batch, listing]);
      expect([b.status, l.status]).toEqual([200, 200]);
      expect(statuses(b.body)).toEqual(['CREATED']);
      expect(l.body).toContain('pool.held');
    } finally {
      if (!unlocked) queryRows(narrow.db, 'SELECT pg_advisory_unlock(CAST(? AS bigint))', BATCH_LOCK);
      await narrow.close();
    }
  });
});
