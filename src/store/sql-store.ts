import type { GroupContents, GroupMove, Snapshot, SnapshotRequest } from '../domain/changes';
import type { CompanyRecord } from '../domain/companies';
import { bodyOf, encodeRun, eventJsons, eventRuns, RunCache, type EventBatch } from '../domain/events';
import type { RoleCode } from '../domain/roles';
import { userKey, type UserRecord } from '../domain/users';
import {
  ACCESS,
  COMPANIES,
  EVENT_COMMITS,
  EVENT_RUNS,
  FINGERPRINTS,
  JOURNAL,
  LICENSE_GROUPS,
  SESSIONS,
  USERS,
  type FingerprintRecord,
  type JournalEntry,
  type Row,
} from './schema';
import { groupBy } from '../util/group-by';
import { inList, inScope, type Driver, type Sql } from './sql';
import { applyDateActions, countDateActionsStatement, dateActionsTransaction, listDateActions, loadDateActions, type StoredDateAction } from './date-actions';
import type { StoredSubscription } from '../domain/webhooks';
import {
  applySubscriptions,
  recordDelivery,
  storedSubscription,
  subscriptionEvents,
  subscriptionRecord,
  waitingEvents,
  type DeliveryChange,
  type DeliveryExpectation,
  type SubscribedEvent,
} from './sql-subscriptions';
import type { BatchTransaction, EventPage, GroupView, Listed, LiveSession, Page, Store, StoredChangeSet, Tenant, UserView } from './store';

const USER_COLUMNS = USERS.columnNames.filter((c) => c !== 'created_at' && c !== 'updated_at').join(', ');
const GROUP_COLUMNS = LICENSE_GROUPS.columnNames.filter((c) => c !== 'created_at' && c !== 'updated_at').join(', ');
/** The same columns of `license_groups g` in a join. */
const G_GROUP_COLUMNS = GROUP_COLUMNS.split(', ').map((c) => `g.${c}`).join(', ');

/**
 * A name holding U+0000 names nothing: PostgreSQL text cannot hold that character (it refuses
 * the parameter), SQLite would simply find no row. Answering "not found" without asking keeps
 * both stores alike and no bad input turns into a 500.
 */
const NUL = '\u0000';

/** A user as listings show it: never the password hash. */
function toView(u: UserRecord, access: UserView['access']): UserView {
  const { key: _key, passwordHash: _hash, ...rest } = u;
  return { ...rest, access };
}

function groupAccess(rows: Row[]): Map<string, UserView['access']> {
  return groupBy(
    rows,
    (r) => r.user_key as string,
    (r) => ({ company: r.company_id as string, role: r.role as RoleCode }),
  );
}

/** `ancestor, descendant, depth` rows as each descendant's path from root. */
function pathsOf(rows: Row[]): Map<string, string[]> {
  const byDescendant = groupBy(
    rows,
    (r) => r.descendant as string,
    (r) => ({ id: r.ancestor as string, depth: Number(r.depth) }),
  );
  return new Map([...byDescendant].map(([id, list]) => [id, list.sort((a, b) => b.depth - a.depth).map((a) => a.id)]));
}

/** LIMIT/OFFSET or the keyset condition of a page, with their parameters. */
function paging(page: Page, idColumn: string): { where: string; tail: string; params: unknown[]; tailParams: unknown[] } {
  const where = page.after === undefined ? '' : ` AND ${idColumn} > ?`;
  return { where, tail: ` ORDER BY ${idColumn} LIMIT ? OFFSET ?`, params: page.after === undefined ? [] : [page.after], tailParams: [page.limit, page.start] };
}

/**
 * The one implementation of the Store for both databases: every statement is written once, in
 * SQL both SQLite and PostgreSQL take, over a Driver (sql.ts) that runs it where it belongs.
 */
export class SqlStore implements Store {
  readonly kind: 'sqlite' | 'postgres';
  private readonly sql: ReturnType<typeof statements>;
  /** Outbox runs as read, decoded: the feed and the deliverer read large ones piece by piece. */
  private readonly runs = new RunCache();

  constructor(private readonly driver: Driver) {
    this.kind = driver.kind;
    this.sql = statements(driver);
  }

  inBatch<T>(work: (tx: BatchTransaction) => Promise<T>, options: { claim?: string } = {}): Promise<T> {
    return this.driver.batch((sql) => work(this.batchTransaction(sql)), options);
  }

