/**
 * SPEC §7 end to end over HTTPS, on the store of the jest project: `<licenseGroup>` create,
 * update, move and delete (answers, the rows of license_groups and of the closure table, seats
 * used, re-sending, the journal), users and companies in groups and moved between them, the
 * effects of group parameters, and the reads: /g, /g/{id}, /u/{login}/tenants, `?group=`, and
 * the paging of the listings.
 */
import { issueCertificate } from '../../src/pki/dev-pki';
import { fingerprintOfCertificate } from '../../src/pki/fingerprint';
import { storedHashMatches, withSession, sessionFor } from '../support/auth';
import { entries, startTestServer, type Response, type TestServer } from '../support/server';
import { dumpStore, journalRows, queryRows } from '../support/stores';
import {
  batchDoc,
  closureOf,
  closureRows,
  companyOp,
  deleteGroupOp,
  deleteUserOp,
  envelopeMessage,
  groupOp,
  groupRows,
  listed,
  okJson,
  seatsInUse,
  seatsUsed,
  userOp,
} from '../support/tenants';

/** [id, status, message?] of every entry of a batch answer. */
const outcome = (res: Response): Array<[string, string, string?]> => {
  expect(res.status).toBe(200);
  return entries(res.body).map((e) => (e.message === undefined ? [e.id, e.status] : [e.id, e.status, e.message]));
};

/** The seats_used counters agree with the users' rows, and the closure table with the parent links. */
function expectConsistent(db: string): void {
  expect(seatsUsed(db)).toEqual(seatsInUse(db));
  expect(closureRows(db)).toEqual(closureOf(groupRows(db)));
}

