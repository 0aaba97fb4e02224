import { PostgresStore } from './postgres/postgres-store';
import { SqliteStore } from './sqlite/sqlite-store';
import type { Store } from './store';

export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

export interface OpenStoreOptions {
  /** PostgreSQL connections per process (default 10); SQLite ignores it. */
  poolSize?: number;
}

/** `FLEXI_DB`: a file path (SQLite) or a postgres:// URL. Migrations run on open. */
export async function openStore(db: string, options: OpenStoreOptions = {}): Promise<Store> {
  if (isPostgresUrl(db)) return PostgresStore.open(db, { poolSize: options.poolSize });
  return SqliteStore.open(db);
}
