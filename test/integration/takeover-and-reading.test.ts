/**
 * SPEC §6, over HTTPS on the real store: an acting user (X-FlexiBee-Authorization or a session)
 * cannot take over a user who holds a permission it lacks (issue #9, point 5), and one without
 * manageAll or createUser reads only itself in /u and only the journal entries of batches it
 * sent (point 6). Also the journal column that says whose batch an entry is, on a store made
 * before it existed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIGRATIONS, renderMigration } from '../../src/store/migrations';
import { openStore } from '../../src/store/open-store';
import { digestOf, expectRefused, loginJson, preHashedPassword, sessionFor, withSession } from '../support/auth';
import { entries, startTestServer, statuses, type Response, type TestServer } from '../support/server';
import { dropTestDb, dumpStore, journalRows, newTestDb, queryRows, runScript, STORE_KIND } from '../support/stores';

const AS = 'X-FlexiBee-Authorization';
const ALICE_PASSWORD = 'alice has a long password';
const ADMIN_PASSWORD = 'the admin password, long enough';

const ALL_PERMISSIONS = `<permissions><manageAll>true</manageAll><createCompany>true</createCompany><deleteCompany>true</deleteCompany>
  <createUser>true</createUser><changePassword>true</changePassword><grantPermission>true</grantPermission><licenseManagement>true</licenseManagement></permissions>`;

const SEED = `<?xml version="1.0"?>
<flexibee-batch id="reach-seed">
  <user><username>alice</username><password>${ALICE_PASSWORD}</password>
    <permissions><manageAll>true</manageAll><licenseManagement>true</licenseManagement></permissions></user>
  <user><username>admin</username><password>${ADMIN_PASSWORD}</password>${ALL_PERMISSIONS}</user>
  <user><username>hr</username><permissions><createUser>true</createUser><grantPermission>true</grantPermission></permissions></user>
  <user><username>helpdesk</username><permissions><changePassword>true</changePassword></permissions></user>
  <user><username>almost.admin</username>
    <permissions><createCompany>true</createCompany><deleteCompany>true</deleteCompany><createUser>true</createUser>
      <changePassword>true</changePassword><grantPermission>true</grantPermission><licenseManagement>true</licenseManagement></permissions></user>
  <user><username>ops</username><password>ops has a long password</password>
    <permissions><manageAll>true</manageAll><changePassword>true</changePassword><licenseManagement>true</licenseManagement></permissions></user>
  <user><username>former.admin</username><permissions><manageAll>true</manageAll></permissions></user>
  <user action="delete"><username>former.admin</username></user>
  <user><username>plain</username><password>plain has a long password</password></user>
  <user><username>creator</username><password>creator has a long password</password><permissions><createUser>true</createUser></permissions></user>
  <user><username>lead</username><password>lead has a long password</password>
    <permissions><manageAll>true</manageAll><licenseManagement>true</licenseManagement></permissions></user>
  <company><id>firma_a_s_</id><name>Firma a.s.</name><adminUser>admin</adminUser></company>
  <access user="plain" role="UCETNI">firma_a_s_</access>
</flexibee-batch>
`;

/** The message of an error envelope, XML or JSON. */
function envelopeMessage(res: Response): string {
  if (String(res.headers['content-type']).includes('json')) return (JSON.parse(res.body) as { winstrom: { message: string } }).winstrom.message;
  const m = /<message>([^<]*)<\/message>/.exec(res.body);
  if (!m) throw new Error(`not an error envelope: ${res.body}`);
  return m[1];
}

/** An answer with every occurrence of `name` replaced, to compare the shape of two answers about different names. */
const shapeOf = (res: Response, name: string): { status: number; type: unknown; body: string } => ({
  status: res.status,
  type: res.headers['content-type'],
  body: res.body.split(name).join('NAME'),
});

