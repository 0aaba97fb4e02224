import type { AccessRecord } from '../domain/access';
import { COMPANY_FIELDS, type CompanyRecord } from '../domain/companies';
import { companyIdCandidate, companyIdCandidateIndex, deriveCompanyId } from '../domain/company-id';
import { dateActionProblem, sameDateAction, scheduledOperation, type DateActionRecord } from '../domain/date-actions';
import { assignValues, emptyValues, sameValues } from '../domain/fields';
import { GROUP_PARAMS, GroupTree, noFreeSeat, type GroupParam, type GroupParams, type GroupRecord } from '../domain/groups';
import { DEFAULT_COUNTRY, defaultOrgType, isCountry, ORG_TYPES_BY_COUNTRY, orgTypeFits, type Country } from '../domain/org-types';
import { isHashAlgorithm } from '../domain/passwords';
import { beyondActor, missingFor, PERMISSION_NAMES, runsCompany, takeoverBlocker, type GuardedOperation, type Permissions } from '../domain/permissions';
import { eventCredential, ROOT_GROUP, type Principal } from '../domain/principals';
import { DEFAULT_ROLE, findRole, type RoleCode } from '../domain/roles';
import { newUserRecord, USER_FIELDS, userKey, type UserRecord } from '../domain/users';
import { canonicalPatterns, sameSecret, webhookTargetProblem, type SubscriptionRecord, type WebhookRules } from '../domain/webhooks';
import { accessEvent, companyDeleted, companyEvents, groupEvent, userEvents, type PlannedEvent } from '../domain/events';
import {
  emptyChangeSet,
  type ChangeSet,
  type DateActionChange,
  type GroupContents,
  type GroupMove,
  type PlannedUser,
  type SeatChange,
  type Snapshot,
  type SnapshotRequest,
  type SubscriptionWrite,
} from '../domain/changes';
import type { OperationResult, Status } from '../domain/results';
import type {
  AccessOperation,
  BatchDocument,
  CompanyFields,
  CompanyOperation,
  DateActionOperation,
  LicenseGroupOperation,
  Operation,
  SubscriptionOperation,
  UserFields,
  UserOperation,
} from './operations';

export type { ChangeSet, PlannedUser, Snapshot, SnapshotRequest } from '../domain/changes';

export interface PlanContext {
  principal: Principal;
  /** Whether a plain-text password matches a stored hash (precomputed off the event loop). */
  passwordMatches(stored: string, plain: string): boolean;
  /** Where webhooks may go (SPEC §10.2): the server's allowed hosts and the URL host names resolved before planning. */
  webhooks?: WebhookRules;
}

const NO_WEBHOOK_RULES: WebhookRules = { allowHosts: [], resolved: new Map() };

export type { OperationResult, Status } from '../domain/results';

export interface Plan {
  results: OperationResult[];
  changes: ChangeSet;
  /** What the changes tell the world (SPEC §10.1), in the order they happened; none when nothing is committed. */
  events: PlannedEvent[];
}

/** A company id prefix long enough to find every candidate of companyIdCandidate(). */
const PREFIX_LENGTH = 56;

export function snapshotRequest(doc: BatchDocument, principal?: Principal): SnapshotRequest {
  const users = new Set<string>();
  if (principal?.actingUser) users.add(userKey(principal.actingUser));
  const companies = new Set<string>();
  const prefixes = new Set<string>();
  const groups = new Set<string>(principal ? [principal.scope] : []);
  const counted = new Set<string>();
  const dateActions = new Set<string>();
  const subscriptions = new Set<string>();
  for (const op of doc.operations) {
    if (op.kind === 'subscription' && op.id) {
      subscriptions.add(op.id);
      if (op.fields.licenseGroup) groups.add(op.fields.licenseGroup);
    }
    if (op.kind === 'user' || op.kind === 'access') {
      if (op.username) users.add(userKey(op.username));
    }
    if ((op.kind === 'user' || op.kind === 'company') && op.fields.licenseGroup) groups.add(op.fields.licenseGroup);
    if (op.kind === 'access' && op.company) companies.add(op.company);
    if (op.kind === 'company') {
      if (op.id) companies.add(op.id);
      else if (op.fields.name) prefixes.add(deriveCompanyId(op.fields.name).slice(0, PREFIX_LENGTH));
      if (op.fields.adminUser) users.add(userKey(op.fields.adminUser));
    }
    if (op.kind === 'licenseGroup' && op.id) {
      groups.add(op.id);
      if (op.fields.parent) groups.add(op.fields.parent);
      if (op.fields.params?.taskUser) users.add(userKey(op.fields.params.taskUser));
      if (op.action === 'delete') counted.add(op.id);
    }
    if (op.kind === 'dateAction' && op.id) {
      dateActions.add(op.id);
      if (op.fields.licenseGroup) groups.add(op.fields.licenseGroup);
    }
  }
  return {
    userKeys: [...users],
    companyIds: [...companies],
    companyIdPrefixes: [...prefixes],
    groupIds: [...groups],
    groupCounts: [...counted],
    dateActionIds: [...dateActions],
    subscriptionIds: [...subscriptions],
  };
}

class Outcome {
  constructor(
    readonly status: Status,
    readonly message?: string,
  ) {}
}

/**
 * Ends an operation early: nothing it prepared has touched the state yet. Deliberately not an
 * Error: an expected outcome needs no stack trace, and capturing one for every FAILED or SKIPPED
 * operation was a large part of the planning time of a batch with many of them.
 */
class Stop {
  constructor(readonly outcome: Outcome) {}
}
const fail = (message: string): never => {
  throw new Stop(new Outcome('FAILED', message));
};
const skip = (message?: string): never => {
  throw new Stop(new Outcome('SKIPPED', message));
};

interface WorkingUser extends UserRecord {
  newPassword?: string;
}

const pairKey = (u: string, c: string): string => `${u}\u0000${c}`;

function samePermissions(a: Permissions, b: Permissions): boolean {
  return PERMISSION_NAMES.every((p) => a[p] === b[p]);
}

/** Equal in every stored field and in any password still waiting to be hashed. */
function sameUser(a: WorkingUser, b: WorkingUser): boolean {
  return (
    a.newPassword === b.newPassword &&
    a.username === b.username &&
    sameValues(USER_FIELDS, a, b) &&
    a.passwordHash === b.passwordHash &&
    samePermissions(a.permissions, b.permissions) &&
    a.defaultRole === b.defaultRole &&
    a.blocked === b.blocked &&
    a.blockMessage === b.blockMessage &&
    a.userType === b.userType &&
    a.deleted === b.deleted &&
    a.licenseGroup === b.licenseGroup
  );
}

/** Whether the password differs between two states of one user; a pending plain text counts. */
function passwordChanged(before: WorkingUser, after: WorkingUser): boolean {
  return after.newPassword !== before.newPassword || after.passwordHash !== before.passwordHash;
}

function sameCompany(a: CompanyRecord, b: CompanyRecord): boolean {
  return (
    a.name === b.name &&
    a.country === b.country &&
    sameValues(COMPANY_FIELDS, a, b) &&
    a.type === b.type &&
    a.show === b.show &&
    a.licenseGroup === b.licenseGroup
  );
}

