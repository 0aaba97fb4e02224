import type { DateActionChange } from '../domain/changes';
import type { DateActionEntity, DateActionField, DateActionRecord } from '../domain/date-actions';
import { DATE_ACTION_FIRED, DATE_ACTIONS, type DateActionFiredRow } from './schema';
import { inList, type Dialect, type Sql } from './sql';

/**
 * The store's part of the date actions (SPEC §10.3): their rows as batches write them, and what the
 * task runner reads and records in the transaction of a run. Statements are written once for both
 * databases, as in sql-store.ts.
 */

/** A date action as stored, with the time it was created (its due dates count from that day on). */
export interface StoredDateAction extends DateActionRecord {
  createdAt: string;
}

/** An object a date action may be due for: a user that is not deleted, or a company. */
export interface DateObject {
  entity: DateActionEntity;
  /** The user's key, or the company's id. */
  key: string;
  /** The username as stored, or the company's id. */
  id: string;
  licenseGroup: string;
  /** Blocked (a user) or hidden (a company). */
  inactive: boolean;
  /** The field's value: a date YYYY-MM-DD (validUntil) or an ISO instant (createdAt, lastLoginAt). */
  value: string;
}

/** Reads and writes of a task run, inside its batch transaction. */
export interface DateActionsTransaction {
  find(id: string): Promise<StoredDateAction | undefined>;
  /**
   * The objects of the action's group and everything below it whose field is set and lies in
   * [from, before) as text (a date, or an instant that starts with one): a store-side narrowing,
   * wide enough for the due dates the application then computes exactly.
   */
  objects(action: DateActionRecord, range: { from?: string; before?: string }): Promise<DateObject[]>;
  /** What fired for these objects of the action, any due date. */
  fired(actionId: string, entity: DateActionEntity, keys: readonly string[]): Promise<DateActionFiredRow[]>;
  recordFired(rows: readonly DateActionFiredRow[]): Promise<void>;
}

/** The column of each field: a fixed list, so nothing of a request reaches the SQL text. */
const COLUMN: Readonly<Record<DateActionField, string>> = { validUntil: 'valid_until', createdAt: 'created_at', lastLoginAt: 'last_login_at' };

const SCOPE = 'SELECT descendant FROM license_group_closure WHERE ancestor = ?';

function objectsStatement(entity: DateActionEntity, field: DateActionField, range: { from?: string; before?: string }): string {
  const column = COLUMN[field];
  const bounds = `${range.from === undefined ? '' : ` AND ${column} >= ?`}${range.before === undefined ? '' : ` AND ${column} < ?`}`;
  return entity === 'USER'
    ? `SELECT key, username AS id, license_group, blocked AS inactive, ${column} AS value FROM users
        WHERE deleted = 0 AND license_group IN (${SCOPE}) AND ${column} IS NOT NULL${bounds} ORDER BY key`
    : `SELECT id AS key, id, license_group, 1 - show AS inactive, ${column} AS value FROM companies
        WHERE license_group IN (${SCOPE}) AND ${column} IS NOT NULL${bounds} ORDER BY id`;
}

const storedDateAction = (row: Record<string, unknown>): StoredDateAction => ({ ...DATE_ACTIONS.fromRow(row), createdAt: row.created_at as string });

export function dateActionsTransaction(sql: Sql, dialect: Dialect): DateActionsTransaction {
  return {
    async find(id) {
      const row = await sql.get('SELECT * FROM date_actions WHERE id = ?', [id]);
      return row ? storedDateAction(row) : undefined;
    },
    async objects(action, range) {
      const params = [action.licenseGroup, ...(range.from === undefined ? [] : [range.from]), ...(range.before === undefined ? [] : [range.before])];
      const rows = await sql.all(objectsStatement(action.entity, action.field, range), params);
      return rows.map((r) => ({
        entity: action.entity,
        key: r.key as string,
        id: r.id as string,
        licenseGroup: r.license_group as string,
        inactive: Number(r.inactive) === 1,
        value: r.value as string,
      }));
    },
    async fired(actionId, entity, keys) {
      if (keys.length === 0) return [];
      const rows = await sql.all(`SELECT * FROM date_action_fired WHERE action_id = ? AND entity = ? AND ${inList(dialect, 'object_key')}`, [
        actionId,
        entity,
        dialect.list(keys),
      ]);
      return rows.map(DATE_ACTION_FIRED.fromRow);
    },
    recordFired: (rows) => sql.insert(DATE_ACTION_FIRED, rows.map((r) => DATE_ACTION_FIRED.values(r)), { upsert: true }),
  };
}

/** Every date action, for the runner's rounds and `tasks plan`. */
export async function listDateActions(sql: Pick<Sql, 'all'>): Promise<StoredDateAction[]> {
  return (await sql.all('SELECT * FROM date_actions ORDER BY id')).map(storedDateAction);
}

/** The date actions a batch names, wherever they are: their ids are global. */
export async function loadDateActions(sql: Sql, dialect: Dialect, ids: readonly string[]): Promise<DateActionRecord[]> {
  if (ids.length === 0) return [];
  return (await sql.all(`SELECT * FROM date_actions WHERE ${inList(dialect, 'id')}`, [dialect.list(ids)])).map(DATE_ACTIONS.fromRow);
}

/**
 * A batch's date actions, in order: a deleted one takes what fired for it along (so an action
 * created again under its id starts afresh); a deleted company takes what fired for it along (its
 * id may be given to another company).
 */
export async function applyDateActions(sql: Sql, dialect: Dialect, changes: readonly DateActionChange[], deletedCompanies: readonly string[], now: string): Promise<void> {
  if (deletedCompanies.length) {
    await sql.run(`DELETE FROM date_action_fired WHERE entity = 'COMPANY' AND ${inList(dialect, 'object_key')}`, [dialect.list(deletedCompanies)]);
  }
  for (const change of changes) {
    if (change.kind === 'delete') {
      await sql.run('DELETE FROM date_action_fired WHERE action_id = ?', [change.id]);
      await sql.run('DELETE FROM date_actions WHERE id = ?', [change.id]);
    } else {
      await sql.insert(DATE_ACTIONS, [DATE_ACTIONS.values(change.action, now)], { upsert: true });
    }
  }
}

/** How many date actions each of these groups holds (a group that holds one is not empty). */
export function countDateActionsStatement(dialect: Dialect): string {
  return `SELECT license_group AS id, count(*) AS n FROM date_actions WHERE ${inList(dialect, 'license_group')} GROUP BY license_group`;
}
