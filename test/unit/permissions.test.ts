import { parseBatch } from '../../src/batch/parse';
import { planBatch, snapshotRequest, type ChangeSet, type Plan, type Snapshot } from '../../src/batch/plan';
import type { AccessRecord } from '../../src/domain/access';
import type { CompanyRecord } from '../../src/domain/companies';
import { verifyPasswordSync } from '../../src/domain/passwords';
import { beyondActor, missingFor, NEEDS, noPermissions, PERMISSION_NAMES, runsCompany, takeoverBlocker, type GuardedOperation, type PermissionName, type Permissions } from '../../src/domain/permissions';
import type { Principal } from '../../src/domain/principals';
import type { RoleCode } from '../../src/domain/roles';
import type { UserRecord } from '../../src/domain/users';
import { company, EMPTY_CHANGES, grant, sha256, snapshot, user, withEventBodies, withoutSeatCounts } from '../support/snapshots';

/** Pre-hashed digests of the lengths SPEC §4.3 requires; the planner never checks their value. */
const SHA256_DIGEST = 'af123bd3'.repeat(8);

/**
 * SPEC §6 at planner level: a certificate principal impersonating the stored user "actor"
 * (X-FlexiBee-Authorization) acts with that user's permissions and grants.
 */
const AS_ACTOR: Principal = { kind: 'certificate', name: 'FP', scope: 'root', actingUser: 'actor' };
/** The same certificate without impersonation: full rights in its scope. */
const CERTIFICATE: Principal = { kind: 'certificate', name: 'FP', scope: 'root' };

// ── hand-made snapshots (as in plan.test.ts) ────────────────────────────────────────────


/** The seat counters (SPEC §7.2) are left out of the change set here: test/unit/groups.test.ts asserts them. */
function plan(operations: string, snap: Snapshot, principal: Principal = AS_ACTOR): Plan {
  const doc = parseBatch(`<flexibee-batch id="t">${operations}</flexibee-batch>`, { maxOperations: 1000 });
  return withoutSeatCounts(withEventBodies(planBatch(doc, snap, { principal, passwordMatches: verifyPasswordSync })));
}

/** [status, id, message] of every result, messages only where given. */
function outcomes(p: Plan): Array<[string, string] | [string, string, string]> {
  return p.results.map((r) => (r.message === undefined ? [r.status, r.id] : [r.status, r.id, r.message]));
}

function statuses(p: Plan): string[] {
  return p.results.map((r) => r.status);
}

/** Exactly the named permissions. */
function perms(...names: PermissionName[]): Permissions {
  const p = noPermissions();
  for (const name of names) p[name] = true;
  return p;
}

/** Every permission but the named ones: shows that exactly those are what is missing. */
function allBut(...names: PermissionName[]): Permissions {
  return perms(...PERMISSION_NAMES.filter((p) => !names.includes(p)));
}

const actor = (permissions: Permissions, over: Partial<UserRecord> = {}): UserRecord =>
  user('actor', { givenName: 'Act', passwordHash: sha256('a5alt', 'actor secret'), permissions, ...over });

const BOB = user('bob', {
  email: 'bob@firma.cz',
  givenName: 'Bob',
  familyName: 'Novák',
  passwordHash: sha256('s4lt', 'old secret'),
  defaultRole: 'SKLADNIK',
});
const FIRMA = company('firma', { name: 'Firma s.r.o.' });
const DRUHA = company('druha', { name: 'Druhá a.s.' });

/** An operation the actor may always do (its own other fields need nothing): the rest of the batch. */
const FOLLOW = '<user><username>actor</username><givenName>Next</givenName></user>';

/** The first operation was denied with `message`; nothing of it was kept, and FOLLOW still applied. */
function expectDeniedThenRestApplied(p: Plan, id: string, message: string, actorRecord: UserRecord): void {
  expect(outcomes(p)).toEqual([
    ['FAILED', id, message],
    ['UPDATED', 'actor'],
  ]);
  expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...actorRecord, givenName: 'Next' }] });
}

// ── create a user ───────────────────────────────────────────────────────────────────────

describe('permissions: create a user needs createUser (SPEC §6)', () => {
  test('when the actor has createUser, then a new user is CREATED and in the change set', () => {
    const p = plan('<user><username>carol</username><email>carol@firma.cz</email></user>', snapshot({ users: [actor(perms('createUser'))] }));
    expect(outcomes(p)).toEqual([['CREATED', 'carol']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [user('carol', { email: 'carol@firma.cz' })] });
  });

  test('when the actor lacks createUser, then the create is FAILED "permission denied: createUser required" and the rest of the batch is applied', () => {
    const me = actor(allBut('createUser'));
    const p = plan(`<user><username>carol</username><email>carol@firma.cz</email></user>${FOLLOW}`, snapshot({ users: [me] }));
    expectDeniedThenRestApplied(p, 'carol', 'permission denied: createUser required', me);
  });

  test('when the actor has createUser, then a deleted user is restored (CREATED "restored")', () => {
    const p = plan('<user><username>bob</username></user>', snapshot({ users: [actor(perms('createUser')), { ...BOB, deleted: true }] }));
    expect(outcomes(p)).toEqual([['CREATED', 'bob', 'restored']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [BOB] });
  });

  test('when the actor lacks createUser, then restoring a deleted user is FAILED and it stays deleted', () => {
    const me = actor(allBut('createUser'));
    const p = plan(`<user><username>bob</username></user>${FOLLOW}`, snapshot({ users: [me, { ...BOB, deleted: true }] }));
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: createUser required', me);
  });

  test('when a new user is created with a password, then createUser alone is enough (the first password is part of creating it)', () => {
    const p = plan('<user><username>carol</username><password>first secret</password></user>', snapshot({ users: [actor(perms('createUser'))] }));
    expect(outcomes(p)).toEqual([['CREATED', 'carol']]);
    expect(p.changes.users).toEqual([{ ...user('carol'), newPassword: 'first secret' }]);
  });

  test('when a deleted user is restored with a new password and the actor lacks changePassword, then it is FAILED (a restored user keeps its access)', () => {
    const me = actor(allBut('changePassword'));
    const p = plan(`<user><username>bob</username><password>new secret</password></user>${FOLLOW}`, snapshot({ users: [me, { ...BOB, deleted: true }] }));
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: changePassword required', me);
  });

  test('when a deleted user is restored with a new password by an actor with createUser and changePassword, then it is CREATED "restored"', () => {
    const p = plan('<user><username>bob</username><password>new secret</password></user>', snapshot({ users: [actor(perms('createUser', 'changePassword')), { ...BOB, deleted: true }] }));
    expect(outcomes(p)).toEqual([['CREATED', 'bob', 'restored']]);
    expect(p.changes.users).toEqual([{ ...BOB, newPassword: 'new secret' }]);
  });

  test('when a deleted user is restored with the password it already had, then changePassword is not needed', () => {
    const p = plan('<user><username>bob</username><password>old secret</password></user>', snapshot({ users: [actor(perms('createUser')), { ...BOB, deleted: true }] }));
    expect(outcomes(p)).toEqual([['CREATED', 'bob', 'restored']]);
    expect(p.changes.users).toEqual([BOB]);
  });
});

// ── passwords ───────────────────────────────────────────────────────────────────────────

