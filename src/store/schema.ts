import type { AccessRecord } from '../domain/access';
import { COMPANY_FIELDS, type CompanyRecord } from '../domain/companies';
import type { PlainField } from '../domain/fields';
import type { GroupRecord } from '../domain/groups';
import { PERMISSION_NAMES, type Permissions } from '../domain/permissions';
import { USER_FIELDS, type UserRecord } from '../domain/users';

/**
 * The tables as both stores keep them — the same columns, with the same values: flags as 0/1,
 * times as ISO 8601 text written by the application, text compared byte by byte (COLLATE "C" on
 * PostgreSQL, BINARY on SQLite) — so one mapping between records and rows serves both. The
 * migrations (migrations.ts) build exactly these columns; test/integration/schema.test.ts reads
 * both stores' catalogs and fails when they or this file drift apart.
 */
export type Row = Record<string, unknown>;

/** How a column travels: TEXT, a whole number, a 0/1 flag, or a BIGINT (journal sequence, epoch milliseconds). */
export type ColumnType = 'text' | 'integer' | 'flag' | 'bigint';

export interface ColumnMap<R> {
  readonly name: string;
  readonly type: ColumnType;
  /** The column's value for a record. */
  readonly get: (record: R) => unknown;
  /** Copies the column's value from a row into the record being built. */
  readonly set: (record: R, value: unknown) => void;
}

export interface Table<R> {
  readonly name: string;
  readonly key: readonly string[];
  /** The columns a record maps to, in order; then created_at and updated_at when `stamped`. */
  readonly columns: readonly ColumnMap<R>[];
  readonly stamped: boolean;
  /** Columns the database fills itself (a sequence), never written by the application. */
  readonly generated: readonly { name: string; type: ColumnType }[];
  /** Every column name, in the order of `values`. */
  readonly columnNames: readonly string[];
  readonly columnTypes: readonly ColumnType[];
  /** A record's row as values in the order of columnNames; `now` fills created_at and updated_at. */
  values(record: R, now?: string): unknown[];
  fromRow(row: Row): R;
}

type Writable<R> = { -readonly [K in keyof R]: R[K] };

const text = <R>(name: string, property: keyof R): ColumnMap<R> => ({
  name,
  type: 'text',
  get: (r) => r[property] ?? null,
  set: (r, v) => void ((r as Writable<R>)[property] = v as R[keyof R]),
});

const flag = <R>(name: string, property: keyof R): ColumnMap<R> => ({
  name,
  type: 'flag',
  get: (r) => (r[property] ? 1 : 0),
  set: (r, v) => void ((r as Writable<R>)[property] = (v === 1 || v === true) as R[keyof R]),
});

const integer = <R>(name: string, property: keyof R, type: 'integer' | 'bigint' = 'integer'): ColumnMap<R> => ({
  name,
  type,
  get: (r) => r[property] ?? null,
  set: (r, v) => void ((r as Writable<R>)[property] = (v === null || v === undefined ? null : Number(v)) as R[keyof R]),
});

/** The columns of the plain fields of domain/fields.ts. */
const plain = <R>(fields: readonly PlainField[]): ColumnMap<R>[] => fields.map((f) => text<R>(f.column, f.name as keyof R));

interface TableOptions {
  stamped?: boolean;
  generated?: readonly { name: string; type: ColumnType }[];
}

function table<R>(name: string, key: readonly string[], columns: readonly ColumnMap<R>[], options: TableOptions = {}): Table<R> {
  const stamped = options.stamped ?? false;
  const columnNames = [...columns.map((c) => c.name), ...(stamped ? ['created_at', 'updated_at'] : [])];
  const columnTypes: ColumnType[] = [...columns.map((c) => c.type), ...(stamped ? (['text', 'text'] as const) : [])];
  return {
    name,
    key,
    columns,
    stamped,
    generated: options.generated ?? [],
    columnNames,
    columnTypes,
    values(record, now) {
      const values = columns.map((c) => c.get(record));
      if (stamped) values.push(now, now);
      return values;
    },
    fromRow(row) {
      const record = {} as R;
      for (const c of columns) c.set(record, row[c.name]);
      return record;
    },
  };
}

/** A value kept as JSON text (a group's own parameters). */
const json = <R>(name: string, property: keyof R): ColumnMap<R> => ({
  name,
  type: 'text',
  get: (r) => JSON.stringify(r[property] ?? {}),
  set: (r, v) => void ((r as Writable<R>)[property] = JSON.parse(typeof v === 'string' && v ? v : '{}') as R[keyof R]),
});

