import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JournalRow } from './sqlite-dump';
import { callSync } from './sync-call';

/**
 * Synchronous test helpers for the PostgreSQL store, with the names and row shapes of
 * sqlite-dump.ts, so one test can compare either store with `toEqual`. Queries run through
 * node-postgres in a worker thread (workers/pg.js), so no psql is needed; each dump is wrapped as
 * `SELECT json_agg(t) FROM (…) t`, so numbers come back as numbers (also BIGINT and count(*)),
 * NULL as null, TEXT as strings.
 */

/**
 * The server the test databases live on: FLEXI_TEST_DATABASE_URL (a URL of a database to connect
 * to for CREATE DATABASE), else the machine's own PostgreSQL. The postgres project's global setup
 * (postgres-setup.ts) checks it answers, or starts a PostgreSQL of its own and sets this variable.
 */
export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
// Read when used: the global setup may set it after this module was loaded.
const adminUrl = (): string => process.env.FLEXI_TEST_DATABASE_URL || DEFAULT_TEST_DATABASE_URL;

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', '57P03']);

function query<T>(url: string, sql: string, params: unknown[] = []): T[] {
  // Set by the global setup when neither that server nor a PostgreSQL of the suite's own runs: every PostgreSQL test fails with it.
  const unavailable = process.env.FLEXI_TEST_POSTGRES_UNAVAILABLE;
  if (unavailable) throw new Error(unavailable);
  try {
    return callSync<T[]>('pg.js', 'query', url, sql, params);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (UNREACHABLE_CODES.has(e.code ?? '') || /timeout|terminated unexpectedly/i.test(e.message)) {
      throw new Error(`PostgreSQL at ${describe(url)} is not reachable, and the PostgreSQL half of the test suite needs it (${e.message}).`);
    }
    throw new Error(`PostgreSQL query failed: ${e.message}\n${sql}`);
  }
}

function describe(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}`;
  } catch {
    return url;
  }
}

function json<T>(url: string, sql: string, params?: unknown[]): T {
  const [row] = query<{ value: T }>(url, `SELECT (${sql}) AS value`, params);
  return row.value;
}

/** The rows of `select`, as JSON objects keyed by column name, in the select's order. */
function rowsOf<T>(url: string, select: string, params?: unknown[]): T[] {
  return json<T[]>(url, `SELECT coalesce(json_agg(t), '[]'::json) FROM (${select}) t`, params);
}

/** Every table with the two columns that order it, as dumpSqlite's `ORDER BY 1, 2`. */
const DUMP_TABLES: ReadonlyArray<[string, string, string]> = [
  ['license_groups', 'id', 'name'],
  ['users', 'key', 'username'],
  ['companies', 'id', 'name'],
  ['access', 'user_key', 'company_id'],
  ['fingerprints', 'fingerprint', 'scope'],
];

/**
 * Every row of the entity tables, for tests that compare the store before and after a batch
 * (the same shape as dumpSqlite). The journal is left out: it records each execution by design.
 */
export function dumpPostgres(url: string): Record<string, unknown[]> {
  const parts = DUMP_TABLES.map(
    ([table, a, b]) => `'${table}', (SELECT coalesce(json_agg(t ORDER BY t.${a}, t.${b}), '[]'::json) FROM ${table} t)`,
  );
  return json<Record<string, unknown[]>>(url, `SELECT json_build_object(${parts.join(', ')})`);
}

const JOURNAL_ROWS = 'SELECT batch_id, credential, principal, impersonated, acting_user_key, scope, body_sha256, result_xml FROM batch_journal ORDER BY seq';

/** dumpPostgres and journalRows in one query (one round trip instead of two), for tests that check both after every batch. */
export function dumpWithJournal(url: string): { rows: Record<string, unknown[]>; journal: JournalRow[] } {
  const parts = DUMP_TABLES.map(
    ([table, a, b]) => `'${table}', (SELECT coalesce(json_agg(t ORDER BY t.${a}, t.${b}), '[]'::json) FROM ${table} t)`,
  );
  return json(url, `SELECT json_build_object('rows', json_build_object(${parts.join(', ')}),
    'journal', (SELECT coalesce(json_agg(j), '[]'::json) FROM (${JOURNAL_ROWS}) j))`);
}

/** Runs SQL statements in one transaction, for tests that build a store as an earlier release left it. */
export function runScript(url: string, sql: string): void {
  query(url, `BEGIN;\n${sql}\nCOMMIT;`);
}

/** Batch id and body hash of every journalled execution, oldest first. */
export function journalSummary(url: string): Array<{ batch_id: string; body_sha256: string }> {
  return rowsOf(url, 'SELECT batch_id, body_sha256 FROM batch_journal ORDER BY seq');
}

/** Who executed each journalled batch, as whom, and what it answered; oldest first. */
export function journalRows(url: string): JournalRow[] {
  return rowsOf(url, JOURNAL_ROWS);
}

/** The stored login sessions (only SHA-256 digests of their ids are ever stored). */
export function sessionRows(url: string): Array<{ id_hash: string; user_key: string; created_at: number; last_used_at: number }> {
  return rowsOf(url, 'SELECT id_hash, user_key, created_at, last_used_at FROM sessions ORDER BY created_at, id_hash');
}

/**
 * Rows of one read-only query, for tests that check a large store without dumping all of it.
 * Parameters are written `?` (in order, as for SQLite) or `$1`, `$2`…; booleans are passed as
 * 1/0, as both stores keep flags. A `?` inside a quoted string of `sql` is not told apart: keep
 * literals out of such queries.
 */
export function queryRows(url: string, sql: string, ...params: unknown[]): Array<Record<string, unknown>> {
  let next = 0;
  const text = /\$\d/.test(sql) ? sql : sql.replace(/\?/g, () => `$${++next}`);
  const values = params.map((v) => (typeof v === 'boolean' ? Number(v) : v));
  return rowsOf(url, text.trim().replace(/;\s*$/, ''), values);
}

/** A database name that SQL takes as is: flexi_test_<pid>_<random>. */
function testDatabaseName(): string {
  return `flexi_test_${process.pid}_${randomBytes(6).toString('hex')}`;
}

/** The URL of `database` on the server of adminUrl(). */
function urlOf(database: string): string {
  const url = new URL(adminUrl());
  url.pathname = `/${database}`;
  return url.toString();
}

/**
 * Databases handed back by dropTestDatabase, kept for the next test of this process: emptying
 * a database (its schema dropped and made anew) takes milliseconds, CREATE DATABASE a third of
 * a second, and the property and idempotency suites open hundreds of stores.
 */
const recycled: string[] = [];
/** Every database this process created, dropped when it exits. */
const created = new Set<string>();

function nameOf(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  if (!/^flexi_test_\w+$/.test(name)) throw new Error(`only databases made by createTestDatabase are handled here, not '${name}'`);
  return name;
}

/** Ends every other connection to the database (a killed server's, say), so nothing holds a lock on what is emptied or dropped. */
function terminateOthers(name: string): void {
  query(adminUrl(), 'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
}

/** The parent of a process, from /proc (Linux); undefined where that cannot be read. */
function parentOf(pid: number): number | undefined {
  try {
    // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Drops the test databases of processes that are gone (a run that was killed), and, given
 * `parent`, those of that process and its children: a test runner's teardown passes its own
 * pid once every test has run (tests run in its workers, or in it when run in band), because
 * the workers may still be winding down and an exit hook in a worker is not always run.
 */
export function dropLeftoverTestDatabases(parent?: number): void {
  const names = query<{ datname: string }>(adminUrl(), "SELECT datname FROM pg_database WHERE datname LIKE 'flexi\\_test\\_%'").map((r) => r.datname);
  for (const name of names) {
    const pid = Number(/^flexi_test_(\d+)_/.exec(name)?.[1]);
    if (!pid) continue;
    const ours = parent !== undefined && (pid === parent || parentOf(pid) === parent);
    if (ours || (pid !== process.pid && !isAlive(pid))) {
      query(adminUrl(), `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  }
}

