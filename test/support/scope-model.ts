/**
 * A reference model of SPEC §7 scopes, written from the spec and not from the project's code: the
 * license-group tree, the users, companies, grants and journal entries a test has made, and for a
 * principal (its scope, and the stored user it acts as) what it may see. test/integration/
 * isolation.test.ts holds the server's answers to it.
 *
 * The rules it encodes:
 * - a scope is one group and every group below it (SPEC §7);
 * - users, companies and groups outside the scope do not exist for the principal; usernames,
 *   company ids and group ids are global, so the one thing it can learn of them is that an id is
 *   taken (creating it is FAILED "… is not available", a derived company id skips it);
 * - listings show what lies in the scope: users not deleted, companies not hidden (for a principal
 *   below root), groups with their path from root and the seats used in their whole subtree
 *   (active NORMAL and REST_API users, SPEC §7.2); a user's access list and tenants only name
 *   companies of the scope (SPEC §7.4);
 * - a principal acting as a user without manageAll or createUser reads only that user and the
 *   journal entries of the batches it sent (SPEC §6); the journal entry of a batch belongs to the
 *   scope it was sent in.
 */
export const ROOT = 'root';

export type UserType = 'NORMAL' | 'REST_API' | 'READ_ONLY';

export interface ModelGroup {
  id: string;
  name: string;
  parent: string | null;
  seats: number | null;
}

export interface ModelUser {
  /** As stored (the case it was created with); keys are its lowercase. */
  username: string;
  group: string;
  permissions: ReadonlySet<string>;
  userType: UserType;
  deleted: boolean;
  blocked: boolean;
  password: string;
}

export interface ModelCompany {
  id: string;
  name: string;
  group: string;
  show: boolean;
}

export interface ModelJournalEntry {
  batchId: string;
  /** The scope of the principal that sent it. */
  scope: string;
  /** The key of the user the batch acted as, if any. */
  actingUser: string | null;
  resultXml: string;
}

/** Who asks: its scope, and the stored user it acts as (impersonation or session), if any. */
export interface Viewer {
  scope: string;
  actingUser?: string;
}

export interface TenantView {
  id: string;
  name: string;
  path: string[];
  companies: string[];
}

export const keyOf = (username: string): string => username.toLowerCase();

const byId = <T extends { id: string }>(a: T, b: T): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** SPEC §4.2: lowercase, every character outside [a-z0-9] replaced by "_" (the model's names are ASCII). */
export function derivedCompanyId(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '_').slice(0, 64);
}

export class ScopeModel {
  readonly groups = new Map<string, ModelGroup>([[ROOT, { id: ROOT, name: ROOT, parent: null, seats: null }]]);
  readonly users = new Map<string, ModelUser>();
  readonly companies = new Map<string, ModelCompany>();
  /** user key → company id → role */
  readonly grants = new Map<string, Map<string, string>>();
  readonly journal: ModelJournalEntry[] = [];

  addGroup(group: ModelGroup): void {
    this.groups.set(group.id, group);
  }

  addUser(user: ModelUser): void {
    this.users.set(keyOf(user.username), user);
  }

  addCompany(company: ModelCompany): void {
    this.companies.set(company.id, company);
  }

  grant(username: string, company: string, role: string): void {
    const key = keyOf(username);
    let of = this.grants.get(key);
    if (!of) this.grants.set(key, (of = new Map()));
    of.set(company, role);
  }

  grantsOf(username: string): ReadonlyMap<string, string> {
    return this.grants.get(keyOf(username)) ?? new Map();
  }

  // ── the tree ───────────────────────────────────────────────────────────────────────────

  /** The group and its ancestors, nearest first, ending at root. */
  chain(id: string): string[] {
    const out: string[] = [];
    for (let g = this.groups.get(id); g; g = g.parent === null ? undefined : this.groups.get(g.parent)) out.push(g.id);
    return out;
  }

  path(id: string): string[] {
    return this.chain(id).reverse();
  }

  isWithin(id: string, scope: string): boolean {
    return this.chain(id).includes(scope);
  }

  /** Active NORMAL and REST_API users in the group's whole subtree. */
  seatsUsed(id: string): number {
    return [...this.users.values()].filter((u) => !u.deleted && u.userType !== 'READ_ONLY' && this.isWithin(u.group, id)).length;
  }

  // ── what a principal sees ──────────────────────────────────────────────────────────────

  /** Whether the viewer reads other users and others' journal entries (SPEC §6: manageAll or createUser). */
  readsOthers(viewer: Viewer): boolean {
    if (viewer.actingUser === undefined) return true;
    const actor = this.users.get(keyOf(viewer.actingUser));
    return actor !== undefined && !actor.deleted && (actor.permissions.has('manageAll') || actor.permissions.has('createUser'));
  }

  /** Whether a logged-in user may send batches at all (SPEC §6: manageAll and licenseManagement). */
  sendsSessionBatches(username: string): boolean {
    const user = this.users.get(keyOf(username));
    return user !== undefined && user.permissions.has('manageAll') && user.permissions.has('licenseManagement');
  }

  groupInScope(viewer: Viewer, id: string): boolean {
    return this.groups.has(id) && this.isWithin(id, viewer.scope);
  }

  userInScope(viewer: Viewer, username: string): ModelUser | undefined {
    const user = this.users.get(keyOf(username));
    return user && this.isWithin(user.group, viewer.scope) ? user : undefined;
  }

