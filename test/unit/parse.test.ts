import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AccessOperation, BatchDocument, CompanyOperation, LicenseGroupOperation, Operation, UserOperation } from '../../src/batch/operations';
import { parseBatch } from '../../src/batch/parse';
import { ROLE_CODES } from '../../src/domain/roles';
import { FlexiError } from '../../src/errors';

const SEED_SAMPLES = join(__dirname, '..', '..', 'fixtures', 'seed-samples');
/** Digests of the right length for each algorithm (SPEC §4.3); their value does not matter to the parser. */
const HEX64 = '0123456789abcdef'.repeat(4);
const HEX40 = HEX64.slice(0, 40);
const HEX32 = HEX64.slice(0, 32);
const HEX128_UPPER = 'ABCDEF0123456789'.repeat(8);

function parse(body: string, maxOperations = 100): BatchDocument {
  return parseBatch(body, { maxOperations });
}

/** A batch around the given operations. */
function batch(inner: string, rootAttributes = ''): BatchDocument {
  return parse(`<?xml version="1.0"?><flexibee-batch id="t-1"${rootAttributes}>${inner}</flexibee-batch>`);
}

function only(inner: string): Operation {
  const doc = batch(inner);
  expect(doc.operations).toHaveLength(1);
  return doc.operations[0];
}

const user = (inner: string): UserOperation => only(`<user>${inner}</user>`) as UserOperation;
const company = (inner: string): CompanyOperation => only(`<company>${inner}</company>`) as CompanyOperation;
const access = (xml: string): AccessOperation => only(xml) as AccessOperation;
const licenseGroup = (inner: string, attributes = ''): LicenseGroupOperation => only(`<licenseGroup${attributes}>${inner}</licenseGroup>`) as LicenseGroupOperation;

/** Runs parseBatch and returns the FlexiError it throws. */
function rejected(body: string, maxOperations = 100): FlexiError {
  try {
    parse(body, maxOperations);
  } catch (err) {
    if (err instanceof FlexiError) return err;
    throw err;
  }
  throw new Error('the batch was accepted');
}

describe('parseBatch: the localized aliases of the German documentation', () => {
  test('when a user uses Benutzername, Geschenkname and Familienname, then they are read as username, givenName and familyName', () => {
    const op = user('<Benutzername>anna.mlada</Benutzername><Geschenkname>Anique</Geschenkname><Familienname>Ältere</Familienname>');
    expect(op.invalid).toBeUndefined();
    expect(op.username).toBe('anna.mlada');
    expect(op.fields).toEqual({ givenName: 'Anique', familyName: 'Ältere' });
  });

  test('when a user gives both <username> and <Benutzername>, then the operation is invalid because the username is given twice', () => {
    const op = user('<username>a</username><Benutzername>b</Benutzername>');
    expect(op.invalid).toBe('<username> is given twice in <user>');
  });

  test('when permissions use licenseMgmt, then it is read as licenseManagement', () => {
    const op = user('<username>a</username><permissions><licenseMgmt>true</licenseMgmt><createUser>false</createUser></permissions>');
    expect(op.fields.permissions).toEqual({ licenseManagement: true, createUser: false });
  });

  test('when permissions give licenseMgmt and licenseManagement, then the operation is invalid because the permission is given twice', () => {
    const op = user('<username>a</username><permissions><licenseMgmt>true</licenseMgmt><licenseManagement>true</licenseManagement></permissions>');
    expect(op.invalid).toBe('the permission licenseManagement is given twice');
  });

  test.each([
    ['USER', 'UZIVATEL'],
    ['BENUTZER', 'UZIVATEL'],
    ['SUPERUSER', 'SUPERUZIVATEL'],
    ['HANDELSMANAGER', 'OBCHODNIK'],
    ['LAGERHALTER', 'SKLADNIK'],
    ['GESPERRT', 'ZABLOKOVAN'],
  ])('when the role alias %s is used, then it means %s in <defaultRole> and in <access role>', (alias, code) => {
    expect(user(`<username>a</username><defaultRole>${alias}</defaultRole>`).fields.defaultRole).toBe(code);
    expect(access(`<access user="a" role="${alias}">c</access>`).role).toBe(code);
  });

  test.each(ROLE_CODES.map((code) => [code]))('when the role code %s is used, then it is accepted as itself', (code) => {
    expect(user(`<username>a</username><defaultRole>${code}</defaultRole>`).fields.defaultRole).toBe(code);
    expect(access(`<access user="a" role="${code}"/>`).role).toBe(code);
  });

  test('when the organisation type PODNIKATELE is used, then it means PODNIKATELE+PU', () => {
    expect(company('<id>c</id><type>PODNIKATELE</type>').fields.type).toBe('PODNIKATELE+PU');
  });

  test('when an element name of the English documentation is written in another case, then it is not an alias', () => {
    expect(user('<username>a</username><benutzername>a</benutzername>').invalid).toMatch(/^unknown element <benutzername> in <user>/);
  });
});

