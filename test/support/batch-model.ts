/**
 * An independent, deliberately naive model of SPEC §4 for property tests: plain maps, one
 * rule after the other as the specification words it, no snapshot, no change set. It says
 * what a batch must answer and leave behind, and — run twice — whether the specification
 * itself makes a batch idempotent (a batch whose operations depend on later ones is not).
 *
 * Passwords are kept by meaning: the plain text the user was given, or the stored form of a
 * pre-hashed one (checked with the real verifier), since hashes get a fresh salt.
 *
 * Permissions (SPEC §6, README "Principals, impersonation and permissions") are modelled for a
 * batch that acts as a stored user: an operation is first worked out as if allowed; if it would
 * change nothing it is SKIPPED whatever the permissions, otherwise the acting user — as it
 * stands at that point of the batch, and only while it is neither deleted nor blocked — must
 * hold what the change needs, else the operation is FAILED and changes nothing. No takeover: a
 * change to another user (any field, its permissions, delete, restore) also needs the acting user
 * to hold every permission that user holds, and every permission changed, granted or revoked.
 */
import type { AccessRecord } from '../../src/domain/access';
import type { CompanyRecord } from '../../src/domain/companies';
import type { BatchDocument, CompanyOperation, Operation, UserOperation, AccessOperation } from '../../src/batch/operations';
import { companyIdCandidate, deriveCompanyId } from '../../src/domain/company-id';
import { defaultOrgType, orgTypeFits, type Country } from '../../src/domain/org-types';
import { verifyPasswordSync } from '../../src/domain/passwords';
import { noPermissions, PERMISSION_NAMES, type PermissionName, type Permissions } from '../../src/domain/permissions';
import type { RoleCode } from '../../src/domain/roles';
import type { UserRecord, UserType } from '../../src/domain/users';

export type ModelPassword = { plain: string } | { stored: string } | null;

export interface ModelUser {
  key: string;
  username: string;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
  password: ModelPassword;
  permissions: Permissions;
  defaultRole: RoleCode | null;
  blocked: boolean;
  blockMessage: string | null;
  userType: UserType;
  deleted: boolean;
}

export interface ModelCompany {
  id: string;
  name: string;
  country: Country;
  regNo: string | null;
  vatId: string | null;
  type: string;
  show: boolean;
}

export interface ModelResult {
  id: string;
  status: 'CREATED' | 'UPDATED' | 'DELETED' | 'FAILED' | 'SKIPPED';
}

export interface ModelState {
  users: Map<string, ModelUser>;
  companies: Map<string, ModelCompany>;
  /** `user\u0000company` → role */
  grants: Map<string, RoleCode>;
}

const pair = (user: string, company: string): string => `${user}\u0000${company}`;

export function emptyState(): ModelState {
  return { users: new Map(), companies: new Map(), grants: new Map() };
}

export function cloneState(s: ModelState): ModelState {
  return {
    users: new Map([...s.users].map(([k, u]) => [k, { ...u, permissions: { ...u.permissions } }])),
    companies: new Map([...s.companies].map(([k, c]) => [k, { ...c }])),
    grants: new Map(s.grants),
  };
}

/** States are compared as sorted plain data. */
export function stateData(s: ModelState): unknown {
  const sorted = <T>(m: Map<string, T>): Array<[string, T]> => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { users: sorted(s.users), companies: sorted(s.companies), grants: sorted(s.grants) };
}

/** Not an Error: an expected outcome needs no (costly) stack trace. */
class Failed {}
const failed = (): never => {
  throw new Failed();
};

/**
 * Runs a batch on a copy of `start`; returns the answer and the state after it. `actingUser`
 * is the stored user the batch acts as (impersonation or session); without it the batch acts
 * with full rights (certificate, server password, CLI).
 */
