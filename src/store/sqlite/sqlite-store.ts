import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Snapshot, SnapshotRequest } from '../../batch/plan';
import type { AccessRecord } from '../../domain/access';
import type { CompanyRecord } from '../../domain/companies';
import type { RoleCode } from '../../domain/roles';
import { userKey, type UserRecord } from '../../domain/users';
import { FlexiError } from '../../errors';
import { SerialQueue } from '../../util/serial-queue';
import { toCompany, toFingerprint, toJournal, toUser, toView, USER_COLUMNS, USER_UPSERT_CONFLICT, userColumnsOf, userValues, type Row } from '../rows';
import type { BatchTransaction, FingerprintRecord, JournalEntry, Store, StoredChangeSet, UserView } from '../store';
import { SQLITE_MIGRATIONS } from './migrations';

const UNAVAILABLE = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_CANTOPEN', 'SQLITE_READONLY']);

/** A locked, full or unreadable database is a temporary condition: 503, safe to retry. */
function translate(err: unknown): unknown {
  const code = (err as { code?: string }).code ?? '';
  if ([...UNAVAILABLE].some((c) => code.startsWith(c))) {
    return new FlexiError('store-unavailable', `The store is unavailable right now (${code}); the request was not applied and is safe to retry.`, { 'Retry-After': '1' });
  }
  return err;
}

/** The subtree of a license group, as a JSON array for json_each(). */
const SCOPE_CTE = `WITH RECURSIVE scope(id) AS (
    SELECT id FROM license_groups WHERE id = @scope
    UNION ALL SELECT g.id FROM license_groups g JOIN scope s ON g.parent_id = s.id)`;

const BUSY_TIMEOUT_MS = 5000;
/** At most this many batches share one commit, so a steady stream still gets answers. */
const MAX_GROUP = 64;

interface BatchJob {
  work: (tx: BatchTransaction) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/**
 * One writer connection (batches, serialised in-process by a queue and across processes by
 * BEGIN IMMEDIATE) and one reader connection, so listings never see a batch half-way.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly queue = new SerialQueue();
  /** Batches waiting for the next group commit, in arrival order. */
  private readonly waiting: BatchJob[] = [];
  private committing = false;
  private readonly reader: Database.Database;

  private constructor(private readonly writer: Database.Database, path: string) {
    this.reader = new Database(path, { fileMustExist: true });
    this.reader.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  }