describe("permissions: another user's password needs changePassword; one's own needs nothing (SPEC §4.3, §6)", () => {
  test("when the actor has changePassword, then another user's password is changed (UPDATED) and handed over to be hashed", () => {
    const p = plan('<user><username>bob</username><password>new secret</password></user>', snapshot({ users: [actor(perms('changePassword')), BOB] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'bob']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...BOB, newPassword: 'new secret' }] });
  });

  test('when the actor has changePassword, then a pre-hashed password is stored for another user (UPDATED)', () => {
    const p = plan(`<user><username>bob</username><password hash="sha256" salt="xyz">${SHA256_DIGEST}</password></user>`, snapshot({ users: [actor(perms('changePassword')), BOB] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'bob']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...BOB, passwordHash: `sha256:xyz:${SHA256_DIGEST}` }] });
  });

  test.each([
    ['a plain-text password', '<password>new secret</password>'],
    ['a pre-hashed password', `<password hash="sha256" salt="xyz">${SHA256_DIGEST}</password>`],
  ])("when the actor lacks changePassword, then %s for another user is FAILED and the rest of the batch is applied", (_what, password) => {
    const me = actor(allBut('changePassword'));
    const p = plan(`<user><username>bob</username>${password}</user>${FOLLOW}`, snapshot({ users: [me, BOB] }));
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: changePassword required', me);
  });

  test("when the actor lacks changePassword, then a password change together with other fields fails as a whole (the other fields are not changed either)", () => {
    const me = actor(allBut('changePassword'));
    const p = plan(`<user><username>bob</username><email>bob@new.cz</email><password>new secret</password></user>${FOLLOW}`, snapshot({ users: [me, BOB] }));
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: changePassword required', me);
  });

  test('when the actor has no permission at all, then it still changes its own password (UPDATED)', () => {
    const me = actor(noPermissions());
    const p = plan('<user><username>actor</username><password>my new secret</password></user>', snapshot({ users: [me] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'actor']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...me, newPassword: 'my new secret' }] });
  });

  test("when the actor names itself in another spelling, then it is still its own password", () => {
    const me = actor(noPermissions());
    const p = plan('<user><username>ACTOR</username><password>my new secret</password></user>', snapshot({ users: [me] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'ACTOR']]);
  });

  test.each([
    ['the password bob has', 'old secret'],
    ['a wrong guess', 'a wrong guess'],
  ])("when the actor has neither changePassword nor createUser and sends %s for another user, then it is FAILED the same way (a batch answers no password guess)", (_what, plain) => {
    const me = actor(allBut('changePassword', 'createUser'));
    const p = plan(`<user><username>bob</username><password>${plain}</password></user>${FOLLOW}`, snapshot({ users: [me, BOB] }));
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: changePassword required', me);
  });

  test("when the actor may change bob's other fields (createUser) and sends his current password, then it is SKIPPED: its own re-sent batches stay idempotent", () => {
    const p = plan('<user><username>bob</username><password>old secret</password></user>', snapshot({ users: [actor(perms('createUser')), BOB] }));
    expect(outcomes(p)).toEqual([['SKIPPED', 'bob']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test("when the actor lacks changePassword and sends another user's current password pre-hashed, then it is SKIPPED: equal stored forms answer no guess", () => {
    const p = plan(
      `<user><username>bob</username><password hash="sha256" salt="s4lt">${BOB.passwordHash?.split(':')[2]}</password></user>`,
      snapshot({ users: [actor(noPermissions()), BOB] }),
    );
    expect(outcomes(p)).toEqual([['SKIPPED', 'bob']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a user created earlier in the batch with a password gets another field changed, then createUser is enough (no changePassword)', () => {
    const p = plan(
      '<user><username>carol</username><password>first secret</password></user><user><username>carol</username><email>carol@firma.cz</email></user>',
      snapshot({ users: [actor(perms('createUser'))] }),
    );
    expect(outcomes(p)).toEqual([
      ['CREATED', 'carol'],
      ['UPDATED', 'carol'],
    ]);
    expect(p.changes.users).toEqual([{ ...user('carol', { email: 'carol@firma.cz' }), newPassword: 'first secret' }]);
  });
});

// ── other fields, block ─────────────────────────────────────────────────────────────────

const FIELD_CHANGES: Array<[string, string, Partial<UserRecord>]> = [
  ['email', '<email>new@firma.cz</email>', { email: 'new@firma.cz' }],
  ['email cleared', '<email/>', { email: null }],
  ['givenName', '<givenName>Robert</givenName>', { givenName: 'Robert' }],
  ['familyName', '<familyName>Starý</familyName>', { familyName: 'Starý' }],
  ['defaultRole', '<defaultRole>UCETNI</defaultRole>', { defaultRole: 'UCETNI' }],
  ['userType', '<userType>READ_ONLY</userType>', { userType: 'READ_ONLY' }],
  ['blocked', '<blocked message="left the company">true</blocked>', { blocked: true, blockMessage: 'left the company' }],
];

describe("permissions: another user's other fields and block need createUser; one's own need nothing (SPEC §6)", () => {
  test.each(FIELD_CHANGES)('when the actor has createUser and changes %s of another user, then it is UPDATED', (_field, xml, changed) => {
    const p = plan(`<user><username>bob</username>${xml}</user>`, snapshot({ users: [actor(perms('createUser')), BOB] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'bob']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...BOB, ...changed }] });
  });

  test.each(FIELD_CHANGES)('when the actor lacks createUser and changes %s of another user, then it is FAILED and the rest of the batch is applied', (_field, xml) => {
    const me = actor(allBut('createUser'));
    const p = plan(`<user><username>bob</username>${xml}</user>${FOLLOW}`, snapshot({ users: [me, BOB] }));
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: createUser required', me);
  });

  test('when the actor has createUser, then it unblocks another user (UPDATED); without it, FAILED', () => {
    const blockedBob = { ...BOB, blocked: true, blockMessage: 'away' };
    const allowed = plan('<user><username>bob</username><blocked>false</blocked></user>', snapshot({ users: [actor(perms('createUser')), blockedBob] }));
    expect(outcomes(allowed)).toEqual([['UPDATED', 'bob']]);
    expect(allowed.changes).toEqual({ ...EMPTY_CHANGES, users: [BOB] });
    const me = actor(allBut('createUser'));
    const denied = plan(`<user><username>bob</username><blocked>false</blocked></user>${FOLLOW}`, snapshot({ users: [me, blockedBob] }));
    expectDeniedThenRestApplied(denied, 'bob', 'permission denied: createUser required', me);
  });

  test.each(FIELD_CHANGES)('when the actor has no permission at all and changes its own %s, then it is UPDATED', (_field, xml, changed) => {
    const me = actor(noPermissions(), { email: 'actor@firma.cz', familyName: 'Actor' });
    const p = plan(`<user><username>actor</username>${xml}</user>`, snapshot({ users: [me] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'actor']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...me, ...changed }] });
  });
});

// ── delete a user ───────────────────────────────────────────────────────────────────────

describe('permissions: deleting a user needs createUser and licenseManagement (SPEC §6)', () => {
  const SNAP_GRANTS = [grant('bob', 'firma', 'UCETNI')];

  test('when the actor has createUser and licenseManagement, then the user is DELETED and marked deleted', () => {
    const p = plan('<user action="delete"><username>bob</username></user>', snapshot({ users: [actor(perms('createUser', 'licenseManagement')), BOB], companies: [FIRMA], access: SNAP_GRANTS }));
    expect(outcomes(p)).toEqual([['DELETED', 'bob']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...BOB, deleted: true }] });
  });

  test.each([['createUser' as const], ['licenseManagement' as const]])(
    'when the actor lacks only %s, then the delete is FAILED naming it and the rest of the batch is applied',
    (missing) => {
      const me = actor(allBut(missing));
      const p = plan(`<user action="delete"><username>bob</username></user>${FOLLOW}`, snapshot({ users: [me, BOB], companies: [FIRMA], access: SNAP_GRANTS }));
      expectDeniedThenRestApplied(p, 'bob', `permission denied: ${missing} required`, me);
    },
  );

  test('when the actor lacks both, then the message names createUser first', () => {
    const me = actor(noPermissions());
    const p = plan(`<user action="delete"><username>bob</username></user>${FOLLOW}`, snapshot({ users: [me, BOB] }));
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: createUser required', me);
  });

  test('when the actor deletes itself, then it needs createUser and licenseManagement as for anyone (own fields, not own delete, are free)', () => {
    const me = actor(perms('createUser'));
    const p = plan(`<user action="delete"><username>actor</username></user>${FOLLOW}`, snapshot({ users: [me] }));
    expectDeniedThenRestApplied(p, 'actor', 'permission denied: licenseManagement required', me);
  });
});

