import { FlexiError } from '../errors';
import { SqliteStore } from './sqlite/sqlite-store';
import type { Store } from './store';

export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/** `FLEXI_DB`: a file path (SQLite) or a postgres:// URL. Migrations run on open. */
export async function openStore(db: string): Promise<Store> {
  if (isPostgresUrl(db)) {
    throw new FlexiError('config', 'The PostgreSQL store is not available yet; use a SQLite file path for FLEXI_DB.');
  }
  return SqliteStore.open(db);
}
