import type { ChangeSet, Snapshot, SnapshotRequest } from '../domain/changes';
import type { EventBatch } from '../domain/events';
import type { CompanyRecord } from '../domain/companies';
import type { GroupView, Tenant } from '../domain/groups';
import type { UserRecord, UserView } from '../domain/users';
import type { DateActionsTransaction, StoredDateAction } from './date-actions';
import type { StoredSubscription } from '../domain/webhooks';
import type { DeliveryChange, DeliveryExpectation, SubscribedEvent } from './sql-subscriptions';
import type { FingerprintRecord, JournalEntry } from './schema';

export type { FingerprintRecord, JournalEntry } from './schema';

export type { UserView } from '../domain/users';
export type { DateActionsTransaction, DateObject, StoredDateAction } from './date-actions';
export type { DateActionFiredRow } from './schema';
export type { DeliveryChange, DeliveryExpectation, SubscribedEvent } from './sql-subscriptions';

/**
 * A page of a listing (SPEC §7.4), always in id order: `limit` rows from `start`, or, with `after`,
 * the rows whose id comes after that one (a walk that concurrent writes cannot shift).
 */
export interface Page {
  /** The subtree of this group only (`?group=`), itself inside the scope. */
  group?: string;
  limit: number;
  start: number;
  /** A position in the listing's order: a user's key (its lowercase username), a company id or a group id. */
  after?: string;
  /** Also count every row the listing has (`add-row-count=true`). */
  countRows?: boolean;
}

export interface Listed<T> {
  rows: T[];
  rowCount?: number;
}

export type { GroupView, Tenant } from '../domain/groups';

/** A live session: its user and the group it works in (null for a session opened before license groups: its user's group). */
export interface LiveSession {
  user: UserRecord;
  tenant: string | null;
}

/** Writes of one batch, with passwords already hashed. */
export type StoredChangeSet = Omit<ChangeSet, 'users'> & { users: UserRecord[] };

export interface BatchTransaction {
  loadSnapshot(request: SnapshotRequest, scope: string): Promise<Snapshot>;
  apply(changes: StoredChangeSet): Promise<void>;
  journal(entry: JournalEntry): Promise<void>;
  /** Writes the events of this commit (SPEC §10.1), numbered after every event committed before; their seqs. */
  recordEvents(batch: EventBatch): Promise<number[]>;
  /** What a run of the date actions reads and records (SPEC §10.3), in this transaction. */
  readonly dates: DateActionsTransaction;
}

/** A page of the event feed: the events' JSON in seq order, and where the next page starts. */
export interface EventPage {
  events: string[];
  next: number;
}

/**
 * Everything flexi-admin keeps. Batch logic sees only this interface; SqlStore implements it
 * for SQLite and PostgreSQL alike. Errors meaning "the store cannot be reached right now" are
 * thrown as FlexiError('store-unavailable') so clients know a retry is safe; a store that can
 * no longer keep what it is given (the SQLite file deleted or replaced under it) refuses every
 * write with FlexiError('store-gone') until the server is restarted.
 */