describe('parseBatch: unknown elements', () => {
  test('when a <user> contains an unknown element, then only that operation is invalid and the message names the element and the expected ones', () => {
    const doc = batch('<user><username>a</username><phone>123</phone></user><user><username>b</username></user>');
    const [first, second] = doc.operations as UserOperation[];
    expect(first.invalid).toBe(
      'unknown element <phone> in <user>; expected <username>, <password>, <email>, <givenName>, <familyName>, <validUntil>, <permissions>, <defaultRole>, <blocked>, <userType>, <licenseGroup>',
    );
    expect(first.username).toBe('a');
    expect(second.invalid).toBeUndefined();
  });

  test('when a <company> contains an unknown element, then the message names it and the company elements', () => {
    expect(company('<id>c</id><city>Praha</city>').invalid).toBe(
      'unknown element <city> in <company>; expected <id>, <name>, <country>, <regNo>, <vatId>, <validUntil>, <type>, <adminUser>, <show>, <licenseGroup>',
    );
  });

  test('when <permissions> contains an unknown permission, then the message names it and the permission names', () => {
    expect(user('<username>a</username><permissions><root>true</root></permissions>').invalid).toBe(
      'unknown element <root> in <permissions>; expected <manageAll>, <createCompany>, <deleteCompany>, <createUser>, <changePassword>, <grantPermission>, <licenseManagement>',
    );
  });

  test('when the batch contains an unknown operation element, then it becomes an unknown operation naming it and <user>, <company>, <access>', () => {
    const op = only('<invoice><id>g</id></invoice>');
    expect(op).toMatchObject({
      kind: 'unknown',
      element: 'invoice',
      invalid: 'unknown element <invoice> in <flexibee-batch>; expected <user>, <company>, <access>, <licenseGroup>, <dateAction>, <subscription>',
    });
  });

  test('when an element differs from a known one only in case, then it is unknown and the message suggests the right spelling', () => {
    expect(user('<UserName>a</UserName>').invalid).toBe(
      'unknown element <UserName> in <user>; expected <username>, <password>, <email>, <givenName>, <familyName>, <validUntil>, <permissions>, <defaultRole>, <blocked>, <userType>, <licenseGroup> (element names are case-sensitive: did you mean <username>?)',
    );
    expect(only('<User><username>a</username></User>').invalid).toMatch(/unknown element <User> in <flexibee-batch>.*did you mean <user>\?/);
  });

  test('when reserved JavaScript names are used as elements, then they are reported as unknown elements', () => {
    expect(user('<username>a</username><__proto__>x</__proto__>').invalid).toMatch(/^unknown element <__proto__> in <user>/);
    expect(only('<constructor/>')).toMatchObject({ kind: 'unknown', element: 'constructor' });
  });

  test('when an operation has an unknown attribute, then it is invalid and the message names the attribute and the allowed ones', () => {
    expect(only('<user mode="x"><username>a</username></user>').invalid).toBe("unknown attribute 'mode' on <user>; expected action");
    expect(access('<access user="a" rolle="ADMIN">c</access>').invalid).toBe("unknown attribute 'rolle' on <access>; expected role, action, user");
  });
});

