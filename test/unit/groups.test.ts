import { parseBatch } from '../../src/batch/parse';
import { planBatch, snapshotRequest, type Plan, type Snapshot } from '../../src/batch/plan';
import type { AccessRecord } from '../../src/domain/access';
import type { GroupContents } from '../../src/domain/changes';
import type { CompanyRecord } from '../../src/domain/companies';
import { GroupTree, noFreeSeat, rootGroup, type GroupRecord } from '../../src/domain/groups';
import { verifyPasswordSync } from '../../src/domain/passwords';
import { noPermissions, PERMISSION_NAMES, type PermissionName, type Permissions } from '../../src/domain/permissions';
import type { Principal } from '../../src/domain/principals';
import { ROLE_CODES } from '../../src/domain/roles';
import type { UserRecord } from '../../src/domain/users';
import { company, deepFreeze, EMPTY_CHANGES, grant, snapshot, user, withEventBodies } from '../support/snapshots';

/**
 * SPEC §7 at planner level: the license-group tree, scopes, seats and parameters, on hand-made
 * snapshots. Unlike plan.test.ts, the change sets here keep the seat counters (SPEC §7.2).
 *
 *   root
 *   ├── partner_a        seats 10
 *   │   ├── cust_a1      seats 3
 *   │   │   └── dept
 *   │   └── cust_a2
 *   └── partner_b
 *       └── cust_b1
 */
const TREE: Array<[id: string, parentId: string | null, seats: number | null]> = [
  ['root', null, null],
  ['partner_a', 'root', 10],
  ['cust_a1', 'partner_a', 3],
  ['dept', 'cust_a1', null],
  ['cust_a2', 'partner_a', null],
  ['partner_b', 'root', null],
  ['cust_b1', 'partner_b', null],
];

const ROOT: Principal = { kind: 'cli', name: 'cli', scope: 'root' };
/** A partner's certificate, bound to partner_a (SPEC §2, §7). */
const PARTNER_A: Principal = { kind: 'certificate', name: 'FP-A', label: 'partner a', scope: 'partner_a' };
/** The same certificate impersonating the stored user "actor" (of partner_a): that user's permissions apply. */
const AS_ACTOR: Principal = { ...PARTNER_A, actingUser: 'actor' };

interface World {
  users?: UserRecord[];
  companies?: CompanyRecord[];
  access?: AccessRecord[];
  grantGroups?: Record<string, string>;
  groupContents?: GroupContents[];
  /** Fields of the groups of TREE to set (seats, params, name). */
  set?: Record<string, Partial<Pick<GroupRecord, 'seats' | 'params' | 'name'>>>;
  /** Users the snapshot does not load (the batch does not name them) that take a seat, per group. */
  others?: Record<string, number>;
  /** Groups besides those of TREE. */
  extra?: Array<Omit<GroupRecord, 'seatsUsed'>>;
}

function takesSeat(u: UserRecord): boolean {
  return !u.deleted && u.userType !== 'READ_ONLY';
}

/** The tree as the store loads it: every group with its seats used over its whole subtree (SPEC §7.2). */
function groupsOf(w: World): GroupRecord[] {
  const bare: GroupRecord[] = [
    ...TREE.map(([id, parentId, seats]) => ({ ...rootGroup(), id, name: id === 'root' ? 'root' : `${id} s.r.o.`, parentId, seats, ...w.set?.[id] })),
    ...(w.extra ?? []).map((g) => ({ ...g, seatsUsed: 0 })),
  ];
  const tree = new GroupTree(bare);
  const taken: Array<[string, number]> = [...(w.users ?? []).filter(takesSeat).map((u): [string, number] => [u.licenseGroup, 1]), ...Object.entries(w.others ?? {})];
  return bare.map((g) => ({ ...g, seatsUsed: taken.filter(([group]) => tree.isWithin(group, g.id)).reduce((n, [, k]) => n + k, 0) }));
}

function world(w: World = {}): Snapshot {
  return snapshot({
    users: w.users ?? [],
    companies: w.companies ?? [],
    access: w.access ?? [],
    grantGroups: w.grantGroups ?? {},
    groups: groupsOf(w),
    groupContents: w.groupContents ?? [],
  });
}

const contents = (id: string, over: Partial<Omit<GroupContents, 'id'>> = {}): GroupContents => ({ id, groups: 0, users: 0, companies: 0, certificates: 0, dateActions: 0, ...over });

/** The snapshot each plan was made from: seatCounts adds a plan's changes of seats to it. */
const plannedFrom = new WeakMap<Plan, Snapshot>();

function plan(operations: string, snap: Snapshot, principal: Principal = ROOT, rootAttributes = ''): Plan {
  const doc = parseBatch(`<flexibee-batch id="t"${rootAttributes}>${operations}</flexibee-batch>`, { maxOperations: 1000 });
  const p = withEventBodies(planBatch(doc, snap, { principal, passwordMatches: verifyPasswordSync }));
  plannedFrom.set(p, snap);
  return p;
}

/** [status, id, message] of every result, messages only where given. */
function outcomes(p: Plan): Array<[string, string] | [string, string, string]> {
  return p.results.map((r) => (r.message === undefined ? [r.status, r.id] : [r.status, r.id, r.message]));
}

/**
 * The seats used of every group whose row the change set writes: a whole row (created or changed)
 * gives its count, a change of the count alone (`seatsUsed`) is added to the snapshot's.
 */
function seatCounts(p: Plan): Record<string, number> {
  const snap = plannedFrom.get(p) as Snapshot;
  const before = (id: string): number => snap.groups.find((g) => g.id === id)?.seatsUsed ?? 0;
  return Object.fromEntries([...p.changes.groups.map((g) => [g.id, g.seatsUsed]), ...p.changes.seatsUsed.map((c) => [c.id, before(c.id) + c.delta])]);
}

function group(snap: Snapshot, id: string): GroupRecord {
  const g = snap.groups.find((x) => x.id === id);
  if (!g) throw new Error(`no group ${id} in the snapshot`);
  return g;
}

function perms(...names: PermissionName[]): Permissions {
  const p = noPermissions();
  for (const name of names) p[name] = true;
  return p;
}

const ALL = perms(...PERMISSION_NAMES);
const actor = (permissions: Permissions, licenseGroup = 'partner_a'): UserRecord => user('actor', { licenseGroup, permissions });

const inGroup = (username: string, licenseGroup: string, over: Partial<UserRecord> = {}): UserRecord => user(username, { licenseGroup, ...over });

// ── the tree itself ─────────────────────────────────────────────────────────────────────

describe('GroupTree (SPEC §7)', () => {
  const tree = (w: World = {}): GroupTree => new GroupTree(deepFreeze(groupsOf(w)));

  test('when a group lies three levels down, then its chain runs from it up to root, nearest first, and its path from root down', () => {
    const t = tree();
    expect(t.chain('dept').map((g) => g.id)).toEqual(['dept', 'cust_a1', 'partner_a', 'root']);
    expect(t.path('dept')).toEqual(['root', 'partner_a', 'cust_a1', 'dept']);
    expect(t.path('root')).toEqual(['root']);
  });

  test('when a group is unknown, then its chain and path are empty and it lies within no scope', () => {
    const t = tree();
    expect(t.chain('nowhere')).toEqual([]);
    expect(t.path('nowhere')).toEqual([]);
    expect(t.isWithin('nowhere', 'root')).toBe(false);
  });

  test('when the loaded rows hold a cycle, then the chain still ends', () => {
    const t = new GroupTree([
      { ...rootGroup(), id: 'x', parentId: 'y' },
      { ...rootGroup(), id: 'y', parentId: 'x' },
    ]);
    expect(t.chain('x').map((g) => g.id)).toEqual(['x', 'y']);
    expect(t.isWithin('x', 'root')).toBe(false);
  });

  test('when a scope is checked, then a group is within it if it is the scope or below it, and below it only if strictly below', () => {
    const t = tree();
    expect(t.isWithin('partner_a', 'partner_a')).toBe(true);
    expect(t.isWithin('dept', 'partner_a')).toBe(true);
    expect(t.isWithin('cust_b1', 'partner_a')).toBe(false);
    expect(t.isWithin('root', 'partner_a')).toBe(false);
    expect(t.isWithin('cust_b1', 'root')).toBe(true);
    expect(t.isBelow('partner_a', 'partner_a')).toBe(false);
    expect(t.isBelow('dept', 'partner_a')).toBe(true);
    expect(t.isBelow('root', 'partner_a')).toBe(false);
    expect(t.isBelow('partner_b', 'partner_a')).toBe(false);
  });

  test('when a parameter is set on several groups up the chain, then the nearest one is effective and says where it comes from', () => {
    const t = tree({ set: { root: { params: { defaultRole: 'UCETNI', country: 'SK' } }, partner_a: { params: { defaultRole: 'SKLADNIK' } }, dept: { params: { defaultRole: 'JENCIST' } } } });
    expect(t.effective('dept', 'defaultRole')).toEqual({ value: 'JENCIST', from: 'dept' });
    expect(t.effective('cust_a1', 'defaultRole')).toEqual({ value: 'SKLADNIK', from: 'partner_a' });
    expect(t.effective('cust_b1', 'defaultRole')).toEqual({ value: 'UCETNI', from: 'root' });
    expect(t.effective('dept', 'country')).toEqual({ value: 'SK', from: 'root' });
    expect(t.effective('dept', 'passwordHash')).toBeUndefined();
  });

  test('when seats are asked for, then the first group up the chain whose limit they would break is named, and none for no more seats', () => {
    const t = tree({ others: { dept: 2, cust_a2: 7 } });
    expect(t.get('cust_a1')?.seatsUsed).toBe(2);
    expect(t.get('partner_a')?.seatsUsed).toBe(9);
    expect(t.seatLimitExceeded('dept', 1)).toBeUndefined();
    expect(t.seatLimitExceeded('dept', 2)?.id).toBe('cust_a1');
    expect(t.seatLimitExceeded('cust_a2', 2)?.id).toBe('partner_a');
    expect(t.seatLimitExceeded('cust_b1', 1000)).toBeUndefined();
    expect(t.seatLimitExceeded('dept', 0)).toBeUndefined();
    expect(t.seatLimitExceeded('dept', -5)).toBeUndefined();
    expect(noFreeSeat(t.get('cust_a1') as GroupRecord)).toBe('no free license in group cust_a1 (2 of 3 used)');
  });

  test('when seats are added to a group, then it and every ancestor count them, the rest of the tree does not, and the loaded rows are left untouched', () => {
    const rows = deepFreeze(groupsOf({}));
    const t = new GroupTree(rows);
    t.addSeats('dept', 2);
    t.addSeats('cust_a2', -1);
    expect(Object.fromEntries([...t.all()].map((g) => [g.id, g.seatsUsed]))).toEqual({ root: 1, partner_a: 1, cust_a1: 2, dept: 2, cust_a2: -1, partner_b: 0, cust_b1: 0 });
    expect(rows.every((g) => g.seatsUsed === 0)).toBe(true);
  });
});

