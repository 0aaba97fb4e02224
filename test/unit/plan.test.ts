import { parseBatch } from '../../src/batch/parse';
import { planBatch, snapshotRequest, type OperationResult, type Plan, type Snapshot } from '../../src/batch/plan';
import type { AccessRecord } from '../../src/domain/access';
import { verifyPasswordSync } from '../../src/domain/passwords';
import { noPermissions } from '../../src/domain/permissions';
import type { Principal } from '../../src/domain/principals';
import { company, EMPTY_CHANGES, grant, sha256, snapshot, user, withEventBodies, withoutSeatCounts } from '../support/snapshots';

/** Pre-hashed digests of the lengths SPEC §4.3 requires; the planner never checks their value. */
const SHA256_DIGEST = 'af123bd3'.repeat(8);
const MD5_DIGEST = 'abcd'.repeat(8);

const ROOT: Principal = { kind: 'cli', name: 'cli', scope: 'root' };

// ── hand-made snapshots ─────────────────────────────────────────────────────────────────


/** The seat counters (SPEC §7.2) are left out of the change set here: test/unit/groups.test.ts asserts them. */
function plan(operations: string, snap: Snapshot = snapshot(), rootAttributes = ''): Plan {
  const doc = parseBatch(`<flexibee-batch id="t"${rootAttributes}>${operations}</flexibee-batch>`, { maxOperations: 1000 });
  return withoutSeatCounts(withEventBodies(planBatch(doc, snap, { principal: ROOT, passwordMatches: verifyPasswordSync })));
}

/** [status, id, message] of every result, messages only where given. */
function outcomes(p: Plan): Array<[string, string] | [string, string, string]> {
  return p.results.map((r) => (r.message === undefined ? [r.status, r.id] : [r.status, r.id, r.message]));
}

function statuses(p: Plan): string[] {
  return p.results.map((r) => r.status);
}

const ANNA = user('anna.mlada', {
  email: 'anna@firma.cz',
  givenName: 'Anna',
  familyName: 'Mladá',
  defaultRole: 'UCETNI',
  permissions: { ...noPermissions(), createCompany: true },
});
const FIRMA = company('moje_firma_s_r_o_', { name: 'Moje Firma s.r.o.', regNo: '12345678', vatId: 'CZ12345678' });

// ── users ───────────────────────────────────────────────────────────────────────────────