describe('parseBatch: duplicated and invalid values', () => {
  test.each([
    ['gives <email> twice', '<username>a</username><email>a@x.cz</email><email>b@x.cz</email>', '<email> is given twice in <user>'],
    ['has a username with a space', '<username>a b</username>', "username 'a b' is not valid: use 1–64 characters of A–Z, a–z, 0–9, '.', '_', '@' and '-'"],
    ['has a 65-character username', `<username>${'a'.repeat(65)}</username>`, `username '${'a'.repeat(65)}' is not valid: use 1–64 characters of A–Z, a–z, 0–9, '.', '_', '@' and '-'`],
    ['has no username', '<email>a@x.cz</email>', 'a <user> needs a <username>'],
    ['has an e-mail without @', '<username>a</username><email>not-an-address</email>', "email 'not-an-address' is not an e-mail address"],
    ['is blocked "yes"', '<username>a</username><blocked>yes</blocked>', "<blocked> must be true or false, not 'yes'"],
    ['has an unknown userType', '<username>a</username><userType>ADMIN</userType>', "unknown userType 'ADMIN'; expected one of NORMAL, REST_API, READ_ONLY"],
    ['has a lower-case role code', '<username>a</username><defaultRole>admin</defaultRole>', "unknown role 'admin'; expected one of ADMIN, SUPERUZIVATEL, UZIVATEL, OBCHODNIK, UCETNI, MZDOVYUCETNI, SKLADNIK, SKLADNIKSPOKLADNOU, JENCIST, ZABLOKOVAN"],
    ['has a permission "ja"', '<username>a</username><permissions><createUser>ja</createUser></permissions>', "<createUser> must be true or false, not 'ja'"],
    ['has markup inside <givenName>', '<username>a</username><givenName><b>Anna</b></givenName>', '<givenName> must contain text, not the element <b>'],
    ['has a 256-character given name', `<username>a</username><givenName>${'x'.repeat(256)}</givenName>`, '<givenName> is longer than 255 characters'],
    ['has an empty password', '<username>a</username><password></password>', '<password> must not be empty'],
    ['has a salt but no hash', '<username>a</username><password salt="s">abc</password>', '<password> has a salt but no hash attribute; give hash="sha256" (or another algorithm) with a pre-hashed digest'],
    ['names an unknown hash algorithm', '<username>a</username><password hash="bcrypt" salt="s">abc</password>', "unknown password hash 'bcrypt'; expected one of sha256, sha512, sha1, md5, pbkdf2"],
    ['has a non-hex pre-hashed digest', '<username>a</username><password hash="sha256" salt="s">not hex</password>', 'a pre-hashed sha256 <password> must be the sha256 digest as 64 hexadecimal digits (0-9, a-f or A-F), not characters other than hex digits'],
    ['has a pbkdf2 hash without iterations', `<username>a</username><password hash="pbkdf2" salt="s">${HEX64}</password>`, 'a pbkdf2 <password> needs an iterations attribute with a whole number from 1 to 2000000'],
    ['has a pbkdf2 hash with 0 iterations', `<username>a</username><password hash="pbkdf2" salt="s" iterations="0">${HEX64}</password>`, 'a pbkdf2 <password> needs an iterations attribute with a whole number from 1 to 2000000'],
    ['has a pbkdf2 hash with more than 2 million iterations', `<username>a</username><password hash="pbkdf2" salt="s" iterations="2000001">${HEX64}</password>`, 'a pbkdf2 <password> needs an iterations attribute with a whole number from 1 to 2000000'],
    ['has a pbkdf2 hash with 10 million iterations', `<username>a</username><password hash="pbkdf2" salt="s" iterations="10000000">${HEX64}</password>`, 'a pbkdf2 <password> needs an iterations attribute with a whole number from 1 to 2000000'],
    ['has iterations on a sha1 hash', `<username>a</username><password hash="sha1" salt="s" iterations="5">${HEX40}</password>`, 'the iterations attribute belongs to pbkdf2 hashes, not sha1'],
    ['has a 9-digit sha256 digest (the translated sample 07)', '<username>a</username><password hash="sha256" salt="xyz987">af123bd35</password>', 'a pre-hashed sha256 <password> must be the sha256 digest as 64 hexadecimal digits (0-9, a-f or A-F), not 9 digits'],
    ['has a sha256-long sha512 digest', `<username>a</username><password hash="sha512" salt="s">${HEX64}</password>`, 'a pre-hashed sha512 <password> must be the sha512 digest as 128 hexadecimal digits (0-9, a-f or A-F), not 64 digits'],
    ['has a 41-digit sha1 digest', `<username>a</username><password hash="sha1" salt="s">${HEX40}0</password>`, 'a pre-hashed sha1 <password> must be the sha1 digest as 40 hexadecimal digits (0-9, a-f or A-F), not 41 digits'],
    ['has a 31-digit md5 digest', `<username>a</username><password hash="md5" salt="s">${HEX32.slice(1)}</password>`, 'a pre-hashed md5 <password> must be the md5 digest as 32 hexadecimal digits (0-9, a-f or A-F), not 31 digits'],
    ['has a pbkdf2 digest of an odd number of digits', `<username>a</username><password hash="pbkdf2" salt="s" iterations="1000">${HEX64.slice(1)}</password>`, 'a pre-hashed pbkdf2 <password> must be the 32-byte PBKDF2-HMAC-SHA256 key as 64 hexadecimal digits (0-9, a-f or A-F), not 63 digits'],
    ['has a 256-digit pbkdf2 digest', `<username>a</username><password hash="pbkdf2" salt="s" iterations="1000">${HEX64.repeat(4)}</password>`, 'a pre-hashed pbkdf2 <password> must be the 32-byte PBKDF2-HMAC-SHA256 key as 64 hexadecimal digits (0-9, a-f or A-F), not 256 digits'],
    ['has an empty pre-hashed digest', '<username>a</username><password hash="md5" salt="s"></password>', 'a pre-hashed md5 <password> must be the md5 digest as 32 hexadecimal digits (0-9, a-f or A-F), not 0 digits'],
    ['is valid until a date that does not exist', '<username>a</username><validUntil>2023-02-29</validUntil>', "<validUntil> '2023-02-29' is not a date; expected YYYY-MM-DD, such as 2026-12-31"],
    ['is valid until a date in another form', '<username>a</username><validUntil>31.12.2026</validUntil>', "<validUntil> '31.12.2026' is not a date; expected YYYY-MM-DD, such as 2026-12-31"],
    ['has a digest with a 0x prefix', `<username>a</username><password hash="sha256" salt="s">0x${HEX64.slice(2)}</password>`, 'a pre-hashed sha256 <password> must be the sha256 digest as 64 hexadecimal digits (0-9, a-f or A-F), not characters other than hex digits'],
  ])('when a user %s, then only that operation is invalid and the message says why', (_what, inner, message) => {
    expect(user(inner).invalid).toBe(message);
  });

  test.each([
    ['has upper-case letters in its id', '<id>Moje_Firma</id>', "company id 'Moje_Firma' is not valid: company ids are 1–64 characters of a–z, 0–9 and _"],
    ['has a 65-character id', `<id>${'a'.repeat(65)}</id>`, `company id '${'a'.repeat(65)}' is not valid: company ids are 1–64 characters of a–z, 0–9 and _`],
    ['gives <id> twice', '<id>c</id><id>d</id>', '<id> is given twice in <company>'],
    ['has an empty name', '<id>c</id><name></name>', '<name> must not be empty'],
    ['is in country DE', '<id>c</id><country>DE</country>', "unknown country 'DE'; expected CZ or SK"],
    ['has a vatId without country code', '<id>c</id><vatId>123</vatId>', "vatId '123' is not valid: a country code followed by digits, such as CZ12345678"],
    ['has a regNo with a dash', '<id>c</id><regNo>12-34</regNo>', "regNo '12-34' must contain only digits and letters"],
    ['has the type SIGNATUREN', '<id>c</id><type>SIGNATUREN</type>', "unknown organisation type 'SIGNATUREN'; expected one of CZ: PODNIKATELE+PU, PODNIKATELE+DE, NEZISKOVE, ROZPOCTOVE; SK: PODNIKATELIA+PU"],
    ['is shown "maybe"', '<id>c</id><show>maybe</show>', "<show> must be true or false, not 'maybe'"],
    ['is valid until month 13', '<id>c</id><validUntil>2026-13-01</validUntil>', "<validUntil> '2026-13-01' is not a date; expected YYYY-MM-DD, such as 2026-12-31"],
    ['has an adminUser with a space', '<id>c</id><adminUser>anna mlada</adminUser>', "adminUser 'anna mlada' is not valid: use 1–64 characters of A–Z, a–z, 0–9, '.', '_', '@' and '-'"],
  ])('when a company %s, then only that operation is invalid and the message says why', (_what, inner, message) => {
    expect(company(inner).invalid).toBe(message);
  });

  test.each([
    ['names a company id with upper case', '<access role="ADMIN">mein_Unternehmen_s_r_o_</access>', "company 'mein_Unternehmen_s_r_o_' does not exist: company ids are 1–64 characters of a–z, 0–9 and _"],
    ['names an unknown role', '<access role="CHEF">c</access>', "unknown role 'CHEF'; expected one of ADMIN, SUPERUZIVATEL, UZIVATEL, OBCHODNIK, UCETNI, MZDOVYUCETNI, SKLADNIK, SKLADNIKSPOKLADNOU, JENCIST, ZABLOKOVAN"],
    ['has the action "remove"', '<access action="remove">c</access>', "unknown action 'remove' on <access>; expected create-update or delete"],
    ['contains an element', '<access><id>c</id></access>', '<access> contains only a company id, not the element <id>'],
    ['has a user attribute with a space', '<access user="a b">c</access>', "user 'a b' is not valid: use 1–64 characters of A–Z, a–z, 0–9, '.', '_', '@' and '-'"],
  ])('when an access %s, then only that operation is invalid and the message says why', (_what, xml, message) => {
    expect(access(xml).invalid).toBe(message);
  });

  test('when the country and vatId are written in lower case, then they are read in upper case', () => {
    expect(company('<id>c</id><country>sk</country><vatId>sk2020</vatId>').fields).toEqual({ country: 'SK', vatId: 'SK2020' });
  });

  test('when values look like numbers (007), then they stay the strings as written', () => {
    const doc = batch('<user><username>007</username><givenName>0042</givenName></user><company><id>007</id><name>007</name><regNo>007</regNo></company>');
    const [u, c] = doc.operations as [UserOperation, CompanyOperation];
    expect(u.username).toBe('007');
    expect(u.fields.givenName).toBe('0042');
    expect(c).toMatchObject({ id: '007', fields: { name: '007', regNo: '007' } });
  });

  test('when a boolean is written as 1 or 0, then it is read as true or false', () => {
    expect(company('<id>c</id><show>0</show>').fields.show).toBe(false);
    expect(user('<username>a</username><blocked>1</blocked>').fields.blocked).toEqual({ value: true, message: null });
  });

  test('when an optional text field is empty, then it clears the value (null)', () => {
    expect(user('<username>a</username><email></email><givenName/><validUntil/>').fields).toEqual({ email: null, givenName: null, validUntil: null });
    expect(company('<id>c</id><vatId/><regNo></regNo><validUntil></validUntil>').fields).toEqual({ vatId: null, regNo: null, validUntil: null });
  });

  test('when a user or a company is valid until a calendar date (SPEC §10.3), then the date is read as written', () => {
    expect(user('<username>a</username><validUntil>2024-02-29</validUntil>').fields).toEqual({ validUntil: '2024-02-29' });
    expect(company('<id>c</id><validUntil>2026-12-31</validUntil>').fields).toEqual({ validUntil: '2026-12-31' });
  });
});

