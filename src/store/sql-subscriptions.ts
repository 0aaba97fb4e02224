import type { ChangeSet, SubscriptionWrite } from '../domain/changes';
import { eventJsons, type RunCache } from '../domain/events';
import { userKey } from '../domain/users';
import { typesOf, type StoredSubscription, type SubscriptionRecord, type SubscriptionState } from '../domain/webhooks';
import { EVENT_COMMITS, SUBSCRIPTIONS, type Row, type SubscriptionRow } from './schema';
import { inList, inScope, type Dialect, type Sql } from './sql';

/**
 * The statements of webhook subscriptions (SPEC §10.2), for SqlStore. A batch writes what it sets
 * and the transitions it causes; the deliverer writes its cursor and the delivery being retried,
 * each time only if the row is still as the deliverer last read it (recordDelivery).
 */

/** An event as a subscription receives it: its feed JSON, with its seq and time for the cursor and the lag. */
export interface SubscribedEvent {
  seq: number;
  time: string;
  json: string;
}

/** What the deliverer changes of a subscription; absent fields stay as they are. */
export type DeliveryChange = Partial<Pick<StoredSubscription, 'deliveredSeq' | 'pending' | 'attempts' | 'nextAttemptAt' | 'lastDelivery' | 'lastError'>> & {
  state?: Exclude<SubscriptionState, 'inactive'>;
};

/** What the deliverer read: the change applies only while the row still has this cursor and this pending delivery. */
export interface DeliveryExpectation {
  deliveredSeq: number;
  pendingId: string | null;
}

export function storedSubscription(row: Row): StoredSubscription {
  const r = SUBSCRIPTIONS.fromRow(row);
  return {
    id: r.id,
    url: r.url,
    events: r.events.split(' ').filter((p) => p.length > 0),
    secret: r.secret,
    excludeOwn: r.excludeOwn,
    licenseGroup: r.licenseGroup,
    state: r.state as SubscriptionState,
    owner: { credential: r.ownerCredential, user: r.ownerUser },
    deliveredSeq: r.deliveredSeq,
    pending:
      r.deliveryId === null ? null : { id: r.deliveryId, time: r.deliveryTime as string, upTo: r.deliveryUpTo as number, digest: r.deliveryDigest as string },
    attempts: r.attempts,
    nextAttemptAt: r.nextAttemptAt,
    previousSecret: r.previousSecret,
    secretRotatedAt: r.secretRotatedAt,
    lastDelivery: r.lastDeliveryAt === null ? null : { seq: r.lastDeliverySeq as number, status: r.lastDeliveryStatus, time: r.lastDeliveryAt },
    lastError: r.lastError === null ? null : { message: r.lastError, time: r.lastErrorAt as string },
    createdAt: row.created_at as string,
  };
}

/** The part of a stored subscription a batch sees. */
export function subscriptionRecord(row: Row): SubscriptionRecord {
  const { id, url, events, secret, excludeOwn, licenseGroup, state, owner } = storedSubscription(row);
  return { id, url, events, secret, excludeOwn, licenseGroup, state, owner };
}

/** The row of a new subscription: it starts after `lastSeq`, the last event committed before its batch. */
function newRow(s: SubscriptionRecord, lastSeq: number): SubscriptionRow {
  return {
    id: s.id,
    url: s.url,
    events: s.events.join(' '),
    secret: s.secret,
    previousSecret: null,
    secretRotatedAt: null,
    excludeOwn: s.excludeOwn,
    licenseGroup: s.licenseGroup,
    state: s.state,
    ownerCredential: s.owner.credential,
    ownerUser: s.owner.user,
    deliveredSeq: lastSeq,
    deliveryId: null,
    deliveryTime: null,
    deliveryUpTo: null,
    deliveryDigest: null,
    attempts: 0,
    nextAttemptAt: null,
    lastDeliverySeq: null,
    lastDeliveryStatus: null,
    lastDeliveryAt: null,
    lastError: null,
    lastErrorAt: null,
  };
}

const DROP_PENDING = 'delivery_id = NULL, delivery_time = NULL, delivery_up_to = NULL, delivery_digest = NULL';