function sameParams(a: GroupParams, b: GroupParams): boolean {
  return GROUP_PARAMS.every((p) => a[p] === b[p]);
}

/** What a subscription receives: its events, its group's subtree, and whether its owner's own events are left out. */
function sameFilter(a: SubscriptionRecord, b: SubscriptionRecord): boolean {
  return a.events.join(' ') === b.events.join(' ') && a.licenseGroup === b.licenseGroup && a.excludeOwn === b.excludeOwn;
}

function sameSubscription(a: SubscriptionRecord, b: SubscriptionRecord): boolean {
  return a.url === b.url && sameFilter(a, b) && sameSecret(a.secret, b.secret) && a.state === b.state;
}

/** Whether two records of a group are the same apart from the seats in use, which users' changes move. */
function sameGroupApartFromSeats(a: GroupRecord, b: GroupRecord): boolean {
  return a.name === b.name && a.parentId === b.parentId && a.seats === b.seats && sameParams(a.params, b.params);
}

/** Whether a user takes one of the seats of its group and every group above (SPEC §7.2): active, and not READ_ONLY. */
function takesSeat(user: UserRecord | undefined): boolean {
  return user !== undefined && !user.deleted && user.userType !== 'READ_ONLY';
}

/**
 * The in-memory store a batch runs against: the snapshot plus every change made so far,
 * so that later operations see earlier ones. At the end it reduces to the net ChangeSet.
 */
class WorkingState {
  readonly users = new Map<string, WorkingUser>();
  readonly companies = new Map<string, CompanyRecord>();
  private readonly grants = new Map<string, Map<string, RoleCode>>();
  private readonly grantees = new Map<string, Set<string>>();

  private readonly originalUsers = new Map<string, UserRecord>();
  private readonly originalCompanies = new Map<string, CompanyRecord>();
  private readonly originalGrants = new Map<string, RoleCode>();
  private readonly touchedUsers = new Set<string>();
  private readonly touchedCompanies = new Set<string>();
  private readonly touchedGrants = new Map<string, Pick<AccessRecord, 'userKey' | 'companyId'>>();
  /** Companies of the snapshot deleted during the batch: their stored grants are gone with them. */
  private readonly deletedCompanies = new Set<string>();

  /** The loaded part of the tree: every group the batch touches, with its ancestors. */
  readonly groups: GroupTree;
  private readonly originalGroups = new Map<string, GroupRecord>();
  private readonly touchedGroups = new Set<string>();
  private readonly groupMoves: GroupMove[] = [];
  /** The group of each company a stored grant names. */
  private readonly grantGroups = new Map<string, string>();
  /** What is left in the groups the batch may delete, kept up to date as it moves things. */
  private readonly contents = new Map<string, GroupContents>();
  readonly dateActions = new Map<string, DateActionRecord>();
  private readonly originalDateActions = new Map<string, DateActionRecord>();
  private readonly touchedDateActions = new Set<string>();
  /** Date actions of the snapshot deleted during the batch: what fired for them goes too, even if the id is created again. */
  private readonly deletedDateActions = new Set<string>();
  /**
   * The events of the changes so far (SPEC §10.1), in the order they happened. An operation that
   * fails stops before it changes anything, so it adds none.
   */
  readonly events: PlannedEvent[] = [];

  readonly subscriptions = new Map<string, SubscriptionRecord>();
  private readonly originalSubscriptions = new Map<string, SubscriptionRecord>();
  private readonly touchedSubscriptions = new Set<string>();
  /** Subscriptions deleted during the batch: one of the same id created after is a new one. */
  private readonly deletedSubscriptions = new Set<string>();

  constructor(snapshot: Snapshot) {
    for (const u of snapshot.users) {
      this.originalUsers.set(u.key, u);
      this.users.set(u.key, { ...u });
    }
    for (const c of snapshot.companies) {
      this.originalCompanies.set(c.id, c);
      this.companies.set(c.id, { ...c });
    }
    for (const a of snapshot.access) {
      this.originalGrants.set(pairKey(a.userKey, a.companyId), a.role);
      this.setGrant(a.userKey, a.companyId, a.role);
    }
    this.groups = new GroupTree(snapshot.groups);
    for (const [id, group] of Object.entries(snapshot.grantGroups ?? {})) this.grantGroups.set(id, group);
    for (const g of snapshot.groups) this.originalGroups.set(g.id, g);
    for (const c of snapshot.groupContents) this.contents.set(c.id, { ...c });
    for (const a of snapshot.dateActions) {
      this.originalDateActions.set(a.id, a);
      this.dateActions.set(a.id, a);
    }
    for (const s of snapshot.subscriptions ?? []) {
      this.originalSubscriptions.set(s.id, s);
      this.subscriptions.set(s.id, s);
    }
  }

  grantGroupOf(companyId: string): string | undefined {
    return this.grantGroups.get(companyId);
  }

  /** What is left in a group the snapshot counted, or undefined. */
  contentsOf(id: string): GroupContents | undefined {
    return this.contents.get(id);
  }

  private count(group: string | null | undefined, what: 'groups' | 'users' | 'companies' | 'dateActions' | 'subscriptions', delta: number): void {
    const c = group ? this.contents.get(group) : undefined;
    if (c) c[what] = (c[what] ?? 0) + delta;
  }

  putGroup(group: GroupRecord): void {
    this.groups.put(group);
    this.touchedGroups.add(group.id);
  }

  createGroup(group: GroupRecord): void {
    this.putGroup(group);
    this.emit(groupEvent(undefined, group));
    // Deleted earlier in this batch: its row is still there until the end, so the id is taken over.
    const deleted = this.groupMoves.findIndex((m) => m.kind === 'delete' && m.id === group.id);
    if (deleted >= 0) {
      const [gone] = this.groupMoves.splice(deleted, 1);
      this.groupMoves.push({ kind: 'recreate', id: group.id, parentId: group.parentId as string, formerParentId: gone.parentId });
    } else {
      this.groupMoves.push({ kind: 'create', id: group.id, parentId: group.parentId as string, group });
    }
    this.count(group.parentId, 'groups', 1);
  }

  /** Moves a group with its subtree: its seats go from the old chain of ancestors to the new one. */
  moveGroup(group: GroupRecord, parentId: string): void {
    const from = group.parentId as string;
    this.groups.addSeats(from, -group.seatsUsed);
    this.putGroup({ ...(this.groups.get(group.id) as GroupRecord), parentId });
    this.groups.addSeats(parentId, group.seatsUsed);
    for (const id of this.groups.ancestorIds(from)) this.touchedGroups.add(id);
    for (const id of this.groups.ancestorIds(parentId)) this.touchedGroups.add(id);
    this.groupMoves.push({ kind: 'move', id: group.id, parentId });
    this.count(from, 'groups', -1);
    this.count(parentId, 'groups', 1);
  }