  private batchTransaction(sql: Sql): BatchTransaction {
    const { dialect } = this.driver;
    const q = this.sql;
    return {
      // Users and companies are loaded wherever they are: the planner needs to know that a name is
      // taken outside the scope (SPEC §7: global ids), and treats what lies outside as absent.
      loadSnapshot: async (request: SnapshotRequest): Promise<Snapshot> => {
        const users = (await sql.all(q.snapshotUsers, [dialect.list(request.userKeys)])).map(USERS.fromRow);
        const companies = new Map<string, CompanyRecord>();
        if (request.companyIds.length) {
          for (const r of await sql.all(q.snapshotCompanies, [dialect.list(request.companyIds)])) companies.set(r.id as string, COMPANIES.fromRow(r));
        }
        if (request.companyIdPrefixes.length) {
          for (const r of await sql.all(q.snapshotCompaniesByPrefix, [dialect.list(request.companyIdPrefixes)])) {
            if (!companies.has(r.id as string)) companies.set(r.id as string, COMPANIES.fromRow(r));
          }
        }
        const subscriptions = request.subscriptionIds.length ? (await sql.all(q.snapshotSubscriptions, [dialect.list(request.subscriptionIds)])).map(subscriptionRecord) : [];
        const accessRows = users.length ? await sql.all(q.snapshotAccess, [dialect.list(users.map((u) => u.key))]) : [];
        const access = accessRows.map(ACCESS.fromRow);
        const grantGroups: Record<string, string> = {};
        for (const r of accessRows) grantGroups[r.company_id as string] = r.license_group as string;
        const dateActions = await loadDateActions(sql, dialect, request.dateActionIds);
        const named = new Set([
          ...request.groupIds,
          ...users.map((u) => u.licenseGroup),
          ...[...companies.values()].map((c) => c.licenseGroup),
          ...Object.values(grantGroups),
          ...dateActions.map((a) => a.licenseGroup),
          ...subscriptions.map((s) => s.licenseGroup),
        ]);
        const groups = (await sql.all(q.snapshotGroups, [dialect.list([...named])])).map(LICENSE_GROUPS.fromRow);
        const groupContents = request.groupCounts.length ? await this.contentsOf(sql, request.groupCounts) : [];
        return { users, companies: [...companies.values()], access, grantGroups, groups, groupContents, dateActions, subscriptions };
      },
      // The order matters: the group tree changes first (a user or company may move into a new
      // group); deleted companies take their grants along (ON DELETE CASCADE) before a company of
      // the same id may be created again; users exist before their grants; a group is deleted last,
      // once everything has left it.
      apply: async (changes: StoredChangeSet): Promise<void> => {
        const now = new Date().toISOString();
        for (const move of changes.groupMoves) if (move.kind !== 'delete') await this.moveGroup(sql, move, now);
        await sql.insert(LICENSE_GROUPS, changes.groups.map((g) => LICENSE_GROUPS.values(g, now)), { upsert: true });
        // A user created three levels deep adds one seat to four groups: on SQLite one statement per
        // group (about 2.5 µs each; the same UPDATE over a list took 16 µs in the server), on
        // PostgreSQL one per distinct change.
        if (dialect.rowByRow) for (const c of changes.seatsUsed) await sql.run(q.addSeatsUsedOfOne, [c.delta, now, c.id]);
        else for (const [delta, ids] of groupBy(changes.seatsUsed, (c) => c.delta, (c) => c.id)) await sql.run(q.addSeatsUsed, [delta, now, dialect.list(ids)]);
        if (changes.deletedCompanies.length) await sql.run(q.deleteCompanies, [dialect.list(changes.deletedCompanies)]);
        await sql.insert(USERS, changes.users.map((u) => USERS.values(u, now)), { upsert: true });
        // Deleting or blocking a user ends its sessions, so a later restore or unblock does not revive them.
        const ended = changes.users.filter((u) => u.deleted || u.blocked).map((u) => u.key);
        if (ended.length) await sql.run(q.endSessionsOf, [dialect.list(ended)]);
        await sql.insert(COMPANIES, changes.companies.map((c) => COMPANIES.values(c, now)), { upsert: true });
        await sql.deleteKeys(ACCESS, changes.revokedAccess.map((a) => [a.userKey, a.companyId]));
        await sql.insert(ACCESS, changes.grantedAccess.map((a) => ACCESS.values(a, now)), { upsert: true });
        await applyDateActions(sql, dialect, changes.dateActions, changes.deletedCompanies, now);
        await applySubscriptions(sql, dialect, changes, async () => Number((await sql.get(q.lastEventSeq))?.value ?? 0), now);
        for (const move of changes.groupMoves) if (move.kind === 'delete') await this.deleteGroup(sql, move);
      },
      journal: async (entry: JournalEntry): Promise<void> => {
        await sql.insert(JOURNAL, [JOURNAL.values(entry)]);
      },
      recordEvents: (batch: EventBatch) => this.recordEvents(sql, batch),
      dates: dateActionsTransaction(sql, dialect),
    };
  }