describe('parseBatch: fields', () => {
  test('when every user field is given, then each is read into the operation', () => {
    const op = user(`<username>Anna.Mlada</username><password>tajne heslo</password><email>anna@firma.cz</email>
      <givenName>Anna</givenName><familyName>Mladá</familyName>
      <permissions><manageAll>true</manageAll><createCompany>false</createCompany><deleteCompany>true</deleteCompany>
        <createUser>false</createUser><changePassword>true</changePassword><grantPermission>false</grantPermission>
        <licenseManagement>true</licenseManagement></permissions>
      <defaultRole>UCETNI</defaultRole><blocked message="  Vom externen System blockiert ">true</blocked><userType>REST_API</userType>`);
    expect(op).toEqual({
      kind: 'user',
      action: 'create-update',
      username: 'Anna.Mlada',
      fields: {
        password: { kind: 'plain', value: 'tajne heslo' },
        email: 'anna@firma.cz',
        givenName: 'Anna',
        familyName: 'Mladá',
        permissions: {
          manageAll: true,
          createCompany: false,
          deleteCompany: true,
          createUser: false,
          changePassword: true,
          grantPermission: false,
          licenseManagement: true,
        },
        defaultRole: 'UCETNI',
        blocked: { value: true, message: 'Vom externen System blockiert' },
        userType: 'REST_API',
      },
    });
  });

  test('when a user is unblocked with a message, then the message is dropped', () => {
    expect(user('<username>a</username><blocked message="x">false</blocked>').fields.blocked).toEqual({ value: false, message: null });
  });

  test.each([
    ['sha256', 'salt="xyz987"', HEX64, `sha256:xyz987:${HEX64}`],
    ['sha512', 'salt="s1"', HEX128_UPPER, `sha512:s1:${HEX128_UPPER}`],
    ['sha1', 'salt="s:2"', HEX40, `sha1:s:2:${HEX40}`],
    ['md5', '', HEX32, `md5::${HEX32}`],
    ['pbkdf2', 'salt="pepper" iterations="1000"', HEX64, `pbkdf2:1000:pepper:${HEX64}`],
    ['pbkdf2', 'salt="pepper" iterations="2000000"', HEX64, `pbkdf2:2000000:pepper:${HEX64}`],
  ])('when a %s pre-hashed password is given, then it is kept in its stored form as given', (hash, attributes, digest, stored) => {
    expect(user(`<username>a</username><password hash="${hash}" ${attributes}>${digest}</password>`).fields.password).toEqual({
      kind: 'hashed',
      stored,
    });
  });

  test('when a company gives every field, then each is read into the operation', () => {
    const op = company(`<id>moje_firma_s_r_o_</id><name>Moje Firma s.r.o.</name><country>CZ</country><regNo>12345678</regNo>
      <vatId>CZ12345678</vatId><type>PODNIKATELE+DE</type><adminUser>anna.mlada</adminUser><show>false</show>`);
    expect(op).toEqual({
      kind: 'company',
      action: 'create-update',
      id: 'moje_firma_s_r_o_',
      fields: {
        name: 'Moje Firma s.r.o.',
        country: 'CZ',
        regNo: '12345678',
        vatId: 'CZ12345678',
        type: 'PODNIKATELE+DE',
        adminUser: 'anna.mlada',
        show: false,
      },
    });
  });

  test('when a delete names only the company id, then it is a delete of that id', () => {
    expect(only('<company action="delete"><id>demo_a_s_</id></company>')).toEqual({ kind: 'company', action: 'delete', id: 'demo_a_s_', fields: {} });
  });
});