  deleteGroup(group: GroupRecord): void {
    this.emit(groupEvent(group, undefined));
    this.groups.delete(group.id);
    this.touchedGroups.add(group.id);
    this.groupMoves.push({ kind: 'delete', id: group.id, parentId: group.parentId as string });
    this.count(group.parentId, 'groups', -1);
    // Only deleted users can still name an empty group; the store moves them to its parent, and so
    // must the batch, or a later operation could not find (restore) them in the scope.
    for (const [key, u] of this.users) if (u.licenseGroup === group.id) this.users.set(key, { ...u, licenseGroup: group.parentId as string });
  }

  /** A user's seat and its place in the counts move with it: off the old group, onto the new one. */
  private userMoved(before: UserRecord | undefined, after: UserRecord): void {
    if (takesSeat(before)) this.groups.addSeats((before as UserRecord).licenseGroup, -1);
    if (takesSeat(after)) this.groups.addSeats(after.licenseGroup, 1);
    if (before && before.licenseGroup !== after.licenseGroup) for (const id of this.groups.ancestorIds(before.licenseGroup)) this.touchedGroups.add(id);
    for (const id of this.groups.ancestorIds(after.licenseGroup)) this.touchedGroups.add(id);
    if (before && !before.deleted) this.count(before.licenseGroup, 'users', -1);
    if (!after.deleted) this.count(after.licenseGroup, 'users', 1);
  }

  /** The user as the snapshot had it, before this batch. */
  originalUser(key: string): UserRecord | undefined {
    return this.originalUsers.get(key);
  }

  grantsOf(user: string): Map<string, RoleCode> {
    let g = this.grants.get(user);
    if (!g) this.grants.set(user, (g = new Map()));
    return g;
  }

  private setGrant(user: string, company: string, role: RoleCode): void {
    this.grantsOf(user).set(company, role);
    let set = this.grantees.get(company);
    if (!set) this.grantees.set(company, (set = new Set()));
    set.add(user);
  }

  emit(event: PlannedEvent | undefined): void {
    if (event) this.events.push(event);
  }

  private accessChanged(user: string, company: string, before: RoleCode | undefined, after: RoleCode | undefined): void {
    const u = this.users.get(user);
    const c = this.companies.get(company);
    const companyGroup = c?.licenseGroup ?? this.grantGroups.get(company);
    if (u && companyGroup !== undefined) this.events.push(accessEvent(u, { id: company, licenseGroup: companyGroup }, before, after));
  }

  grant(user: string, company: string, role: RoleCode): void {
    this.accessChanged(user, company, this.grants.get(user)?.get(company), role);
    this.setGrant(user, company, role);
    this.touchedGrants.set(pairKey(user, company), { userKey: user, companyId: company });
  }

  revoke(user: string, company: string): void {
    this.accessChanged(user, company, this.grants.get(user)?.get(company), undefined);
    this.grants.get(user)?.delete(company);
    this.grantees.get(company)?.delete(user);
    this.touchedGrants.set(pairKey(user, company), { userKey: user, companyId: company });
  }

  putUser(user: WorkingUser): void {
    const before = this.users.get(user.key);
    const password = before ? passwordChanged(before, user) : user.newPassword !== undefined || user.passwordHash !== null;
    this.events.push(...userEvents(before, user, password));
    this.userMoved(before, user);
    this.users.set(user.key, user);
    this.touchedUsers.add(user.key);
  }

  putCompany(company: CompanyRecord): void {
    const before = this.companies.get(company.id);
    this.events.push(...companyEvents(before, company));
    this.count(before?.licenseGroup, 'companies', -1);
    this.count(company.licenseGroup, 'companies', 1);
    this.companies.set(company.id, company);
    this.touchedCompanies.add(company.id);
  }

  deleteCompany(id: string): void {
    for (const user of this.grantees.get(id) ?? []) this.revoke(user, id);
    const company = this.companies.get(id);
    if (company) this.events.push(companyDeleted(company));
    this.count(this.companies.get(id)?.licenseGroup, 'companies', -1);
    this.companies.delete(id);
    this.touchedCompanies.add(id);
    if (this.originalCompanies.has(id)) this.deletedCompanies.add(id);
  }

  putDateAction(action: DateActionRecord): void {
    this.count(this.dateActions.get(action.id)?.licenseGroup, 'dateActions', -1);
    this.count(action.licenseGroup, 'dateActions', 1);
    this.dateActions.set(action.id, action);
    this.touchedDateActions.add(action.id);
  }

  deleteDateAction(id: string): void {
    this.count(this.dateActions.get(id)?.licenseGroup, 'dateActions', -1);
    this.dateActions.delete(id);
    this.touchedDateActions.add(id);
    if (this.originalDateActions.has(id)) this.deletedDateActions.add(id);
  }

  putSubscription(subscription: SubscriptionRecord): void {
    this.count(this.subscriptions.get(subscription.id)?.licenseGroup, 'subscriptions', -1);
    this.count(subscription.licenseGroup, 'subscriptions', 1);
    this.subscriptions.set(subscription.id, subscription);
    this.touchedSubscriptions.add(subscription.id);
  }

  deleteSubscription(subscription: SubscriptionRecord): void {
    this.count(subscription.licenseGroup, 'subscriptions', -1);
    this.subscriptions.delete(subscription.id);
    this.touchedSubscriptions.add(subscription.id);
    this.deletedSubscriptions.add(subscription.id);
  }

  /**
   * The subscriptions to delete and to write. Compared with the stored one, not with the batch's
   * steps: a secret changed twice in one batch still has the stored secret, which receivers hold,
   * as the one that keeps signing for the overlap.
   */
  private subscriptionChanges(): Pick<ChangeSet, 'deletedSubscriptions' | 'subscriptions'> {
    const deleted: string[] = [];
    const written: SubscriptionWrite[] = [];
    for (const id of this.touchedSubscriptions) {
      const now = this.subscriptions.get(id);
      const before = this.originalSubscriptions.get(id);
      const fresh = before === undefined || this.deletedSubscriptions.has(id);
      if (before && (!now || fresh)) deleted.push(id);
      if (!now) continue;
      if (fresh) {
        written.push({ subscription: now, created: true, restarted: false, stateChanged: false, filterChanged: false });
      } else if (!sameSubscription(before, now)) {
        written.push({
          subscription: now,
          created: false,
          ...(sameSecret(before.secret, now.secret) ? {} : { rotatedFrom: before.secret }),
          restarted: before.state === 'inactive' && now.state === 'active',
          stateChanged: before.state !== now.state,
          filterChanged: !sameFilter(before, now),
        });
      }
    }
    return { deletedSubscriptions: deleted, subscriptions: written };
  }