export function runModel(doc: BatchDocument, start: ModelState, actingUser?: string): { results: ModelResult[]; state: ModelState } {
  const s = cloneState(start);
  const acting = actingUser?.toLowerCase();
  const results = doc.operations.map((op) => {
    const id = { value: defaultId(op) };
    try {
      if (op.invalid) return { id: id.value, status: 'FAILED' as const };
      const status =
        op.kind === 'user' ? user(s, op, acting, start) : op.kind === 'company' ? company(s, op, id, acting) : op.kind === 'access' ? access(s, op, acting) : failed();
      return { id: id.value, status };
    } catch (err) {
      if (err instanceof Failed) return { id: id.value, status: 'FAILED' as const };
      throw err;
    }
  });
  if (doc.atomic && results.some((r) => r.status === 'FAILED')) {
    return { results: results.map((r) => (r.status === 'FAILED' ? r : { ...r, status: 'SKIPPED' })), state: cloneState(start) };
  }
  if (doc.dryRun) return { results, state: cloneState(start) };
  return { results, state: s };
}

/** Whether SPEC §4 itself makes the batch idempotent from `start`: run twice, the second run changes nothing. */
export function idempotentBySpec(doc: BatchDocument, start: ModelState = emptyState(), actingUser?: string): boolean {
  const once = runModel(doc, start, actingUser).state;
  return JSON.stringify(stateData(once)) === JSON.stringify(stateData(runModel(doc, once, actingUser).state));
}

// ── permissions (SPEC §6) ───────────────────────────────────────────────────────────────

/** The acting user as it stands now, if it may act at all (exists, not deleted, not blocked). */
function actor(s: ModelState, acting: string): ModelUser | undefined {
  const a = s.users.get(acting);
  return a && !a.deleted && !a.blocked ? a : undefined;
}

/** The acting user holds every one of these permissions (always true without an acting user). */
function holds(s: ModelState, acting: string | undefined, ...needed: PermissionName[]): boolean {
  if (acting === undefined) return true;
  const a = actor(s, acting);
  return a !== undefined && needed.every((p) => a.permissions[p]);
}

/** ADMIN in the company, or manageAll. */
function runs(s: ModelState, acting: string | undefined, companyId: string): boolean {
  if (acting === undefined) return true;
  const a = actor(s, acting);
  return a !== undefined && (a.permissions.manageAll || s.grants.get(pair(a.key, companyId)) === 'ADMIN');
}

/** Changing permissions needs grantPermission, and a permission can only be handed out, or taken away, by one who has it. */
function mayChangePermissions(s: ModelState, acting: string | undefined, before: Permissions, after: Permissions): boolean {
  const changed = PERMISSION_NAMES.filter((p) => before[p] !== after[p]);
  if (changed.length === 0 || acting === undefined) return true;
  return holds(s, acting, 'grantPermission') && changed.every((p) => holds(s, acting, p));
}

/** No takeover: the acting user holds every permission `target` holds (one's own record is always within reach). */
function outranksOrIs(s: ModelState, acting: string | undefined, target: ModelUser): boolean {
  if (acting === undefined || acting === target.key) return true;
  return PERMISSION_NAMES.every((p) => !target.permissions[p] || holds(s, acting, p));
}

const allow = (ok: boolean): void => {
  if (!ok) failed();
};

function defaultId(op: Operation): string {
  switch (op.kind) {
    case 'user':
      return op.username ?? '';
    case 'company':
      return op.id ?? (op.fields.name ? deriveCompanyId(op.fields.name) : '');
    case 'access':
      return `${op.username ?? ''}@${op.company ?? '*'}`;
    case 'licenseGroup':
    case 'dateAction':
    case 'subscription':
      return op.id ?? '';
    default:
      return op.element;
  }
}

function liveUser(s: ModelState, username: string | undefined): ModelUser {
  const u = username === undefined ? undefined : s.users.get(username.toLowerCase());
  return u && !u.deleted ? u : failed();
}

// ── users ───────────────────────────────────────────────────────────────────────────────

