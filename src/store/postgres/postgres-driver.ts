import { createHash } from 'node:crypto';
import pg from 'pg';
import { FlexiError, storeUnavailable } from '../../errors';
import { MIGRATIONS, renderMigration } from '../migrations';
import type { ColumnType, Row, Table } from '../schema';
import { conflictClause, secondsSince, type Dialect, type Driver, type DriverOptions, type Sql } from '../sql';

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

/** A lost connection or a temporary server condition is 503, safe to retry; anything else is passed on. */
function translate(err: unknown): unknown {
  const reason = unavailableReason(err);
  return reason === undefined ? err : storeUnavailable(reason);
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
export const BATCH_LOCK = int64Of('flexi-admin:batch');
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
// Statements


/** BIGINT (oid 20) as a JS number, for this store's pool only; every other type as node-postgres reads it. */
const TYPES = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === pg.types.builtins.INT8 && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/**
 * Opening a new connection longer than this answers 503 rather than hanging (node-postgres
 * applies it to its own queue too, which is why nothing waits there: see `connections`).
 */
const CONNECT_TIMEOUT_MS = 5000;
/**
 * A request that waits longer than this for one of the process's connections (every one busy
 * with earlier work) answers 503 with Retry-After: the process is overloaded, not the store
 * gone. Far longer than a burst of work takes; a hung database is noticed by CONNECT_TIMEOUT_MS
 * and TCP keepalives, not by this.
 */
const QUEUE_WAIT_MS = 30_000;

/** Admits at most `limit` tasks at a time, the others wait in order (at most `maxWaitMs` when given). */
class Gate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>, maxWaitMs?: number): Promise<T> {
    if (this.active >= this.limit) await this.turn(maxWaitMs);
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** Resolves when a finishing task hands its place over; rejects (and leaves the line) after maxWaitMs. */
  private turn(maxWaitMs: number | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const admit = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer =
        maxWaitMs === undefined
          ? undefined
          : setTimeout(() => {
              const at = this.waiting.indexOf(admit);
              if (at < 0) return;
              this.waiting.splice(at, 1);
              reject(
                new FlexiError('server-busy', `Every connection to the store has been busy for ${maxWaitMs / 1000} s; nothing was done. Retry shortly.`, {
                  'Retry-After': '1',
                }),
              );
            }, maxWaitMs);
      this.waiting.push(admit);
    });
  }
}