export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * Runs `work` exclusively (one writer at a time, also across processes) and commits once.
   * With `claim`, a store shared by several processes first claims that key for the transaction
   * and throws FlexiError('conflict') when another process holds the same claim (the same batch
   * queued or running there); a single-process store may ignore it.
   */
  inBatch<T>(work: (tx: BatchTransaction) => Promise<T>, options?: { claim?: string }): Promise<T>;

  /** Users of the scope that are not deleted, with their access to companies of the scope. */
  listUsers(scope: string, page: Page): Promise<Listed<UserView>>;
  findUser(scope: string, username: string): Promise<UserView | undefined>;
  listCompanies(scope: string, options: { includeHidden: boolean }, page: Page): Promise<Listed<CompanyRecord>>;
  /** The newest entry of `batchId` in the scope; with `sentBy`, the newest one that acted as that user (its key). */
  findLatestJournal(scope: string, batchId: string, options?: { sentBy?: string }): Promise<JournalEntry | undefined>;
  groupExists(group: string): Promise<boolean>;
  /** Whether `group` exists and lies inside `scope` (is it, or below it). */
  groupInScope(scope: string, group: string): Promise<boolean>;
  /** The groups of the scope, each with its path from root. */
  listGroups(scope: string, page: Page): Promise<Listed<GroupView>>;
  /** One group of the scope with its path, its children and its chain up to root. */
  findGroup(scope: string, id: string): Promise<GroupView | undefined>;
  /**
   * The events of the scope after `after`, in seq order, at most `limit` (SPEC §10.1). `next` is
   * the last one's seq when the page is full, else the last seq of the store (or `after`, when
   * that is larger): nothing the scope sees lies between `after` and `next` but the events given.
   */
  listEvents(scope: string, after: number, limit: number): Promise<EventPage>;
  /** Every date action (SPEC §10.3), in id order. */
  listDateActions(): Promise<StoredDateAction[]>;
  /** The seq of the last event committed (0 before the first). */
  lastEventSeq(): Promise<number>;
  /** A user's tenants as seen from `scope`: its own group (when in scope) and every group of the scope holding a company it has access to. */
  tenantsOf(scope: string, username: string): Promise<Tenant[] | undefined>;
  /** The group a user selected at its last login with a tenant, if any. */
  lastTenantOf(userKey: string): Promise<string | undefined>;

  /** A stored user with its password hash, for authentication only; deleted users included. */
  findUserRecord(scope: string, username: string): Promise<UserRecord | undefined>;
  /**
   * Replaces a user's password hash by a stronger form of the same password (at a login), only
   * while the stored hash is still `from`: a batch that changed it meanwhile wins. The user's
   * fields, timestamps and the journal are untouched, as the password itself did not change.
   */
  upgradePasswordHash(userKey: string, from: string, to: string): Promise<boolean>;
  /**
   * The most PBKDF2 iterations any stored password hash names (deleted users included, as a login
   * checks their hashes too); 0 when none is pbkdf2. Forms that cannot be parsed may count too.
   */
  costliestPbkdf2Iterations(): Promise<number>;
  /**
   * Sessions are kept by the SHA-256 of their id, so the database never holds a usable one. With
   * `idleMs`, sessions idle longer than that are removed first. `tenant` is the group the session
   * works in; with `lastTenant`, the user's choice for its next login without one is set to that
   * group, or to null: its own group, wherever that is then.
   */
  createSession(session: { idHash: string; userKey: string; now: number; idleMs?: number; tenant: string; lastTenant?: string | null }): Promise<void>;
  /** The user and tenant of a live session, marking it used now; a session idle longer than `idleMs` is not found. */
  useSession(idHash: string, now: number, idleMs: number): Promise<LiveSession | undefined>;
  /** Ends a live session; false when there is none (unknown, already ended, or idle longer than `idleMs`). */
  deleteSession(idHash: string, now: number, idleMs: number): Promise<boolean>;

  /**
   * Takes or renews the lease `name` for `holder` until now + ttlMs (SPEC §10.4): true when it was
   * free, expired or already this holder's; false while another holder's lease runs. One statement,
   * so two runners asking at once cannot both get it.
   */
  acquireLease(name: string, holder: string, now: number, ttlMs: number): Promise<boolean>;
  /** Gives the lease up at once, if `holder` still has it, so a waiting runner need not wait for it to expire. */
  releaseLease(name: string, holder: string): Promise<void>;
  /** The webhook subscriptions of the scope (SPEC §10.2), in id order, each with how many events wait for it. */
  listSubscriptions(scope: string): Promise<Array<StoredSubscription & { waiting: number }>>;
  /** Every subscription with its delivery state, for the deliverer and the metrics. */
  allSubscriptions(): Promise<StoredSubscription[]>;
  findSubscription(id: string): Promise<StoredSubscription | undefined>;
  /**
   * The events a subscription receives with seq in (after, upTo], in seq order, at most `limit`: of
   * its types, in the scope of its group as the tree stands now, and with excludeOwn not its owner's.
   */
  subscriptionEvents(subscription: StoredSubscription, after: number, upTo: number, limit: number): Promise<SubscribedEvent[]>;
  /**
   * Records what the deliverer did, only while the subscription is active and still has the cursor
   * and the pending delivery it read; false when a batch (or another runner) changed it meanwhile.
   */
  recordDelivery(id: string, expected: DeliveryExpectation, change: DeliveryChange): Promise<boolean>;
  /** Deletes the events of the commits older than `before` (ISO time) whose seqs are at most `upToSeq` (retention); the last seq deleted, or 0. */
  deleteEvents(before: string, upToSeq: number): Promise<number>;

  addFingerprint(record: Pick<FingerprintRecord, 'fingerprint' | 'scope' | 'label'>): Promise<'added' | 'updated'>;
  /** Registers only a fingerprint the store has never seen, so a revoked one stays revoked. */
  addFingerprintIfUnknown(record: Pick<FingerprintRecord, 'fingerprint' | 'scope' | 'label'>): Promise<boolean>;
  listFingerprints(): Promise<FingerprintRecord[]>;
  revokeFingerprint(fingerprint: string): Promise<boolean>;
  findActiveFingerprint(fingerprint: string): Promise<FingerprintRecord | undefined>;

  /** Throws store-unavailable when the store cannot answer, store-gone when it can no longer keep writes. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