describe('parseBatch: the four <access> forms and the user they apply to', () => {
  test('when the four forms are given with a user attribute, then each keeps its company, role and action', () => {
    const doc = batch(`<access user="a" role="ADMIN">c</access><access user="a">c</access>
      <access user="a" role="UCETNI"/><access user="a" action="delete">c</access>`);
    expect(doc.operations).toEqual([
      { kind: 'access', action: 'create-update', username: 'a', company: 'c', role: 'ADMIN' },
      { kind: 'access', action: 'create-update', username: 'a', company: 'c' },
      { kind: 'access', action: 'create-update', username: 'a', role: 'UCETNI' },
      { kind: 'access', action: 'delete', username: 'a', company: 'c' },
    ]);
  });

  test('when an access has no user attribute, then it applies to the nearest <user> above it', () => {
    const doc = batch(`<user><username>anna</username></user><company><id>c</id></company><access>c</access>
      <user><username>petr</username></user><access role="UCETNI">c</access><access user="eva">c</access><access>d</access>`);
    expect((doc.operations.filter((op) => op.kind === 'access') as AccessOperation[]).map((op) => op.username)).toEqual([
      'anna',
      'petr',
      'eva',
      'petr',
    ]);
  });

  test('when an access comes before any <user>, then it names no user', () => {
    expect(access('<access role="ADMIN">c</access>').username).toBeUndefined();
  });

  test('when the nearest <user> above has no username, then the access names no user rather than an earlier one', () => {
    const doc = batch('<user><username>anna</username></user><user><email>x@y.cz</email></user><access>c</access>');
    expect((doc.operations[2] as AccessOperation).username).toBeUndefined();
  });

  test('when the nearest <user> above is invalid but has a username, then the access applies to that username', () => {
    const doc = batch('<user><username>anna</username><phone>1</phone></user><access>c</access>');
    expect((doc.operations[1] as AccessOperation).username).toBe('anna');
  });
});