  /** The net changes; `algorithmOf` names the algorithm of a user's new plain-text password. */
  changes(algorithmOf: (user: WorkingUser) => PlannedUser['hashAlgorithm']): ChangeSet {
    const users: PlannedUser[] = [];
    for (const key of this.touchedUsers) {
      const now = this.users.get(key) as WorkingUser;
      const before = this.originalUsers.get(key);
      if (!before || !sameUser(before, now)) {
        const algorithm = now.newPassword === undefined ? undefined : algorithmOf(now);
        users.push(algorithm === undefined ? now : { ...now, hashAlgorithm: algorithm });
      }
    }
    const companies: CompanyRecord[] = [];
    for (const id of this.touchedCompanies) {
      const now = this.companies.get(id);
      const before = this.deletedCompanies.has(id) ? undefined : this.originalCompanies.get(id);
      if (now && (!before || !sameCompany(before, now))) companies.push(now);
    }
    const revokedAccess: ChangeSet['revokedAccess'] = [];
    const grantedAccess: AccessRecord[] = [];
    for (const [key, pair] of this.touchedGrants) {
      const now = this.grants.get(pair.userKey)?.get(pair.companyId);
      const before = this.deletedCompanies.has(pair.companyId) ? undefined : this.originalGrants.get(key);
      if (now === before) continue;
      if (now) grantedAccess.push({ ...pair, role: now });
      else revokedAccess.push(pair);
    }
    const groups: GroupRecord[] = [];
    const seatsUsed: SeatChange[] = [];
    for (const id of this.touchedGroups) {
      const now = this.groups.get(id);
      const before = this.originalGroups.get(id);
      if (!now) continue;
      if (!before || !sameGroupApartFromSeats(before, now)) groups.push(now);
      else if (before.seatsUsed !== now.seatsUsed) seatsUsed.push({ id, delta: now.seatsUsed - before.seatsUsed });
    }
    const dateActions: DateActionChange[] = [];
    for (const id of this.touchedDateActions) {
      const now = this.dateActions.get(id);
      const gone = this.deletedDateActions.has(id);
      const before = gone ? undefined : this.originalDateActions.get(id);
      if (gone) dateActions.push({ kind: 'delete', id });
      if (now && (!before || !sameDateAction(before, now))) dateActions.push({ kind: 'put', action: now });
    }
    return { deletedCompanies: [...this.deletedCompanies], users, companies, revokedAccess, grantedAccess, groupMoves: this.groupMoves, groups, seatsUsed, dateActions, ...this.subscriptionChanges() };
  }
}

class Planner {
  private readonly state: WorkingState;

  constructor(
    snapshot: Snapshot,
    private readonly ctx: PlanContext,
  ) {
    this.state = new WorkingState(snapshot);
  }

  run(op: Operation): OperationResult {
    const head = describe(op);
    if (op.invalid) return { ...head, status: 'FAILED', message: op.invalid };
    try {
      switch (op.kind) {
        case 'user':
          return { ...head, ...this.user(op) };
        case 'company': {
          // company() resolves a derived id into head.id, so it runs before head is copied.
          const outcome = this.company(op, head);
          return { ...head, ...outcome };
        }
        case 'access':
          return { ...head, ...this.access(op) };
        case 'licenseGroup':
          return { ...head, ...this.licenseGroup(op) };
        case 'dateAction':
          return { ...head, ...this.dateAction(op) };
        case 'subscription':
          return { ...head, ...this.subscription(op) };
        default:
          return { ...head, status: 'FAILED', message: 'unknown operation' };
      }
    } catch (err) {
      if (err instanceof Stop) return { ...head, ...err.outcome };
      throw err;
    }
  }

  // ── permissions (SPEC §6) ───────────────────────────────────────────────────────────

  /** The stored user the request acts as; undefined for certificate, password and CLI principals. */
  private actor(): WorkingUser | undefined {
    const acting = this.ctx.principal.actingUser;
    if (acting === undefined) return undefined;
    const user = this.state.users.get(userKey(acting));
    // Checked at authentication; a batch that deletes or blocks its own actor acts with no rights after.
    if (!user || user.deleted) return fail(`permission denied: the acting user '${acting}' no longer exists`);
    if (user.blocked) return fail(`permission denied: the acting user '${acting}' is blocked`);
    return user;
  }

  /** What the table of SPEC §6 (domain/permissions.ts) says `operation` needs of the actor. */
  private require(operation: GuardedOperation): void {
    const actor = this.actor();
    if (!actor) return;
    const missing = missingFor(operation, actor.permissions);
    if (missing) fail(`permission denied: ${missing} required`);
  }

  /**
   * No takeover: another user who holds a permission the actor lacks is out of the actor's reach
   * (password, permissions, other fields, block state, type, delete, restore). Checked on the
   * target as it stands before the operation.
   */
  private requireNoTakeover(target: WorkingUser): void {
    const actor = this.actor();
    if (!actor || actor.key === target.key) return;
    const blocker = takeoverBlocker(actor.permissions, target.permissions);
    if (blocker) fail(`permission denied: ${target.username} holds ${blocker}, which you do not have`);
  }

  /** Nobody grants, or revokes, a permission it lacks itself. */
  private requireWithinOwnPermissions(before: Permissions, after: Permissions): void {
    const actor = this.actor();
    if (!actor) return;
    const beyond = beyondActor(actor.permissions, before, after);
    if (beyond) fail(`permission denied: cannot ${beyond.granted ? 'grant' : 'revoke'} ${beyond.permission} without having it`);
  }

  /** Changing a company, or access to it, needs the ADMIN role there or manageAll. */
  private requireCompanyAdmin(companyId: string): void {
    const actor = this.actor();
    if (!actor || runsCompany(actor.permissions, this.state.grantsOf(actor.key).get(companyId))) return;
    fail(`permission denied: ADMIN role in ${companyId} or manageAll required`);
  }

  /**
   * Granting, changing or removing access needs grantPermission, and — so that a user cannot
   * hand itself (or anyone) a way into a company it does not run — ADMIN there or manageAll.
   */
  private requireAccessChange(companyId: string): void {
    this.require('changeAccess');
    this.requireCompanyAdmin(companyId);
  }

  /**
   * What changing `before` into `after` needs, checked only for what really changes: first what
   * the kind of change needs, then whether the target is within the actor's reach, then whether
   * each permission changed is one the actor holds.
   */
  private requireUserChange(before: WorkingUser, after: WorkingUser): void {
    const self = this.ctx.principal.actingUser !== undefined && userKey(this.ctx.principal.actingUser) === after.key;
    // One's own fields need no permission, but only while one may act at all: an actor that blocked
    // itself earlier in the batch cannot unblock itself (or change anything else) later in it.
    this.actor();
    if (passwordChanged(before, after) && !self) this.require('changeOthersPassword');
    const permissionsChanged = !samePermissions(before.permissions, after.permissions);
    if (permissionsChanged) this.require('changePermissions');
    const comparable = { ...after, passwordHash: before.passwordHash, newPassword: before.newPassword, permissions: before.permissions };
    if (!sameUser(before, comparable) && !self) this.require('changeOthersFields');
    if (!self) this.requireNoTakeover(before);
    if (permissionsChanged) this.requireWithinOwnPermissions(before.permissions, after.permissions);
  }

  /**
   * A batch answers whether a plain-text password is the one a user has (SKIPPED) or not, so
   * naming another user's password is a guess that only an actor who may change that user gets
   * an answer to: createUser and no takeover, even when nothing changes.
   */
  private requireMayNamePassword(target: WorkingUser): void {
    const actor = this.actor();
    if (!actor || actor.key === target.key) return;
    this.require('nameOthersPassword');
    this.requireNoTakeover(target);
  }