  /**
   * The outbox (SPEC §10.1): the events go into the transaction of their change. Every writer of
   * events holds the batch lock (driver.batch), so taking the next numbers from the counter here
   * makes seq the commit order, also across processes on PostgreSQL; a rolled-back transaction
   * takes its numbers back with it.
   */
  private async recordEvents(sql: Sql, batch: EventBatch): Promise<number[]> {
    const n = batch.events.length;
    if (n === 0) return [];
    const counted = await sql.get(this.sql.takeEventSeqs, [n]);
    const last = Number(counted?.value);
    const first = last - n + 1;
    await sql.insert(EVENT_COMMITS, [
      EVENT_COMMITS.values({
        firstSeq: first,
        lastSeq: last,
        time: new Date().toISOString(),
        batchId: batch.batchId,
        actorCredential: batch.actor.credential,
        actorUser: batch.actor.user,
        actorUserKey: batch.actor.user === null ? null : userKey(batch.actor.user),
      }),
    ]);
    const runs = eventRuns(batch.events, first).map((run) =>
      EVENT_RUNS.values({
        seq: run.seq,
        lastSeq: run.seq + run.events.length - 1,
        commitSeq: first,
        group: run.group,
        userGroup: run.userGroup ?? null,
        data: encodeRun(run.events.map(bodyOf)),
      }),
    );
    await sql.insert(EVENT_RUNS, runs);
    return Array.from({ length: n }, (_, i) => first + i);
  }

  listEvents(scope: string, after: number, limit: number): Promise<EventPage> {
    return this.driver.read(async (sql) => {
      // `limit + 1` runs hold at least `limit` events after `after` (if there are that many): only the
      // first may hold none, when it ends at `after`.
      const rows = await sql.all(this.sql.eventRunsInScope, [after, after, scope, scope, limit + 1]);
      const events: string[] = [];
      let next = after;
      for (const r of rows) {
        const run = { seq: Number(r.seq), group: r.license_group as string, bodies: this.runs.bodies(Number(r.seq), r.data as string) };
        for (const e of eventJsons(run, EVENT_COMMITS.fromRow(r), (seq) => seq > after, limit + 1 - events.length)) {
          if (events.length === limit) return { events, next };
          events.push(e.json);
          next = e.seq;
        }
      }
      if (events.length === limit) return { events, next };
      const lastSeq = Number((await sql.get(this.sql.lastEventSeq))?.value ?? 0);
      return { events, next: Math.max(after, lastSeq) };
    });
  }

  listDateActions(): Promise<StoredDateAction[]> {
    return listDateActions(this.driver.query);
  }

  async lastEventSeq(): Promise<number> {
    return Number((await this.driver.query.get(this.sql.lastEventSeq))?.value ?? 0);
  }

  listSubscriptions(scope: string): Promise<Array<StoredSubscription & { waiting: number }>> {
    return this.driver.read(async (sql) => {
      const rows = (await sql.all(`SELECT * FROM subscriptions WHERE ${inScope('license_group')} ORDER BY id`, [scope])).map(storedSubscription);
      const listed: Array<StoredSubscription & { waiting: number }> = [];
      for (const s of rows) listed.push({ ...s, waiting: await waitingEvents(sql, s, this.runs) });
      return listed;
    });
  }

  async allSubscriptions(): Promise<StoredSubscription[]> {
    return (await this.driver.query.all('SELECT * FROM subscriptions ORDER BY id')).map(storedSubscription);
  }

  async findSubscription(id: string): Promise<StoredSubscription | undefined> {
    if (id.includes(NUL)) return undefined;
    const row = await this.driver.query.get('SELECT * FROM subscriptions WHERE id = ?', [id]);
    return row ? storedSubscription(row) : undefined;
  }

  subscriptionEvents(subscription: StoredSubscription, after: number, upTo: number, limit: number): Promise<SubscribedEvent[]> {
    return subscriptionEvents(this.driver.query, subscription, after, upTo, limit, this.runs);
  }

  recordDelivery(id: string, expected: DeliveryExpectation, change: DeliveryChange): Promise<boolean> {
    return this.driver.write((sql) => recordDelivery(sql, id, expected, change, new Date().toISOString()));
  }

