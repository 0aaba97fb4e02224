import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { AccessRecord } from './access';
import { COMPANY_FIELDS, type CompanyRecord } from './companies';
import type { PlainField } from './fields';
import { GROUP_PARAMS, type GroupRecord } from './groups';
import { PERMISSION_NAMES, type Permissions } from './permissions';
import { USER_FIELDS, type UserRecord } from './users';

/**
 * Events (SPEC §10.1): what a committed change tells the world. The planner derives them from its
 * working state as it changes it, so they describe exactly what the batch commits; the store gives
 * each its `seq`, `id` and `time` in the transaction of the change (a transactional outbox).
 */
export const EVENT_TYPES = [
  'USER_CREATED',
  'USER_UPDATED',
  'USER_BLOCKED',
  'USER_UNBLOCKED',
  'USER_DELETED',
  'USER_RESTORED',
  'COMPANY_CREATED',
  'COMPANY_UPDATED',
  'COMPANY_HIDDEN',
  'COMPANY_SHOWN',
  'COMPANY_DELETED',
  'ACCESS_GRANTED',
  'ACCESS_CHANGED',
  'ACCESS_REVOKED',
  'LICENSE_GROUP_CREATED',
  'LICENSE_GROUP_UPDATED',
  'LICENSE_GROUP_DELETED',
  'REMINDER',
  'TASK_FAILED',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(text: string): text is EventType {
  return (EVENT_TYPES as readonly string[]).includes(text);
}

/** One changed value: `{from, to}`, or for a password only that it changed (never a value or a hash). */
export type Change = { from: unknown; to: unknown } | { changed: true };

export interface EventEntity {
  /** The entity types of the result document (SPEC §5.1). */
  type: 'USER' | 'COMPANY' | 'ACCESS_LIST' | 'LICENSE_GROUP' | 'DATE_ACTION' | 'SUBSCRIPTION';
  id: string;
}

/**
 * An event's own JSON members: everything but what the store adds (seq, id, time, group, batchId,
 * actor). `changes` says what an update changed; `values`, what a created or restored object starts
 * with. Further members are the event's own (an access event's `user`, `company` and `role`; a
 * REMINDER's action and message).
 */
export interface EventBody {
  type: EventType;
  entity: EventEntity;
  changes?: Record<string, Change>;
  values?: Record<string, unknown>;
  [member: string]: unknown;
}

/**
 * An event as the planner (or the task runner) makes it, before the store numbers it. `group` is the
 * license group whose scope sees it; an access event whose user lives in another group also needs
 * that group in scope (`userGroup`), so that a principal never learns of a user outside its scope.
 * The store keeps both beside the body, once for a run of events.
 *
 * The events a large batch makes by the thousand (a user or company created, a grant) carry how to
 * build their body rather than the body: it is built when the store writes its run, from records
 * the planner never changes once it has put them. Built during planning, 12 000 bodies of a
 * 10 000-operation batch lived until the commit, and the garbage collector copied them at every
 * scavenge on the way; built run by run, they are garbage at once. `bodyOf` gives the body.
 */
export interface PlannedEvent {
  group: string;
  userGroup?: string;
  body: EventBody | (() => EventBody);
}

export function bodyOf(event: PlannedEvent): EventBody {
  return typeof event.body === 'function' ? event.body() : event.body;
}

/** Who caused the events of one commit (SPEC §10.1 `actor`). */
export interface EventActor {
  /** `certificate AB:CD:…`, `server NAME`, `session`, `cli` or `tasks`. */
  credential: string;
  /** The acting user's username (session, impersonation, task user), else null. */
  user: string | null;
}

/** The events of one commit with what they share. */
export interface EventBatch {
  batchId: string | null;
  actor: EventActor;
  events: PlannedEvent[];
}

/** An event as the feed and the webhooks show it. */
export interface StoredEvent extends EventBody {
  seq: number;
  id: string;
  time: string;
  group: string;
  batchId: string | null;
  actor: EventActor;
}

/**
 * Whether `type` is one of `patterns` (SPEC §10.2 `<events>`): a type, or a prefix followed by `*`.
 * An empty list matches every type.
 */
export function matchesEventPatterns(patterns: readonly string[], type: string): boolean {
  if (patterns.length === 0) return true;
  return patterns.some((p) => (p.endsWith('*') ? type.startsWith(p.slice(0, -1)) : p === type));
}

// ── deriving events from the states before and after an operation ──────────────────────

function fieldChanges<R>(fields: readonly PlainField[], before: R, after: R, into: Record<string, Change>): void {
  for (const f of fields) {
    const from = (before as Record<string, unknown>)[f.name] ?? null;
    const to = (after as Record<string, unknown>)[f.name] ?? null;
    if (from !== to) into[f.name] = { from, to };
  }
}

/** The fields of `fields` that `record` has a value for. */
function fieldValues<R>(fields: readonly PlainField[], record: R, into: Record<string, unknown>): void {
  for (const f of fields) {
    const value = (record as Record<string, unknown>)[f.name];
    if (value !== null && value !== undefined) into[f.name] = value;
  }
}

function valueChange(into: Record<string, Change>, name: string, from: unknown, to: unknown): void {
  if (from !== to) into[name] = { from: from ?? null, to: to ?? null };
}

const heldPermissions = (p: Permissions): string[] => PERMISSION_NAMES.filter((n) => p[n]);

const event = (group: string, body: EventBody): PlannedEvent => ({ group, body });

/** What a user starts with when created or restored: its fields, whether it has a password, its permissions, role and type. */
function userValues(user: UserRecord, password: boolean): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  fieldValues(USER_FIELDS, user, values);
  if (password) values.password = 'set';
  const permissions = heldPermissions(user.permissions);
  if (permissions.length) values.permissions = permissions;
  if (user.defaultRole) values.defaultRole = user.defaultRole;
  values.userType = user.userType;
  return values;
}