describe('license groups: create, update, move and delete (SPEC §7.1)', () => {
  let server: TestServer;
  const send = (id: string, ...ops: string[]): Promise<Response> => server.batch(batchDoc(id, ...ops));

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  const TREE = [
    groupOp('partner_a', { name: 'Partner A s.r.o.', parent: 'root', seats: 10, params: { defaultRole: 'UCETNI', country: 'SK' } }),
    groupOp('customer_a1', { name: 'Customer A1', parent: 'partner_a', seats: 3, params: { passwordHash: 'sha512' } }),
    groupOp('team_a1x', { name: 'Team X', parent: 'customer_a1' }),
    groupOp('partner_b', { name: 'Partner B' }),
  ];

  test('when a batch creates a tree three levels deep, then every group is CREATED with its row and closure rows, and the same batch again is all SKIPPED and changes nothing', async () => {
    const first = await send('groups-tree', ...TREE);
    expect(entries(first.body).map((e) => [e.type, e.action, e.id, e.status])).toEqual([
      ['LICENSE_GROUP', 'CREATE_UPDATE', 'partner_a', 'CREATED'],
      ['LICENSE_GROUP', 'CREATE_UPDATE', 'customer_a1', 'CREATED'],
      ['LICENSE_GROUP', 'CREATE_UPDATE', 'team_a1x', 'CREATED'],
      ['LICENSE_GROUP', 'CREATE_UPDATE', 'partner_b', 'CREATED'],
    ]);
    expect(first.body).toContain('<stats created="4" updated="0" deleted="0" skipped="0" failed="0"/>');
    expect(groupRows(server.db)).toEqual([
      { id: 'customer_a1', name: 'Customer A1', parent_id: 'partner_a', seats: 3, seats_used: 0, params: { passwordHash: 'sha512' } },
      { id: 'partner_a', name: 'Partner A s.r.o.', parent_id: 'root', seats: 10, seats_used: 0, params: { defaultRole: 'UCETNI', country: 'SK' } },
      // Without <parent>, a group is created in the principal's own group: root for the dev client.
      { id: 'partner_b', name: 'Partner B', parent_id: 'root', seats: null, seats_used: 0, params: {} },
      { id: 'root', name: 'root', parent_id: null, seats: null, seats_used: 0, params: {} },
      { id: 'team_a1x', name: 'Team X', parent_id: 'customer_a1', seats: null, seats_used: 0, params: {} },
    ]);
    expect(closureRows(server.db)).toEqual([
      'customer_a1>customer_a1@0',
      'customer_a1>team_a1x@1',
      'partner_a>customer_a1@1',
      'partner_a>partner_a@0',
      'partner_a>team_a1x@2',
      'partner_b>partner_b@0',
      'root>customer_a1@2',
      'root>partner_a@1',
      'root>partner_b@1',
      'root>root@0',
      'root>team_a1x@3',
      'team_a1x>team_a1x@0',
    ]);

    const before = dumpStore(server.db);
    const again = await send('groups-tree', ...TREE);
    expect(outcome(again)).toEqual([
      ['partner_a', 'SKIPPED'],
      ['customer_a1', 'SKIPPED'],
      ['team_a1x', 'SKIPPED'],
      ['partner_b', 'SKIPPED'],
    ]);
    expect(dumpStore(server.db)).toEqual(before);

    // The journal holds both executions, in the root scope; GET /admin/batch/{id} answers the newest.
    const journalled = journalRows(server.db).filter((j) => j.batch_id === 'groups-tree');
    expect(journalled.map((j) => [j.scope, j.result_xml])).toEqual([
      ['root', first.body],
      ['root', again.body],
    ]);
    const read = await server.request('GET', '/admin/batch/groups-tree');
    expect(read.status).toBe(200);
    expect(read.body).toBe(again.body);
  });

  test('when a group is changed, then only what is given changes: name, seats (an empty <seats/> removes the limit) and parameters (an empty <param/> removes one)', async () => {
    expect(outcome(await send('groups-update', groupOp('partner_a', { name: 'Partner A a.s.', seats: 12, params: { country: null } })))).toEqual([['partner_a', 'UPDATED']]);
    expect(groupRows(server.db).find((g) => g.id === 'partner_a')).toEqual({
      id: 'partner_a',
      name: 'Partner A a.s.',
      parent_id: 'root',
      seats: 12,
      seats_used: 0,
      params: { defaultRole: 'UCETNI' },
    });
    expect(outcome(await send('groups-update', groupOp('partner_a', { name: 'Partner A a.s.', seats: 12, params: { country: null } })))).toEqual([['partner_a', 'SKIPPED']]);
    expect(outcome(await send('groups-unlimited', groupOp('team_a1x', { seats: 4 }), groupOp('team_a1x', { seats: null })))).toEqual([
      ['team_a1x', 'UPDATED'],
      ['team_a1x', 'UPDATED'],
    ]);
    expect(groupRows(server.db).find((g) => g.id === 'team_a1x')?.seats).toBeNull();

    expect(
      outcome(
        await send(
          'groups-bad-params',
          groupOp('partner_b', { params: { colour: 'blue' } }),
          groupOp('partner_b', { params: { defaultRole: 'BOSS' } }),
          groupOp('partner_b', { params: { passwordHash: 'rot13' } }),
          groupOp('partner_b', { params: { country: 'AT' } }),
          groupOp('partner_b', { params: { taskUser: 'nobody.here' } }),
          groupOp('root', { name: 'the root' }),
          groupOp('root', { parent: 'partner_b' }),
          groupOp('new_group'),
        ),
      ),
    ).toEqual([
      ['partner_b', 'FAILED', "unknown parameter 'colour'; expected defaultRole, passwordHash, country, taskUser"],
      ['partner_b', 'FAILED', expect.stringMatching(/^parameter defaultRole must be a role code, one of ADMIN, .*; not 'BOSS'$/)],
      ['partner_b', 'FAILED', "parameter passwordHash must be one of sha256, sha512, sha1, md5, pbkdf2; not 'rot13'"],
      ['partner_b', 'FAILED', "parameter country must be one of CZ, SK; not 'AT'"],
      ['partner_b', 'FAILED', "parameter taskUser: user 'nobody.here' does not exist"],
      ['root', 'FAILED', 'license group root cannot be renamed or given a parent'],
      ['root', 'FAILED', 'license group root cannot be renamed or given a parent'],
      ['new_group', 'FAILED', "license group 'new_group' does not exist, and a license group cannot be created without a <name>"],
    ]);
  });

  test('when users and companies are created in groups and moved between them, then each lands where it says and the seats used of every group up to root follow', async () => {
    const res = await send(
      'groups-members',
      userOp('ua1', { licenseGroup: 'customer_a1' }),
      userOp('ua2', { licenseGroup: 'team_a1x', userType: 'REST_API' }),
      userOp('ua3', { licenseGroup: 'team_a1x', userType: 'READ_ONLY' }),
      userOp('ub1', { licenseGroup: 'partner_b' }),
      userOp('ur'),
      companyOp('c_a1', { name: 'C A1', country: 'CZ', adminUser: 'ua1', licenseGroup: 'customer_a1' }),
      companyOp('c_b', { name: 'C B', country: 'CZ', adminUser: 'ub1', licenseGroup: 'partner_b' }),
      userOp('lost', { licenseGroup: 'nowhere' }),
      companyOp('c_lost', { name: 'C lost', adminUser: 'ur', licenseGroup: 'nowhere' }),
    );
    expect(outcome(res)).toEqual([
      ['ua1', 'CREATED'],
      ['ua2', 'CREATED'],
      ['ua3', 'CREATED'],
      ['ub1', 'CREATED'],
      ['ur', 'CREATED'],
      ['c_a1', 'CREATED'],
      ['c_b', 'CREATED'],
      ['lost', 'FAILED', "license group 'nowhere' does not exist"],
      ['c_lost', 'FAILED', "license group 'nowhere' does not exist"],
    ]);
    expect(queryRows(server.db, 'SELECT key, license_group FROM users ORDER BY key')).toEqual([
      { key: 'ua1', license_group: 'customer_a1' },
      { key: 'ua2', license_group: 'team_a1x' },
      { key: 'ua3', license_group: 'team_a1x' },
      { key: 'ub1', license_group: 'partner_b' },
      { key: 'ur', license_group: 'root' },
    ]);
    // The READ_ONLY ua3 takes no seat.
    expect(seatsUsed(server.db)).toEqual({ root: 4, partner_a: 2, customer_a1: 2, team_a1x: 1, partner_b: 1 });
    expectConsistent(server.db);

    const users = listed(await server.request('GET', '/u.json?limit=0'), 'user');
    expect(users.map((u) => [u.username, u.licenseGroup])).toEqual([
      ['ua1', 'customer_a1'],
      ['ua2', 'team_a1x'],
      ['ua3', 'team_a1x'],
      ['ub1', 'partner_b'],
      ['ur', 'root'],
    ]);
    expect(listed(await server.request('GET', '/u/ua2.json'), 'user')[0]).toMatchObject({ username: 'ua2', licenseGroup: 'team_a1x' });
    expect(listed(await server.request('GET', '/c.json'), 'company').map((c) => [c.dbNazev, c.licenseGroup])).toEqual([
      ['c_a1', 'customer_a1'],
      ['c_b', 'partner_b'],
    ]);

    const moved = await send(
      'groups-moves',
      userOp('ua2', { licenseGroup: 'partner_b' }),
      userOp('ua3', { licenseGroup: 'root' }),
      companyOp('c_a1', { licenseGroup: 'partner_b' }),
      userOp('ur', { licenseGroup: 'nowhere' }),
    );
    expect(outcome(moved)).toEqual([
      ['ua2', 'UPDATED'],
      ['ua3', 'UPDATED'],
      ['c_a1', 'UPDATED'],
      ['ur', 'FAILED', "license group 'nowhere' does not exist"],
    ]);
    expect(seatsUsed(server.db)).toEqual({ root: 4, partner_a: 1, customer_a1: 1, team_a1x: 0, partner_b: 2 });
    expect(queryRows(server.db, "SELECT license_group FROM companies WHERE id = 'c_a1'")).toEqual([{ license_group: 'partner_b' }]);
    expectConsistent(server.db);
    // A company keeps its grants when it moves.
    expect(queryRows(server.db, "SELECT user_key, role FROM access WHERE company_id = 'c_a1'")).toEqual([{ user_key: 'ua1', role: 'ADMIN' }]);

    const again = await send(
      'groups-moves',
      userOp('ua2', { licenseGroup: 'partner_b' }),
      userOp('ua3', { licenseGroup: 'root' }),
      companyOp('c_a1', { licenseGroup: 'partner_b' }),
      userOp('ur', { licenseGroup: 'nowhere' }),
    );
    expect(outcome(again).map(([, s]) => s)).toEqual(['SKIPPED', 'SKIPPED', 'SKIPPED', 'FAILED']);
  });

  test('when users take the last seats of a group, then the next one is FAILED naming the group, READ_ONLY users are free, a delete frees its seat for the rest of the batch, and restoring or upgrading a user checks again', async () => {
    // customer_a1: 3 seats, ua1 takes one.
    const res = await send(
      'groups-seats',
      userOp('s1', { licenseGroup: 'customer_a1' }),
      userOp('s2', { licenseGroup: 'team_a1x' }),
      userOp('s3', { licenseGroup: 'customer_a1' }),
      userOp('viewer', { licenseGroup: 'customer_a1', userType: 'READ_ONLY' }),
      deleteUserOp('s1'),
      userOp('s3', { licenseGroup: 'customer_a1' }),
      userOp('s1'),
      userOp('viewer', { userType: 'NORMAL' }),
      userOp('ur', { licenseGroup: 'team_a1x' }),
      groupOp('customer_a1', { seats: 2 }),
    );
    expect(outcome(res)).toEqual([
      ['s1', 'CREATED'],
      ['s2', 'CREATED'],
      ['s3', 'FAILED', 'no free license in group customer_a1 (3 of 3 used)'],
      ['viewer', 'CREATED'],
      ['s1', 'DELETED'],
      ['s3', 'CREATED'],
      ['s1', 'FAILED', 'no free license in group customer_a1 (3 of 3 used)'],
      ['viewer', 'FAILED', 'no free license in group customer_a1 (3 of 3 used)'],
      ['ur', 'FAILED', 'no free license in group customer_a1 (3 of 3 used)'],
      ['customer_a1', 'FAILED', 'the seats of license group customer_a1 cannot be 2: 3 are in use'],
    ]);
    expect(seatsUsed(server.db)).toMatchObject({ customer_a1: 3, team_a1x: 1, partner_a: 3 });
    expectConsistent(server.db);

    // The limit of an ancestor holds for its whole subtree: partner_a has 12, so a 13th seat below it fails there.
    const fill = Array.from({ length: 10 }, (_, i) => userOp(`fill${i}`, { licenseGroup: 'partner_a' }));
    const filled = await send('groups-fill', ...fill, groupOp('customer_a1', { seats: 10 }), userOp('s4', { licenseGroup: 'customer_a1' }));
    expect(outcome(filled).slice(-3)).toEqual([
      ['fill9', 'FAILED', 'no free license in group partner_a (12 of 12 used)'],
      ['customer_a1', 'UPDATED'],
      ['s4', 'FAILED', 'no free license in group partner_a (12 of 12 used)'],
    ]);
    expect(seatsUsed(server.db)).toMatchObject({ partner_a: 12, customer_a1: 3 });
    expectConsistent(server.db);
  });

  test('when a group moves with its subtree, then its closure rows and the seats of both chains of ancestors follow; a cycle or a full ancestor is FAILED', async () => {
    const before = seatsUsed(server.db);
    const res = await send(
      'groups-move-tree',
      groupOp('customer_a1', { parent: 'partner_b' }),
      groupOp('partner_b', { parent: 'team_a1x' }),
      groupOp('partner_b', { parent: 'partner_b' }),
      groupOp('small', { name: 'Small', seats: 1 }),
      groupOp('customer_a1', { parent: 'small' }),
      groupOp('customer_a1', { parent: 'nowhere' }),
    );
    expect(outcome(res)).toEqual([
      ['customer_a1', 'UPDATED'],
      ['partner_b', 'FAILED', 'license group partner_b cannot move under team_a1x: team_a1x lies inside it'],
      ['partner_b', 'FAILED', 'license group partner_b cannot move under partner_b: partner_b is the group itself'],
      ['small', 'CREATED'],
      ['customer_a1', 'FAILED', `license group customer_a1 cannot move under small: its ${before.customer_a1} seats do not fit in group small (0 of 1 used)`],
      ['customer_a1', 'FAILED', "license group 'nowhere' does not exist"],
    ]);
    const after = seatsUsed(server.db);
    expect(after).toEqual({
      ...before,
      partner_a: before.partner_a - before.customer_a1,
      partner_b: before.partner_b + before.customer_a1,
      small: 0,
    });
    expect(closureRows(server.db).filter((r) => r.includes('>team_a1x@'))).toEqual(['customer_a1>team_a1x@1', 'partner_b>team_a1x@2', 'root>team_a1x@3', 'team_a1x>team_a1x@0']);
    expectConsistent(server.db);
    expect(listed(await server.request('GET', '/g/team_a1x.json'), 'group')[0].path).toEqual(['root', 'partner_b', 'customer_a1', 'team_a1x']);
  });

  test('when a group that still holds something is deleted, then it is FAILED naming what is left; once empty it is DELETED, and what still names it (deleted users, revoked certificates) moves to its parent', async () => {
    const certificate = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:99';
    const setup = await send(
      'groups-gone-setup',
      groupOp('gone', { name: 'Gone' }),
      groupOp('gone_child', { name: 'Gone child', parent: 'gone' }),
      userOp('d1', { licenseGroup: 'gone' }),
      userOp('d2', { licenseGroup: 'gone' }),
      companyOp('dc', { name: 'DC', adminUser: 'd1', licenseGroup: 'gone' }),
    );
    expect(outcome(setup).map(([, s]) => s)).toEqual(['CREATED', 'CREATED', 'CREATED', 'CREATED', 'CREATED']);
    expect(await server.running.store.addFingerprint({ fingerprint: certificate, scope: 'gone', label: 'gone partner' })).toBe('added');

    const refused = await send('groups-gone-1', deleteGroupOp('gone'), deleteGroupOp('root'), deleteGroupOp('never_was'));
    expect(outcome(refused)).toEqual([
      ['gone', 'FAILED', 'license group gone is not empty: 1 group, 2 users, 1 company, 1 certificate'],
      ['root', 'FAILED', 'license group root cannot be deleted'],
      ['never_was', 'SKIPPED', 'license group does not exist'],
    ]);

    const emptied = await send(
      'groups-gone-2',
      deleteGroupOp('gone_child'),
      deleteUserOp('d1'),
      deleteGroupOp('gone'),
      userOp('d2', { licenseGroup: 'root' }),
      `<company action="delete"><id>dc</id></company>`,
      deleteGroupOp('gone'),
    );
    expect(outcome(emptied)).toEqual([
      ['gone_child', 'DELETED'],
      ['d1', 'DELETED'],
      // Deleted users do not count: what is left is d2, the company and the certificate.
      ['gone', 'FAILED', 'license group gone is not empty: 1 user, 1 company, 1 certificate'],
      ['d2', 'UPDATED'],
      ['dc', 'DELETED'],
      ['gone', 'FAILED', 'license group gone is not empty: 1 certificate'],
    ]);
    expect(await server.running.store.revokeFingerprint(certificate)).toBe(true);
    expect(outcome(await send('groups-gone-3', deleteGroupOp('gone')))).toEqual([['gone', 'DELETED']]);
    expect(outcome(await send('groups-gone-3', deleteGroupOp('gone')))).toEqual([['gone', 'SKIPPED', 'license group does not exist']]);

    expect(groupRows(server.db).map((g) => g.id)).not.toContain('gone');
    expect(closureRows(server.db).filter((r) => r.includes('gone'))).toEqual([]);
    expect(queryRows(server.db, "SELECT key, license_group, deleted FROM users WHERE key IN ('d1', 'd2') ORDER BY key")).toEqual([
      { key: 'd1', license_group: 'root', deleted: 1 },
      { key: 'd2', license_group: 'root', deleted: 0 },
    ]);
    expect(queryRows(server.db, 'SELECT scope FROM fingerprints WHERE fingerprint = ?', certificate)).toEqual([{ scope: 'root' }]);
    expectConsistent(server.db);

    // The deleted user comes back where its group's contents went.
    expect(outcome(await send('groups-gone-4', userOp('d1')))).toEqual([['d1', 'CREATED', 'restored']]);
    expect(listed(await server.request('GET', '/u/d1.json'), 'user')[0].licenseGroup).toBe('root');
  });
});