// ── access ──────────────────────────────────────────────────────────────────────────────

/** bob has UZIVATEL in firma and nothing in druha. [form, status, entry id, company checked, change set]. */
const ACCESS_FORMS: Array<[string, string, string, string, Partial<ChangeSet>]> = [
  ['<access role="UCETNI" user="bob">druha</access>', 'CREATED', 'bob@druha', 'druha', { grantedAccess: [grant('bob', 'druha', 'UCETNI')] }],
  ['<access user="bob">druha</access>', 'CREATED', 'bob@druha', 'druha', { grantedAccess: [grant('bob', 'druha', 'SKLADNIK')] }],
  ['<access role="UCETNI" user="bob">firma</access>', 'UPDATED', 'bob@firma', 'firma', { grantedAccess: [grant('bob', 'firma', 'UCETNI')] }],
  ['<access role="UCETNI" user="bob"/>', 'UPDATED', 'bob@*', 'firma', { grantedAccess: [grant('bob', 'firma', 'UCETNI')] }],
  ['<access action="delete" user="bob">firma</access>', 'DELETED', 'bob@firma', 'firma', { revokedAccess: [{ userKey: 'bob', companyId: 'firma' }] }],
];

function accessSnapshot(me: UserRecord, actorRole?: RoleCode): Snapshot {
  const actorGrants = actorRole ? [grant('actor', 'firma', actorRole), grant('actor', 'druha', actorRole)] : [];
  return snapshot({ users: [me, BOB], companies: [FIRMA, DRUHA], access: [grant('bob', 'firma', 'UZIVATEL'), ...actorGrants] });
}

describe('permissions: granting, changing or removing access needs grantPermission and ADMIN there or manageAll (SPEC §6)', () => {
  test.each(ACCESS_FORMS)('when the actor has grantPermission and ADMIN in the company, then %s is %s', (xml, status, id, _company, changes) => {
    const p = plan(xml, accessSnapshot(actor(perms('grantPermission')), 'ADMIN'));
    expect(outcomes(p)).toEqual([[status, id]]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, ...changes });
  });

  test.each(ACCESS_FORMS)('when the actor has grantPermission and manageAll but no grant, then %s is %s', (xml, status, id, _company, changes) => {
    const p = plan(xml, accessSnapshot(actor(perms('grantPermission', 'manageAll'))));
    expect(outcomes(p)).toEqual([[status, id]]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, ...changes });
  });

  test.each(ACCESS_FORMS)('when the actor is ADMIN there but lacks grantPermission, then %s is FAILED and the rest of the batch is applied', (xml, _status, id) => {
    const me = actor(allBut('grantPermission'));
    const p = plan(`${xml}${FOLLOW}`, accessSnapshot(me, 'ADMIN'));
    expectDeniedThenRestApplied(p, id, 'permission denied: grantPermission required', me);
  });

  test.each(ACCESS_FORMS)(
    'when the actor has every permission but manageAll and a role other than ADMIN there, then %s is FAILED naming the company',
    (xml, _status, id, companyId) => {
      const me = actor(allBut('manageAll'));
      const p = plan(`${xml}${FOLLOW}`, accessSnapshot(me, 'SUPERUZIVATEL'));
      expectDeniedThenRestApplied(p, id, `permission denied: ADMIN role in ${companyId} or manageAll required`, me);
    },
  );

  test('when the actor has grantPermission and no grant at all, then it cannot give itself access to a company', () => {
    const me = actor(perms('grantPermission'));
    const p = plan(`<access role="ADMIN" user="actor">firma</access>${FOLLOW}`, accessSnapshot(me));
    expectDeniedThenRestApplied(p, 'actor@firma', 'permission denied: ADMIN role in firma or manageAll required', me);
  });

  test('when the only-role form would change grants in a company where the actor is not ADMIN, then the whole operation is FAILED, also for the companies it runs', () => {
    const me = actor(perms('grantPermission'));
    const snap = snapshot({
      users: [me, BOB],
      companies: [FIRMA, DRUHA],
      access: [grant('bob', 'firma', 'UZIVATEL'), grant('bob', 'druha', 'UZIVATEL'), grant('actor', 'firma', 'ADMIN')],
    });
    const p = plan(`<access role="UCETNI" user="bob"/>${FOLLOW}`, snap);
    expectDeniedThenRestApplied(p, 'bob@*', 'permission denied: ADMIN role in druha or manageAll required', me);
  });

  test('when the only-role form changes only grants in companies the actor runs, then grants elsewhere that already have the role do not matter', () => {
    const snap = snapshot({
      users: [actor(perms('grantPermission')), BOB],
      companies: [FIRMA, DRUHA],
      access: [grant('bob', 'firma', 'UZIVATEL'), grant('bob', 'druha', 'UCETNI'), grant('actor', 'firma', 'ADMIN')],
    });
    const p = plan('<access role="UCETNI" user="bob"/>', snap);
    expect(outcomes(p)).toEqual([['UPDATED', 'bob@*']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, grantedAccess: [grant('bob', 'firma', 'UCETNI')] });
  });
});

// ── permissions ─────────────────────────────────────────────────────────────────────────

