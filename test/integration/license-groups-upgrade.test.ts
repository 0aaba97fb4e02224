/**
 * SPEC §7.6 and issue 11 point 7: a store of the release before license groups (schema version 4:
 * migrations 1–4 rendered for the project's store) holding users with passwords, permissions and
 * deleted ones, companies, grants, fingerprints, sessions and journal entries — the rows the
 * current code writes for a few batches, sessions and certificates, all of it in `root` — is
 * opened by the current code. Everything survives in root, nothing else changes, sessions and
 * certificates still authenticate, the journal is readable, and re-sending the batches is SKIPPED.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCertificate } from '../../src/pki/dev-pki';
import { fingerprintOfCertificate } from '../../src/pki/fingerprint';
import { MIGRATIONS, renderMigration } from '../../src/store/migrations';
import { expectRefused, preHashedPassword, sessionFor, withSession } from '../support/auth';
import { entries, startTestServer, type RequestOptions, type Response, type TestServer } from '../support/server';
import { dropTestDb, dumpStore, journalRows, newTestDb, queryRows, runScript, STORE_KIND } from '../support/stores';
import { batchDoc, closureRows, companyOp, deleteUserOp, groupRows, seatsInUse, userOp } from '../support/tenants';

const ADMIN_PASSWORD = 'the old admin password';
const PERMISSIONS =
  '<permissions><manageAll>true</manageAll><createUser>true</createUser><createCompany>true</createCompany><grantPermission>true</grantPermission><licenseManagement>true</licenseManagement></permissions>';

/**
 * The batches of the earlier release's life, in order, and how each was sent. `again: false` marks
 * the one batch whose work a later batch undid (old.leaver joined, then was deleted): sent again, it
 * would restore him, as a create-update of a deleted user does (SPEC §4.1).
 */
const BATCHES: Array<{ as: 'certificate' | 'impersonated' | 'session'; body: string; again?: false }> = [
  {
    as: 'certificate',
    body: batchDoc(
      'old-users',
      `<user><username>old.admin</username><password>${ADMIN_PASSWORD}</password>${PERMISSIONS}<email>admin@old.example</email></user>`,
      `<user><username>Old.Accountant</username>${preHashedPassword('pbkdf2', 'salt1', 'accountant password', 1000)}<defaultRole>UCETNI</defaultRole></user>`,
      userOp('old.api', { userType: 'REST_API', password: 'api user password' }),
      userOp('old.viewer', { userType: 'READ_ONLY' }),
      `<user><username>old.blocked</username><blocked message="left the company">true</blocked></user>`,
    ),
  },
  { as: 'certificate', body: batchDoc('old-leaver-joins', userOp('old.leaver', { givenName: 'Leo', password: 'leaver password' })), again: false },
  {
    as: 'certificate',
    body: batchDoc(
      'old-companies',
      companyOp('old_firma', { name: 'Old Firma s.r.o.', adminUser: 'old.admin', regNo: '12345678', validUntil: '2030-12-31' }),
      companyOp('old_hidden', { name: 'Old Hidden a.s.', country: 'SK', adminUser: 'old.admin', show: 'false' }),
      '<access user="Old.Accountant">old_firma</access>',
      '<access user="old.api" role="SKLADNIK">old_firma</access>',
    ),
  },
  { as: 'certificate', body: batchDoc('old-leaver', deleteUserOp('old.leaver')) },
  { as: 'impersonated', body: batchDoc('old-as-admin', userOp('old.viewer', { email: 'viewer@old.example' })) },
  { as: 'session', body: batchDoc('old-with-session', userOp('old.api', { familyName: 'Api' })) },
];

/** The columns a table has in the target store, in order (its version 4 schema). */
function columnsOf(db: string, table: string): string[] {
  const rows =
    STORE_KIND === 'postgres'
      ? queryRows(db, 'SELECT column_name AS name FROM information_schema.columns WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position', table)
      : queryRows(db, `SELECT name FROM pragma_table_info('${table}') ORDER BY cid`);
  return rows.map((r) => r.name as string);
}

