import Database from 'better-sqlite3';
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { FlexiError, storeUnavailable } from '../../errors';
import { SerialQueue } from '../../util/serial-queue';
import { MIGRATIONS, renderMigration } from '../migrations';
import type { Row, Table } from '../schema';
import { insertStatement, secondsSince, type Dialect, type Driver, type DriverOptions, type Sql } from '../sql';

const UNAVAILABLE = ['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_CANTOPEN', 'SQLITE_READONLY'];

/** A locked, full or unreadable database is a temporary condition: 503, safe to retry. */
function translate(err: unknown): unknown {
  const code = (err as { code?: string }).code ?? '';
  return UNAVAILABLE.some((c) => code.startsWith(c)) ? storeUnavailable(code) : err;
}

/** Which file a path named when the driver opened it: a path that names another file (or none) later means it was deleted or replaced. */
interface OpenFile {
  path: string;
  dev: bigint;
  ino: bigint;
}

function identify(path: string): OpenFile | undefined {
  const stat = statSync(path, { bigint: true, throwIfNoEntry: false });
  return stat && { path, dev: stat.dev, ino: stat.ino };
}

const BUSY_TIMEOUT_MS = 5000;
/** At most this many batches share one commit, so a steady stream still gets answers. */
const MAX_GROUP = 64;

const dialect: Dialect = {
  values: (alias) => `json_each(?) AS ${alias}`,
  list: (items) => JSON.stringify(items),
  rowByRow: true,
};

/** Prepared once per connection: preparing costs more than running most of these statements. */
class Statements {
  private readonly cache = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  get(sql: string): Database.Statement {
    let statement = this.cache.get(sql);
    if (!statement) this.cache.set(sql, (statement = this.db.prepare(sql)));
    return statement;
  }
}

/** Runs synchronous better-sqlite3 work as the Sql interface's promise, with errors translated. */
function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (err) {
    return Promise.reject(translate(err));
  }
}

const insertSql = new Map<Table<unknown>, [string, string]>();
const deleteSql = new Map<Table<unknown>, string>();

function sqlOf(db: Statements): Sql {
  return {
    all: (sql, params = []) => settle(() => db.get(sql).all(...params) as Row[]),
    get: (sql, params = []) => settle(() => db.get(sql).get(...params) as Row | undefined),
    run: (sql, params = []) => settle(() => db.get(sql).run(...params).changes),
    insert: (table, rows, options = {}) =>
      settle(() => {
        if (rows.length === 0) return;
        const t = table as Table<unknown>;
        let both = insertSql.get(t);
        if (!both) insertSql.set(t, (both = [insertStatement(table, false), insertStatement(table, true)]));
        const statement = db.get(both[options.upsert ? 1 : 0]);
        for (const row of rows) statement.run(row);
      }),
    deleteKeys: (table, keys) =>
      settle(() => {
        if (keys.length === 0) return;
        const t = table as Table<unknown>;
        let sql = deleteSql.get(t);
        if (!sql) deleteSql.set(t, (sql = `DELETE FROM ${table.name} WHERE ${table.key.map((k) => `${k} = ?`).join(' AND ')}`));
        const statement = db.get(sql);
        for (const key of keys) statement.run(key);
      }),
  };
}

interface BatchJob {
  work: (sql: Sql) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/** A batch of the group that ran, and its value, answered once the group is committed. */
interface Done {
  job: BatchJob;
  value: unknown;
}

/** The group's batches so far are lost with its transaction: each is refused with the same error. */
function rejectAll(done: Done[], err: unknown): void {
  for (const { job } of done.splice(0)) job.reject(err);
}

/**
 * One writer connection (batches and other writes, serialised in-process by a queue and across
 * processes by BEGIN IMMEDIATE) and one reader connection, so reads never see a batch half-way.
 */
export class SqliteDriver implements Driver {
  readonly kind = 'sqlite' as const;
  readonly dialect = dialect;
  readonly query: Pick<Sql, 'all' | 'get'>;
  private readonly queue = new SerialQueue();
  /** Reads that span several statements take turns on the reader, each in its own read transaction. */
  private readonly readers = new SerialQueue();
  /** Batches waiting for the next group commit, in arrival order. */
  private readonly waiting: BatchJob[] = [];
  private committing = false;
  private readonly reader: Database.Database;
  private readonly readSql: Sql;
  private readonly writeSql: Sql;
  /**
   * The database file and its -wal and -shm as they were when the driver opened them. SQLite keeps
   * writing to the files it has open even after they were deleted or replaced under it, and the
   * next start opens whatever the path names then: every write from that moment on would be
   * acknowledged and then lost. So each write first checks that the paths still name these files.
   */
  private readonly files: OpenFile[];

  private constructor(
    private readonly writer: Database.Database,
    private readonly path: string,
    private readonly options: DriverOptions,
  ) {
    this.reader = new Database(path, { fileMustExist: true });
    this.reader.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    this.readSql = sqlOf(new Statements(this.reader));
    this.writeSql = sqlOf(new Statements(writer));
    this.query = this.readSql;
    // In WAL mode both connections keep -wal and -shm while they are open; ':memory:' has no files.
    this.files = path === ':memory:' ? [] : [path, `${path}-wal`, `${path}-shm`].map(identify).filter((f): f is OpenFile => f !== undefined);
  }