  // ── scope (SPEC §7): what lies outside it behaves as if it did not exist ────────────────

  private get scope(): string {
    return this.ctx.principal.scope;
  }

  /** Whether a group exists (as far as the batch has got) and lies inside the principal's scope. */
  private groupVisible(id: string): boolean {
    return this.state.groups.isWithin(id, this.scope);
  }

  /** A user of the scope (deleted ones included), or undefined — also for one that exists outside it. */
  private userInScope(username: string): WorkingUser | undefined {
    const user = this.state.users.get(userKey(username));
    return user && this.groupVisible(user.licenseGroup) ? user : undefined;
  }

  private companyInScope(id: string): CompanyRecord | undefined {
    const company = this.state.companies.get(id);
    return company && this.groupVisible(company.licenseGroup) ? company : undefined;
  }

  /** Whether a company a grant names lies in the scope, loaded or not (its group came with the grant). */
  private grantInScope(companyId: string): boolean {
    const company = this.state.companies.get(companyId);
    const group = company ? company.licenseGroup : this.state.grantGroupOf(companyId);
    return group !== undefined && this.groupVisible(group);
  }

  /** A group of the scope named by a user, a company or a parent: FAILED, as for any unknown id, when it is not one. */
  private visibleGroup(id: string): GroupRecord {
    const group = this.state.groups.get(id);
    if (!group || !this.groupVisible(id)) return fail(`license group '${id}' does not exist`);
    return group;
  }

  /**
   * Usernames, company ids and group ids are global (SPEC §7): one taken outside the scope cannot
   * be created. Asked only once everything else about the create has held, so that the answer for
   * an id taken outside differs from the one for an id that exists nowhere only where the latter
   * would be created: an actor who may not create it, or a create that is invalid anyway, learns
   * nothing about what lies outside its scope.
   */
  private requireFreeId(takenOutside: boolean, what: string): void {
    if (takenOutside) fail(`${what} is not available`);
  }

  /**
   * A user may take a seat in `group` unless a limit on the way up to root is full (SPEC §7.2).
   * `before` is the user as it stands: a seat it already takes on a common ancestor is not
   * counted twice.
   */
  private requireSeat(before: UserRecord | undefined, after: UserRecord): void {
    if (!takesSeat(after)) return;
    const tree = this.state.groups;
    const already = takesSeat(before) ? tree.ancestorIds((before as UserRecord).licenseGroup) : [];
    for (const id of tree.ancestorIds(after.licenseGroup)) {
      const g = tree.get(id) as GroupRecord;
      if (g.seats === null || already.includes(id)) continue;
      if (g.seatsUsed + 1 > g.seats) fail(noFreeSeat(g));
    }
  }

  private inheritedCountry(group: string): Country {
    const inherited = this.effective(group, 'country');
    return inherited !== undefined && isCountry(inherited) ? inherited : DEFAULT_COUNTRY;
  }

  /** The group's effective parameter (SPEC §7.3), or undefined for the server's default. */
  private effective(group: string, name: GroupParam): string | undefined {
    return this.state.groups.effective(group, name)?.value;
  }

  private liveUser(username: string, what = 'user'): WorkingUser {
    const user = this.userInScope(username);
    if (!user) return fail(`${what} '${username}' does not exist`);
    if (user.deleted) return fail(`${what} '${username}' is deleted`);
    return user;
  }

  // ── users ───────────────────────────────────────────────────────────────────────────

  private user(op: UserOperation): Outcome {
    const username = op.username as string;
    const current = this.userInScope(username);
    if (op.action === 'delete') {
      if (!current) return skip('user does not exist');
      if (current.deleted) return skip('user is already deleted');
      this.require('deleteUser');
      this.requireNoTakeover(current);
      // Its seat is free at once: a later operation of the batch may take it (SPEC §7.2).
      this.state.putUser({ ...current, deleted: true });
      return new Outcome('DELETED');
    }
    const group = op.fields.licenseGroup === undefined ? undefined : this.visibleGroup(op.fields.licenseGroup).id;
    if (!current || current.deleted) {
      this.require('createUser');
      if (current && op.fields.password?.kind === 'plain') this.requireMayNamePassword(current);
      const base = current ? { ...current, deleted: false } : newUserRecord(username, this.scope);
      const created = this.applyUserFields({ ...base, licenseGroup: group ?? base.licenseGroup }, op.fields);
      // A restored user comes back with its access list and permissions: a new password for it is a
      // password change, and bringing back one who outranks the actor is a takeover.
      if (current && passwordChanged(base, created)) this.require('changeOthersPassword');
      if (!samePermissions(base.permissions, created.permissions)) this.require('changePermissions');
      if (current) this.requireNoTakeover(current);
      this.requireWithinOwnPermissions(base.permissions, created.permissions);
      if (current && created.licenseGroup !== current.licenseGroup) this.require('moveToGroup');
      this.requireSeat(undefined, created);
      this.requireFreeId(current === undefined && this.state.users.has(created.key), `username ${username}`);
      this.state.putUser(created);
      return current ? new Outcome('CREATED', 'restored') : new Outcome('CREATED');
    }
    if (op.fields.password?.kind === 'plain') this.requireMayNamePassword(current);
    const next = this.applyUserFields({ ...current, licenseGroup: group ?? current.licenseGroup }, op.fields);
    if (sameUser(current, next)) return skip();
    this.requireUserChange(current, next);
    if (next.licenseGroup !== current.licenseGroup) this.require('moveToGroup');
    this.requireSeat(current, next);
    this.state.putUser(next);
    return new Outcome('UPDATED');
  }

  private applyUserFields(user: WorkingUser, fields: UserFields): WorkingUser {
    assignValues(USER_FIELDS, user, fields);
    if (fields.defaultRole !== undefined) user.defaultRole = fields.defaultRole;
    if (fields.userType !== undefined) user.userType = fields.userType;
    if (fields.permissions) user.permissions = { ...user.permissions, ...fields.permissions };
    if (fields.blocked) {
      user.blocked = fields.blocked.value;
      user.blockMessage = fields.blocked.message;
    }
    const password = fields.password;
    if (password?.kind === 'hashed' && (user.newPassword !== undefined || user.passwordHash !== password.stored)) {
      user.passwordHash = password.stored;
      delete user.newPassword;
    }
    if (password?.kind === 'plain') this.setPlainPassword(user, password.value);
    return user;
  }

  /**
   * Plain text is compared with what the user already has, so a re-sent password is SKIPPED;
   * and a password that the stored hash already verifies keeps that hash (no new salt), even
   * when the batch set another password before it, so a re-sent batch writes nothing.
   */
  private setPlainPassword(user: WorkingUser, plain: string): void {
    if (user.newPassword === plain) return;
    if (user.newPassword === undefined && user.passwordHash !== null && this.ctx.passwordMatches(user.passwordHash, plain)) return;
    const stored = this.state.originalUser(user.key)?.passwordHash ?? null;
    if (stored !== null && this.ctx.passwordMatches(stored, plain)) {
      user.passwordHash = stored;
      delete user.newPassword;
      return;
    }
    user.newPassword = plain;
  }

