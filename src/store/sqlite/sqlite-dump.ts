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
