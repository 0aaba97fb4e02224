import type { AccessRecord } from './access';
import type { CompanyRecord } from './companies';
import type { DateActionRecord } from './date-actions';
import type { GroupRecord } from './groups';
import type { HashAlgorithm } from './passwords';
import type { UserRecord } from './users';
import type { SubscriptionRecord } from './webhooks';

/**
 * What passes between the planner (batch/) and the store (store/): the stored rows a batch
 * touches, and what it changes. Both reach them here, below both, so neither imports the other's
 * internals.
 */

/** What the planner needs to see of the store: the rows a batch touches. */
export interface Snapshot {
  users: readonly UserRecord[];
  companies: readonly CompanyRecord[];
  /** Every grant of every user in `users`. */
  access: readonly AccessRecord[];
  /** The license group of every company a grant in `access` names (whether the company is loaded or not). */
  grantGroups?: Readonly<Record<string, string>>;
  /**
   * The license groups the batch touches — its principal's scope, the groups it names, the groups
   * of `users` and `companies` — each with all its ancestors up to root.
   */
  groups: readonly GroupRecord[];
  /** What is left in the groups a batch may delete (SnapshotRequest.groupCounts). */
  groupContents: readonly GroupContents[];
  /** The date actions the batch names (SPEC §10.3), wherever they are: their ids are global. */
  dateActions: readonly DateActionRecord[];
  /** The webhook subscriptions the batch names (SnapshotRequest.subscriptionIds), wherever they are. */
  subscriptions?: readonly SubscriptionRecord[];
}

/** What is left in a group: child groups, users that are not deleted, companies, certificates not revoked, date actions. */
export interface GroupContents {
  id: string;
  groups: number;
  users: number;
  companies: number;
  certificates: number;
  dateActions: number;
  subscriptions?: number;
}

/** The keys a batch may touch; the store loads exactly these into a Snapshot. */
export interface SnapshotRequest {
  userKeys: string[];
  companyIds: string[];
  /** Companies whose id starts with one of these, for ids derived from a name. */
  companyIdPrefixes: string[];
  /** Groups to load with their ancestors (besides those of the users and companies loaded). */
  groupIds: string[];
  /** Groups whose contents to count: those a batch may delete. */
  groupCounts: string[];
  dateActionIds: string[];
  subscriptionIds: string[];
}

export interface PlannedUser extends UserRecord {
  /** A plain-text password to hash before writing; passwordHash is then to be replaced. */
  newPassword?: string;
  /** The algorithm for newPassword: the passwordHash parameter of the user's group (SPEC §7.3), else the server's. */
  hashAlgorithm?: HashAlgorithm;
}

/**
 * A change of the group tree, applied in the batch's order (the closure of ancestors follows each);
 * deletes are applied last, once everything has left the group. A group deleted and created again
 * in one batch is a `recreate`: what named the old group is let go of (as by a delete) and the id
 * takes its new place at once.
 */
export type GroupMove =
  | { kind: 'create'; id: string; parentId: string; group: GroupRecord }
  | { kind: 'move'; id: string; parentId: string }
  | { kind: 'delete'; id: string; parentId: string }
  | { kind: 'recreate'; id: string; parentId: string; formerParentId: string };

/**
 * A date action written or deleted. One deleted and created again in a batch is a delete followed
 * by a put: what fired for the old one is gone with it.
 */
export type DateActionChange = { kind: 'put'; action: DateActionRecord } | { kind: 'delete'; id: string };

/**
 * A subscription a batch creates or changes (SPEC §10.2), with what the change means for its
 * deliveries; the store writes the definition and leaves the deliverer's columns alone otherwise.
 */
export interface SubscriptionWrite {
  subscription: SubscriptionRecord;
  /** A new row (also when the batch deleted one of this id before): it receives what is committed after the batch. */
  created: boolean;
  /** The secret changed; the one it replaces, which receivers hold, signs beside it for --webhook-secret-overlap. */
  rotatedFrom?: string;
  /** Made active again after being inactive: it receives what is committed after the batch, as a new one would. */
  restarted: boolean;
  /** Its state changed: a failed delivery's attempts and retry time start over. */
  stateChanged: boolean;
  /** What it receives changed (events, group, excludeOwn): a delivery being retried is composed again. */
  filterChanged: boolean;
}

/** How many seats in use a group gained (or, negative, lost) in a batch. */
export interface SeatChange {
  id: string;
  delta: number;
}

/** The net effect of a batch, in the order the store applies it. */
export interface ChangeSet {
  deletedCompanies: string[];
  users: PlannedUser[];
  companies: CompanyRecord[];
  revokedAccess: Array<Pick<AccessRecord, 'userKey' | 'companyId'>>;
  grantedAccess: AccessRecord[];
  /** Groups created, moved or deleted, in the batch's order. */
  groupMoves: GroupMove[];
  /** Groups created or changed (name, parent, seats, parameters), as they end. */
  groups: GroupRecord[];
  /**
   * Groups whose seats in use alone changed (users joined or left their subtree), by how much: the
   * batch holds the store's lock, so adding these to the stored counts gives the planner's counts.
   */
  seatsUsed: SeatChange[];
  /** In the order to apply them. */
  dateActions: DateActionChange[];
  /** Subscriptions deleted (also those created again afterwards), then those written. */
  deletedSubscriptions: string[];
  subscriptions: SubscriptionWrite[];
}

export function emptyChangeSet(): ChangeSet {
  return { deletedCompanies: [], users: [], companies: [], revokedAccess: [], grantedAccess: [], groupMoves: [], groups: [], seatsUsed: [], dateActions: [], deletedSubscriptions: [], subscriptions: [] };
}
