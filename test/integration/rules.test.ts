import { emptyChangeSet } from '../../src/domain/changes';
import { createHash, pbkdf2Sync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchExecutor } from '../../src/batch/execute';
import { verifyPassword, type HashPolicy } from '../../src/domain/passwords';
import type { Principal } from '../../src/domain/principals';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { ALL, dropTestDb, dumpStore, journalRows as storeJournalRows, newTestDb } from '../support/stores';
import { entries, statuses } from '../support/server';
import { assertValidXml } from '../support/xmllint';

const CLI: Principal = { kind: 'cli', name: 'cli', scope: 'root' };
const SHA256: HashPolicy = { algorithm: 'sha256', pbkdf2Iterations: 1000 };
const PBKDF2: HashPolicy = { algorithm: 'pbkdf2', pbkdf2Iterations: 1000 };

interface Env {
  dir: string;
  path: string;
  store: Store;
  executor: BatchExecutor;
  /** Sends a batch of these operations; the answer is checked against batch-result.xsd. */
  send(operations: string, rootAttributes?: string): Promise<string>;
  users(): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

const opened: Env[] = [];

async function openEnv(hashPolicy: HashPolicy = SHA256): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'flexi-rules-'));
  const path = newTestDb(dir);
  const store = await openStore(path);
  const executor = new BatchExecutor(store, { maxOperations: 1000, hashPolicy });
  const env: Env = {
    dir,
    path,
    store,
    executor,
    send: async (operations, rootAttributes = '') => {
      const outcome = await executor.execute(`<?xml version="1.0"?><flexibee-batch id="rules"${rootAttributes}>${operations}</flexibee-batch>`, CLI);
      assertValidXml(outcome.xml, 'batch-result');
      return outcome.xml;
    },
    users: () => dumpStore(path).users as Array<Record<string, unknown>>,
    close: async () => {
      await store.close();
      dropTestDb(path);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  opened.push(env);
  return env;
}

afterEach(async () => {
  for (const env of opened.splice(0)) await env.close();
});

function rawUser(env: Env, key: string): Record<string, unknown> {
  const row = env.users().find((u) => u.key === key);
  if (!row) throw new Error(`no users row ${key}`);
  return row;
}

function journalRows(db: string): Array<{ batch_id: string; result_xml: string }> {
  return storeJournalRows(db).map(({ batch_id, result_xml }) => ({ batch_id, result_xml }));
}

const SETUP = `
  <user><username>anna.mlada</username><email>anna@firma.cz</email><givenName>Anna</givenName><familyName>Mladá</familyName>
    <permissions><manageAll>true</manageAll><createCompany>true</createCompany></permissions><defaultRole>UZIVATEL</defaultRole></user>
  <user><username>petr.novak</username><password>correct horse battery staple</password><defaultRole>UCETNI</defaultRole></user>
  <company><id>moje_firma_s_r_o_</id><name>Moje Firma s.r.o.</name><vatId>CZ12345678</vatId><adminUser>anna.mlada</adminUser></company>
  <company><name>Demo a.s.</name><adminUser>anna.mlada</adminUser></company>
  <access user="petr.novak">moje_firma_s_r_o_</access>
  <access user="petr.novak" role="SKLADNIK">demo_a_s_</access>`;

async function setUp(hashPolicy: HashPolicy = SHA256): Promise<Env> {
  const env = await openEnv(hashPolicy);
  expect(statuses(await env.send(SETUP))).toEqual(['CREATED', 'CREATED', 'CREATED', 'CREATED', 'CREATED', 'CREATED']);
  return env;
}

describe('users end to end (SPEC §4.1)', () => {
  test('when a user and a company get <validUntil> (SPEC §10.3), then it is stored, listed and shown, a re-send is SKIPPED, and an empty one clears it', async () => {
    const env = await setUp();
    const set = '<user><username>petr.novak</username><validUntil>2027-01-31</validUntil></user><company><id>moje_firma_s_r_o_</id><validUntil>2027-06-30</validUntil></company>';
    expect(statuses(await env.send(set))).toEqual(['UPDATED', 'UPDATED']);
    expect(statuses(await env.send(set))).toEqual(['SKIPPED', 'SKIPPED']);
    expect(rawUser(env, 'petr.novak').valid_until).toBe('2027-01-31');
    expect((await env.store.findUser('root', 'petr.novak'))?.validUntil).toBe('2027-01-31');
    expect((await env.store.listCompanies('root', { includeHidden: true }, ALL)).rows.find((c) => c.id === 'moje_firma_s_r_o_')?.validUntil).toBe('2027-06-30');
    expect(statuses(await env.send('<user><username>petr.novak</username><validUntil/></user>'))).toEqual(['UPDATED']);
    expect(rawUser(env, 'petr.novak').valid_until).toBeNull();
  });

  test('when a user is deleted, then it disappears from the listings but its row and access list stay', async () => {
    const env = await setUp();
    expect(entries(await env.send('<user action="delete"><username>petr.novak</username></user>'))).toEqual([
      { type: 'USER', action: 'DELETE', id: 'petr.novak', status: 'DELETED' },
    ]);
    expect(await env.store.findUser('root', 'petr.novak')).toBeUndefined();
    expect((await env.store.listUsers('root', ALL)).rows.map((u) => u.username)).toEqual(['anna.mlada']);
    expect(rawUser(env, 'petr.novak').deleted).toBe(1);
    expect(dumpStore(env.path).access).toHaveLength(4);
  });

  test('when a deleted user is deleted again or an unknown one is deleted, then it is SKIPPED and nothing changes', async () => {
    const env = await setUp();
    await env.send('<user action="delete"><username>petr.novak</username></user>');
    const before = dumpStore(env.path);
    expect(entries(await env.send('<user action="delete"><username>petr.novak</username></user><user action="delete"><username>ghost</username></user>'))).toEqual([
      { type: 'USER', action: 'DELETE', id: 'petr.novak', status: 'SKIPPED', message: 'user is already deleted' },
      { type: 'USER', action: 'DELETE', id: 'ghost', status: 'SKIPPED', message: 'user does not exist' },
    ]);
    expect(dumpStore(env.path)).toEqual(before);
  });

  test('when a deleted user is sent again, then it is CREATED "restored" with its fields, password and access list exactly as before', async () => {
    const env = await setUp();
    const before = await env.store.findUser('root', 'petr.novak');
    const rowBefore = rawUser(env, 'petr.novak');
    await env.send('<user action="delete"><username>petr.novak</username></user>');
    const answer = await env.send('<user><username>petr.novak</username></user>');
    expect(entries(answer)).toEqual([{ type: 'USER', action: 'CREATE_UPDATE', id: 'petr.novak', status: 'CREATED', message: 'restored' }]);
    const after = await env.store.findUser('root', 'petr.novak');
    expect(after).toEqual(before);
    expect(after?.access).toEqual([
      { company: 'demo_a_s_', role: 'SKLADNIK' },
      { company: 'moje_firma_s_r_o_', role: 'UCETNI' },
    ]);
    expect(rawUser(env, 'petr.novak').password_hash).toBe(rowBefore.password_hash);
  });

  test('when a deleted user is named by an access or as adminUser, then those operations are FAILED', async () => {
    const env = await setUp();
    await env.send('<user action="delete"><username>petr.novak</username></user>');
    const answer = await env.send(
      '<access user="petr.novak" role="ADMIN">moje_firma_s_r_o_</access><company><id>nova</id><name>Nová</name><adminUser>petr.novak</adminUser></company>',
    );
    expect(entries(answer).map((e) => [e.status, e.message])).toEqual([
      ['FAILED', "user 'petr.novak' is deleted"],
      ['FAILED', "a company cannot be created without an admin user: user 'petr.novak' is deleted"],
    ]);
  });

  test('when a user is blocked with a message, then the flag and the message are stored; unblocking clears both', async () => {
    const env = await setUp();
    expect(statuses(await env.send('<user><Benutzername>anna.mlada</Benutzername><blocked message="Vom externen System blockiert">true</blocked></user>'))).toEqual(['UPDATED']);
    expect(await env.store.findUser('root', 'anna.mlada')).toMatchObject({ blocked: true, blockMessage: 'Vom externen System blockiert' });
    expect(statuses(await env.send('<user><Benutzername>anna.mlada</Benutzername><blocked message="Vom externen System blockiert">true</blocked></user>'))).toEqual(['SKIPPED']);
    expect(statuses(await env.send('<user><Benutzername>anna.mlada</Benutzername><blocked>false</blocked></user>'))).toEqual(['UPDATED']);
    expect(await env.store.findUser('root', 'anna.mlada')).toMatchObject({ blocked: false, blockMessage: null });
  });

  test('when fields are given under their German names, then they are stored as the English ones', async () => {
    const env = await setUp();
    await env.send('<user><Benutzername>anna.mlada</Benutzername><Geschenkname>Anique</Geschenkname><Familienname>&#xC4;ltere</Familienname></user>');
    expect(await env.store.findUser('root', 'anna.mlada')).toMatchObject({ givenName: 'Anique', familyName: 'Ältere', email: 'anna@firma.cz' });
  });

  test('when a user element is unknown, then that operation is FAILED naming it and the expected ones, and the others run', async () => {
    const env = await setUp();
    const answer = await env.send('<user><username>eva</username><phone>1</phone></user><user><username>eva2</username></user>');
    expect(entries(answer)).toEqual([
      {
        type: 'USER',
        action: 'CREATE_UPDATE',
        id: 'eva',
        status: 'FAILED',
        message:
          'unknown element <phone> in <user>; expected <username>, <password>, <email>, <givenName>, <familyName>, <validUntil>, <permissions>, <defaultRole>, <blocked>, <userType>, <licenseGroup>',
      },
      { type: 'USER', action: 'CREATE_UPDATE', id: 'eva2', status: 'CREATED' },
    ]);
    expect(await env.store.findUser('root', 'eva')).toBeUndefined();
  });
});

describe('passwords end to end (SPEC §4.3)', () => {
  test.each([
    ['sha256', SHA256, /^sha256:[^:]+:[0-9a-f]{64}$/],
    ['pbkdf2', PBKDF2, /^pbkdf2:1000:[^:]+:[0-9a-f]{64}$/],
  ])('when the same plain-text password is sent again under %s, then it is SKIPPED and the stored hash stays as it was', async (_name, policy, form) => {
    const env = await setUp(policy);
    const hash = rawUser(env, 'petr.novak').password_hash as string;
    expect(hash).toMatch(form);
    expect(await verifyPassword(hash, 'correct horse battery staple')).toBe(true);
    const before = dumpStore(env.path);
    expect(statuses(await env.send('<user><username>petr.novak</username><password>correct horse battery staple</password></user>'))).toEqual(['SKIPPED']);
    expect(dumpStore(env.path)).toEqual(before);
  });

  test('when a different plain-text password is sent, then it is UPDATED and the new hash verifies it', async () => {
    const env = await setUp(PBKDF2);
    const old = rawUser(env, 'petr.novak').password_hash as string;
    expect(statuses(await env.send('<user><username>petr.novak</username><password>Tr0ub4dor&amp;3</password></user>'))).toEqual(['UPDATED']);
    const hash = rawUser(env, 'petr.novak').password_hash as string;
    expect(hash).not.toBe(old);
    expect(await verifyPassword(hash, 'Tr0ub4dor&3')).toBe(true);
  });

  test('when a batch changes the password and sets the stored one again, then the stored hash is kept as it was', async () => {
    const env = await setUp(PBKDF2);
    const before = dumpStore(env.path);
    const answer = await env.send(
      '<user><username>petr.novak</username><password>other</password></user><user><username>petr.novak</username><password>correct horse battery staple</password></user>',
    );
    expect(statuses(answer)).toEqual(['UPDATED', 'UPDATED']);
    expect(dumpStore(env.path)).toEqual(before);
  });

  test.each([
    ['sha256', 'salt="xyz987"', 'af123bd3'.repeat(8), `sha256:xyz987:${'af123bd3'.repeat(8)}`],
    ['sha512', 'salt="s512"', 'ABCDEF0123456789'.repeat(8), `sha512:s512:${'ABCDEF0123456789'.repeat(8)}`],
    ['sha1', 'salt="s1"', '0123456789abcdef0123456789abcdef01234567', 'sha1:s1:0123456789abcdef0123456789abcdef01234567'],
    ['md5', 'salt="m"', '0123456789abcdef0123456789abcdef', 'md5:m:0123456789abcdef0123456789abcdef'],
    ['pbkdf2', 'salt="pepper" iterations="1000"', 'beef'.repeat(16), `pbkdf2:1000:pepper:${'beef'.repeat(16)}`],
  ])('when a %s pre-hashed password is sent, then it is stored exactly as given and re-sending it is SKIPPED', async (hash, attributes, digest, stored) => {
    const env = await setUp();
    const xml = `<user><username>anna.mlada</username><password hash="${hash}" ${attributes}>${digest}</password></user>`;
    expect(statuses(await env.send(xml))).toEqual(['UPDATED']);
    expect(rawUser(env, 'anna.mlada').password_hash).toBe(stored);
    expect(statuses(await env.send(xml))).toEqual(['SKIPPED']);
    expect(rawUser(env, 'anna.mlada').password_hash).toBe(stored);
  });

  test.each([
    ['sha256', (salt: string, pw: string) => createHash('sha256').update(`${salt}:${pw}`).digest('hex'), ''],
    ['sha512', (salt: string, pw: string) => createHash('sha512').update(`${salt}:${pw}`).digest('hex'), ''],
    ['sha1', (salt: string, pw: string) => createHash('sha1').update(`${salt}:${pw}`).digest('hex'), ''],
    ['md5', (salt: string, pw: string) => createHash('md5').update(`${salt}:${pw}`).digest('hex'), ''],
    ['pbkdf2', (salt: string, pw: string) => pbkdf2Sync(pw, salt, 1000, 32, 'sha256').toString('hex'), ' iterations="1000"'],
  ])('when the plain text of a %s pre-hashed password is sent later, then it verifies and is SKIPPED', async (hash, digest, extra) => {
    const env = await setUp();
    await env.send(`<user><username>anna.mlada</username><password hash="${hash}" salt="NaCl"${extra}>${digest('NaCl', 'geheim')}</password></user>`);
    const stored = rawUser(env, 'anna.mlada').password_hash;
    expect(statuses(await env.send('<user><username>anna.mlada</username><password>geheim</password></user>'))).toEqual(['SKIPPED']);
    expect(rawUser(env, 'anna.mlada').password_hash).toBe(stored);
    expect(statuses(await env.send('<user><username>anna.mlada</username><password>falsch</password></user>'))).toEqual(['UPDATED']);
  });
});

describe('pre-hashed digests have their algorithm\'s form (SPEC §4.3; issue 9, points 3 and 4)', () => {
  const NEXT = '<user><username>next.user</username><email>next@firma.cz</email></user>';

  test.each([
    ['a 9-digit sha256 digest (the translated sample 07)', 'sha256', 'salt="xyz987"', 'af123bd35', 'the sha256 digest as 64 hexadecimal digits (0-9, a-f or A-F), not 9 digits'],
    ['a sha256-long sha512 digest', 'sha512', 'salt="s"', 'ab'.repeat(32), 'the sha512 digest as 128 hexadecimal digits (0-9, a-f or A-F), not 64 digits'],
    ['a 39-digit sha1 digest', 'sha1', 'salt="s"', 'a'.repeat(39), 'the sha1 digest as 40 hexadecimal digits (0-9, a-f or A-F), not 39 digits'],
    ['an md5 digest with a non-hex letter', 'md5', 'salt="s"', `${'0'.repeat(31)}g`, 'the md5 digest as 32 hexadecimal digits (0-9, a-f or A-F), not characters other than hex digits'],
    ['a pbkdf2 digest of an odd number of digits', 'pbkdf2', 'salt="s" iterations="1000"', 'a'.repeat(63), 'the 32-byte PBKDF2-HMAC-SHA256 key as 64 hexadecimal digits (0-9, a-f or A-F), not 63 digits'],
    ['a 256-digit pbkdf2 digest', 'pbkdf2', 'salt="s" iterations="1000"', 'a'.repeat(256), 'the 32-byte PBKDF2-HMAC-SHA256 key as 64 hexadecimal digits (0-9, a-f or A-F), not 256 digits'],
  ])('when a user is sent with %s, then it is FAILED naming the expected form, nothing of it is stored, and the rest of the batch is applied', async (_what, hash, attributes, digest, form) => {
    const env = await setUp();
    const before = rawUser(env, 'anna.mlada');
    const answer = await env.send(`<user><username>anna.mlada</username><givenName>Changed</givenName><password hash="${hash}" ${attributes}>${digest}</password></user>${NEXT}`);
    expect(entries(answer).map((e) => [e.id, e.status, e.message])).toEqual([
      ['anna.mlada', 'FAILED', `a pre-hashed ${hash} <password> must be ${form}`],
      ['next.user', 'CREATED', undefined],
    ]);
    expect(rawUser(env, 'anna.mlada')).toEqual(before);
  });

  test('when a pbkdf2 digest asks for more than 2 000 000 iterations (10 000 000 was accepted before), then it is FAILED naming the bound, with no hashing done', async () => {
    const env = await setUp();
    const answer = await env.send(`<user><username>anna.mlada</username><password hash="pbkdf2" salt="s" iterations="10000000">${'ab'.repeat(32)}</password></user>${NEXT}`);
    expect(entries(answer).map((e) => [e.status, e.message])).toEqual([
      ['FAILED', 'a pbkdf2 <password> needs an iterations attribute with a whole number from 1 to 2000000'],
      ['CREATED', undefined],
    ]);
  });

  /** Writes a stored form straight into the store, as a version before these rules could have. */
  async function storeLegacyHash(env: Env, username: string, passwordHash: string): Promise<void> {
    const user = await env.store.findUserRecord('root', username);
    if (!user) throw new Error(`no user ${username}`);
    await env.store.inBatch((tx) => tx.apply({ ...emptyChangeSet(), users: [{ ...user, passwordHash }] }));
  }

  test.each([
    ['a pbkdf2 digest of an odd number of digits', `pbkdf2:1000:NaCl:${'a'.repeat(63)}`],
    ['a pbkdf2 digest of 256 digits and 10 000 000 iterations', `pbkdf2:10000000:NaCl:${'a'.repeat(256)}`],
    ['a pbkdf2 form over the iteration bound', `pbkdf2:2000001:NaCl:${'a'.repeat(64)}`],
    ['a 9-digit sha256 digest', 'sha256:xyz987:af123bd35'],
    ['no form at all', 'not a stored hash'],
  ])('when a stored hash cannot be parsed (%s), then a batch giving that user a plain-text password is UPDATED with a fresh hash and its other operations are applied', async (_what, legacy) => {
    const env = await setUp();
    await storeLegacyHash(env, 'petr.novak', legacy);
    const answer = await env.send(`<user><username>petr.novak</username><password>correct horse battery staple</password></user>${NEXT}`);
    expect(statuses(answer)).toEqual(['UPDATED', 'CREATED']);
    const stored = rawUser(env, 'petr.novak').password_hash as string;
    expect(stored).not.toBe(legacy);
    expect(await verifyPassword(stored, 'correct horse battery staple')).toBe(true);
    expect(await verifyPassword(legacy, 'correct horse battery staple')).toBe(false);
  });
});

describe('password verification stays off the event loop (SPEC §9)', () => {
  test('when a batch gives a slow pre-hashed pbkdf2 password and then its plain text, then it is SKIPPED and the event loop keeps running', async () => {
    const env = await setUp();
    const iterations = 2_000_000;
    const digest = pbkdf2Sync('geheim', 'NaCl', iterations, 32, 'sha256').toString('hex');
    let last = Date.now();
    let longestPause = 0;
    const ticker = setInterval(() => {
      longestPause = Math.max(longestPause, Date.now() - last);
      last = Date.now();
    }, 5);
    try {
      const answer = await env.send(
        `<user><username>anna.mlada</username><password hash="pbkdf2" salt="NaCl" iterations="${iterations}">${digest}</password></user>
         <user><username>anna.mlada</username><password>geheim</password></user>`,
      );
      longestPause = Math.max(longestPause, Date.now() - last);
      expect(statuses(answer)).toEqual(['UPDATED', 'SKIPPED']);
    } finally {
      clearInterval(ticker);
    }
    // A synchronous PBKDF2 of 2 000 000 rounds stops everything for well over a second.
    expect(longestPause).toBeLessThan(500);
    expect(rawUser(env, 'anna.mlada').password_hash).toBe(`pbkdf2:${iterations}:NaCl:${digest}`);
  });
});

describe('companies end to end (SPEC §4.2)', () => {
  test('when a company is created from its name only, then the id is derived; another name with the same id gets _1', async () => {
    const env = await setUp();
    const answer = await env.send(
      `<company><name>Žluťoučký kůň s.r.o.</name><adminUser>anna.mlada</adminUser></company>
       <company><name>Demo, a.s.</name><adminUser>anna.mlada</adminUser></company>
       <company><name>Demo a.s.</name><country>SK</country></company>`,
    );
    expect(entries(answer).map((e) => [e.id, e.status])).toEqual([
      ['zlutoucky_kun_s_r_o_', 'CREATED'],
      ['demo__a_s_', 'CREATED'],
      ['demo_a_s_', 'FAILED'],
    ]);
    const again = await env.send('<company><name>DEMO a.s.</name><adminUser>anna.mlada</adminUser></company>');
    expect(entries(again).map((e) => [e.id, e.status])).toEqual([['demo_a_s__1', 'CREATED']]);
    expect((await env.store.listCompanies('root', { includeHidden: true }, ALL)).rows.map((c) => [c.id, c.name])).toEqual([
      ['demo__a_s_', 'Demo, a.s.'],
      ['demo_a_s_', 'Demo a.s.'],
      ['demo_a_s__1', 'DEMO a.s.'],
      ['moje_firma_s_r_o_', 'Moje Firma s.r.o.'],
      ['zlutoucky_kun_s_r_o_', 'Žluťoučký kůň s.r.o.'],
    ]);
  });

  test('when a company is created without an admin user, then it is FAILED with the documented message and nothing is stored', async () => {
    const env = await setUp();
    const before = dumpStore(env.path);
    const answer = await env.send('<company><id>nova</id><name>Nová</name></company><company><id>nova</id><name>Nová</name><adminUser>ghost</adminUser></company>');
    expect(entries(answer).map((e) => e.message)).toEqual([
      'a company cannot be created without an admin user (<adminUser>)',
      "a company cannot be created without an admin user: user 'ghost' does not exist",
    ]);
    expect(dumpStore(env.path)).toEqual(before);
  });

  test('when country, type and vatId do not fit, then the operation is FAILED and the company keeps its values', async () => {
    const env = await setUp();
    const before = dumpStore(env.path);
    const answer = await env.send(
      `<company><id>moje_firma_s_r_o_</id><country>SK</country></company>
       <company><id>moje_firma_s_r_o_</id><vatId>SK2020123456</vatId></company>
       <company><id>moje_firma_s_r_o_</id><type>SIGNATUREN</type></company>`,
    );
    expect(entries(answer).map((e) => e.message)).toEqual([
      'organisation type PODNIKATELE+PU does not fit country SK (expected PODNIKATELIA+PU); give a <type> for SK',
      'vatId SK2020123456 must start with the country code CZ',
      "unknown organisation type 'SIGNATUREN'; expected one of CZ: PODNIKATELE+PU, PODNIKATELE+DE, NEZISKOVE, ROZPOCTOVE; SK: PODNIKATELIA+PU",
    ]);
    expect(dumpStore(env.path)).toEqual(before);
    const moved = await env.send('<company><id>moje_firma_s_r_o_</id><country>SK</country><type>PODNIKATELIA+PU</type><vatId>SK2020123456</vatId></company>');
    expect(statuses(moved)).toEqual(['UPDATED']);
    expect((await env.store.listCompanies('root', { includeHidden: true }, ALL)).rows.find((c) => c.id === 'moje_firma_s_r_o_')).toMatchObject({
      country: 'SK',
      type: 'PODNIKATELIA+PU',
      vatId: 'SK2020123456',
    });
  });

  test('when a company is hidden, then it leaves the non-root listing, refuses new grants, keeps existing ones, and can be shown again', async () => {
    const env = await setUp();
    expect(statuses(await env.send('<company><id>moje_firma_s_r_o_</id><show>false</show></company>'))).toEqual(['UPDATED']);
    expect((await env.store.listCompanies('root', { includeHidden: false }, ALL)).rows.map((c) => c.id)).toEqual(['demo_a_s_']);
    const answer = await env.send(
      '<user><username>eva</username></user><access>moje_firma_s_r_o_</access><access user="petr.novak">moje_firma_s_r_o_</access>',
    );
    expect(entries(answer).map((e) => [e.status, e.message])).toEqual([
      ['CREATED', undefined],
      ['FAILED', "company 'moje_firma_s_r_o_' is hidden; no access can be granted to it"],
      ['SKIPPED', undefined],
    ]);
    expect(statuses(await env.send('<company><id>moje_firma_s_r_o_</id><show>true</show></company><access user="eva">moje_firma_s_r_o_</access>'))).toEqual([
      'UPDATED',
      'CREATED',
    ]);
  });

  test('when adminUser names another user on update, then that user becomes ADMIN of the company', async () => {
    const env = await setUp();
    expect(statuses(await env.send('<company><id>moje_firma_s_r_o_</id><adminUser>petr.novak</adminUser></company>'))).toEqual(['UPDATED']);
    expect((await env.store.findUser('root', 'petr.novak'))?.access).toContainEqual({ company: 'moje_firma_s_r_o_', role: 'ADMIN' });
    expect((await env.store.findUser('root', 'anna.mlada'))?.access).toContainEqual({ company: 'moje_firma_s_r_o_', role: 'ADMIN' });
  });

  test('when a company is deleted, then every access to it goes too, and its id can be reused for a new company', async () => {
    const env = await setUp();
    expect(entries(await env.send('<company action="delete"><id>moje_firma_s_r_o_</id></company>'))).toEqual([
      { type: 'COMPANY', action: 'DELETE', id: 'moje_firma_s_r_o_', status: 'DELETED' },
    ]);
    expect(dumpStore(env.path).access).toEqual([expect.objectContaining({ user_key: 'anna.mlada', company_id: 'demo_a_s_' }), expect.objectContaining({ user_key: 'petr.novak', company_id: 'demo_a_s_' })]);
    expect(entries(await env.send('<company action="delete"><id>moje_firma_s_r_o_</id></company>'))[0]).toMatchObject({ status: 'SKIPPED', message: 'company does not exist' });
    expect(statuses(await env.send('<company><id>moje_firma_s_r_o_</id><name>Nová firma</name><adminUser>petr.novak</adminUser></company>'))).toEqual(['CREATED']);
    expect((await env.store.findUser('root', 'anna.mlada'))?.access).toEqual([{ company: 'demo_a_s_', role: 'ADMIN' }]);
    expect((await env.store.findUser('root', 'petr.novak'))?.access).toEqual([
      { company: 'demo_a_s_', role: 'SKLADNIK' },
      { company: 'moje_firma_s_r_o_', role: 'ADMIN' },
    ]);
  });
});

describe('access end to end (SPEC §4.4)', () => {
  test('when the four forms run in turn, then the access list follows them', async () => {
    const env = await setUp();
    const answer = await env.send(
      `<user><username>eva</username><defaultRole>LAGERHALTER</defaultRole></user>
       <access role="HANDELSMANAGER">moje_firma_s_r_o_</access>
       <access>demo_a_s_</access>
       <access>moje_firma_s_r_o_</access>
       <access role="USER"/>
       <access action="delete">demo_a_s_</access>
       <access action="delete">demo_a_s_</access>
       <access user="anna.mlada" role="GESPERRT">demo_a_s_</access>`,
    );
    expect(entries(answer).map((e) => [e.id, e.status])).toEqual([
      ['eva', 'CREATED'],
      ['eva@moje_firma_s_r_o_', 'CREATED'],
      ['eva@demo_a_s_', 'CREATED'],
      ['eva@moje_firma_s_r_o_', 'SKIPPED'],
      ['eva@*', 'UPDATED'],
      ['eva@demo_a_s_', 'DELETED'],
      ['eva@demo_a_s_', 'SKIPPED'],
      ['anna.mlada@demo_a_s_', 'UPDATED'],
    ]);
    expect((await env.store.findUser('root', 'eva'))?.access).toEqual([{ company: 'moje_firma_s_r_o_', role: 'UZIVATEL' }]);
    expect((await env.store.findUser('root', 'anna.mlada'))?.access).toEqual([
      { company: 'demo_a_s_', role: 'ZABLOKOVAN' },
      { company: 'moje_firma_s_r_o_', role: 'ADMIN' },
    ]);
  });

  test('when an access names an unknown company or no user, then it is FAILED and says why', async () => {
    const env = await setUp();
    const answer = await env.send('<access role="ADMIN">moje_firma_s_r_o_</access><access user="anna.mlada" role="ADMIN">anna_mlada_s_r_o_</access>');
    expect(entries(answer).map((e) => e.message)).toEqual([
      'an <access> needs a user: give it a user attribute or put it after a <user>',
      "company 'anna_mlada_s_r_o_' does not exist",
    ]);
  });
});

describe('the batch as a whole (SPEC §5.3)', () => {
  const BATCH = [
    '<user><username>eva</username><givenName>Eva</givenName><password>pw</password></user>',
    '<company><id>nova</id><name>Nová</name><adminUser>eva</adminUser></company>',
    '<access user="petr.novak" role="ADMIN">moje_firma_s_r_o_</access>',
    '<company><id>demo_a_s_</id><show>false</show></company>',
    '<user action="delete"><username>anna.mlada</username></user>',
  ];
  const FAILING = [
    '<company><id>moje_firma_s_r_o_</id><name>Renamed</name><vatId>SK1</vatId></company>',
    '<access user="ghost" role="ADMIN">moje_firma_s_r_o_</access>',
    '<user><username>petr.novak</username><email>x@y.cz</email><phone>1</phone></user>',
  ];

  /** The dump without the password hashes, which get a fresh salt in each store. */
  function comparable(path: string): Record<string, unknown[]> {
    const dump = dumpStore(path);
    const strip = (rows: unknown[]): unknown[] =>
      rows.map((r) => {
        const { created_at: _c, updated_at: _u, password_hash: hash, ...rest } = r as Record<string, unknown>;
        return { ...rest, password_hash: hash === null ? null : 'hashed' };
      });
    return { users: strip(dump.users), companies: strip(dump.companies), access: strip(dump.access) };
  }

  test('when an operation FAILS in the middle, then it changes nothing and every later operation still runs', async () => {
    const reference = await setUp();
    const referenceAnswer = entries(await reference.send(BATCH.join('')));
    for (const failing of FAILING) {
      const env = await setUp();
      const answer = entries(await env.send([...BATCH.slice(0, 2), failing, ...BATCH.slice(2)].join('')));
      expect(answer[2].status).toBe('FAILED');
      expect(answer.filter((_, i) => i !== 2)).toEqual(referenceAnswer);
      expect(comparable(env.path)).toEqual(comparable(reference.path));
    }
  });

  test('when a batch is executed, then it is committed once, with its journal entry, before the answer is returned', async () => {
    const env = await setUp();
    const inBatch = jest.spyOn(env.store, 'inBatch');
    const answer = await env.send(BATCH.join(''));
    expect(inBatch).toHaveBeenCalledTimes(1);
    // A separate connection sees the batch as soon as the answer exists: it was committed first.
    expect(journalRows(env.path).map((r) => [r.batch_id, r.result_xml])).toEqual([
      ['rules', expect.any(String)],
      ['rules', answer],
    ]);
    expect(rawUser(env, 'anna.mlada').deleted).toBe(1);
    expect(dumpStore(env.path).companies.map((c) => (c as { id: string }).id)).toEqual(['demo_a_s_', 'moje_firma_s_r_o_', 'nova']);
  });

  test('when a batch is atomic and one operation fails, then nothing is kept and the others are SKIPPED "rolled back"', async () => {
    const env = await setUp();
    const before = dumpStore(env.path);
    const answer = await env.send([...BATCH, FAILING[1]].join(''), ' atomic="true"');
    expect(entries(answer).map((e) => [e.status, e.message])).toEqual([
      ...BATCH.map(() => ['SKIPPED', 'rolled back']),
      ['FAILED', "user 'ghost' does not exist"],
    ]);
    expect(dumpStore(env.path)).toEqual(before);
  });

  test('when a batch is a dry run, then nothing changes and the answer is the one the real run gives', async () => {
    const env = await setUp();
    const before = dumpStore(env.path);
    const dry = await env.send([...BATCH, FAILING[1]].join(''), ' dry-run="true"');
    expect(dry).toContain('<flexibee-batch-result id="rules" dry-run="true">');
    expect(dumpStore(env.path)).toEqual(before);
    const real = await env.send([...BATCH, FAILING[1]].join(''));
    expect(entries(dry)).toEqual(entries(real));
    expect(entries(real).map((e) => e.status)).toEqual(['CREATED', 'CREATED', 'UPDATED', 'UPDATED', 'DELETED', 'FAILED']);
  });
});