describe('planBatch: users (SPEC §4.1)', () => {
  test('when an unknown user is sent, then it is CREATED with the given fields and the defaults for the others', () => {
    const p = plan(`<user><username>Petr.Novak</username><email>petr@firma.cz</email><permissions><createUser>true</createUser></permissions>
      <userType>REST_API</userType><defaultRole>LAGERHALTER</defaultRole></user>`);
    expect(outcomes(p)).toEqual([['CREATED', 'Petr.Novak']]);
    expect(p.changes.users).toEqual([
      user('Petr.Novak', {
        email: 'petr@firma.cz',
        permissions: { ...noPermissions(), createUser: true },
        userType: 'REST_API',
        defaultRole: 'SKLADNIK',
      }),
    ]);
  });

  test('when an existing user is sent with the same fields, then it is SKIPPED and nothing changes', () => {
    const p = plan(
      '<user><username>anna.mlada</username><email>anna@firma.cz</email><givenName>Anna</givenName><defaultRole>UCETNI</defaultRole></user>',
      snapshot({ users: [ANNA] }),
    );
    expect(outcomes(p)).toEqual([['SKIPPED', 'anna.mlada']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when one given field differs, then the user is UPDATED and the fields not given are left as they are', () => {
    const p = plan('<user><username>anna.mlada</username><familyName>Stará</familyName></user>', snapshot({ users: [ANNA] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'anna.mlada']]);
    expect(p.changes.users).toEqual([{ ...ANNA, familyName: 'Stará' }]);
  });

  test('when an optional field is sent empty, then it is cleared (UPDATED)', () => {
    const p = plan('<user><username>anna.mlada</username><email/></user>', snapshot({ users: [ANNA] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'anna.mlada']]);
    expect(p.changes.users).toEqual([{ ...ANNA, email: null }]);
  });

  test('when the username differs only in case, then it is the same user and its stored spelling is kept', () => {
    const p = plan('<user><username>ANNA.MLADA</username><givenName>Anna</givenName></user>', snapshot({ users: [ANNA] }));
    expect(outcomes(p)).toEqual([['SKIPPED', 'ANNA.MLADA']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when only some permissions are given, then the others are kept', () => {
    const p = plan('<user><username>anna.mlada</username><permissions><licenseMgmt>true</licenseMgmt></permissions></user>', snapshot({ users: [ANNA] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'anna.mlada']]);
    expect(p.changes.users[0].permissions).toEqual({ ...noPermissions(), createCompany: true, licenseManagement: true });
  });

  test('when a user is blocked with a message, then both are set, and re-sending it is SKIPPED', () => {
    const blocked = plan('<user><username>anna.mlada</username><blocked message="Vom externen System blockiert">true</blocked></user>', snapshot({ users: [ANNA] }));
    expect(outcomes(blocked)).toEqual([['UPDATED', 'anna.mlada']]);
    const stored = blocked.changes.users[0];
    expect(stored).toMatchObject({ blocked: true, blockMessage: 'Vom externen System blockiert' });
    const again = plan('<user><username>anna.mlada</username><blocked message="Vom externen System blockiert">true</blocked></user>', snapshot({ users: [stored] }));
    expect(outcomes(again)).toEqual([['SKIPPED', 'anna.mlada']]);
  });

  test('when a blocked user is unblocked, then the block message is cleared too', () => {
    const p = plan('<user><username>anna.mlada</username><blocked>false</blocked></user>', snapshot({ users: [{ ...ANNA, blocked: true, blockMessage: 'x' }] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'anna.mlada']]);
    expect(p.changes.users[0]).toMatchObject({ blocked: false, blockMessage: null });
  });

  test('when an existing user is deleted, then it is DELETED, marked deleted, and its access list is kept', () => {
    const p = plan('<user action="delete"><username>anna.mlada</username></user>', snapshot({ users: [ANNA], companies: [FIRMA], access: [grant('anna.mlada', FIRMA.id, 'ADMIN')] }));
    expect(outcomes(p)).toEqual([['DELETED', 'anna.mlada']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...ANNA, deleted: true }] });
  });

  test('when an unknown or an already deleted user is deleted, then it is SKIPPED and says why', () => {
    const p = plan(
      '<user action="delete"><username>nobody</username></user><user action="delete"><username>anna.mlada</username></user>',
      snapshot({ users: [{ ...ANNA, deleted: true }] }),
    );
    expect(outcomes(p)).toEqual([
      ['SKIPPED', 'nobody', 'user does not exist'],
      ['SKIPPED', 'anna.mlada', 'user is already deleted'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a deleted user is sent again, then it is CREATED "restored" with its old fields, roles and access list', () => {
    const p = plan(
      '<user><username>anna.mlada</username><email>new@firma.cz</email></user><access role="UCETNI"/>',
      snapshot({ users: [{ ...ANNA, deleted: true }], companies: [FIRMA], access: [grant('anna.mlada', FIRMA.id, 'UCETNI')] }),
    );
    expect(outcomes(p)).toEqual([
      ['CREATED', 'anna.mlada', 'restored'],
      ['SKIPPED', 'anna.mlada@*'],
    ]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...ANNA, email: 'new@firma.cz' }] });
  });

  test('when a user is deleted and restored in one batch, then both are reported and nothing is written', () => {
    const p = plan('<user action="delete"><username>anna.mlada</username></user><user><username>anna.mlada</username></user>', snapshot({ users: [ANNA] }));
    expect(outcomes(p)).toEqual([
      ['DELETED', 'anna.mlada'],
      ['CREATED', 'anna.mlada', 'restored'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });
});

// ── passwords ───────────────────────────────────────────────────────────────────────────

describe('planBatch: passwords (SPEC §4.3)', () => {
  const WITH_PASSWORD = { ...ANNA, passwordHash: sha256('s4lt', 'correct horse') };

  test('when a new user has a plain-text password, then it is handed over to be hashed', () => {
    const p = plan('<user><username>petr</username><password>correct horse</password></user>');
    expect(p.changes.users).toEqual([{ ...user('petr'), newPassword: 'correct horse' }]);
  });

  test('when the same plain-text password is sent again, then it is verified against the stored hash and SKIPPED', () => {
    const p = plan('<user><username>anna.mlada</username><password>correct horse</password></user>', snapshot({ users: [WITH_PASSWORD] }));
    expect(outcomes(p)).toEqual([['SKIPPED', 'anna.mlada']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a different plain-text password is sent, then the user is UPDATED and the new password is to be hashed', () => {
    const p = plan('<user><username>anna.mlada</username><password>battery staple</password></user>', snapshot({ users: [WITH_PASSWORD] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'anna.mlada']]);
    expect(p.changes.users).toEqual([{ ...WITH_PASSWORD, newPassword: 'battery staple' }]);
  });

  test('when a batch changes the password and then sets the stored one again, then the stored hash is kept and nothing is written', () => {
    const p = plan(
      '<user><username>anna.mlada</username><password>other</password></user><user><username>anna.mlada</username><password>correct horse</password></user>',
      snapshot({ users: [WITH_PASSWORD] }),
    );
    expect(statuses(p)).toEqual(['UPDATED', 'UPDATED']);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when the same plain-text password is given twice in one batch, then the second is SKIPPED', () => {
    const p = plan('<user><username>petr</username><password>pw</password></user><user><username>petr</username><password>pw</password></user>');
    expect(statuses(p)).toEqual(['CREATED', 'SKIPPED']);
  });

  test('when a pre-hashed password is given, then it is stored as given, and re-sending it is SKIPPED', () => {
    const p = plan(`<user><username>anna.mlada</username><password hash="sha256" salt="xyz987">${SHA256_DIGEST}</password></user>`, snapshot({ users: [ANNA] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'anna.mlada']]);
    expect(p.changes.users).toEqual([{ ...ANNA, passwordHash: `sha256:xyz987:${SHA256_DIGEST}` }]);
    const again = plan(
      `<user><username>anna.mlada</username><password hash="sha256" salt="xyz987">${SHA256_DIGEST}</password></user>`,
      snapshot({ users: [{ ...ANNA, passwordHash: `sha256:xyz987:${SHA256_DIGEST}` }] }),
    );
    expect(outcomes(again)).toEqual([['SKIPPED', 'anna.mlada']]);
  });

  test('when a pre-hashed password follows a plain-text one for the same user, then the pre-hashed one wins and nothing is left to hash', () => {
    const p = plan(`<user><username>petr</username><password>pw</password></user><user><username>petr</username><password hash="md5" salt="s">${MD5_DIGEST}</password></user>`);
    expect(statuses(p)).toEqual(['CREATED', 'UPDATED']);
    expect(p.changes.users).toEqual([user('petr', { passwordHash: `md5:s:${MD5_DIGEST}` })]);
  });

  test('when a plain-text password follows the pre-hashed form of that very password, then it is SKIPPED', () => {
    const hash = sha256('abc', 'pw');
    const [, salt, hex] = hash.split(':');
    const p = plan(`<user><username>petr</username><password hash="sha256" salt="${salt}">${hex}</password></user><user><username>petr</username><password>pw</password></user>`);
    expect(statuses(p)).toEqual(['CREATED', 'SKIPPED']);
    expect(p.changes.users).toEqual([user('petr', { passwordHash: hash })]);
  });
});

// ── companies ───────────────────────────────────────────────────────────────────────────

const ADMIN_ANNA = snapshot({ users: [ANNA] });

describe('planBatch: companies (SPEC §4.2)', () => {
  test('when a company without <id> is created, then its id is derived from the name: lower case, diacritics removed, others "_"', () => {
    const p = plan(
      `<company><name>Digital Media s.r.o.</name><adminUser>anna.mlada</adminUser></company>
       <company><name>Žluťoučký kůň &amp; Syn, a.s.</name><adminUser>anna.mlada</adminUser></company>
       <company><name>Straße Øre</name><adminUser>anna.mlada</adminUser></company>`,
      ADMIN_ANNA,
    );
    expect(outcomes(p)).toEqual([
      ['CREATED', 'digital_media_s_r_o_'],
      ['CREATED', 'zlutoucky_kun___syn__a_s_'],
      ['CREATED', 'strasse_ore'],
    ]);
  });

  test('when the derived id is taken by a company of another name, then the next free suffix is used and the answer names it', () => {
    const p = plan(
      '<company><name>Digital Media s.r.o</name><adminUser>anna.mlada</adminUser></company><company><name>Digital-Media s.r.o.</name><adminUser>anna.mlada</adminUser></company>',
      snapshot({ users: [ANNA], companies: [company('digital_media_s_r_o_', { name: 'Digital Media s.r.o.' })] }),
    );
    expect(outcomes(p)).toEqual([
      ['CREATED', 'digital_media_s_r_o'],
      ['CREATED', 'digital_media_s_r_o__1'],
    ]);
    expect(p.changes.companies.map((c) => [c.id, c.name])).toEqual([
      ['digital_media_s_r_o', 'Digital Media s.r.o'],
      ['digital_media_s_r_o__1', 'Digital-Media s.r.o.'],
    ]);
    expect(p.changes.grantedAccess).toEqual([grant('anna.mlada', 'digital_media_s_r_o', 'ADMIN'), grant('anna.mlada', 'digital_media_s_r_o__1', 'ADMIN')]);
  });

  test('when two different names derive the same id in one batch, then the second gets _1 and a third _2', () => {
    const p = plan(
      `<company><name>Alfa s.r.o.</name><adminUser>anna.mlada</adminUser></company>
       <company><name>ALFA s.r.o.</name><adminUser>anna.mlada</adminUser></company>
       <company><name>Álfa s.r.o.</name><adminUser>anna.mlada</adminUser></company>`,
      ADMIN_ANNA,
    );
    expect(outcomes(p)).toEqual([
      ['CREATED', 'alfa_s_r_o_'],
      ['CREATED', 'alfa_s_r_o__1'],
      ['CREATED', 'alfa_s_r_o__2'],
    ]);
  });

  test('when a company of the very same name already holds the derived id, then it is that company (re-sending is SKIPPED, no _1)', () => {
    const p = plan('<company><name>Digital Media s.r.o.</name><adminUser>anna.mlada</adminUser></company>', snapshot({
      users: [ANNA],
      companies: [company('digital_media_s_r_o_', { name: 'Digital Media s.r.o.' })],
      access: [grant('anna.mlada', 'digital_media_s_r_o_', 'ADMIN')],
    }));
    expect(outcomes(p)).toEqual([['SKIPPED', 'digital_media_s_r_o_']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when the company of that name holds a suffixed id and the plain id is free, then it is still that company', () => {
    const p = plan('<company><name>ALFA s.r.o.</name><adminUser>anna.mlada</adminUser></company>', snapshot({
      users: [ANNA],
      companies: [company('alfa_s_r_o__1', { name: 'ALFA s.r.o.' })],
      access: [grant('anna.mlada', 'alfa_s_r_o__1', 'ADMIN')],
    }));
    expect(outcomes(p)).toEqual([['SKIPPED', 'alfa_s_r_o__1']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a batch creates, deletes and creates again a company from its name, then the id is reused', () => {
    const p = plan(
      `<company><name>Demo a.s.</name><adminUser>anna.mlada</adminUser></company>
       <company action="delete"><id>demo_a_s_</id></company>
       <company><name>Demo a.s.</name><adminUser>anna.mlada</adminUser></company>`,
      ADMIN_ANNA,
    );
    expect(outcomes(p)).toEqual([
      ['CREATED', 'demo_a_s_'],
      ['DELETED', 'demo_a_s_'],
      ['CREATED', 'demo_a_s_'],
    ]);
    expect(p.changes.companies.map((c) => c.id)).toEqual(['demo_a_s_']);
  });

  test('when a derived id is longer than 64 characters, then it is cut to 64 and a suffix replaces its last characters', () => {
    const name = 'A'.repeat(70);
    const base = 'a'.repeat(64);
    const taken = [company(base, { name: 'other 0' }), ...Array.from({ length: 9 }, (_, i) => company(`${'a'.repeat(62)}_${i + 1}`, { name: `other ${i + 1}` }))];
    const p = plan(`<company><name>${name}</name><adminUser>anna.mlada</adminUser></company>`, snapshot({ users: [ANNA], companies: taken }));
    expect(outcomes(p)).toEqual([['CREATED', `${'a'.repeat(61)}_10`]]);
    expect(p.results[0].id).toHaveLength(64);
    const first = plan(`<company><name>${name}</name><adminUser>anna.mlada</adminUser></company>`, snapshot({ users: [ANNA], companies: [taken[0]] }));
    expect(outcomes(first)).toEqual([['CREATED', `${'a'.repeat(62)}_1`]]);
  });

  test('when the derived-id candidates of a name are requested from the store, then one prefix finds every suffixed candidate', () => {
    const doc = parseBatch(`<flexibee-batch id="t"><company><name>${'A'.repeat(70)}</name></company></flexibee-batch>`, { maxOperations: 10 });
    const [prefix] = snapshotRequest(doc).companyIdPrefixes;
    for (const candidate of ['a'.repeat(64), `${'a'.repeat(62)}_1`, `${'a'.repeat(57)}_999999`]) expect(candidate.startsWith(prefix)).toBe(true);
  });

  test('when a company is created without an admin user, then it is FAILED and says so', () => {
    const p = plan('<company><id>c</id><name>C</name></company>', ADMIN_ANNA);
    expect(outcomes(p)).toEqual([['FAILED', 'c', 'a company cannot be created without an admin user (<adminUser>)']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when the admin user does not exist or is deleted, then the create is FAILED and names the user', () => {
    const p = plan(
      '<company><id>c</id><name>C</name><adminUser>ghost</adminUser></company><company><id>d</id><name>D</name><adminUser>anna.mlada</adminUser></company>',
      snapshot({ users: [{ ...ANNA, deleted: true }] }),
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'c', "a company cannot be created without an admin user: user 'ghost' does not exist"],
      ['FAILED', 'd', "a company cannot be created without an admin user: user 'anna.mlada' is deleted"],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when the admin user is created earlier in the same batch, then the company is CREATED and the admin gets role ADMIN on it', () => {
    const p = plan('<user><username>eva</username></user><company><id>c</id><name>C</name><adminUser>EVA</adminUser></company>');
    expect(statuses(p)).toEqual(['CREATED', 'CREATED']);
    expect(p.changes.companies).toEqual([company('c', { name: 'C' })]);
    expect(p.changes.grantedAccess).toEqual([grant('eva', 'c', 'ADMIN')]);
  });

  test('when a company is created without a name, then it is FAILED; without id and name, it is FAILED too', () => {
    const p = plan('<company><id>c</id><adminUser>anna.mlada</adminUser></company><company><country>CZ</country></company>', ADMIN_ANNA);
    expect(outcomes(p)).toEqual([
      ['FAILED', 'c', "company 'c' does not exist, and a company cannot be created without a <name>"],
      ['FAILED', '', 'a company needs an <id> or a <name>'],
    ]);
  });

  test('when country and type are not given, then the company is CZ with PODNIKATELE+PU; SK alone gets PODNIKATELIA+PU', () => {
    const p = plan(
      '<company><id>c</id><name>C</name><adminUser>anna.mlada</adminUser></company><company><id>s</id><name>S</name><country>SK</country><adminUser>anna.mlada</adminUser></company>',
      ADMIN_ANNA,
    );
    expect(p.changes.companies.map((c) => [c.id, c.country, c.type])).toEqual([
      ['c', 'CZ', 'PODNIKATELE+PU'],
      ['s', 'SK', 'PODNIKATELIA+PU'],
    ]);
  });

  test.each([
    ['an SK company has a CZ type', '<country>SK</country><type>PODNIKATELE+DE</type>', 'organisation type PODNIKATELE+DE does not fit country SK (expected PODNIKATELIA+PU)'],
    ['a CZ company has the SK type', '<type>PODNIKATELIA+PU</type>', 'organisation type PODNIKATELIA+PU does not fit country CZ (expected PODNIKATELE+PU, PODNIKATELE+DE, NEZISKOVE, ROZPOCTOVE)'],
    ['a CZ company has an SK vatId', '<vatId>SK2020123456</vatId>', 'vatId SK2020123456 must start with the country code CZ'],
    ['an SK company has a CZ vatId', '<country>SK</country><vatId>CZ12345678</vatId>', 'vatId CZ12345678 must start with the country code SK'],
  ])('when %s, then the create is FAILED and says what fits', (_what, fields, message) => {
    const p = plan(`<company><id>c</id><name>C</name>${fields}<adminUser>anna.mlada</adminUser></company>`, ADMIN_ANNA);
    expect(outcomes(p)).toEqual([['FAILED', 'c', message]]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when only the country of a company is changed and its type no longer fits, then it is FAILED and asks for a <type>', () => {
    const p = plan('<company><id>moje_firma_s_r_o_</id><country>SK</country></company>', snapshot({ companies: [FIRMA] }));
    expect(outcomes(p)).toEqual([
      ['FAILED', 'moje_firma_s_r_o_', 'organisation type PODNIKATELE+PU does not fit country SK (expected PODNIKATELIA+PU); give a <type> for SK'],
    ]);
  });

  test('when country, type and vatId change together consistently, then the company is UPDATED', () => {
    const p = plan(
      '<company><id>moje_firma_s_r_o_</id><country>SK</country><type>PODNIKATELIA+PU</type><vatId>SK2020123456</vatId></company>',
      snapshot({ companies: [FIRMA] }),
    );
    expect(outcomes(p)).toEqual([['UPDATED', 'moje_firma_s_r_o_']]);
    expect(p.changes.companies).toEqual([{ ...FIRMA, country: 'SK', type: 'PODNIKATELIA+PU', vatId: 'SK2020123456' }]);
  });

  test('when a company is sent with the values it has, then it is SKIPPED', () => {
    const p = plan(
      '<company><id>moje_firma_s_r_o_</id><name>Moje Firma s.r.o.</name><country>CZ</country><regNo>12345678</regNo><vatId>CZ12345678</vatId><type>PODNIKATELE</type><show>true</show></company>',
      snapshot({ companies: [FIRMA] }),
    );
    expect(outcomes(p)).toEqual([['SKIPPED', 'moje_firma_s_r_o_']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when the name of a company changes, then its id stays', () => {
    const p = plan('<company><id>moje_firma_s_r_o_</id><name>Naše Firma a.s.</name></company>', snapshot({ companies: [FIRMA] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'moje_firma_s_r_o_']]);
    expect(p.changes.companies).toEqual([{ ...FIRMA, name: 'Naše Firma a.s.' }]);
  });

  test('when show=false is sent, then the company is hidden (UPDATED); sent again, SKIPPED; show=true shows it again', () => {
    const hide = plan('<company><id>moje_firma_s_r_o_</id><show>false</show></company>', snapshot({ companies: [FIRMA] }));
    expect(outcomes(hide)).toEqual([['UPDATED', 'moje_firma_s_r_o_']]);
    expect(hide.changes.companies).toEqual([{ ...FIRMA, show: false }]);
    const hidden = snapshot({ companies: [{ ...FIRMA, show: false }] });
    expect(statuses(plan('<company><id>moje_firma_s_r_o_</id><show>false</show></company>', hidden))).toEqual(['SKIPPED']);
    const show = plan('<company><id>moje_firma_s_r_o_</id><show>true</show></company>', hidden);
    expect(show.changes.companies).toEqual([FIRMA]);
  });

  test('when adminUser is sent for an existing company, then that user gets role ADMIN on it (UPDATED), and re-sending is SKIPPED', () => {
    const snap = snapshot({ users: [ANNA], companies: [FIRMA], access: [grant('anna.mlada', FIRMA.id, 'UCETNI')] });
    const p = plan('<company><id>moje_firma_s_r_o_</id><adminUser>anna.mlada</adminUser></company>', snap);
    expect(outcomes(p)).toEqual([['UPDATED', 'moje_firma_s_r_o_']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, grantedAccess: [grant('anna.mlada', FIRMA.id, 'ADMIN')] });
    const again = plan('<company><id>moje_firma_s_r_o_</id><adminUser>anna.mlada</adminUser></company>', snapshot({ ...snap, access: [grant('anna.mlada', FIRMA.id, 'ADMIN')] }));
    expect(outcomes(again)).toEqual([['SKIPPED', 'moje_firma_s_r_o_']]);
  });

  test('when adminUser of an existing company is unknown or deleted, then the update is FAILED and changes nothing', () => {
    const p = plan(
      '<company><id>moje_firma_s_r_o_</id><name>X</name><adminUser>ghost</adminUser></company><company><id>moje_firma_s_r_o_</id><name>Y</name><adminUser>anna.mlada</adminUser></company>',
      snapshot({ users: [{ ...ANNA, deleted: true }], companies: [FIRMA] }),
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'moje_firma_s_r_o_', "admin user 'ghost' does not exist"],
      ['FAILED', 'moje_firma_s_r_o_', "admin user 'anna.mlada' is deleted"],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when adminUser would need a new grant on a hidden company, then the update is FAILED', () => {
    const p = plan('<company><id>moje_firma_s_r_o_</id><adminUser>anna.mlada</adminUser></company>', snapshot({ users: [ANNA], companies: [{ ...FIRMA, show: false }] }));
    expect(outcomes(p)).toEqual([['FAILED', 'moje_firma_s_r_o_', "company 'moje_firma_s_r_o_' is hidden; no access can be granted to it"]]);
  });

  test('when a company is deleted, then it is DELETED with every access to it; an unknown one is SKIPPED', () => {
    const p = plan(
      '<company action="delete"><id>moje_firma_s_r_o_</id></company><company action="delete"><id>moje_firma_s_r_o_</id></company><company action="delete"><id>ghost</id></company>',
      snapshot({ users: [ANNA], companies: [FIRMA], access: [grant('anna.mlada', FIRMA.id, 'ADMIN')] }),
    );
    expect(outcomes(p)).toEqual([
      ['DELETED', 'moje_firma_s_r_o_'],
      ['SKIPPED', 'moje_firma_s_r_o_', 'company does not exist'],
      ['SKIPPED', 'ghost', 'company does not exist'],
    ]);
    // The store deletes the company row and every grant with it, also of users the snapshot does not hold.
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, deletedCompanies: ['moje_firma_s_r_o_'] });
  });

  test('when a deleted company id is reused in the same batch, then the new company starts without the old grants', () => {
    const p = plan(
      `<company action="delete"><id>moje_firma_s_r_o_</id></company>
       <company><id>moje_firma_s_r_o_</id><name>Nová</name><adminUser>petr</adminUser></company>
       <access user="anna.mlada">moje_firma_s_r_o_</access>`,
      snapshot({ users: [ANNA, user('petr')], companies: [FIRMA], access: [grant('anna.mlada', FIRMA.id, 'ADMIN')] }),
    );
    expect(outcomes(p)).toEqual([
      ['DELETED', 'moje_firma_s_r_o_'],
      ['CREATED', 'moje_firma_s_r_o_'],
      ['CREATED', 'anna.mlada@moje_firma_s_r_o_'],
    ]);
    expect(p.changes).toEqual({
      ...EMPTY_CHANGES,
      deletedCompanies: ['moje_firma_s_r_o_'],
      companies: [company('moje_firma_s_r_o_', { name: 'Nová' })],
      grantedAccess: [grant('anna.mlada', FIRMA.id, 'UCETNI'), grant('petr', FIRMA.id, 'ADMIN')],
    });
  });

  test('when a delete has no <id>, then it is FAILED', () => {
    expect(outcomes(plan('<company action="delete"><name>Demo a.s.</name></company>'))).toEqual([['FAILED', 'demo_a_s_', 'a company delete needs an <id>']]);
  });
});

// ── access ──────────────────────────────────────────────────────────────────────────────

describe('planBatch: the four <access> forms (SPEC §4.4)', () => {
  const DEMO = company('demo_a_s_', { name: 'Demo a.s.' });
  const base = (access: AccessRecord[] = [], users = [ANNA]): Snapshot => snapshot({ users, companies: [FIRMA, DEMO], access });

  test('when role and company are given, then a new grant is CREATED, a different role UPDATED and the same role SKIPPED', () => {
    const p = plan(
      `<access user="anna.mlada" role="UCETNI">moje_firma_s_r_o_</access>
       <access user="anna.mlada" role="HANDELSMANAGER">moje_firma_s_r_o_</access>
       <access user="anna.mlada" role="OBCHODNIK">moje_firma_s_r_o_</access>`,
      base(),
    );
    expect(outcomes(p)).toEqual([
      ['CREATED', 'anna.mlada@moje_firma_s_r_o_'],
      ['UPDATED', 'anna.mlada@moje_firma_s_r_o_'],
      ['SKIPPED', 'anna.mlada@moje_firma_s_r_o_'],
    ]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, grantedAccess: [grant('anna.mlada', FIRMA.id, 'OBCHODNIK')] });
  });

  test("when only the company is given, then a new grant gets the user's defaultRole", () => {
    const p = plan('<access user="anna.mlada">demo_a_s_</access>', base());
    expect(outcomes(p)).toEqual([['CREATED', 'anna.mlada@demo_a_s_']]);
    expect(p.changes.grantedAccess).toEqual([grant('anna.mlada', DEMO.id, 'UCETNI')]);
  });

  test('when only the company is given and the user has no defaultRole, then a new grant gets UZIVATEL', () => {
    const p = plan('<access user="petr">demo_a_s_</access>', base([], [user('petr')]));
    expect(p.changes.grantedAccess).toEqual([grant('petr', DEMO.id, 'UZIVATEL')]);
  });

  test('when only the company is given and a grant exists, then it is kept as it is (SKIPPED)', () => {
    const p = plan('<access user="anna.mlada">moje_firma_s_r_o_</access>', base([grant('anna.mlada', FIRMA.id, 'ADMIN')]));
    expect(outcomes(p)).toEqual([['SKIPPED', 'anna.mlada@moje_firma_s_r_o_']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when only the role is given, then every grant of the user gets it (UPDATED), and when all have it, SKIPPED', () => {
    const snap = base([grant('anna.mlada', FIRMA.id, 'ADMIN'), grant('anna.mlada', DEMO.id, 'UZIVATEL')]);
    const p = plan('<access user="anna.mlada" role="USER"/>', snap);
    expect(outcomes(p)).toEqual([['UPDATED', 'anna.mlada@*']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, grantedAccess: [grant('anna.mlada', FIRMA.id, 'UZIVATEL')] });
    const same = plan('<access user="anna.mlada" role="UZIVATEL"/>', base([grant('anna.mlada', FIRMA.id, 'UZIVATEL'), grant('anna.mlada', DEMO.id, 'UZIVATEL')]));
    expect(outcomes(same)).toEqual([['SKIPPED', 'anna.mlada@*']]);
  });

  test('when only the role is given and the user has no grant at all, then it is SKIPPED and says so', () => {
    expect(outcomes(plan('<access user="anna.mlada" role="ADMIN"/>', base()))).toEqual([['SKIPPED', 'anna.mlada@*', 'user has no access to any company']]);
  });

  test('when the only-role form meets a grant on a hidden company, then that grant gets the role as well', () => {
    const p = plan('<access user="anna.mlada" role="UZIVATEL"/>', snapshot({ users: [ANNA], companies: [{ ...FIRMA, show: false }], access: [grant('anna.mlada', FIRMA.id, 'ADMIN')] }));
    expect(statuses(p)).toEqual(['UPDATED']);
    expect(p.changes.grantedAccess).toEqual([grant('anna.mlada', FIRMA.id, 'UZIVATEL')]);
  });

  test('when a grant is deleted, then it is DELETED; without a grant, or without the company, SKIPPED saying why', () => {
    const p = plan(
      `<access user="anna.mlada" action="delete">moje_firma_s_r_o_</access>
       <access user="anna.mlada" action="delete">moje_firma_s_r_o_</access>
       <access user="anna.mlada" action="delete">ghost</access>`,
      base([grant('anna.mlada', FIRMA.id, 'ADMIN')]),
    );
    expect(outcomes(p)).toEqual([
      ['DELETED', 'anna.mlada@moje_firma_s_r_o_'],
      ['SKIPPED', 'anna.mlada@moje_firma_s_r_o_', 'user has no access to moje_firma_s_r_o_'],
      ['SKIPPED', 'anna.mlada@ghost', 'company does not exist'],
    ]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, revokedAccess: [{ userKey: 'anna.mlada', companyId: FIRMA.id }] });
  });

  test('when a grant is removed and given again in one batch, then nothing is written', () => {
    const p = plan(
      '<access user="anna.mlada" action="delete">moje_firma_s_r_o_</access><access user="anna.mlada" role="ADMIN">moje_firma_s_r_o_</access>',
      base([grant('anna.mlada', FIRMA.id, 'ADMIN')]),
    );
    expect(statuses(p)).toEqual(['DELETED', 'CREATED']);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when an access has a user attribute, then it applies to that user rather than the nearest <user> above', () => {
    const p = plan('<user><username>petr</username></user><access user="anna.mlada" role="ADMIN">demo_a_s_</access><access>demo_a_s_</access>', base());
    expect(outcomes(p)).toEqual([
      ['CREATED', 'petr'],
      ['CREATED', 'anna.mlada@demo_a_s_'],
      ['CREATED', 'petr@demo_a_s_'],
    ]);
    expect(p.changes.grantedAccess).toEqual([grant('anna.mlada', DEMO.id, 'ADMIN'), grant('petr', DEMO.id, 'UZIVATEL')]);
  });

  test('when an access has neither a user attribute nor a <user> above it, then it is FAILED and says how to name the user', () => {
    expect(outcomes(plan('<access role="ADMIN">demo_a_s_</access>', base()))).toEqual([
      ['FAILED', '@demo_a_s_', 'an <access> needs a user: give it a user attribute or put it after a <user>'],
    ]);
  });

  test('when the user of an access is unknown or deleted, then it is FAILED and names the user', () => {
    const p = plan('<access user="ghost">demo_a_s_</access><access user="anna.mlada" action="delete">demo_a_s_</access>', base([], [{ ...ANNA, deleted: true }]));
    expect(outcomes(p)).toEqual([
      ['FAILED', 'ghost@demo_a_s_', "user 'ghost' does not exist"],
      ['FAILED', 'anna.mlada@demo_a_s_', "user 'anna.mlada' is deleted"],
    ]);
  });

  test('when the company of an access is unknown, then it is FAILED and names the company', () => {
    expect(outcomes(plan('<access user="anna.mlada" role="ADMIN">anna_mlada_s_r_o_</access>', base()))).toEqual([
      ['FAILED', 'anna.mlada@anna_mlada_s_r_o_', "company 'anna_mlada_s_r_o_' does not exist"],
    ]);
  });

  test('when the company is hidden, then a new grant or a role change is FAILED but a grant that already holds is SKIPPED', () => {
    const hidden = snapshot({ users: [ANNA, user('petr')], companies: [{ ...FIRMA, show: false }], access: [grant('anna.mlada', FIRMA.id, 'ADMIN')] });
    const p = plan(
      `<access user="petr" role="ADMIN">moje_firma_s_r_o_</access>
       <access user="petr">moje_firma_s_r_o_</access>
       <access user="anna.mlada" role="ADMIN">moje_firma_s_r_o_</access>
       <access user="anna.mlada">moje_firma_s_r_o_</access>
       <access user="anna.mlada" role="UCETNI">moje_firma_s_r_o_</access>`,
      hidden,
    );
    const message = "company 'moje_firma_s_r_o_' is hidden; no access can be granted to it";
    expect(outcomes(p)).toEqual([
      ['FAILED', 'petr@moje_firma_s_r_o_', message],
      ['FAILED', 'petr@moje_firma_s_r_o_', message],
      ['SKIPPED', 'anna.mlada@moje_firma_s_r_o_'],
      ['SKIPPED', 'anna.mlada@moje_firma_s_r_o_'],
      ['FAILED', 'anna.mlada@moje_firma_s_r_o_', message],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a grant on a hidden company is deleted, then it is DELETED', () => {
    const p = plan('<access user="anna.mlada" action="delete">moje_firma_s_r_o_</access>', snapshot({ users: [ANNA], companies: [{ ...FIRMA, show: false }], access: [grant('anna.mlada', FIRMA.id, 'ADMIN')] }));
    expect(statuses(p)).toEqual(['DELETED']);
  });

  test('when an access names a company created earlier in the same batch, then it is granted', () => {
    const p = plan('<company><id>nova</id><name>Nová</name><adminUser>anna.mlada</adminUser></company><access user="petr" role="UCETNI">nova</access>', snapshot({ users: [ANNA, user('petr')] }));
    expect(statuses(p)).toEqual(['CREATED', 'CREATED']);
    expect(p.changes.grantedAccess).toEqual([grant('anna.mlada', 'nova', 'ADMIN'), grant('petr', 'nova', 'UCETNI')]);
  });
});

// ── the batch as a whole ────────────────────────────────────────────────────────────────

describe('planBatch: failures, atomic and the change set (SPEC §5.3)', () => {
  const SNAP = snapshot({ users: [ANNA, user('petr')], companies: [FIRMA], access: [grant('anna.mlada', FIRMA.id, 'ADMIN')] });
  const GOOD = [
    '<user><username>eva</username><givenName>Eva</givenName></user>',
    '<company><id>nova</id><name>Nová</name><adminUser>eva</adminUser></company>',
    '<access user="petr" role="UCETNI">moje_firma_s_r_o_</access>',
    '<company><id>moje_firma_s_r_o_</id><show>false</show></company>',
    '<user action="delete"><username>anna.mlada</username></user>',
  ];
  const FAILING = [
    '<user><username>eva</username><phone>1</phone></user>',
    '<company><id>nova</id><name>Other</name><country>SK</country><type>NEZISKOVE</type><adminUser>eva</adminUser></company>',
    '<company><id>moje_firma_s_r_o_</id><name>Renamed</name><vatId>SK1</vatId></company>',
    '<access user="petr" role="CHEF">moje_firma_s_r_o_</access>',
    '<access user="ghost" role="ADMIN">moje_firma_s_r_o_</access>',
    '<access user="petr" role="ADMIN">nowhere</access>',
    '<invoice><id>g</id></invoice>',
  ];

  test.each(FAILING.map((f) => [f]))('when %s FAILS in the middle of a batch, then the change set is exactly as without it and the later operations still run', (failing) => {
    for (let at = 0; at <= GOOD.length; at++) {
      const ops = [...GOOD.slice(0, at), failing, ...GOOD.slice(at)];
      const withFailure = plan(ops.join(''), SNAP);
      const without = plan(GOOD.join(''), SNAP);
      expect(withFailure.results[at].status).toBe('FAILED');
      expect(withFailure.results[at].message).toEqual(expect.any(String));
      const others = withFailure.results.filter((_, i) => i !== at);
      expect(others).toEqual(without.results);
      expect(withFailure.changes).toEqual(without.changes);
    }
  });

  test('when an unknown element is an operation, then it is FAILED naming it and the expected ones', () => {
    const p = plan('<invoice><id>g</id></invoice>');
    expect(p.results).toEqual([
      {
        type: 'UNKNOWN',
        action: 'CREATE_UPDATE',
        id: 'invoice',
        status: 'FAILED',
        message: 'unknown element <invoice> in <flexibee-batch>; expected <user>, <company>, <access>, <licenseGroup>, <dateAction>, <subscription>',
      },
    ]);
  });

  test('when an invalid element still names its user, then the FAILED entry carries that id', () => {
    expect(outcomes(plan('<user><username>eva</username><phone>1</phone></user>'))).toEqual([
      ['FAILED', 'eva', 'unknown element <phone> in <user>; expected <username>, <password>, <email>, <givenName>, <familyName>, <validUntil>, <permissions>, <defaultRole>, <blocked>, <userType>, <licenseGroup>'],
    ]);
  });

  test('when an atomic batch has a failure, then the failures are reported, every other entry is SKIPPED "rolled back" and nothing is changed', () => {
    const ops = [GOOD[0], FAILING[4], GOOD[1], GOOD[2]].join('');
    const p = plan(ops, SNAP, ' atomic="true"');
    expect(outcomes(p)).toEqual([
      ['SKIPPED', 'eva', 'rolled back'],
      ['FAILED', 'ghost@moje_firma_s_r_o_', "user 'ghost' does not exist"],
      ['SKIPPED', 'nova', 'rolled back'],
      ['SKIPPED', 'petr@moje_firma_s_r_o_', 'rolled back'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when an atomic batch has no failure, then it is applied as usual', () => {
    const ops = GOOD.join('');
    expect(plan(ops, SNAP, ' atomic="true"')).toEqual(plan(ops, SNAP));
  });

  test('when a batch runs, then there is one result per operation, in document order, with type and action', () => {
    const p = plan(GOOD.join(''), SNAP);
    expect(p.results.map((r: OperationResult) => [r.type, r.action, r.id, r.status])).toEqual([
      ['USER', 'CREATE_UPDATE', 'eva', 'CREATED'],
      ['COMPANY', 'CREATE_UPDATE', 'nova', 'CREATED'],
      ['ACCESS_LIST', 'CREATE_UPDATE', 'petr@moje_firma_s_r_o_', 'CREATED'],
      ['COMPANY', 'CREATE_UPDATE', 'moje_firma_s_r_o_', 'UPDATED'],
      ['USER', 'DELETE', 'anna.mlada', 'DELETED'],
    ]);
  });

  test('when a batch touches users and companies, then snapshotRequest asks for exactly the keys it names', () => {
    const doc = parseBatch(
      `<flexibee-batch id="t"><user><username>Anna.Mlada</username></user><access>moje_firma_s_r_o_</access>
       <company><name>Demo a.s.</name><adminUser>PETR</adminUser></company><company action="delete"><id>old</id></company>
       <access user="eva" role="ADMIN"/></flexibee-batch>`,
      { maxOperations: 10 },
    );
    expect(snapshotRequest(doc)).toEqual({ userKeys: ['anna.mlada', 'petr', 'eva'], companyIds: ['moje_firma_s_r_o_', 'old'], companyIdPrefixes: ['demo_a_s_'], groupIds: [], groupCounts: [], dateActionIds: [], subscriptionIds: [] });
  });
});
