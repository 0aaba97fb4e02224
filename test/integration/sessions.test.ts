import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { XMLValidator } from 'fast-xml-parser';
import { loadConfig } from '../../src/config';
import { dumpStore, sessionRows } from '../support/stores';
import {
  ALGORITHMS,
  basic,
  digestOf,
  expectRefused,
  loginJson,
  preHashedPassword,
  REFUSED,
  SERVER_PASSWORD,
  SERVER_USER,
  sessionFor,
  storedHashMatches,
  withSession,
  writeServerAuth,
  type Algorithm,
} from '../support/auth';
import { entries, startTestServer, statuses, type Response, type TestServer } from '../support/server';

const passwordOf = (algorithm: Algorithm): string => `heslo ${algorithm} Žluťoučký kůň`;
const saltOf = (algorithm: Algorithm): string => `salt-${algorithm}-42`;

const ADMIN_PASSWORD = 'session admin password';
const PLAIN_PASSWORD = 'plain user password';
const BLOCK_MESSAGE = 'Your contract has ended; call the office';

/** Users of every stored hash format, plus the cases a login must refuse. */
const SEED = `<?xml version="1.0"?>
<flexibee-batch id="sessions-seed">
${ALGORITHMS.map((a) => `  <user><username>alg.${a}</username>${preHashedPassword(a, saltOf(a), passwordOf(a), 1000)}</user>`).join('\n')}
  <user><username>no.password</username></user>
  <user><username>blocked.user</username><password>blocked user password</password><blocked message="${BLOCK_MESSAGE}">true</blocked></user>
  <user><username>deleted.user</username><password>deleted user password</password></user>
  <user action="delete"><username>deleted.user</username></user>
  <user><username>xml.user</username><password>salt &amp; pepper &lt;3</password></user>
  <user>
    <username>session.admin</username>
    <password>${ADMIN_PASSWORD}</password>
    <permissions><manageAll>true</manageAll><licenseManagement>true</licenseManagement><createUser>true</createUser></permissions>
  </user>
  <user><username>half.admin</username><password>half admin password</password><permissions><manageAll>true</manageAll></permissions></user>
  <user><username>license.only</username><password>license only password</password><permissions><licenseManagement>true</licenseManagement></permissions></user>
  <user><username>plain.user</username><password>${PLAIN_PASSWORD}</password><permissions><createUser>true</createUser></permissions></user>
</flexibee-batch>
`;

type Json = Record<string, unknown>;
const json = (res: Response): Json => JSON.parse(res.body) as Json;

function expectSession(res: Response): string {
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = json(res);
  // SPEC §7.5: the session's tenant and the user's tenants come with it; these users live in root.
  expect(body).toEqual({ success: true, authSessionId: expect.stringMatching(/^[A-Za-z0-9_-]{32,}$/), tenant: 'root', tenants: ['root'] });
  return body.authSessionId as string;
}

function xmlSession(res: Response): string {
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/xml/);
  expect(XMLValidator.validate(res.body)).toBe(true);
  const m = /^<\?xml version="1.0" encoding="UTF-8"\?>\n<winstrom version="1.0"><success>true<\/success><authSessionId>([A-Za-z0-9_-]{32,})<\/authSessionId><tenant>root<\/tenant><tenants><tenant>root<\/tenant><\/tenants><\/winstrom>\n$/.exec(res.body);
  expect(m).not.toBeNull();
  return (m as RegExpExecArray)[1];
}

function userRow(server: TestServer, username: string): Json {
  const row = (dumpStore(server.db).users as Json[]).find((u) => u.username === username);
  if (!row) throw new Error(`no stored user ${username}`);
  return row;
}

