import { parseBatch } from '../../src/batch/parse';
import { planBatch, snapshotRequest, type Plan, type Snapshot } from '../../src/batch/plan';
import type { GroupContents } from '../../src/domain/changes';
import type { DateActionRecord } from '../../src/domain/date-actions';
import { rootGroup, type GroupRecord } from '../../src/domain/groups';
import { verifyPasswordSync } from '../../src/domain/passwords';
import { noPermissions, type PermissionName } from '../../src/domain/permissions';
import type { Principal } from '../../src/domain/principals';
import { EMPTY_CHANGES, snapshot, user } from '../support/snapshots';

/**
 * SPEC §10.3 at planner level: the <dateAction> entity — its checks, idempotency, the permission an
 * acting user needs, scope and global ids, and a group that still holds one.
 *
 *   root ── partner_a ── cust_a1
 *        └─ partner_b
 */
const GROUPS: GroupRecord[] = [
  rootGroup(),
  { ...rootGroup(), id: 'partner_a', name: 'A', parentId: 'root' },
  { ...rootGroup(), id: 'cust_a1', name: 'A1', parentId: 'partner_a' },
  { ...rootGroup(), id: 'partner_b', name: 'B', parentId: 'root' },
];

const ROOT: Principal = { kind: 'cli', name: 'cli', scope: 'root' };
const PARTNER_A: Principal = { kind: 'certificate', name: 'FP-A', scope: 'partner_a' };

const TRIAL_END: DateActionRecord = {
  id: 'trial-end',
  entity: 'USER',
  field: 'validUntil',
  offsets: [
    { unit: 'months', amount: 3 },
    { unit: 'days', amount: -5 },
  ],
  do: 'block',
  message: 'Your trial has ended.',
  licenseGroup: 'partner_a',
  active: true,
};

const TRIAL_END_XML = `<dateAction>
  <id>trial-end</id>
  <entity>USER</entity>
  <field>validUntil</field>
  <offset unit="months">3</offset>
  <offset unit="days">-5</offset>
  <do>block</do>
  <message>Your trial has ended.</message>
  <licenseGroup>partner_a</licenseGroup>
  <active>true</active>
</dateAction>`;

function world(parts: Partial<Snapshot> = {}): Snapshot {
  return snapshot({ groups: GROUPS, ...parts });
}

function plan(operations: string, snap: Snapshot, principal: Principal = ROOT): Plan {
  const doc = parseBatch(`<flexibee-batch id="t">${operations}</flexibee-batch>`, { maxOperations: 100 });
  return planBatch(doc, snap, { principal, passwordMatches: verifyPasswordSync });
}

function outcomes(p: Plan): Array<[string, string] | [string, string, string]> {
  return p.results.map((r) => (r.message === undefined ? [r.status, r.id] : [r.status, r.id, r.message]));
}

const action = (inner: string, attributes = ''): string => `<dateAction${attributes}>${inner}</dateAction>`;
const minimal = (id: string, more = ''): string => action(`<id>${id}</id><entity>USER</entity><field>validUntil</field><do>remind</do>${more}`);