export interface PostgresDriverOptions extends DriverOptions {
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

/** `?` placeholders as PostgreSQL's `$1`, `$2`…, worked out once per statement text. */
const numbered = new Map<string, string>();

function toPostgres(sql: string): string {
  let text = numbered.get(sql);
  if (text === undefined) {
    let n = 0;
    text = sql.replace(/\?/g, () => `$${++n}`);
    numbered.set(sql, text);
  }
  return text;
}

const ARRAY_TYPES: Record<ColumnType, string> = { text: 'text[]', integer: 'int4[]', flag: 'int4[]', bigint: 'int8[]' };

const dialect: Dialect = {
  values: (alias, type = 'text') => `unnest(CAST(? AS ${type}[])) AS ${alias}(value)`,
  list: (items) => [...items],
  rowByRow: false,
};

/** Rows per bulk statement. unnest() takes one array parameter per column, so this bounds message size only. */
const CHUNK = 5000;

function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Each column of `rows` as one array, for unnest(). */
export function columnsOf(rows: readonly unknown[][], width: number): unknown[][] {
  const columns: unknown[][] = Array.from({ length: width }, () => []);
  for (const row of rows) for (let i = 0; i < width; i++) columns[i].push(row[i]);
  return columns;
}

const bulkInsert = new Map<string, string>();
const bulkDelete = new Map<string, string>();

/** INSERT INTO table (…) SELECT * FROM unnest(one array parameter per column) [ON CONFLICT …]: the rows of a chunk in one statement. */
export function unnestInsertSql<R>(table: Table<R>, upsert: boolean): string {
  const key = `${table.name}:${upsert ? 'upsert' : 'insert'}`;
  let sql = bulkInsert.get(key);
  if (!sql) {
    const arrays = table.columnTypes.map((t, i) => `$${i + 1}::${ARRAY_TYPES[t]}`).join(', ');
    sql = `INSERT INTO ${table.name} (${table.columnNames.join(', ')}) SELECT * FROM unnest(${arrays})${upsert ? ` ${conflictClause(table)}` : ''}`;
    bulkInsert.set(key, sql);
  }
  return sql;
}

/** The Sql of one connection (a pooled client in a transaction, or the pool itself). */
function sqlOf(client: pg.PoolClient): Sql {
  const rows = async (sql: string, params: readonly unknown[] = []): Promise<pg.QueryResult> => client.query(toPostgres(sql), params as unknown[]);
  return {
    all: async (sql, params) => (await rows(sql, params)).rows as Row[],
    get: async (sql, params) => (await rows(sql, params)).rows[0] as Row | undefined,
    run: async (sql, params) => (await rows(sql, params)).rowCount ?? 0,
    // One INSERT … SELECT FROM unnest() per chunk: a round trip per row would measure the network.
    async insert<R>(table: Table<R>, values: readonly unknown[][], options: { upsert?: boolean } = {}) {
      const sql = unnestInsertSql(table, options.upsert === true);
      for (const chunk of chunks(values)) await client.query(sql, columnsOf(chunk, table.columnNames.length));
    },
    async deleteKeys<R>(table: Table<R>, keys: readonly unknown[][]) {
      let sql = bulkDelete.get(table.name);
      if (!sql) {
        const types = table.key.map((k) => ARRAY_TYPES[table.columnTypes[table.columnNames.indexOf(k)] ?? 'text']);
        const arrays = table.key.map((_, i) => `$${i + 1}::${types[i]}`).join(', ');
        const match = table.key.map((k) => `t.${k} = k.${k}`).join(' AND ');
        sql = `DELETE FROM ${table.name} t USING unnest(${arrays}) AS k(${table.key.join(', ')}) WHERE ${match}`;
        bulkDelete.set(table.name, sql);
      }
      for (const chunk of chunks(keys)) await client.query(sql, columnsOf(chunk, table.key.length));
    },
  };
}

/** A pooled connection checked out for one piece of work, and whether it broke meanwhile. */
interface Held {
  readonly client: pg.PoolClient;
  /** Why the connection is unusable (it is then destroyed, not returned to the pool). */
  broken?: unknown;
}

/** Single statements outside a transaction, each on a connection of `withClient`, translated into a 503 when the store cannot be reached. */
function poolSql(withClient: <T>(use: (held: Held) => Promise<T>) => Promise<T>): Pick<Sql, 'all' | 'get'> {
  const on = async <T>(statement: (sql: Sql) => Promise<T>): Promise<T> => {
    try {
      return await withClient(({ client }) => statement(sqlOf(client)));
    } catch (err) {
      throw translate(err);
    }
  };
  return {
    all: (sql, params) => on((q) => q.all(sql, params)),
    get: (sql, params) => on((q) => q.get(sql, params)),
  };
}

/**
 * The shared store for several server processes. Each batch runs in one transaction on one pooled
 * connection under a global advisory lock (pg_advisory_xact_lock), so batches of all processes are
 * serialised; reads see committed batches only.
 */
export class PostgresDriver implements Driver {
  readonly kind = 'postgres' as const;
  readonly dialect = dialect;
  readonly query: Pick<Sql, 'all' | 'get'>;
  /** Batches waiting for the global lock each hold a connection; one is always left for reads. */
  private readonly batches: Gate;
  /** Every checkout passes here, so node-postgres's own queue (and its timeout) is never used. */
  private readonly connections: Gate;
  /** Settles when the batch that arrived last has finished. */
  private lastTurn: Promise<void> = Promise.resolve();
  private readonly running = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    poolSize: number,
    private readonly options: DriverOptions,
  ) {
    this.batches = new Gate(Math.max(1, poolSize - 1));
    this.connections = new Gate(poolSize);
    this.query = poolSql((use) => this.withClient(use));
  }