  /** What is left in each group: child groups, users not deleted, companies, certificates not revoked, subscriptions. */
  private async contentsOf(sql: Sql, ids: string[]): Promise<GroupContents[]> {
    const list = this.driver.dialect.list(ids);
    const counts = new Map(ids.map((id) => [id, { id, groups: 0, users: 0, companies: 0, certificates: 0, dateActions: 0, subscriptions: 0 }]));
    for (const [what, statement] of [
      ['groups', this.sql.countChildGroups],
      ['users', this.sql.countUsers],
      ['companies', this.sql.countCompanies],
      ['certificates', this.sql.countCertificates],
      ['dateActions', this.sql.countDateActions],
      ['subscriptions', this.sql.countSubscriptions],
    ] as const) {
      for (const r of await sql.all(statement, [list])) {
        const c = counts.get(r.id as string);
        if (c) c[what] = Number(r.n);
      }
    }
    return [...counts.values()];
  }

  /**
   * A group created (its row first, its fields come with the upsert of the batch's groups), moved,
   * or deleted and created again: the closure rows of its subtree follow its new ancestors.
   */
  private async moveGroup(sql: Sql, move: Exclude<GroupMove, { kind: 'delete' }>, now: string): Promise<void> {
    const q = this.sql;
    if (move.kind === 'create') {
      await sql.insert(LICENSE_GROUPS, [LICENSE_GROUPS.values({ ...move.group, parentId: move.parentId, seatsUsed: 0 }, now)]);
      await sql.run(q.closureOfNew, [move.id, move.parentId, move.id, move.id]);
      return;
    }
    if (move.kind === 'recreate') await this.releaseGroup(sql, move.id, move.formerParentId);
    await sql.run(q.closureCutSubtree, [move.id, move.id]);
    await sql.run(q.closureJoinSubtree, [move.parentId, move.id]);
    await sql.run('UPDATE license_groups SET parent_id = ? WHERE id = ?', [move.parentId, move.id]);
  }

  /**
   * What may still name a group that is deleted — deleted users, revoked certificates, its events —
   * goes to its parent; sessions working in it end. Nothing of it passes to a group that takes its
   * id later.
   */
  private async releaseGroup(sql: Sql, id: string, parentId: string): Promise<void> {
    await sql.run('UPDATE users SET license_group = ? WHERE license_group = ?', [parentId, id]);
    await sql.run('UPDATE fingerprints SET scope = ? WHERE scope = ?', [parentId, id]);
    await sql.run('DELETE FROM sessions WHERE tenant = ?', [id]);
    await sql.run('DELETE FROM user_preferences WHERE last_tenant = ?', [id]);
    // Its events stay readable from its parent, the nearest group that still exists.
    await sql.run('UPDATE event_runs SET license_group = ? WHERE license_group = ?', [parentId, id]);
    await sql.run('UPDATE event_runs SET user_group = ? WHERE user_group = ?', [parentId, id]);
  }

  /** An empty group (the planner checked) leaves the tree. */
  private async deleteGroup(sql: Sql, move: Extract<GroupMove, { kind: 'delete' }>): Promise<void> {
    await this.releaseGroup(sql, move.id, move.parentId);
    await sql.run('DELETE FROM license_group_closure WHERE descendant = ?', [move.id]);
    await sql.run('DELETE FROM license_groups WHERE id = ?', [move.id]);
  }

  listUsers(scope: string, page: Page): Promise<Listed<UserView>> {
    return this.driver.read(async (sql) => {
      const group = page.group ?? scope;
      const p = paging(page, 'key');
      const rows = await sql.all(`${this.sql.listUsers}${p.where}${p.tail}`, [group, ...p.params, ...p.tailParams]);
      const keys = rows.map((r) => r.key as string);
      const access = groupAccess(keys.length ? await sql.all(this.sql.accessOfUsersInScope, [this.driver.dialect.list(keys), scope]) : []);
      const listed: Listed<UserView> = { rows: rows.map((r) => toView(USERS.fromRow(r), access.get(r.key as string) ?? [])) };
      if (page.countRows) listed.rowCount = Number((await sql.get(this.sql.countListedUsers, [group]))?.n ?? 0);
      return listed;
    });
  }

  findUser(scope: string, username: string): Promise<UserView | undefined> {
    if (username.includes(NUL)) return Promise.resolve(undefined);
    return this.driver.read(async (sql) => {
      const row = await sql.get(this.sql.findUser, [userKey(username), scope]);
      if (!row) return undefined;
      const access = groupAccess(await sql.all(this.sql.accessOfUsersInScope, [this.driver.dialect.list([row.key]), scope]));
      return { ...toView(USERS.fromRow(row), access.get(row.key as string) ?? []), lastLoginAt: (row.last_login_at as string | null) ?? null };
    });
  }

