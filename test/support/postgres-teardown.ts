import type { Cluster } from './postgres-cluster';
import { dropLeftoverTestDatabases } from './postgres-dump';
import { OWN_CLUSTER } from './postgres-setup';

/**
 * jest's globalTeardown of the `postgres` project: drops the test databases its workers made
 * (they recycle them while they run; see createTestDatabase) and any a killed run left behind,
 * then stops the PostgreSQL the setup started, if it started one.
 */
export default async function teardown(): Promise<void> {
  const own = (globalThis as Record<symbol, Cluster | undefined>)[OWN_CLUSTER];
  try {
    if (!process.env.FLEXI_TEST_POSTGRES_UNAVAILABLE) dropLeftoverTestDatabases(process.pid);
  } catch (err) {
    // PostgreSQL is down: the tests have already failed and said why; the next run cleans up.
    process.stderr.write(`postgres teardown: ${(err as Error).message.split('\n')[0]}\n`);
  } finally {
    await own?.destroy();
  }
}