  // ── companies ───────────────────────────────────────────────────────────────────────

  private company(op: CompanyOperation, head: OperationResult): Outcome {
    if (op.action === 'delete') {
      if (!op.id) return fail('a company delete needs an <id>');
      if (!this.companyInScope(op.id)) return skip('company does not exist');
      this.require('deleteCompany');
      this.state.deleteCompany(op.id);
      return new Outcome('DELETED');
    }
    const id = op.id ?? this.resolveDerivedId(op.fields.name);
    const current = this.companyInScope(id);
    // Which ids are taken outside the scope (the suffix of a derived id, "not available") is told only
    // to a principal that may create companies; one that may not is refused as for a free id.
    if (!current) this.require('createCompany');
    head.id = id;
    return current ? this.updateCompany(current, op.fields) : this.createCompany(id, op.fields);
  }

  /**
   * An id derived from a name belongs to the company of that very name when one exists among
   * the candidates (base, base_1, …), so a re-sent batch updates it instead of creating another
   * one; otherwise the first free candidate is taken (a different company that happens to
   * derive the same id makes the next free suffix). Only a company of the scope can be that
   * company; ids taken anywhere are skipped (they are global, SPEC §7).
   */
  private resolveDerivedId(name: string | undefined): string {
    if (!name) return fail('a company needs an <id> or a <name>');
    const base = deriveCompanyId(name);
    let sameName: { n: number; id: string } | undefined;
    for (const company of this.state.companies.values()) {
      if (company.name !== name || !this.groupVisible(company.licenseGroup)) continue;
      const n = companyIdCandidateIndex(base, company.id);
      if (n !== undefined && (!sameName || n < sameName.n)) sameName = { n, id: company.id };
    }
    if (sameName) return sameName.id;
    for (let n = 0; ; n++) {
      const candidate = companyIdCandidate(base, n);
      if (!this.state.companies.has(candidate)) return candidate;
    }
  }

  private createCompany(id: string, fields: CompanyFields): Outcome {
    this.require('createCompany');
    if (!fields.name) return fail(`company '${id}' does not exist, and a company cannot be created without a <name>`);
    if (!fields.adminUser) return fail('a company cannot be created without an admin user (<adminUser>)');
    const admin = this.userInScope(fields.adminUser);
    if (!admin || admin.deleted) {
      return fail(`a company cannot be created without an admin user: user '${fields.adminUser}' ${admin ? 'is deleted' : 'does not exist'}`);
    }
    const group = fields.licenseGroup === undefined ? this.scope : this.visibleGroup(fields.licenseGroup).id;
    // A company that names no country takes its group's (SPEC §7.3), else CZ.
    const country = fields.country ?? this.inheritedCountry(group);
    const company: CompanyRecord = {
      id,
      name: fields.name,
      country,
      ...emptyValues(COMPANY_FIELDS),
      type: fields.type ?? defaultOrgType(country),
      show: fields.show ?? true,
      licenseGroup: group,
    };
    assignValues(COMPANY_FIELDS, company, fields);
    assertCompanyConsistent(company, fields);
    this.requireFreeId(this.state.companies.has(id), `company id ${id}`);
    this.state.putCompany(company);
    this.state.grant(admin.key, id, 'ADMIN');
    return new Outcome('CREATED');
  }

  private updateCompany(current: CompanyRecord, fields: CompanyFields): Outcome {
    const next: CompanyRecord = { ...current };
    if (fields.name !== undefined) next.name = fields.name;
    if (fields.country !== undefined) next.country = fields.country;
    assignValues(COMPANY_FIELDS, next, fields);
    if (fields.type !== undefined) next.type = fields.type;
    if (fields.show !== undefined) next.show = fields.show;
    if (fields.licenseGroup !== undefined) next.licenseGroup = this.visibleGroup(fields.licenseGroup).id;
    assertCompanyConsistent(next, fields);
    const admin = fields.adminUser === undefined ? undefined : this.liveUser(fields.adminUser, 'admin user');
    const adminNeedsGrant = admin !== undefined && this.state.grantsOf(admin.key).get(current.id) !== 'ADMIN';
    if (adminNeedsGrant && !next.show) return fail(`company '${current.id}' is hidden; no access can be granted to it`);
    const changed = !sameCompany(current, next);
    if (!changed && !adminNeedsGrant) return skip();
    // Making a user ADMIN through <adminUser> grants access, so it needs what <access> needs.
    if (adminNeedsGrant) this.requireAccessChange(current.id);
    else this.requireCompanyAdmin(current.id);
    if (next.licenseGroup !== current.licenseGroup) this.require('moveToGroup');
    if (changed) this.state.putCompany(next);
    if (admin && adminNeedsGrant) this.state.grant(admin.key, current.id, 'ADMIN');
    return new Outcome('UPDATED');
  }

  // ── access ──────────────────────────────────────────────────────────────────────────

  private access(op: AccessOperation): Outcome {
    if (!op.username) return fail('an <access> needs a user: give it a user attribute or put it after a <user>');
    const user = this.liveUser(op.username);
    const grants = this.state.grantsOf(user.key);
    if (op.action === 'delete') {
      if (!op.company) return fail('an <access action="delete"> needs a company id');
      if (!this.companyInScope(op.company)) return skip('company does not exist');
      if (!grants.has(op.company)) return skip(`user has no access to ${op.company}`);
      this.requireAccessChange(op.company);
      this.state.revoke(user.key, op.company);
      return new Outcome('DELETED');
    }
    if (!op.company) {
      if (!op.role) return fail('an <access> needs a company id, a role attribute, or both');
      return this.setRoleEverywhere(user.key, grants, op.role);
    }
    const company = this.companyInScope(op.company);
    if (!company) return fail(`company '${op.company}' does not exist`);
    const current = grants.get(op.company);
    // A new grant takes the user's own default role, else its group's (SPEC §7.3), else UZIVATEL.
    const wanted = op.role ?? current ?? user.defaultRole ?? findRole(this.effective(user.licenseGroup, 'defaultRole') ?? '') ?? DEFAULT_ROLE;
    if (current === wanted) return skip();
    if (!company.show) return fail(`company '${op.company}' is hidden; no access can be granted to it`);
    this.requireAccessChange(op.company);
    this.state.grant(user.key, op.company, wanted);
    return new Outcome(current ? 'UPDATED' : 'CREATED');
  }

  private setRoleEverywhere(user: string, grants: Map<string, RoleCode>, role: RoleCode): Outcome {
    // Grants to companies outside the scope are not the principal's to see or change.
    const visible = [...grants].filter(([c]) => this.grantInScope(c));
    if (visible.length === 0) return skip('user has no access to any company');
    const changing = visible.filter(([, r]) => r !== role).map(([c]) => c);
    if (changing.length === 0) return skip();
    for (const company of changing) this.requireAccessChange(company);
    for (const company of changing) this.state.grant(user, company, role);
    return new Outcome('UPDATED');
  }

  // ── license groups (SPEC §7.1) ──────────────────────────────────────────────────────

