import Database from 'better-sqlite3';
import type { AccessRecord } from '../src/domain/access';
import type { CompanyRecord } from '../src/domain/companies';
import type { UserRecord } from '../src/domain/users';
import { bit, USER_COLUMNS, userValues } from '../src/store/rows';
import { SqliteStore } from '../src/store/sqlite/sqlite-store';

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
 * journal). The schema is the real one — `SqliteStore.open` migrates the file — and the
 * connection is set up as the store sets up its own (WAL, synchronous=FULL, foreign keys on).
 *
 * Resolves with the milliseconds from preparing the statements to the end of the commit.
 */
export async function writeBaseline(path: string, rows: BaselineRows): Promise<number> {
  await SqliteStore.open(path).close();
  const db = new Database(path, { fileMustExist: true });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    const started = process.hrtime.bigint();
    const now = new Date().toISOString();
    const insertUser = db.prepare(`INSERT INTO users (${USER_COLUMNS}, created_at, updated_at) VALUES (${Array(21).fill('?').join(', ')})`);
    const insertCompany = db.prepare(`INSERT INTO companies
        (id, name, country, reg_no, vat_id, type, show, license_group, created_at, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    const insertAccess = db.prepare('INSERT INTO access (user_key, company_id, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)');
    db.transaction(() => {
      for (const u of rows.users) insertUser.run(userValues(u, now));
      for (const c of rows.companies) {
        insertCompany.run(c.id, c.name, c.country, c.regNo, c.vatId, c.type, bit(c.show), c.licenseGroup, now, now);
      }
      for (const a of rows.access) insertAccess.run(a.userKey, a.companyId, a.role, now, now);
    }).immediate();
    return Number(process.hrtime.bigint() - started) / 1e6;
  } finally {
    db.close();
  }
}
