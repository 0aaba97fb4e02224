import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { ALL, dumpStore, journalRows } from '../support/stores';
import { basic, SERVER_PASSWORD, SERVER_USER, sessionFor, withSession, writeServerAuth } from '../support/auth';
import { entries, startTestServer, statuses, type RequestOptions, type Response, type TestServer } from '../support/server';

const AS = 'X-FlexiBee-Authorization';
const TEREZA_PASSWORD = 'tereza admin password';

/** Stored users with exactly the permissions the SPEC §6 rows below need, plus the ones that may not act. */
const SEED = `<?xml version="1.0"?>
<flexibee-batch id="impersonation-seed">
  <user>
    <username>tereza.admin</username>
    <password>${TEREZA_PASSWORD}</password>
    <permissions><manageAll>true</manageAll><createCompany>true</createCompany><createUser>true</createUser>
      <grantPermission>true</grantPermission><licenseManagement>true</licenseManagement></permissions>
  </user>
  <user><username>nobody</username><password>nobody password</password></user>
  <user><username>creator</username><permissions><createUser>true</createUser></permissions></user>
  <user><username>pw.changer</username><permissions><changePassword>true</changePassword></permissions></user>
  <user><username>remover</username><permissions><createUser>true</createUser><licenseManagement>true</licenseManagement></permissions></user>
  <user><username>half.remover</username><permissions><createUser>true</createUser></permissions></user>
  <user><username>granter</username><permissions><grantPermission>true</grantPermission><createUser>true</createUser><manageAll>true</manageAll></permissions></user>
  <user><username>builder</username><permissions><createCompany>true</createCompany></permissions></user>
  <user><username>destroyer</username><permissions><deleteCompany>true</deleteCompany></permissions></user>
  <user><username>firm.admin</username></user>
  <user><username>target.user</username><email>target@example.cz</email><password>target password</password></user>
  <user><username>blocked.actor</username><blocked message="suspended">true</blocked><permissions><manageAll>true</manageAll></permissions></user>
  <user><username>deleted.actor</username><permissions><manageAll>true</manageAll></permissions></user>
  <user action="delete"><username>deleted.actor</username></user>
  <company><id>firma_a_s_</id><name>Firma a.s.</name><adminUser>firm.admin</adminUser></company>
</flexibee-batch>
`;

/** The message of an XML `<winstrom>` error envelope, entities decoded. */
function envelopeMessage(res: Response): string {
  const m = /<message>([^<]*)<\/message>/.exec(res.body);
  if (!m) throw new Error(`not an error envelope: ${res.body}`);
  return m[1].replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e] as string);
}