describe('SPEC §6 over HTTPS: no takeover, and reading is scoped', () => {
  let server: TestServer;
  let n = 0;

  async function asUser(actor: string, ops: string, id = `reach-${actor}-${++n}`): Promise<ReturnType<typeof entries>> {
    const res = await server.batch(`<flexibee-batch id="${id}">${ops}</flexibee-batch>`, { headers: { [AS]: actor } });
    expect(res.status).toBe(200);
    return entries(res.body);
  }

  const storedUser = (login: string) => server.running.store.findUserRecord('root', login);

  beforeAll(async () => {
    server = await startTestServer();
    const res = await server.batch(SEED);
    expect(res.status).toBe(200);
    expect(statuses(res.body)).not.toContain('FAILED');
  });
  afterAll(() => server.close());

  describe('no takeover: a user who holds a permission the actor lacks is out of its reach', () => {
    test('when a user with createUser and grantPermission removes manageAll from a manageAll user and blocks her, then both are FAILED "permission denied: alice holds manageAll, which you do not have" and she can still log in', async () => {
      const result = await asUser(
        'hr',
        `<user><username>alice</username><permissions><manageAll>false</manageAll></permissions></user>
         <user><username>alice</username><blocked message="taken over">true</blocked></user>`,
      );
      expect(result.map((e) => [e.status, e.message])).toEqual([
        ['FAILED', 'permission denied: alice holds manageAll, which you do not have'],
        ['FAILED', 'permission denied: alice holds manageAll, which you do not have'],
      ]);
      const alice = await storedUser('alice');
      expect(alice?.permissions.manageAll).toBe(true);
      expect(alice?.blocked).toBe(false);
      expect((await loginJson(server, 'alice', ALICE_PASSWORD)).status).toBe(200);
    });

    test.each([
      ['in plain text', '<password>chosen by helpdesk</password>'],
      ['pre-hashed', preHashedPassword('sha256', 'helpdesk', 'chosen by helpdesk')],
    ])("when a user with changePassword sets an admin's password %s, then it is FAILED and logging in as the admin with it is refused", async (_how, password) => {
      const before = (await storedUser('admin'))?.passwordHash;
      const result = await asUser('helpdesk', `<user><username>admin</username>${password}</user>`);
      expect(result.map((e) => [e.status, e.message])).toEqual([['FAILED', 'permission denied: admin holds manageAll, which you do not have']]);
      expect((await storedUser('admin'))?.passwordHash).toBe(before);
      expectRefused(await loginJson(server, 'admin', 'chosen by helpdesk'));
      expect((await loginJson(server, 'admin', ADMIN_PASSWORD)).status).toBe(200);
    });

    test("when a session user with manageAll, changePassword and licenseManagement sets an admin's password at /v2/admin/batch, then it is FAILED naming the first permission it lacks", async () => {
      const id = await sessionFor(server, 'ops', 'ops has a long password');
      const res = await server.request('PUT', '/v2/admin/batch', {
        client: null,
        headers: withSession(id),
        body: '<flexibee-batch id="ops-takeover"><user><username>admin</username><password>chosen by ops</password></user></flexibee-batch>',
      });
      expect(res.status).toBe(200);
      expect(entries(res.body).map((e) => [e.status, e.message])).toEqual([['FAILED', 'permission denied: admin holds createCompany, which you do not have']]);
      expectRefused(await loginJson(server, 'admin', 'chosen by ops'));
    });

    test('when a user with every permission but manageAll sends every kind of change to a manageAll user, then each is FAILED, the store is unchanged, and a re-send answers the same', async () => {
      const batch = `
        <user><username>alice</username><password>taken over</password></user>
        <user><username>alice</username>${preHashedPassword('sha512', 'x', 'taken over')}</user>
        <user><username>alice</username><permissions><manageAll>false</manageAll></permissions></user>
        <user><username>alice</username><permissions><createCompany>true</createCompany></permissions></user>
        <user><username>alice</username><blocked>true</blocked></user>
        <user><username>alice</username><userType>READ_ONLY</userType></user>
        <user><username>alice</username><email>attacker@example.cz</email></user>
        <user action="delete"><username>alice</username></user>
        <user><username>former.admin</username></user>`;
      const before = dumpStore(server.db);
      const first = await asUser('almost.admin', batch, 'every-takeover');
      expect(first.map((e) => [e.id, e.status, e.message])).toEqual([
        ...Array(8).fill(['alice', 'FAILED', 'permission denied: alice holds manageAll, which you do not have']),
        ['former.admin', 'FAILED', 'permission denied: former.admin holds manageAll, which you do not have'],
      ]);
      expect(dumpStore(server.db)).toEqual(before);
      expect(await asUser('almost.admin', batch, 'every-takeover')).toEqual(first);
    });

    test('when an outranked user is sent exactly what she already has, then it is SKIPPED, not FAILED', async () => {
      const result = await asUser(
        'helpdesk',
        `<user><username>alice</username><permissions><manageAll>true</manageAll></permissions><blocked>false</blocked></user>
         <user action="delete"><username>former.admin</username></user>`,
      );
      expect(result.map((e) => e.status)).toEqual(['SKIPPED', 'SKIPPED']);
    });

    test('when an outranked user is sent her plain-text password, right or wrong, then both answers are the same FAILED: a batch answers no guess', async () => {
      const right = await asUser('helpdesk', `<user><username>alice</username><password>${ALICE_PASSWORD}</password></user>`);
      const wrong = await asUser('helpdesk', '<user><username>alice</username><password>a wrong guess</password></user>');
      expect(right).toEqual(wrong);
      expect(right).toEqual([expect.objectContaining({ status: 'FAILED', message: expect.stringMatching(/^permission denied: alice holds manageAll, which you do not have$/i) })]);
    });

    test('when the actor holds every permission the target holds, then the same changes apply', async () => {
      const result = await asUser('admin', '<user><username>alice</username><givenName>Alice</givenName><blocked>true</blocked></user><user><username>alice</username><blocked>false</blocked></user>');
      expect(result.map((e) => e.status)).toEqual(['UPDATED', 'UPDATED']);
    });
  });

  describe('reading: without manageAll or createUser a user sees only itself and the journal entries of batches it sent', () => {
    /** The ways a request acts as `login`: its session, or the dev certificate naming it. */
    async function actingAs(login: string, password: string): Promise<Array<[string, Record<string, string>, boolean]>> {
      return [
        ['a session', withSession(await sessionFor(server, login, password)), false],
        ['X-FlexiBee-Authorization', { [AS]: login }, true],
      ];
    }
    const get = (path: string, headers: Record<string, string>, withCertificate: boolean): Promise<Response> =>
      server.request('GET', path, { headers, ...(withCertificate ? {} : { client: null }) });

    test.each(['/u.json', '/u.xml'])('when a user without manageAll or createUser asks for %s, then it lists only itself, by session and by impersonation', async (path) => {
      for (const [, headers, cert] of await actingAs('plain', 'plain has a long password')) {
        const res = await get(path, headers, cert);
        expect(res.status).toBe(200);
        if (path.endsWith('.json')) {
          const users = (JSON.parse(res.body) as { winstrom: { user: Array<{ username: string }> } }).winstrom.user;
          expect(users.map((u) => u.username)).toEqual(['plain']);
        } else {
          expect(res.body.match(/<username>[^<]*<\/username>/g)).toEqual(['<username>plain</username>']);
        }
      }
    });

    test.each(['json', 'xml'])('when a user without manageAll or createUser asks for another user as .%s, then the answer is exactly that for a user that does not exist', async (format) => {
      for (const [, headers, cert] of await actingAs('plain', 'plain has a long password')) {
        const hidden = await get(`/u/alice.${format}`, headers, cert);
        const missing = await get(`/u/no.such.user.${format}`, headers, cert);
        expect(hidden.status).toBe(404);
        expect(envelopeMessage(hidden)).toBe('User alice does not exist.');
        expect(shapeOf(hidden, 'alice')).toEqual(shapeOf(missing, 'no.such.user'));
      }
    });

    test('when a user without manageAll or createUser asks for itself, in any spelling, then it gets its fields and its access list', async () => {
      for (const [, headers, cert] of await actingAs('plain', 'plain has a long password')) {
        const res = await get('/u/PLAIN.json', headers, cert);
        expect(res.status).toBe(200);
        const [me] = (JSON.parse(res.body) as { winstrom: { user: Array<{ username: string; access: unknown }> } }).winstrom.user;
        expect(me).toMatchObject({ username: 'plain', access: [{ company: 'firma_a_s_', role: 'UCETNI' }] });
      }
    });

    test.each([
      ['createUser', 'creator', 'creator has a long password'],
      ['manageAll', 'lead', 'lead has a long password'],
    ])('when a user with %s reads /u.json and /u/alice.json, then it sees every user', async (_permission, login, password) => {
      for (const [, headers, cert] of await actingAs(login, password)) {
        const list = await get('/u.json', headers, cert);
        const users = (JSON.parse(list.body) as { winstrom: { user: Array<{ username: string }> } }).winstrom.user.map((u) => u.username);
        expect(users).toEqual(expect.arrayContaining(['admin', 'alice', 'plain', login]));
        expect((await get('/u/alice.json', headers, cert)).status).toBe(200);
      }
    });

    test('when a certificate without X-FlexiBee-Authorization reads, then it sees every user (full rights)', async () => {
      expect((await server.request('GET', '/u/alice.json')).status).toBe(200);
    });

    test('when a user without manageAll or createUser asks for a batch id others sent too, then it gets the newest entry it sent itself, and a certificate the newest of all', async () => {
      const own = await server.batch('<flexibee-batch id="shared-id"><user><username>plain</username><givenName>Plain</givenName></user></flexibee-batch>', { headers: { [AS]: 'plain' } });
      const others = await server.batch('<flexibee-batch id="shared-id"><user><username>alice</username><givenName>A.</givenName></user></flexibee-batch>', { headers: { [AS]: 'admin' } });
      const root = await server.batch('<flexibee-batch id="shared-id"><user><username>alice</username><familyName>Root</familyName></user></flexibee-batch>');
      expect([own, others, root].map((r) => statuses(r.body))).toEqual([['UPDATED'], ['UPDATED'], ['UPDATED']]);
      for (const [, headers, cert] of await actingAs('plain', 'plain has a long password')) {
        const res = await get('/admin/batch/shared-id', headers, cert);
        expect(res.status).toBe(200);
        expect(res.body).toBe(own.body);
      }
      expect((await server.request('GET', '/admin/batch/shared-id')).body).toBe(root.body);
      expect((await get('/admin/batch/shared-id', { [AS]: 'creator' }, true)).body).toBe(root.body);
    });

    test('when a user without manageAll or createUser asks for a batch only others sent, then the answer is exactly that for a batch never sent', async () => {
      await server.batch('<flexibee-batch id="not-yours"><user><username>alice</username><givenName>B.</givenName></user></flexibee-batch>', { headers: { [AS]: 'admin' } });
      for (const [, headers, cert] of await actingAs('plain', 'plain has a long password')) {
        const hidden = await get('/admin/batch/not-yours', headers, cert);
        const never = await get('/admin/batch/never-sent-at-all', headers, cert);
        expect(hidden.status).toBe(404);
        expect(shapeOf(hidden, 'not-yours')).toEqual(shapeOf(never, 'never-sent-at-all'));
      }
    });

    test('when a session user sent a batch and later loses manageAll, then it still reads that entry, and no longer anyone else\'s', async () => {
      await server.batch('<flexibee-batch id="reach-former"><user><username>former.lead</username><password>former lead long password</password><permissions><manageAll>true</manageAll><licenseManagement>true</licenseManagement></permissions></user></flexibee-batch>');
      const session = withSession(await sessionFor(server, 'former.lead', 'former lead long password'));
      const sent = await server.request('PUT', '/v2/admin/batch', {
        client: null,
        headers: session,
        body: '<flexibee-batch id="sent-by-session"><user><username>former.lead</username><givenName>Former</givenName></user></flexibee-batch>',
      });
      expect(statuses(sent.body)).toEqual(['UPDATED']);
      expect(journalRows(server.db).at(-1)).toMatchObject({ batch_id: 'sent-by-session', impersonated: null, acting_user_key: 'former.lead' });
      expect((await get('/admin/batch/not-yours', session, false)).status).toBe(200);

      await server.batch('<flexibee-batch id="demote"><user><username>former.lead</username><permissions><manageAll>false</manageAll></permissions></user></flexibee-batch>');
      expect((await get('/admin/batch/sent-by-session', session, false)).body).toBe(sent.body);
      expect((await get('/admin/batch/not-yours', session, false)).status).toBe(404);
      expect((await get('/u/alice.json', session, false)).status).toBe(404);
    });

    test('when batches are journalled, then the entry names the key of the user it acted as: a session user, an impersonated user, or none', async () => {
      await server.batch('<flexibee-batch id="key-impersonated"><user><username>plain</username></user></flexibee-batch>', { headers: { [AS]: 'PLAIN' } });
      await server.batch('<flexibee-batch id="key-root"><user><username>plain</username></user></flexibee-batch>');
      const rows = journalRows(server.db).filter((r) => r.batch_id.startsWith('key-'));
      expect(rows.map((r) => [r.batch_id, r.impersonated, r.acting_user_key])).toEqual([
        ['key-impersonated', 'plain', 'plain'],
        ['key-root', null, null],
      ]);
    });
  });
});