  /** Throws store-gone (503) when a path no longer names the file the driver has open: three stat calls, no I/O on the database. */
  private assertFilesInPlace(): void {
    for (const file of this.files) {
      const now = identify(file.path);
      if (now && now.dev === file.dev && now.ino === file.ino) continue;
      const which = file.path === this.path ? `The SQLite file ${this.path}` : `The file ${file.path} of the SQLite store ${this.path}`;
      throw new FlexiError(
        'store-gone',
        `${which} was ${now ? 'replaced by another file' : 'deleted'} while the server was running; anything written now would be lost at the next start, so nothing was applied. The server must be restarted (restore the file from a backup first if it was lost).`,
      );
    }
  }

  /** Opens (creating the file and its folder) and applies pending migrations. */
  static open(path: string, options: DriverOptions = {}): SqliteDriver {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      migrate(db);
      return new SqliteDriver(db, path, options);
    } catch (err) {
      db?.close();
      throw translate(err);
    }
  }

  read<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.readers.run(async () => {
      try {
        this.reader.exec('BEGIN');
      } catch (err) {
        throw translate(err);
      }
      try {
        return await work(this.readSql);
      } finally {
        if (this.reader.inTransaction) this.reader.exec('COMMIT');
      }
    });
  }

  write<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.queue.run(async () => {
      try {
        this.assertFilesInPlace();
        this.writer.exec('BEGIN IMMEDIATE');
      } catch (err) {
        throw translate(err);
      }
      try {
        const result = await work(this.writeSql);
        this.writer.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
        throw translate(err);
      }
    });
  }

  batch<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
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
   *
   * The first batch of a group needs no savepoint: undoing it is rolling the transaction back.
   * That matters for large batches, which usually come alone: inside a savepoint SQLite copies
   * every page it changes to a statement journal, which spills to a temporary file past 64 kB, and
   * a 10 000-operation batch wrote its rows three times slower.
   */
  private async commitGroup(): Promise<void> {
    this.committing = true;
    const done: Done[] = [];
    try {
      let started = 0;
      for (;;) {
        while (this.waiting.length > 0 && started < MAX_GROUP) {
          started++;
          await this.runInGroup(this.waiting.shift() as BatchJob, done);
        }
        if (!this.writer.inTransaction || started >= MAX_GROUP) break;
        // Before the commit, one turn of the event loop: requests that arrived while this group ran
        // are read and join it. The commit waits for the disk on this thread, so with eight clients
        // sending one-user batches, groups of about four became about eight and the commits (an
        // fsync each) per batch halved. A lone batch waits one turn longer, a few microseconds.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.waiting.length === 0) break;
      }
      if (this.writer.inTransaction) {
        try {
          // Checked at the last moment, once per group: a file deleted before or while the group ran
          // must not take its commit along (every batch of the group then fails with store-gone).
          this.assertFilesInPlace();
          const started = process.hrtime.bigint();
          this.writer.exec('COMMIT');
          this.options.onCommit?.(secondsSince(started));
        } catch (err) {
          if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
          rejectAll(done, translate(err));
        }
      }
      for (const { job, value } of done) job.resolve(value);
    } finally {
      this.committing = false;
      if (this.waiting.length > 0) void this.queue.run(() => this.commitGroup());
    }
  }

  /** One batch of a group: the first opens the transaction, each later one runs in a savepoint. Its outcome waits in `done` for the commit. */
  private async runInGroup(job: BatchJob, done: Done[]): Promise<void> {
    const first = !this.writer.inTransaction;
    try {
      this.writer.exec(first ? 'BEGIN IMMEDIATE' : 'SAVEPOINT batch');
    } catch (err) {
      job.reject(translate(err));
      return;
    }
    try {
      const value = await job.work(this.writeSql);
      if (!first) this.writer.exec('RELEASE batch');
      done.push({ job, value });
    } catch (err) {
      const failure = translate(err);
      if (this.writer.inTransaction) {
        if (first) {
          this.writer.exec('ROLLBACK');
        } else {
          this.writer.exec('ROLLBACK TO batch');
          this.writer.exec('RELEASE batch');
        }
      } else {
        // SQLite rolled the whole transaction back (a full disk, say): the batches before it are gone too.
        rejectAll(done, failure);
      }
      job.reject(failure);
    }
  }

  async ping(): Promise<void> {
    this.assertFilesInPlace();
    await this.query.get('SELECT 1 FROM license_groups LIMIT 1');
  }

  async close(): Promise<void> {
    // A group commit may queue the next group behind it: wait until no batch is left.
    do await this.queue.run(async () => undefined);
    while (this.waiting.length > 0 || this.committing);
    await this.readers.run(async () => undefined);
    this.reader.close();
    this.writer.close();
  }
}

function migrate(db: Database.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
  const isApplied = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?');
  for (const m of MIGRATIONS) {
    // Checked inside the write transaction: a CLI and a server may open the same file at once.
    db.transaction(() => {
      if (isApplied.get(m.version)) return;
      for (const statement of renderMigration(m, 'sqlite')) db.exec(statement);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, new Date().toISOString());
    }).immediate();
  }
}
