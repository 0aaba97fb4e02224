/**
 * SPEC §7.5 over HTTPS: a login may name a tenant (a group of the user's scope) in JSON, a form
 * or XML; the session then works in that subtree for reading and for /v2/admin/batch; the tenant
 * chosen last is where the next login without one starts, while it is still in the user's scope;
 * a tenant outside the scope is 403, but only to one who gave the right password.
 */
import { expectRefused, loginJson, withSession } from '../support/auth';
import { entries, startTestServer, type RequestOptions, type Response, type TestServer } from '../support/server';
import { queryRows, sessionRows } from '../support/stores';
import { batchDoc, companyOp, deleteGroupOp, envelopeMessage, groupOp, listed, userOp } from '../support/tenants';

const ADMIN = 'pa.admin';
const ADMIN_PASSWORD = 'the partner admin password';
const BLOCK_MESSAGE = 'Your contract has ended';
const ADMIN_PERMISSIONS =
  '<permissions><manageAll>true</manageAll><licenseManagement>true</licenseManagement><createUser>true</createUser><createCompany>true</createCompany><grantPermission>true</grantPermission></permissions>';

const SEED = batchDoc(
  'tenants-seed',
  groupOp('pa', { name: 'Partner A' }),
  groupOp('pa_c1', { name: 'Customer 1 of A', parent: 'pa' }),
  groupOp('pa_c2', { name: 'Customer 2 of A', parent: 'pa' }),
  groupOp('pb', { name: 'Partner B' }),
  `<user><username>${ADMIN}</username><password>${ADMIN_PASSWORD}</password>${ADMIN_PERMISSIONS}<licenseGroup>pa</licenseGroup></user>`,
  `<user><username>pa.blocked</username><password>blocked password</password><blocked message="${BLOCK_MESSAGE}">true</blocked><licenseGroup>pa</licenseGroup></user>`,
  userOp('c1.user', { licenseGroup: 'pa_c1', password: 'customer one password' }),
  userOp('c2.user', { licenseGroup: 'pa_c2' }),
  userOp('pb.user', { licenseGroup: 'pb', password: 'partner b password' }),
  companyOp('c1', { name: 'Firma 1', adminUser: ADMIN, licenseGroup: 'pa_c1' }),
  companyOp('c2', { name: 'Firma 2', adminUser: 'c2.user', licenseGroup: 'pa_c2' }),
  companyOp('cb', { name: 'Firma B', adminUser: 'pb.user', licenseGroup: 'pb' }),
);

interface LoginAnswer {
  success: boolean;
  authSessionId: string;
  tenant: string;
  tenants: string[];
}