/** The definition a batch set, and the transitions it causes; the deliverer's other columns stay. */
async function updateSubscription(sql: Sql, write: SubscriptionWrite, lastSeq: number, now: string): Promise<void> {
  const s = write.subscription;
  const sets = ['url = ?', 'events = ?', 'secret = ?', 'exclude_own = ?', 'license_group = ?', 'state = ?', 'updated_at = ?'];
  const params: unknown[] = [s.url, s.events.join(' '), s.secret, s.excludeOwn ? 1 : 0, s.licenseGroup, s.state, now];
  if (write.rotatedFrom !== undefined) {
    sets.push('previous_secret = ?', 'secret_rotated_at = ?');
    params.push(write.rotatedFrom, now);
  }
  if (write.restarted) {
    sets.push('delivered_seq = ?');
    params.push(lastSeq);
  }
  if (write.stateChanged) sets.push('attempts = 0', 'next_attempt_at = NULL');
  if (write.filterChanged || write.restarted) sets.push(DROP_PENDING);
  await sql.run(`UPDATE subscriptions SET ${sets.join(', ')} WHERE id = ?`, [...params, s.id]);
}

/**
 * A batch's subscriptions: deletes first (an id deleted and created again is a new row), then the
 * rest. `lastSeq` is read once, inside the batch's lock and before its own events are recorded, so
 * a new (or restarted) subscription receives exactly what is committed after its batch.
 */
export async function applySubscriptions(
  sql: Sql,
  dialect: Dialect,
  changes: Pick<ChangeSet, 'deletedSubscriptions' | 'subscriptions'>,
  lastSeq: () => Promise<number>,
  now: string,
): Promise<void> {
  if (changes.deletedSubscriptions.length) await sql.run(`DELETE FROM subscriptions WHERE ${inList(dialect, 'id')}`, [dialect.list(changes.deletedSubscriptions)]);
  if (changes.subscriptions.length === 0) return;
  const last = await lastSeq();
  const created = changes.subscriptions.filter((w) => w.created).map((w) => SUBSCRIPTIONS.values(newRow(w.subscription, last), now));
  await sql.insert(SUBSCRIPTIONS, created);
  for (const write of changes.subscriptions) if (!write.created) await updateSubscription(sql, write, last, now);
}

/**
 * The condition of the runs of events a subscription receives, with its parameters: in the scope of
 * its group as the group tree stands now (an access event also needs the user's group in it), and
 * with excludeOwn not caused by its owner — its acting user when it had one, else its credential.
 * Its types are a condition on each event of a run (typesOf).
 */
function received(s: SubscriptionRecord): { where: string; params: unknown[] } {
  let where = `${inScope('r.license_group')} AND (r.user_group IS NULL OR ${inScope('r.user_group')})`;
  const params: unknown[] = [s.licenseGroup, s.licenseGroup];
  if (s.excludeOwn && s.owner.user !== null) {
    where += ' AND (c.actor_user_key IS NULL OR c.actor_user_key <> ?)';
    params.push(userKey(s.owner.user));
  } else if (s.excludeOwn) {
    where += ' AND c.actor_credential <> ?';
    params.push(s.owner.credential);
  }
  return { where, params };
}

/** Runs read per statement while a subscription's events are collected. */
const RUNS_AT_ONCE = 64;

/**
 * Calls `visit` with each run a subscription receives that holds events in (after, upTo], in seq
 * order, until it returns false. The run holding `after + 1` may start before it.
 */
async function eachRun(sql: Pick<Sql, 'all'>, s: SubscriptionRecord, after: number, upTo: number, visit: (run: Row) => boolean): Promise<void> {
  const { where, params } = received(s);
  let from = after;
  for (;;) {
    const rows = await sql.all(
      `SELECT r.seq, r.last_seq, r.license_group, r.data, c.* FROM event_runs r JOIN event_commits c ON c.first_seq = r.commit_seq
        WHERE (r.seq > ? OR r.seq = (SELECT max(seq) FROM event_runs WHERE seq <= ?)) AND r.seq <= ? AND ${where} ORDER BY r.seq LIMIT ?`,
      [from, from, upTo, ...params, RUNS_AT_ONCE],
    );
    for (const r of rows) if (Number(r.last_seq) > after && !visit(r)) return;
    if (rows.length < RUNS_AT_ONCE) return;
    from = Number(rows[rows.length - 1].last_seq);
  }
}