/**
 * The events of a user going from `before` (undefined: it did not exist) to `after`. `passwordChanged`
 * comes from the planner, which also knows of a plain-text password still to be hashed.
 */
export function userEvents(before: UserRecord | undefined, after: UserRecord, passwordChanged: boolean): PlannedEvent[] {
  const entity: EventEntity = { type: 'USER', id: after.username };
  const group = after.licenseGroup;
  if (before && !before.deleted && after.deleted) return [event(group, { type: 'USER_DELETED', entity })];
  const events: PlannedEvent[] = [];
  if (!before || before.deleted) {
    const type = before ? 'USER_RESTORED' : 'USER_CREATED';
    const password = after.passwordHash !== null || passwordChanged;
    events.push({ group, body: () => ({ type, entity, values: userValues(after, password) }) });
    if (after.blocked) events.push(event(group, { type: 'USER_BLOCKED', entity, values: { blockMessage: after.blockMessage } }));
    return events;
  }
  const changes: Record<string, Change> = {};
  if (before.username !== after.username) changes.username = { from: before.username, to: after.username };
  fieldChanges(USER_FIELDS, before, after, changes);
  if (passwordChanged) changes.password = { changed: true };
  const permissionsFrom = heldPermissions(before.permissions);
  const permissionsTo = heldPermissions(after.permissions);
  if (permissionsFrom.join() !== permissionsTo.join()) changes.permissions = { from: permissionsFrom, to: permissionsTo };
  valueChange(changes, 'defaultRole', before.defaultRole, after.defaultRole);
  valueChange(changes, 'userType', before.userType, after.userType);
  valueChange(changes, 'licenseGroup', before.licenseGroup, after.licenseGroup);
  if (before.blocked && after.blocked) valueChange(changes, 'blockMessage', before.blockMessage, after.blockMessage);
  if (Object.keys(changes).length > 0) events.push(event(group, { type: 'USER_UPDATED', entity, changes }));
  if (!before.blocked && after.blocked) events.push(event(group, { type: 'USER_BLOCKED', entity, values: { blockMessage: after.blockMessage } }));
  if (before.blocked && !after.blocked) events.push(event(group, { type: 'USER_UNBLOCKED', entity }));
  return events;
}

function companyValues(company: CompanyRecord): Record<string, unknown> {
  const values: Record<string, unknown> = { name: company.name, country: company.country };
  fieldValues(COMPANY_FIELDS, company, values);
  values.type = company.type;
  values.show = company.show;
  return values;
}