function user(s: ModelState, op: UserOperation, acting: string | undefined, start: ModelState): ModelResult['status'] {
  const key = (op.username as string).toLowerCase();
  const current = s.users.get(key);
  if (op.action === 'delete') {
    if (!current || current.deleted) return 'SKIPPED';
    allow(holds(s, acting, 'createUser', 'licenseManagement'));
    allow(outranksOrIs(s, acting, current));
    s.users.set(key, { ...current, deleted: true });
    return 'DELETED';
  }
  const base: ModelUser = current
    ? { ...current, permissions: { ...current.permissions }, deleted: false }
    : {
        key,
        username: op.username as string,
        email: null,
        givenName: null,
        familyName: null,
        password: null,
        permissions: noPermissions(),
        defaultRole: null,
        blocked: false,
        blockMessage: null,
        userType: 'NORMAL',
        deleted: false,
      };
  const f = op.fields;
  // Naming another user's plain-text password is a guess that the answer (SKIPPED or not) would
  // confirm: only an actor that may set it, or change that user at all, gets one, and never about a
  // user that outranks it — whether or not the password matches.
  if (current && f.password?.kind === 'plain' && acting !== undefined && acting !== key) {
    allow(holds(s, acting, 'changePassword') || holds(s, acting, 'createUser'));
    allow(outranksOrIs(s, acting, current));
  }
  const next: ModelUser = { ...base, permissions: { ...base.permissions } };
  if (f.email !== undefined) next.email = f.email;
  if (f.givenName !== undefined) next.givenName = f.givenName;
  if (f.familyName !== undefined) next.familyName = f.familyName;
  if (f.defaultRole !== undefined) next.defaultRole = f.defaultRole;
  if (f.userType !== undefined) next.userType = f.userType;
  if (f.permissions) Object.assign(next.permissions, f.permissions);
  if (f.blocked) {
    next.blocked = f.blocked.value;
    next.blockMessage = f.blocked.message;
  }
  if (f.password?.kind === 'plain' && !passwordIs(next.password, f.password.value)) {
    // SPEC §4.3: a plain text the stored hash verifies is not hashed anew — the store keeps that hash,
    // even when the batch set another password before (so a later pre-hashed form equal to it changes nothing).
    const stored = start.users.get(key)?.password ?? null;
    next.password = passwordIs(stored, f.password.value) ? stored : { plain: f.password.value };
  }
  if (f.password?.kind === 'hashed' && !(next.password && 'stored' in next.password && next.password.stored === f.password.stored)) {
    next.password = { stored: f.password.stored };
  }
  const passwordChanged = JSON.stringify(next.password) !== JSON.stringify(base.password);
  const permissionsChanged = JSON.stringify(next.permissions) !== JSON.stringify(base.permissions);
  if (!current || current.deleted) {
    // Creating, or restoring, a user: createUser; a restore that sets another password also changes a password.
    allow(holds(s, acting, 'createUser'));
    if (current && passwordChanged) allow(holds(s, acting, 'changePassword'));
    if (current) allow(outranksOrIs(s, acting, current));
    allow(mayChangePermissions(s, acting, base.permissions, next.permissions));
    s.users.set(key, next);
    return 'CREATED';
  }
  const otherChanged = JSON.stringify({ ...next, password: null, permissions: null }) !== JSON.stringify({ ...base, password: null, permissions: null });
  if (!passwordChanged && !permissionsChanged && !otherChanged) return 'SKIPPED';
  // One's own password and other fields need no permission — but only while one may act at all.
  const self = acting === key;
  if (acting !== undefined) allow(actor(s, acting) !== undefined);
  if (passwordChanged && !self) allow(holds(s, acting, 'changePassword'));
  allow(mayChangePermissions(s, acting, base.permissions, next.permissions));
  if (otherChanged && !self) allow(holds(s, acting, 'createUser'));
  allow(outranksOrIs(s, acting, base));
  s.users.set(key, next);
  return 'UPDATED';
}

const verified = new Map<string, boolean>();

/** verifyPasswordSync, remembered: property tests ask the same (PBKDF2) question many times. */
export function verifiesAs(stored: string, plain: string): boolean {
  const key = `${stored}\u0000${plain}`;
  let result = verified.get(key);
  if (result === undefined) {
    if (verified.size > 10_000) verified.clear();
    verified.set(key, (result = verifyPasswordSync(stored, plain)));
  }
  return result;
}

/** Whether the user's password already is this plain text. */
export function passwordIs(password: ModelPassword, plain: string): boolean {
  if (password === null) return false;
  return 'plain' in password ? password.plain === plain : verifiesAs(password.stored, plain);
}

// ── companies ───────────────────────────────────────────────────────────────────────────