describe('logging in with a stored user password (POST /login-logout/login)', () => {
  let server: TestServer;
  let serverAuthFile: string;

  beforeAll(async () => {
    serverAuthFile = writeServerAuth();
    server = await startTestServer({ serverAuth: serverAuthFile });
    const res = await server.batch(SEED);
    expect(res.status).toBe(200);
    expect(statuses(res.body)).not.toContain('FAILED');
  });
  afterAll(async () => {
    await server.close();
    rmSync(dirname(serverAuthFile), { recursive: true, force: true });
  });

  describe('every stored hash format of SPEC §4.3 verifies', () => {
    test.each(ALGORITHMS)('when a user whose pre-hashed %s password was computed outside the project logs in with JSON, then it gets a session that authenticates requests', async (algorithm) => {
      const id = expectSession(await loginJson(server, `alg.${algorithm}`, passwordOf(algorithm)));
      const me = await server.request('GET', `/u/alg.${algorithm}.json`, { client: null, headers: withSession(id) });
      expect(me.status).toBe(200);
      expect(json(me)).toMatchObject({ winstrom: { user: [{ username: `alg.${algorithm}` }] } });
    });

    test.each(ALGORITHMS)('when a user with a %s password sends a wrong password, then the answer is the common 401', async (algorithm) => {
      expectRefused(await loginJson(server, `alg.${algorithm}`, `${passwordOf(algorithm)}x`));
    });

    test.each(ALGORITHMS)('when the %s digest itself is sent as the password, then the answer is the common 401', async (algorithm) => {
      expectRefused(await loginJson(server, `alg.${algorithm}`, digestOf(algorithm, saltOf(algorithm), passwordOf(algorithm), 1000)));
    });

    test('when the stored forms are read back, then they are exactly ALG:SALT:HEX and pbkdf2:N:SALT:HEX of the given digests', () => {
      for (const algorithm of ALGORITHMS) {
        const hex = digestOf(algorithm, saltOf(algorithm), passwordOf(algorithm), 1000);
        const expected = algorithm === 'pbkdf2' ? `pbkdf2:1000:${saltOf(algorithm)}:${hex}` : `${algorithm}:${saltOf(algorithm)}:${hex}`;
        expect(userRow(server, `alg.${algorithm}`).password_hash).toBe(expected);
      }
    });
  });

  describe('the login body may be JSON, a form or XML', () => {
    test('when the login is a form (application/x-www-form-urlencoded), then it gets a session', async () => {
      const res = await server.request('POST', '/login-logout/login', {
        client: null,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: 'alg.sha512', password: passwordOf('sha512') }).toString(),
      });
      const id = expectSession(res);
      expect((await server.request('GET', '/u.json', { client: null, headers: withSession(id) })).status).toBe(200);
    });

    test('when the login is XML, then the answer is XML with a session id that works', async () => {
      const res = await server.request('POST', '/login-logout/login', {
        client: null,
        headers: { 'Content-Type': 'application/xml' },
        body: '<?xml version="1.0"?>\n<login><username>xml.user</username><password>salt &amp; pepper &lt;3</password></login>',
      });
      const id = xmlSession(res);
      expect((await server.request('GET', '/u.json', { client: null, headers: withSession(id) })).status).toBe(200);
    });

    test('when the login is XML sent as text/xml to the .xml path, then the answer is XML', async () => {
      const res = await server.request('POST', '/login-logout/login.xml', {
        client: null,
        headers: { 'Content-Type': 'text/xml' },
        body: `<login><username>alg.md5</username><password>${passwordOf('md5')}</password></login>`,
      });
      xmlSession(res);
    });

    test('when JSON is sent without a Content-Type (curl -d style), then it is still read as JSON', async () => {
      const res = await server.request('POST', '/login-logout/login', {
        client: null,
        body: JSON.stringify({ username: 'alg.sha1', password: passwordOf('sha1') }),
      });
      expectSession(res);
    });

    test('when the username is given in another case, then the login still succeeds (usernames are case-insensitive)', async () => {
      expectSession(await loginJson(server, 'ALG.SHA256', passwordOf('sha256')));
    });

    test('when the login body is not valid JSON, then the answer is 400', async () => {
      const res = await server.request('POST', '/login-logout/login', { client: null, headers: { 'Content-Type': 'application/json' }, body: '{"username": ' });
      expect(res.status).toBe(400);
    });

    test('when the login has no username, then the answer is 400', async () => {
      const res = await server.request('POST', '/login-logout/login', {
        client: null,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ password: 'something' }),
      });
      expect(res.status).toBe(400);
    });

    test('when the login is sent as text/plain, then the answer is 415', async () => {
      const res = await server.request('POST', '/login-logout/login', { client: null, headers: { 'Content-Type': 'text/plain' }, body: 'alg.sha256 secret' });
      expect(res.status).toBe(415);
    });
  });

  describe('refused logins', () => {
    test('when the username is unknown, then the answer is byte for byte the one for a wrong password', async () => {
      const wrongPassword = await loginJson(server, 'alg.sha256', 'not the password');
      const unknownUser = await loginJson(server, 'nobody.at.all', 'not the password');
      expectRefused(wrongPassword);
      expect(unknownUser.status).toBe(wrongPassword.status);
      expect(unknownUser.headers['www-authenticate']).toBe(wrongPassword.headers['www-authenticate']);
      expect(unknownUser.body).toBe(wrongPassword.body);
    });

    test('when a login is refused, then its body equals the 401 of a request without credentials', async () => {
      const refusedLogin = await loginJson(server, 'nobody.at.all', 'x');
      const anonymous = await server.request('GET', '/u.json', { client: null });
      expect(refusedLogin.body).toBe(anonymous.body);
    });

    test('when a user without a password tries to log in, even with an empty password, then the answer is the common 401', async () => {
      expectRefused(await loginJson(server, 'no.password', ''));
      expectRefused(await loginJson(server, 'no.password', 'anything'));
    });

    test('when a deleted user logs in with its right password, then the answer is the common 401', async () => {
      expectRefused(await loginJson(server, 'deleted.user', 'deleted user password'));
    });

    test('when a blocked user logs in with its right password, then the answer is 401 with its block message', async () => {
      const res = await loginJson(server, 'blocked.user', 'blocked user password');
      expect(res.status).toBe(401);
      expect(json(res)).toEqual({ winstrom: { '@version': '1.0', success: false, message: expect.stringContaining(BLOCK_MESSAGE) } });
    });

    test('when a blocked user logs in with XML, then the 401 is an XML envelope with its block message', async () => {
      const res = await server.request('POST', '/login-logout/login', {
        client: null,
        headers: { 'Content-Type': 'application/xml' },
        body: '<login><username>blocked.user</username><password>blocked user password</password></login>',
      });
      expect(res.status).toBe(401);
      expect(res.headers['content-type']).toMatch(/^application\/xml/);
      expect(res.body).toContain(BLOCK_MESSAGE);
    });

    test('when a blocked user sends a wrong password, then the block message is not revealed', async () => {
      expectRefused(await loginJson(server, 'blocked.user', 'a guess'));
    });

    test('when a user is deleted and then restored, then it cannot log in while deleted and can again once restored', async () => {
      await server.batch('<flexibee-batch id="restore-1"><user><username>comes.back</username><password>comes back password</password></user></flexibee-batch>');
      expectSession(await loginJson(server, 'comes.back', 'comes back password'));
      expect(statuses((await server.batch('<flexibee-batch id="restore-2"><user action="delete"><username>comes.back</username></user></flexibee-batch>')).body)).toEqual(['DELETED']);
      expectRefused(await loginJson(server, 'comes.back', 'comes back password'));
      const restored = await server.batch('<flexibee-batch id="restore-3"><user><username>comes.back</username></user></flexibee-batch>');
      expect(entries(restored.body)).toEqual([expect.objectContaining({ status: 'CREATED', message: 'restored' })]);
      expectSession(await loginJson(server, 'comes.back', 'comes back password'));
    });

    test('when a user is blocked and then unblocked, then it gets the block message while blocked and a session after', async () => {
      await server.batch('<flexibee-batch id="unblock-1"><user><username>on.off</username><password>on off password</password><blocked message="on leave">true</blocked></user></flexibee-batch>');
      const blocked = await loginJson(server, 'on.off', 'on off password');
      expect(blocked.status).toBe(401);
      expect(blocked.body).toContain('on leave');
      await server.batch('<flexibee-batch id="unblock-2"><user><username>on.off</username><blocked>false</blocked></user></flexibee-batch>');
      expectSession(await loginJson(server, 'on.off', 'on off password'));
    });

    test('when logins succeed and fail, then no log line holds a password or a session id', async () => {
      const id = await sessionFor(server, 'alg.sha256', passwordOf('sha256'));
      await loginJson(server, 'alg.sha256', 'a wrong guess for the log');
      const log = server.logs.join('');
      expect(log).toContain('authentication refused');
      for (const secret of [passwordOf('sha256'), 'a wrong guess for the log', id, digestOf('sha256', saltOf('sha256'), passwordOf('sha256'))]) {
        expect(log).not.toContain(secret);
      }
    });
  });

  describe('the session', () => {
    test('when a session is created, then the store holds only the SHA-256 of its id', async () => {
      const id = await sessionFor(server, 'alg.sha256', passwordOf('sha256'));
      const rows = sessionRows(server.db);
      expect(rows.map((r) => r.id_hash)).toContain(createHash('sha256').update(id).digest('hex'));
      expect(JSON.stringify(rows)).not.toContain(id);
    });

    test('when the session logs out, then it answers {"success":true} and the id no longer works', async () => {
      const id = await sessionFor(server, 'alg.sha256', passwordOf('sha256'));
      expect((await server.request('GET', '/u.json', { client: null, headers: withSession(id) })).status).toBe(200);
      const out = await server.request('POST', '/login-logout/logout', { client: null, headers: withSession(id) });
      expect(out.status).toBe(200);
      expect(json(out)).toEqual({ success: true });
      expectRefused(await server.request('GET', '/u.xml', { client: null, headers: withSession(id) }));
      expectRefused(await server.request('POST', '/login-logout/logout', { client: null, headers: withSession(id) }));
    });

    test('when one of two sessions of a user logs out, then the other still works', async () => {
      const first = await sessionFor(server, 'alg.sha512', passwordOf('sha512'));
      const second = await sessionFor(server, 'alg.sha512', passwordOf('sha512'));
      expect(first).not.toBe(second);
      expect((await server.request('POST', '/login-logout/logout', { client: null, headers: withSession(first) })).status).toBe(200);
      expect((await server.request('GET', '/u.json', { client: null, headers: withSession(second) })).status).toBe(200);
    });

    test('when a made-up session id is sent, then the answer is the common 401 even with a valid certificate', async () => {
      expectRefused(await server.request('GET', '/u.xml', { headers: withSession('made-up-session-id') }));
    });

    test('when logout is called without a session, then the answer is the common 401', async () => {
      expectRefused(await server.request('POST', '/login-logout/logout', { client: null }));
    });

    test('when the user of a live session is blocked, then its next request is the common 401', async () => {
      await server.batch('<flexibee-batch id="block-live-1"><user><username>blocked.later</username><password>blocked later password</password></user></flexibee-batch>');
      const id = await sessionFor(server, 'blocked.later', 'blocked later password');
      expect((await server.request('GET', '/u.json', { client: null, headers: withSession(id) })).status).toBe(200);
      await server.batch('<flexibee-batch id="block-live-2"><user><username>blocked.later</username><blocked>true</blocked></user></flexibee-batch>');
      expectRefused(await server.request('GET', '/u.xml', { client: null, headers: withSession(id) }));
    });

    test('when the user of a live session is deleted, then its next request is the common 401', async () => {
      await server.batch('<flexibee-batch id="delete-live-1"><user><username>deleted.later</username><password>deleted later password</password></user></flexibee-batch>');
      const id = await sessionFor(server, 'deleted.later', 'deleted later password');
      await server.batch('<flexibee-batch id="delete-live-2"><user action="delete"><username>deleted.later</username></user></flexibee-batch>');
      expectRefused(await server.request('GET', '/u.xml', { client: null, headers: withSession(id) }));
    });

    test('when the user of a live session is deleted and restored, then the old session stays ended', async () => {
      await server.batch('<flexibee-batch id="revive-1"><user><username>revived.user</username><password>revived user password</password></user></flexibee-batch>');
      const id = await sessionFor(server, 'revived.user', 'revived user password');
      await server.batch('<flexibee-batch id="revive-2"><user action="delete"><username>revived.user</username></user></flexibee-batch>');
      await server.batch('<flexibee-batch id="revive-3"><user><username>revived.user</username></user></flexibee-batch>');
      expectRefused(await server.request('GET', '/u.xml', { client: null, headers: withSession(id) }));
      expectSession(await loginJson(server, 'revived.user', 'revived user password'));
    });

    test('when the user of a live session is blocked and unblocked, then the old session stays ended', async () => {
      await server.batch('<flexibee-batch id="reblock-1"><user><username>reblocked.user</username><password>reblocked user password</password></user></flexibee-batch>');
      const id = await sessionFor(server, 'reblocked.user', 'reblocked user password');
      await server.batch('<flexibee-batch id="reblock-2"><user><username>reblocked.user</username><blocked>true</blocked></user></flexibee-batch>');
      await server.batch('<flexibee-batch id="reblock-3"><user><username>reblocked.user</username><blocked>false</blocked></user></flexibee-batch>');
      expectRefused(await server.request('GET', '/u.xml', { client: null, headers: withSession(id) }));
      expectSession(await loginJson(server, 'reblocked.user', 'reblocked user password'));
    });

    test('when a session sends X-FlexiBee-Authorization, then the answer is 403', async () => {
      const id = await sessionFor(server, 'session.admin', ADMIN_PASSWORD);
      const res = await server.request('GET', '/u.xml', { client: null, headers: { ...withSession(id), 'X-FlexiBee-Authorization': 'alg.sha256' } });
      expect(res.status).toBe(403);
    });
  });

  describe('who may use /v2/admin/batch (SPEC §6: manageAll and licenseManagement, sessions only)', () => {
    const v2 = (name: string): string => `<flexibee-batch id="v2-${name}"><user><username>made.by.${name}</username></user></flexibee-batch>`;

    async function expectNothingApplied(send: () => Promise<Response>, status: number, message: RegExp): Promise<void> {
      const before = dumpStore(server.db);
      const res = await send();
      expect(res.status).toBe(status);
      expect(res.body).toMatch(message);
      expect(dumpStore(server.db)).toEqual(before);
    }

    test.each(['PUT', 'POST'])('when a session user with manageAll and licenseManagement sends a batch with %s, then it is applied as that user', async (method) => {
      const id = await sessionFor(server, 'session.admin', ADMIN_PASSWORD);
      const res = await server.request(method, '/v2/admin/batch', { client: null, headers: withSession(id), body: v2(method.toLowerCase()) });
      expect(res.status).toBe(200);
      expect(statuses(res.body)).toEqual(['CREATED']);
      expect(await server.running.store.findUser('root', `made.by.${method.toLowerCase()}`)).toBeDefined();
    });

    test('when a session user without manageAll and licenseManagement sends a batch, then the answer is 403 and nothing is applied', async () => {
      const id = await sessionFor(server, 'plain.user', PLAIN_PASSWORD);
      await expectNothingApplied(
        () => server.request('PUT', '/v2/admin/batch', { client: null, headers: withSession(id), body: v2('plain') }),
        403,
        /manageAll and licenseManagement/,
      );
    });

    test.each([
      ['half.admin', 'half admin password', 'manageAll only'],
      ['license.only', 'license only password', 'licenseManagement only'],
    ])('when a session user %s with %s sends a batch, then the answer is 403 and nothing is applied', async (username, password) => {
      const id = await sessionFor(server, username, password);
      await expectNothingApplied(
        () => server.request('PUT', '/v2/admin/batch', { client: null, headers: withSession(id), body: v2(username.replace('.', '-')) }),
        403,
        /manageAll and licenseManagement/,
      );
    });

    test('when a client certificate sends a batch to /v2/admin/batch, then the answer is 403 and nothing is applied', async () => {
      await expectNothingApplied(() => server.request('PUT', '/v2/admin/batch', { body: v2('cert') }), 403, /\/v2\/admin\/batch is for logged-in users/);
    });

    test('when a client certificate impersonating an administrator sends a batch to /v2/admin/batch, then the answer is 403 and nothing is applied', async () => {
      await expectNothingApplied(
        () => server.request('PUT', '/v2/admin/batch', { headers: { 'X-FlexiBee-Authorization': 'session.admin' }, body: v2('cert-as') }),
        403,
        /\/v2\/admin\/batch is for logged-in users/,
      );
    });

    test('when the server password principal sends a batch to /v2/admin/batch, then the answer is 403 and nothing is applied', async () => {
      await expectNothingApplied(
        () => server.request('PUT', '/v2/admin/batch', { client: null, headers: basic(SERVER_USER, SERVER_PASSWORD), body: v2('password') }),
        403,
        /\/v2\/admin\/batch is for logged-in users/,
      );
    });

    test('when a session of an administrator sends a batch to /admin/batch, then the answer is 403 and nothing is applied', async () => {
      const id = await sessionFor(server, 'session.admin', ADMIN_PASSWORD);
      await expectNothingApplied(
        () => server.request('PUT', '/admin/batch', { client: null, headers: withSession(id), body: v2('session-v1') }),
        403,
        /\/admin\/batch takes a client certificate or server credentials/,
      );
    });

    test('when /v2/admin/batch is called without any credentials, then the answer is the common 401 and nothing is applied', async () => {
      await expectNothingApplied(() => server.request('PUT', '/v2/admin/batch', { client: null, body: v2('anonymous') }), 401, new RegExp(REFUSED.replace(/\./g, '\\.')));
    });

    test('when a session user loses manageAll, then its next batch on /v2/admin/batch is 403', async () => {
      await server.batch(`<flexibee-batch id="demote-1"><user><username>demoted.admin</username><password>demoted admin password</password>
        <permissions><manageAll>true</manageAll><licenseManagement>true</licenseManagement></permissions></user></flexibee-batch>`);
      const id = await sessionFor(server, 'demoted.admin', 'demoted admin password');
      expect((await server.request('PUT', '/v2/admin/batch', { client: null, headers: withSession(id), body: '<flexibee-batch id="d"><user><username>demoted.admin</username><email>d@example.cz</email></user></flexibee-batch>' })).status).toBe(200);
      await server.batch('<flexibee-batch id="demote-2"><user><username>demoted.admin</username><permissions><manageAll>false</manageAll></permissions></user></flexibee-batch>');
      await expectNothingApplied(
        () => server.request('PUT', '/v2/admin/batch', { client: null, headers: withSession(id), body: v2('demoted') }),
        403,
        /manageAll and licenseManagement/,
      );
    });
  });
});

