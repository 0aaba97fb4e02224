/**
 * An independent, deliberately naive model of SPEC §4 for property tests: plain maps, one
 * rule after the other as the specification words it, no snapshot, no change set. It says
 * what a batch must answer and leave behind, and — run twice — whether the specification
 * itself makes a batch idempotent (a batch whose operations depend on later ones is not).
 *
 * Passwords are kept by meaning: the plain text the user was given, or the stored form of a
 * pre-hashed one (checked with the real verifier), since hashes get a fresh salt.
 */
import type { BatchDocument, CompanyOperation, Operation, UserOperation, AccessOperation } from '../../src/batch/operations';
import { companyIdCandidate, deriveCompanyId } from '../../src/domain/company-id';
import { defaultOrgType, orgTypeFits, type Country } from '../../src/domain/org-types';
import { verifyPasswordSync } from '../../src/domain/passwords';
import { noPermissions, type Permissions } from '../../src/domain/permissions';
import type { RoleCode } from '../../src/domain/roles';
import type { UserType } from '../../src/domain/users';

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

class Failed extends Error {}
const failed = (): never => {
  throw new Failed();
};

/** Runs a batch on a copy of `start`; returns the answer and the state after it. */
export function runModel(doc: BatchDocument, start: ModelState): { results: ModelResult[]; state: ModelState } {
  const s = cloneState(start);
  const results = doc.operations.map((op) => {
    const id = { value: defaultId(op) };
    try {
      if (op.invalid) return { id: id.value, status: 'FAILED' as const };
      const status = op.kind === 'user' ? user(s, op) : op.kind === 'company' ? company(s, op, id) : op.kind === 'access' ? access(s, op) : failed();
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

function defaultId(op: Operation): string {
  switch (op.kind) {
    case 'user':
      return op.username ?? '';
    case 'company':
      return op.id ?? (op.fields.name ? deriveCompanyId(op.fields.name) : '');
    case 'access':
      return `${op.username ?? ''}@${op.company ?? '*'}`;
    default:
      return op.element;
  }
}

function liveUser(s: ModelState, username: string | undefined): ModelUser {
  const u = username === undefined ? undefined : s.users.get(username.toLowerCase());
  return u && !u.deleted ? u : failed();
}

// ── users ───────────────────────────────────────────────────────────────────────────────

function user(s: ModelState, op: UserOperation): ModelResult['status'] {
  const key = (op.username as string).toLowerCase();
  const current = s.users.get(key);
  if (op.action === 'delete') {
    if (!current || current.deleted) return 'SKIPPED';
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
  if (f.email !== undefined) base.email = f.email;
  if (f.givenName !== undefined) base.givenName = f.givenName;
  if (f.familyName !== undefined) base.familyName = f.familyName;
  if (f.defaultRole !== undefined) base.defaultRole = f.defaultRole;
  if (f.userType !== undefined) base.userType = f.userType;
  if (f.permissions) Object.assign(base.permissions, f.permissions);
  if (f.blocked) {
    base.blocked = f.blocked.value;
    base.blockMessage = f.blocked.message;
  }
  if (f.password?.kind === 'plain' && !passwordIs(base.password, f.password.value)) base.password = { plain: f.password.value };
  if (f.password?.kind === 'hashed' && !(base.password && 'stored' in base.password && base.password.stored === f.password.stored)) {
    base.password = { stored: f.password.stored };
  }
  s.users.set(key, base);
  if (!current) return 'CREATED';
  if (current.deleted) return 'CREATED';
  return JSON.stringify(current) === JSON.stringify(base) ? 'SKIPPED' : 'UPDATED';
}

/** Whether the user's password already is this plain text. */
export function passwordIs(password: ModelPassword, plain: string): boolean {
  if (password === null) return false;
  return 'plain' in password ? password.plain === plain : verifyPasswordSync(password.stored, plain);
}

// ── companies ───────────────────────────────────────────────────────────────────────────

function company(s: ModelState, op: CompanyOperation, id: { value: string }): ModelResult['status'] {
  if (op.action === 'delete') {
    if (!op.id) return failed();
    if (!s.companies.has(op.id)) return 'SKIPPED';
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
  s.companies.set(cid, next);
  if (admin && needsGrant) s.grants.set(pair(admin.key, cid), 'ADMIN');
  return 'UPDATED';
}

// ── access ──────────────────────────────────────────────────────────────────────────────

function access(s: ModelState, op: AccessOperation): ModelResult['status'] {
  const u = liveUser(s, op.username);
  if (op.action === 'delete') {
    if (!op.company) return failed();
    if (!s.companies.has(op.company)) return 'SKIPPED';
    if (!s.grants.has(pair(u.key, op.company))) return 'SKIPPED';
    s.grants.delete(pair(u.key, op.company));
    return 'DELETED';
  }
  if (op.company === undefined) {
    const role = op.role ?? failed();
    const mine = [...s.grants.keys()].filter((k) => k.startsWith(`${u.key}\u0000`));
    const changing = mine.filter((k) => s.grants.get(k) !== role);
    if (changing.length === 0) return 'SKIPPED';
    for (const k of changing) s.grants.set(k, role);
    return 'UPDATED';
  }
  const c = s.companies.get(op.company) ?? failed();
  const current = s.grants.get(pair(u.key, c.id));
  const wanted = op.role ?? current ?? u.defaultRole ?? 'UZIVATEL';
  if (current === wanted) return 'SKIPPED';
  if (!c.show) return failed();
  s.grants.set(pair(u.key, c.id), wanted);
  return current ? 'UPDATED' : 'CREATED';
}
