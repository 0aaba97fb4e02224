import { COUNTRIES, isCountry } from './org-types';
import { HASH_ALGORITHMS, isHashAlgorithm } from './passwords';
import { ROOT_GROUP } from './principals';
import { findRole, ROLE_CODES } from './roles';
import { USERNAME_PATTERN } from './users';

/**
 * License groups (SPEC §7): the instance tree. Every user and company belongs to one; a scope
 * is one group and everything below it. These are pure functions over the groups a batch or a
 * read has loaded — a group with all its ancestors up to `root` — so a scope check, the seats
 * of a subtree and an effective parameter are lookups, never a query per object.
 */
export const GROUP_ID_PATTERN = /^[a-z0-9_]{1,64}$/;

export const GROUP_PARAMS = ['defaultRole', 'passwordHash', 'country', 'taskUser'] as const;
export type GroupParam = (typeof GROUP_PARAMS)[number];
export type GroupParams = Partial<Record<GroupParam, string>>;

export function isGroupParam(name: string): name is GroupParam {
  return (GROUP_PARAMS as readonly string[]).includes(name);
}

/**
 * The stored value of a parameter, or why it is not valid. `taskUser` is checked for its form
 * here; that the user exists and may act for the group is the planner's business.
 */
export function readGroupParam(name: GroupParam, text: string): { value: string } | { error: string } {
  switch (name) {
    case 'defaultRole': {
      const role = findRole(text);
      return role ? { value: role } : { error: `parameter defaultRole must be a role code, one of ${ROLE_CODES.join(', ')}; not '${text}'` };
    }
    case 'passwordHash':
      return isHashAlgorithm(text) ? { value: text } : { error: `parameter passwordHash must be one of ${HASH_ALGORITHMS.join(', ')}; not '${text}'` };
    case 'country': {
      const country = text.toUpperCase();
      return isCountry(country) ? { value: country } : { error: `parameter country must be one of ${COUNTRIES.join(', ')}; not '${text}'` };
    }
    case 'taskUser':
      return USERNAME_PATTERN.test(text) ? { value: text } : { error: `parameter taskUser must be a username, not '${text}'` };
  }
}

export interface GroupRecord {
  id: string;
  name: string;
  /** null for root only. */
  parentId: string | null;
  /** The limit of active NORMAL and REST_API users in the whole subtree; null: no limit. */
  seats: number | null;
  /** Active NORMAL and REST_API users in the whole subtree (kept by the store, SPEC §7.2). */
  seatsUsed: number;
  /** The group's own parameters; the effective ones are looked up the tree. */
  params: GroupParams;
}

/** A group as the reads show it: with its path from root and, for one group, its children and its chain up to root. */
export interface GroupView extends GroupRecord {
  path: string[];
  children?: string[];
  /** Every group from this one up to root, nearest first: what effective parameters are looked up in. */
  chain?: GroupRecord[];
}

/** A tenant of a user (SPEC §7.4): a group, and the companies of it the user has access to. */
export interface Tenant {
  id: string;
  name: string;
  path: string[];
  companies: string[];
}

export function rootGroup(): GroupRecord {
  return { id: ROOT_GROUP, name: ROOT_GROUP, parentId: null, seats: null, seatsUsed: 0, params: {} };
}

/** Where an effective parameter comes from: a group that sets it, or the server's default. */
export interface EffectiveParam {
  value: string;
  from: string;
}

/**
 * A set of groups, each with its ancestors up to root: what a batch or a read needs of the tree.
 * A batch asks for the same chains many times (every user and company it touches is checked
 * against the scope and its seats), so the ids up to root are remembered per group until the
 * shape of the tree changes.
 */
export class GroupTree {
  private readonly groups = new Map<string, GroupRecord>();
  private readonly ancestors = new Map<string, readonly string[]>();
  /** Groups whose record this tree made itself (by addSeats), and so may change in place. */
  private readonly own = new Set<string>();

  constructor(groups: Iterable<GroupRecord>) {
    for (const g of groups) this.groups.set(g.id, g);
  }

  get(id: string): GroupRecord | undefined {
    return this.groups.get(id);
  }

  has(id: string): boolean {
    return this.groups.has(id);
  }

  all(): IterableIterator<GroupRecord> {
    return this.groups.values();
  }

  put(group: GroupRecord): void {
    const before = this.groups.get(group.id);
    if (!before || before.parentId !== group.parentId) this.ancestors.clear();
    this.groups.set(group.id, group);
    this.own.delete(group.id);
  }

  delete(id: string): void {
    this.groups.delete(id);
    this.own.delete(id);
    this.ancestors.clear();
  }

  /** The ids of the group and its ancestors, nearest first, ending at root; empty for an unknown group. */
  ancestorIds(id: string): readonly string[] {
    let ids = this.ancestors.get(id);
    if (ids) return ids;
    const out: string[] = [];
    for (let g = this.groups.get(id); g && !out.includes(g.id); g = g.parentId === null ? undefined : this.groups.get(g.parentId)) out.push(g.id);
    this.ancestors.set(id, (ids = out));
    return ids;
  }

  /** The group and its ancestors, nearest first, ending at root; empty for an unknown group. */
  chain(id: string): GroupRecord[] {
    return this.ancestorIds(id).map((a) => this.groups.get(a) as GroupRecord);
  }

  /** The ids from root down to the group (SPEC §7.4 `path`). */
  path(id: string): string[] {
    return [...this.ancestorIds(id)].reverse();
  }

  /** Whether `id` is `scope` or below it: inside that scope. */
  isWithin(id: string, scope: string): boolean {
    return this.ancestorIds(id).includes(scope);
  }

  /** Whether `id` is strictly below `scope`: a group a principal of that scope may change. */
  isBelow(id: string, scope: string): boolean {
    return id !== scope && this.isWithin(id, scope);
  }

  /** The nearest value of a parameter on the way up to root, or undefined (the server's default applies). */
  effective(id: string, name: GroupParam): EffectiveParam | undefined {
    for (const a of this.ancestorIds(id)) {
      const value = (this.groups.get(a) as GroupRecord).params[name];
      if (value !== undefined) return { value, from: a };
    }
    return undefined;
  }

  /**
   * The first group on the way up from `id` whose seat limit `more` additional seats would
   * exceed, or undefined when every limit holds (SPEC §7.2, nested quotas).
   */
  seatLimitExceeded(id: string, more: number): GroupRecord | undefined {
    if (more <= 0) return undefined;
    return this.chain(id).find((g) => g.seats !== null && g.seatsUsed + more > g.seats);
  }

  /**
   * Adds `delta` seats to the group and every ancestor. A user who moves is taken off its old
   * chain first and then checked and added on the new one: the common ancestors end where they were.
   * A record given to the tree is never changed: the first change copies it.
   */
  addSeats(id: string, delta: number): void {
    if (delta === 0) return;
    for (const a of this.ancestorIds(id)) {
      const g = this.groups.get(a) as GroupRecord;
      if (this.own.has(a)) {
        g.seatsUsed += delta;
      } else {
        this.groups.set(a, { ...g, seatsUsed: g.seatsUsed + delta });
        this.own.add(a);
      }
    }
  }
}

/** The message of a seat limit that does not hold. */
export function noFreeSeat(group: GroupRecord): string {
  return `no free license in group ${group.id} (${group.seatsUsed} of ${group.seats} used)`;
}
