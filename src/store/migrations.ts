/**
 * Every schema change, numbered and append-only: a released migration never changes; the next
 * change is a new entry. Each runs in its own transaction at open and is recorded in
 * schema_migrations (the driver's migrate()). Both stores get the same tables and columns
 * (schema.ts; the schema test compares them): from version 4 on, a migration is written once as
 * steps (DDL both dialects render, see renderStep); the first three were written for each store.
 *
 * PostgreSQL spelling: every TEXT column is COLLATE "C", so comparisons and ORDER BY work on
 * bytes as SQLite's BINARY does, whatever the database's locale (listing order, the company id
 * prefix range `id >= p AND id < p || '{'`); flags stay INTEGER 0/1 and timestamps ISO 8601 TEXT
 * written by the application, exactly as in SQLite; millisecond epochs and sequences are BIGINT.
 */
import type { ColumnType } from './schema';

export type DialectName = 'sqlite' | 'postgres';

/** A column as a migration adds it. */
export interface ColumnSpec {
  name: string;
  type: ColumnType;
  notNull?: boolean;
  /** A literal default (also what existing rows get). */
  default?: string | number;
  references?: string;
}

export type Step =
  | { createTable: { name: string; columns: ColumnSpec[]; primaryKey: string[] } }
  | { addColumn: { table: string; column: ColumnSpec } }
  | { createIndex: { name: string; table: string; columns: string[]; unique?: boolean } }
  | { sql: Record<DialectName, string> };

export interface Migration {
  version: number;
  name: string;
  steps: Step[];
}

const TEXT = 'TEXT COLLATE "C"';