export function companyEvents(before: CompanyRecord | undefined, after: CompanyRecord): PlannedEvent[] {
  const entity: EventEntity = { type: 'COMPANY', id: after.id };
  const group = after.licenseGroup;
  if (!before) return [{ group, body: () => ({ type: 'COMPANY_CREATED', entity, values: companyValues(after) }) }];
  const changes: Record<string, Change> = {};
  valueChange(changes, 'name', before.name, after.name);
  valueChange(changes, 'country', before.country, after.country);
  fieldChanges(COMPANY_FIELDS, before, after, changes);
  valueChange(changes, 'type', before.type, after.type);
  valueChange(changes, 'licenseGroup', before.licenseGroup, after.licenseGroup);
  const events: PlannedEvent[] = [];
  if (Object.keys(changes).length > 0) events.push(event(group, { type: 'COMPANY_UPDATED', entity, changes }));
  if (before.show && !after.show) events.push(event(group, { type: 'COMPANY_HIDDEN', entity }));
  if (!before.show && after.show) events.push(event(group, { type: 'COMPANY_SHOWN', entity }));
  return events;
}

export function companyDeleted(company: CompanyRecord): PlannedEvent {
  return event(company.licenseGroup, { type: 'COMPANY_DELETED', entity: { type: 'COMPANY', id: company.id } });
}

/**
 * A grant made, changed (`before` its old role) or revoked (`after` undefined), seen from the
 * company's group and the user's. `role` is the role granted, or the one revoked.
 */
export function accessEvent(
  user: Pick<UserRecord, 'username' | 'licenseGroup'>,
  company: { id: string; licenseGroup: string },
  before: AccessRecord['role'] | undefined,
  after: AccessRecord['role'] | undefined,
): PlannedEvent {
  const type = after === undefined ? 'ACCESS_REVOKED' : before === undefined ? 'ACCESS_GRANTED' : 'ACCESS_CHANGED';
  const username = user.username;
  const companyId = company.id;
  const planned: PlannedEvent = {
    group: company.licenseGroup,
    body: () => {
      const body: EventBody = { type, entity: { type: 'ACCESS_LIST', id: `${username}@${companyId}` }, user: username, company: companyId, role: after ?? before };
      if (type === 'ACCESS_CHANGED') body.changes = { role: { from: before, to: after } };
      return body;
    },
  };
  // Seen where both the company and the user are in scope; one group is the usual case.
  if (user.licenseGroup !== company.licenseGroup) planned.userGroup = user.licenseGroup;
  return planned;
}

/**
 * A group created (`before` undefined), changed or deleted (`after` undefined). A deleted group's
 * event belongs to its parent, the nearest group that still exists.
 */
