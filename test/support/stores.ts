import { join } from 'node:path';
import { isPostgresUrl } from '../../src/store/open-store';
import type { Page } from '../../src/store/store';
import * as postgres from './postgres-dump';
import * as sqlite from './sqlite-dump';

export type StoreKind = 'sqlite' | 'postgres';

/**
 * The store the integration suite runs on in this jest project: jest.config.js runs
 * test/integration twice, once per store, and sets the global FLEXI_TEST_STORE for each
 * (the environment variable of that name does it for a run outside those projects).
 */
export const STORE_KIND: StoreKind =
  ((globalThis as { FLEXI_TEST_STORE?: string }).FLEXI_TEST_STORE ?? process.env.FLEXI_TEST_STORE) === 'postgres' ? 'postgres' : 'sqlite';

/**
 * A new, empty store for one test: a SQLite file `name` in `dir`, or a fresh database on the
 * local PostgreSQL (which throws, never skips, when PostgreSQL cannot be reached).
 */
export function newTestDb(dir: string, name = 'flexi-admin.db'): string {
  return STORE_KIND === 'postgres' ? postgres.createTestDatabase() : join(dir, name);
}

/** Removes a store made by newTestDb; a SQLite file goes with its folder. */
export function dropTestDb(db: string): void {
  if (isPostgresUrl(db)) postgres.dropTestDatabase(db);
}

const on = <T>(db: string, ofSqlite: (path: string) => T, ofPostgres: (url: string) => T): T => (isPostgresUrl(db) ? ofPostgres(db) : ofSqlite(db));

/** Every row of the entity tables, in the same shape for both stores. */
export const dumpStore = (db: string): Record<string, unknown[]> => on(db, sqlite.dumpSqlite, postgres.dumpPostgres);
export const journalSummary = (db: string): Array<{ batch_id: string; body_sha256: string }> => on(db, sqlite.journalSummary, postgres.journalSummary);
export const journalRows = (db: string): sqlite.JournalRow[] => on(db, sqlite.journalRows, postgres.journalRows);
/** dumpStore and journalRows at once (on PostgreSQL one query instead of two). */
export const dumpWithJournal = (db: string): { rows: Record<string, unknown[]>; journal: sqlite.JournalRow[] } =>
  on(db, (path) => ({ rows: sqlite.dumpSqlite(path), journal: sqlite.journalRows(path) }), postgres.dumpWithJournal);
export const sessionRows = (db: string): ReturnType<typeof sqlite.sessionRows> => on(db, sqlite.sessionRows, postgres.sessionRows);
/** Statements that must mean the same on SQLite and PostgreSQL, for a store as an earlier release left it. */
export const runScript = (db: string, sql: string): void => on(db, (path) => sqlite.runScript(path, sql), (url) => postgres.runScript(url, sql));
/** Parameters are written `?`; the SQL must mean the same on SQLite and PostgreSQL. */
export const queryRows = (db: string, sql: string, ...params: unknown[]): Array<Record<string, unknown>> =>
  on(db, (path) => sqlite.queryRows(path, sql, ...params), (url) => postgres.queryRows(url, sql, ...params));

/**
 * "ok" when the store is consistent: SQLite's own integrity check; on PostgreSQL (which keeps
 * its pages consistent itself) no row refers to a user or company that does not exist.
 */
export const integrityCheck = (db: string): string =>
  on(db, sqlite.integrityCheck, (url) => {
    const orphans = postgres.queryRows(
      url,
      `SELECT (SELECT count(*) FROM access a WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.key = a.user_key)
                                            OR NOT EXISTS (SELECT 1 FROM companies c WHERE c.id = a.company_id))
            + (SELECT count(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.key = s.user_key)) AS n`,
    )[0].n;
    return Number(orphans) === 0 ? 'ok' : `${String(orphans)} rows refer to a missing user or company`;
  });

/**
 * A dump without the bookkeeping timestamps of these companies (deleted and created again) and
 * of their grants: a re-send that re-creates them gives new times, and only those may differ.
 */
export function withoutTimestampsOf(dump: Record<string, unknown[]>, recreated: ReadonlySet<string>): Record<string, unknown[]> {
  const strip = (rows: unknown[], idColumn: string): unknown[] =>
    rows.map((row) => {
      const r = row as Record<string, unknown>;
      if (!recreated.has(r[idColumn] as string)) return r;
      const { created_at: _c, updated_at: _u, ...rest } = r;
      return rest;
    });
  return { ...dump, companies: strip(dump.companies, 'id'), access: strip(dump.access, 'company_id') };
}

/** A page that holds every row of a listing, for tests that read the store directly. */
export const ALL: Page = { limit: 1_000_000, start: 0 };