function company(s: ModelState, op: CompanyOperation, id: { value: string }, acting: string | undefined): ModelResult['status'] {
  if (op.action === 'delete') {
    if (!op.id) return failed();
    if (!s.companies.has(op.id)) return 'SKIPPED';
    allow(holds(s, acting, 'deleteCompany'));
    s.companies.delete(op.id);
    for (const key of [...s.grants.keys()]) if (key.endsWith(`\u0000${op.id}`)) s.grants.delete(key);
    return 'DELETED';
  }
  const f = op.fields;
  if (op.id === undefined) {
    // SPEC §4.2: derived from the name; the company of that very name keeps it, else the next free suffix.
    const name = f.name ?? failed();
    const base = deriveCompanyId(name);
    let found: string | undefined;
    for (let n = 0; n < 1000 && found === undefined; n++) {
      const candidate = companyIdCandidate(base, n);
      if (s.companies.get(candidate)?.name === name) found = candidate;
    }
    for (let n = 0; found === undefined; n++) if (!s.companies.has(companyIdCandidate(base, n))) found = companyIdCandidate(base, n);
    // Which id a new company would take tells which are taken: only a principal that may create
    // companies is shown it (docs/security.md); one that may not sees the plain derived id.
    if (!s.companies.has(found)) allow(holds(s, acting, 'createCompany'));
    id.value = found;
  }
  const cid = id.value;
  const current = s.companies.get(cid);
  const fits = (c: ModelCompany): boolean => orgTypeFits(c.type, c.country) && (!c.vatId || c.vatId.startsWith(c.country));
  if (!current) {
    const admin = liveUser(s, f.adminUser ?? failed());
    const country = f.country ?? 'CZ';
    const created: ModelCompany = {
      id: cid,
      name: f.name ?? failed(),
      country,
      regNo: f.regNo ?? null,
      vatId: f.vatId ?? null,
      type: f.type ?? defaultOrgType(country),
      show: f.show ?? true,
    };
    if (!fits(created)) failed();
    allow(holds(s, acting, 'createCompany'));
    s.companies.set(cid, created);
    s.grants.set(pair(admin.key, cid), 'ADMIN');
    return 'CREATED';
  }
  const next: ModelCompany = { ...current };
  for (const k of ['name', 'country', 'regNo', 'vatId', 'type', 'show'] as const) {
    if (f[k] !== undefined) (next as unknown as Record<string, unknown>)[k] = f[k];
  }
  if (!fits(next)) failed();
  const admin = f.adminUser === undefined ? undefined : liveUser(s, f.adminUser);
  const needsGrant = admin !== undefined && s.grants.get(pair(admin.key, cid)) !== 'ADMIN';
  if (needsGrant && !next.show) failed();
  const changed = JSON.stringify(next) !== JSON.stringify(current);
  if (!changed && !needsGrant) return 'SKIPPED';
  // Changing a company needs ADMIN there or manageAll; making someone its ADMIN is a grant as well.
  allow(runs(s, acting, cid));
  if (needsGrant) allow(holds(s, acting, 'grantPermission'));
  s.companies.set(cid, next);
  if (admin && needsGrant) s.grants.set(pair(admin.key, cid), 'ADMIN');
  return 'UPDATED';
}

// ── access ──────────────────────────────────────────────────────────────────────────────

/** Granting, changing or removing access to a company: grantPermission, and ADMIN there or manageAll. */
const mayGrant = (s: ModelState, acting: string | undefined, companyId: string): boolean =>
  holds(s, acting, 'grantPermission') && runs(s, acting, companyId);

