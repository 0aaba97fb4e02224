import type { AccessRecord } from './access';
import type { CompanyRecord } from './companies';
import type { UserRecord } from './users';

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
}

/** The keys a batch may touch; the store loads exactly these into a Snapshot. */
export interface SnapshotRequest {
  userKeys: string[];
  companyIds: string[];
  /** Companies whose id starts with one of these, for ids derived from a name. */
  companyIdPrefixes: string[];
}

export interface PlannedUser extends UserRecord {
  /** A plain-text password to hash before writing; passwordHash is then to be replaced. */
  newPassword?: string;
}

/** The net effect of a batch, in the order the store applies it. */
export interface ChangeSet {
  deletedCompanies: string[];
  users: PlannedUser[];
  companies: CompanyRecord[];
  revokedAccess: Array<Pick<AccessRecord, 'userKey' | 'companyId'>>;
  grantedAccess: AccessRecord[];
}
