/**
 * A store in memory for the pure property tests: it loads a Snapshot exactly as the SQLite store
 * does (the users, companies and id prefixes a SnapshotRequest names, and every grant of those
 * users) and applies a ChangeSet in the same order and with the same effects (a deleted company
 * takes every grant on it along, known to the batch or not). New plain-text passwords are hashed
 * with sha256 and a counter for salt, so everything stays deterministic.
 */
import { createHash } from 'node:crypto';
import type { ChangeSet, Snapshot, SnapshotRequest } from '../../src/batch/plan';
import type { AccessRecord } from '../../src/domain/access';
import type { CompanyRecord } from '../../src/domain/companies';
import { rootGroup, type GroupRecord } from '../../src/domain/groups';
import { formatStoredHash } from '../../src/domain/passwords';
import type { UserRecord } from '../../src/domain/users';

const pairKey = (user: string, company: string): string => `${user}\u0000${company}`;
const byKey = <T>(m: Map<string, T>): T[] => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export interface StoredRecords {
  users: UserRecord[];
  companies: CompanyRecord[];
  access: AccessRecord[];
}

export class MemoryStore {
  private users = new Map<string, UserRecord>();
  private companies = new Map<string, CompanyRecord>();
  private access = new Map<string, AccessRecord>();
  /** Only root: the property tests act in root scope; its seats used follow the users. */
  private groups = new Map<string, GroupRecord>([['root', rootGroup()]]);
  private salt = 0;

  /** Every row, sorted by key, as deep copies. */
  records(): StoredRecords {
    const copy = <T>(v: T): T => structuredClone(v);
    return { users: byKey(this.users).map(copy), companies: byKey(this.companies).map(copy), access: byKey(this.access).map(copy) };
  }

  user(key: string): UserRecord | undefined {
    return this.users.get(key);
  }

  /** What the SQLite store's loadSnapshot returns for this request (root scope), deep-frozen: the planner must not touch it. */
  load(request: SnapshotRequest): Snapshot {
    const keys = new Set(request.userKeys);
    const users = byKey(this.users).filter((u) => keys.has(u.key));
    const companies = byKey(this.companies).filter(
      (c) => request.companyIds.includes(c.id) || request.companyIdPrefixes.some((p) => c.id.startsWith(p)),
    );
    const access = byKey(this.access).filter((a) => keys.has(a.userKey));
    const grantGroups = Object.fromEntries(access.map((a) => [a.companyId, this.companies.get(a.companyId)?.licenseGroup ?? 'root']));
    return deepFreeze(structuredClone({ users, companies, access, grantGroups, groups: byKey(this.groups), groupContents: [], dateActions: [] }));
  }

  apply(changes: ChangeSet): void {
    for (const id of changes.deletedCompanies) {
      this.companies.delete(id);
      for (const [k, a] of this.access) if (a.companyId === id) this.access.delete(k);
    }
    for (const { newPassword, ...u } of changes.users) {
      const record: UserRecord = structuredClone(u);
      if (newPassword !== undefined) {
        const salt = `m${++this.salt}`;
        record.passwordHash = formatStoredHash('sha256', salt, createHash('sha256').update(`${salt}:${newPassword}`).digest('hex'));
      }
      this.users.set(record.key, record);
    }
    for (const c of changes.companies) this.companies.set(c.id, structuredClone(c));
    for (const g of changes.groups) this.groups.set(g.id, structuredClone(g));
    for (const a of changes.revokedAccess) this.access.delete(pairKey(a.userKey, a.companyId));
    for (const a of changes.grantedAccess) this.access.set(pairKey(a.userKey, a.companyId), { ...a });
    // What the foreign keys of the SQL schema would refuse.
    for (const a of this.access.values()) {
      if (!this.users.has(a.userKey)) throw new Error(`a grant names the missing user ${a.userKey}`);
      if (!this.companies.has(a.companyId)) throw new Error(`a grant names the missing company ${a.companyId}`);
    }
  }
}
