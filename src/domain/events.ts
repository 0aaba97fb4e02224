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
 * An event as the planner (or the task runner) makes it, before the store numbers it: its JSON but
 * for what the store adds (seq, id, time, batchId, actor). `group` is the license group whose scope
 * sees it; an access event whose user lives in another group also needs that group in scope
 * (`userGroup`), so that a principal never learns of a user outside its scope. Further members are
 * the event's own (an access event's `user` and `company`; a REMINDER's action and message).
 */
export interface PlannedEvent {
  type: EventType;
  group: string;
  userGroup?: string;
  entity: EventEntity;
  changes?: Record<string, Change>;
  [member: string]: unknown;
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
export interface StoredEvent {
  seq: number;
  id: string;
  type: EventType;
  time: string;
  group: string;
  entity: EventEntity;
  batchId: string | null;
  actor: EventActor;
  changes?: Record<string, Change>;
  [detail: string]: unknown;
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

function fieldChanges<R>(fields: readonly PlainField[], before: R | undefined, after: R, into: Record<string, Change>): void {
  for (const f of fields) {
    const from = before ? ((before as Record<string, unknown>)[f.name] ?? null) : null;
    const to = (after as Record<string, unknown>)[f.name] ?? null;
    if (from !== to) into[f.name] = { from, to };
  }
}

function valueChange(into: Record<string, Change>, name: string, from: unknown, to: unknown): void {
  if (from !== to) into[name] = { from: from ?? null, to: to ?? null };
}

const heldPermissions = (p: Permissions): string[] => PERMISSION_NAMES.filter((n) => p[n]);

/**
 * The events of a user going from `before` (undefined: it did not exist) to `after`. `passwordChanged`
 * comes from the planner, which also knows of a plain-text password still to be hashed.
 */
export function userEvents(before: UserRecord | undefined, after: UserRecord, passwordChanged: boolean): PlannedEvent[] {
  const entity: EventEntity = { type: 'USER', id: after.username };
  const group = after.licenseGroup;
  if (before && !before.deleted && after.deleted) return [{ type: 'USER_DELETED', group, entity }];
  const existed = before !== undefined && !before.deleted;
  const changes: Record<string, Change> = {};
  if (before && before.username !== after.username) changes.username = { from: before.username, to: after.username };
  fieldChanges(USER_FIELDS, existed ? before : undefined, after, changes);
  if (passwordChanged) changes.password = { changed: true };
  const permissionsFrom = existed ? heldPermissions((before as UserRecord).permissions) : [];
  const permissionsTo = heldPermissions(after.permissions);
  if (permissionsFrom.join() !== permissionsTo.join()) changes.permissions = { from: permissionsFrom, to: permissionsTo };
  valueChange(changes, 'defaultRole', existed ? before?.defaultRole : null, after.defaultRole);
  valueChange(changes, 'userType', existed ? before?.userType : null, after.userType);
  if (before && before.licenseGroup !== after.licenseGroup) changes.licenseGroup = { from: before.licenseGroup, to: after.licenseGroup };
  const wasBlocked = existed ? (before as UserRecord).blocked : false;
  if (wasBlocked && after.blocked) valueChange(changes, 'blockMessage', before?.blockMessage, after.blockMessage);

  const events: PlannedEvent[] = [];
  if (!before) events.push({ type: 'USER_CREATED', group, entity, changes });
  else if (before.deleted) events.push({ type: 'USER_RESTORED', group, entity, changes });
  else if (Object.keys(changes).length > 0) events.push({ type: 'USER_UPDATED', group, entity, changes });
  if (!wasBlocked && after.blocked) events.push({ type: 'USER_BLOCKED', group, entity, changes: { blockMessage: { from: null, to: after.blockMessage } } });
  if (wasBlocked && !after.blocked) events.push({ type: 'USER_UNBLOCKED', group, entity });
  return events;
}

export function companyEvents(before: CompanyRecord | undefined, after: CompanyRecord): PlannedEvent[] {
  const entity: EventEntity = { type: 'COMPANY', id: after.id };
  const group = after.licenseGroup;
  const changes: Record<string, Change> = {};
  valueChange(changes, 'name', before?.name, after.name);
  valueChange(changes, 'country', before?.country, after.country);
  fieldChanges(COMPANY_FIELDS, before, after, changes);
  valueChange(changes, 'type', before?.type, after.type);
  if (before && before.licenseGroup !== after.licenseGroup) changes.licenseGroup = { from: before.licenseGroup, to: after.licenseGroup };
  if (!before) return [{ type: 'COMPANY_CREATED', group, entity, changes: { ...changes, show: { from: null, to: after.show } } }];
  const events: PlannedEvent[] = [];
  if (Object.keys(changes).length > 0) events.push({ type: 'COMPANY_UPDATED', group, entity, changes });
  if (before.show && !after.show) events.push({ type: 'COMPANY_HIDDEN', group, entity });
  if (!before.show && after.show) events.push({ type: 'COMPANY_SHOWN', group, entity });
  return events;
}

export function companyDeleted(company: CompanyRecord): PlannedEvent {
  return { type: 'COMPANY_DELETED', group: company.licenseGroup, entity: { type: 'COMPANY', id: company.id } };
}

/** A grant made, changed (`before` its old role) or revoked (`after` undefined), seen from the company's group and the user's. */
export function accessEvent(
  user: Pick<UserRecord, 'username' | 'licenseGroup'>,
  company: { id: string; licenseGroup: string },
  before: AccessRecord['role'] | undefined,
  after: AccessRecord['role'] | undefined,
): PlannedEvent {
  const type = after === undefined ? 'ACCESS_REVOKED' : before === undefined ? 'ACCESS_GRANTED' : 'ACCESS_CHANGED';
  const event: PlannedEvent = {
    type,
    group: company.licenseGroup,
    entity: { type: 'ACCESS_LIST', id: `${user.username}@${company.id}` },
    changes: { role: { from: before ?? null, to: after ?? null } },
    user: user.username,
    company: company.id,
  };
  // Seen where both the company and the user are in scope; one group is the usual case.
  if (user.licenseGroup !== company.licenseGroup) event.userGroup = user.licenseGroup;
  return event;
}

/**
 * A group created (`before` undefined), changed or deleted (`after` undefined). A deleted group's
 * event belongs to its parent, the nearest group that still exists.
 */
export function groupEvent(before: GroupRecord | undefined, after: GroupRecord | undefined): PlannedEvent | undefined {
  const entity: EventEntity = { type: 'LICENSE_GROUP', id: (after ?? before)?.id as string };
  if (!after) return { type: 'LICENSE_GROUP_DELETED', group: before?.parentId ?? entity.id, entity };
  const changes: Record<string, Change> = {};
  valueChange(changes, 'name', before?.name, after.name);
  valueChange(changes, 'parent', before?.parentId, after.parentId);
  valueChange(changes, 'seats', before?.seats, after.seats);
  for (const p of GROUP_PARAMS) valueChange(changes, `params.${p}`, before?.params[p], after.params[p]);
  if (!before) return { type: 'LICENSE_GROUP_CREATED', group: after.id, entity, changes };
  return Object.keys(changes).length > 0 ? { type: 'LICENSE_GROUP_UPDATED', group: after.id, entity, changes } : undefined;
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

/** The events of one run (domain rows of the store) with their seqs, from `first`. */
export interface EventRun {
  seq: number;
  events: PlannedEvent[];
}

/**
 * The events of a commit as runs: consecutive events that the same scopes see (the same group and
 * user group), which the store keeps one row each.
 */
export function eventRuns(events: readonly PlannedEvent[], first: number): EventRun[] {
  const runs: EventRun[] = [];
  let run: EventRun | undefined;
  events.forEach((event, i) => {
    if (!run || run.events[0].group !== event.group || run.events[0].userGroup !== event.userGroup) runs.push((run = { seq: first + i, events: [] }));
    run.events.push(event);
  });
  return runs;
}

/** The events of a stored run as the feed and the webhooks send them: each with its seq, id and what its commit gives it. */
export function eventJsons(run: { seq: number; data: string }, commit: EventCommit): Array<{ seq: number; json: string }> {
  const timeMs = Date.parse(commit.time);
  const shared = `"time":${JSON.stringify(commit.time)},"batchId":${JSON.stringify(commit.batchId)},"actor":${JSON.stringify({ credential: commit.actorCredential, user: commit.actorUser })},`;
  return (JSON.parse(run.data) as PlannedEvent[]).map((event, i) => {
    const seq = run.seq + i;
    return { seq, json: `{"seq":${seq},"id":"${eventId(seq, timeMs)}",${shared}${JSON.stringify(event).slice(1)}` };
  });
}
