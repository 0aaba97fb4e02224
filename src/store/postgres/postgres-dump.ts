import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JournalRow } from '../sqlite/sqlite-dump';

/**
 * Synchronous test helpers for the PostgreSQL store, with the names and row shapes of
 * sqlite-dump.ts, so one test can compare either store with `toEqual`. They run `psql` (no
 * driver, no event loop): each query is wrapped as `SELECT json_agg(t) FROM (…) t`, so numbers
 * come back as numbers (also BIGINT and count(*)), NULL as null, TEXT as strings.
 */

/** The server the test databases live on; FLEXI_TEST_POSTGRES overrides it (a URL without a database, or with one to connect to for CREATE DATABASE). */
const ADMIN_URL = process.env.FLEXI_TEST_POSTGRES || 'postgres://postgres@127.0.0.1:5432/postgres';

const SERVER = ((): string => {
  try {
    const u = new URL(ADMIN_URL);
    return `${u.hostname}:${u.port || '5432'}`;
  } catch {
    return ADMIN_URL;
  }
})();

const START_HINT =
  `PostgreSQL at ${SERVER} is not reachable, and the PostgreSQL half of the test suite needs it ` +
  '(user postgres, trust authentication). Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start';

class PsqlError extends Error {
  constructor(
    message: string,
    readonly unreachable: boolean,
  ) {
    super(message);
  }
}

/** Runs `sql` (given on stdin, so psql interpolates :'variables') and answers psql's unaligned, tuples-only output. */
function psql(url: string, sql: string, variables: Record<string, string> = {}): string {
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1'];
  for (const [name, value] of Object.entries(variables)) args.push('-v', `${name}=${value}`);
  args.push('-d', url);
  try {
    return execFileSync('psql', args, {
      input: sql,
      encoding: 'utf8',
      maxBuffer: 1024 * 1024 * 1024,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PGCLIENTENCODING: 'UTF8', PGCONNECT_TIMEOUT: '5' },
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; status?: number };
    if (e.code === 'ENOENT') {
      throw new PsqlError('psql, the PostgreSQL client, is not installed, and the PostgreSQL half of the test suite needs it (Debian: apt-get install postgresql-client).', false);
    }
    const stderr = (e.stderr ?? '').trim();
    // psql exits 2 when the connection to the server is bad, 3 when a statement failed.
    const unreachable = e.status === 2 && /connection to server|could not connect|Connection refused|timeout expired/i.test(stderr);
    throw new PsqlError(`psql failed: ${stderr || e.message}`, unreachable);
  }
}

function json<T>(url: string, sql: string, variables?: Record<string, string>): T {
  return JSON.parse(psql(url, sql, variables).trim()) as T;
}

/** The rows of `select`, as JSON objects keyed by column name, in the select's order. */
function rowsOf<T>(url: string, select: string, variables?: Record<string, string>): T[] {
  return json<T[]>(url, `SELECT coalesce(json_agg(t), '[]'::json) FROM (${select}) t;\n`, variables);
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
  return json<Record<string, unknown[]>>(url, `SELECT json_build_object(${parts.join(', ')});\n`);
}

const JOURNAL_ROWS = 'SELECT batch_id, credential, principal, impersonated, acting_user_key, scope, body_sha256, result_xml FROM batch_journal ORDER BY seq';

/** dumpPostgres and journalRows in one query (one psql run instead of two), for tests that check both after every batch. */
export function dumpWithJournal(url: string): { rows: Record<string, unknown[]>; journal: JournalRow[] } {
  const parts = DUMP_TABLES.map(
    ([table, a, b]) => `'${table}', (SELECT coalesce(json_agg(t ORDER BY t.${a}, t.${b}), '[]'::json) FROM ${table} t)`,
  );
  return json(url, `SELECT json_build_object('rows', json_build_object(${parts.join(', ')}),
    'journal', (SELECT coalesce(json_agg(j), '[]'::json) FROM (${JOURNAL_ROWS}) j));\n`);
}

