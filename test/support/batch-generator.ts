/**
 * Random batches for property tests, reproducible from a seed (no dependencies): users with
 * every field (permissions, blocked with and without message, userType, defaultRole, plain
 * and pre-hashed passwords), companies with and without id (derived ids that collide),
 * country/type/vatId, show, adminUser and delete, and all four <access> forms with and
 * without the user attribute — drawn from small pools so that operations collide.
 */
import { createHash, pbkdf2Sync } from 'node:crypto';

/** mulberry32: a small, well-mixed 32-bit PRNG. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

const digest = (alg: string, salt: string, pw: string): string => createHash(alg).update(`${salt}:${pw}`).digest('hex');

/** Spellings of the pool users; usernames are case-insensitive. */
const USERS: readonly (readonly string[])[] = [['anna.mlada'], ['petr.novak', 'Petr.Novak'], ['eva', 'EVA']];

const PASSWORDS = [
  '<password>pw-one</password>',
  '<password>pw-two</password>',
  '<password>correct horse battery staple</password>',
  `<password hash="sha256" salt="NaCl">${digest('sha256', 'NaCl', 'pw-one')}</password>`,
  `<password hash="sha512" salt="s:512">${digest('sha512', 's:512', 'pw-two')}</password>`,
  '<password hash="sha256" salt="xyz987">af123bd35</password>',
  '<password hash="md5" salt="m">0123456789abcdef0123456789abcdef</password>',
  `<password hash="sha1" salt="s1">${digest('sha1', 's1', 'pw-two')}</password>`,
  `<password hash="pbkdf2" salt="pepper" iterations="1000">${pbkdf2Sync('pw-one', 'pepper', 1000, 32, 'sha256').toString('hex')}</password>`,
];
const EMAILS = ['<email>anna@firma.cz</email>', '<email>petr@firma.cz</email>', '<email/>'];
const GIVEN = ['Anna', 'Petr', '&#xC4;nna', ''];
const FAMILY = ['Mladá', 'Nov&#xE1;k', 'Jung', ''];
const PERMISSIONS = ['manageAll', 'createCompany', 'deleteCompany', 'createUser', 'changePassword', 'grantPermission', 'licenseManagement'];
const ROLES = [
  'ADMIN', 'SUPERUZIVATEL', 'UZIVATEL', 'OBCHODNIK', 'UCETNI', 'MZDOVYUCETNI', 'SKLADNIK', 'SKLADNIKSPOKLADNOU', 'JENCIST', 'ZABLOKOVAN',
  'SUPERUSER', 'USER', 'BENUTZER', 'HANDELSMANAGER', 'LAGERHALTER', 'GESPERRT',
];
const BLOCKED = [
  '<blocked message="Vom externen System blockiert">true</blocked>',
  '<blocked message="x &amp; y">true</blocked>',
  '<blocked>true</blocked>',
  '<blocked>false</blocked>',
];
const USER_TYPES = ['NORMAL', 'REST_API', 'READ_ONLY'];

const COMPANY_IDS = ['moje_firma_s_r_o_', 'beta', 'gama_sk'];
const COMPANY_NAMES = ['Moje Firma s.r.o.', 'Beta a.s.', 'Gama SK s.r.o.', 'Alfa s.r.o.'];
/** Names whose derived ids collide with each other and with moje_firma_s_r_o_. */
const DERIVED_NAMES = ['Alfa s.r.o.', 'ALFA s.r.o.', 'Álfa s.r.o.', 'Moje Firma s.r.o.', 'Moje firma s.r.o.'];
const DERIVED_IDS = ['alfa_s_r_o_', 'alfa_s_r_o__1', 'alfa_s_r_o__2', 'moje_firma_s_r_o__1'];
const ACCESS_COMPANIES = [...COMPANY_IDS, ...DERIVED_IDS, 'nikde'];
const TYPES: Record<string, readonly string[]> = {
  CZ: ['PODNIKATELE+PU', 'PODNIKATELE+DE', 'NEZISKOVE', 'ROZPOCTOVE', 'PODNIKATELE'],
  SK: ['PODNIKATELIA+PU'],
};
const VAT: Record<string, string> = { CZ: 'CZ12345678', SK: 'SK2020123456' };

function userOp(r: Rng, username: string, mayDelete = true): string {
  const nameTag = r.chance(0.2) ? 'Benutzername' : 'username';
  if (mayDelete && r.chance(0.1)) return `<user action="delete"><${nameTag}>${username}</${nameTag}></user>`;
  const parts = [`<${nameTag}>${username}</${nameTag}>`];
  if (r.chance(0.35)) parts.push(r.pick(PASSWORDS));
  if (r.chance(0.3)) parts.push(r.pick(EMAILS));
  if (r.chance(0.3)) {
    const tag = r.chance(0.3) ? 'Geschenkname' : 'givenName';
    parts.push(`<${tag}>${r.pick(GIVEN)}</${tag}>`);
  }
  if (r.chance(0.3)) {
    const tag = r.chance(0.3) ? 'Familienname' : 'familyName';
    parts.push(`<${tag}>${r.pick(FAMILY)}</${tag}>`);
  }
  if (r.chance(0.35)) {
    const perms = PERMISSIONS.filter(() => r.chance(0.4)).map((p) => {
      const tag = p === 'licenseManagement' && r.chance(0.5) ? 'licenseMgmt' : p;
      return `<${tag}>${r.chance(0.5)}</${tag}>`;
    });
    parts.push(`<permissions>${perms.join('')}</permissions>`);
  }
  if (r.chance(0.35)) parts.push(`<defaultRole>${r.pick(ROLES)}</defaultRole>`);
  if (r.chance(0.3)) parts.push(r.pick(BLOCKED));
  if (r.chance(0.2)) parts.push(`<userType>${r.pick(USER_TYPES)}</userType>`);
  if (r.chance(0.03)) parts.push('<phone>123</phone>');
  return `<user${r.chance(0.2) ? ' action="create-update"' : ''}>${parts.join('')}</user>`;
}

