import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Snapshot, SnapshotRequest } from '../../batch/plan';
import type { AccessRecord } from '../../domain/access';
import type { CompanyRecord } from '../../domain/companies';
import type { RoleCode } from '../../domain/roles';
import { userKey, type UserRecord } from '../../domain/users';
import { FlexiError } from '../../errors';
import { bit, toCompany, toFingerprint, toJournal, toUser, toView, USER_COLUMNS, USER_UPSERT_CONFLICT, userColumnsOf, userValues, type Row } from '../rows';
import type { BatchTransaction, FingerprintRecord, JournalEntry, Store, StoredChangeSet, UserView } from '../store';
import { POSTGRES_MIGRATIONS } from './migrations';

// ---------------------------------------------------------------------------------------------
// Errors

/** Socket-level errors: the server cannot be reached, or the connection went away. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

/**
 * SQLSTATEs that mean "not now, try again": admin/crash shutdown, "cannot connect now" and a
 * database dropped under us (57P01-57P04), too many connections and other insufficient resources
 * (class 53), system I/O errors (class 58), a read-only standby (25006), a session ended by the
 * server's idle-in-transaction timeout (25P03), a lock or serialization
 * conflict that the global batch lock should prevent anyway (55P03, 40001, 40P01), and - once the
 * store is open - a new connection refused for its login or database (class 28, 3D000; at open
 * these are configuration errors, see openError). Class 08 (connection exception) too.
 */
const RETRYABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '57P04', '25006', '25P03', '55P03', '40001', '40P01', '3D000']);
const RETRYABLE_CLASSES = ['08', '28', '53', '58'];

/** Messages of node-postgres for a connection that is gone or never came (they carry no code). */
const CONNECTION_MESSAGES = /connection terminated|timeout exceeded when trying to connect|connection error|not queryable|connection closed|terminating connection|Query read timeout/i;

function errorCode(err: unknown): string {
  if (typeof err !== 'object' || err === null) return '';
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code) return code;
  // Node reports a failed multi-address connect (localhost → ::1 and 127.0.0.1) as an AggregateError.
  const inner = (err as { errors?: unknown }).errors;
  return Array.isArray(inner) && inner.length ? errorCode(inner[0]) : '';
}

/** Why a connection-level failure happened, in a few words, or undefined for any other error. */
function unavailableReason(err: unknown): string | undefined {
  if (err instanceof FlexiError) return undefined;
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (NETWORK_CODES.has(code) || RETRYABLE_SQLSTATES.has(code) || RETRYABLE_CLASSES.some((c) => code.startsWith(c) && code.length === 5)) return code;
  if (CONNECTION_MESSAGES.test(message)) return message.split('\n')[0].replace(/[.]+$/, '').slice(0, 120);
  return undefined;
}

function unavailable(reason: string): FlexiError {
  return new FlexiError('store-unavailable', `The store is unavailable right now (${reason}); the request was not applied and is safe to retry.`, {
    'Retry-After': '1',
  });
}

/** A lost connection or a temporary server condition is 503, safe to retry; anything else is passed on. */
function translate(err: unknown): unknown {
  const reason = unavailableReason(err);
  return reason === undefined ? err : unavailable(reason);
}