export function groupEvent(before: GroupRecord | undefined, after: GroupRecord | undefined): PlannedEvent | undefined {
  const entity: EventEntity = { type: 'LICENSE_GROUP', id: (after ?? before)?.id as string };
  if (!after) return event(before?.parentId ?? entity.id, { type: 'LICENSE_GROUP_DELETED', entity });
  if (!before) {
    const values: Record<string, unknown> = { name: after.name, parent: after.parentId, seats: after.seats };
    if (Object.keys(after.params).length) values.params = after.params;
    return event(after.id, { type: 'LICENSE_GROUP_CREATED', entity, values });
  }
  const changes: Record<string, Change> = {};
  valueChange(changes, 'name', before.name, after.name);
  valueChange(changes, 'parent', before.parentId, after.parentId);
  valueChange(changes, 'seats', before.seats, after.seats);
  for (const p of GROUP_PARAMS) valueChange(changes, `params.${p}`, before.params[p], after.params[p]);
  return Object.keys(changes).length > 0 ? event(after.id, { type: 'LICENSE_GROUP_UPDATED', entity, changes }) : undefined;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** `digits` Crockford base32 digits of a non-negative whole number, most significant first. */
function base32(n: number, digits: number): string {
  let out = '';
  for (let i = 0; i < digits; i++, n = Math.floor(n / 32)) out = CROCKFORD[n % 32] + out;
  return out;
}

/**
 * An event's id: `evt_` and a ULID made of its commit's time (48 bits of milliseconds) and its seq
 * (80 bits), so ids sort by time, are unique in the store (seq is), and need not be stored.
 */
export function eventId(seq: number, timeMs: number): string {
  return `evt_${base32(timeMs, 10)}${base32(seq, 16)}`;
}

/** What the events of one commit share. */
export interface EventCommit {
  time: string;
  batchId: string | null;
  actorCredential: string;
  actorUser: string | null;
}

/** Runs whose JSON is longer than this are kept deflated: a batch's events compress about fifteenfold. */
const DEFLATE_FROM = 4096;

/**
 * How a run's events are kept: their JSON array as it is (it starts with `[`), or, when it is long,
 * `z` and the base64 of its raw deflate. A 10 000-operation batch's 2 MB of events become about
 * 170 kB: less to write and to fsync in the commit, for about 3 ms of deflate.
 */
export function encodeRun(bodies: readonly EventBody[]): string {
  const json = JSON.stringify(bodies);
  return json.length < DEFLATE_FROM ? json : `z${deflateRawSync(json, { level: 1 }).toString('base64')}`;
}

export function decodeRun(data: string): EventBody[] {
  const json = data.startsWith('z') ? inflateRawSync(Buffer.from(data.slice(1), 'base64')).toString('utf8') : data;
  return JSON.parse(json) as EventBody[];
}

/** Consecutive events of one commit that the same scopes see: one row of the store. */
export interface EventRun {
  /** The first event's seq. */
  seq: number;
  group: string;
  userGroup?: string;
  events: PlannedEvent[];
}

/**
 * At most this many events to a run. A run of a few hundred events is about 100 kB of JSON: V8 and
 * the allocator keep such strings and buffers in memory they reuse, while a 10 000-operation batch's
 * 2 MB in one piece costs fresh pages for the JSON, its UTF-8 copy and the deflate, twice the time
 * of the same events in pieces (which compress as well). The deliverer reads a hundred at a time.
 */
export const MAX_RUN_EVENTS = 500;

/**
 * The events of a commit as runs: consecutive events that the same scopes see (the same group and
 * user group), at most MAX_RUN_EVENTS each, which the store keeps one row each.
 */
export function eventRuns(events: readonly PlannedEvent[], first: number, maxEvents = MAX_RUN_EVENTS): EventRun[] {
  const runs: EventRun[] = [];
  let run: EventRun | undefined;
  events.forEach((event, i) => {
    if (!run || run.group !== event.group || run.userGroup !== event.userGroup || run.events.length >= maxEvents) {
      runs.push((run = { seq: first + i, group: event.group, userGroup: event.userGroup, events: [] }));
    }
    run.events.push(event);
  });
  return runs;
}

/**
 * The events of a stored run as the feed and the webhooks send them — each with its seq, id, type
 * and what its run and commit give it, in the order of SPEC §10.1's example —, only those `wanted`
 * picks (by seq and type), at most `limit`: a delivery of a hundred events out of a run of ten
 * thousand writes a hundred.
 */
export function eventJsons(
  run: { seq: number; group: string; bodies: readonly EventBody[] },
  commit: EventCommit,
  wanted: (seq: number, type: EventType) => boolean = () => true,
  limit = Number.POSITIVE_INFINITY,
): Array<{ seq: number; type: EventType; json: string }> {
  const timeMs = Date.parse(commit.time);
  const time = JSON.stringify(commit.time);
  const group = JSON.stringify(run.group);
  const tail = `"batchId":${JSON.stringify(commit.batchId)},"actor":${JSON.stringify({ credential: commit.actorCredential, user: commit.actorUser })}`;
  const out: Array<{ seq: number; type: EventType; json: string }> = [];
  for (let i = 0; i < run.bodies.length && out.length < limit; i++) {
    const seq = run.seq + i;
    const { type, ...rest } = run.bodies[i];
    if (!wanted(seq, type)) continue;
    const own = JSON.stringify(rest);
    out.push({ seq, type, json: `{"seq":${seq},"id":"${eventId(seq, timeMs)}","type":"${type}","time":${time},"group":${group},${tail}${own.length > 2 ? `,${own.slice(1)}` : '}'}` });
  }
  return out;
}

/**
 * Decoded runs, by their first seq, up to about `maxEvents` events: a run is written once and never
 * changes, and the deliverer reads a large one a hundred events at a time.
 */
export class RunCache {
  private readonly runs = new Map<number, EventBody[]>();
  private events = 0;

  constructor(private readonly maxEvents = 100_000) {}

  bodies(seq: number, data: string): EventBody[] {
    const cached = this.runs.get(seq);
    if (cached) return cached;
    const bodies = decodeRun(data);
    this.runs.set(seq, bodies);
    this.events += bodies.length;
    for (const [first, old] of this.runs) {
      if (this.events <= this.maxEvents || first === seq) break;
      this.runs.delete(first);
      this.events -= old.length;
    }
    return bodies;
  }
}