// ── <licenseGroup> create (SPEC §7.1) ─────────────────────────────────────────────────────

describe('planBatch: creating a license group (SPEC §7.1)', () => {
  test('when a root principal creates a group with a name, seats and parameters, then it is CREATED with exactly those', () => {
    const p = plan(
      `<licenseGroup action="create-update"><id>partner_c</id><name>Partner C s.r.o.</name><parent>root</parent><seats>25</seats>
        <param name="defaultRole">USER</param><param name="country">sk</param><param name="passwordHash">pbkdf2</param></licenseGroup>`,
      world(),
    );
    expect(outcomes(p)).toEqual([['CREATED', 'partner_c']]);
    expect(p.results[0].type).toBe('LICENSE_GROUP');
    expect(p.changes).toEqual({
      ...EMPTY_CHANGES,
      groupMoves: [{ kind: 'create', id: 'partner_c', parentId: 'root', group: expect.objectContaining({ id: 'partner_c', parentId: 'root' }) }],
      groups: [{ id: 'partner_c', name: 'Partner C s.r.o.', parentId: 'root', seats: 25, seatsUsed: 0, params: { defaultRole: 'UZIVATEL', country: 'SK', passwordHash: 'pbkdf2' } }],
    });
  });

  test('when groups are created one below the other in one batch, then the tree may be of any depth and a later operation sees every level', () => {
    const p = plan(
      `<licenseGroup><id>l4</id><name>4</name><parent>dept</parent></licenseGroup>
       <licenseGroup><id>l5</id><name>5</name><parent>l4</parent></licenseGroup>
       <licenseGroup><id>l6</id><name>6</name><parent>l5</parent></licenseGroup>
       <user><username>deep</username><licenseGroup>l6</licenseGroup></user>`,
      world(),
    );
    expect(outcomes(p)).toEqual([['CREATED', 'l4'], ['CREATED', 'l5'], ['CREATED', 'l6'], ['CREATED', 'deep']]);
    expect(p.changes.groupMoves).toEqual([
      { kind: 'create', id: 'l4', parentId: 'dept', group: expect.objectContaining({ id: 'l4', parentId: 'dept' }) },
      { kind: 'create', id: 'l5', parentId: 'l4', group: expect.objectContaining({ id: 'l5', parentId: 'l4' }) },
      { kind: 'create', id: 'l6', parentId: 'l5', group: expect.objectContaining({ id: 'l6', parentId: 'l5' }) },
    ]);
    expect(seatCounts(p)).toEqual({ l4: 1, l5: 1, l6: 1, dept: 1, cust_a1: 1, partner_a: 1, root: 1 });
    expect(p.changes.users.map((u) => [u.username, u.licenseGroup])).toEqual([['deep', 'l6']]);
  });

  test('when no parent is given, then the group is created below the principal\'s own group', () => {
    expect(plan('<licenseGroup><id>g1</id><name>G1</name></licenseGroup>', world()).changes.groupMoves).toEqual([{ kind: 'create', id: 'g1', parentId: 'root', group: expect.objectContaining({ id: 'g1', parentId: 'root' }) }]);
    const p = plan('<licenseGroup><id>g2</id><name>G2</name></licenseGroup>', world(), PARTNER_A);
    expect(outcomes(p)).toEqual([['CREATED', 'g2']]);
    expect(p.changes.groups).toEqual([{ id: 'g2', name: 'G2', parentId: 'partner_a', seats: null, seatsUsed: 0, params: {} }]);
  });

  test('when a new group has no name, then it is FAILED and says a name is required', () => {
    const p = plan('<licenseGroup><id>g1</id><seats>5</seats></licenseGroup>', world());
    expect(outcomes(p)).toEqual([['FAILED', 'g1', "license group 'g1' does not exist, and a license group cannot be created without a <name>"]]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when the parent does not exist, then it is FAILED naming the parent', () => {
    const p = plan('<licenseGroup><id>g1</id><name>G</name><parent>nowhere</parent></licenseGroup>', world());
    expect(outcomes(p)).toEqual([['FAILED', 'g1', "license group 'nowhere' does not exist"]]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a created group is sent again, then it is SKIPPED and nothing changes', () => {
    const op = '<licenseGroup><id>g1</id><name>G</name><parent>cust_a2</parent><seats>4</seats><param name="country">SK</param></licenseGroup>';
    const first = plan(op, world());
    expect(outcomes(first)).toEqual([['CREATED', 'g1']]);
    const after = snapshot({ ...world(), groups: [...world().groups, ...first.changes.groups] });
    const again = plan(op, after);
    expect(outcomes(again)).toEqual([['SKIPPED', 'g1']]);
    expect(again.changes).toEqual(EMPTY_CHANGES);
  });

  test('when one batch creates a group and then sends it again, then the second is SKIPPED and the group is created once', () => {
    const op = '<licenseGroup><id>g1</id><name>G</name></licenseGroup>';
    const p = plan(op + op, world());
    expect(outcomes(p)).toEqual([['CREATED', 'g1'], ['SKIPPED', 'g1']]);
    expect(p.changes.groupMoves).toEqual([{ kind: 'create', id: 'g1', parentId: 'root', group: expect.objectContaining({ id: 'g1', parentId: 'root' }) }]);
  });
});

// ── <licenseGroup> update and move ────────────────────────────────────────────────────────

describe('planBatch: changing a license group (SPEC §7.1)', () => {
  const A2 = (snap: Snapshot): GroupRecord => group(snap, 'cust_a2');

  test('when the name, the seats and a parameter change, then the group is UPDATED and the fields not given are left as they are', () => {
    const snap = world({ set: { cust_a2: { seats: 8, params: { country: 'SK', defaultRole: 'UCETNI' } } } });
    const p = plan('<licenseGroup><id>cust_a2</id><name>Renamed</name><seats>9</seats><param name="defaultRole">SKLADNIK</param></licenseGroup>', snap);
    expect(outcomes(p)).toEqual([['UPDATED', 'cust_a2']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, groups: [{ ...A2(snap), name: 'Renamed', seats: 9, params: { country: 'SK', defaultRole: 'SKLADNIK' } }] });
  });

  test('when <seats/> is sent empty, then the limit is removed', () => {
    const snap = world();
    const p = plan('<licenseGroup><id>cust_a1</id><seats/></licenseGroup>', snap);
    expect(outcomes(p)).toEqual([['UPDATED', 'cust_a1']]);
    expect(p.changes.groups).toEqual([{ ...group(snap, 'cust_a1'), seats: null }]);
  });

  test('when an empty <param name="X"/> is sent, then the group\'s own value of X is removed and the inherited one applies again', () => {
    const snap = world({ set: { partner_a: { params: { country: 'SK' } }, cust_a2: { params: { country: 'CZ', defaultRole: 'UCETNI' } } } });
    const p = plan('<licenseGroup><id>cust_a2</id><param name="country"/></licenseGroup><company><id>new_co</id><name>New</name><adminUser>anna</adminUser><licenseGroup>cust_a2</licenseGroup></company>', {
      ...snap,
      users: [inGroup('anna', 'cust_a2')],
    });
    expect(outcomes(p)).toEqual([['UPDATED', 'cust_a2'], ['CREATED', 'new_co']]);
    expect(p.changes.groups).toEqual([{ ...A2(snap), params: { defaultRole: 'UCETNI' } }]);
    expect(p.changes.companies[0]).toMatchObject({ country: 'SK', type: 'PODNIKATELIA+PU' });
  });

  test('when a parameter the group does not have is removed, or nothing differs, then it is SKIPPED', () => {
    const snap = world({ set: { cust_a2: { name: 'Kept', seats: 4, params: { country: 'SK' } } } });
    const p = plan(
      `<licenseGroup><id>cust_a2</id><param name="defaultRole"/></licenseGroup>
       <licenseGroup><id>cust_a2</id><name>Kept</name><parent>partner_a</parent><seats>4</seats><param name="country">sk</param></licenseGroup>`,
      snap,
    );
    expect(outcomes(p)).toEqual([['SKIPPED', 'cust_a2'], ['SKIPPED', 'cust_a2']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a group moves to another parent, then its subtree goes with it and its seats leave the old ancestors for the new ones', () => {
    const users = [inGroup('u1', 'dept'), inGroup('u2', 'cust_a1'), inGroup('u3', 'cust_a2'), inGroup('r1', 'dept', { userType: 'READ_ONLY' })];
    const snap = world({ users });
    const p = plan('<licenseGroup><id>cust_a1</id><parent>cust_b1</parent></licenseGroup>', snap);
    expect(outcomes(p)).toEqual([['UPDATED', 'cust_a1']]);
    expect(p.changes.groupMoves).toEqual([{ kind: 'move', id: 'cust_a1', parentId: 'cust_b1' }]);
    // root is a common ancestor: its count is where it was, so its row is not written.
    expect(seatCounts(p)).toEqual({ cust_a1: 2, partner_a: 1, cust_b1: 2, partner_b: 2 });
    expect(p.changes.groups.find((g) => g.id === 'cust_a1')).toEqual({ ...group(snap, 'cust_a1'), parentId: 'cust_b1' });
    expect(p.changes.users).toEqual([]);
  });

  test('when a group has moved, then a later operation of the batch counts seats against its new ancestors and no longer against the old ones', () => {
    const users = [inGroup('u1', 'dept'), inGroup('u2', 'cust_a1'), inGroup('u3', 'cust_a2')];
    // partner_a is full (3 of 3); partner_b has room for exactly one more once cust_a1 arrives.
    const snap = world({ users, set: { partner_a: { seats: 3 }, partner_b: { seats: 3 } } });
    const p = plan(
      `<licenseGroup><id>cust_a1</id><parent>partner_b</parent></licenseGroup>
       <user><username>n1</username><licenseGroup>dept</licenseGroup></user>
       <user><username>n2</username><licenseGroup>cust_a2</licenseGroup></user>
       <user><username>n3</username><licenseGroup>cust_b1</licenseGroup></user>`,
      snap,
    );
    expect(outcomes(p)).toEqual([
      ['UPDATED', 'cust_a1'],
      ['CREATED', 'n1'],
      ['CREATED', 'n2'],
      ['FAILED', 'n3', 'no free license in group partner_b (3 of 3 used)'],
    ]);
    expect(seatCounts(p)).toEqual({ cust_a1: 3, dept: 2, partner_a: 2, cust_a2: 2, partner_b: 3, root: 5 });
  });

  test('when a group would move below itself or below one of its own subgroups, then it is FAILED and the tree is unchanged', () => {
    const p = plan(
      `<licenseGroup><id>partner_a</id><parent>dept</parent></licenseGroup>
       <licenseGroup><id>cust_a1</id><parent>cust_a1</parent></licenseGroup>`,
      world(),
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'partner_a', 'license group partner_a cannot move under dept: dept lies inside it'],
      ['FAILED', 'cust_a1', 'license group cust_a1 cannot move under cust_a1: cust_a1 is the group itself'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a group would move under a subgroup created earlier in the same batch inside it, then the cycle is still refused', () => {
    const p = plan(
      `<licenseGroup><id>inner</id><name>Inner</name><parent>dept</parent></licenseGroup>
       <licenseGroup><id>cust_a1</id><parent>inner</parent></licenseGroup>`,
      world(),
    );
    expect(outcomes(p)).toEqual([['CREATED', 'inner'], ['FAILED', 'cust_a1', 'license group cust_a1 cannot move under inner: inner lies inside it']]);
  });

  test('when a scoped principal would move a group outside its scope, then it is FAILED as for a parent that does not exist', () => {
    const p = plan(
      `<licenseGroup><id>cust_a1</id><parent>partner_b</parent></licenseGroup>
       <licenseGroup><id>cust_a1</id><parent>root</parent></licenseGroup>
       <licenseGroup><id>cust_a1</id><parent>nowhere</parent></licenseGroup>`,
      world(),
      PARTNER_A,
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'cust_a1', "license group 'partner_b' does not exist"],
      ['FAILED', 'cust_a1', "license group 'root' does not exist"],
      ['FAILED', 'cust_a1', "license group 'nowhere' does not exist"],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a scoped principal moves a group within its scope, even to right below its own group, then it is UPDATED', () => {
    const p = plan('<licenseGroup><id>dept</id><parent>partner_a</parent></licenseGroup>', world(), PARTNER_A);
    expect(outcomes(p)).toEqual([['UPDATED', 'dept']]);
    expect(p.changes.groupMoves).toEqual([{ kind: 'move', id: 'dept', parentId: 'partner_a' }]);
  });

  test('when the seats used in a group do not fit in a limit of its new ancestors, then the move is FAILED naming that group', () => {
    const users = [inGroup('u1', 'dept'), inGroup('u2', 'cust_a1'), inGroup('b1', 'cust_b1')];
    const snap = world({ users, set: { partner_b: { seats: 2 } } });
    const p = plan('<licenseGroup><id>cust_a1</id><parent>cust_b1</parent></licenseGroup>', snap);
    expect(outcomes(p)).toEqual([['FAILED', 'cust_a1', 'license group cust_a1 cannot move under cust_b1: its 2 seats do not fit in group partner_b (1 of 2 used)']]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a group moves between two groups under a full common ancestor, then the move fits: its seats are counted there once', () => {
    const users = [inGroup('u1', 'dept'), inGroup('u2', 'cust_a1'), inGroup('u3', 'cust_a2')];
    const snap = world({ users, set: { partner_a: { seats: 3 } } });
    const p = plan('<licenseGroup><id>dept</id><parent>cust_a2</parent></licenseGroup>', snap);
    expect(outcomes(p)).toEqual([['UPDATED', 'dept']]);
    expect(seatCounts(p)).toEqual({ dept: 1, cust_a1: 1, cust_a2: 2 });
  });

  test('when a group moves and changes its seats in one operation, then both are applied', () => {
    const snap = world({ users: [inGroup('u1', 'dept')] });
    const p = plan('<licenseGroup><id>dept</id><parent>cust_b1</parent><seats>5</seats><name>Moved</name></licenseGroup>', snap);
    expect(outcomes(p)).toEqual([['UPDATED', 'dept']]);
    expect(p.changes.groups.find((g) => g.id === 'dept')).toEqual({ ...group(snap, 'dept'), parentId: 'cust_b1', seats: 5, name: 'Moved' });
    expect(seatCounts(p)).toEqual({ dept: 1, cust_a1: 0, partner_a: 0, cust_b1: 1, partner_b: 1 });
  });
});

// ── <licenseGroup> delete ─────────────────────────────────────────────────────────────────

describe('planBatch: deleting a license group (SPEC §7.1)', () => {
  const del = (id: string): string => `<licenseGroup action="delete"><id>${id}</id></licenseGroup>`;

  test('when an empty group is deleted, then it is DELETED and leaves the tree; deleting it again is SKIPPED', () => {
    const p = plan(del('cust_b1') + del('cust_b1'), world({ groupContents: [contents('cust_b1'), contents('partner_b', { groups: 1 })] }));
    expect(outcomes(p)).toEqual([['DELETED', 'cust_b1'], ['SKIPPED', 'cust_b1', 'license group does not exist']]);
    expect(p.changes).toEqual({ ...EMPTY_CHANGES, groupMoves: [{ kind: 'delete', id: 'cust_b1', parentId: 'partner_b' }] });
  });

  test('when a group that does not exist is deleted, then it is SKIPPED', () => {
    expect(outcomes(plan(del('nowhere'), world()))).toEqual([['SKIPPED', 'nowhere', 'license group does not exist']]);
  });

  test('when a group still holds something, then the delete is FAILED naming exactly what is left', () => {
    const p = plan(
      del('cust_a1') + del('cust_a2') + del('partner_b'),
      world({
        groupContents: [
          contents('cust_a1', { groups: 1, users: 2, companies: 1, certificates: 1 }),
          contents('cust_a2', { users: 1, companies: 2 }),
          contents('partner_b', { groups: 2, certificates: 3 }),
        ],
      }),
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'cust_a1', 'license group cust_a1 is not empty: 1 group, 2 users, 1 company, 1 certificate'],
      ['FAILED', 'cust_a2', 'license group cust_a2 is not empty: 1 user, 2 companies'],
      ['FAILED', 'partner_b', 'license group partner_b is not empty: 2 groups, 3 certificates'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when earlier operations of the batch move or delete everything out of a group, then the group can be deleted after them', () => {
    const users = [inGroup('u2', 'cust_a1'), inGroup('u3', 'dept')];
    const companies = [company('firma_1', { licenseGroup: 'cust_a1' }), company('firma_2', { licenseGroup: 'cust_a1' })];
    const snap = world({
      users,
      companies,
      groupContents: [contents('cust_a1', { groups: 1, users: 1, companies: 2 }), contents('dept', { users: 1 })],
    });
    const p = plan(
      `<user action="delete"><username>u3</username></user>
       ${del('dept')}
       <user><username>u2</username><licenseGroup>cust_a2</licenseGroup></user>
       <company><id>firma_1</id><licenseGroup>partner_a</licenseGroup></company>
       <company action="delete"><id>firma_2</id></company>
       ${del('cust_a1')}`,
      snap,
    );
    expect(outcomes(p)).toEqual([
      ['DELETED', 'u3'],
      ['DELETED', 'dept'],
      ['UPDATED', 'u2'],
      ['UPDATED', 'firma_1'],
      ['DELETED', 'firma_2'],
      ['DELETED', 'cust_a1'],
    ]);
    expect(p.changes.groupMoves).toEqual([
      { kind: 'delete', id: 'dept', parentId: 'cust_a1' },
      { kind: 'delete', id: 'cust_a1', parentId: 'partner_a' },
    ]);
  });

  test('when a child group moves out first, then its old parent can be deleted', () => {
    const p = plan(`<licenseGroup><id>dept</id><parent>cust_a2</parent></licenseGroup>${del('cust_a1')}`, world({ groupContents: [contents('cust_a1', { groups: 1 })] }));
    expect(outcomes(p)).toEqual([['UPDATED', 'dept'], ['DELETED', 'cust_a1']]);
    expect(p.changes.groupMoves).toEqual([
      { kind: 'move', id: 'dept', parentId: 'cust_a2' },
      { kind: 'delete', id: 'cust_a1', parentId: 'partner_a' },
    ]);
  });

  test('when earlier operations of the batch put a user, a company or a group into an empty group, then deleting it is FAILED naming them', () => {
    const snap = world({ users: [inGroup('anna', 'partner_a')], groupContents: [contents('cust_a2')] });
    const p = plan(
      `<user><username>petr</username><licenseGroup>cust_a2</licenseGroup></user>
       <company><id>new_co</id><name>New</name><adminUser>anna</adminUser><licenseGroup>cust_a2</licenseGroup></company>
       <licenseGroup><id>sub</id><name>Sub</name><parent>cust_a2</parent></licenseGroup>
       ${del('cust_a2')}`,
      snap,
    );
    expect(outcomes(p).at(-1)).toEqual(['FAILED', 'cust_a2', 'license group cust_a2 is not empty: 1 group, 1 user, 1 company']);
  });

  test('when a group created earlier in the batch is deleted, then both happen, in that order', () => {
    // The store counts the contents of every group a batch deletes, one it does not have yet as empty.
    const p = plan(`<licenseGroup><id>tmp</id><name>Tmp</name></licenseGroup>${del('tmp')}`, world({ groupContents: [contents('tmp')] }));
    expect(outcomes(p)).toEqual([['CREATED', 'tmp'], ['DELETED', 'tmp']]);
    expect(p.changes.groupMoves).toEqual([
      { kind: 'create', id: 'tmp', parentId: 'root', group: expect.objectContaining({ id: 'tmp', parentId: 'root' }) },
      { kind: 'delete', id: 'tmp', parentId: 'root' },
    ]);
  });

  test('when a group is deleted and then created again under the same id, then the change set recreates it in its new place (its old row is still there until the end of the batch)', () => {
    const p = plan(`${del('cust_a2')}<licenseGroup><id>cust_a2</id><name>Again</name><parent>root</parent></licenseGroup>`, world({ groupContents: [contents('cust_a2')] }));
    expect(outcomes(p)).toEqual([['DELETED', 'cust_a2'], ['CREATED', 'cust_a2']]);
    expect(p.changes.groupMoves).toEqual([{ kind: 'recreate', id: 'cust_a2', parentId: 'root', formerParentId: 'partner_a' }]);
    expect(p.changes.groups).toContainEqual(expect.objectContaining({ id: 'cust_a2', name: 'Again', parentId: 'root', seats: null, params: {} }));
  });

  test('when a deleted user is restored into a group first, then it counts again and the group is not empty', () => {
    const snap = world({ users: [inGroup('gone', 'cust_a2', { deleted: true })], groupContents: [contents('cust_a2')] });
    const p = plan(`<user><username>gone</username></user>${del('cust_a2')}`, snap);
    expect(outcomes(p)).toEqual([['CREATED', 'gone', 'restored'], ['FAILED', 'cust_a2', 'license group cust_a2 is not empty: 1 user']]);
  });

  test('when a group holding only deleted users is deleted, then a later operation can restore one of them, in the parent group where the store puts it', () => {
    const snap = world({ users: [inGroup('gone', 'cust_a2', { deleted: true })], groupContents: [contents('cust_a2')] });
    const p = plan(`${del('cust_a2')}<user><username>gone</username></user>`, snap);
    expect(outcomes(p)).toEqual([['DELETED', 'cust_a2'], ['CREATED', 'gone', 'restored']]);
    expect(p.changes.users.map((u) => [u.username, u.licenseGroup, u.deleted])).toEqual([['gone', 'partner_a', false]]);
    expect(seatCounts(p)).toEqual({ partner_a: 1, root: 1 });
  });

  test('when a group is deleted, then a later operation cannot put anything in it', () => {
    const snap = world({ users: [inGroup('anna', 'partner_a')], groupContents: [contents('cust_a2')] });
    const p = plan(`${del('cust_a2')}<user><username>petr</username><licenseGroup>cust_a2</licenseGroup></user>`, snap);
    expect(outcomes(p)).toEqual([['DELETED', 'cust_a2'], ['FAILED', 'petr', "license group 'cust_a2' does not exist"]]);
  });
});

// ── root, the principal's own group, acting users ───────────────────────────────────────

describe('planBatch: who may change which license group (SPEC §7.1)', () => {
  test('when a root principal sets root\'s seats and parameters, then root is UPDATED', () => {
    const snap = world({ users: [inGroup('u1', 'dept')] });
    const p = plan('<licenseGroup><id>root</id><seats>100</seats><param name="country">SK</param></licenseGroup>', snap);
    expect(outcomes(p)).toEqual([['UPDATED', 'root']]);
    expect(p.changes.groups).toEqual([{ ...group(snap, 'root'), seats: 100, params: { country: 'SK' } }]);
  });

  test('when root would be deleted, renamed or given a parent, then it is FAILED', () => {
    const p = plan(
      `<licenseGroup action="delete"><id>root</id></licenseGroup>
       <licenseGroup><id>root</id><name>The root</name></licenseGroup>
       <licenseGroup><id>root</id><parent>partner_a</parent></licenseGroup>
       <licenseGroup><id>root</id><parent>root</parent></licenseGroup>`,
      world({ groupContents: [contents('root')] }),
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'root', 'license group root cannot be deleted'],
      ['FAILED', 'root', 'license group root cannot be renamed or given a parent'],
      ['FAILED', 'root', 'license group root cannot be renamed or given a parent'],
      ['FAILED', 'root', 'license group root cannot be renamed or given a parent'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a scoped principal changes, moves or deletes its own group, then it is FAILED: its group is set from above', () => {
    const denied = 'permission denied: license group partner_a is your own group; it is changed from above';
    const p = plan(
      `<licenseGroup><id>partner_a</id><seats>1000</seats></licenseGroup>
       <licenseGroup><id>partner_a</id><param name="defaultRole">ADMIN</param></licenseGroup>
       <licenseGroup><id>partner_a</id><name>Mine now</name></licenseGroup>
       <licenseGroup><id>partner_a</id><parent>cust_a2</parent></licenseGroup>
       <licenseGroup action="delete"><id>partner_a</id></licenseGroup>`,
      world({ groupContents: [contents('partner_a')] }),
      PARTNER_A,
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'partner_a', denied],
      ['FAILED', 'partner_a', denied],
      ['FAILED', 'partner_a', denied],
      ['FAILED', 'partner_a', denied],
      ['FAILED', 'partner_a', denied],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a scoped principal re-sends its own group as it is, then it is SKIPPED like any unchanged entity', () => {
    const p = plan('<licenseGroup><id>partner_a</id><name>partner_a s.r.o.</name><seats>10</seats></licenseGroup>', world(), PARTNER_A);
    expect(outcomes(p)).toEqual([['SKIPPED', 'partner_a']]);
  });

  test('when a scoped principal names a group above its own, then it is as for any group outside its scope: it cannot be changed or deleted', () => {
    const p = plan(
      `<licenseGroup><id>root</id><seats>5</seats></licenseGroup>
       <licenseGroup action="delete"><id>root</id></licenseGroup>`,
      world(),
      PARTNER_A,
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'root', "license group 'root' does not exist, and a license group cannot be created without a <name>"],
      ['SKIPPED', 'root', 'license group does not exist'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a scoped principal creates, changes and deletes groups below its own, then they are applied', () => {
    const p = plan(
      `<licenseGroup><id>g1</id><name>G1</name><seats>2</seats></licenseGroup>
       <licenseGroup><id>cust_a1</id><seats>2</seats><param name="defaultRole">UCETNI</param></licenseGroup>
       <licenseGroup action="delete"><id>cust_a2</id></licenseGroup>`,
      world({ groupContents: [contents('cust_a2')] }),
      PARTNER_A,
    );
    expect(outcomes(p)).toEqual([['CREATED', 'g1'], ['UPDATED', 'cust_a1'], ['DELETED', 'cust_a2']]);
  });

  test('when an acting user without licenseManagement sends any <licenseGroup>, then it is FAILED naming licenseManagement', () => {
    const snap = world({ users: [actor(perms(...PERMISSION_NAMES.filter((n) => n !== 'licenseManagement')))], groupContents: [contents('cust_a2')] });
    const p = plan(
      `<licenseGroup><id>g1</id><name>G1</name></licenseGroup>
       <licenseGroup><id>cust_a1</id><seats>2</seats></licenseGroup>
       <licenseGroup><id>cust_a1</id><name>partner_a s.r.o.</name></licenseGroup>
       <licenseGroup action="delete"><id>cust_a2</id></licenseGroup>
       <licenseGroup action="delete"><id>nowhere</id></licenseGroup>`,
      snap,
      AS_ACTOR,
    );
    expect(p.results.map((r) => r.message)).toEqual(Array(5).fill('permission denied: licenseManagement required'));
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when an acting user with licenseManagement sends <licenseGroup> operations, then they are applied within its scope', () => {
    const snap = world({ users: [actor(perms('licenseManagement'))], groupContents: [contents('cust_a2')] });
    const p = plan(
      `<licenseGroup><id>g1</id><name>G1</name></licenseGroup>
       <licenseGroup><id>cust_a1</id><seats>2</seats></licenseGroup>
       <licenseGroup action="delete"><id>cust_a2</id></licenseGroup>
       <licenseGroup><id>partner_a</id><seats>2</seats></licenseGroup>`,
      snap,
      AS_ACTOR,
    );
    expect(outcomes(p)).toEqual([
      ['CREATED', 'g1'],
      ['UPDATED', 'cust_a1'],
      ['DELETED', 'cust_a2'],
      ['FAILED', 'partner_a', 'permission denied: license group partner_a is your own group; it is changed from above'],
    ]);
  });

  test('when an acting user moves a user or a company to another group, then it needs licenseManagement', () => {
    const snap = world({
      users: [actor(perms('createUser', 'manageAll')), inGroup('petr', 'cust_a1')],
      companies: [company('firma_1', { licenseGroup: 'cust_a1' })],
    });
    const p = plan(
      `<user><username>petr</username><licenseGroup>cust_a2</licenseGroup></user>
       <company><id>firma_1</id><licenseGroup>cust_a2</licenseGroup></company>`,
      snap,
      AS_ACTOR,
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'petr', 'permission denied: licenseManagement required'],
      ['FAILED', 'firma_1', 'permission denied: licenseManagement required'],
    ]);
  });
});

// ── taskUser (SPEC §7.3) ─────────────────────────────────────────────────────────────────

describe('planBatch: the taskUser parameter (SPEC §7.3)', () => {
  const users = [inGroup('boss', 'partner_a'), inGroup('local', 'cust_a1'), inGroup('below', 'dept'), inGroup('sibling', 'cust_a2'), inGroup('gone', 'cust_a1', { deleted: true }), inGroup('other', 'cust_b1'), inGroup('top', 'root')];
  const task = (id: string, name: string): string => `<licenseGroup><id>${id}</id><param name="taskUser">${name}</param></licenseGroup>`;

  test('when the taskUser belongs to the group or a group above it, then it is set', () => {
    const snap = world({ users });
    const p = plan(task('cust_a1', 'local') + task('dept', 'BOSS'), snap);
    expect(outcomes(p)).toEqual([['UPDATED', 'cust_a1'], ['UPDATED', 'dept']]);
    expect(p.changes.groups.map((g) => [g.id, g.params])).toEqual([
      ['cust_a1', { taskUser: 'local' }],
      ['dept', { taskUser: 'BOSS' }],
    ]);
  });

  test('when the taskUser belongs to a group below or beside the group, then it is FAILED saying so', () => {
    const p = plan(task('cust_a1', 'below') + task('cust_a1', 'sibling'), world({ users }));
    expect(outcomes(p)).toEqual([
      ['FAILED', 'cust_a1', "parameter taskUser: user 'below' belongs to license group dept, which does not contain license group cust_a1"],
      ['FAILED', 'cust_a1', "parameter taskUser: user 'sibling' belongs to license group cust_a2, which does not contain license group cust_a1"],
    ]);
  });

  test('when the taskUser is unknown, deleted, or outside the principal\'s scope, then it is FAILED as a user that does not exist', () => {
    const p = plan(task('cust_a1', 'ghost') + task('cust_a1', 'gone') + task('cust_a1', 'other') + task('cust_a1', 'top'), world({ users }), PARTNER_A);
    expect(p.results.map((r) => r.message)).toEqual([
      "parameter taskUser: user 'ghost' does not exist",
      "parameter taskUser: user 'gone' does not exist",
      "parameter taskUser: user 'other' does not exist",
      "parameter taskUser: user 'top' does not exist",
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a new group names a taskUser created earlier in the batch, then it is CREATED with it', () => {
    const p = plan(
      `<user><username>runner</username><licenseGroup>cust_a2</licenseGroup></user>
       <licenseGroup><id>g1</id><name>G1</name><parent>cust_a2</parent><param name="taskUser">runner</param></licenseGroup>`,
      world(),
      PARTNER_A,
    );
    expect(outcomes(p)).toEqual([['CREATED', 'runner'], ['CREATED', 'g1']]);
    expect(p.changes.groups.find((g) => g.id === 'g1')?.params).toEqual({ taskUser: 'runner' });
  });

  test('when a group moves and names a taskUser of its new ancestors in the same operation, then the taskUser is checked where the group goes', () => {
    const p = plan('<licenseGroup><id>dept</id><parent>cust_a2</parent><param name="taskUser">sibling</param></licenseGroup>', world({ users }));
    expect(outcomes(p)).toEqual([['UPDATED', 'dept']]);
    const wrong = plan('<licenseGroup><id>dept</id><parent>cust_a2</parent><param name="taskUser">local</param></licenseGroup>', world({ users }));
    expect(outcomes(wrong)).toEqual([['FAILED', 'dept', "parameter taskUser: user 'local' belongs to license group cust_a1, which does not contain license group dept"]]);
  });

  test('when an empty taskUser is sent, then the group\'s own taskUser is removed', () => {
    const snap = world({ users, set: { cust_a1: { params: { taskUser: 'local' } } } });
    const p = plan('<licenseGroup><id>cust_a1</id><param name="taskUser"/></licenseGroup>', snap);
    expect(p.changes.groups).toEqual([{ ...group(snap, 'cust_a1'), params: {} }]);
  });
});

// ── parameters that are invalid (SPEC §7.3) ──────────────────────────────────────────────

describe('planBatch: invalid <licenseGroup> input', () => {
  test('when a parameter is unknown or its value invalid, then that operation is FAILED naming the valid ones, and the next one runs', () => {
    const p = plan(
      `<licenseGroup><id>g1</id><name>G</name><param name="colour">red</param></licenseGroup>
       <licenseGroup><id>g2</id><name>G</name><param name="defaultRole">BOSS</param></licenseGroup>
       <licenseGroup><id>g3</id><name>G</name><param name="passwordHash">bcrypt</param></licenseGroup>
       <licenseGroup><id>g4</id><name>G</name><param name="country">DE</param></licenseGroup>
       <licenseGroup><id>g5</id><name>G</name><param name="taskUser">no spaces allowed</param></licenseGroup>
       <licenseGroup><id>g6</id><name>G</name><seats>many</seats></licenseGroup>
       <licenseGroup><id>g7</id><name>G</name></licenseGroup>`,
      world(),
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'g1', "unknown parameter 'colour'; expected defaultRole, passwordHash, country, taskUser"],
      ['FAILED', 'g2', `parameter defaultRole must be a role code, one of ${ROLE_CODES.join(', ')}; not 'BOSS'`],
      ['FAILED', 'g3', "parameter passwordHash must be one of sha256, sha512, sha1, md5, pbkdf2; not 'bcrypt'"],
      ['FAILED', 'g4', "parameter country must be one of CZ, SK; not 'DE'"],
      ['FAILED', 'g5', "parameter taskUser must be a username, not 'no spaces allowed'"],
      ['FAILED', 'g6', "<seats> must be a whole number from 0 to 100000000, or empty to remove the limit; not 'many'"],
      ['CREATED', 'g7'],
    ]);
    expect(p.results.every((r) => r.type === 'LICENSE_GROUP')).toBe(true);
    expect(p.changes.groupMoves).toEqual([{ kind: 'create', id: 'g7', parentId: 'root', group: expect.objectContaining({ id: 'g7', parentId: 'root' }) }]);
  });
});

// ── seats (SPEC §7.2) ────────────────────────────────────────────────────────────────────

describe('planBatch: seats (SPEC §7.2)', () => {
  const full = { users: [inGroup('u1', 'cust_a1'), inGroup('u2', 'dept'), inGroup('u3', 'dept')] };

  test('when users are created, then the change set carries the exact new seats used of their group and of every group above it', () => {
    const snap = world({ others: { cust_a1: 1, partner_b: 4 } });
    const p = plan(
      `<user><username>n1</username><licenseGroup>dept</licenseGroup></user>
       <user><username>n2</username><licenseGroup>dept</licenseGroup><userType>REST_API</userType></user>
       <user><username>n3</username><licenseGroup>cust_b1</licenseGroup></user>`,
      snap,
    );
    expect(outcomes(p)).toEqual([['CREATED', 'n1'], ['CREATED', 'n2'], ['CREATED', 'n3']]);
    expect(seatCounts(p)).toEqual({ dept: 2, cust_a1: 3, partner_a: 3, root: 8, cust_b1: 1, partner_b: 5 });
    // Only the counts changed: the store updates them alone rather than writing whole rows again.
    expect(p.changes.groups).toEqual([]);
    expect(p.changes.seatsUsed).toContainEqual({ id: 'cust_a1', delta: 2 });
  });

  test('when a group\'s limit is reached, then creating a NORMAL or REST_API user in it or below it is FAILED naming the group', () => {
    const p = plan(
      `<user><username>n1</username><licenseGroup>dept</licenseGroup></user>
       <user><username>n2</username><licenseGroup>cust_a1</licenseGroup><userType>REST_API</userType></user>`,
      world(full),
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'n1', 'no free license in group cust_a1 (3 of 3 used)'],
      ['FAILED', 'n2', 'no free license in group cust_a1 (3 of 3 used)'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a group has room but a group above it is full, then the limit above holds too (nested quotas)', () => {
    const snap = world({ others: { cust_a2: 10 }, set: { root: { seats: 12 } } });
    const p = plan(
      `<user><username>n1</username><licenseGroup>dept</licenseGroup></user>
       <user><username>n2</username><licenseGroup>cust_b1</licenseGroup></user>
       <user><username>n3</username><licenseGroup>cust_b1</licenseGroup></user>
       <user><username>n4</username><licenseGroup>cust_b1</licenseGroup></user>`,
      snap,
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'n1', 'no free license in group partner_a (10 of 10 used)'],
      ['CREATED', 'n2'],
      ['CREATED', 'n3'],
      ['FAILED', 'n4', 'no free license in group root (12 of 12 used)'],
    ]);
  });

  test('when a group has 0 seats, then only READ_ONLY users can be created in it', () => {
    const p = plan(
      `<licenseGroup><id>viewers</id><name>Viewers</name><seats>0</seats></licenseGroup>
       <user><username>n1</username><licenseGroup>viewers</licenseGroup></user>
       <user><username>r1</username><licenseGroup>viewers</licenseGroup><userType>READ_ONLY</userType></user>`,
      world({ groupContents: [] }),
    );
    expect(outcomes(p)).toEqual([['CREATED', 'viewers'], ['FAILED', 'n1', 'no free license in group viewers (0 of 0 used)'], ['CREATED', 'r1']]);
  });

  test('when a READ_ONLY user is created in a full group, then it is CREATED and takes no seat', () => {
    const p = plan('<user><username>r1</username><licenseGroup>dept</licenseGroup><userType>READ_ONLY</userType></user>', world(full));
    expect(outcomes(p)).toEqual([['CREATED', 'r1']]);
    expect(p.changes.groups).toEqual([]);
  });

  test('when a READ_ONLY user becomes NORMAL, then it needs a seat: FAILED in a full group, and counted where there is room', () => {
    const ro = inGroup('ro', 'dept', { userType: 'READ_ONLY' });
    const inFull = plan('<user><username>ro</username><userType>NORMAL</userType></user>', world({ users: [...full.users, ro] }));
    expect(outcomes(inFull)).toEqual([['FAILED', 'ro', 'no free license in group cust_a1 (3 of 3 used)']]);
    const withRoom = plan('<user><username>ro</username><userType>REST_API</userType></user>', world({ users: [ro] }));
    expect(outcomes(withRoom)).toEqual([['UPDATED', 'ro']]);
    expect(seatCounts(withRoom)).toEqual({ dept: 1, cust_a1: 1, partner_a: 1, root: 1 });
  });

  test('when a user becomes READ_ONLY, then its seat is released', () => {
    const p = plan('<user><username>u2</username><userType>READ_ONLY</userType></user>', world(full));
    expect(outcomes(p)).toEqual([['UPDATED', 'u2']]);
    expect(seatCounts(p)).toEqual({ dept: 1, cust_a1: 2, partner_a: 2, root: 2 });
  });

  test('when a user is blocked, or created blocked, then it still takes a seat', () => {
    const blocked = plan('<user><username>u2</username><blocked>true</blocked></user>', world(full));
    expect(outcomes(blocked)).toEqual([['UPDATED', 'u2']]);
    expect(blocked.changes.groups).toEqual([]);
    const created = plan('<user><username>n1</username><licenseGroup>dept</licenseGroup><blocked>true</blocked></user>', world(full));
    expect(outcomes(created)).toEqual([['FAILED', 'n1', 'no free license in group cust_a1 (3 of 3 used)']]);
  });

  test('when a user is deleted, then its seat is free at once and a later operation of the same batch takes it', () => {
    const p = plan(
      `<user action="delete"><username>u2</username></user>
       <user><username>n1</username><licenseGroup>cust_a1</licenseGroup></user>
       <user><username>n2</username><licenseGroup>cust_a1</licenseGroup></user>`,
      world(full),
    );
    expect(outcomes(p)).toEqual([['DELETED', 'u2'], ['CREATED', 'n1'], ['FAILED', 'n2', 'no free license in group cust_a1 (3 of 3 used)']]);
    // dept lost one seat and cust_a1 gained one: the groups above end where they were.
    expect(seatCounts(p)).toEqual({ dept: 1 });
  });

  test('when a deleted user is restored, then the limits are checked again', () => {
    const gone = inGroup('gone', 'dept', { deleted: true });
    const p = plan('<user><username>gone</username></user>', world({ users: [...full.users, gone] }));
    expect(outcomes(p)).toEqual([['FAILED', 'gone', 'no free license in group cust_a1 (3 of 3 used)']]);
    const restored = plan('<user><username>gone</username><userType>READ_ONLY</userType></user>', world({ users: [...full.users, gone] }));
    expect(outcomes(restored)).toEqual([['CREATED', 'gone', 'restored']]);
    const withRoom = plan('<user><username>gone</username></user>', world({ users: [gone] }));
    expect(outcomes(withRoom)).toEqual([['CREATED', 'gone', 'restored']]);
    expect(seatCounts(withRoom)).toEqual({ dept: 1, cust_a1: 1, partner_a: 1, root: 1 });
  });

  test('when a user moves, then the limits of its new groups are checked, but a seat it already takes on a common ancestor is not counted twice', () => {
    const users = [...full.users, inGroup('mover', 'cust_a2')];
    const snap = world({ users, set: { partner_a: { seats: 4 } } });
    const p = plan(
      `<user><username>mover</username><licenseGroup>dept</licenseGroup></user>
       <user><username>u1</username><licenseGroup>cust_a2</licenseGroup></user>
       <user><username>u2</username><licenseGroup>partner_b</licenseGroup></user>`,
      snap,
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'mover', 'no free license in group cust_a1 (3 of 3 used)'],
      ['UPDATED', 'u1'],
      ['UPDATED', 'u2'],
    ]);
    // u1 moved within partner_a (full at 4 of 4), u2 left it for partner_b.
    expect(seatCounts(p)).toEqual({ cust_a1: 1, cust_a2: 2, dept: 1, partner_a: 3, partner_b: 1 });
  });

  test('when seats are set below the seats in use, then it is FAILED; setting them to exactly the use is fine', () => {
    const p = plan(
      `<licenseGroup><id>cust_a1</id><seats>2</seats></licenseGroup>
       <licenseGroup><id>partner_a</id><seats>3</seats></licenseGroup>`,
      world(full),
    );
    expect(outcomes(p)).toEqual([['FAILED', 'cust_a1', 'the seats of license group cust_a1 cannot be 2: 3 are in use'], ['UPDATED', 'partner_a']]);
  });

  test('when seats are lowered after a delete in the same batch, then the released seat counts', () => {
    const p = plan(`<user action="delete"><username>u1</username></user><licenseGroup><id>cust_a1</id><seats>2</seats></licenseGroup>`, world(full));
    expect(outcomes(p)).toEqual([['DELETED', 'u1'], ['UPDATED', 'cust_a1']]);
    expect(p.changes.groups.find((g) => g.id === 'cust_a1')).toMatchObject({ seats: 2, seatsUsed: 2 });
  });

  test('when a deleted user is deleted again or a READ_ONLY user is deleted, then no seat count changes', () => {
    const p = plan(
      `<user action="delete"><username>gone</username></user><user action="delete"><username>ro</username></user>`,
      world({ users: [inGroup('gone', 'dept', { deleted: true }), inGroup('ro', 'dept', { userType: 'READ_ONLY' })] }),
    );
    expect(outcomes(p)).toEqual([['SKIPPED', 'gone', 'user is already deleted'], ['DELETED', 'ro']]);
    expect(p.changes.groups).toEqual([]);
  });
});

// ── inherited parameters and their effects (SPEC §7.3) ───────────────────────────────────

describe('planBatch: group parameters (SPEC §7.3)', () => {
  const firms = [company('firma_1', { licenseGroup: 'cust_a1' }), company('firma_2', { licenseGroup: 'cust_a1' }), company('firma_3', { licenseGroup: 'cust_a1' })];

  test('when <access>C</access> makes a new grant, then the user\'s own defaultRole wins, else the nearest group\'s, else UZIVATEL', () => {
    const snap = world({
      users: [inGroup('own', 'dept', { defaultRole: 'MZDOVYUCETNI' }), inGroup('near', 'dept'), inGroup('far', 'cust_a2'), inGroup('none', 'cust_b1')],
      companies: firms,
      set: { partner_a: { params: { defaultRole: 'SKLADNIK' } }, dept: { params: { defaultRole: 'UCETNI' } } },
    });
    const p = plan(
      `<access user="own">firma_1</access><access user="near">firma_1</access><access user="far">firma_1</access><access user="none">firma_1</access>`,
      snap,
    );
    expect(outcomes(p)).toEqual([['CREATED', 'own@firma_1'], ['CREATED', 'near@firma_1'], ['CREATED', 'far@firma_1'], ['CREATED', 'none@firma_1']]);
    expect(p.changes.grantedAccess).toEqual([grant('own', 'firma_1', 'MZDOVYUCETNI'), grant('near', 'firma_1', 'UCETNI'), grant('far', 'firma_1', 'SKLADNIK'), grant('none', 'firma_1', 'UZIVATEL')]);
  });

  test('when the grant exists or a role is given, then the group\'s defaultRole changes nothing', () => {
    const snap = world({
      users: [inGroup('near', 'dept')],
      companies: firms,
      access: [grant('near', 'firma_1', 'JENCIST')],
      set: { dept: { params: { defaultRole: 'UCETNI' } } },
    });
    const p = plan(`<access user="near">firma_1</access><access user="near" role="OBCHODNIK">firma_2</access>`, snap);
    expect(outcomes(p)).toEqual([['SKIPPED', 'near@firma_1'], ['CREATED', 'near@firma_2']]);
    expect(p.changes.grantedAccess).toEqual([grant('near', 'firma_2', 'OBCHODNIK')]);
  });

  test('when a user moves into another group, then a later new grant takes the defaultRole of its new group', () => {
    const snap = world({ users: [inGroup('petr', 'cust_a2')], companies: firms, set: { dept: { params: { defaultRole: 'UCETNI' } } } });
    const p = plan(`<user><username>petr</username><licenseGroup>dept</licenseGroup></user><access>firma_1</access>`, snap);
    expect(p.changes.grantedAccess).toEqual([grant('petr', 'firma_1', 'UCETNI')]);
  });

  test('when a plain-text password is set, then it is hashed with the passwordHash of the user\'s nearest group, and with the server\'s when no group sets one', () => {
    const snap = world({
      users: [inGroup('a', 'dept'), inGroup('b', 'cust_a2'), inGroup('c', 'cust_b1')],
      set: { partner_a: { params: { passwordHash: 'sha512' } }, cust_a1: { params: { passwordHash: 'pbkdf2' } } },
    });
    const p = plan(
      `<user><username>a</username><password>secret one</password></user>
       <user><username>b</username><password>secret two</password></user>
       <user><username>c</username><password>secret three</password></user>
       <user><username>d</username><licenseGroup>dept</licenseGroup><password>secret four</password></user>`,
      snap,
    );
    expect(p.changes.users.map((u) => [u.username, u.newPassword, u.hashAlgorithm])).toEqual([
      ['a', 'secret one', 'pbkdf2'],
      ['b', 'secret two', 'sha512'],
      ['c', 'secret three', undefined],
      ['d', 'secret four', 'pbkdf2'],
    ]);
    expect(p.changes.users.find((u) => u.username === 'c')).not.toHaveProperty('hashAlgorithm');
  });

  test('when a user with a group passwordHash gets a pre-hashed password or no new password, then no algorithm is planned', () => {
    const snap = world({ users: [inGroup('a', 'dept')], set: { partner_a: { params: { passwordHash: 'sha512' } } } });
    const p = plan(`<user><username>a</username><password hash="md5" salt="s">${'ab'.repeat(16)}</password></user><user><username>b</username><licenseGroup>dept</licenseGroup></user>`, snap);
    expect(p.changes.users.map((u) => u.hashAlgorithm)).toEqual([undefined, undefined]);
  });

  test('when a user moves and gets a password in the same batch, then the password takes the passwordHash of the group it ends in', () => {
    const snap = world({ users: [inGroup('a', 'cust_b1')], set: { cust_a2: { params: { passwordHash: 'sha1' } } } });
    const p = plan(`<user><username>a</username><password>secret</password></user><user><username>a</username><licenseGroup>cust_a2</licenseGroup></user>`, snap);
    expect(p.changes.users.map((u) => [u.licenseGroup, u.hashAlgorithm])).toEqual([['cust_a2', 'sha1']]);
  });

  test('when a new company names no country, then it takes its group\'s effective country; a company that names one keeps it', () => {
    const snap = world({ users: [inGroup('anna', 'partner_a')], set: { cust_a1: { params: { country: 'SK' } } } });
    const p = plan(
      `<company><id>sk_firma</id><name>SK</name><adminUser>anna</adminUser><licenseGroup>dept</licenseGroup></company>
       <company><id>cz_firma</id><name>CZ</name><adminUser>anna</adminUser><licenseGroup>dept</licenseGroup><country>CZ</country></company>
       <company><id>plain</id><name>Plain</name><adminUser>anna</adminUser><licenseGroup>cust_a2</licenseGroup></company>`,
      snap,
    );
    expect(p.changes.companies.map((c) => [c.id, c.country, c.type])).toEqual([
      ['sk_firma', 'SK', 'PODNIKATELIA+PU'],
      ['cz_firma', 'CZ', 'PODNIKATELE+PU'],
      ['plain', 'CZ', 'PODNIKATELE+PU'],
    ]);
  });

  test('when a company is created by a scoped principal without a <licenseGroup>, then it lies in the principal\'s group and takes that group\'s country', () => {
    const snap = world({ users: [inGroup('anna', 'partner_a')], set: { partner_a: { params: { country: 'SK' } } } });
    const p = plan('<company><id>new_co</id><name>New</name><adminUser>anna</adminUser></company>', snap, PARTNER_A);
    expect(p.changes.companies).toEqual([expect.objectContaining({ id: 'new_co', country: 'SK', licenseGroup: 'partner_a' })]);
  });

  test('when an existing company is updated without a country, then its country stays what it is whatever its group says', () => {
    const snap = world({ companies: [company('old', { licenseGroup: 'cust_a1' })], set: { cust_a1: { params: { country: 'SK' } } } });
    const p = plan('<company><id>old</id><name>Old renamed</name></company>', snap);
    expect(p.changes.companies).toEqual([expect.objectContaining({ id: 'old', country: 'CZ' })]);
  });
});

// ── scope (SPEC §7): what lies outside behaves as if it did not exist ─────────────────────

describe('planBatch: a principal scoped to partner_a and what lies in partner_b (SPEC §7)', () => {
  /** bob.b, firma_b and cust_b1 lie in partner_b; ghost.x, no_firma and no_group exist nowhere. */
  const OUTSIDE = { user: 'bob.b', company: 'firma_b', group: 'cust_b1' };
  const NOWHERE = { user: 'ghost.x', company: 'no_firma', group: 'no_group' };
  const scoped = (extra: World = {}): Snapshot =>
    world({
      users: [actor(ALL), inGroup('anna', 'cust_a1'), inGroup(OUTSIDE.user, 'cust_b1', { permissions: ALL }), ...(extra.users ?? [])],
      companies: [company('firma_a', { licenseGroup: 'cust_a1' }), company(OUTSIDE.company, { name: 'Firma B', licenseGroup: 'cust_b1' }), ...(extra.companies ?? [])],
      access: [grant('actor', 'firma_a', 'ADMIN'), grant('anna', 'firma_a', 'UCETNI'), grant(OUTSIDE.user, OUTSIDE.company, 'ADMIN'), ...(extra.access ?? [])],
      grantGroups: { firma_a: 'cust_a1', [OUTSIDE.company]: 'cust_b1', ...extra.grantGroups },
      groupContents: [contents(OUTSIDE.group, { users: 1, companies: 1 }), contents(NOWHERE.group)],
    });

  /** The answers and changes with the named id written as ID: for an outside object and a nonexistent one they must be equal. */
  function masked(p: Plan, id: string): unknown {
    const pattern = new RegExp(id.replace(/[.]/g, '\\.'), 'g');
    return JSON.parse(JSON.stringify({ results: p.results, changes: p.changes }).replace(pattern, 'ID'));
  }

  /** A batch form naming an id, and its answer for an id that exists nowhere (and so for one outside the scope). */
  type Form = [name: string, what: keyof typeof OUTSIDE, batch: (id: string) => string, answer: (id: string) => [string, string, string]];
  const FORMS: Form[] = [
    ['user delete', 'user', (id) => `<user action="delete"><username>${id}</username></user>`, (id) => ['SKIPPED', id, 'user does not exist']],
    ['access with a role, for the user', 'user', (id) => `<access user="${id}" role="UCETNI">firma_a</access>`, (id) => ['FAILED', `${id}@firma_a`, `user '${id}' does not exist`]],
    ['access without a role, for the user', 'user', (id) => `<access user="${id}">firma_a</access>`, (id) => ['FAILED', `${id}@firma_a`, `user '${id}' does not exist`]],
    ['access delete, for the user', 'user', (id) => `<access user="${id}" action="delete">firma_a</access>`, (id) => ['FAILED', `${id}@firma_a`, `user '${id}' does not exist`]],
    ['a role on every grant, for the user', 'user', (id) => `<access user="${id}" role="JENCIST"/>`, (id) => ['FAILED', `${id}@*`, `user '${id}' does not exist`]],
    ["a company's new adminUser", 'user', (id) => `<company><id>firma_a</id><adminUser>${id}</adminUser></company>`, (id) => ['FAILED', 'firma_a', `admin user '${id}' does not exist`]],
    [
      "a new company's adminUser",
      'user',
      (id) => `<company><id>new_co</id><name>New</name><adminUser>${id}</adminUser></company>`,
      (id) => ['FAILED', 'new_co', `a company cannot be created without an admin user: user '${id}' does not exist`],
    ],
    [
      "a group's taskUser",
      'user',
      (id) => `<licenseGroup><id>cust_a1</id><param name="taskUser">${id}</param></licenseGroup>`,
      (id) => ['FAILED', 'cust_a1', `parameter taskUser: user '${id}' does not exist`],
    ],
    ['access with a role, for the company', 'company', (id) => `<access user="anna" role="UCETNI">${id}</access>`, (id) => ['FAILED', `anna@${id}`, `company '${id}' does not exist`]],
    ['access without a role, for the company', 'company', (id) => `<access user="anna">${id}</access>`, (id) => ['FAILED', `anna@${id}`, `company '${id}' does not exist`]],
    ['access delete, for the company', 'company', (id) => `<access user="anna" action="delete">${id}</access>`, (id) => ['SKIPPED', `anna@${id}`, 'company does not exist']],
    ['company delete', 'company', (id) => `<company action="delete"><id>${id}</id></company>`, (id) => ['SKIPPED', id, 'company does not exist']],
    [
      'company update without a name',
      'company',
      (id) => `<company><id>${id}</id><show>false</show></company>`,
      (id) => ['FAILED', id, `company '${id}' does not exist, and a company cannot be created without a <name>`],
    ],
    ['company update without an adminUser', 'company', (id) => `<company><id>${id}</id><name>Renamed</name></company>`, (id) => ['FAILED', id, 'a company cannot be created without an admin user (<adminUser>)']],
    ["a user's licenseGroup", 'group', (id) => `<user><username>anna</username><licenseGroup>${id}</licenseGroup></user>`, (id) => ['FAILED', 'anna', `license group '${id}' does not exist`]],
    ["a new user's licenseGroup", 'group', (id) => `<user><username>newbie</username><licenseGroup>${id}</licenseGroup></user>`, (id) => ['FAILED', 'newbie', `license group '${id}' does not exist`]],
    ["a company's licenseGroup", 'group', (id) => `<company><id>firma_a</id><licenseGroup>${id}</licenseGroup></company>`, (id) => ['FAILED', 'firma_a', `license group '${id}' does not exist`]],
    [
      "a new company's licenseGroup",
      'group',
      (id) => `<company><id>new_co</id><name>New</name><adminUser>anna</adminUser><licenseGroup>${id}</licenseGroup></company>`,
      (id) => ['FAILED', 'new_co', `license group '${id}' does not exist`],
    ],
    ["a group's parent on create", 'group', (id) => `<licenseGroup><id>g_new</id><name>New</name><parent>${id}</parent></licenseGroup>`, (id) => ['FAILED', 'g_new', `license group '${id}' does not exist`]],
    ["a group's parent on a move", 'group', (id) => `<licenseGroup><id>dept</id><parent>${id}</parent></licenseGroup>`, (id) => ['FAILED', 'dept', `license group '${id}' does not exist`]],
    ['license group delete', 'group', (id) => `<licenseGroup action="delete"><id>${id}</id></licenseGroup>`, (id) => ['SKIPPED', id, 'license group does not exist']],
    [
      'license group update without a name',
      'group',
      (id) => `<licenseGroup><id>${id}</id><seats>5</seats></licenseGroup>`,
      (id) => ['FAILED', id, `license group '${id}' does not exist, and a license group cannot be created without a <name>`],
    ],
  ];

  describe.each([
    ['a certificate scoped to partner_a', PARTNER_A],
    ['a user of partner_a with every permission', AS_ACTOR],
  ])('%s', (_, principal) => {
    test.each(FORMS)('when %s names an object of partner_b, then the answer is the one for an id that exists nowhere', (_name, what, batch, answer) => {
      const snap = scoped();
      const outside = plan(batch(OUTSIDE[what]), snap, principal);
      const nowhere = plan(batch(NOWHERE[what]), snap, principal);
      expect(outcomes(nowhere)).toEqual([answer(NOWHERE[what])]);
      expect(outcomes(outside)).toEqual([answer(OUTSIDE[what])]);
      expect(masked(outside, OUTSIDE[what])).toEqual(masked(nowhere, NOWHERE[what]));
      // Whatever the answer, nothing outside the scope is written.
      expect(JSON.stringify(outside.changes)).not.toMatch(/bob\.b|firma_b|cust_b1|partner_b/);
    });
  });

  test.each([
    ['createUser', (id: string) => `<user><username>${id}</username><email>x@y.cz</email></user>`, 'user'],
    ['createCompany', (id: string) => `<company><id>${id}</id><name>New</name><adminUser>anna</adminUser></company>`, 'company'],
  ] as const)('when an acting user without %s names a global id taken outside its scope, then the answer is the one for an id that exists nowhere', (permission, batch, what) => {
    const snap = world({
      users: [actor(perms(...PERMISSION_NAMES.filter((n) => n !== permission))), inGroup('anna', 'cust_a1'), inGroup(OUTSIDE.user, 'cust_b1')],
      companies: [company(OUTSIDE.company, { licenseGroup: 'cust_b1' })],
    });
    const outside = plan(batch(OUTSIDE[what]), snap, AS_ACTOR);
    const nowhere = plan(batch(NOWHERE[what]), snap, AS_ACTOR);
    expect(outcomes(nowhere)).toEqual([['FAILED', NOWHERE[what], `permission denied: ${permission} required`]]);
    expect(masked(outside, OUTSIDE[what])).toEqual(masked(nowhere, NOWHERE[what]));
  });

  test('when a new user would be over the seat limit, then an id taken outside gets that same answer too', () => {
    const snap = world({ users: [inGroup(OUTSIDE.user, 'cust_b1')], set: { partner_a: { seats: 0 } } });
    const op = (id: string): string => `<user><username>${id}</username></user>`;
    expect(outcomes(plan(op(OUTSIDE.user), snap, PARTNER_A))).toEqual([['FAILED', OUTSIDE.user, 'no free license in group partner_a (0 of 0 used)']]);
    expect(outcomes(plan(op(NOWHERE.user), snap, PARTNER_A))).toEqual([['FAILED', NOWHERE.user, 'no free license in group partner_a (0 of 0 used)']]);
  });

  test('when a username, a company id or a group id taken outside the scope would be created, then it is FAILED "not available", as one taken inside would be', () => {
    const snap = scoped();
    const p = plan(
      `<user><username>${OUTSIDE.user}</username><email>b@b.cz</email></user>
       <user><username>BOB.B</username></user>
       <company><id>${OUTSIDE.company}</id><name>Mine</name><adminUser>anna</adminUser></company>
       <licenseGroup><id>${OUTSIDE.group}</id><name>Mine</name></licenseGroup>
       <licenseGroup><id>root</id><name>Mine</name></licenseGroup>`,
      snap,
      PARTNER_A,
    );
    expect(outcomes(p)).toEqual([
      ['FAILED', 'bob.b', 'username bob.b is not available'],
      ['FAILED', 'BOB.B', 'username BOB.B is not available'],
      ['FAILED', 'firma_b', 'company id firma_b is not available'],
      ['FAILED', 'cust_b1', 'license group id cust_b1 is not available'],
      ['FAILED', 'root', 'license group id root is not available'],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
    const nowhere = plan(`<user><username>${NOWHERE.user}</username><email>b@b.cz</email></user>`, snap, PARTNER_A);
    expect(outcomes(nowhere)).toEqual([['CREATED', NOWHERE.user]]);
  });

  test('when a company id is derived from a name, then ids taken anywhere are skipped, but only a company of the scope is "the same company"', () => {
    const snap = scoped({ companies: [company('firma_a_1', { name: 'Firma A', licenseGroup: 'cust_a2' })] });
    const p = plan(
      `<company><name>Firma B</name><adminUser>anna</adminUser></company>
       <company><name>Firma A</name><show>false</show></company>`,
      snap,
      PARTNER_A,
    );
    // firma_b is taken outside (a company of the same name there is not this one); firma_a is taken inside by another name.
    expect(outcomes(p)).toEqual([['CREATED', 'firma_b_1'], ['UPDATED', 'firma_a_1']]);
    expect(p.changes.companies.map((c) => [c.id, c.name, c.licenseGroup])).toEqual([
      ['firma_b_1', 'Firma B', 'partner_a'],
      ['firma_a_1', 'Firma A', 'cust_a2'],
    ]);
  });

  test('when <access role="R"/> changes a user\'s grants, then only grants on companies of the scope change', () => {
    // anna also works for firma_b of partner_b (granted from above): that grant is not partner_a's to see.
    const snap = scoped({ access: [grant('anna', OUTSIDE.company, 'UZIVATEL')] });
    const p = plan('<access user="anna" role="JENCIST"/>', snap, PARTNER_A);
    expect(outcomes(p)).toEqual([['UPDATED', 'anna@*']]);
    expect(p.changes.grantedAccess).toEqual([grant('anna', 'firma_a', 'JENCIST')]);
  });

  test('when a user\'s only grants lie outside the scope, then <access role="R"/> answers as for a user without any', () => {
    const outsideOnly = scoped({ users: [inGroup('petr', 'cust_a2')], access: [grant('petr', OUTSIDE.company, 'UZIVATEL')] });
    const none = scoped({ users: [inGroup('petr', 'cust_a2')] });
    const op = '<access user="petr" role="JENCIST"/>';
    expect(plan(op, outsideOnly, PARTNER_A)).toEqual(plan(op, none, PARTNER_A));
    expect(outcomes(plan(op, none, PARTNER_A))).toEqual([['SKIPPED', 'petr@*', 'user has no access to any company']]);
  });

  test('when a grant names a company the snapshot knows only by its group, then its place in the scope decides, as for a loaded one', () => {
    const snap = scoped({ access: [grant('anna', 'far_away', 'UZIVATEL'), grant('anna', 'near_by', 'UZIVATEL')], grantGroups: { far_away: 'partner_b', near_by: 'cust_a2' } });
    const p = plan('<access user="anna" role="SKLADNIK"/>', snap, PARTNER_A);
    expect(p.changes.grantedAccess).toEqual([grant('anna', 'firma_a', 'SKLADNIK'), grant('anna', 'near_by', 'SKLADNIK')]);
  });

  test('when a user and a company of two different groups both lie in the scope, then access joins them', () => {
    const snap = scoped({ users: [inGroup('petr', 'cust_a2')] });
    const p = plan('<access user="petr" role="UCETNI">firma_a</access>', snap, PARTNER_A);
    expect(outcomes(p)).toEqual([['CREATED', 'petr@firma_a']]);
  });

  test('when a scoped principal creates a user or a company without a <licenseGroup>, then it lies in the principal\'s own group', () => {
    const p = plan('<user><username>newbie</username></user><company><id>new_co</id><name>New</name><adminUser>newbie</adminUser></company>', scoped(), PARTNER_A);
    expect(p.changes.users.map((u) => u.licenseGroup)).toEqual(['partner_a']);
    expect(p.changes.companies.map((c) => c.licenseGroup)).toEqual(['partner_a']);
  });
});

// ── the change set: order, dry-run, atomic ────────────────────────────────────────────────

describe('planBatch: license groups in the change set', () => {
  test('when a batch creates, moves and deletes groups and moves users in, then groupMoves lists them in batch order and the users name the new groups', () => {
    const snap = world({ users: [inGroup('petr', 'cust_a2')], groupContents: [contents('cust_b1')] });
    const p = plan(
      `<licenseGroup><id>new_g</id><name>New</name><parent>partner_b</parent></licenseGroup>
       <user><username>petr</username><licenseGroup>new_g</licenseGroup></user>
       <licenseGroup action="delete"><id>cust_b1</id></licenseGroup>
       <licenseGroup><id>dept</id><parent>new_g</parent></licenseGroup>`,
      snap,
    );
    expect(outcomes(p)).toEqual([['CREATED', 'new_g'], ['UPDATED', 'petr'], ['DELETED', 'cust_b1'], ['UPDATED', 'dept']]);
    expect(p.changes.groupMoves).toEqual([
      { kind: 'create', id: 'new_g', parentId: 'partner_b', group: expect.objectContaining({ id: 'new_g', parentId: 'partner_b' }) },
      { kind: 'delete', id: 'cust_b1', parentId: 'partner_b' },
      { kind: 'move', id: 'dept', parentId: 'new_g' },
    ]);
    expect(p.changes.users.map((u) => [u.username, u.licenseGroup])).toEqual([['petr', 'new_g']]);
    expect(seatCounts(p)).toEqual({ new_g: 1, partner_b: 1, cust_a2: 0, partner_a: 0, dept: 0 });
  });

  /** The store after a plan: what the executor writes, for the parts these tests use (no passwords). */
  function applied(snap: Snapshot, p: Plan): Snapshot {
    const byKey = <T>(rows: readonly T[], key: (r: T) => string, changed: readonly T[], gone: (k: string) => boolean = () => false): T[] => {
      const out = new Map(rows.map((r) => [key(r), r]));
      for (const r of changed) out.set(key(r), r);
      return [...out.entries()].filter(([k]) => !gone(k)).map(([, r]) => r);
    };
    const deletedGroups = new Set(p.changes.groupMoves.filter((m) => m.kind === 'delete').map((m) => m.id));
    const revoked = new Set(p.changes.revokedAccess.map((a) => `${a.userKey}@${a.companyId}`));
    return snapshot({
      ...snap,
      users: byKey(snap.users, (u) => u.key, p.changes.users),
      companies: byKey(snap.companies, (c) => c.id, p.changes.companies, (id) => p.changes.deletedCompanies.includes(id)),
      access: byKey(snap.access, (a) => `${a.userKey}@${a.companyId}`, p.changes.grantedAccess, (k) => revoked.has(k)),
      groups: byKey(snap.groups, (g) => g.id, p.changes.groups, (id) => deletedGroups.has(id)),
    });
  }

  test('when a batch of groups, users in them, companies and grants is sent again on the state it left, then every entry is SKIPPED and no seat count moves', () => {
    const snap = world({
      users: [inGroup('petr', 'cust_a2')],
      companies: [company('firma_1', { licenseGroup: 'cust_a1' })],
      set: { partner_a: { params: { defaultRole: 'UCETNI', country: 'SK' } } },
    });
    const batch = `<licenseGroup><id>shop</id><name>Shop</name><parent>cust_a1</parent><seats>2</seats></licenseGroup>
      <user><username>clerk</username><licenseGroup>shop</licenseGroup></user>
      <access>firma_1</access>
      <company><id>shop_co</id><name>Shop Co</name><adminUser>clerk</adminUser><licenseGroup>shop</licenseGroup></company>
      <licenseGroup><id>shop</id><param name="taskUser">clerk</param></licenseGroup>
      <user><username>petr</username><licenseGroup>shop</licenseGroup></user>
      <licenseGroup><id>cust_a2</id><name>Emptied</name></licenseGroup>`;
    const first = plan(batch, snap, PARTNER_A);
    expect(outcomes(first)).toEqual([
      ['CREATED', 'shop'],
      ['CREATED', 'clerk'],
      ['CREATED', 'clerk@firma_1'],
      ['CREATED', 'shop_co'],
      ['UPDATED', 'shop'],
      ['UPDATED', 'petr'],
      ['UPDATED', 'cust_a2'],
    ]);
    expect(first.changes.grantedAccess).toEqual([grant('clerk', 'firma_1', 'UCETNI'), grant('clerk', 'shop_co', 'ADMIN')]);
    expect(first.changes.companies).toEqual([expect.objectContaining({ id: 'shop_co', country: 'SK', licenseGroup: 'shop' })]);
    expect(seatCounts(first)).toEqual({ shop: 2, cust_a1: 2, partner_a: 2, root: 2, cust_a2: 0 });
    const again = plan(batch, applied(snap, first), PARTNER_A);
    expect(again.results.map((r) => r.status)).toEqual(Array(7).fill('SKIPPED'));
    expect(again.changes).toEqual(EMPTY_CHANGES);
  });

  test('when the batch is a dry-run, then the plan is exactly the one the batch would apply (the executor writes nothing)', () => {
    const batch = '<licenseGroup><id>g1</id><name>G</name></licenseGroup><user><username>n1</username><licenseGroup>g1</licenseGroup></user>';
    expect(plan(batch, world(), ROOT, ' dry-run="true"')).toEqual(plan(batch, world()));
  });

  test('when an atomic batch has a FAILED operation, then its change set is empty: no group is created, moved, deleted or counted', () => {
    const p = plan(
      `<licenseGroup><id>g1</id><name>G</name></licenseGroup>
       <user><username>n1</username><licenseGroup>g1</licenseGroup></user>
       <licenseGroup><id>dept</id><parent>cust_a2</parent></licenseGroup>
       <licenseGroup action="delete"><id>cust_b1</id></licenseGroup>
       <licenseGroup><id>g2</id></licenseGroup>`,
      world({ groupContents: [contents('cust_b1')] }),
      ROOT,
      ' atomic="true"',
    );
    expect(outcomes(p)).toEqual([
      ['SKIPPED', 'g1', 'rolled back'],
      ['SKIPPED', 'n1', 'rolled back'],
      ['SKIPPED', 'dept', 'rolled back'],
      ['SKIPPED', 'cust_b1', 'rolled back'],
      ['FAILED', 'g2', "license group 'g2' does not exist, and a license group cannot be created without a <name>"],
    ]);
    expect(p.changes).toEqual(EMPTY_CHANGES);
  });

  test('when a batch names groups, then the snapshot request asks for the scope, every named group and parent, the taskUsers, and the contents of the groups it deletes', () => {
    const doc = parseBatch(
      `<flexibee-batch id="t">
        <licenseGroup><id>g1</id><name>G</name><parent>cust_a1</parent><param name="taskUser">Anna</param></licenseGroup>
        <user><username>petr</username><licenseGroup>dept</licenseGroup></user>
        <company><id>c1</id><licenseGroup>cust_a2</licenseGroup></company>
        <licenseGroup action="delete"><id>cust_b1</id></licenseGroup>
      </flexibee-batch>`,
      { maxOperations: 10 },
    );
    expect(snapshotRequest(doc, PARTNER_A)).toEqual({
      userKeys: ['anna', 'petr'],
      companyIds: ['c1'],
      companyIdPrefixes: [],
      groupIds: ['partner_a', 'g1', 'cust_a1', 'dept', 'cust_a2', 'cust_b1'],
      groupCounts: ['cust_b1'],
      dateActionIds: [],
      subscriptionIds: [],
    });
  });
});
