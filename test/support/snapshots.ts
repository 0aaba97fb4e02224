import { createHash } from 'node:crypto';
import type { ChangeSet, Plan, Snapshot } from '../../src/batch/plan';
import { emptyChangeSet } from '../../src/domain/changes';
import { bodyOf } from '../../src/domain/events';
import { rootGroup } from '../../src/domain/groups';
import type { AccessRecord } from '../../src/domain/access';
import { COMPANY_FIELDS, type CompanyRecord } from '../../src/domain/companies';
import { emptyValues } from '../../src/domain/fields';
import type { RoleCode } from '../../src/domain/roles';
import { newUserRecord, type UserRecord } from '../../src/domain/users';

/** Hand-made snapshots for planner tests. */
export function user(username: string, over: Partial<UserRecord> = {}): UserRecord {
  return { ...newUserRecord(username, 'root'), ...over };
}

export function company(id: string, over: Partial<CompanyRecord> = {}): CompanyRecord {
  return { id, name: id, country: 'CZ', ...emptyValues(COMPANY_FIELDS), type: 'PODNIKATELE+PU', show: true, licenseGroup: 'root', ...over };
}

export const grant = (userKey: string, companyId: string, role: RoleCode): AccessRecord => ({ userKey, companyId, role });

/** sha256 stored form, as the server would store a plain-text password. */
export function sha256(salt: string, plain: string): string {
  return `sha256:${salt}:${createHash('sha256').update(`${salt}:${plain}`).digest('hex')}`;
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** A snapshot of root alone unless `parts` names other groups; its seats used count the users given that take one. */
export function snapshot(parts: Partial<Snapshot> = {}): Snapshot {
  const seats = (parts.users ?? []).filter((u) => !u.deleted && u.userType !== 'READ_ONLY').length;
  // Frozen: the planner is pure and must never touch what the store gave it.
  return deepFreeze({ users: [], companies: [], access: [], groups: [{ ...rootGroup(), seatsUsed: seats }], groupContents: [], dateActions: [], ...parts });
}

export const EMPTY_CHANGES: ChangeSet = emptyChangeSet();

/**
 * The plan without the seat counters it updates (SPEC §7.2): every user created, restored, deleted
 * or made READ_ONLY changes the seats used of its group and the groups above. Planner tests about
 * other things compare the change set without those entries — the change set keeps them apart from
 * the groups it writes whole (`seatsUsed`); test/unit/groups.test.ts asserts the counters themselves.
 */
export function withoutSeatCounts(plan: Plan): Plan {
  return { ...plan, changes: { ...plan.changes, seatsUsed: [] } };
}

/**
 * The plan with every event's body built, as the store writes it: the planner defers the bodies of
 * the events a batch makes in bulk (domain/events.ts), so plans compare by the events they write.
 */
export function withEventBodies(plan: Plan): Plan {
  return { ...plan, events: plan.events.map((e) => ({ ...e, body: bodyOf(e) })) };
}