describe('parseBatch: entities and text', () => {
  test('when text contains character references and the predefined entities, then they are decoded', () => {
    const op = user('<username>a</username><familyName>&#xC4;ltere</familyName><givenName>&#196;nna &amp; &lt;Co&gt; &quot;x&quot; &apos;y&apos;</givenName>');
    expect(op.fields.familyName).toBe('Ältere');
    expect(op.fields.givenName).toBe('Änna & <Co> "x" \'y\'');
  });

  test('when an attribute contains character references, then they are decoded', () => {
    expect(user('<username>a</username><blocked message="&#x160;patn&#233; heslo &amp; dost">true</blocked>').fields.blocked).toEqual({
      value: true,
      message: 'Špatné heslo & dost',
    });
  });

  test('when text is in a CDATA section, then it is taken literally', () => {
    expect(user('<username>a</username><password><![CDATA[a&b<c]]></password>').fields.password).toEqual({ kind: 'plain', value: 'a&b<c' });
  });

  test('when the seed sample 04 is parsed, then the family name is Ältere', () => {
    const doc = parse(readFileSync(join(SEED_SAMPLES, '04-rename-user.xml'), 'utf8'));
    expect((doc.operations[0] as UserOperation).fields).toEqual({ givenName: 'Anique', familyName: 'Ältere' });
  });
});