describe('sessions in a tenant (SPEC §7.5)', () => {
  let server: TestServer;
  const send = (id: string, ...ops: string[]): Promise<Response> => server.batch(batchDoc(id, ...ops));
  const login = (username: string, password: string, tenant?: string): Promise<Response> =>
    server.request('POST', '/login-logout/login', {
      client: null,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(tenant === undefined ? { username, password } : { username, password, tenant }),
    });
  const loggedIn = async (username: string, password: string, tenant?: string): Promise<LoginAnswer> => {
    const res = await login(username, password, tenant);
    if (res.status !== 200) throw new Error(`login of ${username} answered ${res.status}: ${res.body}`);
    return JSON.parse(res.body) as LoginAnswer;
  };
  const withId = (id: string, options: RequestOptions = {}): RequestOptions => ({ client: null, ...options, headers: { ...withSession(id), ...options.headers } });

  beforeAll(async () => {
    server = await startTestServer();
    const seeded = await server.batch(SEED);
    expect(entries(seeded.body).filter((e) => e.status !== 'CREATED')).toEqual([]);
  });
  afterAll(() => server.close());

  test('when a user logs in with a tenant as JSON, as a form or as XML, then the answer names the session\'s tenant and the ids of the user\'s tenants', async () => {
    const tenants = listed<{ id: string }>(await server.request('GET', `/u/${ADMIN}/tenants.json`), 'tenant').map((t) => t.id);
    expect(tenants).toEqual(['pa', 'pa_c1']);

    expect(await loggedIn(ADMIN, ADMIN_PASSWORD, 'pa_c1')).toEqual({ success: true, authSessionId: expect.stringMatching(/^[A-Za-z0-9_-]{32,}$/), tenant: 'pa_c1', tenants });

    const form = await server.request('POST', '/login-logout/login', {
      client: null,
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: ADMIN, password: ADMIN_PASSWORD, tenant: 'pa_c2' }).toString(),
    });
    expect(JSON.parse(form.body)).toEqual({ success: true, authSessionId: expect.any(String), tenant: 'pa_c2', tenants });

    const xml = await server.request('POST', '/login-logout/login', {
      client: null,
      headers: { 'Content-Type': 'application/xml' },
      body: `<login><username>${ADMIN}</username><password>${ADMIN_PASSWORD}</password><tenant>pa</tenant></login>`,
    });
    expect(xml.status).toBe(200);
    expect(xml.body).toMatch(
      /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<winstrom version="1\.0"><success>true<\/success><authSessionId>[A-Za-z0-9_-]{32,}<\/authSessionId><tenant>pa<\/tenant><tenants><tenant>pa<\/tenant><tenant>pa_c1<\/tenant><\/tenants><\/winstrom>\n$/,
    );
  });

  test('when a session works in a tenant, then it reads only that subtree, and /v2/admin/batch creates in it and reaches nothing outside it', async () => {
    const { authSessionId: id } = await loggedIn(ADMIN, ADMIN_PASSWORD, 'pa_c1');
    const read = async (path: string, key: string, field: string): Promise<unknown[]> => listed(await server.request('GET', path, withId(id)), key).map((r) => r[field]);
    expect(await read('/u.json', 'user', 'username')).toEqual(['c1.user']);
    expect(await read('/c.json', 'company', 'dbNazev')).toEqual(['c1']);
    expect(await read('/g.json', 'group', 'id')).toEqual(['pa_c1']);
    for (const path of ['/u/c2.user.json', '/g/pa.json', '/u/pb.user/tenants.json']) expect((await server.request('GET', path, withId(id))).status).toBe(404);

    const res = await server.request('PUT', '/v2/admin/batch', {
      ...withId(id),
      body: batchDoc(
        'tenant-session-batch',
        userOp('c1.new'),
        userOp('c1.elsewhere', { licenseGroup: 'pa_c2' }),
        '<access user="c1.new" role="UCETNI">c1</access>',
        '<access user="c1.new" role="UCETNI">c2</access>',
        userOp('c2.user', { email: 'c2@example.com' }),
        groupOp('pa_c1_team', { name: 'Team in customer 1' }),
      ),
    });
    expect(res.status).toBe(200);
    expect(entries(res.body).map((e) => [e.id, e.status, e.message])).toEqual([
      ['c1.new', 'CREATED', undefined],
      ['c1.elsewhere', 'FAILED', "license group 'pa_c2' does not exist"],
      ['c1.new@c1', 'CREATED', undefined],
      ['c1.new@c2', 'FAILED', "company 'c2' does not exist"],
      ['c2.user', 'FAILED', 'username c2.user is not available'],
      ['pa_c1_team', 'CREATED', undefined],
    ]);
    expect(queryRows(server.db, "SELECT key, license_group FROM users WHERE key = 'c1.new'")).toEqual([{ key: 'c1.new', license_group: 'pa_c1' }]);
    expect(queryRows(server.db, "SELECT parent_id FROM license_groups WHERE id = 'pa_c1_team'")).toEqual([{ parent_id: 'pa_c1' }]);
    expect(queryRows(server.db, "SELECT scope, acting_user_key FROM batch_journal WHERE batch_id = 'tenant-session-batch'")).toEqual([{ scope: 'pa_c1', acting_user_key: ADMIN }]);
    expect((await server.request('GET', '/admin/batch/tenant-session-batch', withId(id))).body).toBe(res.body);
    // The same user working in its own group sees and reaches the whole of it.
    const own = await loggedIn(ADMIN, ADMIN_PASSWORD, 'pa');
    expect(listed(await server.request('GET', '/u.json', withId(own.authSessionId)), 'user').map((u) => u.username)).toEqual(['c1.new', 'c1.user', 'c2.user', ADMIN, 'pa.blocked']);
  });

  test('when a user logs in without a tenant, then the session starts in the tenant it chose last, which only a login naming one changes', async () => {
    expect((await loggedIn(ADMIN, ADMIN_PASSWORD, 'pa_c1')).tenant).toBe('pa_c1');
    expect((await loggedIn(ADMIN, ADMIN_PASSWORD)).tenant).toBe('pa_c1');
    expect((await loggedIn(ADMIN, ADMIN_PASSWORD)).tenant).toBe('pa_c1');
    expect((await loggedIn(ADMIN, ADMIN_PASSWORD, 'pa')).tenant).toBe('pa');
    expect((await loggedIn(ADMIN, ADMIN_PASSWORD)).tenant).toBe('pa');
    expect((await loggedIn(ADMIN, ADMIN_PASSWORD, 'pa_c1')).tenant).toBe('pa_c1');
    // Each user has its own.
    expect((await loggedIn('c1.user', 'customer one password')).tenant).toBe('pa_c1');
    expect((await loggedIn('pb.user', 'partner b password')).tenant).toBe('pb');
    expect((await loggedIn(ADMIN, ADMIN_PASSWORD)).tenant).toBe('pa_c1');
  });

  test('when a tenant is outside the user\'s scope, then a login with the right password is 403 and makes no session; with a wrong password it is the 401 of every failed login, whatever the tenant', async () => {
    await loggedIn(ADMIN, ADMIN_PASSWORD, 'pa_c1');
    const sessions = sessionRows(server.db).length;
    for (const tenant of ['pb', 'root', 'nowhere']) {
      const res = await login(ADMIN, ADMIN_PASSWORD, tenant);
      expect([res.status, envelopeMessage(res)]).toEqual([403, `Cannot log in to tenant ${tenant}: no such license group in your scope.`]);
    }
    expect(sessionRows(server.db)).toHaveLength(sessions);
    // The refused tenant is not remembered.
    expect((await loggedIn(ADMIN, ADMIN_PASSWORD)).tenant).toBe('pa_c1');

    const plainWrong = await loginJson(server, ADMIN, 'not the password');
    expectRefused(plainWrong);
    for (const [username, tenant] of [
      [ADMIN, 'pb'],
      [ADMIN, 'pa_c1'],
      [ADMIN, 'nowhere'],
      ['no.such.user', 'pa'],
    ]) {
      const res = await login(username, 'not the password', tenant);
      expectRefused(res);
      expect(res.body).toBe(plainWrong.body);
    }
    // A blocked user learns of its block (only with its password), not of the tenant.
    const blocked = await login('pa.blocked', 'blocked password', 'pb');
    expectRefused(blocked, `User pa.blocked is blocked: ${BLOCK_MESSAGE}`);
    // A tenant that is not even a group id is refused for its form alone, before any password is checked.
    const malformed = await login(ADMIN, 'not the password', 'Not A Group!');
    expect([malformed.status, envelopeMessage(malformed)]).toEqual([400, 'The tenant of a login must be a license group id: 1–64 characters of a–z, 0–9 and _.']);
  });

  test('when the user is moved so that its last tenant is out of its scope, then the next login without a tenant starts in its own group and the choice is forgotten; a live session in that tenant ends', async () => {
    const { authSessionId: live } = await loggedIn(ADMIN, ADMIN_PASSWORD, 'pa_c1');
    expect((await server.request('GET', '/u.json', withId(live))).status).toBe(200);
    expect(entries((await send('tenants-move-away', userOp(ADMIN, { licenseGroup: 'pb' }))).body).map((e) => e.status)).toEqual(['UPDATED']);

    // The session chose pa_c1, which pb's user may no longer work in: it is over, not moved elsewhere.
    expectRefused(await server.request('GET', '/u.json', withId(live)));
    const away = await loggedIn(ADMIN, ADMIN_PASSWORD);
    // Its grant in pa_c1 stays, but pa_c1 is no tenant of a user of pb.
    expect(away).toMatchObject({ tenant: 'pb', tenants: ['pb'] });
    expect(listed(await server.request('GET', '/u.json', withId(away.authSessionId)), 'user').map((u) => u.username)).toEqual([ADMIN, 'pb.user']);

    expect(entries((await send('tenants-move-back', userOp(ADMIN, { licenseGroup: 'pa' }))).body).map((e) => e.status)).toEqual(['UPDATED']);
    expect((await loggedIn(ADMIN, ADMIN_PASSWORD)).tenant).toBe('pa');
  });

  test('when the tenant of a session is deleted, then the session ends and the next login starts in the user\'s own group', async () => {
    const { authSessionId: id } = await loggedIn(ADMIN, ADMIN_PASSWORD, 'pa_c2');
    expect(listed(await server.request('GET', '/u.json', withId(id)), 'user').map((u) => u.username)).toEqual(['c2.user']);
    const emptied = await send('tenants-delete', '<company action="delete"><id>c2</id></company>', userOp('c2.user', { licenseGroup: 'pa' }), deleteGroupOp('pa_c2'));
    expect(entries(emptied.body).map((e) => e.status)).toEqual(['DELETED', 'UPDATED', 'DELETED']);
    expectRefused(await server.request('GET', '/u.json', withId(id)));
    expect((await loggedIn(ADMIN, ADMIN_PASSWORD)).tenant).toBe('pa');
  });
});