describe('X-FlexiBee-Authorization: a certificate or password principal acting as a stored user', () => {
  let server: TestServer;
  let serverAuthFile: string;
  let devFingerprint: string;
  let n = 0;

  /** The two principals that may impersonate, as request options. */
  const principals: Array<[string, () => RequestOptions]> = [
    ['client certificate', () => ({})],
    ['server name and password', () => ({ client: null, headers: basic(SERVER_USER, SERVER_PASSWORD) })],
  ];

  function send(xml: string, principal: RequestOptions, actingUser?: string): Promise<Response> {
    const headers = { ...principal.headers, ...(actingUser !== undefined ? { [AS]: actingUser } : {}) };
    return server.batch(xml, { ...principal, headers });
  }

  /** Sends operations as `actor` (dev certificate + X-FlexiBee-Authorization) and returns the entries. */
  async function asUser(actor: string, ops: string): Promise<ReturnType<typeof entries>> {
    const res = await send(`<flexibee-batch id="as-${actor}-${++n}">${ops}</flexibee-batch>`, {}, actor);
    expect(res.status).toBe(200);
    return entries(res.body);
  }

  /** Sends operations with the dev certificate and full rights. */
  async function asRoot(ops: string): Promise<string[]> {
    const res = await server.batch(`<flexibee-batch id="root-${++n}">${ops}</flexibee-batch>`);
    expect(res.status).toBe(200);
    return statuses(res.body);
  }

  beforeAll(async () => {
    serverAuthFile = writeServerAuth();
    server = await startTestServer({ serverAuth: serverAuthFile });
    devFingerprint = new X509Certificate(readFileSync(server.pki.client)).fingerprint;
    const res = await server.batch(SEED);
    expect(res.status).toBe(200);
    expect(statuses(res.body)).not.toContain('FAILED');
  });
  afterAll(async () => {
    await server.close();
    rmSync(dirname(serverAuthFile), { recursive: true, force: true });
  });

  describe('the batch runs as that user', () => {
    test.each(principals)('when a %s acts as tereza.admin, then her permissions apply: the company delete is FAILED and the rest is applied', async (kind, principal) => {
      const tag = kind.startsWith('client') ? 'cert' : 'pass';
      const res = await send(
        `<flexibee-batch id="as-tereza-${tag}">
          <user><username>made.${tag}</username></user>
          <company><id>tereza_${tag}</id><name>Tereza ${tag}</name><adminUser>tereza.admin</adminUser></company>
          <company action="delete"><id>tereza_${tag}</id></company>
        </flexibee-batch>`,
        principal(),
        'tereza.admin',
      );
      expect(res.status).toBe(200);
      expect(entries(res.body)).toEqual([
        { type: 'USER', action: 'CREATE_UPDATE', id: `made.${tag}`, status: 'CREATED' },
        { type: 'COMPANY', action: 'CREATE_UPDATE', id: `tereza_${tag}`, status: 'CREATED' },
        { type: 'COMPANY', action: 'DELETE', id: `tereza_${tag}`, status: 'FAILED', message: 'permission denied: deleteCompany required' },
      ]);
      expect(await server.running.store.findUser('root', `made.${tag}`)).toBeDefined();
      const companies = (await server.running.store.listCompanies('root', { includeHidden: true }, ALL)).rows;
      expect(companies.map((c) => c.id)).toContain(`tereza_${tag}`);
    });

    test.each(principals)('when a %s sends the same kind of batch without the header, then it acts with full rights and the delete applies', async (kind, principal) => {
      const tag = kind.startsWith('client') ? 'cert-root' : 'pass-root';
      const res = await send(
        `<flexibee-batch id="root-${tag}">
          <company><id>root_${tag.replace('-', '_')}</id><name>Root ${tag}</name><adminUser>tereza.admin</adminUser></company>
          <company action="delete"><id>root_${tag.replace('-', '_')}</id></company>
        </flexibee-batch>`,
        principal(),
      );
      expect(statuses(res.body)).toEqual(['CREATED', 'DELETED']);
    });

    test('when the header names the user in another case, then the batch runs as the stored user', async () => {
      const created = await asUser('NOBODY', '<user><username>not.by.nobody</username></user>');
      expect(created).toEqual([expect.objectContaining({ status: 'FAILED', message: 'permission denied: createUser required' })]);
      expect(journalRows(server.db).at(-1)).toMatchObject({ impersonated: 'nobody', acting_user_key: 'nobody' });
    });

    test('when an impersonating request reads /u.json, then it is answered', async () => {
      const res = await server.request('GET', '/u.json', { headers: { [AS]: 'nobody' } });
      expect(res.status).toBe(200);
    });
  });

  describe('who cannot be impersonated: 403 for the whole request, nothing applied', () => {
    const refusals: Array<[string, string, RegExp]> = [
      ['an unknown user', 'no.such.user', /'no\.such\.user': that user does not exist/],
      ['a blocked user', 'blocked.actor', /'blocked\.actor': that user is blocked/],
      ['a deleted user', 'deleted.actor', /'deleted\.actor': that user does not exist/],
      ['an empty name', '', /that user does not exist/],
    ];
    const cases = principals.flatMap(([kind, principal]) => refusals.map(([what, name, message]) => [kind, what, principal, name, message] as const));

    test.each(cases)('when a %s acts as %s, then the answer is 403 and the store and the journal are unchanged', async (_kind, _what, principal, name, message) => {
      const before = dumpStore(server.db);
      const journalBefore = journalRows(server.db).length;
      const res = await send(
        `<flexibee-batch id="refused-${++n}">
          <user><username>should.not.exist.${n}</username></user>
          <user><username>target.user</username><email>changed-${n}@example.cz</email></user>
          <company><id>never_${n}</id><name>Never ${n}</name><adminUser>target.user</adminUser></company>
        </flexibee-batch>`,
        principal(),
        name,
      );
      expect(res.status).toBe(403);
      expect(res.headers['content-type']).toMatch(/^application\/xml/);
      expect(envelopeMessage(res)).toMatch(message);
      expect(envelopeMessage(res)).toMatch(/nothing was applied\.$/);
      expect(dumpStore(server.db)).toEqual(before);
      expect(journalRows(server.db)).toHaveLength(journalBefore);
    });

    test('when a .json path is asked as an unknown user, then the 403 is a JSON envelope', async () => {
      const res = await server.request('GET', '/u.json', { headers: { [AS]: 'no.such.user' } });
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body)).toEqual({ winstrom: { '@version': '1.0', success: false, message: expect.stringContaining('no.such.user') } });
    });

    test('when a session sends X-FlexiBee-Authorization with a batch, then the answer is 403 and nothing is applied', async () => {
      const id = await sessionFor(server, 'tereza.admin', TEREZA_PASSWORD);
      const before = dumpStore(server.db);
      const journalBefore = journalRows(server.db).length;
      const res = await server.request('PUT', '/v2/admin/batch', {
        client: null,
        headers: { ...withSession(id), [AS]: 'nobody' },
        body: '<flexibee-batch id="session-as"><user><username>by.session.as</username></user></flexibee-batch>',
      });
      expect(res.status).toBe(403);
      expect(res.body).toMatch(/cannot send X-FlexiBee-Authorization/);
      expect(dumpStore(server.db)).toEqual(before);
      expect(journalRows(server.db)).toHaveLength(journalBefore);
    });

    test('when a session names its own user in X-FlexiBee-Authorization, then the answer is still 403', async () => {
      const id = await sessionFor(server, 'tereza.admin', TEREZA_PASSWORD);
      const res = await server.request('GET', '/u.xml', { client: null, headers: { ...withSession(id), [AS]: 'tereza.admin' } });
      expect(res.status).toBe(403);
    });
  });

  describe('the journal records the credential and the impersonated user', () => {
    test('when the dev certificate acts as tereza.admin, then the journal names the certificate and tereza.admin', async () => {
      await send('<flexibee-batch id="journal-cert-as"><user><username>tereza.admin</username><email>t1@example.cz</email></user></flexibee-batch>', {}, 'tereza.admin');
      expect(journalRows(server.db).at(-1)).toMatchObject({
        batch_id: 'journal-cert-as',
        credential: `certificate:${devFingerprint}`,
        principal: 'certificate:dev client as tereza.admin',
        impersonated: 'tereza.admin',
        acting_user_key: 'tereza.admin',
        scope: 'root',
      });
    });

    test('when the server password principal acts as tereza.admin, then the journal names the server user and tereza.admin', async () => {
      await send('<flexibee-batch id="journal-pass-as"><user><username>tereza.admin</username><email>t2@example.cz</email></user></flexibee-batch>', principals[1][1](), 'tereza.admin');
      expect(journalRows(server.db).at(-1)).toMatchObject({
        batch_id: 'journal-pass-as',
        credential: `password:${SERVER_USER}`,
        principal: `password:${SERVER_USER} as tereza.admin`,
        impersonated: 'tereza.admin',
        acting_user_key: 'tereza.admin',
      });
    });

    test('when the dev certificate acts as itself, then the journal has no impersonated user', async () => {
      await server.batch('<flexibee-batch id="journal-cert"><user><username>tereza.admin</username><email>t3@example.cz</email></user></flexibee-batch>');
      expect(journalRows(server.db).at(-1)).toMatchObject({ batch_id: 'journal-cert', credential: `certificate:${devFingerprint}`, impersonated: null, acting_user_key: null });
    });

    test('when a session sends a batch, then the journal names the session user and no impersonation', async () => {
      const id = await sessionFor(server, 'tereza.admin', TEREZA_PASSWORD);
      const res = await server.request('PUT', '/v2/admin/batch', {
        client: null,
        headers: withSession(id),
        body: '<flexibee-batch id="journal-session"><user><username>tereza.admin</username><email>t4@example.cz</email></user></flexibee-batch>',
      });
      expect(statuses(res.body)).toEqual(['UPDATED']);
      expect(journalRows(server.db).at(-1)).toMatchObject({ batch_id: 'journal-session', credential: 'session:tereza.admin', impersonated: null, acting_user_key: 'tereza.admin' });
    });
  });

  describe('SPEC §6 end to end: a present permission applies, a missing one is FAILED and the rest of the batch applies', () => {
    interface Row {
      operation: string;
      holder: string;
      lacker: string;
      /** Made with full rights first, so each test has its own object. */
      prepare?: (i: number) => string;
      op: (i: number, actor: string) => string;
      applied: string;
      denied: string | ((i: number) => string);
    }
    const rows: Row[] = [
      {
        operation: 'create a user (createUser)',
        holder: 'creator',
        lacker: 'nobody',
        op: (i) => `<user><username>fresh.${i}</username></user>`,
        applied: 'CREATED',
        denied: 'permission denied: createUser required',
      },
      {
        operation: "change another user's password (changePassword)",
        holder: 'pw.changer',
        lacker: 'creator',
        op: (i) => `<user><username>target.user</username><password>new password ${i}</password></user>`,
        applied: 'UPDATED',
        denied: 'permission denied: changePassword required',
      },
      {
        operation: "change another user's other fields (createUser)",
        holder: 'creator',
        lacker: 'pw.changer',
        op: (i) => `<user><username>target.user</username><givenName>Name ${i}</givenName></user>`,
        applied: 'UPDATED',
        denied: 'permission denied: createUser required',
      },
      {
        operation: 'block another user (createUser)',
        holder: 'creator',
        lacker: 'nobody',
        prepare: (i) => `<user><username>blockee.${i}</username></user>`,
        op: (i) => `<user><username>blockee.${i}</username><blocked>true</blocked></user>`,
        applied: 'UPDATED',
        denied: 'permission denied: createUser required',
      },
      {
        operation: 'delete a user (createUser and licenseManagement)',
        holder: 'remover',
        lacker: 'half.remover',
        prepare: (i) => `<user><username>victim.${i}</username></user>`,
        op: (i) => `<user action="delete"><username>victim.${i}</username></user>`,
        applied: 'DELETED',
        denied: 'permission denied: licenseManagement required',
      },
      {
        operation: 'change permissions (grantPermission)',
        holder: 'granter',
        lacker: 'creator',
        prepare: (i) => `<user><username>perm.target.${i}</username></user>`,
        op: (i) => `<user><username>perm.target.${i}</username><permissions><createUser>true</createUser></permissions></user>`,
        applied: 'UPDATED',
        denied: 'permission denied: grantPermission required',
      },
      {
        operation: 'grant access (grantPermission, and ADMIN or manageAll)',
        holder: 'granter',
        lacker: 'nobody',
        prepare: (i) => `<user><username>access.target.${i}</username></user>`,
        op: (i) => `<access user="access.target.${i}" role="UCETNI">firma_a_s_</access>`,
        applied: 'CREATED',
        denied: 'permission denied: grantPermission required',
      },
      {
        operation: 'create a company (createCompany)',
        holder: 'builder',
        lacker: 'nobody',
        op: (i, actor) => `<company><id>built_${i}</id><name>Built ${i}</name><adminUser>${actor}</adminUser></company>`,
        applied: 'CREATED',
        denied: 'permission denied: createCompany required',
      },
      {
        operation: 'delete a company (deleteCompany)',
        holder: 'destroyer',
        lacker: 'builder',
        prepare: (i) => `<company><id>doomed_${i}</id><name>Doomed ${i}</name><adminUser>tereza.admin</adminUser></company>`,
        op: (i) => `<company action="delete"><id>doomed_${i}</id></company>`,
        applied: 'DELETED',
        denied: 'permission denied: deleteCompany required',
      },
      {
        operation: 'change a company (ADMIN in it)',
        holder: 'firm.admin',
        lacker: 'nobody',
        op: (i) => `<company><id>firma_a_s_</id><name>Firma ${i} a.s.</name></company>`,
        applied: 'UPDATED',
        denied: 'permission denied: ADMIN role in firma_a_s_ or manageAll required',
      },
      {
        operation: 'hide a company (manageAll)',
        holder: 'tereza.admin',
        lacker: 'firm.admin',
        prepare: (i) => `<company><id>hidden_${i}</id><name>Hidden ${i}</name><adminUser>tereza.admin</adminUser></company>`,
        op: (i) => `<company><id>hidden_${i}</id><show>false</show></company>`,
        applied: 'UPDATED',
        denied: (i) => `permission denied: ADMIN role in hidden_${i} or manageAll required`,
      },
    ];

    /** A change to the actor's own record needs no permission: the "rest of the batch". */
    const ownChange = (actor: string, i: number): string => `<user><username>${actor}</username><email>${actor}.${i}@example.cz</email></user>`;

    test.each(rows.map((r) => [r.operation, r] as const))('when the acting user may %s, then that operation is applied', async (_name, row) => {
      const i = ++n;
      if (row.prepare) expect(await asRoot(row.prepare(i))).not.toContain('FAILED');
      const result = await asUser(row.holder, row.op(i, row.holder) + ownChange(row.holder, i));
      expect(result.map((e) => e.status)).toEqual([row.applied, 'UPDATED']);
    });

    test.each(rows.map((r) => [r.operation, r] as const))('when the acting user may not %s, then that operation is FAILED with the reason, the rest is applied, and the operation changed nothing', async (_name, row) => {
      const i = ++n;
      if (row.prepare) expect(await asRoot(row.prepare(i))).not.toContain('FAILED');
      const result = await asUser(row.lacker, row.op(i, row.lacker) + ownChange(row.lacker, i));
      const denied = typeof row.denied === 'string' ? row.denied : row.denied(i);
      expect(result.map((e) => [e.status, e.message])).toEqual([
        ['FAILED', denied],
        ['UPDATED', undefined],
      ]);
      // Had the FAILED operation changed anything, the same operation with full rights would be SKIPPED.
      expect(await asRoot(row.op(i, row.lacker))).toEqual([row.applied]);
    });

    test('when a user with grantPermission grants a permission it does not have, then that grant is FAILED and a permission it has is granted', async () => {
      const i = ++n;
      await asRoot(`<user><username>escalate.${i}</username></user>`);
      const result = await asUser(
        'granter',
        `<user><username>escalate.${i}</username><permissions><deleteCompany>true</deleteCompany></permissions></user>
         <user><username>escalate.${i}</username><permissions><createUser>true</createUser></permissions></user>`,
      );
      expect(result.map((e) => [e.status, e.message])).toEqual([
        ['FAILED', 'permission denied: cannot grant deleteCompany without having it'],
        ['UPDATED', undefined],
      ]);
      const stored = await server.running.store.findUser('root', `escalate.${i}`);
      expect(stored?.permissions).toMatchObject({ deleteCompany: false, createUser: true });
    });

    test('when a user with grantPermission grants itself a permission it does not have, then it is FAILED', async () => {
      const result = await asUser('granter', '<user><username>granter</username><permissions><licenseManagement>true</licenseManagement></permissions></user>');
      expect(result).toEqual([expect.objectContaining({ status: 'FAILED', message: 'permission denied: cannot grant licenseManagement without having it' })]);
      expect((await server.running.store.findUser('root', 'granter'))?.permissions.licenseManagement).toBe(false);
    });

    test('when a user creates a user with a permission it does not have, then the create is FAILED and no user is made', async () => {
      const i = ++n;
      const result = await asUser('granter', `<user><username>overpowered.${i}</username><permissions><deleteCompany>true</deleteCompany></permissions></user>`);
      expect(result).toEqual([expect.objectContaining({ status: 'FAILED', message: 'permission denied: cannot grant deleteCompany without having it' })]);
      expect(await server.running.store.findUser('root', `overpowered.${i}`)).toBeUndefined();
    });

    test('when a user without any permission changes its own password, then it is applied', async () => {
      const result = await asUser('nobody', `<user><username>nobody</username><password>nobody new password ${++n}</password></user>`);
      expect(result.map((e) => e.status)).toEqual(['UPDATED']);
    });

    test('when a user without any permission sends what is already stored, then it is SKIPPED, not FAILED', async () => {
      const result = await asUser('nobody', '<user><username>target.user</username><email>target@example.cz</email></user><access user="firm.admin" role="ADMIN">firma_a_s_</access>');
      expect(result.map((e) => e.status)).toEqual(['SKIPPED', 'SKIPPED']);
    });
  });
});
