import { createHash } from 'node:crypto';
import type { BatchDocument, Operation } from '../batch/operations';
import { planBatch, snapshotRequest } from '../batch/plan';
import type { PlannedUser } from '../domain/changes';
import { describeSchedule, dueDateOf, type DateActionRecord } from '../domain/date-actions';
import { addDays, fewestDays, localDateOf, mostDays } from '../domain/dates';
import { isCalendarDate } from '../domain/fields';
import type { EventActor, PlannedEvent } from '../domain/events';
import { GroupTree } from '../domain/groups';
import { ROOT_GROUP, type Principal } from '../domain/principals';
import type { OperationResult } from '../domain/results';
import { userKey, type UserRecord } from '../domain/users';
import type { Logger } from '../log';
import type { BatchTransaction, DateActionFiredRow, DateObject, Store, StoredDateAction } from '../store/store';
import { renderResult } from '../xml/result';
import type { DateActionsJob } from './runner';

/**
 * The date actions (SPEC §10.3) as the task runner runs them. One run is one action on one date,
 * in one transaction, journalled like a batch with the id `tasks-{action}-{date}`:
 *
 * 1. the objects of the action's group and everything below it whose due date (the field's date
 *    plus the offsets, domain/dates.ts) lies on or before the run's date — and not before the day
 *    the action was created: an action looks forward from its creation, and catches up the runs
 *    that were missed since, not the history before it;
 * 2. minus those it already did or skipped for that due date (`date_action_fired`);
 * 3. each under its group's effective taskUser (SPEC §7.3), whose permissions the real planner
 *    checks now, as for a batch that user sent: block is a user update with the action's message
 *    as the block message, delete a delete, hide `show=false`, remind a REMINDER event;
 * 4. what could not be done — no task user, one that is deleted, blocked or placed elsewhere, a
 *    missing permission — is left undone, retried at each run, and told once per reason by a
 *    TASK_FAILED event (a persisting failure does not repeat it every day).
 */

type Outcome = DateActionFiredRow['outcome'];

/** One object the run handles, and what became of it. */
interface Handled {
  object: DateObject;
  due: string;
  outcome: Outcome;
  result: OperationResult;
  /** Why it failed (also the TASK_FAILED event's reason). */
  reason?: string;
  /** Set when the failure was told before with the same reason: no new event. */
  toldBefore?: boolean;
  taskUser?: string;
}

/** What a run did or, in a plan, would do. */
export interface RunReport {
  action: string;
  date: string;
  handled: Handled[];
}

/** The batch a run amounts to for one task user: its operations, each on its own (not atomic). */
const runDocument = (id: string, operations: Operation[]): BatchDocument => ({ id, atomic: false, dryRun: false, operations });

export const runBatchId = (action: string, date: string): string => `tasks-${action}-${date}`;

const what = (action: DateActionRecord): string => (action.entity === 'USER' ? 'user' : 'company');

/** The operation a batch would carry to do `action` to `object`; undefined for remind, which changes nothing. */
function operationFor(action: DateActionRecord, object: DateObject): Operation | undefined {
  switch (action.do) {
    case 'block':
      return { kind: 'user', action: 'create-update', username: object.id, fields: { blocked: { value: true, message: action.message } } };
    case 'hide':
      return { kind: 'company', action: 'create-update', id: object.id, fields: { show: false } };
    case 'delete':
      return action.entity === 'USER' ? { kind: 'user', action: 'delete', username: object.id, fields: {} } : { kind: 'company', action: 'delete', id: object.id, fields: {} };
    default:
      return undefined;
  }
}

/** A text date below the calendar's first (YYYY-MM-DD sorts after it) and one above its last. */
const BEFORE_ALL = '0000';
const AFTER_ALL = '99999';

export class DateActions implements DateActionsJob {
  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {}