  listCompanies(scope: string, options: { includeHidden: boolean }, page: Page): Promise<Listed<CompanyRecord>> {
    return this.driver.read(async (sql) => {
      const group = page.group ?? scope;
      const p = paging(page, 'id');
      const hidden = options.includeHidden ? 1 : 0;
      const rows = await sql.all(`${this.sql.listCompanies}${p.where}${p.tail}`, [group, hidden, ...p.params, ...p.tailParams]);
      const listed: Listed<CompanyRecord> = { rows: rows.map(COMPANIES.fromRow) };
      if (page.countRows) listed.rowCount = Number((await sql.get(this.sql.countListedCompanies, [group, hidden]))?.n ?? 0);
      return listed;
    });
  }

  async findLatestJournal(scope: string, batchId: string, options: { sentBy?: string } = {}): Promise<JournalEntry | undefined> {
    if (batchId.includes(NUL) || options.sentBy?.includes(NUL)) return undefined;
    // Two statements rather than "? IS NULL OR …", so each one uses its index.
    const row =
      options.sentBy === undefined
        ? await this.driver.query.get(this.sql.latestJournal, [batchId, scope])
        : await this.driver.query.get(this.sql.latestJournalSentBy, [batchId, options.sentBy, scope]);
    return row ? JOURNAL.fromRow(row) : undefined;
  }

  async groupExists(group: string): Promise<boolean> {
    if (group.includes(NUL)) return false;
    return (await this.driver.query.get('SELECT 1 AS found FROM license_groups WHERE id = ?', [group])) !== undefined;
  }

  async groupInScope(scope: string, group: string): Promise<boolean> {
    if (group.includes(NUL)) return false;
    return (await this.driver.query.get('SELECT 1 AS found FROM license_group_closure WHERE ancestor = ? AND descendant = ?', [scope, group])) !== undefined;
  }

  listGroups(scope: string, page: Page): Promise<Listed<GroupView>> {
    return this.driver.read(async (sql) => {
      const group = page.group ?? scope;
      const p = paging(page, 'g.id');
      const rows = (await sql.all(`${this.sql.listGroups}${p.where}${p.tail}`, [group, ...p.params, ...p.tailParams])).map(LICENSE_GROUPS.fromRow);
      const paths = rows.length ? pathsOf(await sql.all(this.sql.ancestorsOf, [this.driver.dialect.list(rows.map((g) => g.id))])) : new Map<string, string[]>();
      const listed: Listed<GroupView> = { rows: rows.map((g) => ({ ...g, path: paths.get(g.id) ?? [g.id] })) };
      if (page.countRows) listed.rowCount = Number((await sql.get(`SELECT count(*) AS n FROM license_groups WHERE ${inScope('id')}`, [group]))?.n ?? 0);
      return listed;
    });
  }

  findGroup(scope: string, id: string): Promise<GroupView | undefined> {
    if (id.includes(NUL)) return Promise.resolve(undefined);
    return this.driver.read(async (sql) => {
      if (!(await sql.get('SELECT 1 AS found FROM license_group_closure WHERE ancestor = ? AND descendant = ?', [scope, id]))) return undefined;
      const chain = (await sql.all(this.sql.chainOf, [id])).map(LICENSE_GROUPS.fromRow);
      const children = (await sql.all('SELECT id FROM license_groups WHERE parent_id = ? ORDER BY id', [id])).map((r) => r.id as string);
      return { ...chain[0], path: chain.map((g) => g.id).reverse(), children, chain };
    });
  }

  tenantsOf(scope: string, username: string): Promise<Tenant[] | undefined> {
    if (username.includes(NUL)) return Promise.resolve(undefined);
    return this.driver.read(async (sql) => {
      const user = await sql.get(this.sql.findUser, [userKey(username), scope]);
      if (!user) return undefined;
      const companies = await sql.all(this.sql.tenantCompanies, [user.key, scope]);
      // The user's own group is a tenant even without companies.
      const byGroup = groupBy(
        companies,
        (r) => r.license_group as string,
        (r) => r.id as string,
        new Map<string, string[]>([[user.license_group as string, []]]),
      );
      const ids = [...byGroup.keys()];
      const groups = new Map((await sql.all(`SELECT ${GROUP_COLUMNS} FROM license_groups WHERE ${inList(this.driver.dialect, 'id')}`, [this.driver.dialect.list(ids)])).map((r) => [r.id as string, r]));
      const paths = pathsOf(await sql.all(this.sql.ancestorsOf, [this.driver.dialect.list(ids)]));
      return ids
        .filter((id) => groups.has(id))
        .sort()
        .map((id) => ({ id, name: groups.get(id)?.name as string, path: paths.get(id) ?? [id], companies: (byGroup.get(id) ?? []).sort() }));
    });
  }

  async lastTenantOf(key: string): Promise<string | undefined> {
    const row = await this.driver.query.get('SELECT last_tenant FROM user_preferences WHERE user_key = ?', [key]);
    return (row?.last_tenant as string | null | undefined) ?? undefined;
  }