describe('group parameters and what they do (SPEC §7.3), and reading groups and tenants (SPEC §7.4)', () => {
  let server: TestServer;
  /** A certificate bound to partner group pa: it sees pa's subtree only. */
  let partner: { cert: string; key: string };
  const send = (id: string, ...ops: string[]): Promise<Response> => server.batch(batchDoc(id, ...ops));
  const asPartner = (path: string): Promise<Response> => server.request('GET', path, { client: partner });

  const PASSWORDS: Record<string, string> = {
    u_root: 'the password of u_root',
    u_pa: 'the password of u_pa',
    u_sub: 'the password of u_sub',
    u_own: 'the password of u_own',
    u_subsub: 'the password of u_subsub',
  };
  const GROUPS = [
    groupOp('pa', { name: 'Partner A', seats: 20, params: { defaultRole: 'UCETNI', country: 'SK', passwordHash: 'sha512' } }),
    groupOp('pa_sub', { name: 'Customer of A', parent: 'pa', seats: 5, params: { passwordHash: 'pbkdf2' } }),
    groupOp('pa_sub_sub', { name: 'Team of the customer', parent: 'pa_sub', params: { defaultRole: 'SKLADNIK' } }),
    groupOp('pb', { name: 'Partner B' }),
  ];
  const USERS = [
    userOp('u_root', { password: PASSWORDS.u_root }),
    userOp('u_pa', { password: PASSWORDS.u_pa, licenseGroup: 'pa' }),
    userOp('u_sub', { password: PASSWORDS.u_sub, licenseGroup: 'pa_sub' }),
    userOp('u_own', { password: PASSWORDS.u_own, licenseGroup: 'pa_sub_sub', defaultRole: 'OBCHODNIK' }),
    userOp('u_subsub', { password: PASSWORDS.u_subsub, licenseGroup: 'pa_sub_sub' }),
    userOp('u_pb', { licenseGroup: 'pb' }),
  ];
  const SEED = [
    ...GROUPS,
    ...USERS,
    // No country: the group's (SK, from pa), else CZ.
    companyOp('c_sub', { name: 'Firma pod A', adminUser: 'u_root', licenseGroup: 'pa_sub' }),
    companyOp('c_pa_cz', { name: 'Firma A CZ', country: 'CZ', adminUser: 'u_root', licenseGroup: 'pa' }),
    companyOp('c_root', { name: 'Firma v rootu', adminUser: 'u_root' }),
    companyOp('c_pb', { name: 'Firma B', adminUser: 'u_pb', licenseGroup: 'pb' }),
    `<access user="u_pa">c_sub</access>`,
    `<access user="u_sub">c_sub</access>`,
    `<access user="u_own">c_sub</access>`,
    `<access user="u_subsub">c_sub</access>`,
    `<access user="u_pa">c_pa_cz</access>`,
    `<access user="u_pa" role="UCETNI">c_root</access>`,
  ];

  beforeAll(async () => {
    server = await startTestServer({ pbkdf2Iterations: 1000 });
    const issued = issueCertificate({ commonName: 'partner a', kind: 'client' });
    partner = { cert: issued.certPem, key: issued.keyPem };
    const seeded = await send('params-seed', ...SEED);
    expect(entries(seeded.body).filter((e) => e.status !== 'CREATED')).toEqual([]);
    await server.running.store.addFingerprint({ fingerprint: fingerprintOfCertificate(issued.certPem), scope: 'pa', label: 'partner a' });
  });
  afterAll(() => server.close());

  test('when a grant <access>C</access> is new, then its role is the user\'s own defaultRole, else the nearest group\'s on the way up, else UZIVATEL; an existing grant is kept', async () => {
    expect(queryRows(server.db, "SELECT user_key, role FROM access WHERE company_id = 'c_sub' ORDER BY user_key")).toEqual([
      { user_key: 'u_own', role: 'OBCHODNIK' },
      { user_key: 'u_pa', role: 'UCETNI' },
      { user_key: 'u_root', role: 'ADMIN' },
      { user_key: 'u_sub', role: 'UCETNI' },
      { user_key: 'u_subsub', role: 'SKLADNIK' },
    ]);
    expect(listed(await server.request('GET', '/u/u_subsub.json'), 'user')[0].access).toEqual([{ company: 'c_sub', role: 'SKLADNIK' }]);
    // Another default for the group changes no grant that exists; the user's next new grant takes it.
    const changed = await send('params-role', groupOp('pa_sub_sub', { params: { defaultRole: 'MZDOVYUCETNI' } }), `<access user="u_subsub">c_sub</access>`, `<access user="u_subsub">c_pa_cz</access>`);
    expect(outcome(changed)).toEqual([
      ['pa_sub_sub', 'UPDATED'],
      ['u_subsub@c_sub', 'SKIPPED'],
      ['u_subsub@c_pa_cz', 'CREATED'],
    ]);
    expect(queryRows(server.db, "SELECT company_id, role FROM access WHERE user_key = 'u_subsub' ORDER BY company_id")).toEqual([
      { company_id: 'c_pa_cz', role: 'MZDOVYUCETNI' },
      { company_id: 'c_sub', role: 'SKLADNIK' },
    ]);
  });

  test('when plain-text passwords are set, then each is hashed with its group\'s passwordHash, else the server\'s; the stored form verifies independently, logs in, and re-sending it is SKIPPED', async () => {
    const stored: Record<string, string> = Object.fromEntries(
      queryRows(server.db, 'SELECT key, password_hash FROM users WHERE password_hash IS NOT NULL').map((r) => [r.key as string, r.password_hash as string]),
    );
    expect(Object.fromEntries(Object.entries(stored).map(([k, v]) => [k, v.split(':').slice(0, v.startsWith('pbkdf2:') ? 2 : 1).join(':')]))).toEqual({
      u_root: 'sha256',
      u_pa: 'sha512',
      u_sub: 'pbkdf2:1000',
      u_own: 'pbkdf2:1000',
      u_subsub: 'pbkdf2:1000',
    });
    for (const [user, hash] of Object.entries(stored)) expect([user, storedHashMatches(hash, PASSWORDS[user])]).toEqual([user, true]);
    expect(stored.u_pa.split(':')[2]).toHaveLength(128);

    const again = await send('params-users', ...USERS);
    expect(entries(again.body).filter((e) => e.status !== 'SKIPPED')).toEqual([]);
    for (const user of ['u_pa', 'u_sub']) {
      const session = await sessionFor(server, user, PASSWORDS[user]);
      expect((await server.request('GET', `/u/${user}.json`, { headers: withSession(session), client: null })).status).toBe(200);
    }

    // A pre-hashed password is stored as given; a user that moves keeps its hash; a new password takes the new group's algorithm.
    const pre = `<password hash="md5" salt="s1">${'a'.repeat(32)}</password>`;
    const res = await send('params-hash', `<user><username>u_pre</username>${pre}<licenseGroup>pa_sub</licenseGroup></user>`, userOp('u_sub', { licenseGroup: 'pa' }));
    expect(outcome(res)).toEqual([
      ['u_pre', 'CREATED'],
      ['u_sub', 'UPDATED'],
    ]);
    expect(queryRows(server.db, "SELECT key, password_hash FROM users WHERE key IN ('u_pre', 'u_sub') ORDER BY key")).toEqual([
      { key: 'u_pre', password_hash: `md5:s1:${'a'.repeat(32)}` },
      { key: 'u_sub', password_hash: stored.u_sub },
    ]);
    expect(outcome(await send('params-hash-2', userOp('u_sub', { password: 'a new password for u_sub' })))).toEqual([['u_sub', 'UPDATED']]);
    const renewed = queryRows(server.db, "SELECT password_hash FROM users WHERE key = 'u_sub'")[0].password_hash as string;
    expect(renewed).toMatch(/^sha512:/);
    expect(storedHashMatches(renewed, 'a new password for u_sub')).toBe(true);
    PASSWORDS.u_sub = 'a new password for u_sub';
  });

  test('when a company names no country, then it takes its group\'s country parameter (SK from two levels up, with its default type), else CZ; a company that names one keeps it', async () => {
    expect(queryRows(server.db, 'SELECT id, country, type, license_group FROM companies ORDER BY id')).toEqual([
      { id: 'c_pa_cz', country: 'CZ', type: 'PODNIKATELE+PU', license_group: 'pa' },
      { id: 'c_pb', country: 'CZ', type: 'PODNIKATELE+PU', license_group: 'pb' },
      { id: 'c_root', country: 'CZ', type: 'PODNIKATELE+PU', license_group: 'root' },
      { id: 'c_sub', country: 'SK', type: 'PODNIKATELIA+PU', license_group: 'pa_sub' },
    ]);
    // Moving a company does not change its country.
    expect(outcome(await send('params-country', companyOp('c_root', { licenseGroup: 'pa' })))).toEqual([['c_root', 'UPDATED']]);
    expect(queryRows(server.db, "SELECT country FROM companies WHERE id = 'c_root'")).toEqual([{ country: 'CZ' }]);
    expect(outcome(await send('params-country-2', companyOp('c_root', { licenseGroup: 'root' })))).toEqual([['c_root', 'UPDATED']]);
  });

  test('when GET /g.json and /g.xml are read, then every group of the scope is listed in id order with parent, path, seats and seats used', async () => {
    const json = okJson(await server.request('GET', '/g.json'));
    expect(json).toEqual({
      winstrom: {
        '@version': '1.0',
        group: [
          { id: 'pa', name: 'Partner A', parent: 'root', path: ['root', 'pa'], seats: 20, seatsUsed: 5 },
          { id: 'pa_sub', name: 'Customer of A', parent: 'pa', path: ['root', 'pa', 'pa_sub'], seats: 5, seatsUsed: 3 },
          { id: 'pa_sub_sub', name: 'Team of the customer', parent: 'pa_sub', path: ['root', 'pa', 'pa_sub', 'pa_sub_sub'], seats: null, seatsUsed: 2 },
          { id: 'pb', name: 'Partner B', parent: 'root', path: ['root', 'pb'], seats: null, seatsUsed: 1 },
          { id: 'root', name: 'root', parent: null, path: ['root'], seats: null, seatsUsed: 7 },
        ],
      },
    });
    const xml = await server.request('GET', '/g.xml');
    expect(xml.headers['content-type']).toMatch(/^application\/xml/);
    expect(xml.body).toContain(
      '  <group><id>pa_sub_sub</id><name>Team of the customer</name><parent>pa_sub</parent><path><group>root</group><group>pa</group><group>pa_sub</group><group>pa_sub_sub</group></path><seats/><seatsUsed>2</seatsUsed></group>\n',
    );
    expect(xml.body).toContain('  <group><id>root</id><name>root</name><parent/><path><group>root</group></path><seats/><seatsUsed>7</seatsUsed></group>\n');
    expect(xml.body.match(/<group><id>/g)).toHaveLength(5);

    // A certificate bound to pa sees pa and what lies below it, nothing of root or pb.
    expect(listed(await asPartner('/g.json'), 'group').map((g) => g.id)).toEqual(['pa', 'pa_sub', 'pa_sub_sub']);
  });

  test('when GET /g/{id}.json is read, then it shows the children, the group\'s own parameters and each effective one with the group it comes from, or "server"', async () => {
    await send('params-task-user', groupOp('pa', { params: { taskUser: 'u_pa' } }));
    expect(okJson(await server.request('GET', '/g/pa_sub.json'))).toEqual({
      winstrom: {
        '@version': '1.0',
        group: [
          {
            id: 'pa_sub',
            name: 'Customer of A',
            parent: 'pa',
            path: ['root', 'pa', 'pa_sub'],
            seats: 5,
            seatsUsed: 3,
            children: ['pa_sub_sub'],
            params: { passwordHash: 'pbkdf2' },
            effectiveParams: {
              defaultRole: { value: 'UCETNI', from: 'pa' },
              passwordHash: { value: 'pbkdf2', from: 'pa_sub' },
              country: { value: 'SK', from: 'pa' },
              taskUser: { value: 'u_pa', from: 'pa' },
            },
          },
        ],
      },
    });
    expect(listed(await server.request('GET', '/g/root.json'), 'group')[0]).toMatchObject({
      children: ['pa', 'pb'],
      params: {},
      effectiveParams: {
        defaultRole: { value: 'UZIVATEL', from: 'server' },
        passwordHash: { value: 'sha256', from: 'server' },
        country: { value: 'CZ', from: 'server' },
      },
    });
    const xml = await server.request('GET', '/g/pa_sub_sub.xml');
    expect(xml.body).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<winstrom version="1.0">\n' +
        '  <group><id>pa_sub_sub</id><name>Team of the customer</name><parent>pa_sub</parent>' +
        '<path><group>root</group><group>pa</group><group>pa_sub</group><group>pa_sub_sub</group></path><seats/><seatsUsed>2</seatsUsed>' +
        '<children></children><params><param name="defaultRole">MZDOVYUCETNI</param></params>' +
        '<effectiveParams><param name="defaultRole" from="pa_sub_sub">MZDOVYUCETNI</param><param name="passwordHash" from="pa_sub">pbkdf2</param>' +
        '<param name="country" from="pa">SK</param><param name="taskUser" from="pa">u_pa</param></effectiveParams></group>\n</winstrom>\n',
    );
    // The partner reads its own group (its values are set from above, so `from` may name a group above it) but not root or pb.
    expect(listed(await asPartner('/g/pa.json'), 'group')[0]).toMatchObject({ id: 'pa', parent: 'root', path: ['root', 'pa'] });
    for (const id of ['root', 'pb', 'nowhere']) {
      const res = await asPartner(`/g/${id}.json`);
      expect([res.status, envelopeMessage(res)]).toEqual([404, `License group ${id} does not exist.`]);
    }
  });

  test('when GET /u/{login}/tenants is read, then it lists the user\'s own group and every group of the scope holding a company it has access to, with those companies', async () => {
    const tenants = listed(await server.request('GET', '/u/u_pa/tenants.json'), 'tenant');
    expect(tenants).toEqual([
      { id: 'pa', name: 'Partner A', path: ['root', 'pa'], companies: ['c_pa_cz'] },
      { id: 'pa_sub', name: 'Customer of A', path: ['root', 'pa', 'pa_sub'], companies: ['c_sub'] },
      { id: 'root', name: 'root', path: ['root'], companies: ['c_root'] },
    ]);
    // Seen from pa, the company in root is not there.
    expect(listed(await asPartner('/u/u_pa/tenants.json'), 'tenant').map((t) => t.id)).toEqual(['pa', 'pa_sub']);
    expect(listed(await server.request('GET', '/u/u_pb/tenants.json'), 'tenant')).toEqual([{ id: 'pb', name: 'Partner B', path: ['root', 'pb'], companies: ['c_pb'] }]);
    const xml = await server.request('GET', '/u/u_own/tenants.xml');
    expect(xml.body).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<winstrom version="1.0">\n' +
        '  <tenant><id>pa_sub</id><name>Customer of A</name><path><group>root</group><group>pa</group><group>pa_sub</group></path><companies><company>c_sub</company></companies></tenant>\n' +
        '  <tenant><id>pa_sub_sub</id><name>Team of the customer</name><path><group>root</group><group>pa</group><group>pa_sub</group><group>pa_sub_sub</group></path><companies></companies></tenant>\n' +
        '</winstrom>\n',
    );
    for (const path of ['/u/u_pb/tenants.json', '/u/u_root/tenants.json', '/u/nobody/tenants.json']) {
      const res = await asPartner(path);
      expect([res.status, envelopeMessage(res)]).toEqual([404, `User ${path.split('/')[2]} does not exist.`]);
    }
  });

  test('when ?group= narrows /u, /c and /g, then each lists that subtree only; a group outside the scope is answered as one that does not exist', async () => {
    const names = async (path: string, key: string, id: string): Promise<unknown[]> => listed(await server.request('GET', path), key).map((r) => r[id]);
    expect(await names('/u.json?group=pa_sub', 'user', 'username')).toEqual(['u_own', 'u_pre', 'u_subsub']);
    expect(await names('/u.json?group=pa', 'user', 'username')).toEqual(['u_own', 'u_pa', 'u_pre', 'u_sub', 'u_subsub']);
    expect(await names('/c.json?group=pa', 'company', 'dbNazev')).toEqual(['c_pa_cz', 'c_sub']);
    expect(await names('/g.json?group=pa_sub', 'group', 'id')).toEqual(['pa_sub', 'pa_sub_sub']);
    expect(await names('/u.json?group=pb', 'user', 'username')).toEqual(['u_pb']);
    expect((await server.request('GET', '/u.xml?group=pb')).body).toMatch(/<user><username>u_pb<\/username>.*<licenseGroup>pb<\/licenseGroup><\/user>/);

    expect(listed(await server.request('GET', '/u.json?group=pa_sub_sub', { client: partner }), 'user').map((u) => u.username)).toEqual(['u_own', 'u_subsub']);
    const outside = await asPartner('/u.json?group=pb');
    const nowhere = await asPartner('/u.json?group=nowhere');
    expect([outside.status, envelopeMessage(outside)]).toEqual([404, 'License group pb does not exist.']);
    expect([nowhere.status, envelopeMessage(nowhere)]).toEqual([404, 'License group nowhere does not exist.']);
    expect(outside.body.replace('pb', 'X')).toBe(nowhere.body.replace('nowhere', 'X'));
    for (const path of ['/c.json?group=root', '/g.json?group=root', '/c.xml?group=pb']) expect((await asPartner(path)).status).toBe(404);
  });
});

