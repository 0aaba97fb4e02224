/**
 * SPEC §7.6 and §7 over HTTPS: `flexi-admin fingerprint add --scope GROUP` binds a partner's
 * certificate to a group while the server runs on the same store, `fingerprint list` shows each
 * scope, and that certificate sees and changes its group's subtree only — what lies outside
 * answers as if it did not exist.
 */
import { issueCertificate } from '../../src/pki/dev-pki';
import { fingerprintOfCertificate } from '../../src/pki/fingerprint';
import { lines, runCli } from '../support/cli';
import { entries, startTestServer, type Response, type TestServer } from '../support/server';
import { dumpStore, queryRows } from '../support/stores';
import { batchDoc, companyOp, deleteGroupOp, deleteUserOp, envelopeMessage, groupOp, listed, userOp } from '../support/tenants';

describe('a partner certificate scoped to its license group', () => {
  let server: TestServer;
  let partner: { cert: string; key: string };
  let fingerprint: string;
  const asPartner = (method: string, path: string, body?: string): Promise<Response> => server.request(method, path, { client: partner, ...(body === undefined ? {} : { body }) });
  const partnerBatch = (id: string, ...ops: string[]): Promise<Response> => asPartner('PUT', '/admin/batch', batchDoc(id, ...ops));
  const cli = (...args: string[]): ReturnType<typeof runCli> => runCli(args, { env: { FLEXI_DB: server.db } });
  /** The rows of partner_b and of root's own objects, which the partner must never change. */
  const outsideRows = (): unknown => {
    const dump = dumpStore(server.db);
    const outside = (r: Record<string, unknown>): boolean => r.license_group === 'partner_b' || r.license_group === 'root';
    return {
      users: (dump.users as Array<Record<string, unknown>>).filter(outside),
      companies: (dump.companies as Array<Record<string, unknown>>).filter(outside),
      access: (dump.access as Array<Record<string, unknown>>).filter((a) => a.company_id === 'fb' || a.company_id === 'froot'),
      // Root's seats used counts the partner's users too; its own fields are not the partner's.
      groups: (dump.license_groups as Array<Record<string, unknown>>)
        .filter((g) => g.id === 'partner_b' || g.id === 'root')
        .map(({ seats_used: seatsUsed, updated_at: updatedAt, ...g }) => (g.id === 'root' ? g : { ...g, seats_used: seatsUsed, updated_at: updatedAt })),
    };
  };

  beforeAll(async () => {
    server = await startTestServer();
    const issued = issueCertificate({ commonName: 'partner a portal', kind: 'client' });
    partner = { cert: issued.certPem, key: issued.keyPem };
    fingerprint = fingerprintOfCertificate(issued.certPem);
    const seeded = await server.batch(
      batchDoc(
        'root-seed',
        groupOp('partner_a', { name: 'Partner A', seats: 4 }),
        groupOp('cust_a1', { name: 'Customer 1 of A', parent: 'partner_a' }),
        groupOp('partner_b', { name: 'Partner B' }),
        userOp('a.user', { licenseGroup: 'partner_a' }),
        userOp('b.user', { licenseGroup: 'partner_b' }),
        userOp('root.user'),
        companyOp('fa', { name: 'Firma A', adminUser: 'a.user', licenseGroup: 'partner_a' }),
        companyOp('fb', { name: 'Firma B', adminUser: 'b.user', licenseGroup: 'partner_b' }),
        companyOp('froot', { name: 'Firma root', adminUser: 'root.user' }),
        '<access user="a.user" role="UCETNI">fb</access>',
      ),
    );
    expect(entries(seeded.body).filter((e) => e.status !== 'CREATED')).toEqual([]);
  });
  afterAll(() => server.close());

  test('when fingerprint add names a group while the server runs, then the certificate is bound to it and fingerprint list shows each scope; a group that does not exist exits 1 with the reason and registers nothing', async () => {
    // Before it is registered, the certificate is refused like any stranger.
    expect((await asPartner('GET', '/u.json')).status).toBe(401);
    expect(await cli('fingerprint', 'add', fingerprint, '--scope', 'partner_a', '--label', 'partner a')).toEqual({
      code: 0,
      stdout: `added ${fingerprint} (scope partner_a, label "partner a")\n`,
      stderr: '',
    });
    const other = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01';
    expect(await cli('fingerprint', 'add', other, '--scope', 'partner_x')).toEqual({ code: 1, stdout: '', stderr: "flexi-admin: license group 'partner_x' does not exist\n" });
    const listedLines = lines((await cli('fingerprint', 'list')).stdout);
    expect(listedLines).toHaveLength(2);
    expect(listedLines).toContainEqual(`${fingerprint}\tpartner_a\tactive\tpartner a`);
    expect(listedLines).toContainEqual(expect.stringMatching(/^[0-9A-F:]{59}\troot\tactive\tdev client$/));
    expect(queryRows(server.db, 'SELECT scope FROM fingerprints WHERE fingerprint = ?', other)).toEqual([]);
    expect((await asPartner('GET', '/u.json')).status).toBe(200);
  });

  test('when the partner reads, then it sees its own subtree only, and what lies outside answers exactly as what does not exist', async () => {
    const names = async (path: string, key: string, field: string): Promise<unknown[]> => listed(await asPartner('GET', path), key).map((r) => r[field]);
    expect(await names('/u.json', 'user', 'username')).toEqual(['a.user']);
    expect(await names('/c.json', 'company', 'dbNazev')).toEqual(['fa']);
    expect(await names('/g.json', 'group', 'id')).toEqual(['cust_a1', 'partner_a']);
    // a.user's grant in fb (partner_b) is not the partner's to see.
    expect(listed(await asPartner('GET', '/u/a.user.json'), 'user')[0].access).toEqual([{ company: 'fa', role: 'ADMIN' }]);
    // [path of something outside, its id, path of something that exists nowhere, that id]
    for (const [outside, outsideId, nowhere, nowhereId] of [
      ['/u/b.user.json', 'b.user', '/u/no.body.json', 'no.body'],
      ['/u/root.user.xml', 'root.user', '/u/no.body.xml', 'no.body'],
      ['/u/b.user/tenants.json', 'b.user', '/u/no.body/tenants.json', 'no.body'],
      ['/g/partner_b.json', 'partner_b', '/g/no_group.json', 'no_group'],
      ['/g/root.xml', 'root', '/g/no_group.xml', 'no_group'],
      ['/admin/batch/root-seed', 'root-seed', '/admin/batch/never-sent', 'never-sent'],
      ['/u.json?group=partner_b', 'partner_b', '/u.json?group=no_group', 'no_group'],
      ['/c.xml?group=root', 'root', '/c.xml?group=no_group', 'no_group'],
    ]) {
      const [a, b] = [await asPartner('GET', outside), await asPartner('GET', nowhere)];
      expect(a.status).toBe(404);
      expect([a.status, a.headers['content-type'], a.body.split(outsideId).join('X')]).toEqual([b.status, b.headers['content-type'], b.body.split(nowhereId).join('X')]);
    }
  });

  test('when the partner sends a batch, then it creates and changes inside its group, and everything outside is as if it did not exist — except global ids, which are "not available"', async () => {
    const before = outsideRows();
    const res = await partnerBatch(
      'partner-batch',
      userOp('a.new'),
      userOp('a.cust', { licenseGroup: 'cust_a1' }),
      companyOp('fa1', { name: 'Firma zakaznika', adminUser: 'a.cust', licenseGroup: 'cust_a1' }),
      groupOp('cust_a2', { name: 'Customer 2 of A' }),
      groupOp('partner_a', { name: 'Partner A renamed' }),
      groupOp('cust_x', { name: 'Under B', parent: 'partner_b' }),
      groupOp('partner_b', { name: 'Partner B renamed' }),
      deleteGroupOp('partner_b'),
      userOp('b.user', { email: 'b@example.com' }),
      deleteUserOp('b.user'),
      userOp('a.user', { licenseGroup: 'partner_b' }),
      // With an admin user, so that creating fb would succeed were the id free: only then is a taken id "not available" (docs/security.md).
      companyOp('fb', { name: 'Firma B renamed', adminUser: 'a.new' }),
      '<company action="delete"><id>fb</id></company>',
      '<access user="a.user" role="ADMIN">fb</access>',
      '<access user="a.user" action="delete">fb</access>',
      '<access user="a.user" role="UCETNI"/>',
      userOp('a.extra'),
      userOp('a.over'),
    );
    expect(res.status).toBe(200);
    expect(entries(res.body).map((e) => [e.type, e.id, e.status, e.message])).toEqual([
      ['USER', 'a.new', 'CREATED', undefined],
      ['USER', 'a.cust', 'CREATED', undefined],
      ['COMPANY', 'fa1', 'CREATED', undefined],
      ['LICENSE_GROUP', 'cust_a2', 'CREATED', undefined],
      ['LICENSE_GROUP', 'partner_a', 'FAILED', 'permission denied: license group partner_a is your own group; it is changed from above'],
      ['LICENSE_GROUP', 'cust_x', 'FAILED', "license group 'partner_b' does not exist"],
      ['LICENSE_GROUP', 'partner_b', 'FAILED', 'license group id partner_b is not available'],
      ['LICENSE_GROUP', 'partner_b', 'SKIPPED', 'license group does not exist'],
      ['USER', 'b.user', 'FAILED', 'username b.user is not available'],
      ['USER', 'b.user', 'SKIPPED', 'user does not exist'],
      ['USER', 'a.user', 'FAILED', "license group 'partner_b' does not exist"],
      ['COMPANY', 'fb', 'FAILED', 'company id fb is not available'],
      ['COMPANY', 'fb', 'SKIPPED', 'company does not exist'],
      ['ACCESS_LIST', 'a.user@fb', 'FAILED', "company 'fb' does not exist"],
      ['ACCESS_LIST', 'a.user@fb', 'SKIPPED', 'company does not exist'],
      // Only the grant the partner can see changes; the one in fb stays UCETNI.
      ['ACCESS_LIST', 'a.user@*', 'UPDATED', undefined],
      ['USER', 'a.extra', 'CREATED', undefined],
      ['USER', 'a.over', 'FAILED', 'no free license in group partner_a (4 of 4 used)'],
    ]);
    expect(outsideRows()).toEqual(before);
    expect(queryRows(server.db, "SELECT key, license_group FROM users WHERE key LIKE 'a.%' ORDER BY key")).toEqual([
      { key: 'a.cust', license_group: 'cust_a1' },
      { key: 'a.extra', license_group: 'partner_a' },
      { key: 'a.new', license_group: 'partner_a' },
      { key: 'a.user', license_group: 'partner_a' },
    ]);
    expect(queryRows(server.db, "SELECT company_id, role FROM access WHERE user_key = 'a.user' ORDER BY company_id")).toEqual([
      { company_id: 'fa', role: 'UCETNI' },
      { company_id: 'fb', role: 'UCETNI' },
    ]);
    expect(queryRows(server.db, "SELECT parent_id FROM license_groups WHERE id = 'cust_a2'")).toEqual([{ parent_id: 'partner_a' }]);

    // The journal entry is the partner's, in its scope; root reads it too, as it lies in root's scope.
    expect(queryRows(server.db, "SELECT scope, credential FROM batch_journal WHERE batch_id = 'partner-batch'")).toEqual([{ scope: 'partner_a', credential: `certificate:${fingerprint}` }]);
    expect((await asPartner('GET', '/admin/batch/partner-batch')).body).toBe(res.body);
    expect((await server.request('GET', '/admin/batch/partner-batch')).body).toBe(res.body);
    const missing = await asPartner('GET', '/admin/batch/root-seed');
    expect([missing.status, envelopeMessage(missing)]).toEqual([404, 'No batch with id root-seed has been executed in your scope.']);
  });
});