  async findUserRecord(scope: string, username: string): Promise<UserRecord | undefined> {
    if (username.includes(NUL)) return undefined;
    const row = await this.driver.query.get(this.sql.findUserRecord, [userKey(username), scope]);
    return row ? USERS.fromRow(row) : undefined;
  }

  upgradePasswordHash(key: string, from: string, to: string): Promise<boolean> {
    return this.driver.write(async (sql) => (await sql.run('UPDATE users SET password_hash = ? WHERE key = ? AND password_hash = ?', [to, key, from])) === 1);
  }

  async costliestPbkdf2Iterations(): Promise<number> {
    // The iteration counts in use are few: each distinct count is read once ("pbkdf2:" + up to eight
    // characters + ':') and the largest taken here, so a malformed count neither fails a cast nor overflows.
    const rows = await this.driver.query.all(this.sql.pbkdf2Counts);
    let most = 0;
    for (const { n } of rows) if (typeof n === 'string' && /^[0-9]{1,8}$/.test(n)) most = Math.max(most, Number(n));
    return most;
  }

  /**
   * Also removes the sessions that have been idle longer than `idleMs`, so the table holds only
   * live ones and those idle since the last login; with `lastTenant`, that becomes the user's
   * choice for its next login without a tenant (SPEC §7.5).
   */
  createSession(session: { idHash: string; userKey: string; now: number; idleMs?: number; tenant: string; lastTenant?: string | null }): Promise<void> {
    return this.driver.write(async (sql) => {
      if (session.idleMs !== undefined) await sql.run('DELETE FROM sessions WHERE last_used_at < ?', [session.now - session.idleMs]);
      await sql.insert(SESSIONS, [
        SESSIONS.values({ idHash: session.idHash, userKey: session.userKey, createdAt: session.now, lastUsedAt: session.now, tenant: session.tenant }),
      ]);
      // SPEC §10.3: lastLoginAt, which date actions may count from. Its own statement: a batch's write
      // of the user leaves it alone (schema.ts), so neither can undo the other.
      await sql.run('UPDATE users SET last_login_at = ? WHERE key = ?', [new Date(session.now).toISOString(), session.userKey]);
      if (session.lastTenant !== undefined) {
        await sql.run(
          'INSERT INTO user_preferences (user_key, last_tenant) VALUES (?, ?) ON CONFLICT (user_key) DO UPDATE SET last_tenant = excluded.last_tenant',
          [session.userKey, session.lastTenant],
        );
      }
    });
  }

  /** A session idle longer than `idleMs` is not found (and is removed at the next login). */
  useSession(idHash: string, now: number, idleMs: number): Promise<LiveSession | undefined> {
    if (idHash.includes(NUL)) return Promise.resolve(undefined);
    return this.driver.write(async (sql) => {
      const used = await sql.get('UPDATE sessions SET last_used_at = ? WHERE id_hash = ? AND last_used_at >= ? RETURNING user_key, tenant', [now, idHash, now - idleMs]);
      if (!used) return undefined;
      const row = await sql.get(`SELECT ${USER_COLUMNS} FROM users WHERE key = ?`, [used.user_key]);
      return row ? { user: USERS.fromRow(row), tenant: (used.tenant as string | null) ?? null } : undefined;
    });
  }

  deleteSession(idHash: string, now: number, idleMs: number): Promise<boolean> {
    if (idHash.includes(NUL)) return Promise.resolve(false);
    return this.driver.write(async (sql) => (await sql.run('DELETE FROM sessions WHERE id_hash = ? AND last_used_at >= ?', [idHash, now - idleMs])) === 1);
  }

  async acquireLease(name: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
    return this.driver.write(async (sql) => (await sql.get(this.sql.takeLease, [name, holder, now + ttlMs, now, holder])) !== undefined);
  }

  releaseLease(name: string, holder: string): Promise<void> {
    return this.driver.write(async (sql) => void (await sql.run('DELETE FROM task_leases WHERE name = ? AND holder = ?', [name, holder])));
  }

  /** Whole commits only: the events of the commits before `before` whose last seq is at most `upToSeq`. */
  deleteEvents(before: string, upToSeq: number): Promise<number> {
    return this.driver.write(async (sql) => {
      const last = Number((await sql.get('SELECT max(last_seq) AS n FROM event_commits WHERE time < ? AND last_seq <= ?', [before, upToSeq]))?.n ?? 0);
      if (last === 0) return 0;
      await sql.run('DELETE FROM event_runs WHERE seq <= ?', [last]);
      await sql.run('DELETE FROM event_commits WHERE last_seq <= ?', [last]);
      return last;
    });
  }