  static open(path: string): SqliteStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(path);
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      migrate(db);
    } catch (err) {
      throw translate(err);
    }
    return new SqliteStore(db, path);
  }

  inBatch<T>(work: (tx: BatchTransaction) => Promise<T>, _options?: { claim?: string }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ work, resolve: resolve as (value: unknown) => void, reject });
      // Started after the I/O callbacks of this turn of the event loop, so that the other
      // requests that have already arrived can join the group.
      if (this.waiting.length === 1 && !this.committing) setImmediate(() => void this.queue.run(() => this.commitGroup()));
    });
  }

  /**
   * Group commit. A durable commit waits for the disk (an fsync of the WAL), and better-sqlite3
   * waits on the event loop's thread, so one commit per batch caps small batches at the disk's
   * fsync rate however many clients wait. Batches that are waiting when a transaction starts, or
   * that arrive while it runs, share it: each in its own savepoint, in arrival order (which is
   * their serial order and their journal order), each all-or-nothing. None is answered before
   * the one COMMIT that makes all of them durable; if that fails, all of them fail with 503 and
   * nothing of any is kept, so each is safe to re-send.
   */
  private async commitGroup(): Promise<void> {
    this.committing = true;
    let done: Array<{ job: BatchJob; value: unknown }> = [];
    const failAll = (err: unknown): void => {
      for (const { job } of done) job.reject(err);
      done = [];
    };
    try {
      let started = 0;
      while (this.waiting.length > 0 && started < MAX_GROUP) {
        const job = this.waiting.shift() as BatchJob;
        started++;
        try {
          if (!this.writer.inTransaction) this.writer.exec('BEGIN IMMEDIATE');
          this.writer.exec('SAVEPOINT batch');
        } catch (err) {
          job.reject(translate(err));
          continue;
        }
        try {
          const value = await job.work(this.transaction());
          this.writer.exec('RELEASE batch');
          done.push({ job, value });
        } catch (err) {
          if (this.writer.inTransaction) {
            this.writer.exec('ROLLBACK TO batch');
            this.writer.exec('RELEASE batch');
          } else {
            // SQLite rolled the whole transaction back (a full disk, say): the batches before it are gone too.
            failAll(translate(err));
          }
          job.reject(translate(err));
        }
      }
      if (this.writer.inTransaction) {
        try {
          this.writer.exec('COMMIT');
        } catch (err) {
          if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
          failAll(translate(err));
        }
      }
      for (const { job, value } of done) job.resolve(value);
    } finally {
      this.committing = false;
      if (this.waiting.length > 0) void this.queue.run(() => this.commitGroup());
    }
  }

  private transaction(): BatchTransaction {
    const db = this.writer;
    return {
      loadSnapshot: async (request: SnapshotRequest, scope: string): Promise<Snapshot> => {
        const groups = JSON.stringify(this.scopeGroups(db, scope));
        const users = (
          this.statement(db, `SELECT ${USER_COLUMNS} FROM users WHERE key IN (SELECT value FROM json_each(?))
                        AND license_group IN (SELECT value FROM json_each(?))`)
            .all(JSON.stringify(request.userKeys), groups) as Row[]
        ).map(toUser);
        const byId = this.statement(db, `SELECT * FROM companies WHERE id IN (SELECT value FROM json_each(?))
                                   AND license_group IN (SELECT value FROM json_each(?))`);
        const byPrefix = this.statement(db, `SELECT * FROM companies WHERE id >= ? AND id < ?
                                       AND license_group IN (SELECT value FROM json_each(?))`);
        const companies = new Map<string, CompanyRecord>();
        for (const r of byId.all(JSON.stringify(request.companyIds), groups) as Row[]) companies.set(r.id as string, toCompany(r));
        for (const prefix of request.companyIdPrefixes) {
          // Company ids use [a-z0-9_] only, all below '{', so [prefix, prefix + '{') is "starts with".
          for (const r of byPrefix.all(prefix, `${prefix}{`, groups) as Row[]) companies.set(r.id as string, toCompany(r));
        }
        const access = (
          this.statement(db, 'SELECT user_key, company_id, role FROM access WHERE user_key IN (SELECT value FROM json_each(?))')
            .all(JSON.stringify(users.map((u) => u.key))) as Row[]
        ).map((r): AccessRecord => ({ userKey: r.user_key as string, companyId: r.company_id as string, role: r.role as RoleCode }));
        return { users, companies: [...companies.values()], access };
      },
      apply: async (changes: StoredChangeSet): Promise<void> => {
        const now = new Date().toISOString();
        const deleteCompany = this.statement(db, 'DELETE FROM companies WHERE id = ?');
        for (const id of changes.deletedCompanies) deleteCompany.run(id);
        const upsertUser = this.statement(db, `INSERT INTO users (${USER_COLUMNS}, created_at, updated_at)
            VALUES (${Array(21).fill('?').join(', ')}) ${USER_UPSERT_CONFLICT}`);
        for (const u of changes.users) upsertUser.run(userValues(u, now));
        // Deleting or blocking a user ends its sessions, so a later restore or unblock does not revive them.
        const endSessions = this.statement(db, 'DELETE FROM sessions WHERE user_key = ?');
        for (const u of changes.users) if (u.deleted || u.blocked) endSessions.run(u.key);
        const upsertCompany = this.statement(db, `INSERT INTO companies
            (id, name, country, reg_no, vat_id, type, show, license_group, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
          ON CONFLICT(id) DO UPDATE SET name = excluded.name, country = excluded.country, reg_no = excluded.reg_no,
            vat_id = excluded.vat_id, type = excluded.type, show = excluded.show,
            license_group = excluded.license_group, updated_at = excluded.updated_at`);
        for (const c of changes.companies) {
          upsertCompany.run(c.id, c.name, c.country, c.regNo, c.vatId, c.type, c.show ? 1 : 0, c.licenseGroup, now, now);
        }
        const revoke = this.statement(db, 'DELETE FROM access WHERE user_key = ? AND company_id = ?');
        for (const a of changes.revokedAccess) revoke.run(a.userKey, a.companyId);
        const grant = this.statement(db, `INSERT INTO access (user_key, company_id, role, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?)
          ON CONFLICT(user_key, company_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at`);
        for (const a of changes.grantedAccess) grant.run(a.userKey, a.companyId, a.role, now, now);
      },
      journal: async (e: JournalEntry): Promise<void> => {
        this.statement(db, `INSERT INTO batch_journal (batch_id, credential, principal, impersonated, acting_user_key, scope,
              received_at, finished_at, body_sha256, result_xml) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
          .run(e.batchId, e.credential, e.principal, e.impersonated, e.actingUser, e.scope, e.receivedAt, e.finishedAt, e.bodySha256, e.resultXml);
      },
    };
  }

  private readonly statements = new WeakMap<Database.Database, Map<string, Database.Statement>>();

  /** Prepared once per connection: preparing costs more than running most of these queries. */
  private statement(db: Database.Database, sql: string): Database.Statement {
    let cache = this.statements.get(db);
    if (!cache) this.statements.set(db, (cache = new Map()));
    let statement = cache.get(sql);
    if (!statement) cache.set(sql, (statement = db.prepare(sql)));
    return statement;
  }

  private scopeGroups(db: Database.Database, scope: string): string[] {
    return (this.statement(db, `${SCOPE_CTE} SELECT id FROM scope`).all({ scope }) as Row[]).map((r) => r.id as string);
  }

  private read<T>(work: (db: Database.Database) => T): Promise<T> {
    try {
      return Promise.resolve(work(this.reader));
    } catch (err) {
      return Promise.reject(translate(err));
    }
  }

  private write<T>(work: (db: Database.Database) => T): Promise<T> {
    return this.queue.run(async () => {
      try {
        return this.writer.transaction(() => work(this.writer)).immediate();
      } catch (err) {
        throw translate(err);
      }
    });
  }

  listUsers(scope: string): Promise<UserView[]> {
    return this.read((db) => {
      const rows = this.statement(db, `${SCOPE_CTE} SELECT ${USER_COLUMNS} FROM users
                  WHERE deleted = 0 AND license_group IN (SELECT id FROM scope) ORDER BY key`)
        .all({ scope }) as Row[];
      const access = this.accessByUser(db, scope);
      return rows.map((r) => toView(toUser(r), access.get(r.key as string) ?? []));
    });
  }

  findUser(scope: string, username: string): Promise<UserView | undefined> {
    return this.read((db) => {
      const row = this.statement(db, `${SCOPE_CTE} SELECT ${USER_COLUMNS} FROM users
                  WHERE key = @key AND deleted = 0 AND license_group IN (SELECT id FROM scope)`)
        .get({ scope, key: userKey(username) }) as Row | undefined;
      if (!row) return undefined;
      return toView(toUser(row), this.accessByUser(db, scope, row.key as string).get(row.key as string) ?? []);
    });
  }

  private accessByUser(db: Database.Database, scope: string, key?: string): Map<string, UserView['access']> {
    const rows = this.statement(db, `${SCOPE_CTE} SELECT a.user_key, a.company_id, a.role FROM access a
                JOIN companies c ON c.id = a.company_id
                WHERE c.license_group IN (SELECT id FROM scope) AND (@key IS NULL OR a.user_key = @key)
                ORDER BY a.company_id`)
      .all({ scope, key: key ?? null }) as Row[];
    const map = new Map<string, UserView['access']>();
    for (const r of rows) {
      const list = map.get(r.user_key as string) ?? [];
      list.push({ company: r.company_id as string, role: r.role as RoleCode });
      map.set(r.user_key as string, list);
    }
    return map;
  }

  listCompanies(scope: string, options: { includeHidden: boolean }): Promise<CompanyRecord[]> {
    return this.read((db) =>
      (
        this.statement(db, `${SCOPE_CTE} SELECT * FROM companies WHERE license_group IN (SELECT id FROM scope)
                    AND (show = 1 OR @hidden = 1) ORDER BY id`)
          .all({ scope, hidden: options.includeHidden ? 1 : 0 }) as Row[]
      ).map(toCompany),
    );
  }

  findLatestJournal(scope: string, batchId: string, options: { sentBy?: string } = {}): Promise<JournalEntry | undefined> {
    return this.read((db) => {
      // Two statements rather than "@sentBy IS NULL OR …", so each one uses its index.
      const row = (
        options.sentBy === undefined
          ? this.statement(db, `${SCOPE_CTE} SELECT * FROM batch_journal WHERE batch_id = @batchId
                  AND scope IN (SELECT id FROM scope) ORDER BY seq DESC LIMIT 1`).get({ scope, batchId })
          : this.statement(db, `${SCOPE_CTE} SELECT * FROM batch_journal WHERE batch_id = @batchId AND acting_user_key = @sentBy
                  AND scope IN (SELECT id FROM scope) ORDER BY seq DESC LIMIT 1`).get({ scope, batchId, sentBy: options.sentBy })
      ) as Row | undefined;
      return row ? toJournal(row) : undefined;
    });
  }

  findUserRecord(scope: string, username: string): Promise<UserRecord | undefined> {
    return this.read((db) => {
      const row = this.statement(db, `${SCOPE_CTE} SELECT ${USER_COLUMNS} FROM users WHERE key = @key AND license_group IN (SELECT id FROM scope)`)
        .get({ scope, key: userKey(username) }) as Row | undefined;
      return row ? toUser(row) : undefined;
    });
  }

  upgradePasswordHash(userKey: string, from: string, to: string): Promise<boolean> {
    return this.write((db) => this.statement(db, 'UPDATE users SET password_hash = ? WHERE key = ? AND password_hash = ?').run(to, userKey, from).changes === 1);
  }

  costliestPbkdf2Iterations(): Promise<number> {
    return this.read((db) => {
      // Up to eight digits only, so that a malformed count can neither fail the cast nor overflow.
      const row = this.statement(db, `SELECT MAX(CAST(n AS INTEGER)) AS n FROM (
            SELECT substr(password_hash, 8, instr(substr(password_hash, 8), ':') - 1) AS n
            FROM users WHERE substr(password_hash, 1, 7) = 'pbkdf2:')
          WHERE length(n) BETWEEN 1 AND 8 AND n NOT GLOB '*[^0-9]*'`).get() as Row;
      return Number(row.n ?? 0);
    });
  }

  createSession(session: { idHash: string; userKey: string; now: number }): Promise<void> {
    return this.write((db) => {
      this.statement(db, 'INSERT INTO sessions (id_hash, user_key, created_at, last_used_at) VALUES (?, ?, ?, ?)').run(
        session.idHash,
        session.userKey,
        session.now,
        session.now,
      );
    });
  }

  /** Sessions idle longer than `idleMs` are gone before any session is looked at. */
  private expireSessions(db: Database.Database, now: number, idleMs: number): void {
    this.statement(db, 'DELETE FROM sessions WHERE last_used_at < ?').run(now - idleMs);
  }

  useSession(idHash: string, now: number, idleMs: number): Promise<UserRecord | undefined> {
    return this.write((db) => {
      this.expireSessions(db, now, idleMs);
      const row = this.statement(db, `SELECT ${userColumnsOf('u')} FROM sessions s JOIN users u ON u.key = s.user_key WHERE s.id_hash = ?`)
        .get(idHash) as Row | undefined;
      if (!row) return undefined;
      this.statement(db, 'UPDATE sessions SET last_used_at = ? WHERE id_hash = ?').run(now, idHash);
      return toUser(row);
    });
  }

  deleteSession(idHash: string, now: number, idleMs: number): Promise<boolean> {
    return this.write((db) => {
      this.expireSessions(db, now, idleMs);
      return this.statement(db, 'DELETE FROM sessions WHERE id_hash = ?').run(idHash).changes === 1;
    });
  }

  groupExists(group: string): Promise<boolean> {
    return this.read((db) => this.statement(db, 'SELECT 1 FROM license_groups WHERE id = ?').get(group) !== undefined);
  }

  addFingerprint(record: Pick<FingerprintRecord, 'fingerprint' | 'scope' | 'label'>): Promise<'added' | 'updated'> {
    return this.write((db) => {
      const existed = this.statement(db, 'SELECT 1 FROM fingerprints WHERE fingerprint = ?').get(record.fingerprint) !== undefined;
      this.statement(db, `INSERT INTO fingerprints (fingerprint, scope, label, created_at, revoked_at) VALUES (?, ?, ?, ?, NULL)
                  ON CONFLICT(fingerprint) DO UPDATE SET scope = excluded.scope, label = excluded.label, revoked_at = NULL`)
        .run(record.fingerprint, record.scope, record.label, new Date().toISOString());
      return existed ? 'updated' : 'added';
    });
  }

  addFingerprintIfUnknown(record: Pick<FingerprintRecord, 'fingerprint' | 'scope' | 'label'>): Promise<boolean> {
    return this.write(
      (db) =>
        this.statement(db, `INSERT INTO fingerprints (fingerprint, scope, label, created_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT(fingerprint) DO NOTHING`)
          .run(record.fingerprint, record.scope, record.label, new Date().toISOString()).changes === 1,
    );
  }

  listFingerprints(): Promise<FingerprintRecord[]> {
    return this.read((db) => (this.statement(db, 'SELECT * FROM fingerprints ORDER BY created_at, fingerprint').all() as Row[]).map(toFingerprint));
  }

  revokeFingerprint(fingerprint: string): Promise<boolean> {
    return this.write(
      (db) =>
        this.statement(db, 'UPDATE fingerprints SET revoked_at = ? WHERE fingerprint = ? AND revoked_at IS NULL')
          .run(new Date().toISOString(), fingerprint).changes === 1,
    );
  }

  findActiveFingerprint(fingerprint: string): Promise<FingerprintRecord | undefined> {
    return this.read((db) => {
      const row = this.statement(db, 'SELECT * FROM fingerprints WHERE fingerprint = ? AND revoked_at IS NULL').get(fingerprint) as Row | undefined;
      return row ? toFingerprint(row) : undefined;
    });
  }

  ping(): Promise<void> {
    return this.read((db) => {
      this.statement(db, 'SELECT 1 FROM license_groups LIMIT 1').get();
    });
  }

  async close(): Promise<void> {
    // A group commit may queue the next group behind it: wait until no batch is left.
    do await this.queue.run(async () => undefined);
    while (this.waiting.length > 0 || this.committing);
    this.reader.close();
    this.writer.close();
  }
}

function migrate(db: Database.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
  const isApplied = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?');
  for (const m of SQLITE_MIGRATIONS) {
    // Checked inside the write transaction: a CLI and a server may open the same file at once.
    db.transaction(() => {
      if (isApplied.get(m.version)) return;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, new Date().toISOString());
    }).immediate();
  }
}

/** Applied migration count, for `flexi-admin migrate`. */
export function sqliteSchemaVersion(path: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as Row).v as number;
  } finally {
    db.close();
  }
}