  private licenseGroup(op: LicenseGroupOperation): Outcome {
    this.require('changeGroups');
    const id = op.id as string;
    const existing = this.state.groups.get(id);
    const visible = existing !== undefined && this.groupVisible(id);
    if (op.action === 'delete') {
      if (!visible) return skip('license group does not exist');
      if (id === ROOT_GROUP) return fail('license group root cannot be deleted');
      this.requireBelowScope(id);
      const left = this.state.contentsOf(id);
      const parts = left ? leftIn(left) : [];
      if (parts.length) return fail(`license group ${id} is not empty: ${parts.join(', ')}`);
      this.state.deleteGroup(existing);
      return new Outcome('DELETED');
    }
    const fields = op.fields;
    if (!visible) {
      if (!fields.name) return fail(`license group '${id}' does not exist, and a license group cannot be created without a <name>`);
      const parent = this.visibleGroup(fields.parent ?? this.scope);
      const group: GroupRecord = { id, name: fields.name, parentId: parent.id, seats: fields.seats ?? null, seatsUsed: 0, params: {} };
      group.params = this.applyParams(group, fields.params);
      this.requireFreeId(existing !== undefined, `license group id ${id}`);
      this.state.createGroup(group);
      return new Outcome('CREATED');
    }
    const parent = fields.parent === undefined || fields.parent === existing.parentId ? undefined : this.visibleGroup(fields.parent);
    const next: GroupRecord = { ...existing, parentId: parent?.id ?? existing.parentId };
    if (fields.name !== undefined) next.name = fields.name;
    if (fields.seats !== undefined) next.seats = fields.seats;
    // After the move: a taskUser given with a new parent must belong to where the group goes.
    next.params = this.applyParams(next, fields.params);
    if (sameGroupApartFromSeats(existing, next)) return skip();
    if (id === ROOT_GROUP) {
      if (next.name !== existing.name || parent) return fail('license group root cannot be renamed or given a parent');
      // Only a root principal sets root's seats and parameters: for everyone else root lies above its scope.
      this.requireBelowScope(id);
    } else {
      this.requireBelowScope(id);
    }
    if (next.seats !== null && next.seats < existing.seatsUsed) {
      return fail(`the seats of license group ${id} cannot be ${next.seats}: ${existing.seatsUsed} are in use`);
    }
    if (parent) this.requireMove(existing, parent);
    this.state.putGroup({ ...next, parentId: existing.parentId });
    if (parent) this.state.moveGroup(this.state.groups.get(id) as GroupRecord, parent.id);
    this.state.emit(groupEvent(existing, this.state.groups.get(id)));
    return new Outcome('UPDATED');
  }

  /**
   * A principal changes only the groups strictly below its own: its own group and everything
   * above it are set from above (SPEC §7.1). A root principal is the one exception, for root's own
   * seats and parameters.
   */
  private requireBelowScope(id: string): void {
    if (this.state.groups.isBelow(id, this.scope)) return;
    if (id === ROOT_GROUP && this.scope === ROOT_GROUP) return;
    fail(`permission denied: license group ${id} is your own group; it is changed from above`);
  }

  /** A move keeps the tree a tree, stays inside the scope, and fits every seat limit of the new ancestors. */
  private requireMove(group: GroupRecord, parent: GroupRecord): void {
    if (this.state.groups.isWithin(parent.id, group.id)) {
      fail(`license group ${group.id} cannot move under ${parent.id}: ${parent.id} ${parent.id === group.id ? 'is the group itself' : 'lies inside it'}`);
    }
    const oldChain = this.state.groups.chain(group.parentId as string);
    for (const g of this.state.groups.chain(parent.id)) {
      if (g.seats === null || oldChain.some((o) => o.id === g.id)) continue;
      if (g.seatsUsed + group.seatsUsed > g.seats) {
        fail(`license group ${group.id} cannot move under ${parent.id}: its ${group.seatsUsed} seats do not fit in group ${g.id} (${g.seatsUsed} of ${g.seats} used)`);
      }
    }
  }

  /** The group's own parameters after `given` (null removes one); a taskUser must be able to act for the group. */
  private applyParams(group: GroupRecord, given: Partial<Record<GroupParam, string | null>> | undefined): GroupParams {
    const params: GroupParams = { ...group.params };
    for (const name of GROUP_PARAMS) {
      const value = given?.[name];
      if (value === undefined) continue;
      if (value === null) {
        delete params[name];
        continue;
      }
      if (name === 'taskUser' && value !== group.params.taskUser) this.requireTaskUser(group, value);
      params[name] = value;
    }
    return params;
  }

  /** A group's taskUser (SPEC §7.3, §10.3) is a user of the scope whose own group contains the group. */
  private requireTaskUser(group: GroupRecord, username: string): void {
    const user = this.userInScope(username);
    if (!user || user.deleted) fail(`parameter taskUser: user '${username}' does not exist`);
    const own = (user as WorkingUser).licenseGroup;
    if (own !== group.id && !this.state.groups.chain(group.parentId ?? group.id).some((g) => g.id === own)) {
      fail(`parameter taskUser: user '${username}' belongs to license group ${own}, which does not contain license group ${group.id}`);
    }
  }

  // ── date actions (SPEC §10.3) ───────────────────────────────────────────────────────

  private dateAction(op: DateActionOperation): Outcome {
    this.require('changeDateActions');
    const id = op.id as string;
    const existing = this.state.dateActions.get(id);
    const current = existing && this.groupVisible(existing.licenseGroup) ? existing : undefined;
    if (op.action === 'delete') {
      if (!current) return skip('date action does not exist');
      this.state.deleteDateAction(id);
      return new Outcome('DELETED');
    }
    const fields = op.fields;
    const group = fields.licenseGroup === undefined ? undefined : this.visibleGroup(fields.licenseGroup).id;
    if (!current) {
      const missing = (['entity', 'field', 'do'] as const).filter((name) => fields[name] === undefined).map((name) => `<${name}>`);
      if (missing.length) return fail(`date action '${id}' does not exist, and a date action cannot be created without ${missing.join(', ')}`);
      const created: DateActionRecord = {
        id,
        entity: fields.entity as DateActionRecord['entity'],
        field: fields.field as DateActionRecord['field'],
        offsets: fields.offsets ?? [],
        do: fields.do as DateActionRecord['do'],
        message: fields.message ?? null,
        licenseGroup: group ?? this.scope,
        active: fields.active ?? true,
      };
      assertDateAction(created);
      this.requireMaySchedule(created);
      this.requireFreeId(existing !== undefined, `date action id ${id}`);
      this.state.putDateAction(created);
      return new Outcome('CREATED');
    }
    const next: DateActionRecord = { ...current };
    if (fields.entity !== undefined) next.entity = fields.entity;
    if (fields.field !== undefined) next.field = fields.field;
    if (fields.offsets !== undefined) next.offsets = fields.offsets;
    if (fields.do !== undefined) next.do = fields.do;
    if (fields.message !== undefined) next.message = fields.message;
    if (group !== undefined) next.licenseGroup = group;
    if (fields.active !== undefined) next.active = fields.active;
    assertDateAction(next);
    if (sameDateAction(current, next)) return skip();
    this.requireMaySchedule(next);
    this.state.putDateAction(next);
    return new Outcome('UPDATED');
  }