  addFingerprint(record: Pick<FingerprintRecord, 'fingerprint' | 'scope' | 'label'>): Promise<'added' | 'updated'> {
    return this.driver.write(async (sql) => {
      const existed = (await sql.get('SELECT 1 AS found FROM fingerprints WHERE fingerprint = ?', [record.fingerprint])) !== undefined;
      if (existed) {
        await sql.run('UPDATE fingerprints SET scope = ?, label = ?, revoked_at = NULL WHERE fingerprint = ?', [record.scope, record.label, record.fingerprint]);
      } else {
        await sql.insert(FINGERPRINTS, [FINGERPRINTS.values({ ...record, createdAt: new Date().toISOString(), revokedAt: null })]);
      }
      return existed ? 'updated' : 'added';
    });
  }

  addFingerprintIfUnknown(record: Pick<FingerprintRecord, 'fingerprint' | 'scope' | 'label'>): Promise<boolean> {
    return this.driver.write(
      async (sql) =>
        (await sql.run('INSERT INTO fingerprints (fingerprint, scope, label, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (fingerprint) DO NOTHING', [
          record.fingerprint,
          record.scope,
          record.label,
          new Date().toISOString(),
        ])) === 1,
    );
  }

  async listFingerprints(): Promise<FingerprintRecord[]> {
    return (await this.driver.query.all('SELECT * FROM fingerprints ORDER BY created_at, fingerprint')).map(FINGERPRINTS.fromRow);
  }

  revokeFingerprint(fingerprint: string): Promise<boolean> {
    return this.driver.write(
      async (sql) => (await sql.run('UPDATE fingerprints SET revoked_at = ? WHERE fingerprint = ? AND revoked_at IS NULL', [new Date().toISOString(), fingerprint])) === 1,
    );
  }

  async findActiveFingerprint(fingerprint: string): Promise<FingerprintRecord | undefined> {
    const row = await this.driver.query.get('SELECT * FROM fingerprints WHERE fingerprint = ? AND revoked_at IS NULL', [fingerprint]);
    return row ? FINGERPRINTS.fromRow(row) : undefined;
  }