function access(s: ModelState, op: AccessOperation, acting: string | undefined): ModelResult['status'] {
  const u = liveUser(s, op.username);
  if (op.action === 'delete') {
    if (!op.company) return failed();
    if (!s.companies.has(op.company)) return 'SKIPPED';
    if (!s.grants.has(pair(u.key, op.company))) return 'SKIPPED';
    allow(mayGrant(s, acting, op.company));
    s.grants.delete(pair(u.key, op.company));
    return 'DELETED';
  }
  if (op.company === undefined) {
    const role = op.role ?? failed();
    const mine = [...s.grants.keys()].filter((k) => k.startsWith(`${u.key}\u0000`));
    const changing = mine.filter((k) => s.grants.get(k) !== role);
    if (changing.length === 0) return 'SKIPPED';
    for (const k of changing) allow(mayGrant(s, acting, k.slice(k.indexOf('\u0000') + 1)));
    for (const k of changing) s.grants.set(k, role);
    return 'UPDATED';
  }
  const c = s.companies.get(op.company) ?? failed();
  const current = s.grants.get(pair(u.key, c.id));
  const wanted = op.role ?? current ?? u.defaultRole ?? 'UZIVATEL';
  if (current === wanted) return 'SKIPPED';
  if (!c.show) return failed();
  allow(mayGrant(s, acting, c.id));
  s.grants.set(pair(u.key, c.id), wanted);
  return current ? 'UPDATED' : 'CREATED';
}

// ── comparing a store with the model ────────────────────────────────────────────────────

/**
 * Stored records in the model's form, to compare with `stateData(model)`. A stored hash counts
 * as the model's plain-text password when it verifies that very text (hashes get a fresh salt);
 * otherwise it stays the stored form, which the model keeps for pre-hashed passwords.
 */
export function recordsAsModel(
  records: { users: readonly UserRecord[]; companies: readonly CompanyRecord[]; access: readonly AccessRecord[] },
  model: ModelState,
): unknown {
  const state = emptyState();
  for (const r of records.users) {
    const wanted = model.users.get(r.key)?.password ?? null;
    let password: ModelPassword = r.passwordHash === null ? null : { stored: r.passwordHash };
    if (wanted && 'plain' in wanted && r.passwordHash !== null && passwordIs({ stored: r.passwordHash }, wanted.plain)) password = wanted;
    state.users.set(r.key, {
      key: r.key,
      username: r.username,
      email: r.email,
      givenName: r.givenName,
      familyName: r.familyName,
      password,
      permissions: Object.fromEntries(PERMISSION_NAMES.map((p) => [p, r.permissions[p]])) as Permissions,
      defaultRole: r.defaultRole,
      blocked: r.blocked,
      blockMessage: r.blockMessage,
      userType: r.userType,
      deleted: r.deleted,
    });
  }
  for (const c of records.companies) {
    state.companies.set(c.id, { id: c.id, name: c.name, country: c.country, regNo: c.regNo, vatId: c.vatId, type: c.type, show: c.show });
  }
  for (const a of records.access) state.grants.set(pair(a.userKey, a.companyId), a.role);
  return stateData(state);
}

// ── what an entry writes (for the answer rule of a re-send) ─────────────────────────────

/**
 * What operation i writes, as `KIND:key` strings: U:user, C:company, G:user@company (`*` = any).
 * `ids` are the entry ids of the answer, so that derived company ids are resolved.
 */
function targets(doc: BatchDocument, ids: readonly string[], i: number): string[] {
  const op = doc.operations[i];
  switch (op.kind) {
    case 'user':
      return op.username ? [`U:${op.username.toLowerCase()}`] : [];
    case 'company': {
      const id = ids[i];
      if (op.action === 'delete') return [`C:${id}`, `G:*@${id}`];
      return [`C:${id}`, ...(op.fields.adminUser ? [`G:${op.fields.adminUser.toLowerCase()}@${id}`] : [])];
    }
    case 'access':
      return [`G:${(op.username ?? '').toLowerCase()}@${op.company ?? '*'}`];
    default:
      return [];
  }
}

function overlap(a: string, b: string): boolean {
  if (a === b) return true;
  if (!a.startsWith('G:') || !b.startsWith('G:')) return false;
  const [ua, ca] = a.slice(2).split('@');
  const [ub, cb] = b.slice(2).split('@');
  return (ua === ub || ua === '*' || ub === '*') && (ca === cb || ca === '*' || cb === '*');
}

/**
 * Another operation of the batch writes what entry i writes, so a re-send may undo or redo
 * entry i: the one reason an entry of a re-sent batch may be other than SKIPPED or FAILED.
 */
export function contested(doc: BatchDocument, ids: readonly string[], i: number): boolean {
  const mine = targets(doc, ids, i);
  return doc.operations.some((_, j) => j !== i && targets(doc, ids, j).some((t) => mine.some((m) => overlap(m, t))));
}