/** Runs SQL statements in one transaction, for tests that build a store as an earlier release left it. */
export function runScript(url: string, sql: string): void {
  psql(url, `BEGIN;\n${sql}\nCOMMIT;\n`);
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
 * Parameters are written `?` (in order, as for SQLite) or `$1`, `$2`…; each becomes a psql
 * variable that psql quotes as a literal (`:'p1'`), numbers are written as numbers, null as NULL.
 * A `?` or `$n` inside a quoted string of `sql` is not told apart: keep literals out of such queries.
 */
export function queryRows(url: string, sql: string, ...params: unknown[]): Array<Record<string, unknown>> {
  const variables: Record<string, string> = {};
  const literal = (index: number): string => {
    if (index < 0 || index >= params.length) throw new Error(`queryRows: the query uses parameter ${index + 1}, but ${params.length} were given`);
    const value = params[index];
    if (value === null || value === undefined) return 'NULL';
    if (typeof value === 'number' || typeof value === 'bigint') {
      if (typeof value === 'number' && !Number.isFinite(value)) throw new Error(`queryRows: parameter ${index + 1} is not a finite number`);
      return String(value);
    }
    if (typeof value === 'boolean') return value ? '1' : '0';
    if (typeof value !== 'string') throw new Error(`queryRows: parameter ${index + 1} must be a string, number, boolean or null`);
    variables[`p${index + 1}`] = value;
    return `:'p${index + 1}'`;
  };
  let next = 0;
  const text = /\$\d/.test(sql) ? sql.replace(/\$(\d+)/g, (_, n: string) => literal(Number(n) - 1)) : sql.replace(/\?/g, () => literal(next++));
  return rowsOf(url, text.trim().replace(/;\s*$/, ''), variables);
}

/** A database name that psql and SQL take as is: flexi_test_<pid>_<random>. */
function testDatabaseName(): string {
  return `flexi_test_${process.pid}_${randomBytes(6).toString('hex')}`;
}

/** The URL of `database` on the server of ADMIN_URL. */
function urlOf(database: string): string {
  const url = new URL(ADMIN_URL);
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
const TERMINATE = (name: string): string =>
  `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '${name}' AND pid <> pg_backend_pid();\n`;

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
  const names = psql(ADMIN_URL, "SELECT datname FROM pg_database WHERE datname LIKE 'flexi\\_test\\_%';\n").split('\n').filter(Boolean);
  for (const name of names) {
    const pid = Number(/^flexi_test_(\d+)_/.exec(name)?.[1]);
    if (!pid) continue;
    const ours = parent !== undefined && (pid === parent || parentOf(pid) === parent);
    if (ours || (pid !== process.pid && !isAlive(pid))) {
      psql(ADMIN_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE);\n`);
    }
  }
}

function dropCreated(): void {
  for (const url of created) {
    try {
      psql(ADMIN_URL, `DROP DATABASE IF EXISTS ${nameOf(url)} WITH (FORCE);\n`);
    } catch {
      // PostgreSQL went away before the process: the next run drops them (dropLeftoverTestDatabases).
    }
  }
  created.clear();
}

/**
 * An empty database for one test (the store migrates it when it opens), as its URL: a recycled
 * one of this process, emptied, or a new one. Throws, never skips, when PostgreSQL is not running.
 */
export function createTestDatabase(): string {
  const reused = recycled.pop();
  if (reused) {
    psql(ADMIN_URL, TERMINATE(nameOf(reused)));
    psql(reused, 'DROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\n');
    return reused;
  }
  const name = testDatabaseName();
  try {
    if (created.size === 0) {
      dropLeftoverTestDatabases();
      process.once('exit', dropCreated);
    }
    psql(ADMIN_URL, `CREATE DATABASE ${name};\n`);
  } catch (err) {
    if (err instanceof PsqlError && err.unreachable) throw new Error(`${START_HINT}\n(${err.message})`);
    throw err;
  }
  const url = urlOf(name);
  created.add(url);
  return url;
}

/** Hands a test database back once the test is done with it; it is emptied before it is used again, and dropped when the process exits. */
export function dropTestDatabase(url: string): void {
  nameOf(url);
  if (created.has(url) && !recycled.includes(url)) recycled.push(url);
}