describe('the journal column of the acting user on a store made before it (migration 3)', () => {
  let dir: string;
  let db: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flexi-journal-migration-'));
    db = newTestDb(dir);
  });
  afterAll(() => {
    dropTestDb(db);
    rmSync(dir, { recursive: true, force: true });
  });

  test('when a store of schema version 2 is opened, then the entries of sessions and impersonated requests get their user key, and the others none', async () => {
    const earlier = MIGRATIONS.filter((m) => m.version <= 2);
    const entry = (batchId: string, credential: string, principal: string, impersonated: string | null): string =>
      `INSERT INTO batch_journal (batch_id, credential, principal, impersonated, scope, received_at, finished_at, body_sha256, result_xml)
         VALUES ('${batchId}', '${credential}', '${principal}', ${impersonated === null ? 'NULL' : `'${impersonated}'`}, 'root', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', '${digestOf('sha256', '', batchId)}', '<r/>');`;
    runScript(
      db,
      `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
       ${earlier.map((m) => `${renderMigration(m, STORE_KIND).join(';\n')};\nINSERT INTO schema_migrations (version, name, applied_at) VALUES (${m.version}, '${m.name}', '2024-01-01T00:00:00.000Z');`).join('\n')}
       ${entry('by-session', 'session:Tereza.Admin', 'session:Tereza.Admin', null)}
       ${entry('by-impersonation', 'certificate:AB:CD', 'certificate:dev client as Jan.Ucetni', 'Jan.Ucetni')}
       ${entry('by-certificate', 'certificate:AB:CD', 'certificate:dev client', null)}
       ${entry('by-password', 'password:flexi-server-admin', 'password:flexi-server-admin', null)}
       ${entry('by-cli', 'cli:cli', 'cli:cli', null)}`,
    );
    await (await openStore(db)).close();
    expect(queryRows(db, 'SELECT batch_id, acting_user_key FROM batch_journal ORDER BY seq')).toEqual([
      { batch_id: 'by-session', acting_user_key: 'tereza.admin' },
      { batch_id: 'by-impersonation', acting_user_key: 'jan.ucetni' },
      { batch_id: 'by-certificate', acting_user_key: null },
      { batch_id: 'by-password', acting_user_key: null },
      { batch_id: 'by-cli', acting_user_key: null },
    ]);
    expect(queryRows(db, 'SELECT max(version) AS v FROM schema_migrations')).toEqual([{ v: MIGRATIONS[MIGRATIONS.length - 1].version }]);
    const store = await openStore(db);
    try {
      expect((await store.findLatestJournal('root', 'by-session', { sentBy: 'tereza.admin' }))?.actingUser).toBe('tereza.admin');
      expect(await store.findLatestJournal('root', 'by-certificate', { sentBy: 'tereza.admin' })).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