  /** Connects, applies pending migrations, and answers a clear error when the database cannot be used. */
  static async open(url: string, options: PostgresDriverOptions = {}): Promise<PostgresDriver> {
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
    return new PostgresDriver(pool, poolSize, options);
  }

  read<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.transaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', work);
  }

  write<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.transaction('BEGIN', work);
  }

  /**
   * `use` on one pooled connection, in turn with the process's other work (at most QUEUE_WAIT_MS
   * in line). A connection that broke is destroyed (release(err)), its transaction and locks die
   * with it; any other is returned to the pool.
   */
  private withClient<T>(use: (held: Held) => Promise<T>): Promise<T> {
    return this.connections.run(async () => {
      const held: Held = { client: await this.checkout() };
      // A checked-out client has no pool listener: a connection lost between two queries must not crash the process.
      const onError = (err: unknown): void => void (held.broken ??= err);
      held.client.on('error', onError);
      try {
        return await use(held);
      } catch (err) {
        if (isBroken(err)) held.broken ??= err;
        throw err;
      } finally {
        held.client.off('error', onError);
        const { broken } = held;
        held.client.release(broken ? (broken instanceof Error ? broken : new Error(String(broken))) : undefined);
      }
    }, QUEUE_WAIT_MS);
  }

  /** `work` in one transaction on one pooled connection; its errors become 503 when the store cannot be reached. */
  private transaction<T>(
    begin: string,
    work: (sql: Sql) => Promise<T>,
    before?: (client: pg.PoolClient) => Promise<void>,
    onCommit?: (seconds: number) => void,
  ): Promise<T> {
    return this.withClient(async (held) => {
      const { client } = held;
      try {
        await client.query(begin);
        await before?.(client);
        const result = await work(sqlOf(client));
        try {
          const started = process.hrtime.bigint();
          await client.query('COMMIT');
          onCommit?.(secondsSince(started));
        } catch (err) {
          const reason = unavailableReason(err);
          if (reason === undefined) throw err;
          held.broken ??= err;
          // The COMMIT may have reached the database before the connection went: whether the work
          // is kept cannot be known here, so the answer says so. Re-sending is safe either way.
          throw storeUnavailable(reason, 'unknown');
        }
        return result;
      } catch (err) {
        if (isBroken(err)) held.broken ??= err;
        if (!held.broken) {
          try {
            await client.query('ROLLBACK');
          } catch (rollbackError) {
            held.broken = rollbackError;
          }
        }
        throw translate(err);
      }
    });
  }

  batch<T>(work: (sql: Sql) => Promise<T>, options: { claim?: string } = {}): Promise<T> {
    if (this.closing) return Promise.reject(storeUnavailable('the store is closing'));
    // This process's batches take the batch lock in the order they arrived, as on SQLite: each
    // waits for the one before it (after its claim, so a copy sent to another process still
    // meets the claim). Connections are handed out in the same order, so no batch waits for
    // one that has none.
    const turn = this.lastTurn;
    let done: () => void = () => undefined;
    this.lastTurn = new Promise<void>((resolve) => (done = resolve));
    const run = this.batches.run(() =>
      this.transaction('BEGIN', work, async (client) => {
        if (options.claim !== undefined) {
          // Before waiting for the batch lock: an identical batch queued or running in another process holds it.
          const [a, b] = claimKey(options.claim);
          const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1::int4, $2::int4) AS ok', [a, b]);
          if (!rows[0].ok) {
            throw new FlexiError('conflict', 'The same batch is being executed by another process right now; retry shortly for its result.', {
              'Retry-After': '1',
            });
          }
        }
        await turn;
        await client.query('SELECT pg_advisory_xact_lock($1::int8)', [BATCH_LOCK]);
      }, this.options.onCommit),
    );
    run.then(done, done);
    this.running.add(run);
    const forget = (): void => void this.running.delete(run);
    run.then(forget, forget);
    return run;
  }

  private async checkout(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw translate(err);
    }
  }

  async ping(): Promise<void> {
    await this.query.get('SELECT 1 FROM license_groups LIMIT 1');
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
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          for (const statement of renderMigration(m, 'postgres')) await client.query(statement);
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