  ping(): Promise<void> {
    return this.driver.ping();
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}

/** Every statement of the store, spelled once for the driver's dialect when the store opens. */
function statements({ dialect }: Driver) {
  const countBy = (column: string, from: string, where = ''): string =>
    `SELECT ${column} AS id, count(*) AS n FROM ${from} WHERE ${inList(dialect, column)}${where} GROUP BY ${column}`;
  return {
    snapshotUsers: `SELECT ${USER_COLUMNS} FROM users WHERE ${inList(dialect, 'key')}`,
    snapshotCompanies: `SELECT * FROM companies WHERE ${inList(dialect, 'id')}`,
    // Company ids use [a-z0-9_] only, all below '{', so [prefix, prefix || '{') is "starts with" (in
    // byte order on both stores), and each range is an index scan.
    snapshotCompaniesByPrefix: `SELECT c.* FROM ${dialect.values('p')} JOIN companies c ON c.id >= p.value AND c.id < p.value || '{' ORDER BY c.id`,
    snapshotAccess: `SELECT a.user_key, a.company_id, a.role, c.license_group FROM access a JOIN companies c ON c.id = a.company_id
      WHERE ${inList(dialect, 'a.user_key')}`,
    // Each named group with every group above it. A join, not `id IN (SELECT … IN (…))`: SQLite
    // builds a temporary index for each nested IN list, which made this the costliest statement of
    // a one-user batch (about 90 µs against 8).
    snapshotGroups: `SELECT DISTINCT ${G_GROUP_COLUMNS} FROM ${dialect.values('l')}
      JOIN license_group_closure c ON c.descendant = l.value JOIN license_groups g ON g.id = c.ancestor`,
    addSeatsUsed: `UPDATE license_groups SET seats_used = seats_used + ?, updated_at = ? WHERE ${inList(dialect, 'id')}`,
    addSeatsUsedOfOne: 'UPDATE license_groups SET seats_used = seats_used + ?, updated_at = ? WHERE id = ?',
    countChildGroups: countBy('parent_id', 'license_groups'),
    countUsers: countBy('license_group', 'users', ' AND deleted = 0'),
    countCompanies: countBy('license_group', 'companies'),
    countCertificates: countBy('scope', 'fingerprints', ' AND revoked_at IS NULL'),
    countDateActions: countDateActionsStatement(dialect),
    countSubscriptions: countBy('license_group', 'subscriptions'),
    snapshotSubscriptions: `SELECT * FROM subscriptions WHERE ${inList(dialect, 'id')}`,
    closureOfNew: `INSERT INTO license_group_closure (ancestor, descendant, depth)
      SELECT ancestor, CAST(? AS TEXT), depth + 1 FROM license_group_closure WHERE descendant = ?
      UNION ALL SELECT CAST(? AS TEXT), CAST(? AS TEXT), 0`,
    // The subtree of the moved group loses every ancestor outside the subtree…
    closureCutSubtree: `DELETE FROM license_group_closure
      WHERE descendant IN (SELECT descendant FROM license_group_closure WHERE ancestor = ?)
        AND ancestor NOT IN (SELECT descendant FROM license_group_closure WHERE ancestor = ?)`,
    // …and gains the new parent and its ancestors.
    closureJoinSubtree: `INSERT INTO license_group_closure (ancestor, descendant, depth)
      SELECT a.ancestor, d.descendant, a.depth + d.depth + 1
        FROM license_group_closure a JOIN license_group_closure d ON a.descendant = ? AND d.ancestor = ?`,
    deleteCompanies: `DELETE FROM companies WHERE ${inList(dialect, 'id')}`,
    endSessionsOf: `DELETE FROM sessions WHERE ${inList(dialect, 'user_key')}`,
    listUsers: `SELECT ${USER_COLUMNS} FROM users WHERE deleted = 0 AND ${inScope('license_group')}`,
    countListedUsers: `SELECT count(*) AS n FROM users WHERE deleted = 0 AND ${inScope('license_group')}`,
    findUser: `SELECT ${USER_COLUMNS}, last_login_at FROM users WHERE key = ? AND deleted = 0 AND ${inScope('license_group')}`,
    findUserRecord: `SELECT ${USER_COLUMNS} FROM users WHERE key = ? AND ${inScope('license_group')}`,
    accessOfUsersInScope: `SELECT a.user_key, a.company_id, a.role FROM access a JOIN companies c ON c.id = a.company_id
      WHERE ${inList(dialect, 'a.user_key')} AND ${inScope('c.license_group')} ORDER BY a.user_key, a.company_id`,
    tenantCompanies: `SELECT c.id, c.license_group FROM access a JOIN companies c ON c.id = a.company_id
      WHERE a.user_key = ? AND ${inScope('c.license_group')} ORDER BY c.id`,
    listCompanies: `SELECT * FROM companies WHERE ${inScope('license_group')} AND (show = 1 OR ? = 1)`,
    countListedCompanies: `SELECT count(*) AS n FROM companies WHERE ${inScope('license_group')} AND (show = 1 OR ? = 1)`,
    listGroups: `SELECT ${G_GROUP_COLUMNS} FROM license_groups g WHERE ${inScope('g.id')}`,
    ancestorsOf: `SELECT ancestor, descendant, depth FROM license_group_closure WHERE ${inList(dialect, 'descendant')}`,
    chainOf: `SELECT ${G_GROUP_COLUMNS} FROM license_group_closure c JOIN license_groups g ON g.id = c.ancestor
      WHERE c.descendant = ? ORDER BY c.depth`,
    latestJournal: `SELECT * FROM batch_journal WHERE batch_id = ? AND ${inScope('scope')} ORDER BY seq DESC LIMIT 1`,
    latestJournalSentBy: `SELECT * FROM batch_journal WHERE batch_id = ? AND acting_user_key = ? AND ${inScope('scope')} ORDER BY seq DESC LIMIT 1`,
    // Inserted when free; taken over when expired or already the holder's; else no row comes back.
    takeLease: `INSERT INTO task_leases (name, holder, expires_at) VALUES (?, ?, ?)
      ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
      WHERE task_leases.expires_at < ? OR task_leases.holder = ? RETURNING holder`,
    takeEventSeqs: "UPDATE counters SET value = value + ? WHERE name = 'event_seq' RETURNING value",
    lastEventSeq: "SELECT value FROM counters WHERE name = 'event_seq'",
    // The runs after `after`, and the one that holds `after` itself (it may go on beyond it).
    eventRunsInScope: `SELECT r.seq, r.license_group, r.data, c.* FROM event_runs r JOIN event_commits c ON c.first_seq = r.commit_seq
      WHERE (r.seq > ? OR r.seq = (SELECT max(seq) FROM event_runs WHERE seq <= ?))
        AND ${inScope('r.license_group')} AND (r.user_group IS NULL OR ${inScope('r.user_group')}) ORDER BY r.seq LIMIT ?`,
    pbkdf2Counts: `SELECT DISTINCT CASE ${[1, 2, 3, 4, 5, 6, 7, 8]
      .map((n) => `WHEN substr(password_hash, ${8 + n}, 1) = ':' THEN substr(password_hash, 8, ${n})`)
      .join(' ')} END AS n FROM users WHERE password_hash LIKE 'pbkdf2:%'`,
  };
}