describe('planBatch: <dateAction> (SPEC §10.3)', () => {
  test('when a date action is created, then it is CREATED with its offsets in order, and the change set writes it', () => {
    const p = plan(TRIAL_END_XML, world());
    expect(outcomes(p)).toEqual([['CREATED', 'trial-end']]);
    expect(p.results[0].type).toBe('DATE_ACTION');
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, dateActions: [{ kind: 'put', action: TRIAL_END }] });
    expect(p.events).toEqual([]);
  });

  test('when the same date action is sent again, then it is SKIPPED and nothing is written', () => {
    const p = plan(TRIAL_END_XML, world({ dateActions: [TRIAL_END] }));
    expect(outcomes(p)).toEqual([['SKIPPED', 'trial-end']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when some fields are given, then only they change and the rest is kept; given offsets replace the stored ones', () => {
    const p = plan(action('<id>trial-end</id><active>false</active><offset unit="weeks">2</offset>'), world({ dateActions: [TRIAL_END] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'trial-end']]);
    expect(p.changes.dateActions).toEqual([{ kind: 'put', action: { ...TRIAL_END, active: false, offsets: [{ unit: 'weeks', amount: 2 }] } }]);
  });

  test('when an offset of 0 is given, then it is the same as none: an action without offsets is SKIPPED', () => {
    const stored = { ...TRIAL_END, offsets: [] };
    expect(outcomes(plan(action('<id>trial-end</id><offset unit="days">0</offset>'), world({ dateActions: [stored] })))).toEqual([['SKIPPED', 'trial-end']]);
  });

  test('when an empty <message/> is given, then the message is removed', () => {
    const p = plan(action('<id>trial-end</id><message/>'), world({ dateActions: [TRIAL_END] }));
    expect(p.changes.dateActions).toEqual([{ kind: 'put', action: { ...TRIAL_END, message: null } }]);
  });

  test('when no license group is given, then the action goes to the principal\'s own group and is active', () => {
    const p = plan(minimal('remind-a'), world(), PARTNER_A);
    expect(p.changes.dateActions).toEqual([
      { kind: 'put', action: { id: 'remind-a', entity: 'USER', field: 'validUntil', offsets: [], do: 'remind', message: null, licenseGroup: 'partner_a', active: true } },
    ]);
  });

  test.each<[string, string, string]>([
    ['an unknown entity', action('<id>x</id><entity>GROUP</entity>'), "unknown entity 'GROUP' in <dateAction>; expected USER or COMPANY"],
    ['an unknown field', action('<id>x</id><field>birthday</field>'), "unknown field 'birthday' in <dateAction>; expected validUntil, createdAt, lastLoginAt"],
    ['an unknown action', action('<id>x</id><do>archive</do>'), "unknown action 'archive' in <do>; expected remind, block, hide, delete"],
    ['a field of users on a company', action('<id>x</id><entity>COMPANY</entity><field>lastLoginAt</field><do>remind</do>'), 'field lastLoginAt does not belong to COMPANY; expected validUntil, createdAt'],
    ['hide for a user', action('<id>x</id><entity>USER</entity><field>createdAt</field><do>hide</do>'), 'do hide does not apply to USER; expected remind, block, delete'],
    ['block for a company', action('<id>x</id><entity>COMPANY</entity><field>validUntil</field><do>block</do>'), 'do block does not apply to COMPANY; expected remind, hide, delete'],
    ['three offsets', minimal('x', '<offset unit="days">1</offset><offset unit="days">2</offset><offset unit="days">3</offset>'), 'a <dateAction> takes at most 2 <offset> elements, applied in order'],
    ['an offset without a unit', minimal('x', '<offset>3</offset>'), 'an <offset> needs a unit attribute, days, weeks or months: <offset unit="months">3</offset>'],
    ['an offset in years', minimal('x', '<offset unit="years">1</offset>'), "unknown offset unit 'years'; expected days, weeks, months"],
    ['an offset that is not a whole number', minimal('x', '<offset unit="days">1.5</offset>'), "<offset unit=\"days\"> must be a whole number from -36600 to 36600, not '1.5'"],
    ['an offset of a thousand years', minimal('x', '<offset unit="months">12000</offset>'), "<offset unit=\"months\"> must be a whole number from -1200 to 1200, not '12000'"],
    ['an empty offset', minimal('x', '<offset unit="weeks"/>'), "<offset unit=\"weeks\"> must be a whole number from -5300 to 5300, not ''"],
    ['an unknown element', minimal('x', '<when>tomorrow</when>'), 'unknown element <when> in <dateAction>; expected <id>, <entity>, <field>, <offset>, <do>, <message>, <licenseGroup>, <active>'],
    ['a field given twice', minimal('x', '<do>block</do>'), '<do> is given twice in <dateAction>'],
    ['an id with capitals', minimal('Trial'), "date action id 'Trial' is not valid: date action ids are 1–64 characters of a–z, 0–9, _ and -"],
    ['no id', action('<entity>USER</entity>'), 'a <dateAction> needs an <id>'],
    ['a message over 255 characters', minimal('x', `<message>${'m'.repeat(256)}</message>`), '<message> is longer than 255 characters'],
    ['active that is no boolean', minimal('x', '<active>yes</active>'), "<active> must be true or false, not 'yes'"],
    ['an unknown attribute', minimal('x').replace('<dateAction>', '<dateAction mode="x">'), "unknown attribute 'mode' on <dateAction>; expected action"],
    ['a create without entity, field and action', action('<id>x</id><message>hi</message>'), "date action 'x' does not exist, and a date action cannot be created without <entity>, <field>, <do>"],
    ['a license group outside the scope', minimal('x', '<licenseGroup>partner_b</licenseGroup>'), "license group 'partner_b' does not exist"],
  ])('when a date action has %s, then it is FAILED saying so and nothing changes', (_name, xml, message) => {
    const p = plan(xml, world(), PARTNER_A);
    expect(p.results.map((r) => [r.type, r.status, r.message])).toEqual([['DATE_ACTION', 'FAILED', message]]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when an update would pair a field with another entity, then it is FAILED and the stored action is kept', () => {
    const p = plan(action('<id>trial-end</id><entity>COMPANY</entity>'), world({ dateActions: [TRIAL_END] }));
    expect(outcomes(p)).toEqual([['FAILED', 'trial-end', 'do block does not apply to COMPANY; expected remind, hide, delete']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a date action is deleted, then it is DELETED; deleting it again, or one that never was, is SKIPPED', () => {
    const p = plan(action('<id>trial-end</id>', ' action="delete"') + action('<id>trial-end</id>', ' action="delete"') + action('<id>never</id>', ' action="delete"'), world({ dateActions: [TRIAL_END] }));
    expect(outcomes(p)).toEqual([
      ['DELETED', 'trial-end'],
      ['SKIPPED', 'trial-end', 'date action does not exist'],
      ['SKIPPED', 'never', 'date action does not exist'],
    ]);
    expect(p.changes.dateActions).toEqual([{ kind: 'delete', id: 'trial-end' }]);
  });

  test('when a date action is deleted and created again in one batch, then the store deletes it (with what fired for it) before writing the new one', () => {
    const p = plan(action('<id>trial-end</id>', ' action="delete"') + TRIAL_END_XML, world({ dateActions: [TRIAL_END] }));
    expect(outcomes(p)).toEqual([['DELETED', 'trial-end'], ['CREATED', 'trial-end']]);
    expect(p.changes.dateActions).toEqual([{ kind: 'delete', id: 'trial-end' }, { kind: 'put', action: TRIAL_END }]);
  });

  describe('who may (SPEC §6: licenseManagement)', () => {
    const actingAs = (permissions: PermissionName[]): { snap: Snapshot; principal: Principal } => {
      const p = noPermissions();
      for (const name of permissions) p[name] = true;
      return { snap: world({ users: [user('actor', { licenseGroup: 'partner_a', permissions: p })] }), principal: { ...PARTNER_A, actingUser: 'actor' } };
    };

    test('when an acting user without licenseManagement creates or deletes a date action, then it is FAILED naming the permission', () => {
      const { snap, principal } = actingAs(['manageAll', 'createUser']);
      const p = plan(minimal('x') + action('<id>x</id>', ' action="delete"'), snap, principal);
      expect(outcomes(p)).toEqual([
        ['FAILED', 'x', 'permission denied: licenseManagement required'],
        ['FAILED', 'x', 'permission denied: licenseManagement required'],
      ]);
    });

    test('when an acting user with licenseManagement creates a reminder, then it is CREATED', () => {
      const { snap, principal } = actingAs(['licenseManagement']);
      expect(outcomes(plan(minimal('x'), snap, principal))).toEqual([['CREATED', 'x']]);
    });

    test.each<[string, string, PermissionName[], string]>([
      ['blocks users', '<entity>USER</entity><field>validUntil</field><do>block</do>', ['createUser'], 'a date action that does block to users needs createUser, which you do not have'],
      ['deletes users', '<entity>USER</entity><field>validUntil</field><do>delete</do>', ['createUser'], 'a date action that does delete to users needs createUser, which you do not have'],
      ['hides companies', '<entity>COMPANY</entity><field>validUntil</field><do>hide</do>', ['manageAll'], 'a date action that does hide to companies needs manageAll, which you do not have'],
      ['deletes companies', '<entity>COMPANY</entity><field>createdAt</field><do>delete</do>', ['deleteCompany'], 'a date action that does delete to companies needs deleteCompany, which you do not have'],
    ])('when an acting user sets up an action that %s without the permission that needs, then it is FAILED; with it, CREATED', (_name, parts, needed, message) => {
      const without = actingAs(['licenseManagement']);
      expect(outcomes(plan(action(`<id>x</id>${parts}`), without.snap, without.principal))).toEqual([['FAILED', 'x', `permission denied: ${message}`]]);
      const holding = actingAs(['licenseManagement', ...needed]);
      expect(outcomes(plan(action(`<id>x</id>${parts}`), holding.snap, holding.principal))).toEqual([['CREATED', 'x']]);
    });

    test('when an acting user turns a reminder it may set into a block it may not do, then the update is FAILED', () => {
      const { snap, principal } = actingAs(['licenseManagement']);
      const reminder: DateActionRecord = { ...TRIAL_END, do: 'remind', licenseGroup: 'partner_a' };
      const p = plan(action('<id>trial-end</id><do>block</do>'), { ...snap, dateActions: [reminder] }, principal);
      expect(outcomes(p)).toEqual([['FAILED', 'trial-end', 'permission denied: a date action that does block to users needs createUser, which you do not have']]);
    });
  });

  describe('scope and global ids (SPEC §7)', () => {
    const outside: DateActionRecord = { ...TRIAL_END, id: 'b-action', licenseGroup: 'partner_b' };

    test('when a principal names an action of another partner, then delete is SKIPPED as for one that does not exist, and a create is FAILED "not available"', () => {
      const p = plan(action('<id>b-action</id>', ' action="delete"') + minimal('b-action') + action('<id>b-action</id><active>false</active>'), world({ dateActions: [outside] }), PARTNER_A);
      expect(outcomes(p)).toEqual([
        ['SKIPPED', 'b-action', 'date action does not exist'],
        ['FAILED', 'b-action', 'date action id b-action is not available'],
        ['FAILED', 'b-action', "date action 'b-action' does not exist, and a date action cannot be created without <entity>, <field>, <do>"],
      ]);
      expect(p.changes).toEqual(EMPTY_CHANGES);
    });

    test('when an action of the scope moves to a group below, then it is UPDATED; to a group outside, FAILED', () => {
      const mine = { ...TRIAL_END, licenseGroup: 'partner_a' };
      const p = plan(action('<id>trial-end</id><licenseGroup>cust_a1</licenseGroup>') + action('<id>trial-end</id><licenseGroup>partner_b</licenseGroup>'), world({ dateActions: [mine] }), PARTNER_A);
      expect(outcomes(p)).toEqual([['UPDATED', 'trial-end'], ['FAILED', 'trial-end', "license group 'partner_b' does not exist"]]);
      expect(p.changes.dateActions).toEqual([{ kind: 'put', action: { ...mine, licenseGroup: 'cust_a1' } }]);
    });

    test('when a batch names date actions, then the store is asked for them and for the groups they name', () => {
      const doc = parseBatch(`<flexibee-batch id="t">${minimal('a', '<licenseGroup>cust_a1</licenseGroup>')}${action('<id>b</id>', ' action="delete"')}</flexibee-batch>`, { maxOperations: 10 });
      const request = snapshotRequest(doc, PARTNER_A);
      expect(request.dateActionIds).toEqual(['a', 'b']);
      expect(request.groupIds).toEqual(['partner_a', 'cust_a1']);
    });
  });

  describe('a group that holds a date action is not empty (SPEC §7.1)', () => {
    const contents = (id: string, over: Partial<GroupContents> = {}): GroupContents => ({ id, groups: 0, users: 0, companies: 0, certificates: 0, dateActions: 0, ...over });
    const inA1: DateActionRecord = { ...TRIAL_END, licenseGroup: 'cust_a1' };

    test('when a group with a date action is deleted, then it is FAILED naming it; once the action is deleted first, the group goes', () => {
      const snap = world({ dateActions: [inA1], groupContents: [contents('cust_a1', { dateActions: 1 })] });
      const del = '<licenseGroup action="delete"><id>cust_a1</id></licenseGroup>';
      expect(outcomes(plan(del, snap))).toEqual([['FAILED', 'cust_a1', 'license group cust_a1 is not empty: 1 date action']]);
      expect(outcomes(plan(action('<id>trial-end</id>', ' action="delete"') + del, snap))).toEqual([
        ['DELETED', 'trial-end'],
        ['DELETED', 'cust_a1'],
      ]);
    });

    test('when a date action moves into a group the batch then deletes, then the delete is FAILED', () => {
      const snap = world({ dateActions: [TRIAL_END], groupContents: [contents('cust_a1')] });
      const p = plan(action('<id>trial-end</id><licenseGroup>cust_a1</licenseGroup>') + '<licenseGroup action="delete"><id>cust_a1</id></licenseGroup>', snap);
      expect(outcomes(p)).toEqual([['UPDATED', 'trial-end'], ['FAILED', 'cust_a1', 'license group cust_a1 is not empty: 1 date action']]);
    });
  });
});