/** Whether a client must be thrown away rather than returned to the pool. */
function isBroken(err: unknown): boolean {
  return unavailableReason(err) !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Locks

/** The first 8 bytes of SHA-256(text) as a signed 64-bit integer, in decimal (for an int8 parameter). */
function int64Of(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest().readBigInt64BE(0).toString();
}

/**
 * The one lock every batch transaction takes (pg_advisory_xact_lock(bigint)): batches run one at
 * a time across all processes sharing the database, so the result equals a serial order.
 */
const BATCH_LOCK = int64Of('flexi-admin:batch');
/** Held (session-level) while one process migrates, so two processes starting at once do not race. */
const MIGRATION_LOCK = int64Of('flexi-admin:migrate');

/**
 * The key of a batch claim in the two-int4 advisory lock space, which PostgreSQL keeps apart from
 * the one-bigint space of the locks above (pg_locks.objsubid 2 vs 1), so a claim never collides
 * with them whatever the hash.
 */
function claimKey(claim: string): [number, number] {
  const digest = createHash('sha256').update(`flexi-admin:claim\u0000${claim}`, 'utf8').digest();
  return [digest.readInt32BE(0), digest.readInt32BE(4)];
}

// ---------------------------------------------------------------------------------------------

/** The subtree of a license group; `$1` is the scope. */
const SCOPE_CTE = `WITH RECURSIVE scope(id) AS (
    SELECT id FROM license_groups WHERE id = $1
    UNION ALL SELECT g.id FROM license_groups g JOIN scope s ON g.parent_id = s.id)`;

/** Rows per bulk statement. unnest() takes one array parameter per column, so this bounds message size only. */
const CHUNK = 5000;

function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** BIGINT (oid 20) as a JS number, for this store's pool only; every other type as node-postgres reads it. */
const TYPES = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === pg.types.builtins.INT8 && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** Waiting for a connection (or for one to open) longer than this answers 503 rather than hanging. */
const CONNECT_TIMEOUT_MS = 5000;

/** Admits at most `limit` tasks at a time, the others wait in order. */
class Gate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

export interface PostgresStoreOptions {
  /** Connections per process (default 10). */
  poolSize?: number;
}

/** "host:port/database" of a postgres:// URL, without credentials, for messages. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return 'the configured PostgreSQL URL';
  }
}

/**
 * A URL without a user name connects as PGUSER, else as `postgres` (node-postgres would take the
 * login name from USER, which services often do not have, and a role of that name seldom exists).
 */
export function withDefaultUser(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  if (parsed.username || !parsed.host) return url;
  parsed.username = encodeURIComponent(process.env.PGUSER || 'postgres');
  return parsed.toString();
}

/**
 * The shared store for several server processes. Each batch runs in one transaction on one pooled
 * connection under a global advisory lock (pg_advisory_xact_lock), so batches of all processes are
 * serialised; reads are single statements on the pool and see committed batches only.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  /** Batches waiting for the global lock each hold a connection; one is always left for reads. */
  private readonly batches: Gate;
  /** Settles when the batch that arrived last has finished. */
  private lastTurn: Promise<void> = Promise.resolve();
  private readonly running = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    poolSize: number,
  ) {
    this.batches = new Gate(Math.max(1, poolSize - 1));
  }

  /** Connects, applies pending migrations, and answers a clear error when the database cannot be used. */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const poolSize = options.poolSize ?? 10;
    const pool = new pg.Pool({
      connectionString: withDefaultUser(url),
      max: poolSize,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 30_000,
      types: TYPES,
      application_name: 'flexi-admin',
      // A server-side session whose client vanished without a FIN (a killed VM, a cut network) would
      // keep its transaction, and with it the batch lock, until TCP gives up (hours by default).
      // Keepalives notice it within about a minute (ignored on Unix sockets). Set once per new
      // connection before the pool hands it out; a server that refuses them works without.
      onConnect: async (client: pg.ClientBase) => {
        await client.query('SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3').catch(() => undefined);
      },
    });
    // An idle connection that breaks (server restart, network cut) is dropped by the pool; the
    // next query opens a new one. Without a listener the 'error' event would end the process.
    pool.on('error', () => undefined);
    try {
      await migrate(pool);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw openError(err, url);
    }
    return new PostgresStore(pool, poolSize);
  }

  inBatch<T>(work: (tx: BatchTransaction) => Promise<T>, options: { claim?: string } = {}): Promise<T> {
    if (this.closing) return Promise.reject(unavailable('the store is closing'));
    // This process's batches take the batch lock in the order they arrived, as on SQLite: each
    // waits for the one before it (after its claim, so a copy sent to another process still
    // meets the claim). Connections are handed out in the same order, so no batch waits for
    // one that has none.
    const before = this.lastTurn;
    let done: () => void = () => undefined;
    this.lastTurn = new Promise<void>((resolve) => (done = resolve));
    const run = this.batches.run(() => this.transaction(work, options.claim, before));
    run.then(done, done);
    this.running.add(run);
    const forget = (): void => void this.running.delete(run);
    run.then(forget, forget);
    return run;
  }

  private async transaction<T>(work: (tx: BatchTransaction) => Promise<T>, claim: string | undefined, turn: Promise<void>): Promise<T> {
    const client = await this.checkout();
    let broken: unknown;
    // A checked-out client has no pool listener: a connection lost between two queries must not crash the process.
    const onError = (err: unknown): void => void (broken ??= err);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      if (claim !== undefined) {
        // Before waiting for the batch lock: an identical batch queued or running in another process holds it.
        const [a, b] = claimKey(claim);
        const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1::int4, $2::int4) AS ok', [a, b]);
        if (!rows[0].ok) {
          throw new FlexiError('conflict', 'The same batch is being executed by another process right now; retry shortly for its result.', {
            'Retry-After': '1',
          });
        }
      }
      await turn;
      await client.query('SELECT pg_advisory_xact_lock($1::int8)', [BATCH_LOCK]);
      const result = await work(this.batchTransaction(client));
      try {
        await client.query('COMMIT');
      } catch (err) {
        const reason = unavailableReason(err);
        if (reason === undefined) throw err;
        broken ??= err;
        // The COMMIT may have reached the database before the connection went: whether the batch
        // is kept cannot be known here, so the answer says so. Re-sending is safe either way.
        throw new FlexiError(
          'store-unavailable',
          `The store became unavailable while the batch was being committed (${reason}); it may or may not have been applied. Send it again: what was applied answers SKIPPED.`,
          { 'Retry-After': '1' },
        );
      }
      return result;
    } catch (err) {
      if (isBroken(err)) broken ??= err;
      if (!broken) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          broken = rollbackError;
        }
      }
      throw translate(err);
    } finally {
      client.off('error', onError);
      // A broken connection is destroyed (release(err)), its transaction and locks die with it.
      client.release(broken ? (broken instanceof Error ? broken : new Error(String(broken))) : undefined);
    }
  }

  private async checkout(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw translate(err);
    }
  }

  private async query(sql: string, params: unknown[] = []): Promise<Row[]> {
    try {
      return (await this.pool.query(sql, params)).rows as Row[];
    } catch (err) {
      throw translate(err);
    }
  }

  private batchTransaction(client: pg.PoolClient): BatchTransaction {
    const q = async (sql: string, params: unknown[]): Promise<Row[]> => (await client.query(sql, params)).rows as Row[];
    return {
      loadSnapshot: async (request: SnapshotRequest, scope: string): Promise<Snapshot> => {
        const users = (
          await q(`${SCOPE_CTE} SELECT ${USER_COLUMNS} FROM users
                    WHERE key = ANY($2::text[]) AND license_group IN (SELECT id FROM scope)`, [scope, request.userKeys])
        ).map(toUser);
        const companies = new Map<string, CompanyRecord>();
        if (request.companyIds.length || request.companyIdPrefixes.length) {
          // Company ids use [a-z0-9_] only, all below '{', so [prefix, prefix || '{') is "starts with"
          // (byte order: the columns are COLLATE "C"), and each range is an index scan.
          const rows = await q(`${SCOPE_CTE}
              SELECT * FROM (
                SELECT 0 AS part, c.* FROM companies c WHERE c.id = ANY($2::text[])
                UNION ALL
                SELECT 1 AS part, c.* FROM unnest($3::text[]) AS p(prefix)
                  JOIN companies c ON c.id >= p.prefix AND c.id < p.prefix || '{'
              ) found WHERE license_group IN (SELECT id FROM scope) ORDER BY part, id`,
            [scope, request.companyIds, request.companyIdPrefixes]);
          for (const r of rows) if (!companies.has(r.id as string)) companies.set(r.id as string, toCompany(r));
        }
        const access = users.length
          ? (await q('SELECT user_key, company_id, role FROM access WHERE user_key = ANY($1::text[])', [users.map((u) => u.key)])).map(
              (r): AccessRecord => ({ userKey: r.user_key as string, companyId: r.company_id as string, role: r.role as RoleCode }),
            )
          : [];
        return { users, companies: [...companies.values()], access };
      },
      apply: async (changes: StoredChangeSet): Promise<void> => {
        const now = new Date().toISOString();
        // The order matters as in SQLite: deleted companies take their grants along (ON DELETE
        // CASCADE) before a company of the same id may be created again, users exist before grants.
        for (const ids of chunks(changes.deletedCompanies)) {
          await q('DELETE FROM companies WHERE id = ANY($1::text[])', [ids]);
        }
        for (const users of chunks(changes.users)) {
          const columns: unknown[][] = Array.from({ length: 21 }, () => []);
          for (const u of users) userValues(u, now).forEach((v, i) => columns[i].push(v));
          const types = ['text', 'text', 'text', 'text', 'text', 'text', 'int', 'int', 'int', 'int', 'int', 'int', 'int', 'text', 'int', 'text', 'text', 'int', 'text', 'text', 'text'];
          await q(`INSERT INTO users (${USER_COLUMNS}, created_at, updated_at)
              SELECT * FROM unnest(${types.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})
            ${USER_UPSERT_CONFLICT}`, columns);
        }
        // Deleting or blocking a user ends its sessions, so a later restore or unblock does not revive them.
        for (const keys of chunks(changes.users.filter((u) => u.deleted || u.blocked).map((u) => u.key))) {
          await q('DELETE FROM sessions WHERE user_key = ANY($1::text[])', [keys]);
        }
        for (const companies of chunks(changes.companies)) {
          await q(`INSERT INTO companies (id, name, country, reg_no, vat_id, type, show, license_group, created_at, updated_at)
              SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[], $9::text[], $9::text[])
            ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, country = EXCLUDED.country, reg_no = EXCLUDED.reg_no,
              vat_id = EXCLUDED.vat_id, type = EXCLUDED.type, show = EXCLUDED.show,
              license_group = EXCLUDED.license_group, updated_at = EXCLUDED.updated_at`, [
            companies.map((c) => c.id), companies.map((c) => c.name), companies.map((c) => c.country),
            companies.map((c) => c.regNo), companies.map((c) => c.vatId), companies.map((c) => c.type),
            companies.map((c) => bit(c.show)), companies.map((c) => c.licenseGroup), companies.map(() => now),
          ]);
        }
        for (const revoked of chunks(changes.revokedAccess)) {
          await q(`DELETE FROM access a USING unnest($1::text[], $2::text[]) AS r(user_key, company_id)
                    WHERE a.user_key = r.user_key AND a.company_id = r.company_id`,
            [revoked.map((a) => a.userKey), revoked.map((a) => a.companyId)]);
        }
        for (const granted of chunks(changes.grantedAccess)) {
          await q(`INSERT INTO access (user_key, company_id, role, created_at, updated_at)
              SELECT user_key, company_id, role, $4, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS g(user_key, company_id, role)
            ON CONFLICT (user_key, company_id) DO UPDATE SET role = EXCLUDED.role, updated_at = EXCLUDED.updated_at`,
            [granted.map((a) => a.userKey), granted.map((a) => a.companyId), granted.map((a) => a.role), now]);
        }
      },
      journal: async (e: JournalEntry): Promise<void> => {
        await q(`INSERT INTO batch_journal (batch_id, credential, principal, impersonated, acting_user_key, scope,
              received_at, finished_at, body_sha256, result_xml) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
          [e.batchId, e.credential, e.principal, e.impersonated, e.actingUser, e.scope, e.receivedAt, e.finishedAt, e.bodySha256, e.resultXml]);
      },
    };
  }

  /** A user's grants in companies of the scope, by company id, as one JSON array column `access`. */
  private static readonly ACCESS_OF_USER = `(SELECT coalesce(json_agg(json_build_object('company', a.company_id, 'role', a.role) ORDER BY a.company_id), '[]'::json)
      FROM access a JOIN companies c ON c.id = a.company_id
      WHERE a.user_key = u.key AND c.license_group IN (SELECT id FROM scope)) AS access`;

  // One statement each, so a listing sees one committed state (never a batch half-way).
  async listUsers(scope: string): Promise<UserView[]> {
    const rows = await this.query(`${SCOPE_CTE} SELECT ${userColumnsOf('u')}, ${PostgresStore.ACCESS_OF_USER} FROM users u
                WHERE u.deleted = 0 AND u.license_group IN (SELECT id FROM scope) ORDER BY u.key`, [scope]);
    return rows.map((r) => toView(toUser(r), r.access as UserView['access']));
  }

  async findUser(scope: string, username: string): Promise<UserView | undefined> {
    const [row] = await this.query(`${SCOPE_CTE} SELECT ${userColumnsOf('u')}, ${PostgresStore.ACCESS_OF_USER} FROM users u
                WHERE u.key = $2 AND u.deleted = 0 AND u.license_group IN (SELECT id FROM scope)`, [scope, userKey(username)]);
    return row ? toView(toUser(row), row.access as UserView['access']) : undefined;
  }

  async listCompanies(scope: string, options: { includeHidden: boolean }): Promise<CompanyRecord[]> {
    const rows = await this.query(`${SCOPE_CTE} SELECT * FROM companies WHERE license_group IN (SELECT id FROM scope)
                AND (show = 1 OR $2::boolean) ORDER BY id`, [scope, options.includeHidden]);
    return rows.map(toCompany);
  }

  async findLatestJournal(scope: string, batchId: string, options: { sentBy?: string } = {}): Promise<JournalEntry | undefined> {
    // Two statements rather than "$3 IS NULL OR …", so each one uses its index.
    const [row] =
      options.sentBy === undefined
        ? await this.query(`${SCOPE_CTE} SELECT * FROM batch_journal WHERE batch_id = $2
                AND scope IN (SELECT id FROM scope) ORDER BY seq DESC LIMIT 1`, [scope, batchId])
        : await this.query(`${SCOPE_CTE} SELECT * FROM batch_journal WHERE batch_id = $2 AND acting_user_key = $3
                AND scope IN (SELECT id FROM scope) ORDER BY seq DESC LIMIT 1`, [scope, batchId, options.sentBy]);
    return row ? toJournal(row) : undefined;
  }

  async groupExists(group: string): Promise<boolean> {
    return (await this.query('SELECT 1 FROM license_groups WHERE id = $1', [group])).length > 0;
  }

  async findUserRecord(scope: string, username: string): Promise<UserRecord | undefined> {
    const [row] = await this.query(`${SCOPE_CTE} SELECT ${USER_COLUMNS} FROM users WHERE key = $2 AND license_group IN (SELECT id FROM scope)`, [
      scope,
      userKey(username),
    ]);
    return row ? toUser(row) : undefined;
  }

  async upgradePasswordHash(userKey: string, from: string, to: string): Promise<boolean> {
    const rows = await this.query('UPDATE users SET password_hash = $3 WHERE key = $1 AND password_hash = $2 RETURNING 1', [userKey, from, to]);
    return rows.length === 1;
  }

  async costliestPbkdf2Iterations(): Promise<number> {
    // Up to eight digits only, so that a malformed count can neither fail the cast nor overflow.
    const [row] = await this.query(`SELECT MAX(n::integer) AS n FROM (
        SELECT split_part(password_hash, ':', 2) AS n FROM users WHERE password_hash LIKE 'pbkdf2:%') AS counts
      WHERE n ~ '^[0-9]{1,8}$'`);
    return Number(row?.n ?? 0);
  }

  async createSession(session: { idHash: string; userKey: string; now: number }): Promise<void> {
    await this.query('INSERT INTO sessions (id_hash, user_key, created_at, last_used_at) VALUES ($1, $2, $3, $3)', [
      session.idHash,
      session.userKey,
      session.now,
    ]);
  }

  // Sessions idle longer than `idleMs` are deleted before any session is looked at, in the same
  // statement; the two parts touch disjoint rows (idle before the cutoff, or not).
  async useSession(idHash: string, now: number, idleMs: number): Promise<UserRecord | undefined> {
    const [row] = await this.query(`WITH expired AS (DELETE FROM sessions WHERE last_used_at < $2),
        used AS (UPDATE sessions SET last_used_at = $3 WHERE id_hash = $1 AND last_used_at >= $2 RETURNING user_key)
      SELECT ${userColumnsOf('u')} FROM used JOIN users u ON u.key = used.user_key`, [idHash, now - idleMs, now]);
    return row ? toUser(row) : undefined;
  }

  async deleteSession(idHash: string, now: number, idleMs: number): Promise<boolean> {
    const rows = await this.query(`WITH expired AS (DELETE FROM sessions WHERE last_used_at < $2)
      DELETE FROM sessions WHERE id_hash = $1 AND last_used_at >= $2 RETURNING 1`, [idHash, now - idleMs]);
    return rows.length === 1;
  }

  async addFingerprint(record: Pick<FingerprintRecord, 'fingerprint' | 'scope' | 'label'>): Promise<'added' | 'updated'> {
    // xmax is 0 on a freshly inserted row version and set on one that replaced an existing row.
    const [row] = await this.query(`INSERT INTO fingerprints (fingerprint, scope, label, created_at, revoked_at) VALUES ($1, $2, $3, $4, NULL)
                ON CONFLICT (fingerprint) DO UPDATE SET scope = EXCLUDED.scope, label = EXCLUDED.label, revoked_at = NULL
                RETURNING (xmax = 0) AS inserted`, [record.fingerprint, record.scope, record.label, new Date().toISOString()]);
    return row.inserted ? 'added' : 'updated';
  }

  async addFingerprintIfUnknown(record: Pick<FingerprintRecord, 'fingerprint' | 'scope' | 'label'>): Promise<boolean> {
    const rows = await this.query(`INSERT INTO fingerprints (fingerprint, scope, label, created_at) VALUES ($1, $2, $3, $4)
                ON CONFLICT (fingerprint) DO NOTHING RETURNING 1`, [record.fingerprint, record.scope, record.label, new Date().toISOString()]);
    return rows.length === 1;
  }

  async listFingerprints(): Promise<FingerprintRecord[]> {
    return (await this.query('SELECT * FROM fingerprints ORDER BY created_at, fingerprint')).map(toFingerprint);
  }

  async revokeFingerprint(fingerprint: string): Promise<boolean> {
    const rows = await this.query('UPDATE fingerprints SET revoked_at = $1 WHERE fingerprint = $2 AND revoked_at IS NULL RETURNING 1', [
      new Date().toISOString(),
      fingerprint,
    ]);
    return rows.length === 1;
  }

  async findActiveFingerprint(fingerprint: string): Promise<FingerprintRecord | undefined> {
    const [row] = await this.query('SELECT * FROM fingerprints WHERE fingerprint = $1 AND revoked_at IS NULL', [fingerprint]);
    return row ? toFingerprint(row) : undefined;
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1 FROM license_groups LIMIT 1');
  }

  /** Lets accepted batches finish (commit or roll back), then closes every connection. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      await Promise.allSettled([...this.running]);
      await this.pool.end();
    })());
  }
}

/** Applies pending migrations, each in its own transaction, under a session advisory lock. */
async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  let broken: unknown;
  const onError = (err: unknown): void => void (broken ??= err);
  client.on('error', onError);
  try {
    // Two processes starting at once: the second waits here, then finds everything applied.
    await client.query('SELECT pg_advisory_lock($1::int8)', [MIGRATION_LOCK]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
      const applied = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
      for (const m of POSTGRES_MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, new Date().toISOString()]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::int8)', [MIGRATION_LOCK]).catch(() => undefined);
    }
  } catch (err) {
    broken ??= isBroken(err) ? err : undefined;
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken ? (broken instanceof Error ? broken : new Error(String(broken))) : undefined);
  }
}

/** Errors at open: a missing database or refused credentials are configuration problems, said in one line. */
function openError(err: unknown, url: string): unknown {
  const where = describePostgresUrl(url);
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === '3D000') {
    const [server, database] = where.split(/\/(.*)/);
    const name = /database "(.*)" does not exist/.exec(message)?.[1] ?? database;
    return new FlexiError('config', `The PostgreSQL database "${name}" does not exist on ${server}; create it first (createdb "${name}") or fix FLEXI_DB / --db.`);
  }
  if (code.startsWith('28')) return new FlexiError('config', `PostgreSQL at ${where} refused the login: ${message}.`);
  const reason = unavailableReason(err);
  if (reason !== undefined) {
    return new FlexiError('store-unavailable', `PostgreSQL at ${where} is not reachable (${reason}); nothing was done and it is safe to retry.`, {
      'Retry-After': '1',
    });
  }
  if (err instanceof FlexiError) return err;
  return new FlexiError('config', `Cannot open the PostgreSQL store at ${where}: ${message}`);
}