describe('parseBatch: the document itself', () => {
  test('when the root carries id, atomic and dry-run, then they are read', () => {
    expect(batch('', ' atomic="true" dry-run="true"')).toEqual({ id: 't-1', atomic: true, dryRun: true, operations: [] });
    expect(batch('')).toEqual({ id: 't-1', atomic: false, dryRun: false, operations: [] });
  });

  test('when the batch has comments between and inside operations, then they are ignored', () => {
    const doc = batch('<!-- a --><company action="create-update"><!-- b --><id>c</id><show>false</show><!-- c --></company>');
    expect(doc.operations).toEqual([{ kind: 'company', action: 'create-update', id: 'c', fields: { show: false } }]);
  });

  test.each([
    ['the root element is not <flexibee-batch>', '<winstrom id="x"/>', 400, 'The root element must be <flexibee-batch>, not <winstrom>.'],
    ['the id is missing', '<flexibee-batch><user><username>a</username></user></flexibee-batch>', 400, 'The batch needs an id: <flexibee-batch id="…">.'],
    ['the id is blank', '<flexibee-batch id="  "/>', 400, 'The batch needs an id: <flexibee-batch id="…">.'],
    ['the id is too long', `<flexibee-batch id="${'x'.repeat(201)}"/>`, 400, 'The batch id must be at most 200 printable characters.'],
    ['the root has an unknown attribute', '<flexibee-batch id="x" mode="fast"/>', 400, "Unknown attribute 'mode' on <flexibee-batch>; expected id, atomic, dry-run."],
    ['atomic is not a boolean', '<flexibee-batch id="x" atomic="yes"/>', 400, "The attribute atomic on <flexibee-batch> must be true or false, not 'yes'."],
    ['the root contains text', '<flexibee-batch id="x">hello</flexibee-batch>', 400, '<flexibee-batch> must contain only operation elements, not text.'],
    ['it has a DOCTYPE', '<?xml version="1.0"?><!DOCTYPE flexibee-batch><flexibee-batch id="x"/>', 400, 'DOCTYPE and entity declarations are not allowed in a batch document.'],
    [
      'it defines an entity',
      '<!DOCTYPE b [<!ENTITY x "y">]><flexibee-batch id="x"><user><username>&x;</username></user></flexibee-batch>',
      400,
      'DOCTYPE and entity declarations are not allowed in a batch document.',
    ],
  ])('when %s, then parsing fails with a request-level error', (_what, body, status, message) => {
    const err = rejected(body);
    expect(err.status).toBe(status);
    expect(err.message).toBe(message);
  });

  test.each([
    ['it is not well-formed', '<flexibee-batch id="x"><user></flexibee-batch>'],
    ['it uses an undefined entity', '<flexibee-batch id="x"><user><username>&nbsp;</username></user></flexibee-batch>'],
    ['it has a bare ampersand', '<flexibee-batch id="x"><user><username>a & b</username></user></flexibee-batch>'],
    ['it references a character XML forbids', '<flexibee-batch id="x"><user><username>&#0;</username></user></flexibee-batch>'],
    ['it has two roots', '<flexibee-batch id="x"/><flexibee-batch id="y"/>'],
    ['it is nested deeper than 32 levels', `<flexibee-batch id="x">${'<a>'.repeat(40)}${'</a>'.repeat(40)}</flexibee-batch>`],
  ])('when %s, then parsing fails with 400 and says the body is not a valid batch document', (_what, body) => {
    const err = rejected(body);
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/^The body is not a valid batch document: .+\.$/);
  });

  test('when the batch has more operations than the limit, then parsing fails with 413 and the limit is named', () => {
    const body = `<flexibee-batch id="x">${'<access user="a">c</access>'.repeat(4)}</flexibee-batch>`;
    expect(parse(body, 4).operations).toHaveLength(4);
    const err = rejected(body, 3);
    expect(err.status).toBe(413);
    expect(err.code).toBe('payload-too-large');
    expect(err.message).toBe('The batch has 4 operations; the limit is 3. Split it into smaller batches.');
  });
});

