/**
 * SPEC §5.3 `atomic="true"` and `dry-run="true"`, through the real HTTPS server with the dev
 * client certificate — on their own, together, with failing operations and with impersonation
 * (`X-FlexiBee-Authorization`), where the impersonated user's permissions apply (SPEC §6).
 *
 * Decided where SPEC is silent (and held here):
 * - atomic: the rolled-back batch is still journalled (GET /admin/batch/{id} answers it), since
 *   it was executed and its answer is what the client got; a FAILED entry keeps its own message.
 * - dry-run: the answer is byte for byte the one the real run then gives, except the root's
 *   `dry-run="true"`; nothing is written — no entity row, no password hash, no journal entry
 *   (GET /admin/batch/{id} is 404 if the id never really ran, else still the last real run).
 * - dry-run and atomic together: the answer is the atomic outcome (with a failure: the failures,
 *   every other entry SKIPPED "rolled back"; without: the entries as applied), and nothing is kept
 *   either way — a client can preview exactly what the atomic batch would answer.
 * - dry-run with impersonation: the permissions of the impersonated user apply exactly as in the
 *   real run; an unknown, deleted or blocked user is 403, as for a real run.
 */
import { dumpStore, journalRows } from '../support/stores';
import { loginJson, sessionFor, withSession } from '../support/auth';
import { entries, startTestServer, type RequestOptions, type Response, type TestServer } from '../support/server';

const AS = 'X-FlexiBee-Authorization';

const SEED = `<?xml version="1.0"?>
<flexibee-batch id="atomic-seed">
  <user>
    <username>tereza.admin</username>
    <password>tereza admin password</password>
    <permissions><manageAll>true</manageAll><createCompany>true</createCompany><createUser>true</createUser>
      <grantPermission>true</grantPermission><licenseManagement>true</licenseManagement></permissions>
  </user>
  <user><username>limited</username><permissions><createUser>true</createUser></permissions></user>
  <user><username>jan.ucetni</username><password>jan old password</password><email>jan@firma.cz</email></user>
  <company><id>moje_firma_s_r_o_</id><name>Moje Firma s.r.o.</name><adminUser>tereza.admin</adminUser></company>
  <access user="jan.ucetni" role="UCETNI">moje_firma_s_r_o_</access>
</flexibee-batch>
`;

let server: TestServer;
let n = 0;

beforeAll(async () => {
  server = await startTestServer();
  const res = await server.batch(SEED);
  expect(entries(res.body).every((e) => e.status === 'CREATED')).toBe(true);
});

afterAll(async () => {
  await server?.close();
});

/** A fresh batch id per send, unless one is given. */
const nextId = (prefix: string): string => `${prefix}-${++n}`;

function batch(id: string, ops: string, root = ''): string {
  return `<?xml version="1.0"?>\n<flexibee-batch id="${id}"${root}>\n${ops}\n</flexibee-batch>\n`;
}

function send(xml: string, actingUser?: string, options: RequestOptions = {}): Promise<Response> {
  return server.batch(xml, { ...options, headers: { ...options.headers, ...(actingUser ? { [AS]: actingUser } : {}) } });
}

const outcomes = (res: Response): Array<[string, string, string?]> =>
  entries(res.body).map((e) => (e.message === undefined ? [e.status, e.id] : [e.status, e.id, e.message]));

const dump = (): Record<string, unknown[]> => dumpStore(server.db);
const journalCount = (): number => journalRows(server.db).length;
const lastJournal = (): ReturnType<typeof journalRows>[number] => journalRows(server.db).at(-1) as ReturnType<typeof journalRows>[number];
const journalled = (id: string): Promise<Response> => server.request('GET', `/admin/batch/${encodeURIComponent(id)}`);

