import type { Snapshot, SnapshotRequest } from '../domain/changes';
import type { AccessRecord } from '../domain/access';
import type { CompanyRecord } from '../domain/companies';
import type { RoleCode } from '../domain/roles';
import { userKey, type UserRecord } from '../domain/users';
import { ACCESS, COMPANIES, FINGERPRINTS, JOURNAL, SESSIONS, USERS, type FingerprintRecord, type JournalEntry, type Row } from './schema';
import { inList, type Driver, type Sql } from './sql';
import type { BatchTransaction, Store, StoredChangeSet, UserView } from './store';

/** The subtree of a license group (the first parameter). */
const SCOPE = `WITH RECURSIVE scope(id) AS (
    SELECT id FROM license_groups WHERE id = ?
    UNION ALL SELECT g.id FROM license_groups g JOIN scope s ON g.parent_id = s.id)`;

const IN_SCOPE = (column: string): string => `${column} IN (SELECT id FROM scope)`;

const USER_COLUMNS = USERS.columnNames.filter((c) => c !== 'created_at' && c !== 'updated_at').join(', ');

/**
 * No stored text holds U+0000: PostgreSQL's text cannot, and every text comes from a batch, which
 * XML cannot make carry it. A name with it (from a decoded path, a JSON login) names nothing, and
 * is not sent to PostgreSQL, which would refuse the statement (a 500 where SQLite finds nothing).
 */
const namesNothing = (...texts: string[]): boolean => texts.some((t) => t.includes('\u0000'));

/** A user as listings show it: never the password hash. */
function toView(u: UserRecord, access: UserView['access']): UserView {
  const { key: _key, passwordHash: _hash, ...rest } = u;
  return { ...rest, access };
}

function groupAccess(rows: Row[]): Map<string, UserView['access']> {
  const map = new Map<string, UserView['access']>();
  for (const r of rows) {
    let list = map.get(r.user_key as string);
    if (!list) map.set(r.user_key as string, (list = []));
    list.push({ company: r.company_id as string, role: r.role as RoleCode });
  }
  return map;
}

/**
 * The one implementation of the Store for both databases: every statement is written once, in
 * SQL both SQLite and PostgreSQL take, over a Driver (sql.ts) that runs it where it belongs.
 */
export class SqlStore implements Store {
  readonly kind: 'sqlite' | 'postgres';
  private readonly sql: ReturnType<typeof statements>;

  constructor(private readonly driver: Driver) {
    this.kind = driver.kind;
    this.sql = statements(driver);
  }

  inBatch<T>(work: (tx: BatchTransaction) => Promise<T>, options: { claim?: string } = {}): Promise<T> {
    return this.driver.batch((sql) => work(this.batchTransaction(sql)), options);
  }

  private batchTransaction(sql: Sql): BatchTransaction {
    const { dialect } = this.driver;
    const q = this.sql;
    return {
      loadSnapshot: async (request: SnapshotRequest, scope: string): Promise<Snapshot> => {
        const users = (await sql.all(q.snapshotUsers, [scope, dialect.list(request.userKeys)])).map(USERS.fromRow);
        const companies = new Map<string, CompanyRecord>();
        if (request.companyIds.length) {
          for (const r of await sql.all(q.snapshotCompanies, [scope, dialect.list(request.companyIds)])) companies.set(r.id as string, COMPANIES.fromRow(r));
        }
        if (request.companyIdPrefixes.length) {
          for (const r of await sql.all(q.snapshotCompaniesByPrefix, [scope, dialect.list(request.companyIdPrefixes)])) {
            if (!companies.has(r.id as string)) companies.set(r.id as string, COMPANIES.fromRow(r));
          }
        }
        const access = users.length ? (await sql.all(q.snapshotAccess, [dialect.list(users.map((u) => u.key))])).map(ACCESS.fromRow) : [];
        return { users, companies: [...companies.values()], access };
      },
      // The order matters: deleted companies take their grants along (ON DELETE CASCADE) before a
      // company of the same id may be created again, and users exist before their grants.
      apply: async (changes: StoredChangeSet): Promise<void> => {
        const now = new Date().toISOString();
        if (changes.deletedCompanies.length) await sql.run(q.deleteCompanies, [dialect.list(changes.deletedCompanies)]);
        await sql.insert(USERS, changes.users.map((u) => USERS.values(u, now)), { upsert: true });
        // Deleting or blocking a user ends its sessions, so a later restore or unblock does not revive them.
        const ended = changes.users.filter((u) => u.deleted || u.blocked).map((u) => u.key);
        if (ended.length) await sql.run(q.endSessionsOf, [dialect.list(ended)]);
        await sql.insert(COMPANIES, changes.companies.map((c) => COMPANIES.values(c, now)), { upsert: true });
        await sql.deleteKeys(ACCESS, changes.revokedAccess.map((a) => [a.userKey, a.companyId]));
        await sql.insert(ACCESS, changes.grantedAccess.map((a: AccessRecord) => ACCESS.values(a, now)), { upsert: true });
      },
      journal: async (entry: JournalEntry): Promise<void> => {
        await sql.insert(JOURNAL, [JOURNAL.values(entry)]);
      },
    };
  }