/** perm_manage_all for manageAll, and so on. */
export const permissionColumn = (p: string): string => `perm_${p.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`)}`;

const permission = (p: (typeof PERMISSION_NAMES)[number]): ColumnMap<UserRecord> => ({
  name: permissionColumn(p),
  type: 'flag',
  get: (u) => (u.permissions[p] ? 1 : 0),
  set: (u, v) => void ((u.permissions ??= {} as Permissions)[p] = v === 1),
});

export const USERS = table<UserRecord>(
  'users',
  ['key'],
  [
    text('key', 'key'),
    text('username', 'username'),
    ...plain<UserRecord>(USER_FIELDS),
    text('password_hash', 'passwordHash'),
    ...PERMISSION_NAMES.map(permission),
    text('default_role', 'defaultRole'),
    flag('blocked', 'blocked'),
    text('block_message', 'blockMessage'),
    text('user_type', 'userType'),
    flag('deleted', 'deleted'),
    text('license_group', 'licenseGroup'),
  ],
  { stamped: true },
);

export const COMPANIES = table<CompanyRecord>(
  'companies',
  ['id'],
  [
    text('id', 'id'),
    text('name', 'name'),
    text('country', 'country'),
    ...plain<CompanyRecord>(COMPANY_FIELDS),
    text('type', 'type'),
    flag('show', 'show'),
    text('license_group', 'licenseGroup'),
  ],
  { stamped: true },
);

export const ACCESS = table<AccessRecord>('access', ['user_key', 'company_id'], [text('user_key', 'userKey'), text('company_id', 'companyId'), text('role', 'role')], {
  stamped: true,
});

export interface FingerprintRecord {
  fingerprint: string;
  scope: string;
  label: string | null;
  createdAt: string;
  revokedAt: string | null;
}

export const FINGERPRINTS = table<FingerprintRecord>('fingerprints', ['fingerprint'], [
  text('fingerprint', 'fingerprint'),
  text('scope', 'scope'),
  text('label', 'label'),
  text('created_at', 'createdAt'),
  text('revoked_at', 'revokedAt'),
]);

export interface JournalEntry {
  batchId: string;
  credential: string;
  principal: string;
  impersonated: string | null;
  /** The key of the user the batch acted as (session or impersonation), for SPEC §6 reading. */
  actingUser: string | null;
  scope: string;
  receivedAt: string;
  finishedAt: string;
  bodySha256: string;
  resultXml: string;
}

/** The journal's own `seq` (its order) is the database's; an entry is written without it. */
export const JOURNAL = table<JournalEntry>('batch_journal', ['seq'], [
  text('batch_id', 'batchId'),
  text('credential', 'credential'),
  text('principal', 'principal'),
  text('impersonated', 'impersonated'),
  text('acting_user_key', 'actingUser'),
  text('scope', 'scope'),
  text('received_at', 'receivedAt'),
  text('finished_at', 'finishedAt'),
  text('body_sha256', 'bodySha256'),
  text('result_xml', 'resultXml'),
], { generated: [{ name: 'seq', type: 'bigint' }] });

export interface SessionRecord {
  idHash: string;
  userKey: string;
  createdAt: number;
  lastUsedAt: number;
  /** The license group the session works in (SPEC §7.5); null: its user's own group. */
  tenant: string | null;
}

export const SESSIONS = table<SessionRecord>('sessions', ['id_hash'], [
  text('id_hash', 'idHash'),
  text('user_key', 'userKey'),
  integer('created_at', 'createdAt', 'bigint'),
  integer('last_used_at', 'lastUsedAt', 'bigint'),
  text('tenant', 'tenant'),
]);

/** The license group tree (SPEC §7). */
export const LICENSE_GROUPS = table<GroupRecord>(
  'license_groups',
  ['id'],
  [text('id', 'id'), text('name', 'name'), text('parent_id', 'parentId'), integer('seats', 'seats'), integer('seats_used', 'seatsUsed'), json('params', 'params')],
  { stamped: true },
);

export interface ClosureRow {
  ancestor: string;
  descendant: string;
  depth: number;
}

/** Every (ancestor, descendant) pair of the tree, a group being its own ancestor at depth 0. */
export const LICENSE_GROUP_CLOSURE = table<ClosureRow>('license_group_closure', ['ancestor', 'descendant'], [
  text('ancestor', 'ancestor'),
  text('descendant', 'descendant'),
  integer('depth', 'depth'),
]);

export interface UserPreferences {
  userKey: string;
  /** The tenant the user selected at its last login with one (SPEC §7.5). */
  lastTenant: string | null;
}

export const USER_PREFERENCES = table<UserPreferences>('user_preferences', ['user_key'], [text('user_key', 'userKey'), text('last_tenant', 'lastTenant')]);

/** One event of the outbox (SPEC §10.1): its JSON and the columns the feed and the deliveries filter on. */
export interface EventRow {
  /** The commit order, numbered by the application from the counter `event_seq` inside the batch's lock. */
  seq: number;
  id: string;
  type: string;
  time: string;
  /** The group whose scope sees the event. */
  group: string;
  /** For access events, the user's group, which must be in scope too. */
  userGroup: string | null;
  /** The credential and the acting user's key that caused it, for a subscription's excludeOwn. */
  actorCredential: string;
  actorUserKey: string | null;
  /** The event's JSON without `seq`. */
  body: string;
}

export const EVENTS = table<EventRow>('events', ['seq'], [
  integer('seq', 'seq', 'bigint'),
  text('id', 'id'),
  text('type', 'type'),
  text('time', 'time'),
  text('license_group', 'group'),
  text('user_group', 'userGroup'),
  text('actor_credential', 'actorCredential'),
  text('actor_user_key', 'actorUserKey'),
  text('body', 'body'),
]);

/** Numbers that only grow (`event_seq`: the last event's seq), kept apart from the rows they number, which retention deletes. */
export interface CounterRow {
  name: string;
  value: number;
}

export const COUNTERS = table<CounterRow>('counters', ['name'], [text('name', 'name'), integer('value', 'value', 'bigint')]);

/** A lease (SPEC §10.4): one task runner per store holds `tasks` until expires_at (epoch ms) and renews it. */
export interface LeaseRow {
  name: string;
  holder: string;
  expiresAt: number;
}

export const TASK_LEASES = table<LeaseRow>('task_leases', ['name'], [text('name', 'name'), text('holder', 'holder'), integer('expires_at', 'expiresAt', 'bigint')]);

/**
 * A webhook subscription (SPEC §10.2): what a batch sets (url … owner) and what the deliverer keeps
 * (its cursor `delivered_seq`, the delivery being retried, the last outcome). Batches write only
 * the first part, and the few transitions of the second they cause (sql-subscriptions.ts).
 */
export interface SubscriptionRow {
  id: string;
  url: string;
  /** The patterns, space-separated. */
  events: string;
  secret: string;
  previousSecret: string | null;
  secretRotatedAt: string | null;
  excludeOwn: boolean;
  licenseGroup: string;
  state: string;
  ownerCredential: string;
  ownerUser: string | null;
  deliveredSeq: number;
  deliveryId: string | null;
  deliveryTime: string | null;
  deliveryUpTo: number | null;
  deliveryDigest: string | null;
  attempts: number;
  /** Epoch ms. */
  nextAttemptAt: number | null;
  lastDeliverySeq: number | null;
  lastDeliveryStatus: number | null;
  lastDeliveryAt: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
}

export const SUBSCRIPTIONS = table<SubscriptionRow>(
  'subscriptions',
  ['id'],
  [
    text('id', 'id'),
    text('url', 'url'),
    text('events', 'events'),
    text('secret', 'secret'),
    text('previous_secret', 'previousSecret'),
    text('secret_rotated_at', 'secretRotatedAt'),
    flag('exclude_own', 'excludeOwn'),
    text('license_group', 'licenseGroup'),
    text('state', 'state'),
    text('owner_credential', 'ownerCredential'),
    text('owner_user', 'ownerUser'),
    integer('delivered_seq', 'deliveredSeq', 'bigint'),
    text('delivery_id', 'deliveryId'),
    text('delivery_time', 'deliveryTime'),
    integer('delivery_up_to', 'deliveryUpTo', 'bigint'),
    text('delivery_digest', 'deliveryDigest'),
    integer('attempts', 'attempts'),
    integer('next_attempt_at', 'nextAttemptAt', 'bigint'),
    integer('last_delivery_seq', 'lastDeliverySeq', 'bigint'),
    integer('last_delivery_status', 'lastDeliveryStatus'),
    text('last_delivery_at', 'lastDeliveryAt'),
    text('last_error', 'lastError'),
    text('last_error_at', 'lastErrorAt'),
  ],
  { stamped: true },
);

/** What the schema test compares with both stores' catalogs. */
export type TableShape = Pick<Table<unknown>, 'name' | 'key' | 'columnNames' | 'columnTypes' | 'generated'>;

export const TABLES: readonly TableShape[] = [
  LICENSE_GROUPS,
  LICENSE_GROUP_CLOSURE,
  USERS,
  COMPANIES,
  ACCESS,
  FINGERPRINTS,
  JOURNAL,
  SESSIONS,
  USER_PREFERENCES,
  EVENTS,
  COUNTERS,
  TASK_LEASES,
  SUBSCRIPTIONS,
];