/** The events a subscription receives with seq in (after, upTo], in seq order, at most `limit`. */
export async function subscriptionEvents(sql: Pick<Sql, 'all'>, s: SubscriptionRecord, after: number, upTo: number, limit: number, runs: RunCache): Promise<SubscribedEvent[]> {
  const types = typesOf(s.events);
  const wanted = types === undefined ? undefined : new Set<string>(types);
  const out: SubscribedEvent[] = [];
  await eachRun(sql, s, after, upTo, (r) => {
    const commit = EVENT_COMMITS.fromRow(r);
    const run = { seq: Number(r.seq), group: r.license_group as string, bodies: runs.bodies(Number(r.seq), r.data as string) };
    const picked = eventJsons(run, commit, (seq, type) => seq > after && seq <= upTo && (!wanted || wanted.has(type)), limit - out.length);
    for (const e of picked) out.push({ seq: e.seq, time: commit.time, json: e.json });
    return out.length < limit;
  });
  return out;
}

/** How many events wait for a subscription: every one after its cursor that it receives. */
export async function waitingEvents(sql: Pick<Sql, 'all'>, s: StoredSubscription, runs: RunCache): Promise<number> {
  if (s.state === 'inactive') return 0;
  const types = typesOf(s.events);
  const wanted = types === undefined ? undefined : new Set<string>(types);
  const after = s.deliveredSeq;
  let waiting = 0;
  await eachRun(sql, s, after, Number.MAX_SAFE_INTEGER, (r) => {
    const [first, last] = [Number(r.seq), Number(r.last_seq)];
    if (!wanted) {
      waiting += last - Math.max(first, after + 1) + 1;
      return true;
    }
    runs.bodies(first, r.data as string).forEach((e, i) => {
      if (first + i > after && wanted.has(e.type)) waiting++;
    });
    return true;
  });
  return waiting;
}

/** Applies a DeliveryChange while the subscription is active and as expected; whether it did. */
export async function recordDelivery(sql: Sql, id: string, expected: DeliveryExpectation, change: DeliveryChange, now: string): Promise<boolean> {
  const sets: string[] = [];
  const params: unknown[] = [];
  const set = (column: string, value: unknown): void => {
    sets.push(`${column} = ?`);
    params.push(value);
  };
  if (change.deliveredSeq !== undefined) set('delivered_seq', change.deliveredSeq);
  if (change.pending !== undefined) {
    set('delivery_id', change.pending?.id ?? null);
    set('delivery_time', change.pending?.time ?? null);
    set('delivery_up_to', change.pending?.upTo ?? null);
    set('delivery_digest', change.pending?.digest ?? null);
  }
  if (change.attempts !== undefined) set('attempts', change.attempts);
  if (change.nextAttemptAt !== undefined) set('next_attempt_at', change.nextAttemptAt);
  if (change.state !== undefined) set('state', change.state);
  if (change.lastDelivery !== undefined) {
    set('last_delivery_seq', change.lastDelivery?.seq ?? null);
    set('last_delivery_status', change.lastDelivery?.status ?? null);
    set('last_delivery_at', change.lastDelivery?.time ?? null);
  }
  if (change.lastError !== undefined) {
    set('last_error', change.lastError?.message ?? null);
    set('last_error_at', change.lastError?.time ?? null);
  }
  set('updated_at', now);
  const pending = expected.pendingId === null ? 'delivery_id IS NULL' : 'delivery_id = ?';
  const where = [id, expected.deliveredSeq, ...(expected.pendingId === null ? [] : [expected.pendingId])];
  const changed = await sql.run(`UPDATE subscriptions SET ${sets.join(', ')} WHERE id = ? AND delivered_seq = ? AND state = 'active' AND ${pending}`, [...params, ...where]);
  return changed === 1;
}