  /**
   * Each active action in its own transaction. One that throws (the store went away) does not keep
   * the others from running; the round then ends with an error naming them, and the next round
   * tries them again (what they did before is recorded, so nothing is done twice).
   */
  async runDue(date: string): Promise<void> {
    const errors: string[] = [];
    for (const action of await this.store.listDateActions()) {
      if (!action.active) continue;
      let report: RunReport;
      try {
        report = await this.store.inBatch((tx) => this.run(tx, action.id, date, true));
      } catch (e) {
        errors.push(`${action.id}: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      if (report.handled.length === 0) continue;
      const count = (outcome: Outcome): number => report.handled.filter((h) => h.outcome === outcome).length;
      this.logger.info('date action ran', { action: action.id, date, batchId: runBatchId(action.id, date), done: count('done'), skipped: count('skipped'), failed: count('failed') });
    }
    if (errors.length) throw new Error(`date actions that could not run on ${date}: ${errors.join('; ')}`);
  }

  async plan(date: string): Promise<string[]> {
    const lines: string[] = [];
    for (const action of await this.store.listDateActions()) {
      if (!action.active) continue;
      const report = await this.store.inBatch((tx) => this.run(tx, action.id, date, false));
      for (const h of report.handled) lines.push(planLine(action, h));
    }
    return lines;
  }

  /**
   * One run of one action (SPEC §10.3). With `write`, it does what it finds and records it;
   * without, it only says what it would do (`tasks plan`), through the same checks.
   */
  async run(tx: BatchTransaction, actionId: string, date: string, write: boolean): Promise<RunReport> {
    const startedAt = new Date();
    const report: RunReport = { action: actionId, date, handled: [] };
    const action = await tx.dates.find(actionId);
    if (!action || !action.active) return report;
    const due = await this.dueObjects(tx, action, date);
    if (due.length === 0) return report;

    // The tree above the objects, for each one's effective taskUser (SPEC §7.3), and those users.
    const request = { userKeys: [], companyIds: [], companyIdPrefixes: [], groupCounts: [], dateActionIds: [], subscriptionIds: [] };
    const tree = new GroupTree((await tx.loadSnapshot({ ...request, groupIds: [...new Set(due.map((d) => d.object.licenseGroup))] }, ROOT_GROUP)).groups);
    const taskUserOf = new Map(due.map((d) => [d.object.licenseGroup, tree.effective(d.object.licenseGroup, 'taskUser')?.value]));
    const names = [...new Set([...taskUserOf.values()].filter((n): n is string => n !== undefined))];
    const users = new Map((await tx.loadSnapshot({ ...request, userKeys: names.map(userKey), groupIds: [] }, ROOT_GROUP)).users.map((u) => [u.key, u]));

    const byTaskUser = new Map<string, { user: UserRecord; work: Array<{ d: (typeof due)[number]; op: Operation }> }>();
    for (const d of due) {
      const { object } = d;
      const name = taskUserOf.get(object.licenseGroup);
      const user = name === undefined ? undefined : users.get(userKey(name));
      const problem = taskUserProblem(object.licenseGroup, name, user, tree);
      if (problem) {
        report.handled.push(failed(action, d, problem, name));
        continue;
      }
      const taskUser = user as UserRecord;
      if (object.inactive && (action.do === 'block' || action.do === 'hide')) {
        report.handled.push(handled(action, d, 'skipped', 'SKIPPED', `${what(action)} is already ${action.do === 'block' ? 'blocked' : 'hidden'} (due ${d.due})`, taskUser.username));
        continue;
      }
      const op = operationFor(action, object);
      if (!op) {
        report.handled.push(handled(action, d, 'done', 'SKIPPED', `nothing changed; a REMINDER was sent (due ${d.due})`, taskUser.username));
        continue;
      }
      const batch = byTaskUser.get(taskUser.key) ?? { user: taskUser, work: [] };
      batch.work.push({ d, op });
      byTaskUser.set(taskUser.key, batch);
    }

    const batchId = runBatchId(action.id, date);
    const events: Array<{ actor: EventActor; events: PlannedEvent[] }> = [];
    const deletedCompanies = new Set<string>();
    for (const { user, work } of byTaskUser.values()) {
      // The task user acts as in a batch it sent: its own group is its scope, its permissions apply.
      const principal: Principal = { kind: 'tasks', name: 'tasks', scope: user.licenseGroup, actingUser: user.username };
      const doc = runDocument(batchId, work.map((w) => w.op));
      const snapshot = await tx.loadSnapshot(snapshotRequest(doc, principal), principal.scope);
      const plan = planBatch(doc, snapshot, { principal, passwordMatches: () => false });
      plan.results.forEach((result, i) => {
        const { d } = work[i];
        if (result.status === 'FAILED') report.handled.push(failed(action, d, `task user ${user.username}: ${result.message ?? 'refused'}`, user.username));
        else report.handled.push(handled(action, d, 'done', result.status, `due ${d.due}`, user.username));
      });
      if (write) {
        await tx.apply({ ...plan.changes, users: plan.changes.users.map(storedUser) });
        events.push({ actor: { credential: 'tasks', user: user.username }, events: plan.events });
        for (const id of plan.changes.deletedCompanies) deletedCompanies.add(id);
      }
    }
    report.handled.sort((a, b) => (a.object.key < b.object.key ? -1 : a.object.key > b.object.key ? 1 : 0));
    if (!write) return report;

    await this.remember(tx, action, report, { batchId, startedAt }, events, deletedCompanies);
    return report;
  }

  /** The objects due on `date` (SPEC §10.3) that this action has not done or skipped yet, each with its due date and what failed before. */
  private async dueObjects(tx: BatchTransaction, action: StoredDateAction, date: string): Promise<Array<{ object: DateObject; due: string; failedBefore?: string | null }>> {
    const since = localDateOf(action.createdAt);
    if (date < since) return [];
    // The store narrows by text, two days wide on each side: an instant's local date may differ from its UTC date by one.
    const upper = -fewestDays(action.offsets) + 2;
    const before = addDays(date, upper) ?? (upper > 0 ? AFTER_ALL : undefined);
    const lower = -mostDays(action.offsets) - 2;
    const from = addDays(since, lower) ?? (lower < 0 ? BEFORE_ALL : undefined);
    if (before === undefined || from === undefined) return [];
    const found: Array<{ object: DateObject; due: string }> = [];
    for (const object of await tx.dates.objects(action, { from, before })) {
      const day = dayOf(action, object.value);
      if (day === undefined) {
        this.logger.warn('date action: a stored date cannot be read; the object has no due date', { action: action.id, entity: action.entity, id: object.id, field: action.field });
        continue;
      }
      const due = dueDateOf(action, day);
      if (due !== undefined && due <= date && due >= since) found.push({ object, due });
    }
    const fired = new Map<string, DateActionFiredRow>();
    for (const row of await tx.dates.fired(action.id, action.entity, found.map((f) => f.object.key))) fired.set(`${row.objectKey}\u0000${row.dueDate}`, row);
    const open: Array<{ object: DateObject; due: string; failedBefore?: string | null }> = [];
    for (const f of found) {
      const row = fired.get(`${f.object.key}\u0000${f.due}`);
      if (!row) open.push(f);
      else if (row.outcome === 'failed') open.push({ ...f, failedBefore: row.reason });
    }
    return open;
  }

  /** The events of the run, what fired, and the journal entry, in the run's transaction. */
  private async remember(
    tx: BatchTransaction,
    action: StoredDateAction,
    report: RunReport,
    { batchId, startedAt }: { batchId: string; startedAt: Date },
    changes: Array<{ actor: EventActor; events: PlannedEvent[] }>,
    deletedCompanies: ReadonlySet<string>,
  ): Promise<void> {
    if (report.handled.length === 0) return;
    const entity = { type: action.entity, id: '' };
    const byActor = new Map<string | null, PlannedEvent[]>();
    const add = (user: string | null, event: PlannedEvent): void => {
      const list = byActor.get(user) ?? [];
      list.push(event);
      byActor.set(user, list);
    };
    for (const { actor, events } of changes) for (const e of events) add(actor.user, e);
    for (const h of report.handled) {
      const group = h.object.licenseGroup;
      const about = { ...entity, id: h.object.id };
      if (h.outcome === 'done' && action.do === 'remind') {
        add(h.taskUser ?? null, { group, body: { type: 'REMINDER', entity: about, action: action.id, message: action.message, dueDate: h.due } });
      }
      if (h.outcome === 'failed' && !h.toldBefore) {
        add(h.taskUser ?? null, { group, body: { type: 'TASK_FAILED', entity: about, action: action.id, do: action.do, reason: h.reason, dueDate: h.due } });
      }
    }
    for (const [user, events] of byActor) await tx.recordEvents({ batchId, actor: { credential: 'tasks', user }, events });

    const now = new Date().toISOString();
    // A company the run deleted keeps no record: its id may be given to another company later.
    await tx.dates.recordFired(
      report.handled
        .filter((h) => !(h.object.entity === 'COMPANY' && deletedCompanies.has(h.object.key)))
        .map((h) => ({ actionId: action.id, entity: action.entity, objectKey: h.object.key, dueDate: h.due, outcome: h.outcome, reason: h.reason ?? null, firedAt: now })),
    );
    const taskUsers = [...new Set(report.handled.map((h) => h.taskUser).filter((u): u is string => u !== undefined))];
    const single = taskUsers.length === 1 ? taskUsers[0] : null;
    await tx.journal({
      batchId,
      credential: 'tasks:tasks',
      principal: single ? `tasks:tasks as ${single}` : 'tasks:tasks',
      impersonated: single,
      actingUser: single === null ? null : userKey(single),
      scope: action.licenseGroup,
      receivedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      bodySha256: createHash('sha256').update(JSON.stringify({ action, date: report.date, objects: report.handled.map((h) => [h.object.key, h.due]) })).digest('hex'),
      resultXml: renderResult({ id: batchId }, report.handled.map((h) => h.result)),
    });
  }
}

/** The calendar day of a field's stored value: a date as it is, an instant's date in the server's time zone; undefined for what is neither. */
function dayOf(action: DateActionRecord, value: string): string | undefined {
  if (action.field === 'validUntil') return isCalendarDate(value) ? value : undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : localDateOf(at);
}

/** Why the object's task user cannot act for it (SPEC §10.3), or undefined when it can. */
function taskUserProblem(group: string, name: string | undefined, user: UserRecord | undefined, tree: GroupTree): string | undefined {
  if (name === undefined) return `no taskUser is set for license group ${group} or a group above it`;
  if (!user) return `task user ${name} does not exist`;
  if (user.deleted) return `task user ${name} is deleted`;
  if (user.blocked) return `task user ${name} is blocked`;
  if (!tree.isWithin(group, user.licenseGroup)) return `task user ${name} belongs to license group ${user.licenseGroup}, which does not contain license group ${group}`;
  return undefined;
}

function entry(action: DateActionRecord, object: DateObject, status: OperationResult['status'], message: string): OperationResult {
  return { type: action.entity, action: action.do === 'delete' ? 'DELETE' : 'CREATE_UPDATE', id: object.id, status, message };
}

function handled(
  action: DateActionRecord,
  d: { object: DateObject; due: string },
  outcome: Outcome,
  status: OperationResult['status'],
  message: string,
  taskUser: string,
): Handled {
  return { object: d.object, due: d.due, outcome, result: entry(action, d.object, status, message), taskUser };
}

function failed(action: DateActionRecord, d: { object: DateObject; due: string; failedBefore?: string | null }, reason: string, taskUser: string | undefined): Handled {
  return {
    object: d.object,
    due: d.due,
    outcome: 'failed',
    reason,
    toldBefore: d.failedBefore === reason,
    result: entry(action, d.object, 'FAILED', `${reason} (due ${d.due})`),
    ...(taskUser === undefined ? {} : { taskUser }),
  };
}

/** A planned user as the store writes it: no plain-text password here (a task never sets one). */
function storedUser({ newPassword: _password, hashAlgorithm: _algorithm, ...user }: PlannedUser): UserRecord {
  return user;
}

/** One line of `flexi-admin tasks plan`. */
function planLine(action: StoredDateAction, h: Handled): string {
  const subject = `${what(action)} ${h.object.id}`;
  const when = `due ${h.due}: ${describeSchedule(action)}`;
  const as = h.taskUser ? `, as task user ${h.taskUser}` : '';
  switch (h.outcome) {
    case 'done':
      return `${action.id}: ${action.do} ${subject} (${when})${as}`;
    case 'skipped':
      return `${action.id}: nothing for ${subject} (${when}): ${h.result.message?.replace(/ \(due [^)]*\)$/, '')}`;
    default:
      return `${action.id}: cannot ${action.do} ${subject} (${when}): ${h.reason}`;
  }
}