  /** An acting user sets up (or changes) only an action whose runs do what it may do itself. */
  private requireMaySchedule(action: DateActionRecord): void {
    const actor = this.actor();
    const operation = scheduledOperation(action);
    if (!actor || !operation) return;
    const missing = missingFor(operation, actor.permissions);
    const what = action.entity === 'USER' ? 'users' : 'companies';
    if (missing) fail(`permission denied: a date action that does ${action.do} to ${what} needs ${missing}, which you do not have`);
  }

  // ── webhook subscriptions (SPEC §10.2) ──────────────────────────────────────────────

  private subscription(op: SubscriptionOperation): Outcome {
    this.require('manageSubscriptions');
    const id = op.id as string;
    const existing = this.state.subscriptions.get(id);
    const current = existing && this.groupVisible(existing.licenseGroup) ? existing : undefined;
    if (op.action === 'delete') {
      if (!current) return skip('subscription does not exist');
      this.state.deleteSubscription(current);
      return new Outcome('DELETED');
    }
    const fields = op.fields;
    if (!current) {
      if (!fields.url) return fail(`subscription '${id}' does not exist, and a subscription cannot be created without a <url>`);
      if (!fields.secret) return fail('a subscription cannot be created without a <secret>');
      const group = fields.licenseGroup === undefined ? this.scope : this.visibleGroup(fields.licenseGroup).id;
      this.requireWebhookTarget(fields.url);
      const { principal } = this.ctx;
      const subscription: SubscriptionRecord = {
        id,
        url: fields.url,
        events: fields.events ?? canonicalPatterns([]),
        secret: fields.secret,
        excludeOwn: fields.excludeOwn ?? true,
        licenseGroup: group,
        state: fields.active === false ? 'inactive' : 'active',
        owner: { credential: eventCredential(principal), user: principal.actingUser ?? null },
      };
      this.requireFreeId(existing !== undefined, `subscription id ${id}`);
      this.state.putSubscription(subscription);
      return new Outcome('CREATED');
    }
    const next: SubscriptionRecord = { ...current };
    // A URL already accepted is not judged again (its host's DNS may be down right now): it is checked at every delivery.
    if (fields.url !== undefined && fields.url !== current.url) {
      this.requireWebhookTarget(fields.url);
      next.url = fields.url;
    }
    if (fields.events !== undefined) next.events = fields.events;
    if (fields.secret !== undefined && !sameSecret(fields.secret, current.secret)) next.secret = fields.secret;
    if (fields.excludeOwn !== undefined) next.excludeOwn = fields.excludeOwn;
    if (fields.licenseGroup !== undefined) next.licenseGroup = this.visibleGroup(fields.licenseGroup).id;
    // <active>true</active> resumes a suspended subscription as well as an inactive one (SPEC §10.2).
    if (fields.active !== undefined) next.state = fields.active ? 'active' : 'inactive';
    if (sameSubscription(current, next)) return skip();
    this.state.putSubscription(next);
    return new Outcome('UPDATED', current.state === 'suspended' && next.state === 'active' ? 'resumed' : undefined);
  }

  private requireWebhookTarget(url: string): void {
    const problem = webhookTargetProblem(url, this.ctx.webhooks ?? NO_WEBHOOK_RULES);
    if (problem) fail(problem);
  }

  get events(): PlannedEvent[] {
    return this.state.events;
  }

  /** A new plain-text password takes its user's group's passwordHash (SPEC §7.3), else the server's (left undefined). */
  changes(): ChangeSet {
    return this.state.changes((user) => {
      const inherited = this.effective(user.licenseGroup, 'passwordHash');
      return inherited !== undefined && isHashAlgorithm(inherited) ? inherited : undefined;
    });
  }
}

function assertDateAction(action: DateActionRecord): void {
  const problem = dateActionProblem(action);
  if (problem) fail(problem);
}

/** "2 users, 1 company": what keeps a group from being deleted. */
function leftIn(c: GroupContents): string[] {
  const of = (n: number, one: string, many: string): string[] => (n === 0 ? [] : [`${n} ${n === 1 ? one : many}`]);
  return [
    ...of(c.groups, 'group', 'groups'),
    ...of(c.users, 'user', 'users'),
    ...of(c.companies, 'company', 'companies'),
    ...of(c.certificates, 'certificate', 'certificates'),
    ...of(c.dateActions, 'date action', 'date actions'),
    ...of(c.subscriptions ?? 0, 'subscription', 'subscriptions'),
  ];
}

function assertCompanyConsistent(company: CompanyRecord, fields: CompanyFields): void {
  const country: Country = company.country;
  if (!orgTypeFits(company.type, country)) {
    const expected = ORG_TYPES_BY_COUNTRY[country].join(', ');
    const why = fields.type === undefined ? `; give a <type> for ${country}` : '';
    fail(`organisation type ${company.type} does not fit country ${country} (expected ${expected})${why}`);
  }
  if (company.vatId && !company.vatId.startsWith(country)) {
    fail(`vatId ${company.vatId} must start with the country code ${country}`);
  }
}

function describe(op: Operation): OperationResult {
  const action = op.action === 'delete' ? 'DELETE' : 'CREATE_UPDATE';
  switch (op.kind) {
    case 'user':
      return { type: 'USER', action, id: op.username ?? '', status: 'FAILED' };
    case 'company':
      return { type: 'COMPANY', action, id: op.id ?? (op.fields.name ? deriveCompanyId(op.fields.name) : ''), status: 'FAILED' };
    case 'access':
      return { type: 'ACCESS_LIST', action, id: `${op.username ?? ''}@${op.company ?? '*'}`, status: 'FAILED' };
    case 'licenseGroup':
      return { type: 'LICENSE_GROUP', action, id: op.id ?? '', status: 'FAILED' };
    case 'dateAction':
      return { type: 'DATE_ACTION', action, id: op.id ?? '', status: 'FAILED' };
    case 'subscription':
      return { type: 'SUBSCRIPTION', action, id: op.id ?? '', status: 'FAILED' };
    default:
      return { type: 'UNKNOWN', action, id: op.element, status: 'FAILED' };
  }
}

/**
 * The heart of flexi-admin: operations + the stored rows they touch + who acts → one
 * result per operation and the net change set. Pure: no I/O, no clock, no randomness.
 */
export function planBatch(doc: BatchDocument, snapshot: Snapshot, ctx: PlanContext): Plan {
  const planner = new Planner(snapshot, ctx);
  const results = doc.operations.map((op) => planner.run(op));
  if (doc.atomic && results.some((r) => r.status === 'FAILED')) {
    return {
      results: results.map((r) => (r.status === 'FAILED' ? r : { ...r, status: 'SKIPPED', message: 'rolled back' })),
      changes: emptyChangeSet(),
      events: [],
    };
  }
  return { results, changes: planner.changes(), events: planner.events };
}