  listUsers(scope: string): Promise<UserView[]> {
    return this.driver.read(async (sql) => {
      const users = await sql.all(this.sql.listUsers, [scope]);
      const access = groupAccess(await sql.all(this.sql.accessInScope, [scope]));
      return users.map((r) => toView(USERS.fromRow(r), access.get(r.key as string) ?? []));
    });
  }

  findUser(scope: string, username: string): Promise<UserView | undefined> {
    if (namesNothing(scope, username)) return Promise.resolve(undefined);
    return this.driver.read(async (sql) => {
      const row = await sql.get(this.sql.findUser, [scope, userKey(username)]);
      if (!row) return undefined;
      const access = groupAccess(await sql.all(this.sql.accessOfUserInScope, [scope, row.key]));
      return toView(USERS.fromRow(row), access.get(row.key as string) ?? []);
    });
  }

  async listCompanies(scope: string, options: { includeHidden: boolean }): Promise<CompanyRecord[]> {
    return (await this.driver.query.all(this.sql.listCompanies, [scope, options.includeHidden ? 1 : 0])).map(COMPANIES.fromRow);
  }

  async findLatestJournal(scope: string, batchId: string, options: { sentBy?: string } = {}): Promise<JournalEntry | undefined> {
    if (namesNothing(scope, batchId)) return undefined;
    // Two statements rather than "? IS NULL OR …", so each one uses its index.
    const row =
      options.sentBy === undefined
        ? await this.driver.query.get(this.sql.latestJournal, [scope, batchId])
        : await this.driver.query.get(this.sql.latestJournalSentBy, [scope, batchId, options.sentBy]);
    return row ? JOURNAL.fromRow(row) : undefined;
  }

  async groupExists(group: string): Promise<boolean> {
    if (namesNothing(group)) return false;
    return (await this.driver.query.get('SELECT 1 AS found FROM license_groups WHERE id = ?', [group])) !== undefined;
  }

  async findUserRecord(scope: string, username: string): Promise<UserRecord | undefined> {
    if (namesNothing(scope, username)) return undefined;
    const row = await this.driver.query.get(this.sql.findUserRecord, [scope, userKey(username)]);
    return row ? USERS.fromRow(row) : undefined;
  }

  upgradePasswordHash(userKey: string, from: string, to: string): Promise<boolean> {
    return this.driver.write(async (sql) => (await sql.run('UPDATE users SET password_hash = ? WHERE key = ? AND password_hash = ?', [to, userKey, from])) === 1);
  }

  async costliestPbkdf2Iterations(): Promise<number> {
    // The iteration counts in use are few: each distinct count is read once ("pbkdf2:" + up to eight
    // characters + ':') and the largest taken here, so a malformed count neither fails a cast nor overflows.
    const rows = await this.driver.query.all(this.sql.pbkdf2Counts);
    let most = 0;
    for (const { n } of rows) if (typeof n === 'string' && /^[0-9]{1,8}$/.test(n)) most = Math.max(most, Number(n));
    return most;
  }

  /** Also removes the sessions that have been idle longer than `idleMs`, so the table holds only live ones and those idle since the last login. */
  createSession(session: { idHash: string; userKey: string; now: number; idleMs?: number }): Promise<void> {
    return this.driver.write(async (sql) => {
      if (session.idleMs !== undefined) await sql.run('DELETE FROM sessions WHERE last_used_at < ?', [session.now - session.idleMs]);
      await sql.insert(SESSIONS, [SESSIONS.values({ idHash: session.idHash, userKey: session.userKey, createdAt: session.now, lastUsedAt: session.now })]);
    });
  }

  /** A session idle longer than `idleMs` is not found (and is removed at the next login). */
  useSession(idHash: string, now: number, idleMs: number): Promise<UserRecord | undefined> {
    return this.driver.write(async (sql) => {
      const used = await sql.get('UPDATE sessions SET last_used_at = ? WHERE id_hash = ? AND last_used_at >= ? RETURNING user_key', [now, idHash, now - idleMs]);
      if (!used) return undefined;
      const row = await sql.get(`SELECT ${USER_COLUMNS} FROM users WHERE key = ?`, [used.user_key]);
      return row ? USERS.fromRow(row) : undefined;
    });
  }

  deleteSession(idHash: string, now: number, idleMs: number): Promise<boolean> {
    return this.driver.write(async (sql) => (await sql.run('DELETE FROM sessions WHERE id_hash = ? AND last_used_at >= ?', [idHash, now - idleMs])) === 1);
  }

  addFingerprint(record: Pick<FingerprintRecord, 'fingerprint' | 'scope' | 'label'>): Promise<'added' | 'updated'> {
    return this.driver.write(async (sql) => {
      const existed = (await sql.get('SELECT 1 AS found FROM fingerprints WHERE fingerprint = ?', [record.fingerprint])) !== undefined;
      if (existed) {
        await sql.run('UPDATE fingerprints SET scope = ?, label = ?, revoked_at = NULL WHERE fingerprint = ?', [record.scope, record.label, record.fingerprint]);
      } else {
        await sql.insert(FINGERPRINTS, [FINGERPRINTS.values({ ...record, createdAt: new Date().toISOString(), revokedAt: null })]);
      }
      return existed ? 'updated' : 'added';
    });
  }