/** The current UTC time as SQLite's strftime('%Y-%m-%dT%H:%M:%fZ', 'now') writes it. */
const NOW_ISO = `to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const TYPES: Record<DialectName, Record<ColumnType, string>> = {
  sqlite: { text: 'TEXT', integer: 'INTEGER', flag: 'INTEGER', bigint: 'INTEGER' },
  postgres: { text: TEXT, integer: 'INTEGER', flag: 'INTEGER', bigint: 'BIGINT' },
};

function columnDdl(column: ColumnSpec, dialect: DialectName): string {
  const parts = [column.name, TYPES[dialect][column.type]];
  if (column.notNull) parts.push('NOT NULL');
  if (column.default !== undefined) parts.push(`DEFAULT ${typeof column.default === 'number' ? column.default : `'${column.default.replace(/'/g, "''")}'`}`);
  if (column.references) parts.push(`REFERENCES ${column.references}`);
  return parts.join(' ');
}

export function renderStep(step: Step, dialect: DialectName): string {
  if ('sql' in step) return step.sql[dialect];
  if ('addColumn' in step) return `ALTER TABLE ${step.addColumn.table} ADD COLUMN ${columnDdl(step.addColumn.column, dialect)}`;
  if ('createTable' in step) {
    const { name, columns, primaryKey } = step.createTable;
    return `CREATE TABLE ${name} (${[...columns.map((c) => columnDdl(c, dialect)), `PRIMARY KEY (${primaryKey.join(', ')})`].join(', ')})`;
  }
  const { name, table, columns, unique } = step.createIndex;
  return `CREATE ${unique ? 'UNIQUE ' : ''}INDEX ${name} ON ${table}(${columns.join(', ')})`;
}

/** The statements of a migration for one store, in order. */
export function renderMigration(migration: Migration, dialect: DialectName): string[] {
  return migration.steps.map((step) => renderStep(step, dialect));
}

const UPDATED_AT = 'UPDATE license_groups SET updated_at = created_at';

/** Every (ancestor, descendant, depth) of the groups that exist, found by walking down from each. */
const CLOSURE_OF_EXISTING = `INSERT INTO license_group_closure (ancestor, descendant, depth)
  WITH RECURSIVE walk(ancestor, descendant, depth) AS (
    SELECT id, id, 0 FROM license_groups
    UNION ALL SELECT w.ancestor, g.id, w.depth + 1 FROM walk w JOIN license_groups g ON g.parent_id = w.descendant)
  SELECT ancestor, descendant, depth FROM walk`;

const SEATS_OF_EXISTING = `UPDATE license_groups SET seats_used = (
  SELECT count(*) FROM users u JOIN license_group_closure c ON c.descendant = u.license_group
   WHERE c.ancestor = license_groups.id AND u.deleted = 0 AND u.user_type <> 'READ_ONLY')`;

const EVENT_COUNTER = "INSERT INTO counters (name, value) VALUES ('event_seq', 0)";

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    steps: [
      {
        sql: {
          sqlite: `
      CREATE TABLE license_groups (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        parent_id  TEXT REFERENCES license_groups(id),
        seats      INTEGER,
        created_at TEXT NOT NULL
      );
      INSERT INTO license_groups (id, name, parent_id, seats, created_at)
        VALUES ('root', 'root', NULL, NULL, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

      CREATE TABLE users (
        key                     TEXT PRIMARY KEY,
        username                TEXT NOT NULL,
        email                   TEXT,
        given_name              TEXT,
        family_name             TEXT,
        password_hash           TEXT,
        perm_manage_all         INTEGER NOT NULL DEFAULT 0,
        perm_create_company     INTEGER NOT NULL DEFAULT 0,
        perm_delete_company     INTEGER NOT NULL DEFAULT 0,
        perm_create_user        INTEGER NOT NULL DEFAULT 0,
        perm_change_password    INTEGER NOT NULL DEFAULT 0,
        perm_grant_permission   INTEGER NOT NULL DEFAULT 0,
        perm_license_management INTEGER NOT NULL DEFAULT 0,
        default_role            TEXT,
        blocked                 INTEGER NOT NULL DEFAULT 0,
        block_message           TEXT,
        user_type               TEXT NOT NULL DEFAULT 'NORMAL',
        deleted                 INTEGER NOT NULL DEFAULT 0,
        license_group           TEXT NOT NULL REFERENCES license_groups(id),
        created_at              TEXT NOT NULL,
        updated_at              TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX users_group ON users(license_group);

      CREATE TABLE companies (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        country       TEXT NOT NULL,
        reg_no        TEXT,
        vat_id        TEXT,
        type          TEXT NOT NULL,
        show          INTEGER NOT NULL DEFAULT 1,
        license_group TEXT NOT NULL REFERENCES license_groups(id),
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX companies_group ON companies(license_group);

      CREATE TABLE access (
        user_key   TEXT NOT NULL REFERENCES users(key),
        company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
        role       TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (user_key, company_id)
      ) WITHOUT ROWID;
      CREATE INDEX access_company ON access(company_id);

      CREATE TABLE fingerprints (
        fingerprint TEXT PRIMARY KEY,
        scope       TEXT NOT NULL REFERENCES license_groups(id),
        label       TEXT,
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
      );

      CREATE TABLE batch_journal (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        batch_id     TEXT NOT NULL,
        credential   TEXT NOT NULL,
        principal    TEXT NOT NULL,
        impersonated TEXT,
        scope        TEXT NOT NULL,
        received_at  TEXT NOT NULL,
        finished_at  TEXT NOT NULL,
        body_sha256  TEXT NOT NULL,
        result_xml   TEXT NOT NULL
      );
      CREATE INDEX batch_journal_batch ON batch_journal(batch_id, seq);
    `,
          postgres: `
      CREATE TABLE license_groups (
        id         ${TEXT} PRIMARY KEY,
        name       ${TEXT} NOT NULL,
        parent_id  ${TEXT} REFERENCES license_groups(id),
        seats      INTEGER,
        created_at ${TEXT} NOT NULL
      );
      INSERT INTO license_groups (id, name, parent_id, seats, created_at)
        VALUES ('root', 'root', NULL, NULL, ${NOW_ISO});

      CREATE TABLE users (
        key                     ${TEXT} PRIMARY KEY,
        username                ${TEXT} NOT NULL,
        email                   ${TEXT},
        given_name              ${TEXT},
        family_name             ${TEXT},
        password_hash           ${TEXT},
        perm_manage_all         INTEGER NOT NULL DEFAULT 0,
        perm_create_company     INTEGER NOT NULL DEFAULT 0,
        perm_delete_company     INTEGER NOT NULL DEFAULT 0,
        perm_create_user        INTEGER NOT NULL DEFAULT 0,
        perm_change_password    INTEGER NOT NULL DEFAULT 0,
        perm_grant_permission   INTEGER NOT NULL DEFAULT 0,
        perm_license_management INTEGER NOT NULL DEFAULT 0,
        default_role            ${TEXT},
        blocked                 INTEGER NOT NULL DEFAULT 0,
        block_message           ${TEXT},
        user_type               ${TEXT} NOT NULL DEFAULT 'NORMAL',
        deleted                 INTEGER NOT NULL DEFAULT 0,
        license_group           ${TEXT} NOT NULL REFERENCES license_groups(id),
        created_at              ${TEXT} NOT NULL,
        updated_at              ${TEXT} NOT NULL
      );
      CREATE INDEX users_group ON users(license_group);

      CREATE TABLE companies (
        id            ${TEXT} PRIMARY KEY,
        name          ${TEXT} NOT NULL,
        country       ${TEXT} NOT NULL,
        reg_no        ${TEXT},
        vat_id        ${TEXT},
        type          ${TEXT} NOT NULL,
        show          INTEGER NOT NULL DEFAULT 1,
        license_group ${TEXT} NOT NULL REFERENCES license_groups(id),
        created_at    ${TEXT} NOT NULL,
        updated_at    ${TEXT} NOT NULL
      );
      CREATE INDEX companies_group ON companies(license_group);

      CREATE TABLE access (
        user_key   ${TEXT} NOT NULL REFERENCES users(key),
        company_id ${TEXT} NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
        role       ${TEXT} NOT NULL,
        created_at ${TEXT} NOT NULL,
        updated_at ${TEXT} NOT NULL,
        PRIMARY KEY (user_key, company_id)
      );
      CREATE INDEX access_company ON access(company_id);

      CREATE TABLE fingerprints (
        fingerprint ${TEXT} PRIMARY KEY,
        scope       ${TEXT} NOT NULL REFERENCES license_groups(id),
        label       ${TEXT},
        created_at  ${TEXT} NOT NULL,
        revoked_at  ${TEXT}
      );

      CREATE TABLE batch_journal (
        seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        batch_id     ${TEXT} NOT NULL,
        credential   ${TEXT} NOT NULL,
        principal    ${TEXT} NOT NULL,
        impersonated ${TEXT},
        scope        ${TEXT} NOT NULL,
        received_at  ${TEXT} NOT NULL,
        finished_at  ${TEXT} NOT NULL,
        body_sha256  ${TEXT} NOT NULL,
        result_xml   ${TEXT} NOT NULL
      );
      CREATE INDEX batch_journal_batch ON batch_journal(batch_id, seq);
    `,
        },
      },
    ],
  },
  {
    version: 2,
    name: 'sessions',
    steps: [
      {
        sql: {
          sqlite: `
      CREATE TABLE sessions (
        id_hash      TEXT PRIMARY KEY,
        user_key     TEXT NOT NULL REFERENCES users(key),
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL
      );
      CREATE INDEX sessions_user ON sessions(user_key);
    `,
          postgres: `
      CREATE TABLE sessions (
        id_hash      ${TEXT} PRIMARY KEY,
        user_key     ${TEXT} NOT NULL REFERENCES users(key),
        created_at   BIGINT NOT NULL,
        last_used_at BIGINT NOT NULL
      );
      CREATE INDEX sessions_user ON sessions(user_key);
    `,
        },
      },
    ],
  },
  {
    // Whose batch an entry is (SPEC §6: a user without manageAll or createUser reads only the
    // entries of batches it sent), as the acting user's key. Entries written before it say so in
    // their credential (session:NAME) or their impersonated user; both were written by us, and
    // usernames are ASCII without ':', so lower() gives exactly the key. The index is partial:
    // only entries of acting users are looked up by it, and the certificate and password batches
    // (most of them) must not pay for one more index entry in every commit.
    version: 3,
    name: 'journal-acting-user',
    steps: [
      {
        sql: {
          sqlite: `
      ALTER TABLE batch_journal ADD COLUMN acting_user_key TEXT;
      UPDATE batch_journal SET acting_user_key = lower(impersonated) WHERE impersonated IS NOT NULL;
      UPDATE batch_journal SET acting_user_key = lower(substr(credential, 9)) WHERE credential LIKE 'session:%';
      CREATE INDEX batch_journal_acting_user ON batch_journal(batch_id, acting_user_key, seq) WHERE acting_user_key IS NOT NULL;
    `,
          postgres: `
      ALTER TABLE batch_journal ADD COLUMN acting_user_key ${TEXT};
      UPDATE batch_journal SET acting_user_key = lower(impersonated) WHERE impersonated IS NOT NULL;
      UPDATE batch_journal SET acting_user_key = lower(substr(credential, 9)) WHERE credential LIKE 'session:%';
      CREATE INDEX batch_journal_acting_user ON batch_journal(batch_id, acting_user_key, seq) WHERE acting_user_key IS NOT NULL;
    `,
        },
      },
    ],
  },
  {
    // SPEC §10.3: the date a user's or a company's validity ends (a plain field, domain/fields.ts).
    version: 4,
    name: 'valid-until',
    steps: [
      { addColumn: { table: 'users', column: { name: 'valid_until', type: 'text' } } },
      { addColumn: { table: 'companies', column: { name: 'valid_until', type: 'text' } } },
    ],
  },
  {
    // SPEC §7: the license group tree. A closure table holds every (ancestor, descendant) pair, so a
    // scope is one indexed lookup; seats_used keeps each subtree's active NORMAL and REST_API users
    // (kept by the batches, which change it). A store of the previous release has only root: its
    // closure is root alone and every seat is root's.
    version: 5,
    name: 'license-groups',
    steps: [
      { addColumn: { table: 'license_groups', column: { name: 'seats_used', type: 'integer', notNull: true, default: 0 } } },
      { addColumn: { table: 'license_groups', column: { name: 'params', type: 'text', notNull: true, default: '{}' } } },
      { addColumn: { table: 'license_groups', column: { name: 'updated_at', type: 'text' } } },
      { sql: { sqlite: UPDATED_AT, postgres: UPDATED_AT } },
      {
        createTable: {
          name: 'license_group_closure',
          columns: [
            { name: 'ancestor', type: 'text', notNull: true, references: 'license_groups(id)' },
            { name: 'descendant', type: 'text', notNull: true, references: 'license_groups(id)' },
            { name: 'depth', type: 'integer', notNull: true },
          ],
          primaryKey: ['ancestor', 'descendant'],
        },
      },
      { createIndex: { name: 'license_group_closure_descendant', table: 'license_group_closure', columns: ['descendant', 'depth'] } },
      { sql: { sqlite: CLOSURE_OF_EXISTING, postgres: CLOSURE_OF_EXISTING } },
      { sql: { sqlite: SEATS_OF_EXISTING, postgres: SEATS_OF_EXISTING } },
      // A session works in one group of its user's scope (SPEC §7.5); a user's last choice is remembered.
      { addColumn: { table: 'sessions', column: { name: 'tenant', type: 'text', references: 'license_groups(id)' } } },
      {
        createTable: {
          name: 'user_preferences',
          columns: [
            { name: 'user_key', type: 'text', notNull: true, references: 'users(key)' },
            { name: 'last_tenant', type: 'text', references: 'license_groups(id)' },
          ],
          primaryKey: ['user_key'],
        },
      },
    ],
  },
  {
    // SPEC §10.1: the outbox. Events are numbered by the application from a counter inside the
    // batch's lock, so seq is the commit order on both stores and never reused after retention
    // deletes old events. A row holds a run of a commit's events that the same scopes see, and
    // what the events of one commit share is kept once per commit.
    // SPEC §10.4: the lease of the one task runner of a store.
    version: 6,
    name: 'events',
    steps: [
      {
        createTable: {
          name: 'event_runs',
          columns: [
            { name: 'seq', type: 'bigint', notNull: true },
            { name: 'last_seq', type: 'bigint', notNull: true },
            { name: 'commit_seq', type: 'bigint', notNull: true },
            { name: 'license_group', type: 'text', notNull: true },
            { name: 'user_group', type: 'text' },
            { name: 'data', type: 'text', notNull: true },
          ],
          primaryKey: ['seq'],
        },
      },
      {
        createTable: {
          name: 'event_commits',
          columns: [
            { name: 'first_seq', type: 'bigint', notNull: true },
            { name: 'last_seq', type: 'bigint', notNull: true },
            { name: 'time', type: 'text', notNull: true },
            { name: 'batch_id', type: 'text' },
            { name: 'actor_credential', type: 'text', notNull: true },
            { name: 'actor_user', type: 'text' },
            { name: 'actor_user_key', type: 'text' },
          ],
          primaryKey: ['first_seq'],
        },
      },
      {
        createTable: {
          name: 'counters',
          columns: [
            { name: 'name', type: 'text', notNull: true },
            { name: 'value', type: 'bigint', notNull: true },
          ],
          primaryKey: ['name'],
        },
      },
      { sql: { sqlite: EVENT_COUNTER, postgres: EVENT_COUNTER } },
      {
        createTable: {
          name: 'task_leases',
          columns: [
            { name: 'name', type: 'text', notNull: true },
            { name: 'holder', type: 'text', notNull: true },
            { name: 'expires_at', type: 'bigint', notNull: true },
          ],
          primaryKey: ['name'],
        },
      },
    ],
  },
  {
    // SPEC §10.2: webhook subscriptions. A subscription is a cursor into the events (delivered_seq)
    // with the delivery being retried and the last outcome; it belongs to a group, which cannot be
    // deleted while it has one.
    version: 7,
    name: 'subscriptions',
    steps: [
      {
        createTable: {
          name: 'subscriptions',
          columns: [
            { name: 'id', type: 'text', notNull: true },
            { name: 'url', type: 'text', notNull: true },
            { name: 'events', type: 'text', notNull: true },
            { name: 'secret', type: 'text', notNull: true },
            { name: 'previous_secret', type: 'text' },
            { name: 'secret_rotated_at', type: 'text' },
            { name: 'exclude_own', type: 'flag', notNull: true },
            { name: 'license_group', type: 'text', notNull: true, references: 'license_groups(id)' },
            { name: 'state', type: 'text', notNull: true },
            { name: 'owner_credential', type: 'text', notNull: true },
            { name: 'owner_user', type: 'text' },
            { name: 'delivered_seq', type: 'bigint', notNull: true },
            { name: 'delivery_id', type: 'text' },
            { name: 'delivery_time', type: 'text' },
            { name: 'delivery_up_to', type: 'bigint' },
            { name: 'delivery_digest', type: 'text' },
            { name: 'attempts', type: 'integer', notNull: true, default: 0 },
            { name: 'next_attempt_at', type: 'bigint' },
            { name: 'last_delivery_seq', type: 'bigint' },
            { name: 'last_delivery_status', type: 'integer' },
            { name: 'last_delivery_at', type: 'text' },
            { name: 'last_error', type: 'text' },
            { name: 'last_error_at', type: 'text' },
            { name: 'created_at', type: 'text', notNull: true },
            { name: 'updated_at', type: 'text', notNull: true },
          ],
          primaryKey: ['id'],
        },
      },
      { createIndex: { name: 'subscriptions_license_group', table: 'subscriptions', columns: ['license_group'] } },
    ],
  },
  {
    // SPEC §10.3: date actions, and what each did for an object and a due date, so it fires once;
    // users' last login, a date the actions may count from. The column is named `act`: DO is a
    // reserved word of PostgreSQL.
    version: 8,
    name: 'date-actions',
    steps: [
      { addColumn: { table: 'users', column: { name: 'last_login_at', type: 'text' } } },
      {
        createTable: {
          name: 'date_actions',
          columns: [
            { name: 'id', type: 'text', notNull: true },
            { name: 'entity', type: 'text', notNull: true },
            { name: 'field', type: 'text', notNull: true },
            { name: 'offsets', type: 'text', notNull: true, default: '[]' },
            { name: 'act', type: 'text', notNull: true },
            { name: 'message', type: 'text' },
            { name: 'license_group', type: 'text', notNull: true, references: 'license_groups(id)' },
            { name: 'active', type: 'flag', notNull: true, default: 1 },
            { name: 'created_at', type: 'text', notNull: true },
            { name: 'updated_at', type: 'text', notNull: true },
          ],
          primaryKey: ['id'],
        },
      },
      { createIndex: { name: 'date_actions_license_group', table: 'date_actions', columns: ['license_group'] } },
      {
        createTable: {
          name: 'date_action_fired',
          columns: [
            { name: 'action_id', type: 'text', notNull: true, references: 'date_actions(id)' },
            { name: 'entity', type: 'text', notNull: true },
            { name: 'object_key', type: 'text', notNull: true },
            { name: 'due_date', type: 'text', notNull: true },
            { name: 'outcome', type: 'text', notNull: true },
            { name: 'reason', type: 'text' },
            { name: 'fired_at', type: 'text', notNull: true },
          ],
          primaryKey: ['action_id', 'entity', 'object_key', 'due_date'],
        },
      },
      // A deleted company's rows go with it (its id may be taken again): found by the object.
      { createIndex: { name: 'date_action_fired_object', table: 'date_action_fired', columns: ['entity', 'object_key'] } },
    ],
  },
];