describe('paging the listings /u, /c and /g (SPEC §7.4: ?limit=N&start=M, add-row-count, after=ID)', () => {
  let server: TestServer;
  const send = (id: string, ...ops: string[]): Promise<Response> => server.batch(batchDoc(id, ...ops));
  const pad = (i: number): string => String(i).padStart(2, '0');
  /** Every fifth username has capitals: listings show the stored spelling, and order by the case-insensitive name. */
  const NAMES = Array.from({ length: 45 }, (_, i) => (i % 5 === 0 ? `User.${pad(i)}` : `user.${pad(i)}`));
  /** Every user the listing holds, in its order: by the case-insensitive username. */
  const ALL = [...NAMES, 'in.g01'].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
  const usernames = async (path: string): Promise<string[]> => listed<{ username: string }>(await server.request('GET', path), 'user').map((u) => u.username);

  beforeAll(async () => {
    server = await startTestServer();
    const seeded = await send(
      'paging-seed',
      ...NAMES.map((n) => userOp(n)),
      ...Array.from({ length: 25 }, (_, i) => groupOp(`g${pad(i)}`, { name: `Group ${i}` })),
      ...Array.from({ length: 25 }, (_, i) => companyOp(`c${pad(i)}`, { name: `Company ${i}`, adminUser: 'user.01', licenseGroup: `g${pad(i % 3)}` })),
      userOp('in.g01', { licenseGroup: 'g01' }),
    );
    expect(entries(seeded.body).filter((e) => e.status !== 'CREATED')).toEqual([]);
  });
  afterAll(() => server.close());

  test('when no limit is given, then a listing answers its first 20 rows in id order, and no row count', async () => {
    expect(await usernames('/u.json')).toEqual(ALL.slice(0, 20));
    expect(ALL[0]).toBe('in.g01');
    const xml = (await server.request('GET', '/u.xml')).body;
    expect(xml.match(/<user>/g)).toHaveLength(20);
    expect(xml).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<winstrom version="1\.0">\n/);
    expect(okJson<{ winstrom: Record<string, unknown> }>(await server.request('GET', '/u.json')).winstrom['@rowCount']).toBeUndefined();
    expect(listed(await server.request('GET', '/c.json'), 'company').map((c) => c.dbNazev)).toEqual(Array.from({ length: 20 }, (_, i) => `c${pad(i)}`));
    expect(listed(await server.request('GET', '/g.json'), 'group').map((g) => g.id)).toEqual(Array.from({ length: 20 }, (_, i) => `g${pad(i)}`));
  });

  test('when limit and start are given, then that window of the id order is answered; limit=0 answers every row', async () => {
    expect(await usernames('/u.json?limit=7&start=14')).toEqual(ALL.slice(14, 21));
    expect(await usernames('/u.json?start=40')).toEqual(ALL.slice(40));
    expect(await usernames('/u.json?start=46')).toEqual([]);
    expect(await usernames('/u.json?limit=0')).toEqual(ALL);
    expect(ALL).toHaveLength(46);
    expect(listed(await server.request('GET', '/g.json?limit=3&start=24'), 'group').map((g) => g.id)).toEqual(['g24', 'root']);
    expect(listed(await server.request('GET', '/c.json?limit=2&start=23'), 'company').map((c) => c.dbNazev)).toEqual(['c23', 'c24']);
  });

  test('when add-row-count=true, then the answer carries the number of rows of the whole listing: "@rowCount" in JSON, rowCount on <winstrom> in XML', async () => {
    const counted = okJson<{ winstrom: Record<string, unknown> }>(await server.request('GET', '/u.json?limit=2&add-row-count=true'));
    expect(counted.winstrom['@rowCount']).toBe('46');
    expect((counted.winstrom.user as unknown[]).length).toBe(2);
    expect((await server.request('GET', '/u.xml?limit=1&add-row-count=true')).body).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<winstrom version="1\.0" rowCount="46">\n {2}<user>/);
    expect(okJson<{ winstrom: Record<string, unknown> }>(await server.request('GET', '/u.json?group=g01&add-row-count=true')).winstrom['@rowCount']).toBe('1');
    expect(okJson<{ winstrom: Record<string, unknown> }>(await server.request('GET', '/c.json?limit=0&add-row-count=true&group=g00')).winstrom['@rowCount']).toBe('9');
    expect(okJson<{ winstrom: Record<string, unknown> }>(await server.request('GET', '/g.json?add-row-count=true')).winstrom['@rowCount']).toBe('26');
    expect(okJson<{ winstrom: Record<string, unknown> }>(await server.request('GET', '/g.json?add-row-count=false')).winstrom['@rowCount']).toBeUndefined();
  });

  test.each([
    ['/u.json?limit=-1', 'The query parameter limit must be a whole number from 0 to 10000, not \'-1\'.'],
    ['/u.json?limit=ten', 'The query parameter limit must be a whole number from 0 to 10000, not \'ten\'.'],
    ['/u.json?limit=10001', 'The query parameter limit must be a whole number from 0 to 10000, not \'10001\'.'],
    ['/c.json?limit=1.5', 'The query parameter limit must be a whole number from 0 to 10000, not \'1.5\'.'],
    ['/g.json?start=-3', 'The query parameter start must be a whole number from 0 to 1000000000, not \'-3\'.'],
    ['/u.json?start=', 'The query parameter start must be a whole number from 0 to 1000000000, not \'\'.'],
    ['/u.json?limit=1&limit=2', 'The query parameter limit is given more than once, or in a form that is not a single value.'],
    ['/u.json?add-row-count=yes', 'The query parameter add-row-count must be true or false, not \'yes\'.'],
    ['/u.json?after=%00', 'The query parameter after must be a username (1–64 characters of A–Z, a–z, 0–9, ., _, @ and -), not \'\u0000\'.'],
    ['/c.json?after=Not%20an%20id', 'The query parameter after must be a company id (1–64 characters of a–z, 0–9 and _), not \'Not an id\'.'],
    ['/g.json?after=%C3%A9', 'The query parameter after must be a license group id (1–64 characters of a–z, 0–9 and _), not \'é\'.'],
  ])('when a listing is asked for %s, then it is 400 with a message naming the parameter and what it takes', async (path, message) => {
    const res = await server.request('GET', path);
    expect([res.status, envelopeMessage(res)]).toEqual([400, message]);
  });

  test('when a client walks a listing with after= the last id it read, then it gets every row once, in id order — also where usernames have capitals', async () => {
    const walk = async (listing: string, key: string, id: string, limit: number): Promise<string[]> => {
      const seen: string[] = [];
      for (let after: string | undefined; ; ) {
        const rows = listed(await server.request('GET', `${listing}?limit=${limit}${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`), key);
        if (rows.length === 0) return seen;
        seen.push(...rows.map((r) => r[id] as string));
        after = seen[seen.length - 1];
        if (seen.length > 1000) throw new Error(`the walk of ${listing} does not end: ${seen.slice(0, 60).join(', ')}`);
      }
    };
    expect(await walk('/u.json', 'user', 'username', 7)).toEqual(await usernames('/u.json?limit=0'));
    expect(await walk('/g.json', 'group', 'id', 4)).toEqual([...Array.from({ length: 25 }, (_, i) => `g${pad(i)}`), 'root']);
    expect(await walk('/c.json', 'company', 'dbNazev', 6)).toEqual(Array.from({ length: 25 }, (_, i) => `c${pad(i)}`));
    // after= may name an id that does not exist (it is a position), and combines with ?group=.
    expect(await usernames('/u.json?after=user.4&limit=3')).toEqual(['User.40', 'user.41', 'user.42']);
    expect(await usernames('/u.json?group=g01&after=a')).toEqual(['in.g01']);
    expect(await usernames('/u.json?group=g01&after=in.g01')).toEqual([]);
    expect(await usernames('/u.json?after=USER.43')).toEqual(['user.44']);
    expect(await usernames('/u.json?after=User.40&limit=2')).toEqual(['user.41', 'user.42']);
  });

  test('when a client walks /u with after= while another client creates and deletes users between its pages, then it gets every user that existed all along exactly once, in id order', async () => {
    const before = await usernames('/u.json?limit=0');
    let commits = 0;
    let walking = true;
    const waiting: Array<{ n: number; done: () => void }> = [];
    /** Resolves once the writer has committed `n` batches. */
    const committed = (n: number): Promise<void> => new Promise((done) => (commits >= n ? done() : waiting.push({ n, done })));
    const writer = async (): Promise<void> => {
      let created: string[] = [];
      for (let k = 0; walking; k++) {
        // New names before, between and after the ones that were there, and the previous round's deleted again.
        const names = [`aaa.${k}`, `user.0${k % 10}x${k}`, `user.2${k % 10}y${k}`, `User.3${k % 10}Z${k}`, `zzz.${k}`];
        const res = await send(`paging-writer-${k}`, ...created.map(deleteUserOp), ...names.map((n) => userOp(n)));
        expect(entries(res.body).filter((e) => e.status !== 'CREATED' && e.status !== 'DELETED')).toEqual([]);
        created = names;
        commits++;
        for (const w of waiting.splice(0)) if (commits >= w.n) w.done(); else waiting.push(w);
      }
    };
    const walker = async (): Promise<string[]> => {
      const seen: string[] = [];
      try {
        for (let after: string | undefined, page = 1; ; page++) {
          const rows = await usernames(`/u.json?limit=4${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`);
          if (rows.length === 0) return seen;
          seen.push(...rows);
          after = seen[seen.length - 1];
          // The next page is read only once the writer has changed the listing again.
          await committed(page);
        }
      } finally {
        walking = false;
      }
    };
    const [seen] = await Promise.all([walker(), writer()]);
    expect(commits).toBeGreaterThanOrEqual(Math.ceil(before.length / 4));
    const keys = seen.map((n) => n.toLowerCase());
    expect(keys).toEqual([...new Set(keys)].sort());
    expect(seen.filter((n) => before.includes(n))).toEqual(before);
  });

  test('when rows before the current page are deleted between two requests, then start=M counts the rows as they are at each request (a row can be passed over), while after=ID goes on right after the last row read', async () => {
    expect(outcome(await send('paging-offset-seed', ...['off.a', 'off.b', 'off.c', 'off.d', 'off.e'].map((n) => userOp(n)))).map(([, status]) => status)).toEqual(Array(5).fill('CREATED'));
    expect(await usernames('/u.json?limit=2&after=off')).toEqual(['off.a', 'off.b']);
    expect(outcome(await send('paging-offset-delete', deleteUserOp('off.a')))).toEqual([['off.a', 'DELETED']]);
    // The second page by offset starts at the third row of the listing as it is now: off.c is never seen.
    expect(await usernames('/u.json?limit=2&start=2&after=off')).toEqual(['off.d', 'off.e']);
    // By keyset, from the last row read, nothing is lost.
    expect(await usernames('/u.json?limit=2&after=off.b')).toEqual(['off.c', 'off.d']);
  });
});