describe('sessions expire after --session-idle unused', () => {
  let server: TestServer;
  const IDLE_MS = 1000;

  beforeAll(async () => {
    server = await startTestServer({ sessionIdleMs: IDLE_MS });
    const res = await server.batch('<flexibee-batch id="idle-seed"><user><username>idle.user</username><password>idle user password</password></user></flexibee-batch>');
    expect(statuses(res.body)).toEqual(['CREATED']);
  });
  afterAll(() => server.close());

  test('when a session stays unused longer than the idle time, then its next request is the common 401', async () => {
    const id = await sessionFor(server, 'idle.user', 'idle user password');
    expect((await server.request('GET', '/u.json', { client: null, headers: withSession(id) })).status).toBe(200);
    await sleep(IDLE_MS * 1.5);
    expectRefused(await server.request('GET', '/u.xml', { client: null, headers: withSession(id) }));
  });

  test('when a session is used again and again, then it outlives the idle time counted from the login', async () => {
    const id = await sessionFor(server, 'idle.user', 'idle user password');
    const started = Date.now();
    while (Date.now() - started < IDLE_MS * 1.5) {
      await sleep(IDLE_MS / 4);
      expect((await server.request('GET', '/u.json', { client: null, headers: withSession(id) })).status).toBe(200);
    }
  });

  test('when an expired session logs out, then the answer is the common 401', async () => {
    const id = await sessionFor(server, 'idle.user', 'idle user password');
    await sleep(IDLE_MS * 1.5);
    expectRefused(await server.request('POST', '/login-logout/logout', { client: null, headers: withSession(id) }));
  });
});

