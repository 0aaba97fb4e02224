import { verifyPasswordSync } from '../../src/domain/passwords';
import { generateBatch, Rng } from './batch-generator';
import { dumpStore } from './stores';

/**
 * Batches that fight over the same few users, companies and grants, for the tests of SPEC §5.4
 * (concurrent batches equal some serial order; no update is lost), in one process and across two.
 */
export const SHARED_USERS = ['shared.anna', 'shared.petr', 'shared.eva', 'Shared.Petr'];
export const SHARED_COMPANIES = ['shared_alfa', 'shared_beta', 'shared_gama'];
/** Companies that batches create and delete again, some within one batch. */
export const TEMP_COMPANIES = ['temp_one', 'temp_two'];
export const ROLES = ['ADMIN', 'UZIVATEL', 'UCETNI', 'SKLADNIK', 'JENCIST', 'ZABLOKOVAN'];
const PERMISSIONS = ['manageAll', 'createCompany', 'deleteCompany', 'createUser', 'changePassword', 'grantPermission', 'licenseManagement'];

/** Every plain password the batches of `clients` clients use (the generated batches' too), so a salted hash compares by what it verifies. */
export function plainPasswordsOf(clients: number): string[] {
  return [...Array.from({ length: clients }, (_, c) => `password of client ${c}`), 'pw-one', 'pw-two', 'correct horse battery staple'];
}

export const isGenerated = (b: number): boolean => b % 5 === 4;

/**
 * Batch `b` of client `c`: its own counter user, then client-specific values written over a small
 * shared set of users, companies and grants, so that the order of concurrent batches matters.
 * `seeds` keeps different suites' batches apart.
 */
export function clientBatch(c: number, b: number, seeds: { generated: number; rng: number }): string {
  // Every fifth batch is one of the property tests' random batches (atomic ones included) over their own pools.
  if (isGenerated(b)) return generateBatch(seeds.generated + c * 100 + b);
  const r = new Rng(c * 1000 + b + seeds.rng);
  const tag = `c${c}b${b}`;
  const sharedUser = (): string => r.pick(SHARED_USERS);
  const ops = [`<user><username>client${c}.counter</username><familyName>${b}</familyName></user>`];
  const count = 8 + r.int(12);
  for (let i = 0; i < count; i++) {
    const kind = r.next();
    if (kind < 0.3) {
      const fields = [`<username>${sharedUser()}</username>`];
      if (r.chance(0.7)) fields.push(`<email>${tag}@client${c}.example</email>`);
      if (r.chance(0.5)) fields.push(`<familyName>Batch ${tag}</familyName>`);
      if (r.chance(0.3)) fields.push(`<password>password of client ${c}</password>`);
      if (r.chance(0.3)) fields.push(`<permissions>${PERMISSIONS.filter(() => r.chance(0.4)).map((p) => `<${p}>${r.chance(0.5)}</${p}>`).join('')}</permissions>`);
      if (r.chance(0.2)) fields.push(`<defaultRole>${r.pick(ROLES)}</defaultRole>`);
      if (r.chance(0.15)) fields.push(r.chance(0.5) ? `<blocked message="blocked by client ${c}">true</blocked>` : '<blocked>false</blocked>');
      ops.push(r.chance(0.04) ? `<user action="delete"><username>${sharedUser()}</username></user>` : `<user>${fields.join('')}</user>`);
    } else if (kind < 0.5) {
      ops.push(`<company><id>${r.pick(SHARED_COMPANIES)}</id><name>Company ${tag}</name><country>${r.pick(['CZ', 'SK'])}</country><adminUser>${sharedUser()}</adminUser></company>`);
    } else if (kind < 0.55) {
      ops.push(`<company action="delete"><id>${r.pick(SHARED_COMPANIES)}</id></company>`);
    } else if (kind < 0.67) {
      const id = r.pick(TEMP_COMPANIES);
      ops.push(`<company><id>${id}</id><name>Temporary ${tag}</name><country>CZ</country><adminUser>${sharedUser()}</adminUser></company>`);
      if (r.chance(0.3)) ops.push(`<access user="${sharedUser()}" role="${r.pick(ROLES)}">${id}</access>`);
      if (r.chance(0.5)) ops.push(`<company action="delete"><id>${id}</id></company>`);
    } else if (kind < 0.72) {
      ops.push(`<company action="delete"><id>${r.pick(TEMP_COMPANIES)}</id></company>`);
    } else if (kind < 0.92) {
      ops.push(`<access user="${sharedUser()}" role="${r.pick(ROLES)}">${r.pick([...SHARED_COMPANIES, ...TEMP_COMPANIES])}</access>`);
    } else {
      ops.push(`<access user="${sharedUser()}" action="delete">${r.pick([...SHARED_COMPANIES, ...TEMP_COMPANIES])}</access>`);
    }
  }
  // Half of the clients send the id every client in the wild uses.
  const id = c % 2 === 0 ? 'abc-123' : `client-${c}-${b}`;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<flexibee-batch id="${id}">\n  ${ops.join('\n  ')}\n</flexibee-batch>\n`;
}

type Rows = Record<string, Array<Record<string, unknown>>>;

/**
 * The store without its timestamps, comparable between two databases: a salted hash of a plain
 * password (a fresh salt each time) becomes the plain password it verifies; a hash none of
 * `plainPasswords` verifies (a pre-hashed one the batch gave) stays as stored.
 */
export function comparableDump(db: string, plainPasswords: readonly string[]): Rows {
  const dump = dumpStore(db) as Rows;
  const out: Rows = {};
  for (const [table, rows] of Object.entries(dump)) {
    out[table] = rows.map((row) => {
      const kept = Object.fromEntries(Object.entries(row).filter(([column]) => !column.endsWith('_at')));
      const hash = kept.password_hash;
      if (typeof hash === 'string') {
        const plain = plainPasswords.find((pw) => verifyPasswordSync(hash, pw));
        if (plain !== undefined) kept.password_hash = `verifies: ${plain}`;
      }
      return kept;
    });
  }
  return out;
}

