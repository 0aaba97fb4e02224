import { PostgresDriver } from './postgres/postgres-driver';
import { SqlStore } from './sql-store';
import { SqliteDriver } from './sqlite/sqlite-driver';
import type { Store } from './store';

export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

export interface OpenStoreOptions {
  /** PostgreSQL connections per process (default 10); SQLite ignores it. */
  poolSize?: number;
  /** Told how long each durable commit of batches took, in seconds (for the metrics). */
  onCommit?: (seconds: number) => void;
}

/** `FLEXI_DB`: a file path (SQLite) or a postgres:// URL. Migrations run on open. */
export async function openStore(db: string, options: OpenStoreOptions = {}): Promise<Store> {
  const driver = isPostgresUrl(db) ? await PostgresDriver.open(db, options) : SqliteDriver.open(db, options);
  return new SqlStore(driver);
}