describe('--password-hash selects the algorithm for plain-text passwords', () => {
  test.each([
    [['--password-hash', 'pbkdf2'], 'pbkdf2'],
    [['--password-hash', 'md5'], 'md5'],
  ])('when the flag %j is given, then the configuration uses %s', (flag, expected) => {
    expect(loadConfig({ flags: { [flag[0].slice(2)]: flag[1] }, env: {} }).passwordHash).toBe(expected);
  });

  test('when no algorithm is configured, then plain-text passwords are hashed with sha256', () => {
    expect(loadConfig({ flags: {}, env: {} }).passwordHash).toBe('sha256');
  });

  test('when the flag names an unknown algorithm, then the configuration is refused naming the valid ones', () => {
    expect(() => loadConfig({ flags: { 'password-hash': 'rot13' }, env: {} })).toThrow(/sha256, sha512, sha1, md5, pbkdf2/);
  });

  describe.each(ALGORITHMS)('with --password-hash %s', (algorithm) => {
    let server: TestServer;
    const password = `plain ${algorithm} password ✓`;
    const batch = `<flexibee-batch id="hash-${algorithm}"><user><username>hashed.${algorithm}</username><password>${password}</password></user></flexibee-batch>`;

    beforeAll(async () => {
      server = await startTestServer({ passwordHash: algorithm, pbkdf2Iterations: 1000 });
    });
    afterAll(() => server.close());

    test('when a user is created with a plain-text password, then it is stored in that format, verifies independently, logs in, and a re-send is SKIPPED with the hash unchanged', async () => {
      expect(statuses((await server.batch(batch)).body)).toEqual(['CREATED']);
      const stored = userRow(server, `hashed.${algorithm}`).password_hash as string;
      expect(stored.startsWith(algorithm === 'pbkdf2' ? 'pbkdf2:1000:' : `${algorithm}:`)).toBe(true);
      expect(stored.split(':')).toHaveLength(algorithm === 'pbkdf2' ? 4 : 3);
      expect(storedHashMatches(stored, password)).toBe(true);
      expect(stored).not.toContain(password);

      expectSession(await loginJson(server, `hashed.${algorithm}`, password));
      expectRefused(await loginJson(server, `hashed.${algorithm}`, `${password}!`));

      const again = await server.batch(batch);
      expect(statuses(again.body)).toEqual(['SKIPPED']);
      expect(userRow(server, `hashed.${algorithm}`).password_hash).toBe(stored);
    });
  });
});