const literal = (v: unknown): string => (v === null ? 'NULL' : typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`);

/** INSERT statements copying `table`'s rows from `from` into `to`, in the columns `to` has (the identity `seq` left to the target). */
function copyRows(from: string, to: string, table: string, order: string): string {
  const columns = columnsOf(to, table).filter((c) => c !== 'seq');
  return queryRows(from, `SELECT ${columns.join(', ')} FROM ${table} ORDER BY ${order}`)
    .map((row) => `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((c) => literal(row[c])).join(', ')});`)
    .join('\n');
}

describe('a store of the release before license groups, opened by this one (SPEC §7.6)', () => {
  let dir: string;
  let old: string;
  let target: string;
  let server: TestServer;
  let partner: { cert: string; key: string };
  let revoked: { cert: string; key: string };
  /** The session ids the earlier server gave out, and the answers it gave. */
  const sessions: string[] = [];
  const answers = new Map<string, string>();
  const SESSION_BATCH = 'old-with-session';
  /** The entity rows and the journal of the store that wrote them, and of the version 4 store built from them. */
  let written: { rows: Record<string, unknown[]>; journal: ReturnType<typeof journalRows> };
  let builtRows: Record<string, unknown[]>;

  const send = (s: TestServer, batch: (typeof BATCHES)[number]): Promise<Response> => {
    const options: RequestOptions =
      batch.as === 'impersonated'
        ? { headers: { 'X-FlexiBee-Authorization': 'old.admin' } }
        : batch.as === 'session'
          ? { client: null, headers: withSession(sessions[0]) }
          : {};
    return s.request('PUT', batch.as === 'session' ? '/v2/admin/batch' : '/admin/batch', { ...options, body: batch.body });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flexi-upgrade-'));
    const p = issueCertificate({ commonName: 'old partner', kind: 'client' });
    const r = issueCertificate({ commonName: 'old revoked partner', kind: 'client' });
    partner = { cert: p.certPem, key: p.keyPem };
    revoked = { cert: r.certPem, key: r.keyPem };

    // The rows: what the code writes for these batches, logins and certificates, everything in root.
    const earlier = await startTestServer();
    old = earlier.db;
    try {
      await earlier.running.store.addFingerprint({ fingerprint: fingerprintOfCertificate(partner.cert), scope: 'root', label: 'old partner' });
      await earlier.running.store.addFingerprint({ fingerprint: fingerprintOfCertificate(revoked.cert), scope: 'root', label: 'old revoked partner' });
      await earlier.running.store.revokeFingerprint(fingerprintOfCertificate(revoked.cert));
      for (const batch of BATCHES) {
        if (batch.as === 'session' && sessions.length === 0) {
          sessions.push(await sessionFor(earlier, 'old.admin', ADMIN_PASSWORD), await sessionFor(earlier, 'old.api', 'api user password'));
        }
        const res = await send(earlier, batch);
        expect([batch.body.slice(0, 80), res.status]).toEqual([batch.body.slice(0, 80), 200]);
        answers.set(/id="([^"]+)"/.exec(batch.body)?.[1] as string, res.body);
      }

      // The store of version 4, as the previous release built it, with those rows.
      target = newTestDb(dir, 'previous-release.db');
      const v4 = MIGRATIONS.filter((m) => m.version <= 4);
      runScript(
        target,
        `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
         ${v4.map((m) => `${renderMigration(m, STORE_KIND).join(';\n')};\nINSERT INTO schema_migrations (version, name, applied_at) VALUES (${m.version}, '${m.name}', '2024-01-01T00:00:00.000Z');`).join('\n')}`,
      );
      expect(columnsOf(target, 'sessions')).toEqual(['id_hash', 'user_key', 'created_at', 'last_used_at']);
      expect(columnsOf(target, 'license_groups')).toEqual(['id', 'name', 'parent_id', 'seats', 'created_at']);
      runScript(
        target,
        [
          copyRows(old, target, 'users', 'key'),
          copyRows(old, target, 'companies', 'id'),
          copyRows(old, target, 'access', 'user_key, company_id'),
          copyRows(old, target, 'fingerprints', 'fingerprint'),
          copyRows(old, target, 'sessions', 'id_hash'),
          copyRows(old, target, 'batch_journal', 'seq'),
        ].join('\n'),
      );
      written = { rows: dumpStore(old), journal: journalRows(old) };
    } finally {
      await earlier.close();
    }
    builtRows = dumpStore(target);
    server = await startTestServer({ db: target });
  });
  afterAll(async () => {
    await server?.close();
    dropTestDb(target);
    rmSync(dir, { recursive: true, force: true });
  });

  test('when it is opened, then it is migrated to the current version with everything in root: root\'s closure row, and seats used counting the active NORMAL and REST_API users', () => {
    expect(queryRows(target, 'SELECT max(version) AS v FROM schema_migrations')).toEqual([{ v: MIGRATIONS[MIGRATIONS.length - 1].version }]);
    // old.admin, Old.Accountant, old.api and old.blocked; not the READ_ONLY viewer nor the deleted leaver.
    expect(groupRows(target)).toEqual([{ id: 'root', name: 'root', parent_id: null, seats: null, seats_used: 4, params: {} }]);
    expect(seatsInUse(target)).toEqual({ root: 4 });
    expect(closureRows(target)).toEqual(['root>root@0']);
    expect(queryRows(target, 'SELECT DISTINCT license_group FROM users UNION SELECT DISTINCT license_group FROM companies UNION SELECT DISTINCT scope FROM fingerprints')).toEqual([{ license_group: 'root' }]);
    expect(queryRows(target, 'SELECT count(*) AS n FROM sessions WHERE tenant IS NOT NULL')).toEqual([{ n: 0 }]);
    expect(queryRows(target, 'SELECT count(*) AS n FROM user_preferences')).toEqual([{ n: 0 }]);
  });

  test('when it is opened, then users, companies, grants and fingerprints are exactly as the earlier release left them', () => {
    const now = dumpStore(target);
    for (const table of ['users', 'companies', 'access', 'fingerprints']) {
      // Columns that later releases added (users' last_login_at, SPEC §10.3) are empty; every other is as it was.
      const columns = Object.keys((builtRows[table] as Array<Record<string, unknown>>)[0] ?? {});
      const rows = now[table] as Array<Record<string, unknown>>;
      const added = rows.flatMap((row) => Object.entries(row).filter(([column, value]) => !columns.includes(column) && value !== null));
      expect([table, added]).toEqual([table, []]);
      const only = (list: unknown[]): unknown[] =>
        (list as Array<Record<string, unknown>>).map((row) => Object.fromEntries(Object.entries(row).filter(([column]) => columns.includes(column))));
      expect([table, only(rows)]).toEqual([table, builtRows[table]]);
      // The rows were written by today's code, which has more columns than the release kept.
      expect([table, only(rows)]).toEqual([table, only(written.rows[table])]);
    }
    expect(now.users).toHaveLength(6);
    expect(now.fingerprints).toHaveLength(3);
    expect(queryRows(target, "SELECT key, deleted, blocked, user_type FROM users WHERE key IN ('old.leaver', 'old.blocked', 'old.viewer') ORDER BY key")).toEqual([
      { key: 'old.blocked', deleted: 0, blocked: 1, user_type: 'NORMAL' },
      { key: 'old.leaver', deleted: 1, blocked: 0, user_type: 'NORMAL' },
      { key: 'old.viewer', deleted: 0, blocked: 0, user_type: 'READ_ONLY' },
    ]);
  });

  test('when its sessions, certificates and passwords are used, then they authenticate as before, in root', async () => {
    for (const id of sessions) {
      const res = await server.request('GET', '/u.json?limit=0', { client: null, headers: withSession(id) });
      expect(res.status).toBe(200);
    }
    const listedBySession = JSON.parse((await server.request('GET', '/u.json?limit=0', { client: null, headers: withSession(sessions[0]) })).body) as {
      winstrom: { user: Array<{ username: string; licenseGroup: string }> };
    };
    expect(listedBySession.winstrom.user.map((u) => [u.username, u.licenseGroup])).toEqual([
      ['Old.Accountant', 'root'],
      ['old.admin', 'root'],
      ['old.api', 'root'],
      ['old.blocked', 'root'],
      ['old.viewer', 'root'],
    ]);
    // A session batch still acts as its user.
    const viaSession = await server.request('PUT', '/v2/admin/batch', { client: null, headers: withSession(sessions[0]), body: batchDoc('new-with-old-session', userOp('old.viewer')) });
    expect(entries(viaSession.body).map((e) => e.status)).toEqual(['SKIPPED']);
    const partnerRead = await server.request('GET', '/c.json', { client: partner });
    expect(partnerRead.status).toBe(200);
    expect((JSON.parse(partnerRead.body) as { winstrom: { company: Array<{ dbNazev: string }> } }).winstrom.company.map((c) => c.dbNazev)).toEqual(['old_firma', 'old_hidden']);
    expectRefused(await server.request('GET', '/c.json', { client: revoked }));
    // Passwords of every stored form still log in, and the new login starts in root.
    for (const [user, password] of [
      ['old.admin', ADMIN_PASSWORD],
      ['old.accountant', 'accountant password'],
    ]) {
      const res = await server.request('POST', '/login-logout/login', { client: null, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: user, password }) });
      expect([user, res.status, JSON.parse(res.body).tenant]).toEqual([user, 200, 'root']);
    }
  });

  test('when its journal is read, then every entry answers as it was journalled, also to the session user that sent one', async () => {
    expect(journalRows(target).slice(0, written.journal.length)).toEqual(written.journal);
    for (const [id, body] of answers) {
      const res = await server.request('GET', `/admin/batch/${id}`);
      expect([id, res.status, res.body]).toEqual([id, 200, body]);
    }
    const own = await server.request('GET', `/admin/batch/${SESSION_BATCH}`, { client: null, headers: withSession(sessions[0]) });
    expect(own.body).toBe(answers.get(SESSION_BATCH));
  });

  test('when the batches that made the data are sent again, then every entry is SKIPPED and nothing changes', async () => {
    const before = dumpStore(target);
    for (const batch of BATCHES.filter((b) => b.again !== false)) {
      const res = await send(server, batch);
      expect(res.status).toBe(200);
      const id = /id="([^"]+)"/.exec(batch.body)?.[1];
      expect([id, entries(res.body).filter((e) => e.status !== 'SKIPPED')]).toEqual([id, []]);
    }
    expect(dumpStore(target)).toEqual(before);
  });
});
