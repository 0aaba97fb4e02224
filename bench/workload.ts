import { createHash } from 'node:crypto';
import type { AccessRecord } from '../src/domain/access';
import { COMPANY_FIELDS, type CompanyRecord } from '../src/domain/companies';
import { emptyValues } from '../src/domain/fields';
import { defaultOrgType } from '../src/domain/org-types';
import { ROOT_GROUP } from '../src/domain/principals';
import type { RoleCode } from '../src/domain/roles';
import { newUserRecord, type UserRecord } from '../src/domain/users';
import type { BaselineRows } from './sqlite-baseline';

/** How many of each entity one batch holds; A is 4 000 / 2 000 / 4 000 at scale 1. */
export interface Counts {
  users: number;
  companies: number;
  grants: number;
}

export interface Workload {
  /** The batch document under the root id `batchId` (every request gets its own id). */
  send(batchId: string): string;
  operations: number;
  /** The events it makes (SPEC §10.1): one per user and grant, two per company (it and its admin's grant). */
  events: number;
  /** What the store holds afterwards: the users, the companies, their admin grants and the grants. */
  rows: BaselineRows;
}

const GRANT_ROLES: readonly RoleCode[] = ['UCETNI', 'UZIVATEL', 'SKLADNIK'];

/** At least two companies, so that no grant falls on a company's admin grant (it would be an UPDATE). */
export function countsAt(scale: number, factor = 1): Counts {
  const n = (base: number): number => Math.max(2, Math.round(base * scale * factor));
  const users = n(4000);
  return { users, companies: Math.min(users, n(2000)), grants: users };
}

/** A pre-hashed sha256 password as the store keeps it, and its <password> element. */
export function preHashed(salt: string, plain: string): { stored: string; element: string } {
  const hex = createHash('sha256').update(`${salt}:${plain}`, 'utf8').digest('hex');
  return { stored: `sha256:${salt}:${hex}`, element: `<password hash="sha256" salt="${salt}">${hex}</password>` };
}

function userRecord(username: string, passwordHash: string | null, familyName: string, group = ROOT_GROUP): UserRecord {
  return { ...newUserRecord(username, group), email: `${username}@bench.example`, givenName: 'Bench', familyName, passwordHash };
}

/** `<licenseGroup>` of an object outside `root`; nothing for `root`, the principal's own group. */
const groupElement = (group: string): string => (group === ROOT_GROUP ? '' : `<licenseGroup>${group}</licenseGroup>`);

function userElement(u: UserRecord, password: string): string {
  return (
    `<user><username>${u.username}</username>${password}<email>${u.email}</email>` +
    `<givenName>${u.givenName}</givenName><familyName>${u.familyName}</familyName>${groupElement(u.licenseGroup)}</user>\n`
  );
}

/** The ids of a chain of `depth` license groups below `root`, the deepest last. */
export function groupChain(depth: number): string[] {
  return Array.from({ length: depth }, (_, i) => `bench_${i + 1}`);
}

/** A batch creating the chain (each group the child of the one before); sent again, all SKIPPED. */
export function groupChainBatch(batchId: string, chain: readonly string[]): string {
  const groups = chain.map(
    (id, i) => `<licenseGroup><id>${id}</id><name>Bench level ${i + 1}</name><parent>${i === 0 ? ROOT_GROUP : chain[i - 1]}</parent></licenseGroup>\n`,
  );
  return document(batchId, groups.join(''));
}

const document = (batchId: string, body: string): string => `<?xml version="1.0" encoding="UTF-8"?>\n<flexibee-batch id="${batchId}">\n${body}</flexibee-batch>\n`;

/**
 * Users with pre-hashed passwords, then companies (company i is run by user i, which makes
 * user i its ADMIN), then grants (user k gets a role in company k+1): every operation creates
 * something, and sent again every one is SKIPPED. `prefix` ([a-z0-9]) keeps the names of
 * different phases and runs apart.
 */
export function entityWorkload(prefix: string, counts: Counts, group = ROOT_GROUP): Workload {
  const parts: string[] = [];
  const users: UserRecord[] = [];
  const companies: CompanyRecord[] = [];
  const access: AccessRecord[] = [];
  for (let i = 0; i < counts.users; i++) {
    const password = preHashed(`s${prefix}${i}`, `password ${i}`);
    const user = userRecord(`${prefix}.user${i}`, password.stored, `User ${i}`, group);
    users.push(user);
    parts.push(userElement(user, password.element));
  }
  for (let i = 0; i < counts.companies; i++) {
    const admin = users[i % users.length];
    const company: CompanyRecord = {
      id: `${prefix}_company_${i}`,
      name: `Bench ${prefix} ${i} s.r.o.`,
      country: 'CZ',
      ...emptyValues(COMPANY_FIELDS),
      type: defaultOrgType('CZ'),
      show: true,
      licenseGroup: group,
    };
    companies.push(company);
    access.push({ userKey: admin.key, companyId: company.id, role: 'ADMIN' });
    parts.push(`<company><id>${company.id}</id><name>${company.name}</name><country>CZ</country><adminUser>${admin.username}</adminUser>${groupElement(group)}</company>\n`);
  }
  for (let k = 0; k < counts.grants; k++) {
    const user = users[k % users.length];
    const company = companies[(k + 1) % companies.length];
    const role = GRANT_ROLES[k % GRANT_ROLES.length];
    access.push({ userKey: user.key, companyId: company.id, role });
    parts.push(`<access user="${user.username}" role="${role}">${company.id}</access>\n`);
  }
  const body = parts.join('');
  return {
    send: (batchId) => document(batchId, body),
    operations: counts.users + counts.companies + counts.grants,
    events: counts.users + 2 * counts.companies + counts.grants,
    rows: { users, companies, access },
  };
}

/** One new user with a pre-hashed password (phase D). */
export function oneUserBatch(batchId: string, username: string, group = ROOT_GROUP): string {
  const user = userRecord(username, null, 'Single', group);
  return document(batchId, userElement(user, preHashed(`s${username}`, 'one password').element));
}

/** `count` new users with plain-text passwords, for the server to hash (phase F). */
export function plainPasswordBatch(batchId: string, prefix: string, count: number): string {
  const parts: string[] = [];
  for (let i = 0; i < count; i++) {
    parts.push(userElement(userRecord(`${prefix}.plain${i}`, null, `Plain ${i}`), `<password>correct horse battery staple ${i}</password>`));
  }
  return document(batchId, parts.join(''));
}

/** Users `from` … `from + count - 1` without passwords: one USER_CREATED event each (phase G). */
export function eventUsersBatch(batchId: string, prefix: string, from: number, count: number): string {
  const parts: string[] = [];
  for (let i = from; i < from + count; i++) parts.push(`<user><username>${prefix}.event${i}</username><email>${prefix}.event${i}@bench.example</email></user>\n`);
  return document(batchId, parts.join(''));
}

/** One webhook subscription of every event to `url` (phase G); the bench's own events included. */
export function subscriptionBatch(batchId: string, id: string, url: string, secret: string): string {
  return document(batchId, `<subscription><id>${id}</id><url>${url}</url><secret>${secret}</secret><excludeOwn>false</excludeOwn></subscription>\n`);
}
