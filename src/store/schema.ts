import type { AccessRecord } from '../domain/access';
import { COMPANY_FIELDS, type CompanyRecord } from '../domain/companies';
import type { DateActionRecord } from '../domain/date-actions';
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
  /**
   * Columns that writing a record never sets: a sequence the database fills (the journal's seq), or
   * a value only a statement of its own writes (a user's last login, which a batch's upsert of the
   * user must not overwrite with what it read).
   */
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
  // SPEC §10.3: set by each successful login (SqlStore.createSession), read by the views and the date actions.
  { stamped: true, generated: [{ name: 'last_login_at', type: 'text' }] },
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

/**
 * The outbox (SPEC §10.1), a run of events per row: the consecutive events of one commit that the
 * same scopes see (the same group and user group), `seq` to `last_seq`. A batch of ten thousand
 * changes in one tenant is one row, not ten thousand. What every event of a commit shares (its
 * time, batch id and actor) is kept once, in EVENT_COMMITS; an event's id is derived from its seq
 * and that time (domain/events.ts eventId).
 */
export interface EventRunRow {
  /** The first event's seq: the commit order, numbered by the application from the counter `event_seq` inside the batch's lock. */
  seq: number;
  lastSeq: number;
  /** The first seq of the run's commit: its row in EVENT_COMMITS. */
  commitSeq: number;
  /** The group whose scope sees the events. */
  group: string;
  /** For access events, the user's group, which must be in scope too. */
  userGroup: string | null;
  /** The events as a JSON array, in seq order; a long one deflated (domain/events.ts encodeRun). */
  data: string;
}

export const EVENT_RUNS = table<EventRunRow>('event_runs', ['seq'], [
  integer('seq', 'seq', 'bigint'),
  integer('last_seq', 'lastSeq', 'bigint'),
  integer('commit_seq', 'commitSeq', 'bigint'),
  text('license_group', 'group'),
  text('user_group', 'userGroup'),
  text('data', 'data'),
]);

/** What the events of one commit share (SPEC §10.1 `time`, `batchId`, `actor`). */
export interface EventCommitRow {
  firstSeq: number;
  lastSeq: number;
  time: string;
  batchId: string | null;
  actorCredential: string;
  actorUser: string | null;
  /** The acting user's key, for a subscription's excludeOwn. */
  actorUserKey: string | null;
}

export const EVENT_COMMITS = table<EventCommitRow>('event_commits', ['first_seq'], [
  integer('first_seq', 'firstSeq', 'bigint'),
  integer('last_seq', 'lastSeq', 'bigint'),
  text('time', 'time'),
  text('batch_id', 'batchId'),
  text('actor_credential', 'actorCredential'),
  text('actor_user', 'actorUser'),
  text('actor_user_key', 'actorUserKey'),
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

/** SPEC §10.3. The offsets are kept as JSON (`[{"unit":"months","amount":3}]`): read and written whole, never queried. */
export const DATE_ACTIONS = table<DateActionRecord>(
  'date_actions',
  ['id'],
  [
    text('id', 'id'),
    text('entity', 'entity'),
    text('field', 'field'),
    {
      name: 'offsets',
      type: 'text',
      get: (r) => JSON.stringify(r.offsets),
      set: (r, v) => void (r.offsets = JSON.parse(typeof v === 'string' && v ? v : '[]') as DateActionRecord['offsets']),
    },
    text('act', 'do'),
    text('message', 'message'),
    text('license_group', 'licenseGroup'),
    flag('active', 'active'),
  ],
  { stamped: true },
);

/**
 * What a date action did for an object and a due date (SPEC §10.3: once per object and due date).
 * `done` and `skipped` (already blocked or hidden) are final; `failed` is tried again at each run,
 * and `reason` tells whether a TASK_FAILED event has already said so.
 */
export interface DateActionFiredRow {
  actionId: string;
  entity: string;
  /** The user's key or the company's id. */
  objectKey: string;
  dueDate: string;
  outcome: 'done' | 'skipped' | 'failed';
  reason: string | null;
  firedAt: string;
}

export const DATE_ACTION_FIRED = table<DateActionFiredRow>('date_action_fired', ['action_id', 'entity', 'object_key', 'due_date'], [
  text('action_id', 'actionId'),
  text('entity', 'entity'),
  text('object_key', 'objectKey'),
  text('due_date', 'dueDate'),
  text('outcome', 'outcome'),
  text('reason', 'reason'),
  text('fired_at', 'firedAt'),
]);

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
  EVENT_RUNS,
  EVENT_COMMITS,
  COUNTERS,
  TASK_LEASES,
  SUBSCRIPTIONS,
  DATE_ACTIONS,
  DATE_ACTION_FIRED,
];
