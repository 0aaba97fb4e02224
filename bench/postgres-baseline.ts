import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { columnsOf, PostgresDriver, unnestInsertSql, withDefaultUser } from '../src/store/postgres/postgres-driver';
import { ACCESS, COMPANIES, USERS, type Table } from '../src/store/schema';
import type { BaselineRows } from './sqlite-baseline';

/**
 * The PostgreSQL floor of the batch benchmark (`npm run bench --db postgres://…`, phase E), the
 * twin of writeBaseline in sqlite-baseline.ts: the same rows written straight into an empty,
 * migrated database with node-postgres, plain INSERTs in one transaction, nothing else (no HTTP,
 * no XML, no snapshot, no planning, no journal, no lock). Each table is one multi-row INSERT over
 * unnest() of one array per column, the fastest plain way over the wire; a round trip per row
 * would measure the network rather than the store.
 *
 * The rows go into a scratch database created for this next to the one `url` names (on the same
 * server, so the role needs CREATEDB) and dropped afterwards; the database of `url` is not touched.
 * Resolves with the milliseconds from the first INSERT to the end of the commit.
 */
export async function writePostgresBaseline(url: string, rows: BaselineRows): Promise<number> {
  const scratch = `flexi_baseline_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: withDefaultUser(url) });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${scratch}`);
    try {
      const target = new URL(withDefaultUser(url));
      target.pathname = `/${scratch}`;
      return await insertRows(target.toString(), rows);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`);
    }
  } finally {
    await admin.end();
  }
}

async function insertRows(url: string, rows: BaselineRows): Promise<number> {
  await (await PostgresDriver.open(url, { poolSize: 1 })).close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const now = new Date().toISOString();
    const started = process.hrtime.bigint();
    await client.query('BEGIN');
    const insert = async <R>(table: Table<R>, records: readonly R[]): Promise<void> => {
      await client.query(unnestInsertSql(table, false), columnsOf(records.map((r) => table.values(r, now)), table.columnNames.length));
    };
    await insert(USERS, rows.users);
    await insert(COMPANIES, rows.companies);
    await insert(ACCESS, rows.access);
    await client.query('COMMIT');
    return Number(process.hrtime.bigint() - started) / 1e6;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}
