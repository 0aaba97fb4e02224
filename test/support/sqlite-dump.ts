import Database from 'better-sqlite3';

/**
 * Every row of the entity tables, for tests that compare the store before and after a
 * batch. The journal is left out: it records each execution by design.
 */
export function dumpSqlite(path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const tables = ['license_groups', 'users', 'companies', 'access', 'fingerprints'];
    return Object.fromEntries(tables.map((t) => [t, db.prepare(`SELECT * FROM ${t} ORDER BY 1, 2`).all()]));
  } finally {
    db.close();
  }
}

export function integrityCheck(path: string): string {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check;
  } finally {
    db.close();
  }
}

/** Batch id and body hash of every journalled execution, oldest first. */
export function journalSummary(path: string): Array<{ batch_id: string; body_sha256: string }> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT batch_id, body_sha256 FROM batch_journal ORDER BY seq').all() as Array<{ batch_id: string; body_sha256: string }>;
  } finally {
    db.close();
  }
}

export interface JournalRow {
  batch_id: string;
  credential: string;
  principal: string;
  impersonated: string | null;
  acting_user_key: string | null;
  scope: string;
  body_sha256: string;
  result_xml: string;
}

/** Who executed each journalled batch, as whom, and what it answered; oldest first. */
export function journalRows(path: string): JournalRow[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare('SELECT batch_id, credential, principal, impersonated, acting_user_key, scope, body_sha256, result_xml FROM batch_journal ORDER BY seq')
      .all() as JournalRow[];
  } finally {
    db.close();
  }
}

/** The stored login sessions (only SHA-256 digests of their ids are ever stored). */
export function sessionRows(path: string): Array<{ id_hash: string; user_key: string; created_at: number; last_used_at: number }> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT id_hash, user_key, created_at, last_used_at FROM sessions ORDER BY created_at, id_hash').all() as Array<{
      id_hash: string;
      user_key: string;
      created_at: number;
      last_used_at: number;
    }>;
  } finally {
    db.close();
  }
}

/** Runs SQL statements on the file, for tests that build a store as an earlier release left it. */
export function runScript(path: string, sql: string): void {
  const db = new Database(path);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

/** Rows of one read-only query, for tests that check a large store without dumping all of it. */
export function queryRows(path: string, sql: string, ...params: unknown[]): Array<Record<string, unknown>> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as Array<Record<string, unknown>>;
  } finally {
    db.close();
  }
}