describe('permissions: changing permissions needs grantPermission, and nobody grants what it lacks (SPEC §6)', () => {
  const GIVE_BOB = (permission: PermissionName, value = true): string =>
    `<user><username>bob</username><permissions><${permission}>${value}</${permission}></permissions></user>`;

  test('when the actor has grantPermission and the permission it grants, then the user is UPDATED with it', () => {
    const p = plan(GIVE_BOB('createCompany'), snapshot({ users: [actor(perms('grantPermission', 'createCompany')), BOB] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'bob']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...BOB, permissions: perms('createCompany') }] });
  });

  test('when the actor lacks grantPermission, then a permission change is FAILED and the rest of the batch is applied', () => {
    const me = actor(allBut('grantPermission'));
    const p = plan(`${GIVE_BOB('createCompany')}${FOLLOW}`, snapshot({ users: [me, BOB] }));
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: grantPermission required', me);
  });

  test('when the actor lacks grantPermission, then even revoking a permission is FAILED', () => {
    const me = actor(allBut('grantPermission'));
    const p = plan(`${GIVE_BOB('createCompany', false)}${FOLLOW}`, snapshot({ users: [me, { ...BOB, permissions: perms('createCompany') }] }));
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: grantPermission required', me);
  });

  test('when the actor changes only permissions of another user, then createUser is not needed', () => {
    const p = plan(GIVE_BOB('createCompany'), snapshot({ users: [actor(allBut('createUser')), BOB] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'bob']]);
  });

  test.each(PERMISSION_NAMES.filter((p) => p !== 'grantPermission').map((p) => [p]))(
    'when the actor has grantPermission but not %s and grants it, then it is FAILED "cannot grant … without having it"',
    (permission) => {
      const me = actor(allBut(permission));
      const p = plan(`${GIVE_BOB(permission)}${FOLLOW}`, snapshot({ users: [me, BOB] }));
      expectDeniedThenRestApplied(p, 'bob', `permission denied: cannot grant ${permission} without having it`, me);
    },
  );

  test('when one of several granted permissions is one the actor lacks, then the whole change is FAILED', () => {
    const me = actor(perms('grantPermission', 'createUser'));
    const p = plan(
      `<user><username>bob</username><permissions><createUser>true</createUser><createCompany>true</createCompany></permissions></user>${FOLLOW}`,
      snapshot({ users: [me, BOB] }),
    );
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: cannot grant createCompany without having it', me);
  });

  test('when the actor has grantPermission and revokes a permission it has itself, then it is UPDATED', () => {
    const p = plan(GIVE_BOB('createCompany', false), snapshot({ users: [actor(perms('grantPermission', 'createCompany', 'deleteCompany')), { ...BOB, permissions: perms('createCompany', 'deleteCompany') }] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'bob']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...BOB, permissions: perms('deleteCompany') }] });
  });

  test('when the actor has grantPermission and revokes a permission it does not have itself, then it is FAILED, even when the user holds nothing else', () => {
    const me = actor(allBut('createCompany'));
    const p = plan(`${GIVE_BOB('createCompany', false)}${FOLLOW}`, snapshot({ users: [me, { ...BOB, permissions: perms('createCompany') }] }));
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: bob holds createCompany, which you do not have', me);
  });

  test('when a user already holds a permission the actor lacks and the batch sends it unchanged, then it is SKIPPED (nothing is granted)', () => {
    const p = plan(GIVE_BOB('manageAll'), snapshot({ users: [actor(perms('grantPermission')), { ...BOB, permissions: perms('manageAll') }] }));
    expect(outcomes(p)).toEqual([['SKIPPED', 'bob']]);
  });

  test('when another field and a permission change together and the actor has createUser but not grantPermission, then all of it is FAILED', () => {
    const me = actor(allBut('grantPermission'));
    const p = plan(
      `<user><username>bob</username><email>bob@new.cz</email><permissions><createCompany>true</createCompany></permissions></user>${FOLLOW}`,
      snapshot({ users: [me, BOB] }),
    );
    expectDeniedThenRestApplied(p, 'bob', 'permission denied: grantPermission required', me);
  });

  test('when the actor creates a user with permissions, then it needs grantPermission too', () => {
    const me = actor(allBut('grantPermission'));
    const p = plan(`<user><username>carol</username><permissions><createCompany>true</createCompany></permissions></user>${FOLLOW}`, snapshot({ users: [me] }));
    expectDeniedThenRestApplied(p, 'carol', 'permission denied: grantPermission required', me);
  });

  test('when the actor creates a user with a permission it lacks, then it is FAILED even with grantPermission', () => {
    const me = actor(perms('createUser', 'grantPermission'));
    const p = plan(`<user><username>carol</username><permissions><createCompany>true</createCompany></permissions></user>${FOLLOW}`, snapshot({ users: [me] }));
    expectDeniedThenRestApplied(p, 'carol', 'permission denied: cannot grant createCompany without having it', me);
  });

  test('when the actor creates a user with permissions it has, with createUser and grantPermission, then it is CREATED with them', () => {
    const p = plan(
      '<user><username>carol</username><permissions><createCompany>true</createCompany><grantPermission>true</grantPermission></permissions></user>',
      snapshot({ users: [actor(perms('createUser', 'grantPermission', 'createCompany'))] }),
    );
    expect(outcomes(p)).toEqual([['CREATED', 'carol']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [user('carol', { permissions: perms('createCompany', 'grantPermission') })] });
  });

  test('when the actor creates a user with every permission explicitly false, then no grantPermission is needed', () => {
    const p = plan('<user><username>carol</username><permissions><manageAll>false</manageAll><createCompany>false</createCompany></permissions></user>', snapshot({ users: [actor(perms('createUser'))] }));
    expect(outcomes(p)).toEqual([['CREATED', 'carol']]);
  });

  test('when the actor restores a deleted user, then the permissions it had come back without grantPermission', () => {
    const deletedBob = { ...BOB, permissions: perms('createCompany'), deleted: true };
    const p = plan('<user><username>bob</username></user>', snapshot({ users: [actor(perms('createUser', 'createCompany')), deletedBob] }));
    expect(outcomes(p)).toEqual([['CREATED', 'bob', 'restored']]);
    expect(p.changes.users).toEqual([{ ...deletedBob, deleted: false }]);
  });

  test('when the actor revokes one of its own permissions with grantPermission, then it is UPDATED; without grantPermission, FAILED', () => {
    const allowed = actor(perms('grantPermission', 'createCompany'));
    const p = plan('<user><username>actor</username><permissions><createCompany>false</createCompany></permissions></user>', snapshot({ users: [allowed] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'actor']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...allowed, permissions: perms('grantPermission') }] });

    const denied = plan(
      '<user><username>actor</username><permissions><createCompany>false</createCompany></permissions></user>',
      snapshot({ users: [actor(perms('createCompany'))] }),
    );
    expect(outcomes(denied)).toEqual([['FAILED', 'actor', 'permission denied: grantPermission required']]);
    expect(denied.changes).toEqual(EMPTY_CHANGES);
  });

  test('when the actor grants itself a permission it does not have, then it is FAILED even with grantPermission', () => {
    const me = actor(perms('grantPermission'));
    const p = plan(`<user><username>actor</username><permissions><manageAll>true</manageAll></permissions></user>${FOLLOW}`, snapshot({ users: [me] }));
    expectDeniedThenRestApplied(p, 'actor', 'permission denied: cannot grant manageAll without having it', me);
  });
});

// ── no takeover ─────────────────────────────────────────────────────────────────────────

/** A more powerful user, stored as "Alice": the refusal names her stored spelling. */
const ALICE = user('Alice', { givenName: 'Alice', passwordHash: sha256('al1ce', 'alice secret'), permissions: perms('manageAll') });
const ALICE_DIGEST = '5e'.repeat(32);
const ALICE_PREHASHED = `<password hash="sha256" salt="xyz">${ALICE_DIGEST}</password>`;

/**
 * Every kind of change to another user that SPEC §6 guards against takeover: [what, the operation
 * on alice, what the operation itself needs, alice before, its status, alice after].
 */
const TAKEOVER_CHANGES: Array<[string, string, PermissionName[], Partial<UserRecord>, string, Partial<UserRecord> & { newPassword?: string }]> = [
  ['set her password', '<user><username>alice</username><password>taken over</password></user>', ['changePassword'], {}, 'UPDATED', { newPassword: 'taken over' }],
  ['set her password pre-hashed', `<user><username>alice</username>${ALICE_PREHASHED}</user>`, ['changePassword'], {}, 'UPDATED', { passwordHash: `sha256:xyz:${ALICE_DIGEST}` }],
  ['revoke her manageAll', '<user><username>alice</username><permissions><manageAll>false</manageAll></permissions></user>', ['grantPermission'], {}, 'UPDATED', { permissions: noPermissions() }],
  ['grant her another permission', '<user><username>alice</username><permissions><createCompany>true</createCompany></permissions></user>', ['grantPermission', 'createCompany'], {}, 'UPDATED', { permissions: perms('manageAll', 'createCompany') }],
  ['block her', '<user><username>alice</username><blocked message="gone">true</blocked></user>', ['createUser'], {}, 'UPDATED', { blocked: true, blockMessage: 'gone' }],
  ['unblock her', '<user><username>alice</username><blocked>false</blocked></user>', ['createUser'], { blocked: true, blockMessage: 'on leave' }, 'UPDATED', { blocked: false, blockMessage: null }],
  ['change her userType', '<user><username>alice</username><userType>READ_ONLY</userType></user>', ['createUser'], {}, 'UPDATED', { userType: 'READ_ONLY' }],
  ['change her email (our decision: every field)', '<user><username>alice</username><email>attacker@example.cz</email></user>', ['createUser'], {}, 'UPDATED', { email: 'attacker@example.cz' }],
  ['delete her', '<user action="delete"><username>alice</username></user>', ['createUser', 'licenseManagement'], {}, 'DELETED', { deleted: true }],
  ['restore her', '<user><username>alice</username></user>', ['createUser'], { deleted: true }, 'CREATED', { deleted: false }],
];