interface Pools {
  /** Spellings of users the batch has named so far (most companies and grants use them). */
  users: string[];
  /** Company ids the batch has probably created (most grants name them). */
  companies: string[];
}

function someUser(r: Rng, pools: Pools): string {
  return pools.users.length && r.chance(0.92) ? r.pick(pools.users) : r.pick(r.pick(USERS));
}

function companyOp(r: Rng, pools: Pools, full = false): string {
  const kind = full ? r.next() * 0.65 + 0.15 : r.next();
  if (kind < 0.12) {
    const known = [...COMPANY_IDS, ...DERIVED_IDS];
    return `<company action="delete"><id>${pools.companies.length && r.chance(0.7) ? r.pick(pools.companies) : r.pick(known)}</id></company>`;
  }
  const parts: string[] = [];
  const derived = kind >= 0.6;
  let id: string | undefined;
  if (!derived) {
    id = r.pick(COMPANY_IDS);
    parts.push(`<id>${id}</id>`);
    // A company the batch has not created yet is mostly sent complete, to be created.
    if (!pools.companies.includes(id) && r.chance(0.7)) full = true;
  }
  const name = derived ? r.pick(DERIVED_NAMES) : r.pick(COMPANY_NAMES);
  if (derived || full || r.chance(0.5)) parts.push(`<name>${name}</name>`);
  const country = r.chance(full ? 0.6 : 0.3) ? r.pick(['CZ', 'SK']) : undefined;
  if (country) parts.push(`<country>${r.chance(0.2) ? country.toLowerCase() : country}</country>`);
  const fitting = country ?? 'CZ';
  if (r.chance(0.3)) parts.push(`<type>${r.pick(TYPES[r.chance(0.9) ? fitting : r.pick(['CZ', 'SK'])])}</type>`);
  if (r.chance(0.3)) parts.push(r.chance(0.2) ? '<regNo/>' : `<regNo>${r.pick(['12345678', '007'])}</regNo>`);
  if (r.chance(0.25)) parts.push(r.chance(0.15) ? '<vatId/>' : `<vatId>${VAT[r.chance(0.9) ? fitting : r.pick(['CZ', 'SK'])]}</vatId>`);
  if (r.chance(full ? 0.1 : 0.3)) parts.push(`<show>${r.chance(0.5)}</show>`);
  if (full || derived || r.chance(0.4)) parts.push(`<adminUser>${someUser(r, pools)}</adminUser>`);
  if (id && full) pools.companies.push(id);
  if (derived) pools.companies.push(name.toLowerCase().startsWith('moje') ? 'moje_firma_s_r_o_' : r.chance(0.7) ? 'alfa_s_r_o_' : 'alfa_s_r_o__1');
  return `<company>${parts.join('')}</company>`;
}

function accessOp(r: Rng, pools: Pools, hasUserAbove: boolean): string {
  const user = !hasUserAbove || r.chance(0.5) ? (r.chance(0.97) ? ` user="${someUser(r, pools)}"` : '') : '';
  const company = pools.companies.length && r.chance(0.85) ? r.pick(pools.companies) : r.pick(ACCESS_COMPANIES);
  const role = r.pick(ROLES);
  const form = r.next();
  if (form < 0.4) return `<access${user} role="${role}">${company}</access>`;
  if (form < 0.65) return `<access${user}>${company}</access>`;
  if (form < 0.8) return `<access${user} role="${role}"/>`;
  return `<access${user} action="delete">${company}</access>`;
}

export interface BatchOptions {
  /** The root's atomic attribute: true/false sets it, undefined leaves it to the seed (5 % atomic). */
  atomic?: boolean;
  /** Adds dry-run="true" (or "false") to the root. */
  dryRun?: boolean;
  /** The batch id; `gen-SEED` by default. */
  id?: string;
}

/** One random batch; the same seed (and options) always gives the same batch. */
export function generateBatch(seed: number, options: BatchOptions = {}): string {
  const r = new Rng(seed);
  const ops: string[] = [];
  const pools: Pools = { users: [], companies: [] };
  let hasUserAbove = false;
  const user = (spelling: string, mayDelete = true): void => {
    const op = userOp(r, spelling, mayDelete);
    ops.push(op);
    if (!op.includes('action="delete"') && !op.includes('<phone>')) pools.users.push(spelling);
    hasUserAbove = true;
  };
  // Most partner batches name their users first, then the companies, then the grants.
  if (r.chance(0.75)) {
    for (const spellings of USERS) if (r.chance(0.85)) user(r.pick(spellings), false);
    for (let n = r.int(4); n > 0; n--) ops.push(companyOp(r, pools, true));
  }
  const count = 3 + r.int(12);
  for (let i = 0; i < count; i++) {
    const kind = r.next();
    if (kind < 0.03) ops.push('<licenseGroup><id>g</id></licenseGroup>');
    else if (kind < 0.3) user(r.pick(r.pick(USERS)));
    else if (kind < 0.55) ops.push(companyOp(r, pools));
    else ops.push(accessOp(r, pools, hasUserAbove));
  }
  const seededAtomic = r.chance(0.05);
  const atomic = (options.atomic ?? seededAtomic) ? ' atomic="true"' : '';
  const dryRun = options.dryRun === undefined ? '' : ` dry-run="${options.dryRun}"`;
  return `<?xml version="1.0"?>\n<flexibee-batch id="${options.id ?? `gen-${seed}`}"${atomic}${dryRun}>\n  ${ops.join('\n  ')}\n</flexibee-batch>\n`;
}