  companyInScope(viewer: Viewer, id: string): ModelCompany | undefined {
    const company = this.companies.get(id);
    return company && this.isWithin(company.group, viewer.scope) ? company : undefined;
  }

  /** `/g.json`: the groups of the scope (or of `?group=`'s subtree), in id order. */
  listedGroups(viewer: Viewer, group = viewer.scope): Array<ModelGroup & { path: string[]; seatsUsed: number }> {
    return [...this.groups.values()]
      .filter((g) => this.isWithin(g.id, group) && this.isWithin(g.id, viewer.scope))
      .sort(byId)
      .map((g) => ({ ...g, path: this.path(g.id), seatsUsed: this.seatsUsed(g.id) }));
  }

  /** `/u.json`: users of the scope (or subtree) that are not deleted, in key order; only the actor itself for one that reads only itself. */
  listedUsers(viewer: Viewer, group = viewer.scope): ModelUser[] {
    return [...this.users.entries()]
      .filter(([, u]) => !u.deleted && this.isWithin(u.group, group) && this.isWithin(u.group, viewer.scope))
      .filter(([key]) => this.readsOthers(viewer) || key === keyOf(viewer.actingUser as string))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, u]) => u);
  }

  /** `/c.json` below root: companies of the scope (or subtree) that are not hidden, in id order. */
  listedCompanies(viewer: Viewer, group = viewer.scope): ModelCompany[] {
    return [...this.companies.values()].filter((c) => c.show && this.isWithin(c.group, group) && this.isWithin(c.group, viewer.scope)).sort(byId);
  }

  /** `/u/{login}.json`: the user with its access to companies of the scope, or undefined where the answer is 404. */
  readableUser(viewer: Viewer, login: string): { user: ModelUser; access: Array<{ company: string; role: string }> } | undefined {
    const user = this.userInScope(viewer, login);
    if (!user || user.deleted) return undefined;
    if (!this.readsOthers(viewer) && keyOf(login) !== keyOf(viewer.actingUser as string)) return undefined;
    const access = [...this.grantsOf(login)]
      .filter(([company]) => this.companyInScope(viewer, company) !== undefined)
      .map(([company, role]) => ({ company, role }))
      .sort((a, b) => (a.company < b.company ? -1 : a.company > b.company ? 1 : 0));
    return { user, access };
  }

  /**
   * A user's tenants seen from `scope` (SPEC §7.4): its own group and every group of the scope
   * holding a company it has access to, each with those companies; undefined for a user not in
   * the scope (or deleted).
   */
  tenantsIn(scope: string, login: string): TenantView[] | undefined {
    const user = this.users.get(keyOf(login));
    if (!user || user.deleted || !this.isWithin(user.group, scope)) return undefined;
    const byGroup = new Map<string, string[]>([[user.group, []]]);
    for (const companyId of this.grantsOf(login).keys()) {
      const company = this.companies.get(companyId);
      if (!company || !this.isWithin(company.group, scope)) continue;
      const list = byGroup.get(company.group) ?? [];
      list.push(company.id);
      byGroup.set(company.group, list);
    }
    return [...byGroup.keys()].sort().map((id) => ({
      id,
      name: (this.groups.get(id) as ModelGroup).name,
      path: this.path(id),
      companies: (byGroup.get(id) as string[]).sort(),
    }));
  }

  /** `/u/{login}/tenants.json`, or undefined where the answer is 404. */
  readableTenants(viewer: Viewer, login: string): TenantView[] | undefined {
    if (!this.readsOthers(viewer) && keyOf(login) !== keyOf(viewer.actingUser as string)) return undefined;
    return this.tenantsIn(viewer.scope, login);
  }

  /** `GET /admin/batch/{id}`: the newest entry of that id in the scope (of the batches the viewer sent, for one that reads only itself). */
  journalEntry(viewer: Viewer, batchId: string): ModelJournalEntry | undefined {
    const own = this.readsOthers(viewer) ? undefined : keyOf(viewer.actingUser as string);
    for (let i = this.journal.length - 1; i >= 0; i--) {
      const e = this.journal[i];
      if (e.batchId !== batchId || !this.isWithin(e.scope, viewer.scope)) continue;
      if (own !== undefined && e.actingUser !== own) continue;
      return e;
    }
    return undefined;
  }

  // ── what lies outside ──────────────────────────────────────────────────────────────────

  /** Every user outside the scope, deleted ones included: they do not exist for the viewer. */
  usersOutside(viewer: Viewer): ModelUser[] {
    return [...this.users.values()].filter((u) => !this.isWithin(u.group, viewer.scope));
  }

  companiesOutside(viewer: Viewer): ModelCompany[] {
    return [...this.companies.values()].filter((c) => !this.isWithin(c.group, viewer.scope));
  }

  /** Groups outside the scope: siblings and their subtrees, the groups above the scope, root. */
  groupsOutside(viewer: Viewer): ModelGroup[] {
    return [...this.groups.values()].filter((g) => !this.isWithin(g.id, viewer.scope));
  }

  /** The company id a name derives to for a principal creating a new company: the first candidate taken nowhere (SPEC §4.2, §7). */
  freeDerivedId(name: string): string {
    const base = derivedCompanyId(name);
    for (let n = 0; ; n++) {
      const candidate = n === 0 ? base : `${base.slice(0, 64 - `_${n}`.length)}_${n}`;
      if (!this.companies.has(candidate)) return candidate;
    }
  }
}