/**
 * At exit this process's databases are dropped by a short-lived child process: the worker thread
 * that runs the other queries may not answer once the process is exiting.
 */
function dropCreated(): void {
  if (created.size === 0) return;
  const statements = [...created].map((url) => `DROP DATABASE IF EXISTS ${nameOf(url)} WITH (FORCE)`);
  created.clear();
  const script = `const pg = require('pg'); const c = new pg.Client({ connectionString: process.argv[1], connectionTimeoutMillis: 5000 });
    c.connect().then(async () => { for (const s of JSON.parse(process.argv[2])) await c.query(s); await c.end(); }).catch(() => process.exit(1));`;
  // PostgreSQL may be gone already: then the next run drops them (dropLeftoverTestDatabases).
  spawnSync(process.execPath, ['-e', script, adminUrl(), JSON.stringify(statements)], { stdio: 'ignore', timeout: 30_000, cwd: __dirname });
}

/**
 * An empty database for one test (the store migrates it when it opens), as its URL: a recycled
 * one of this process, emptied, or a new one. Throws, never skips, when PostgreSQL is not running.
 */
export function createTestDatabase(): string {
  const reused = recycled.pop();
  if (reused) {
    terminateOthers(nameOf(reused));
    query(reused, 'DROP SCHEMA public CASCADE; CREATE SCHEMA public');
    return reused;
  }
  const name = testDatabaseName();
  if (created.size === 0) {
    dropLeftoverTestDatabases();
    process.once('exit', dropCreated);
  }
  query(adminUrl(), `CREATE DATABASE ${name}`);
  const url = urlOf(name);
  created.add(url);
  return url;
}

/** Hands a test database back once the test is done with it; it is emptied before it is used again, and dropped when the process exits. */
export function dropTestDatabase(url: string): void {
  nameOf(url);
  if (created.has(url) && !recycled.includes(url)) recycled.push(url);
}
