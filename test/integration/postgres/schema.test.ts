import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../../src/store/open-store';
import { TABLES, type ColumnType } from '../../../src/store/schema';
import { createTestDatabase, dropTestDatabase } from '../../support/postgres-dump';
import { queryRows as sqliteRows } from '../../support/sqlite-dump';
import { queryRows as postgresRows } from '../../support/postgres-dump';

/**
 * The two stores keep one schema: the same tables, columns (in order, with their types as the
 * code sees them, nullability and defaults), keys and indexes — and both are what schema.ts says.
 * A migration written for one store only, or a column schema.ts does not know, fails here.
 */
interface Column {
  name: string;
  /** text, integer (also flags) or bigint, as schema.ts types them. */
  type: string;
  notNull: boolean;
  default: string | null;
  primaryKey: boolean;
}

interface Index {
  name: string;
  columns: string[];
  unique: boolean;
}

interface Catalog {
  tables: Record<string, { columns: Column[]; indexes: Index[] }>;
}

/** A default as both catalogs can agree on: the literal, without PostgreSQL's cast. */
const literal = (value: unknown): string | null => (value === null || value === undefined ? null : String(value).replace(/::[a-z ]+$/, '').replace(/^'(.*)'$/, '$1'));

function sqliteCatalog(path: string): Catalog {
  const tables: Catalog['tables'] = {};
  const names = sqliteRows(path, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").map((r) => String(r.name));
  for (const table of names) {
    const columns = sqliteRows(path, `SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info('${table}') ORDER BY cid`).map(
      (c): Column => ({
        name: String(c.name),
        // SQLite stores every whole number as INTEGER; which of them is a BIGINT only the PostgreSQL side can tell.
        type: String(c.type).toLowerCase(),
        notNull: c.notnull === 1 || Number(c.pk) > 0,
        default: literal(c.dflt_value),
        primaryKey: Number(c.pk) > 0,
      }),
    );
    const indexes = sqliteRows(path, `SELECT name, "unique", origin FROM pragma_index_list('${table}') WHERE origin = 'c' ORDER BY name`).map(
      (i): Index => ({
        name: String(i.name),
        columns: sqliteRows(path, `SELECT name FROM pragma_index_info('${String(i.name)}') ORDER BY seqno`).map((c) => String(c.name)),
        unique: i.unique === 1,
      }),
    );
    tables[table] = { columns, indexes };
  }
  return { tables };
}

function postgresCatalog(url: string): Catalog {
  const tables: Catalog['tables'] = {};
  const names = postgresRows(url, "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name").map((r) => String(r.name));
  for (const table of names) {
    const keys = new Set(
      postgresRows(
        url,
        `SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
          WHERE i.indrelid = CAST(? AS regclass) AND i.indisprimary`,
        table,
      ).map((r) => String(r.name)),
    );
    const columns = postgresRows(
      url,
      `SELECT column_name AS name, data_type AS type, is_nullable, column_default, collation_name, is_identity
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position`,
      table,
    ).map((c): Column & { collation: unknown } => ({
      name: String(c.name),
      type: String(c.type),
      notNull: c.is_nullable === 'NO',
      default: c.is_identity === 'YES' ? null : literal(c.column_default),
      primaryKey: keys.has(String(c.name)),
      collation: c.collation_name,
    }));
    // Every text column of the application's tables compares bytes, as SQLite's BINARY does.
    if (table !== 'schema_migrations') for (const c of columns) if (c.type === 'text') expect({ table, column: c.name, collation: c.collation }).toEqual({ table, column: c.name, collation: 'C' });
    const indexes = postgresRows(
      url,
      `SELECT c.relname AS name, i.indisunique AS is_unique,
              (SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) AS columns
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = CAST(? AS regclass) AND NOT i.indisprimary ORDER BY c.relname`,
      table,
    ).map((i): Index => ({ name: String(i.name), columns: String(i.columns).split(','), unique: i.is_unique === true }));
    tables[table] = { columns: columns.map(({ collation: _c, ...column }) => column), indexes };
  }
  return { tables };
}

/** What schema.ts's types become in each store's catalog. */
const CATALOG_TYPE: Record<'sqlite' | 'postgres', Record<ColumnType, string>> = {
  sqlite: { text: 'text', integer: 'integer', flag: 'integer', bigint: 'integer' },
  postgres: { text: 'text', integer: 'integer', flag: 'integer', bigint: 'bigint' },
};

describe('one schema for both stores (src/store/schema.ts, src/store/migrations.ts)', () => {
  let dir: string;
  let url: string;
  let sqlite: Catalog;
  let postgres: Catalog;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flexi-schema-'));
    url = createTestDatabase();
    await (await openStore(join(dir, 'store.db'))).close();
    await (await openStore(url)).close();
    sqlite = sqliteCatalog(join(dir, 'store.db'));
    postgres = postgresCatalog(url);
  });
  afterAll(() => {
    dropTestDatabase(url);
    rmSync(dir, { recursive: true, force: true });
  });

  test('when both stores are migrated, then they have the same tables, columns, keys, defaults and indexes', () => {
    const comparable = (catalog: Catalog, kind: 'sqlite' | 'postgres'): Catalog => ({
      tables: Object.fromEntries(
        Object.entries(catalog.tables).map(([name, t]) => [
          name,
          { columns: t.columns.map((c) => ({ ...c, type: kind === 'postgres' && c.type === 'bigint' ? 'integer' : c.type })), indexes: t.indexes },
        ]),
      ),
    });
    expect(comparable(postgres, 'postgres')).toEqual(comparable(sqlite, 'sqlite'));
  });

  test.each(['sqlite', 'postgres'] as const)('when the %s store is migrated, then every table of schema.ts has exactly its columns, types and key', (kind) => {
    const catalog = kind === 'sqlite' ? sqlite : postgres;
    for (const table of TABLES) {
      const stored = catalog.tables[table.name];
      expect({ table: table.name, exists: stored !== undefined }).toEqual({ table: table.name, exists: true });
      const expected = [
        ...table.generated.map((g) => [g.name, CATALOG_TYPE[kind][g.type]]),
        ...table.columnNames.map((name, i) => [name, CATALOG_TYPE[kind][table.columnTypes[i]]]),
      ].sort();
      expect({ table: table.name, columns: stored.columns.map((c) => [c.name, c.type]).sort() }).toEqual({ table: table.name, columns: expected });
      expect({ table: table.name, key: stored.columns.filter((c) => c.primaryKey).map((c) => c.name).sort() }).toEqual({ table: table.name, key: [...table.key].sort() });
    }
    // Bookkeeping tables only: schema_migrations is the migrator's.
    expect(Object.keys(catalog.tables).filter((t) => !TABLES.some((d) => d.name === t))).toEqual(['schema_migrations']);
  });
});
