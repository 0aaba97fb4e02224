import type { Migration } from '../sqlite/migrations';

/**
 * The PostgreSQL twin of SQLITE_MIGRATIONS: same numbers, names, tables and columns, so the
 * same logical state reads back as the same rows from either store.
 *
 * - Every TEXT column is COLLATE "C": comparisons and ORDER BY then work on bytes, as SQLite's
 *   BINARY collation does, whatever the database's locale (listing order, the company id prefix
 *   range `id >= p AND id < p || '{'`).
 * - Flags stay INTEGER 0/1 (not boolean), timestamps stay ISO 8601 TEXT written by the
 *   application, exactly as in SQLite.
 * - Millisecond epoch values (sessions) and the journal sequence are BIGINT; the store's pool
 *   parses BIGINT as a JS number (all such values are far below 2^53).
 *
 * Numbered, append-only: a released migration never changes; the next change is a new entry
 * here and in SQLITE_MIGRATIONS under the same number.
 */
const TEXT = 'TEXT COLLATE "C"';

/** The current UTC time as SQLite's strftime('%Y-%m-%dT%H:%M:%fZ', 'now') writes it. */
const NOW_ISO = `to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
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
  {
    version: 2,
    name: 'sessions',
    sql: `
      CREATE TABLE sessions (
        id_hash      ${TEXT} PRIMARY KEY,
        user_key     ${TEXT} NOT NULL REFERENCES users(key),
        created_at   BIGINT NOT NULL,
        last_used_at BIGINT NOT NULL
      );
      CREATE INDEX sessions_user ON sessions(user_key);
    `,
  },
  {
    // As SQLITE_MIGRATIONS 3: whose batch an entry is, backfilled from what earlier entries say.
    version: 3,
    name: 'journal-acting-user',
    sql: `
      ALTER TABLE batch_journal ADD COLUMN acting_user_key ${TEXT};
      UPDATE batch_journal SET acting_user_key = lower(impersonated) WHERE impersonated IS NOT NULL;
      UPDATE batch_journal SET acting_user_key = lower(substr(credential, 9)) WHERE credential LIKE 'session:%';
      CREATE INDEX batch_journal_acting_user ON batch_journal(batch_id, acting_user_key, seq);
    `,
  },
];