describe('permissions: no takeover — a user who holds a permission the actor lacks is out of its reach (SPEC §6)', () => {
  test.each(TAKEOVER_CHANGES)('when the actor holds every permission she holds and what the change needs, then it may %s', (_what, xml, needs, before, status, after) => {
    const alice = { ...ALICE, ...before };
    const p = plan(xml, snapshot({ users: [actor(perms('manageAll', ...needs)), alice] }));
    expect(statuses(p)).toEqual([status]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...alice, ...after }] });
  });

  test.each(TAKEOVER_CHANGES)(
    'when she holds manageAll and the actor has every other permission, then trying to %s is FAILED "permission denied: Alice holds manageAll, which you do not have" and the rest is applied',
    (_what, xml, _needs, before) => {
      const me = actor(allBut('manageAll'));
      const p = plan(`${xml}${FOLLOW}`, snapshot({ users: [me, { ...ALICE, ...before }] }));
      expectDeniedThenRestApplied(p, 'alice', 'permission denied: Alice holds manageAll, which you do not have', me);
    },
  );

  test('when the actor has createUser and grantPermission and removes manageAll from a manageAll user and blocks her, then both are FAILED and she keeps both (the issue #9 scenario)', () => {
    const me = actor(perms('createUser', 'grantPermission'));
    const p = plan(
      `<user><username>alice</username><permissions><manageAll>false</manageAll></permissions></user>
       <user><username>alice</username><blocked message="taken over">true</blocked></user>${FOLLOW}`,
      snapshot({ users: [me, ALICE] }),
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'alice', 'permission denied: Alice holds manageAll, which you do not have'],
      ['FAILED', 'alice', 'permission denied: Alice holds manageAll, which you do not have'],
      ['UPDATED', 'actor'],
    ]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...me, givenName: 'Next' }] });
  });

  test('when she holds several permissions the actor lacks, then the refusal names the first in the order of PERMISSION_NAMES', () => {
    const me = actor(perms('createUser', 'manageAll'));
    const alice = { ...ALICE, permissions: perms('licenseManagement', 'deleteCompany', 'manageAll', 'createUser') };
    const p = plan(`<user><username>alice</username><givenName>Al</givenName></user>${FOLLOW}`, snapshot({ users: [me, alice] }));
    expectDeniedThenRestApplied(p, 'alice', 'permission denied: Alice holds deleteCompany, which you do not have', me);
  });

  test('when the actor lacks what the change itself needs, then the refusal names that permission and says nothing about the target', () => {
    const me = actor(perms('createCompany'));
    const p = plan(`<user><username>alice</username><password>taken over</password></user>${FOLLOW}`, snapshot({ users: [me, ALICE] }));
    expectDeniedThenRestApplied(p, 'alice', 'permission denied: changePassword required', me);
  });

  test('when the actor sends the pre-hashed form she has with nothing else changed, then it is SKIPPED, not FAILED (a re-send stays idempotent)', () => {
    const stored = { ...ALICE, passwordHash: `sha256:xyz:${ALICE_DIGEST}` };
    const p = plan(`<user><username>alice</username>${ALICE_PREHASHED}<givenName>Alice</givenName><permissions><manageAll>true</manageAll></permissions></user>`, snapshot({ users: [actor(perms('changePassword')), stored] }));
    expect(outcomes(p)).toEqual([['SKIPPED', 'alice']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test.each([
    ['the password she has', 'alice secret'],
    ['a wrong guess', 'a wrong guess'],
  ])('when the actor sends %s in plain text, then it is FAILED the same way: nobody learns whether a guess at the password of a user who outranks it is right', (_what, plain) => {
    const me = actor(perms('changePassword', 'createUser'));
    const p = plan(`<user><username>alice</username><password>${plain}</password></user>${FOLLOW}`, snapshot({ users: [me, ALICE] }));
    expectDeniedThenRestApplied(p, 'alice', 'permission denied: Alice holds manageAll, which you do not have', me);
  });

  test('when the actor deletes or blocks a user that is already so, or deletes an unknown user, then it is SKIPPED whatever she holds', () => {
    const p = plan(
      `<user><username>alice</username><blocked message="on leave">true</blocked></user>
       <user action="delete"><username>bob</username></user>
       <user action="delete"><username>ghost</username></user>`,
      snapshot({ users: [actor(noPermissions()), { ...ALICE, blocked: true, blockMessage: 'on leave' }, { ...BOB, permissions: perms('manageAll'), deleted: true }] }),
    );
    expect(statuses(p)).toEqual(['SKIPPED', 'SKIPPED', 'SKIPPED']);
  });

  test('when a deleted user who holds a permission the actor lacks is restored with that permission revoked, then it is still FAILED and she stays deleted', () => {
    const me = actor(allBut('manageAll'));
    const p = plan(`<user><username>alice</username><permissions><manageAll>false</manageAll></permissions></user>${FOLLOW}`, snapshot({ users: [me, { ...ALICE, deleted: true }] }));
    expectDeniedThenRestApplied(p, 'alice', 'permission denied: Alice holds manageAll, which you do not have', me);
  });

  test('when the actor gives up one of its permissions earlier in the batch, then a user who holds it is out of reach after that', () => {
    const me = actor(perms('manageAll', 'grantPermission', 'createUser'));
    const p = plan(
      `<user><username>alice</username><givenName>Al</givenName></user>
       <user><username>actor</username><permissions><manageAll>false</manageAll></permissions></user>
       <user><username>alice</username><givenName>Ally</givenName></user>`,
      snapshot({ users: [me, ALICE] }),
    );
    expect(outcomes(p)).toEqual([
      ['UPDATED', 'alice'],
      ['UPDATED', 'actor'],
      ['FAILED', 'alice', 'permission denied: Alice holds manageAll, which you do not have'],
    ]);
  });

  test('when the actor changes its own record, then it stays free: nobody outranks itself', () => {
    const me = actor(perms('createCompany'));
    const p = plan('<user><username>actor</username><password>mine</password><userType>REST_API</userType><blocked>false</blocked></user>', snapshot({ users: [me] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'actor']]);
  });

  test('when a certificate principal without an acting user changes a manageAll user, then it is applied (full rights)', () => {
    const p = plan('<user><username>alice</username><password>reset</password><blocked>true</blocked></user>', snapshot({ users: [ALICE] }), CERTIFICATE);
    expect(statuses(p)).toEqual(['UPDATED']);
  });

  test('when the actor gives a user a grant in a company it runs, then her permissions do not matter (access is the company ADMIN\'s call)', () => {
    const p = plan('<access role="UCETNI" user="alice">firma</access>', snapshot({ users: [actor(perms('grantPermission')), ALICE], companies: [FIRMA], access: [grant('actor', 'firma', 'ADMIN')] }));
    expect(outcomes(p)).toEqual([['CREATED', 'alice@firma']]);
  });
});

// ── companies ───────────────────────────────────────────────────────────────────────────

const CREATE_NOVA = (admin = 'actor'): string => `<company><id>nova</id><name>Nova s.r.o.</name><adminUser>${admin}</adminUser></company>`;

describe('permissions: creating a company needs createCompany; deleting one, deleteCompany (SPEC §6)', () => {
  test('when the actor has createCompany, then the company is CREATED and its admin user is ADMIN there', () => {
    const p = plan(CREATE_NOVA(), snapshot({ users: [actor(perms('createCompany'))] }));
    expect(outcomes(p)).toEqual([['CREATED', 'nova']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, companies: [company('nova', { name: 'Nova s.r.o.' })], grantedAccess: [grant('actor', 'nova', 'ADMIN')] });
  });

  test('when the actor has createCompany and names another user as adminUser, then it is CREATED without grantPermission', () => {
    const p = plan(CREATE_NOVA('bob'), snapshot({ users: [actor(perms('createCompany')), BOB] }));
    expect(outcomes(p)).toEqual([['CREATED', 'nova']]);
    expect(p.changes.grantedAccess).toEqual([grant('bob', 'nova', 'ADMIN')]);
  });

  test('when the actor lacks createCompany, then the create is FAILED and the rest of the batch is applied', () => {
    const me = actor(allBut('createCompany'));
    const p = plan(`${CREATE_NOVA()}${FOLLOW}`, snapshot({ users: [me] }));
    expectDeniedThenRestApplied(p, 'nova', 'permission denied: createCompany required', me);
  });

  test('when the actor has deleteCompany, then the company is DELETED, even without a role in it', () => {
    const p = plan('<company action="delete"><id>firma</id></company>', snapshot({ users: [actor(perms('deleteCompany')), BOB], companies: [FIRMA], access: [grant('bob', 'firma', 'ADMIN')] }));
    expect(outcomes(p)).toEqual([['DELETED', 'firma']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, deletedCompanies: ['firma'] });
  });

  test('when the actor lacks deleteCompany, then the delete is FAILED, even as ADMIN with manageAll, and the rest of the batch is applied', () => {
    const me = actor(allBut('deleteCompany'));
    const p = plan(`<company action="delete"><id>firma</id></company>${FOLLOW}`, snapshot({ users: [me], companies: [FIRMA], access: [grant('actor', 'firma', 'ADMIN')] }));
    expectDeniedThenRestApplied(p, 'firma', 'permission denied: deleteCompany required', me);
  });
});

const COMPANY_CHANGES: Array<[string, string, Partial<CompanyRecord>]> = [
  ['renamed', '<company><id>firma</id><name>Firma Nová s.r.o.</name></company>', { name: 'Firma Nová s.r.o.' }],
  ['given a regNo', '<company><id>firma</id><regNo>12345678</regNo></company>', { regNo: '12345678' }],
  ['hidden', '<company><id>firma</id><show>false</show></company>', { show: false }],
];

describe('permissions: changing or hiding a company needs ADMIN in it or manageAll (SPEC §6)', () => {
  test.each(COMPANY_CHANGES)('when the actor is ADMIN in the company and it is %s, then it is UPDATED', (_what, xml, changed) => {
    const p = plan(xml, snapshot({ users: [actor(noPermissions())], companies: [FIRMA], access: [grant('actor', 'firma', 'ADMIN')] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'firma']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, companies: [{ ...FIRMA, ...changed }] });
  });

  test.each(COMPANY_CHANGES)('when the actor has manageAll and no role in the company and it is %s, then it is UPDATED', (_what, xml, changed) => {
    const p = plan(xml, snapshot({ users: [actor(perms('manageAll'))], companies: [FIRMA] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'firma']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, companies: [{ ...FIRMA, ...changed }] });
  });

  test.each(COMPANY_CHANGES)(
    'when the actor has every permission but manageAll and another role than ADMIN there, and the company is %s, then it is FAILED',
    (_what, xml) => {
      const me = actor(allBut('manageAll'));
      const p = plan(`${xml}${FOLLOW}`, snapshot({ users: [me], companies: [FIRMA], access: [grant('actor', 'firma', 'SUPERUZIVATEL')] }));
      expectDeniedThenRestApplied(p, 'firma', 'permission denied: ADMIN role in firma or manageAll required', me);
    },
  );

  test('when the actor is ADMIN in a hidden company, then it shows it again (UPDATED); without ADMIN or manageAll, FAILED', () => {
    const hidden = { ...FIRMA, show: false };
    const allowed = plan('<company><id>firma</id><show>true</show></company>', snapshot({ users: [actor(noPermissions())], companies: [hidden], access: [grant('actor', 'firma', 'ADMIN')] }));
    expect(outcomes(allowed)).toEqual([['UPDATED', 'firma']]);
    expect(allowed.changes).toEqual({ ...EMPTY_CHANGES, companies: [FIRMA] });
    const me = actor(allBut('manageAll'));
    const denied = plan(`<company><id>firma</id><show>true</show></company>${FOLLOW}`, snapshot({ users: [me], companies: [hidden] }));
    expectDeniedThenRestApplied(denied, 'firma', 'permission denied: ADMIN role in firma or manageAll required', me);
  });

  test('when an ADMIN with grantPermission names another adminUser for an existing company, then that user becomes ADMIN (UPDATED)', () => {
    const p = plan(
      '<company><id>firma</id><adminUser>bob</adminUser></company>',
      snapshot({ users: [actor(perms('grantPermission')), BOB], companies: [FIRMA], access: [grant('actor', 'firma', 'ADMIN')] }),
    );
    expect(outcomes(p)).toEqual([['UPDATED', 'firma']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, grantedAccess: [grant('bob', 'firma', 'ADMIN')] });
  });

  test('when an ADMIN without grantPermission names another adminUser for an existing company, then it is FAILED (it grants access)', () => {
    const me = actor(allBut('grantPermission'));
    const p = plan(
      `<company><id>firma</id><name>Firma Nová s.r.o.</name><adminUser>bob</adminUser></company>${FOLLOW}`,
      snapshot({ users: [me, BOB], companies: [FIRMA], access: [grant('actor', 'firma', 'ADMIN')] }),
    );
    expectDeniedThenRestApplied(p, 'firma', 'permission denied: grantPermission required', me);
  });

  test('when an actor with grantPermission but no ADMIN role names itself adminUser of an existing company, then it is FAILED', () => {
    const me = actor(allBut('manageAll'));
    const p = plan(`<company><id>firma</id><adminUser>actor</adminUser></company>${FOLLOW}`, snapshot({ users: [me], companies: [FIRMA] }));
    expectDeniedThenRestApplied(p, 'firma', 'permission denied: ADMIN role in firma or manageAll required', me);
  });

  test('when adminUser already is ADMIN and nothing else changes, then it is SKIPPED whatever the permissions', () => {
    const p = plan(
      '<company><id>firma</id><name>Firma s.r.o.</name><adminUser>bob</adminUser></company>',
      snapshot({ users: [actor(noPermissions()), BOB], companies: [FIRMA], access: [grant('bob', 'firma', 'ADMIN')] }),
    );
    expect(outcomes(p)).toEqual([['SKIPPED', 'firma']]);
  });
});

// ── full rights, no-ops and re-sending ──────────────────────────────────────────────────

/** The store after a change set, as the store would write it (new passwords hashed). */
function applied(snap: Snapshot, changes: ChangeSet): Snapshot {
  const users = new Map(snap.users.map((u) => [u.key, u]));
  for (const { newPassword, ...u } of changes.users) users.set(u.key, newPassword === undefined ? u : { ...u, passwordHash: sha256('fresh', newPassword) });
  const companies = new Map(snap.companies.map((c) => [c.id, c]));
  for (const id of changes.deletedCompanies) companies.delete(id);
  for (const c of changes.companies) companies.set(c.id, c);
  const pair = (a: Pick<AccessRecord, 'userKey' | 'companyId'>): string => `${a.userKey}@${a.companyId}`;
  const access = new Map(snap.access.filter((a) => !changes.deletedCompanies.includes(a.companyId)).map((a) => [pair(a), a]));
  for (const a of changes.revokedAccess) access.delete(pair(a));
  for (const a of changes.grantedAccess) access.set(pair(a), a);
  return snapshot({ users: [...users.values()], companies: [...companies.values()], access: [...access.values()] });
}

/** One operation of every row of the table. */
const EVERYTHING = `
  <user><username>carol</username><password>carol secret</password><permissions><manageAll>true</manageAll><licenseMgmt>true</licenseMgmt></permissions></user>
  <user><username>bob</username><password>new secret</password><email>bob@new.cz</email><blocked message="m">true</blocked></user>
  <access role="ADMIN" user="bob">druha</access>
  <access role="UCETNI" user="bob"/>
  <company><id>nova</id><name>Nova s.r.o.</name><adminUser>carol</adminUser></company>
  <company><id>firma</id><name>Firma Nová s.r.o.</name><show>false</show></company>
  <access action="delete" user="bob">firma</access>
  <company action="delete"><id>druha</id></company>
  <user action="delete"><username>dave</username></user>`;

describe('permissions: principals without an acting user, no-ops and re-sent batches (SPEC §5.2, §6)', () => {
  const STORE = snapshot({ users: [BOB, user('dave')], companies: [FIRMA, DRUHA], access: [grant('bob', 'firma', 'UZIVATEL')] });

  test('when a certificate principal acts without an acting user, then it may do everything (no stored actor needed)', () => {
    const p = plan(EVERYTHING, STORE, CERTIFICATE);
    expect(outcomes(p)).toEqual([
      ['CREATED', 'carol'],
      ['UPDATED', 'bob'],
      ['CREATED', 'bob@druha'],
      ['UPDATED', 'bob@*'],
      ['CREATED', 'nova'],
      ['UPDATED', 'firma'],
      ['DELETED', 'bob@firma'],
      ['DELETED', 'druha'],
      ['DELETED', 'dave'],
    ]);
    expect(snapshotRequest(parseBatch(`<flexibee-batch id="t">${EVERYTHING}</flexibee-batch>`, { maxOperations: 1000 }), CERTIFICATE).userKeys).not.toContain('actor');
  });

  test('when the same operations are sent as an actor with no permission at all, then every one of them is FAILED and nothing changes', () => {
    const p = plan(EVERYTHING, snapshot({ ...STORE, users: [...STORE.users, actor(noPermissions())] }));
    expect(statuses(p)).toEqual(Array(9).fill('FAILED'));
    expect(p.results.every((r) => r.message?.startsWith('permission denied: '))).toBe(true);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when operations change nothing, then they are SKIPPED whatever the permissions, and nothing is written', () => {
    const store = snapshot({
      users: [actor(noPermissions()), { ...BOB, permissions: perms('manageAll') }],
      companies: [FIRMA, DRUHA],
      access: [grant('bob', 'firma', 'UCETNI')],
    });
    const p = plan(
      `<user><username>bob</username><password hash="sha256" salt="s4lt">${BOB.passwordHash?.split(':')[2]}</password><email>bob@firma.cz</email><permissions><manageAll>true</manageAll></permissions><blocked>false</blocked></user>
       <access role="UCETNI" user="bob">firma</access>
       <access user="bob">firma</access>
       <access role="UCETNI" user="bob"/>
       <access action="delete" user="bob">druha</access>
       <access action="delete" user="bob">gone</access>
       <company><id>firma</id><name>Firma s.r.o.</name><show>true</show></company>
       <company action="delete"><id>gone</id></company>
       <user action="delete"><username>ghost</username></user>`,
      store,
    );
    expect(statuses(p)).toEqual(Array(9).fill('SKIPPED'));
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a batch with allowed and denied operations is sent again, then the second answer is all SKIPPED, FAILED stays FAILED, and nothing is written', () => {
    // May create users, change passwords and fields, grant what it has, and runs firma; may not create or delete companies.
    const me = actor(perms('createUser', 'changePassword', 'grantPermission', 'licenseManagement'));
    const store = snapshot({ ...STORE, users: [...STORE.users, me], access: [...STORE.access, grant('actor', 'firma', 'ADMIN')] });
    const batch = `
      <user><username>carol</username><password>carol secret</password><permissions><createUser>true</createUser></permissions></user>
      <user><username>eve</username><permissions><createCompany>true</createCompany></permissions></user>
      <user><username>bob</username><password>new secret</password><email>bob@new.cz</email></user>
      <access role="UCETNI" user="bob">firma</access>
      <access role="UCETNI" user="bob">druha</access>
      <company><id>firma</id><name>Firma Nová s.r.o.</name></company>
      <company><id>nova</id><name>Nova s.r.o.</name><adminUser>actor</adminUser></company>
      <company action="delete"><id>druha</id></company>
      <user action="delete"><username>dave</username></user>`;
    const first = plan(batch, store);
    expect(outcomes(first)).toEqual([
      ['CREATED', 'carol'],
      ['FAILED', 'eve', 'permission denied: cannot grant createCompany without having it'],
      ['UPDATED', 'bob'],
      ['UPDATED', 'bob@firma'],
      ['FAILED', 'bob@druha', 'permission denied: ADMIN role in druha or manageAll required'],
      ['UPDATED', 'firma'],
      ['FAILED', 'nova', 'permission denied: createCompany required'],
      ['FAILED', 'druha', 'permission denied: deleteCompany required'],
      ['DELETED', 'dave'],
    ]);
    const second = plan(batch, applied(store, first.changes));
    expect(statuses(second)).toEqual(statuses(first).map((s) => (s === 'FAILED' ? s : 'SKIPPED')));
    expect(second.results.filter((r) => r.status === 'FAILED')).toEqual(first.results.filter((r) => r.status === 'FAILED'));
    expect(second.changes).toEqual(EMPTY_CHANGES);
  });
});

// ── the actor's own changes within one batch ────────────────────────────────────────────

describe("permissions within one batch: the actor's own permissions and grants as changed so far apply (SPEC §4 order, §6)", () => {
  test('when the actor removes one of its own permissions, then a later operation that needs it is FAILED', () => {
    const me = actor(perms('grantPermission', 'createCompany'));
    const p = plan(`<user><username>actor</username><permissions><createCompany>false</createCompany></permissions></user>${CREATE_NOVA()}`, snapshot({ users: [me] }));
    expect(outcomes(p)).toEqual([
      ['UPDATED', 'actor'],
      ['FAILED', 'nova', 'permission denied: createCompany required'],
    ]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...me, permissions: perms('grantPermission') }] });
  });

  test('when the actor gives up grantPermission, then its later access changes are FAILED', () => {
    const me = actor(perms('grantPermission'));
    const p = plan(
      '<user><username>actor</username><permissions><grantPermission>false</grantPermission></permissions></user><access role="UCETNI" user="bob">firma</access>',
      accessSnapshot(me, 'ADMIN'),
    );
    expect(outcomes(p)).toEqual([
      ['UPDATED', 'actor'],
      ['FAILED', 'bob@firma', 'permission denied: grantPermission required'],
    ]);
  });

  test('when the actor tries to raise its own permissions, then it is FAILED, so a batch can only narrow them', () => {
    const me = actor(perms('grantPermission'));
    const p = plan(`<user><username>actor</username><permissions><createCompany>true</createCompany></permissions></user>${CREATE_NOVA()}`, snapshot({ users: [me] }));
    expect(outcomes(p)).toEqual([
      ['FAILED', 'actor', 'permission denied: cannot grant createCompany without having it'],
      ['FAILED', 'nova', 'permission denied: createCompany required'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when another user is given a permission earlier in the batch, then the actor still acts with its own permissions only', () => {
    const me = actor(perms('grantPermission', 'createCompany'));
    const p = plan(
      `<user><username>bob</username><permissions><createCompany>true</createCompany></permissions></user>
       <user><username>actor</username><permissions><createCompany>false</createCompany></permissions></user>
       ${CREATE_NOVA('bob')}`,
      snapshot({ users: [me, BOB] }),
    );
    expect(outcomes(p)).toEqual([
      ['UPDATED', 'bob'],
      ['UPDATED', 'actor'],
      ['FAILED', 'nova', 'permission denied: createCompany required'],
    ]);
  });

  test('when the actor creates a company with itself as adminUser, then it is ADMIN there and may change, hide and open it later in the batch', () => {
    const p = plan(
      `${CREATE_NOVA()}
       <company><id>nova</id><name>Nova a.s.</name></company>
       <access role="UCETNI" user="bob">nova</access>
       <company><id>nova</id><show>false</show></company>`,
      snapshot({ users: [actor(perms('createCompany', 'grantPermission')), BOB] }),
    );
    expect(outcomes(p)).toEqual([
      ['CREATED', 'nova'],
      ['UPDATED', 'nova'],
      ['CREATED', 'bob@nova'],
      ['UPDATED', 'nova'],
    ]);
    expect(p.changes.companies).toEqual([company('nova', { name: 'Nova a.s.', show: false })]);
  });

  test('when a company is created earlier in the batch with another user as adminUser, then that grant does not let the actor change it', () => {
    const p = plan(`${CREATE_NOVA('bob')}<company><id>nova</id><name>Nova a.s.</name></company>`, snapshot({ users: [actor(perms('createCompany')), BOB] }));
    expect(outcomes(p)).toEqual([
      ['CREATED', 'nova'],
      ['FAILED', 'nova', 'permission denied: ADMIN role in nova or manageAll required'],
    ]);
    expect(p.changes.companies).toEqual([company('nova', { name: 'Nova s.r.o.' })]);
  });

  test('when the actor removes its own ADMIN role in a company, then it can no longer change that company later in the batch', () => {
    const p = plan(
      '<access action="delete" user="actor">firma</access><company><id>firma</id><name>Firma Nová s.r.o.</name></company>',
      snapshot({ users: [actor(perms('grantPermission'))], companies: [FIRMA], access: [grant('actor', 'firma', 'ADMIN')] }),
    );
    expect(outcomes(p)).toEqual([
      ['DELETED', 'actor@firma'],
      ['FAILED', 'firma', 'permission denied: ADMIN role in firma or manageAll required'],
    ]);
  });

  test('when the actor deletes itself, then every later operation that changes something is FAILED, and no-ops stay SKIPPED', () => {
    const me = actor(perms('createUser', 'licenseManagement'));
    const p = plan(
      `<user action="delete"><username>actor</username></user>${FOLLOW}<user><username>carol</username></user><user action="delete"><username>ghost</username></user>`,
      snapshot({ users: [me] }),
    );
    expect(outcomes(p)).toEqual([
      ['DELETED', 'actor'],
      ['FAILED', 'actor', "permission denied: the acting user 'actor' no longer exists"],
      ['FAILED', 'carol', "permission denied: the acting user 'actor' no longer exists"],
      ['SKIPPED', 'ghost', 'user does not exist'],
    ]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, users: [{ ...me, deleted: true }] });
  });

  test('when the actor blocks itself, then every later operation that changes something is FAILED', () => {
    const me = actor(perms('createUser'));
    const p = plan(`<user><username>actor</username><blocked>true</blocked></user><user><username>carol</username></user>`, snapshot({ users: [me] }));
    expect(outcomes(p)).toEqual([
      ['UPDATED', 'actor'],
      ['FAILED', 'carol', "permission denied: the acting user 'actor' is blocked"],
    ]);
  });

  test('when a batch is atomic and one operation is denied, then nothing of it is kept', () => {
    const doc = parseBatch(`<flexibee-batch id="t" atomic="true">${FOLLOW}${CREATE_NOVA()}</flexibee-batch>`, { maxOperations: 10 });
    const p = planBatch(doc, snapshot({ users: [actor(noPermissions())] }), { principal: AS_ACTOR, passwordMatches: verifyPasswordSync });
    expect(outcomes(p)).toEqual([
      ['SKIPPED', 'actor', 'rolled back'],
      ['FAILED', 'nova', 'permission denied: createCompany required'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a batch acts as a user, then snapshotRequest asks for the acting user too', () => {
    const doc = parseBatch(`<flexibee-batch id="t">${CREATE_NOVA('bob')}</flexibee-batch>`, { maxOperations: 10 });
    expect(snapshotRequest(doc, { ...AS_ACTOR, actingUser: 'Actor' }).userKeys.sort()).toEqual(['actor', 'bob']);
  });
});

// ── the table itself (domain/permissions.ts), which the planner and the routes consult ──

describe('the SPEC §6 table: each row allows what it lists and names what is missing', () => {
  const ALL_OF = Object.entries(NEEDS).flatMap(([operation, need]) => ('allOf' in need ? [[operation as GuardedOperation, need.allOf as readonly PermissionName[]] as const] : []));

  test.each(ALL_OF)('when an acting user holds exactly what %s lists, then it is allowed', (operation, needed) => {
    expect(missingFor(operation, perms(...needed))).toBeUndefined();
  });

  test.each(ALL_OF.flatMap(([operation, needed]) => needed.map((p) => [operation, p] as const)))(
    'when an acting user holds every permission but %s\'s %s, then that one is named as missing',
    (operation, lacking) => {
      expect(missingFor(operation, allBut(lacking))).toBe(lacking);
    },
  );

  test.each([['manageAll' as const], ['createUser' as const]])('when an acting user holds %s, then it may read other users and their journal entries', (held) => {
    expect(missingFor('readOthers', perms(held))).toBeUndefined();
  });

  test('when an acting user holds every permission but manageAll and createUser, then it may not read others, and manageAll is named', () => {
    expect(missingFor('readOthers', allBut('manageAll', 'createUser'))).toBe('manageAll');
  });

  test('when the target holds permissions the actor lacks, then takeoverBlocker names the first of them in PERMISSION_NAMES order; when none, nothing', () => {
    expect(takeoverBlocker(perms('manageAll'), perms('licenseManagement', 'createCompany', 'manageAll'))).toBe('createCompany');
    expect(takeoverBlocker(perms('manageAll', 'createUser'), perms('createUser'))).toBeUndefined();
    expect(takeoverBlocker(noPermissions(), noPermissions())).toBeUndefined();
  });

  test('when a permission change grants or revokes a permission the actor lacks, then beyondActor names it and says which; changes within its own permissions pass', () => {
    expect(beyondActor(perms('grantPermission'), noPermissions(), perms('createUser'))).toEqual({ permission: 'createUser', granted: true });
    expect(beyondActor(perms('grantPermission'), perms('createUser'), noPermissions())).toEqual({ permission: 'createUser', granted: false });
    expect(beyondActor(perms('createUser'), perms('createUser'), noPermissions())).toBeUndefined();
  });

  test('when an acting user runs a company, then the ADMIN role there or manageAll is enough, any other role is not', () => {
    expect(runsCompany(noPermissions(), 'ADMIN')).toBe(true);
    expect(runsCompany(perms('manageAll'), undefined)).toBe(true);
    expect(runsCompany(allBut('manageAll'), 'SUPERUZIVATEL')).toBe(false);
  });
});
