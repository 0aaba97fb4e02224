import type { Row, Table } from './schema';

/**
 * What the one store implementation (sql-store.ts) needs of a database: statements written once
 * for both SQLite and PostgreSQL, with `?` placeholders in order, and the few things the two
 * spell differently. Each driver (sqlite/, postgres/) keeps what only it can do well: prepared
 * statements cached per connection and group commit on SQLite; a pool, advisory locks, batch
 * claims and unnest() bulk writes on PostgreSQL.
 */
export interface Sql {
  all(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  get(sql: string, params?: readonly unknown[]): Promise<Row | undefined>;
  /** The number of rows the statement changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  /**
   * Inserts rows given as values in `table.columnNames` order. With `upsert`, a row whose key
   * exists replaces every column of it but the key and created_at.
   */
  insert<R>(table: Table<R>, rows: readonly unknown[][], options?: { upsert?: boolean }): Promise<void>;
  /** Deletes the rows whose key columns (`table.key`) equal each of `keys`. */
  deleteKeys<R>(table: Table<R>, keys: readonly unknown[][]): Promise<void>;
}

export interface Dialect {
  /**
   * A one-column table `AS alias(value)` of the values of one list parameter (passed through
   * `list`): SQLite json_each(?), PostgreSQL unnest(?). `IN (SELECT value FROM …)` and joins use it.
   */
  values(alias: string, type?: 'text' | 'bigint'): string;
  /** A list parameter's value for `values()`. */
  list(items: readonly unknown[]): unknown;
  /**
   * Whether a few rows are written faster by one statement per row than by one statement over a
   * list: true on SQLite (no round trip per statement, and an UPDATE over an `IN` list builds a
   * temporary table), false on PostgreSQL (a round trip per statement).
   */
  readonly rowByRow: boolean;
}

export interface DriverOptions {
  /** Told how long each durable commit of batches took, in seconds. */
  onCommit?: (seconds: number) => void;
}

/** Seconds since a process.hrtime.bigint() reading. */
export const secondsSince = (started: bigint): number => Number(process.hrtime.bigint() - started) / 1e9;

export interface Driver {
  readonly kind: 'sqlite' | 'postgres';
  readonly dialect: Dialect;
  /** Statements outside any transaction, each on its own: a committed state, never a batch half-way. */
  readonly query: Pick<Sql, 'all' | 'get'>;
  /** Several reads that see one committed state. */
  read<T>(work: (sql: Sql) => Promise<T>): Promise<T>;
  /** A short write transaction (a session, a fingerprint), serialised with the batches. */
  write<T>(work: (sql: Sql) => Promise<T>): Promise<T>;
  /**
   * A batch: one writer at a time, also across processes, durable before it resolves. With
   * `claim`, a driver shared by several processes refuses (FlexiError 'conflict') a claim another
   * process holds for its own running batch.
   */
  batch<T>(work: (sql: Sql) => Promise<T>, options: { claim?: string }): Promise<T>;
  /** Throws FlexiError('store-unavailable') when the store cannot answer, with the reason; 'store-gone' when it can no longer keep writes. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The groups of a scope: the one group and everything below it (the closure table, one index lookup); one parameter, the scope. */
export const SCOPE = 'SELECT descendant FROM license_group_closure WHERE ancestor = ?';
export const inScope = (column: string): string => `${column} IN (${SCOPE})`;

/** `IN (SELECT value FROM …)` over one list parameter. */
export function inList(dialect: Dialect, expr: string): string {
  return `${expr} IN (SELECT value FROM ${dialect.values('l')})`;
}

/** The statement that inserts (or upserts) one row of `table`, with `?` placeholders: both dialects take it as it is. */
export function insertStatement<R>(table: Table<R>, upsert: boolean, valuesClause?: string): string {
  const columns = table.columnNames.join(', ');
  const values = valuesClause ?? `VALUES (${table.columnNames.map(() => '?').join(', ')})`;
  return `INSERT INTO ${table.name} (${columns}) ${values}${upsert ? ` ${conflictClause(table)}` : ''}`;
}

/** ON CONFLICT (key) DO UPDATE SET every other column but created_at. */
export function conflictClause<R>(table: Table<R>): string {
  const updated = table.columnNames.filter((c) => !table.key.includes(c) && c !== 'created_at');
  return `ON CONFLICT (${table.key.join(', ')}) DO UPDATE SET ${updated.map((c) => `${c} = excluded.${c}`).join(', ')}`;
}
