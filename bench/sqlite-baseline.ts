import Database from 'better-sqlite3';
import type { AccessRecord } from '../src/domain/access';
import type { CompanyRecord } from '../src/domain/companies';
import type { UserRecord } from '../src/domain/users';
import { ACCESS, COMPANIES, USERS } from '../src/store/schema';
import { insertStatement } from '../src/store/sql';
import { SqliteDriver } from '../src/store/sqlite/sqlite-driver';

/** The rows a batch leaves in the store: users, companies and access grants. */
export interface BaselineRows {
  users: readonly UserRecord[];
  companies: readonly CompanyRecord[];
  access: readonly AccessRecord[];
}

/**
 * The floor the batch benchmark (`npm run bench`, phase E) compares the server with: the same
 * rows written straight into a fresh store file with better-sqlite3 prepared statements, plain
 * INSERTs in one transaction, nothing else (no HTTP, no XML, no snapshot, no planning, no
 * journal). The schema is the real one — `SqliteDriver.open` migrates the file — and the
 * connection is set up as the store sets up its own (WAL, synchronous=FULL, foreign keys on).
 *
 * Resolves with the milliseconds from preparing the statements to the end of the commit.
 */
export async function writeBaseline(path: string, rows: BaselineRows): Promise<number> {
  await SqliteDriver.open(path).close();
  const db = new Database(path, { fileMustExist: true });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    const started = process.hrtime.bigint();
    const now = new Date().toISOString();
    const insertUser = db.prepare(insertStatement(USERS, false));
    const insertCompany = db.prepare(insertStatement(COMPANIES, false));
    const insertAccess = db.prepare(insertStatement(ACCESS, false));
    db.transaction(() => {
      for (const u of rows.users) insertUser.run(USERS.values(u, now));
      for (const c of rows.companies) insertCompany.run(COMPANIES.values(c, now));
      for (const a of rows.access) insertAccess.run(ACCESS.values(a, now));
    }).immediate();
    return Number(process.hrtime.bigint() - started) / 1e6;
  } finally {
    db.close();
  }
}