  addFingerprintIfUnknown(record: Pick<FingerprintRecord, 'fingerprint' | 'scope' | 'label'>): Promise<boolean> {
    return this.driver.write(
      async (sql) =>
        (await sql.run('INSERT INTO fingerprints (fingerprint, scope, label, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (fingerprint) DO NOTHING', [
          record.fingerprint,
          record.scope,
          record.label,
          new Date().toISOString(),
        ])) === 1,
    );
  }

  async listFingerprints(): Promise<FingerprintRecord[]> {
    return (await this.driver.query.all('SELECT * FROM fingerprints ORDER BY created_at, fingerprint')).map(FINGERPRINTS.fromRow);
  }

  revokeFingerprint(fingerprint: string): Promise<boolean> {
    return this.driver.write(
      async (sql) => (await sql.run('UPDATE fingerprints SET revoked_at = ? WHERE fingerprint = ? AND revoked_at IS NULL', [new Date().toISOString(), fingerprint])) === 1,
    );
  }

  async findActiveFingerprint(fingerprint: string): Promise<FingerprintRecord | undefined> {
    const row = await this.driver.query.get('SELECT * FROM fingerprints WHERE fingerprint = ? AND revoked_at IS NULL', [fingerprint]);
    return row ? FINGERPRINTS.fromRow(row) : undefined;
  }

  ping(): Promise<void> {
    return this.driver.ping();
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}

/** Every statement of the store, spelled once for the driver's dialect when the store opens. */
function statements({ dialect }: Driver) {
  return {
    snapshotUsers: `${SCOPE} SELECT ${USER_COLUMNS} FROM users WHERE ${inList(dialect, 'key')} AND ${IN_SCOPE('license_group')}`,
    snapshotCompanies: `${SCOPE} SELECT * FROM companies WHERE ${inList(dialect, 'id')} AND ${IN_SCOPE('license_group')}`,
    // Company ids use [a-z0-9_] only, all below '{', so [prefix, prefix || '{') is "starts with" (in
    // byte order on both stores), and each range is an index scan.
    snapshotCompaniesByPrefix: `${SCOPE} SELECT c.* FROM ${dialect.values('p')} JOIN companies c ON c.id >= p.value AND c.id < p.value || '{'
      WHERE ${IN_SCOPE('c.license_group')} ORDER BY c.id`,
    snapshotAccess: `SELECT user_key, company_id, role FROM access WHERE ${inList(dialect, 'user_key')}`,
    deleteCompanies: `DELETE FROM companies WHERE ${inList(dialect, 'id')}`,
    endSessionsOf: `DELETE FROM sessions WHERE ${inList(dialect, 'user_key')}`,
    listUsers: `${SCOPE} SELECT ${USER_COLUMNS} FROM users WHERE deleted = 0 AND ${IN_SCOPE('license_group')} ORDER BY key`,
    findUser: `${SCOPE} SELECT ${USER_COLUMNS} FROM users WHERE key = ? AND deleted = 0 AND ${IN_SCOPE('license_group')}`,
    findUserRecord: `${SCOPE} SELECT ${USER_COLUMNS} FROM users WHERE key = ? AND ${IN_SCOPE('license_group')}`,
    accessInScope: `${SCOPE} SELECT a.user_key, a.company_id, a.role FROM access a JOIN companies c ON c.id = a.company_id
      WHERE ${IN_SCOPE('c.license_group')} ORDER BY a.user_key, a.company_id`,
    accessOfUserInScope: `${SCOPE} SELECT a.user_key, a.company_id, a.role FROM access a JOIN companies c ON c.id = a.company_id
      WHERE ${IN_SCOPE('c.license_group')} AND a.user_key = ? ORDER BY a.company_id`,
    listCompanies: `${SCOPE} SELECT * FROM companies WHERE ${IN_SCOPE('license_group')} AND (show = 1 OR ? = 1) ORDER BY id`,
    latestJournal: `${SCOPE} SELECT * FROM batch_journal WHERE batch_id = ? AND ${IN_SCOPE('scope')} ORDER BY seq DESC LIMIT 1`,
    pbkdf2Counts: `SELECT DISTINCT CASE ${[1, 2, 3, 4, 5, 6, 7, 8]
      .map((n) => `WHEN substr(password_hash, ${8 + n}, 1) = ':' THEN substr(password_hash, 8, ${n})`)
      .join(' ')} END AS n FROM users WHERE password_hash LIKE 'pbkdf2:%'`,
    latestJournalSentBy: `${SCOPE} SELECT * FROM batch_journal WHERE batch_id = ? AND acting_user_key = ? AND ${IN_SCOPE('scope')} ORDER BY seq DESC LIMIT 1`,
  };
}