/** The answer of a real run, as the dry run must give it: the same document without the root attribute. */
const asDryRun = (real: string): string => real.replace(/^(<flexibee-batch-result id="[^"]*")>/m, '$1 dry-run="true">');

// ── atomic="true" ───────────────────────────────────────────────────────────────────────

describe('atomic="true" (SPEC §5.3)', () => {
  test('when an atomic batch has no failure, then it is applied as usual, journalled, and a re-send is all SKIPPED', async () => {
    const ops = `<user><username>atomic.ok</username><email>ok@firma.cz</email></user>
      <company><id>atomic_ok</id><name>Atomic OK s.r.o.</name><adminUser>atomic.ok</adminUser></company>
      <access user="jan.ucetni" role="SKLADNIK">atomic_ok</access>`;
    const id = nextId('atomic-ok');
    const res = await send(batch(id, ops, ' atomic="true"'));
    expect(res.status).toBe(200);
    expect(outcomes(res)).toEqual([
      ['CREATED', 'atomic.ok'],
      ['CREATED', 'atomic_ok'],
      ['CREATED', 'jan.ucetni@atomic_ok'],
    ]);
    expect(res.body).toContain('<stats created="3" updated="0" deleted="0" skipped="0" failed="0"/>');
    expect((await server.request('GET', '/u/atomic.ok.json')).status).toBe(200);
    expect((await journalled(id)).body).toBe(res.body);
    const settled = dump();
    const again = await send(batch(id, ops, ' atomic="true"'));
    expect(outcomes(again).map(([status]) => status)).toEqual(['SKIPPED', 'SKIPPED', 'SKIPPED']);
    expect(dump()).toEqual(settled);
  });

  test('when an atomic batch has failures, then they are shown with their messages, every other entry is SKIPPED "rolled back", the store is unchanged and the batch is journalled', async () => {
    const before = dump();
    const journal = journalCount();
    const id = nextId('atomic-fail');
    const res = await send(
      batch(
        id,
        `<user><username>atomic.new</username><password>brand new password</password></user>
        <user><username>jan.ucetni</username><email>jan.new@firma.cz</email><password>jan new password</password></user>
        <company><id>atomic_new</id><name>Atomic New s.r.o.</name><adminUser>atomic.new</adminUser></company>
        <access user="ghost" role="UCETNI">moje_firma_s_r_o_</access>
        <access user="atomic.new" role="ADMIN">atomic_new</access>
        <company action="delete"><id>moje_firma_s_r_o_</id></company>
        <user><username>jan.ucetni</username></user>
        <phone>123</phone>`,
        ' atomic="true"',
      ),
    );
    expect(res.status).toBe(200);
    const rolledBack = (id_: string): [string, string, string] => ['SKIPPED', id_, 'rolled back'];
    expect(outcomes(res)).toEqual([
      rolledBack('atomic.new'),
      rolledBack('jan.ucetni'),
      rolledBack('atomic_new'),
      ['FAILED', 'ghost@moje_firma_s_r_o_', "user 'ghost' does not exist"],
      rolledBack('atomic.new@atomic_new'),
      rolledBack('moje_firma_s_r_o_'),
      // Nothing to do anyway: still reported as rolled back, like every entry that did not fail.
      rolledBack('jan.ucetni'),
      ['FAILED', 'phone', expect.stringContaining('unknown element <phone>') as unknown as string],
    ]);
    expect(res.body).toContain('<stats created="0" updated="0" deleted="0" skipped="6" failed="2"/>');
    expect(dump()).toEqual(before);
    // Executed, so journalled: the client may fetch the answer it got.
    expect(journalCount()).toBe(journal + 1);
    expect(lastJournal()).toMatchObject({ batch_id: id, impersonated: null, result_xml: res.body });
    expect((await journalled(id)).body).toBe(res.body);
    // jan's password was not changed: the old one still logs in, the new one does not.
    expect((await loginJson(server, 'jan.ucetni', 'jan old password')).status).toBe(200);
    expect((await loginJson(server, 'jan.ucetni', 'jan new password')).status).toBe(401);
  });

  test('when the same batch is sent without atomic, then the operations that did not fail are applied (the contrast)', async () => {
    const ops = `<user><username>not.atomic</username></user><access user="ghost">moje_firma_s_r_o_</access>`;
    const atomic = await send(batch(nextId('contrast'), ops, ' atomic="true"'));
    expect(outcomes(atomic)).toEqual([
      ['SKIPPED', 'not.atomic', 'rolled back'],
      ['FAILED', 'ghost@moje_firma_s_r_o_', "user 'ghost' does not exist"],
    ]);
    expect((await server.request('GET', '/u/not.atomic.json')).status).toBe(404);
    const plain = await send(batch(nextId('contrast'), ops));
    expect(outcomes(plain)).toEqual([
      ['CREATED', 'not.atomic'],
      ['FAILED', 'ghost@moje_firma_s_r_o_', "user 'ghost' does not exist"],
    ]);
    expect((await server.request('GET', '/u/not.atomic.json')).status).toBe(200);
  });

  test('when an atomic batch acts as a user and one operation is denied by that user\'s permissions, then the whole batch is rolled back and the journal names the impersonated user', async () => {
    const before = dump();
    const id = nextId('atomic-as-limited');
    // limited has createUser only: the user is allowed, the company is not.
    const res = await send(
      batch(
        id,
        `<user><username>made.by.limited</username><email>m@firma.cz</email></user>
        <company><id>limited_s_r_o_</id><name>Limited s.r.o.</name><adminUser>made.by.limited</adminUser></company>`,
        ' atomic="true"',
      ),
      'limited',
    );
    expect(res.status).toBe(200);
    expect(outcomes(res)).toEqual([
      ['SKIPPED', 'made.by.limited', 'rolled back'],
      ['FAILED', 'limited_s_r_o_', 'permission denied: createCompany required'],
    ]);
    expect(dump()).toEqual(before);
    expect(lastJournal()).toMatchObject({ batch_id: id, impersonated: 'limited', result_xml: res.body });
    expect(lastJournal().principal).toMatch(/as limited$/);
  });

  test('when an atomic batch acts as a user whose permissions allow every operation, then it is applied', async () => {
    const res = await send(
      batch(nextId('atomic-as-tereza'), `<user><username>made.by.tereza</username></user><access user="made.by.tereza" role="UCETNI">moje_firma_s_r_o_</access>`, ' atomic="true"'),
      'tereza.admin',
    );
    expect(outcomes(res)).toEqual([
      ['CREATED', 'made.by.tereza'],
      ['CREATED', 'made.by.tereza@moje_firma_s_r_o_'],
    ]);
    expect(lastJournal()).toMatchObject({ impersonated: 'tereza.admin' });
  });

  test('when an atomic batch acts as a user that takes away its own right half-way, then the later denied operation rolls back the earlier ones too', async () => {
    await send(batch(nextId('prepare'), `<user><username>self.limiting</username><permissions><createUser>true</createUser><grantPermission>true</grantPermission></permissions></user>`));
    const before = dump();
    const res = await send(
      batch(
        nextId('atomic-self-limiting'),
        `<user><username>self.limiting</username><permissions><createUser>false</createUser></permissions></user>
        <user><username>too.late</username></user>`,
        ' atomic="true"',
      ),
      'self.limiting',
    );
    expect(outcomes(res)).toEqual([
      ['SKIPPED', 'self.limiting', 'rolled back'],
      ['FAILED', 'too.late', 'permission denied: createUser required'],
    ]);
    expect(dump()).toEqual(before);
  });
});

// ── dry-run="true" ──────────────────────────────────────────────────────────────────────

describe('dry-run="true" (SPEC §5.3)', () => {
  /** Sends the batch as a dry run, checks nothing changed, then really: the answers must match. */
  async function dryThenReal(id: string, ops: string, root = '', actingUser?: string): Promise<{ dry: Response; real: Response }> {
    const before = dump();
    const journal = journalCount();
    const dry = await send(batch(id, ops, `${root} dry-run="true"`), actingUser);
    expect(dry.status).toBe(200);
    expect(dry.body).toMatch(new RegExp(`<flexibee-batch-result id="${id}" dry-run="true">`));
    expect(dump()).toEqual(before);
    expect(journalCount()).toBe(journal);
    const real = await send(batch(id, ops, root), actingUser);
    expect(real.status).toBe(200);
    expect(real.body).not.toContain('dry-run');
    expect(dry.body).toBe(asDryRun(real.body));
    return { dry, real };
  }

  test('when a batch is sent as a dry run, then the answer is exactly what the real run then gives, the store is unchanged and nothing is journalled', async () => {
    const id = nextId('dry');
    const ops = `<user><username>dry.user</username><givenName>Dry</givenName><permissions><createUser>true</createUser></permissions></user>
      <user><username>jan.ucetni</username><familyName>Účetní</familyName></user>
      <company><name>Dry Run s.r.o.</name><adminUser>dry.user</adminUser></company>
      <access user="jan.ucetni">dry_run_s_r_o_</access>
      <access user="jan.ucetni" role="UCETNI">moje_firma_s_r_o_</access>
      <access user="ghost">moje_firma_s_r_o_</access>
      <company action="delete"><id>never_existed</id></company>`;
    const before = dump();
    const dry = await send(batch(id, ops, ' dry-run="true"'));
    expect(outcomes(dry)).toEqual([
      ['CREATED', 'dry.user'],
      ['UPDATED', 'jan.ucetni'],
      ['CREATED', 'dry_run_s_r_o_'],
      ['CREATED', 'jan.ucetni@dry_run_s_r_o_'],
      ['SKIPPED', 'jan.ucetni@moje_firma_s_r_o_'],
      ['FAILED', 'ghost@moje_firma_s_r_o_', "user 'ghost' does not exist"],
      ['SKIPPED', 'never_existed', 'company does not exist'],
    ]);
    expect(dump()).toEqual(before);
    expect((await journalled(id)).status).toBe(404);
    expect((await server.request('GET', '/u/dry.user.json')).status).toBe(404);

    const real = await send(batch(id, ops));
    expect(dry.body).toBe(asDryRun(real.body));
    expect((await journalled(id)).body).toBe(real.body);
    expect((await server.request('GET', '/u/dry.user.json')).status).toBe(200);
  });

  test('when a batch that really ran is sent again as a dry run, then the journal still answers the real run', async () => {
    const id = nextId('dry-after-real');
    const real = await send(batch(id, '<user><username>really.ran</username></user>'));
    const journal = journalCount();
    const dry = await send(batch(id, '<user><username>really.ran</username><email>changed@firma.cz</email></user>', ' dry-run="true"'));
    expect(outcomes(dry)).toEqual([['UPDATED', 'really.ran']]);
    expect(journalCount()).toBe(journal);
    expect((await journalled(id)).body).toBe(real.body);
  });

  test('when dry-run is "false", then it is an ordinary run: applied, journalled, and the answer has no dry-run attribute', async () => {
    const id = nextId('dry-false');
    const res = await send(batch(id, '<user><username>dry.false</username></user>', ' dry-run="false"'));
    expect(res.body).toMatch(new RegExp(`<flexibee-batch-result id="${id}">`));
    expect(outcomes(res)).toEqual([['CREATED', 'dry.false']]);
    expect((await journalled(id)).body).toBe(res.body);
  });

  test('when a dry run acts as a user, then that user\'s permissions decide the answer exactly as in the real run', async () => {
    const { dry } = await dryThenReal(
      nextId('dry-as-limited'),
      `<user><username>dry.by.limited</username></user>
      <company><id>dry_limited</id><name>Dry Limited s.r.o.</name><adminUser>dry.by.limited</adminUser></company>
      <user><username>jan.ucetni</username><password>limited sets this</password></user>
      <access user="jan.ucetni" role="ADMIN">moje_firma_s_r_o_</access>`,
      '',
      'limited',
    );
    expect(outcomes(dry)).toEqual([
      ['CREATED', 'dry.by.limited'],
      ['FAILED', 'dry_limited', 'permission denied: createCompany required'],
      ['FAILED', 'jan.ucetni', 'permission denied: changePassword required'],
      ['FAILED', 'jan.ucetni@moje_firma_s_r_o_', 'permission denied: grantPermission required'],
    ]);
  });

  test('when a dry run names a blocked, deleted or unknown user to act as, then it is refused with 403 as a real run would be', async () => {
    await send(batch(nextId('prepare'), `<user><username>dry.blocked</username><blocked>true</blocked></user>
      <user><username>dry.deleted</username></user><user action="delete"><username>dry.deleted</username></user>`));
    const before = dump();
    for (const actor of ['dry.blocked', 'dry.deleted', 'nobody.at.all']) {
      const res = await send(batch(nextId('dry-refused'), '<user><username>x.y</username></user>', ' dry-run="true"'), actor);
      expect(res.status).toBe(403);
    }
    expect(dump()).toEqual(before);
  });

  test('when a batch is both a dry run and atomic and has a failure, then the answer is the atomic outcome and nothing is kept or journalled', async () => {
    const id = nextId('dry-atomic');
    const { dry } = await dryThenReal(
      id,
      `<user><username>dry.atomic</username></user>
      <company><id>dry_atomic</id><name>Dry Atomic s.r.o.</name><adminUser>dry.atomic</adminUser></company>
      <access user="dry.atomic" role="NOSUCHROLE">dry_atomic</access>`,
      ' atomic="true"',
    );
    expect(outcomes(dry)).toEqual([
      ['SKIPPED', 'dry.atomic', 'rolled back'],
      ['SKIPPED', 'dry_atomic', 'rolled back'],
      ['FAILED', 'dry.atomic@dry_atomic', expect.stringContaining('NOSUCHROLE') as unknown as string],
    ]);
    // The real atomic run was rolled back as well, but journalled.
    expect((await server.request('GET', '/u/dry.atomic.json')).status).toBe(404);
    expect((await journalled(id)).status).toBe(200);
  });

  test('when a batch is both a dry run and atomic without a failure, then the answer shows the entries as applied and nothing is kept', async () => {
    const { dry } = await dryThenReal(
      nextId('dry-atomic-ok'),
      `<user><username>dry.atomic.ok</username></user><access user="dry.atomic.ok" role="UCETNI">moje_firma_s_r_o_</access>`,
      ' atomic="true"',
      'tereza.admin',
    );
    expect(outcomes(dry)).toEqual([
      ['CREATED', 'dry.atomic.ok'],
      ['CREATED', 'dry.atomic.ok@moje_firma_s_r_o_'],
    ]);
  });

  test('when a dry run is atomic and acts as a user whose permission is missing, then the answer is the rolled-back outcome and nothing is kept', async () => {
    const { dry } = await dryThenReal(
      nextId('dry-atomic-as-limited'),
      `<user><username>dry.atomic.limited</username></user><company action="delete"><id>moje_firma_s_r_o_</id></company>`,
      ' atomic="true"',
      'limited',
    );
    expect(outcomes(dry)).toEqual([
      ['SKIPPED', 'dry.atomic.limited', 'rolled back'],
      ['FAILED', 'moje_firma_s_r_o_', 'permission denied: deleteCompany required'],
    ]);
  });

  test('when a dry run sets plain-text passwords, then no hash reaches the store: a new user is not there and a changed password still logs in with the old one', async () => {
    const before = dump();
    const dry = await send(
      batch(
        nextId('dry-passwords'),
        `<user><username>dry.pw</username><password>a dry password</password></user>
        <user><username>jan.ucetni</username><password>jan dry password</password></user>
        <user><username>tereza.admin</username><password>tereza admin password</password></user>`,
        ' dry-run="true"',
      ),
    );
    expect(outcomes(dry)).toEqual([
      ['CREATED', 'dry.pw'],
      ['UPDATED', 'jan.ucetni'],
      // The same password again is verified, not hashed anew: SKIPPED, as in a real run.
      ['SKIPPED', 'tereza.admin'],
    ]);
    expect(dump()).toEqual(before);
    expect((await loginJson(server, 'dry.pw', 'a dry password')).status).toBe(401);
    expect((await loginJson(server, 'jan.ucetni', 'jan dry password')).status).toBe(401);
    expect((await loginJson(server, 'jan.ucetni', 'jan old password')).status).toBe(200);
  });

  test('when a logged-in user sends a dry run to /v2/admin/batch, then the answer is its real answer and nothing is kept', async () => {
    const session = await sessionFor(server, 'tereza.admin', 'tereza admin password');
    const id = nextId('dry-session');
    const ops = '<user><username>dry.session</username></user><company><id>dry_session</id><name>Dry Session s.r.o.</name><adminUser>dry.session</adminUser></company>';
    const before = dump();
    const dry = await server.request('PUT', '/v2/admin/batch', { client: null, headers: withSession(session), body: batch(id, ops, ' dry-run="true"') });
    expect(dry.status).toBe(200);
    expect(outcomes(dry)).toEqual([
      ['CREATED', 'dry.session'],
      ['CREATED', 'dry_session'],
    ]);
    expect(dump()).toEqual(before);
    expect((await journalled(id)).status).toBe(404);
    const real = await server.request('PUT', '/v2/admin/batch', { client: null, headers: withSession(session), body: batch(id, ops) });
    expect(dry.body).toBe(asDryRun(real.body));
  });
});
