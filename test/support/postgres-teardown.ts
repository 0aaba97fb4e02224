import { dropLeftoverTestDatabases } from '../../src/store/postgres/postgres-dump';

/**
 * jest's globalTeardown of the `postgres` project: drops the test databases its workers made
 * (they recycle them while they run; see createTestDatabase) and any a killed run left behind.
 */
export default function teardown(): void {
  try {
    dropLeftoverTestDatabases(process.pid);
  } catch (err) {
    // PostgreSQL is down: the tests have already failed and said why; the next run cleans up.
    process.stderr.write(`postgres teardown: ${(err as Error).message.split('\n')[0]}\n`);
  }
}