describe('parseBatch: <licenseGroup> (SPEC §7.1, §7.3)', () => {
  test('when a group gives every field, then each is read, parameter values in their stored form', () => {
    const op = licenseGroup(
      `<id>partner_a</id><name>Partner A s.r.o.</name><parent>root</parent><seats>25</seats>
       <param name="defaultRole">LAGERHALTER</param><param name="passwordHash">pbkdf2</param><param name="country">sk</param><param name="taskUser">anna.mlada</param>`,
      ' action="create-update"',
    );
    expect(op).toEqual({
      kind: 'licenseGroup',
      action: 'create-update',
      id: 'partner_a',
      fields: { name: 'Partner A s.r.o.', parent: 'root', seats: 25, params: { defaultRole: 'SKLADNIK', passwordHash: 'pbkdf2', country: 'SK', taskUser: 'anna.mlada' } },
    });
  });

  test('when <seats/> or <param name="X"/> is empty, then it is read as removing the limit or the value (null); fields not given stay absent', () => {
    const op = licenseGroup('<id>g</id><seats/><param name="country"/><param name="taskUser"></param>');
    expect(op.invalid).toBeUndefined();
    expect(op.fields).toEqual({ seats: null, params: { country: null, taskUser: null } });
    expect(licenseGroup('<id>g</id>').fields).toEqual({});
  });

  test('when a group is deleted, then only its id is needed', () => {
    expect(licenseGroup('<id>g</id>', ' action="delete"')).toEqual({ kind: 'licenseGroup', action: 'delete', id: 'g', fields: {} });
  });

  test.each([
    ['an unknown parameter', '<id>g</id><param name="colour">red</param>', "unknown parameter 'colour'; expected defaultRole, passwordHash, country, taskUser"],
    ['a parameter without a name', '<id>g</id><param>red</param>', 'a <param> needs a name attribute, such as <param name="defaultRole">UCETNI</param>'],
    ['a parameter named twice', '<id>g</id><param name="country">CZ</param><param name="country">SK</param>', 'the parameter country is given twice'],
    ['an unknown defaultRole', '<id>g</id><param name="defaultRole">BOSS</param>', `parameter defaultRole must be a role code, one of ${ROLE_CODES.join(', ')}; not 'BOSS'`],
    ['an unknown passwordHash', '<id>g</id><param name="passwordHash">bcrypt</param>', "parameter passwordHash must be one of sha256, sha512, sha1, md5, pbkdf2; not 'bcrypt'"],
    ['an unknown country', '<id>g</id><param name="country">DE</param>', "parameter country must be one of CZ, SK; not 'DE'"],
    ['a taskUser that is no username', '<id>g</id><param name="taskUser">anna mlada</param>', "parameter taskUser must be a username, not 'anna mlada'"],
    ['negative seats', '<id>g</id><seats>-1</seats>', "<seats> must be a whole number from 0 to 100000000, or empty to remove the limit; not '-1'"],
    ['fractional seats', '<id>g</id><seats>1.5</seats>', "<seats> must be a whole number from 0 to 100000000, or empty to remove the limit; not '1.5'"],
    ['seats over the bound', '<id>g</id><seats>100000001</seats>', "<seats> must be a whole number from 0 to 100000000, or empty to remove the limit; not '100000001'"],
    ['an id of the wrong form', '<id>Partner-A</id><name>x</name>', "license group id 'Partner-A' is not valid: license group ids are 1–64 characters of a–z, 0–9 and _"],
    ['a parent of the wrong form', '<id>g</id><parent>Root!</parent>', "parent 'Root!' is not valid: license group ids are 1–64 characters of a–z, 0–9 and _"],
    ['no id', '<name>x</name>', 'a <licenseGroup> needs an <id>'],
    ['an empty name', '<id>g</id><name></name>', '<name> must not be empty'],
    ['an unknown element', '<id>g</id><colour>red</colour>', 'unknown element <colour> in <licenseGroup>; expected <id>, <name>, <parent>, <seats>, <param>'],
    ['a field given twice', '<id>g</id><seats>1</seats><seats>2</seats>', '<seats> is given twice in <licenseGroup>'],
    ['text instead of elements', 'partner_a', "<licenseGroup> must contain elements, not the text 'partner_a'"],
  ])('when a group has %s, then the operation is invalid and the message says what is expected', (_what, inner, message) => {
    expect(licenseGroup(inner).invalid).toBe(message);
  });

  test('when an invalid group has a valid id, then the operation still names it', () => {
    expect(licenseGroup('<id>g7</id><param name="colour">red</param>').id).toBe('g7');
  });

  test('when a user or a company names its <licenseGroup>, then the group id is read, and one of the wrong form is invalid', () => {
    expect(user('<username>a</username><licenseGroup>cust_a1</licenseGroup>').fields).toEqual({ licenseGroup: 'cust_a1' });
    expect(company('<id>c</id><licenseGroup>cust_a1</licenseGroup>').fields).toEqual({ licenseGroup: 'cust_a1' });
    expect(user('<username>a</username><licenseGroup>Cust A1</licenseGroup>').invalid).toBe(
      "license group 'Cust A1' is not valid: license group ids are 1–64 characters of a–z, 0–9 and _",
    );
    expect(company('<id>c</id><licenseGroup><id>x</id></licenseGroup>').invalid).toBe('<licenseGroup> must contain text, not the element <id>');
  });
});
